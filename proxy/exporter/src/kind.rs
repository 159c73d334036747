//! The seam every exporter kind implements: [`ExporterKind`] for its configuration section (validate,
//! resolve paths, build) and [`Export`] for what runs. The queue, coalescing, retries and body
//! compression are not a kind's business: [`crate::Exporter`] gives them to every kind.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use weir_core::{ExportError, PartialSuccess};
use weir_wire::codec::Encoding;

use crate::ExportRequest;
use crate::body::Prepared;

/// What building a running exporter may use.
#[derive(Clone, Copy)]
pub struct BuildContext<'a> {
    /// Certificates and keys, re-read when they change: a kind with TLS registers its files here.
    pub reloader: &'a weir_tls::Reloader,
    /// weir's metrics: a kind registers its own family here (`Metrics::kind_family`), beside the
    /// `weir_exporter_*` families every exporter is counted in.
    pub metrics: &'a weir_core::telemetry::Metrics,
}

/// A kind's configuration section (the map under its key, `exporters.NAME.KIND`), parsed by serde.
pub trait ExporterKind: fmt::Debug + Send + Sync {
    /// Checks what the schema cannot (an endpoint's URL, a header's name); the message names the key.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Makes relative paths (certificates, keys) relative to `base`, the configuration file's folder.
    fn resolve_paths(&mut self, _base: &Path) {}

    /// The running exporter. Runs inside a tokio runtime; connections are made lazily.
    fn build(&self, name: &str, ctx: &BuildContext<'_>) -> Result<Box<dyn Export>, String>;
}

/// A running exporter of some kind: one attempt at a time, the rest is shared machinery.
pub trait Export: fmt::Debug + Send + Sync {
    /// How bodies are compressed for this kind (encoding and level), `None` to send them as they are.
    fn compression(&self) -> Option<(Encoding, i32)> {
        None
    }

    /// Whether this kind sends the prepared body (merged and compressed, with retries); `false` for
    /// a kind that only looks at the parts and cannot fail (`debug`): it is called once, with an
    /// empty body.
    fn sends_body(&self) -> bool {
        true
    }

    /// The header a request's tenant is sent upstream in, if this kind sends it. Requests of different
    /// tenants are then never merged.
    fn tenant_header(&self) -> Option<&http::HeaderName> {
        None
    }

    /// One attempt to deliver `request`, whose body is prepared once (`body`, compressed as
    /// [`Export::compression`] asks) and shared by every attempt, within `timeout`.
    fn attempt<'a>(
        &'a self,
        request: &'a ExportRequest<'a>,
        body: &'a Prepared,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<PartialSuccess, ExportError>>;
}
