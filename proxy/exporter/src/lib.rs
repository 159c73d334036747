//! Exporters: one seam for every kind ([`kind`]: `otlp`, `debug`, named in [`registry`]), and the
//! machinery every kind is given by configuration: its queue ([`queue`], in memory or [`durable`], with
//! coalescing), retries ([`retry`]) and body preparation and compression ([`body`]).
//!
//! An exporter receives one upstream request at a time ([`ExportRequest`]): one or more client
//! requests of one signal, already encoded as protobuf (the bytes a client sent, when no filter changed
//! them), merged by the queue ([`queue`]) because encoded export requests concatenate into one. It
//! prepares the body once (compressing it when configured: gzip or zstd, at the configured level) and
//! sends those bytes on every attempt, retrying retryable answers ([`retry`]) until the deadline. Its
//! answer is the upstream's partial success or an [`ExportError`] that says whether the client should
//! retry and which status code to pass on.
//!
//! The OTLP/gRPC client is a small one over hyper's HTTP/2 client rather than tonic's: tonic compresses
//! a message itself on every call, which would mean compressing again on every retry; here the body is
//! compressed once and framed as a gRPC message by hand (a 5-byte prefix), and tonic's `Status` still
//! reads the upstream's trailers.
#![forbid(unsafe_code)]

pub mod body;
pub mod dead_letter;
pub mod debug;
pub mod durable;
pub mod kind;
pub mod otlp;
pub mod queue;
pub mod registry;
pub mod retry;

use std::path::Path;
use std::time::{Duration, Instant};

pub use queue::ExporterQueue;
pub use weir_core::{ExportError, QueueFull};

use weir_core::config::{ExporterConfig, RetryConfig};
use weir_core::telemetry::Metrics;
use weir_core::{Encoded, PartialSuccess, Signal};

/// One upstream request: client requests of one signal, in order, whose encodings concatenate into one
/// export request.
#[derive(Debug)]
pub struct ExportRequest<'a> {
    /// The signal.
    pub signal: Signal,
    /// The tenant every part belongs to, for an exporter with `tenant_header`.
    pub tenant: Option<&'a str>,
    /// The client requests' protobuf, each shared (not copied) with its queue and every retry.
    pub parts: &'a [Encoded],
    /// Items in all parts.
    pub items: usize,
    /// When the last client waiting for it stops waiting.
    pub deadline: Instant,
}

impl ExportRequest<'_> {
    /// Encoded bytes in all parts.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Encoded::len).sum()
    }

    /// True without any bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The building of an exporter from its configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Its kind section did not read or validate.
    #[error(transparent)]
    Config(#[from] weir_core::config::ConfigError),
    /// Its kind could not build it (a certificate that does not load).
    #[error("exporter {name}: {message}")]
    Build {
        /// The exporter.
        name: String,
        /// Why.
        message: String,
    },
}

/// A running exporter: its kind, and the machinery every kind is given (the body prepared and
/// compressed once per upstream request, retries within the clients' deadline, metrics). Its queue
/// ([`ExporterQueue`]) holds it.
#[derive(Debug)]
pub struct Exporter {
    kind: Box<dyn kind::Export>,
    retry: RetryConfig,
}

impl Exporter {
    /// Builds exporter `name` of `config`'s kind (relative paths in its section relative to `base`).
    /// Must run inside a tokio runtime (connections are made lazily). TLS files are registered with
    /// `reloader`.
    pub fn build(
        name: &str,
        config: &ExporterConfig,
        base: Option<&Path>,
        reloader: &weir_tls::Reloader,
        metrics: &weir_core::telemetry::Metrics,
    ) -> Result<Self, BuildError> {
        let section = registry::parse(name, config, base)?;
        let kind = section
            .build(name, &kind::BuildContext { reloader, metrics })
            .map_err(|message| BuildError::Build {
                name: name.to_string(),
                message,
            })?;
        Ok(Self::new(kind, config.retry.clone()))
    }

    /// An exporter of a running `kind` with `retry`.
    pub fn new(kind: Box<dyn kind::Export>, retry: RetryConfig) -> Self {
        Self { kind, retry }
    }

    /// A `debug` exporter named `name` printing one line per request, for tests and tools.
    pub fn debug(name: &str) -> Self {
        Self::new(
            Box::new(debug::DebugExporter::new(name, debug::Verbosity::Basic)),
            RetryConfig::default(),
        )
    }

    /// The header the request's tenant is sent upstream in, if this exporter sends it.
    pub fn tenant_header(&self) -> Option<&::http::HeaderName> {
        self.kind.tenant_header()
    }

    /// Delivers `request`, retrying as configured, within its deadline. The body is prepared
    /// (merged and compressed) once; every attempt sends the same bytes.
    pub async fn export(
        &self,
        name: &str,
        request: &ExportRequest<'_>,
        metrics: &Metrics,
        health: Option<&queue::Health>,
    ) -> Result<PartialSuccess, ExportError> {
        let on_retry = |e: &ExportError, delay: Duration| {
            metrics.export_retried(request.signal, name);
            if let Some(h) = health {
                h.failed();
            }
            tracing::debug!(exporter = name, error = %e, ?delay, "retrying export");
        };
        if !self.kind.sends_body() {
            let none = body::Prepared::none();
            let left = weir_core::remaining(request.deadline);
            return self.kind.attempt(request, &none, left).await;
        }
        let body = body::Prepared::prepare(request.parts, self.kind.compression()).await?;
        metrics.export_sent_bytes(name, request.len(), body.len());
        retry::with_retries(&self.retry, request.deadline, on_retry, |timeout| {
            self.kind.attempt(request, &body, timeout)
        })
        .await
    }
}
