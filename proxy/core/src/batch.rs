//! A request on its way through weir: its payload, where it came from, its deadline, and what the
//! upstreams said.

use std::time::{Duration, Instant};

use weir_wire::Body;
use weir_wire::response::{ExportPartialSuccess, ExportResponse};

/// A request's share of weir's memory budget (the receiver's memory guard, with a memory limit), which
/// a stage that makes the request grow while it is processed raises: a filter's host allocations.
pub trait MemoryBudget: Send + Sync + std::fmt::Debug {
    /// Charges `bytes` more to the request until it is answered; `false` (nothing charged) when
    /// memory does not allow it.
    fn grow(&self, bytes: u64) -> bool;
}

/// Where a batch came from, for filters, logs and metrics.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address, when known.
    pub peer: Option<std::net::SocketAddr>,
    /// The request's headers (gRPC metadata), which filters may read: shared, never copied per filter.
    pub headers: std::sync::Arc<http::HeaderMap>,
    /// The tenant the receiver's `auth` put the request in (by its token or client certificate);
    /// `None` on a receiver without `auth`.
    pub tenant: Option<std::sync::Arc<str>>,
    /// When the request must be answered: the sooner of `limits.request_timeout` and the client's
    /// own deadline (`grpc-timeout`).
    pub deadline: Instant,
    /// The request's memory budget, with a memory limit.
    pub memory: Option<std::sync::Arc<dyn MemoryBudget>>,
}

/// One request on its way through a pipeline.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The OTLP request: its bytes as received, decoded messages, or both.
    pub body: Body,
    /// Where it came from and until when it may take.
    pub context: RequestContext,
    /// Route labels the filter chain set, if any.
    pub routing: Option<Routing>,
}

/// The upstream's OTLP partial success, passed back to the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    /// Items the upstream(s) rejected (the largest count when several did).
    pub rejected: i64,
    /// Their explanation(s).
    pub message: String,
}

impl PartialSuccess {
    /// True when nothing was rejected and nothing was said.
    pub fn is_empty(&self) -> bool {
        self.rejected == 0 && self.message.is_empty()
    }

    /// What one client of a merged upstream request is told: the upstream's message, and as rejected
    /// the upstream's count capped at the client's own `items`. The upstream does not say which items
    /// it rejected, so each client of the merged request hears that up to that many of its own may be
    /// among them: never fewer than could be, which is the safe side.
    pub fn for_part(&self, items: usize) -> PartialSuccess {
        PartialSuccess {
            rejected: self.rejected.min(i64::try_from(items).unwrap_or(i64::MAX)),
            message: self.message.clone(),
        }
    }

    /// Folds `exporter`'s answer into this one: the largest rejected count, the messages joined.
    pub fn merge(&mut self, exporter: &str, other: PartialSuccess) {
        if other.is_empty() {
            return;
        }
        self.rejected = self.rejected.max(other.rejected);
        if !other.message.is_empty() {
            if !self.message.is_empty() {
                self.message.push_str("; ");
            }
            self.message.push_str(exporter);
            self.message.push_str(": ");
            self.message.push_str(&other.message);
        }
    }
}

impl From<ExportResponse> for PartialSuccess {
    fn from(r: ExportResponse) -> Self {
        let p = r.partial_success.unwrap_or_default();
        PartialSuccess {
            rejected: p.rejected,
            message: p.error_message,
        }
    }
}

impl PartialSuccess {
    /// The export response carrying this partial success (the same bytes for every signal's type).
    pub fn response(&self) -> ExportResponse {
        ExportResponse {
            partial_success: (!self.is_empty()).then(|| ExportPartialSuccess {
                rejected: self.rejected,
                error_message: self.message.clone(),
            }),
        }
    }
}

/// The route labels filters set, for the items that survived the chain (the filter host's `BatchState::finish`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// The distinct label sets, each a list of exporter names.
    pub sets: Vec<Vec<String>>,
    /// Per surviving item, in payload order: an index into `sets`, or `None` for unlabelled items.
    pub items: Vec<Option<u32>>,
}

/// Time left until `deadline`, zero when it passed.
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
