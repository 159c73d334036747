//! Why a request was not acknowledged, and the faults behind it: the refusal decides the client's
//! status code (retryable or not) and the metric's `reason`.

use weir_wire::Signal;

use crate::ExportError;
use crate::telemetry::RefuseReason;

/// Why a request was not acknowledged: decides the client's status code.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No pipeline handles this signal.
    #[error("no pipeline for {0}")]
    NoPipeline(Signal),
    /// The deadline passed before every upstream answered.
    #[error("deadline exceeded before the upstream answered")]
    Timeout,
    /// The filter chain refused the batch.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// An exporter the batch is routed to has a full queue; retryable.
    #[error("{0}; retry later")]
    QueueFull(#[from] QueueFull),
    /// An exporter failed; retryable or not as the upstream said.
    #[error("exporter {exporter}: {source}")]
    Export {
        /// The exporter's name.
        exporter: String,
        /// What happened.
        source: ExportError,
    },
}

impl Refusal {
    /// Whether the client should retry.
    pub fn retryable(&self) -> bool {
        match self {
            Refusal::NoPipeline(_) => false,
            Refusal::Timeout | Refusal::QueueFull(_) => true,
            Refusal::Chain(e) => e.retryable(),
            Refusal::Export { source, .. } => source.retryable(),
        }
    }

    /// The metric reason.
    pub fn reason(&self) -> RefuseReason {
        match self {
            Refusal::NoPipeline(_) => RefuseReason::NoPipeline,
            Refusal::Timeout => RefuseReason::Timeout,
            Refusal::QueueFull(f) if f.upstream_down => RefuseReason::UpstreamUnavailable,
            Refusal::QueueFull(_) => RefuseReason::QueueFull,
            Refusal::Chain(ChainError::Busy { .. }) => RefuseReason::FilterBusy,
            Refusal::Chain(ChainError::Overloaded { .. }) => RefuseReason::MemoryLimit,
            Refusal::Chain(e) if e.retryable() => RefuseReason::FilterFailed,
            Refusal::Chain(ChainError::Undecodable(_)) => RefuseReason::Decode,
            Refusal::Chain(_) => RefuseReason::FilterRejected,
            Refusal::Export { source, .. } if source.retryable() => {
                RefuseReason::UpstreamUnavailable
            }
            Refusal::Export { .. } => RefuseReason::UpstreamRejected,
        }
    }
}

/// Why the chain refused a batch.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A filter rejected the batch; not retryable.
    #[error("filter {filter} rejected the batch: {reason}")]
    Rejected {
        /// The filter's name.
        filter: String,
        /// Its reason.
        reason: String,
    },
    /// The request's bytes passed the validating walk but did not decode for the filters: a bug in
    /// weir's walk, never the client's doing in theory; refused as invalid, not retryable.
    #[error("the request could not be decoded for the filters: {0}")]
    Undecodable(String),
    /// Every instance of a filter stayed busy for the whole wait (its `concurrency` is in use):
    /// back-pressure, retryable, and never held against the filter.
    #[error("filter {filter} is busy: all {concurrency} of its instances are in use")]
    Busy {
        /// The filter's name.
        filter: String,
        /// Its instance bound.
        concurrency: usize,
    },
    /// A filter call failed because weir, not the filter, ran out of room (the request's memory
    /// charge was refused at weir's memory limit): retryable, never held against the filter, and the
    /// batch never passes around the filter whatever its `on_error` (a redactor's batch would leak).
    #[error("filter {filter} could not run: {why}")]
    Overloaded {
        /// The filter's name.
        filter: String,
        /// What ran out.
        why: String,
    },
    /// A `fail-closed` filter failed; retryable.
    #[error("filter {filter} failed ({fault}); it fails closed")]
    Failed {
        /// The filter's name.
        filter: String,
        /// What happened.
        fault: Fault,
    },
}

impl ChainError {
    /// Whether the client should retry.
    pub fn retryable(&self) -> bool {
        match self {
            ChainError::Rejected { .. } | ChainError::Undecodable(_) => false,
            ChainError::Failed { .. } | ChainError::Busy { .. } | ChainError::Overloaded { .. } => {
                true
            }
        }
    }
}

/// A filter call failed; the filter's `on_error` policy decides what happens to the batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{class}: {message}")]
pub struct Fault {
    /// What kind of failure.
    pub class: FaultClass,
    /// Details.
    pub message: String,
}

/// Why a filter call failed. The class is a label on `/metrics` and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClass {
    /// The guest trapped (a panic, an unreachable, a bad memory access).
    Trap,
    /// The call ran past its deadline.
    Deadline,
    /// The instance tried to grow its memory past the cap.
    Memory,
    /// The guest handed weir something invalid (an item index that does not exist).
    BadOutput,
    /// `init` refused the configuration when a new instance was made.
    Init,
}

impl FaultClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultClass::Trap => "trap",
            FaultClass::Deadline => "deadline",
            FaultClass::Memory => "memory",
            FaultClass::BadOutput => "bad_output",
            FaultClass::Init => "init",
        }
    }
}

impl std::fmt::Display for FaultClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exporter's queue has no room for the batch, or its upstream is down (then its part is refused
/// at once rather than held until the client's deadline, so that the client's other upstreams' parts
/// are answered at their own pace).
#[derive(Debug, thiserror::Error)]
#[error("{}", if *.upstream_down {
    format!("exporter {}'s upstream is down: its part is refused at once, retry later", .exporter)
} else {
    format!("exporter {}'s queue is full", .exporter)
})]
pub struct QueueFull {
    /// The exporter's name.
    pub exporter: String,
    /// Refused because the upstream has been failing, not for room.
    pub upstream_down: bool,
}
