//! The `otlp` exporter kind: OTLP/gRPC ([`grpc`]) or OTLP/HTTP protobuf ([`http`]) to one upstream,
//! over plain TCP or TLS ([`connect`]). Its configuration section ([`OtlpExporterConfig`]), its
//! validation and its build are here, beside its code; the queue, coalescing, retries and body
//! compression are the machinery every exporter kind is given ([`crate::Exporter`]).

mod connect;
mod grpc;
mod http;
pub mod metrics;
mod upstream;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use weir_core::config::{ClientTlsConfig, Compression, ConfigError};
use weir_wire::codec::Encoding;

pub use grpc::GrpcExporter;
pub use http::HttpExporter;

use crate::kind::{BuildContext, Export, ExporterKind};

/// Wire protocol of an OTLP exporter.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC; `endpoint` is `http://HOST:PORT`.
    #[default]
    Grpc,
    /// OTLP/HTTP protobuf; `endpoint` is the base URL, weir appends `/v1/traces` etc.
    Http,
}

/// An OTLP upstream.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// `http://HOST:PORT` (gRPC) or the OTLP/HTTP base URL. `grpc://` is accepted for gRPC.
    pub endpoint: String,
    /// `grpc` (default) or `http`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `gzip` (default), `zstd` or `none`. Each upstream request is compressed once, and every retry
    /// sends the same bytes.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level: gzip 0 to 9, zstd 1 to 19. Default: the fastest (1 for both), whose ratio on
    /// OTLP is within a few percent of the higher levels' at a fraction of the CPU (the table is in
    /// `docs/benchmarks.md`).
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// Time allowed for one attempt (default `5s`). Retries are bounded by the client's deadline.
    #[serde(default = "default_export_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra headers (gRPC metadata) sent with every request, e.g. an API key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TLS settings for an `https://` endpoint (default: verified against the system's roots).
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
    /// Send each request's tenant (from the receiver's `auth`) upstream in this header, e.g.
    /// `X-Scope-OrgID` for Loki, Mimir and Tempo. Requests of different tenants are then never merged
    /// into one upstream request, in memory or on disk.
    #[serde(default)]
    pub tenant_header: Option<String>,
}

fn default_export_timeout() -> Duration {
    Duration::from_secs(5)
}

impl OtlpExporterConfig {
    /// Builds an exporter config from a quick-start `--upstream` URL: `grpc://` or `http://`/`https://`.
    pub fn from_upstream_url(url: &str) -> Result<Self, ConfigError> {
        let (protocol, endpoint) = if let Some(rest) = url.strip_prefix("grpc://") {
            (OtlpProtocol::Grpc, format!("http://{rest}"))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            (OtlpProtocol::Http, url.to_string())
        } else {
            return Err(ConfigError::Invalid(format!(
                "--upstream `{url}`: use grpc://HOST:PORT or http://HOST:PORT"
            )));
        };
        let c = Self {
            endpoint,
            protocol,
            compression: Compression::default(),
            compression_level: None,
            timeout: default_export_timeout(),
            headers: BTreeMap::new(),
            tls: None,
            tenant_header: None,
        };
        c.validate().map_err(ConfigError::Invalid)?;
        Ok(c)
    }

    /// The encoding and level requests are compressed with, `None` without compression.
    pub fn compression(&self) -> Option<(Encoding, i32)> {
        let e = self.compression.encoding()?;
        Some((
            e,
            self.compression_level.unwrap_or_else(|| e.default_level()),
        ))
    }

    /// The endpoint as a URI, `grpc://` normalised to `http://`.
    pub fn uri(&self) -> Result<::http::Uri, String> {
        let e = match self.endpoint.strip_prefix("grpc://") {
            Some(rest) => format!("http://{rest}"),
            None => self.endpoint.clone(),
        };
        let uri: ::http::Uri = e
            .parse()
            .map_err(|err| format!("endpoint `{}`: {err}", self.endpoint))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(format!(
                    "endpoint `{}`: needs http:// or https://",
                    self.endpoint
                ));
            }
        }
        if uri.host().is_none() {
            return Err(format!("endpoint `{}`: no host", self.endpoint));
        }
        Ok(uri)
    }

    /// Whether the endpoint is `https://`.
    pub fn is_tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    /// Checks what the schema cannot: the endpoint, headers, TLS, timeout and level.
    pub fn validate(&self) -> Result<(), String> {
        self.uri()?;
        if let Some(tls) = &self.tls {
            if !self.is_tls() {
                return Err(format!(
                    "tls is set but endpoint `{}` is not https://",
                    self.endpoint
                ));
            }
            tls.validate()?;
        }
        if self.timeout.is_zero() {
            return Err("timeout must be positive".into());
        }
        if let Some(h) = &self.tenant_header {
            ::http::HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("tenant_header `{h}` is not a header name"))?;
        }
        for (k, v) in &self.headers {
            ::http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("header name `{k}`"))?;
            ::http::HeaderValue::from_str(v).map_err(|_| format!("header `{k}` value"))?;
        }
        if let (Some(level), Some(e)) = (self.compression_level, self.compression.encoding())
            && !e.levels().contains(&level)
        {
            return Err(format!(
                "compression_level {level}: {} takes {} to {}",
                e.as_str(),
                e.levels().start(),
                e.levels().end()
            ));
        }
        Ok(())
    }
}

impl ExporterKind for OtlpExporterConfig {
    fn validate(&self) -> Result<(), String> {
        OtlpExporterConfig::validate(self)
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            tls.resolve_paths(base);
        }
    }

    fn build(&self, name: &str, ctx: &BuildContext<'_>) -> Result<Box<dyn Export>, String> {
        Ok(match self.protocol {
            OtlpProtocol::Grpc => Box::new(GrpcExporter::new(name, self, ctx)?),
            OtlpProtocol::Http => Box::new(HttpExporter::new(name, self, ctx)?),
        })
    }
}

/// The `otlp` section of the quick start's `--upstream URL` (`grpc://` or `http://`/`https://`),
/// with `compression` when given.
pub fn upstream_section(
    url: &str,
    compression: Option<Compression>,
) -> Result<serde_yaml_ng::Value, ConfigError> {
    let mut c = OtlpExporterConfig::from_upstream_url(url)?;
    if let Some(compression) = compression {
        c.compression = compression;
    }
    let mut m = serde_yaml_ng::Mapping::new();
    m.insert("endpoint".into(), c.endpoint.into());
    let protocol = match c.protocol {
        OtlpProtocol::Grpc => "grpc",
        OtlpProtocol::Http => "http",
    };
    m.insert("protocol".into(), protocol.into());
    m.insert("compression".into(), c.compression.as_str().into());
    Ok(serde_yaml_ng::Value::Mapping(m))
}

#[cfg(test)]
mod tests;
