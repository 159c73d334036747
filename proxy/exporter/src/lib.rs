//! Upstream clients: OTLP/gRPC, OTLP/HTTP (protobuf) and `debug`, each behind its own queue.
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
mod connect;
pub mod dead_letter;
mod debug;
pub mod durable;
mod grpc;
mod http;
pub mod queue;
pub mod retry;
mod upstream;

use std::time::{Duration, Instant};

pub use debug::DebugExporter;
pub use grpc::GrpcExporter;
pub use http::HttpExporter;
pub use queue::ExporterQueue;
pub use weir_core::{ExportError, QueueFull};

use weir_core::config::{ExporterConfig, OtlpProtocol};
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
#[error("exporter {name}: {message}")]
pub struct BuildError {
    name: String,
    message: String,
}

/// A running exporter.
#[derive(Debug)]
// One per configured exporter, built once and kept behind an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Exporter {
    /// OTLP/gRPC.
    Grpc(GrpcExporter),
    /// OTLP/HTTP protobuf.
    Http(HttpExporter),
    /// Prints to stdout.
    Debug(DebugExporter),
}

impl Exporter {
    /// Builds an exporter. Must run inside a tokio runtime (connections are made lazily).
    /// An `https://` upstream's TLS settings are registered with `reloader`.
    pub fn build(
        name: &str,
        config: &ExporterConfig,
        reloader: &weir_tls::Reloader,
    ) -> Result<Self, BuildError> {
        let err = |message: String| BuildError {
            name: name.to_string(),
            message,
        };
        Ok(match config {
            ExporterConfig::Debug(d) => Exporter::Debug(DebugExporter::new(d.verbosity)),
            ExporterConfig::Otlp(o) => match o.protocol {
                OtlpProtocol::Grpc => {
                    Exporter::Grpc(GrpcExporter::new(name, o, reloader).map_err(err)?)
                }
                OtlpProtocol::Http => {
                    Exporter::Http(HttpExporter::new(name, o, reloader).map_err(err)?)
                }
            },
        })
    }

    /// The header the request's tenant is sent upstream in, if this exporter sends it.
    pub fn tenant_header(&self) -> Option<&::http::HeaderName> {
        match self {
            Exporter::Grpc(g) => g.upstream().tenant_header.as_ref(),
            Exporter::Http(h) => h.upstream().tenant_header.as_ref(),
            Exporter::Debug(_) => None,
        }
    }

    /// Delivers `request`, retrying as configured, within its deadline. The body is prepared
    /// (compressed) once; every attempt sends the same bytes.
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
        match self {
            Exporter::Debug(d) => Ok(d.export(name, request)),
            Exporter::Grpc(g) => {
                let body = body::Prepared::prepare(request.parts, g.upstream().compression).await;
                metrics.export_sent_bytes(name, request.len(), body.len());
                retry::with_retries(&g.upstream().retry, request.deadline, on_retry, |timeout| {
                    g.attempt(request.signal, request.tenant, &body, timeout)
                })
                .await
            }
            Exporter::Http(h) => {
                let body = body::Prepared::prepare(request.parts, h.upstream().compression).await;
                metrics.export_sent_bytes(name, request.len(), body.len());
                retry::with_retries(&h.upstream().retry, request.deadline, on_retry, |timeout| {
                    h.attempt(request.signal, request.tenant, &body, timeout)
                })
                .await
            }
        }
    }
}
