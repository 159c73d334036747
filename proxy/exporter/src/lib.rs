//! Upstream clients: OTLP/gRPC, OTLP/HTTP (protobuf) and `debug`, each behind its own queue.
//!
//! An exporter receives a batch already encoded as protobuf once by the pipeline ([`ExportRequest::body`])
//! and delivers it, retrying retryable answers ([`retry`]) until the client's deadline. Its answer is the
//! upstream's partial success or an [`ExportError`] that says whether the client should retry and which
//! status code to pass on.

#![forbid(unsafe_code)]

mod debug;
pub mod durable;
mod grpc;
mod http;
pub mod queue;
pub mod retry;

use std::time::{Duration, Instant};

use bytes::Bytes;

pub use debug::DebugExporter;
pub use grpc::GrpcExporter;
pub use http::HttpExporter;
pub use queue::ExporterQueue;
pub use weir_core::{ExportError, QueueFull};

use weir_core::config::{ExporterConfig, OtlpProtocol};
use weir_core::telemetry::Metrics;
use weir_core::{PartialSuccess, Payload, Signal};

/// One batch, decoded and encoded, on its way to every exporter of a pipeline.
#[derive(Debug)]
pub struct ExportRequest<'a> {
    /// The signal.
    pub signal: Signal,
    /// The decoded request (the debug exporter prints it).
    pub payload: &'a Payload,
    /// The request encoded as protobuf, shared by every exporter and every retry.
    pub body: Bytes,
    /// Number of items in it.
    pub items: usize,
    /// When the client stops waiting.
    pub deadline: Instant,
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
    pub fn build(name: &str, config: &ExporterConfig) -> Result<Self, BuildError> {
        let err = |message: String| BuildError {
            name: name.to_string(),
            message,
        };
        Ok(match config {
            ExporterConfig::Debug(d) => Exporter::Debug(DebugExporter::new(d.verbosity)),
            ExporterConfig::Otlp(o) => match o.protocol {
                OtlpProtocol::Grpc => Exporter::Grpc(GrpcExporter::new(o).map_err(err)?),
                OtlpProtocol::Http => Exporter::Http(HttpExporter::new(o).map_err(err)?),
            },
        })
    }

    /// Delivers `request`, retrying as configured, within its deadline.
    pub async fn export(
        &self,
        name: &str,
        request: &ExportRequest<'_>,
        metrics: &Metrics,
    ) -> Result<PartialSuccess, ExportError> {
        let on_retry = |e: &ExportError, delay: Duration| {
            metrics.export_retried(request.signal, name);
            tracing::debug!(exporter = name, error = %e, ?delay, "retrying export");
        };
        match self {
            Exporter::Debug(d) => Ok(d.export(name, request)),
            Exporter::Grpc(g) => {
                retry::with_retries(g.retry(), request.deadline, on_retry, |timeout| {
                    g.attempt(request, timeout)
                })
                .await
            }
            Exporter::Http(h) => {
                let body = h.prepare(request);
                retry::with_retries(h.retry(), request.deadline, on_retry, |timeout| {
                    h.attempt(request.signal, body.clone(), timeout)
                })
                .await
            }
        }
    }
}
