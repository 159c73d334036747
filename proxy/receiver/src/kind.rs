//! The seam every receiver kind implements: [`ReceiverKind`] for its configuration section (validate,
//! resolve paths, start). A receiver turns what it takes in into a [`weir_core::Batch`] and hands it
//! to the pipelines through [`crate::Ingest`] (the [`weir_core::Dispatch`] seam, with admission, the
//! memory limit and the receiver metrics every kind gets); it knows no pipeline and no exporter.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use weir_core::config::ConnectionLimits;
use weir_core::telemetry::Metrics;

use crate::Ingest;

/// Starting a receiver failed.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// A listener could not bind.
    #[error("cannot bind {listener} on {addr}: {source}")]
    Bind {
        /// Which listener.
        listener: String,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// An address does not parse.
    #[error("{listener}: {message}")]
    Address {
        /// Which listener.
        listener: String,
        /// Why.
        message: String,
    },
    /// A listener's TLS settings or a receiver's token file could not be loaded.
    #[error("{what}: {message}")]
    Credentials {
        /// The listener and what (`otlp-grpc tls`, `otlp-http auth`).
        what: String,
        /// Why.
        message: String,
    },
}

/// What starting a receiver may use.
pub struct StartContext<'a> {
    /// The pipelines behind admission: what every receiver hands its batches to.
    pub ingest: &'a Arc<Ingest>,
    /// weir's metrics (a kind's listeners count their connections here).
    pub metrics: &'a Arc<Metrics>,
    /// Certificates and token files, re-read when they change: a kind with TLS registers them here.
    pub reloader: &'a weir_tls::Reloader,
    /// `limits.connections`, for a kind that serves connections.
    pub connections: &'a ConnectionLimits,
    /// Becomes `true` when weir shuts down: a receiver then stops taking new work and lets what it
    /// has in hand finish (see [`stopped`]).
    pub stop: watch::Receiver<bool>,
    /// Where a receiver's serving tasks run; weir waits for them, within `limits.shutdown_timeout`,
    /// after `stop`.
    pub tasks: &'a mut JoinSet<()>,
}

/// Completes once `stop` says weir is shutting down.
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A socket a receiver listens on, as it logs it: `listener` (its metric label, `otlp-grpc`) and
/// where it bound (port 0 resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The listener's name in logs and metrics.
    pub listener: &'static str,
    /// The address it bound.
    pub addr: SocketAddr,
}

/// A starting receiver: binds, then serves in `StartContext::tasks`.
pub type Starting<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Bound>, ReceiverError>> + Send + 'a>>;

/// A kind's configuration section (the map under `receivers.KIND` or `receivers.KIND/NAME`), parsed
/// by serde.
pub trait ReceiverKind: fmt::Debug + Send + Sync {
    /// Checks what the schema cannot (an address, an auth setting's TLS); the message names the key,
    /// relative to the section.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Makes relative paths (certificates, token files) relative to `base`, the configuration
    /// file's folder.
    fn resolve_paths(&mut self, _base: &Path) {}

    /// Binds what the receiver listens on and spawns its serving tasks into `ctx.tasks`; returns the
    /// bound sockets once they accept. `name` is the receiver's key (`otlp`, `otlp/internal`).
    fn start<'a>(&'a self, name: &'a str, ctx: StartContext<'a>) -> Starting<'a>;
}
