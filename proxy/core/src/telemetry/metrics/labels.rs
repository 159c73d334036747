//! The label values and label sets of weir's metrics: [`Transport`] and [`RefuseReason`], which
//! callers pass, and the label structs the families encode (a struct's fields are its label names,
//! in their order).

use prometheus_client::encoding::EncodeLabelSet;

use crate::Signal;

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP.
    Http,
}

impl Transport {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// Why a request was not acknowledged. The label value of `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// The body did not decode (400 / INVALID_ARGUMENT).
    Decode,
    /// Above a size limit (413 / RESOURCE_EXHAUSTED).
    TooLarge,
    /// Content type or encoding not supported (415).
    UnsupportedMediaType,
    /// Too many requests in flight (503 / UNAVAILABLE).
    Overloaded,
    /// The request deadline passed (503 / UNAVAILABLE).
    Timeout,
    /// No pipeline for this signal (404 / UNIMPLEMENTED).
    NoPipeline,
    /// An upstream stayed unavailable until the deadline (503 / UNAVAILABLE).
    UpstreamUnavailable,
    /// An upstream refused the data for good (its status is passed through).
    UpstreamRejected,
    /// weir is shutting down (503 / UNAVAILABLE).
    ShuttingDown,
    /// A filter rejected the batch (400 / INVALID_ARGUMENT).
    FilterRejected,
    /// A fail-closed filter failed (503 / UNAVAILABLE).
    FilterFailed,
    /// Every instance of a filter stayed busy past the wait (503 / UNAVAILABLE).
    FilterBusy,
    /// An exporter's queue is full (503 / UNAVAILABLE).
    QueueFull,
    /// Resident memory is above its high-water mark (503 / UNAVAILABLE).
    MemoryLimit,
    /// The body did not arrive within `limits.connections.body_read_timeout` (408 / DEADLINE_EXCEEDED).
    SlowClient,
    /// The request carried no credential the receiver's `auth` accepts (401 / UNAUTHENTICATED).
    Unauthenticated,
}

impl RefuseReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseReason::Decode => "decode",
            RefuseReason::TooLarge => "too_large",
            RefuseReason::UnsupportedMediaType => "unsupported_media_type",
            RefuseReason::Overloaded => "overloaded",
            RefuseReason::Timeout => "timeout",
            RefuseReason::NoPipeline => "no_pipeline",
            RefuseReason::UpstreamUnavailable => "upstream_unavailable",
            RefuseReason::UpstreamRejected => "upstream_rejected",
            RefuseReason::ShuttingDown => "shutting_down",
            RefuseReason::FilterRejected => "filter_rejected",
            RefuseReason::FilterFailed => "filter_failed",
            RefuseReason::FilterBusy => "filter_busy",
            RefuseReason::QueueFull => "queue_full",
            RefuseReason::MemoryLimit => "memory_limit",
            RefuseReason::SlowClient => "slow_client",
            RefuseReason::Unauthenticated => "unauthenticated",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReceiverLabels {
    pub(super) signal: &'static str,
    pub(super) transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RefusedLabels {
    pub(super) signal: &'static str,
    pub(super) transport: &'static str,
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ExporterLabels {
    pub(super) signal: &'static str,
    pub(super) exporter: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ExportFailedLabels {
    pub(super) signal: &'static str,
    pub(super) exporter: String,
    pub(super) retryable: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct QueueLabels {
    pub(super) exporter: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct QueueIoLabels {
    pub(super) exporter: String,
    pub(super) op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FilterLabels {
    pub(super) signal: &'static str,
    pub(super) filter: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FilterErrorLabels {
    pub(super) signal: &'static str,
    pub(super) filter: String,
    pub(super) class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FilterNamedLabels {
    pub(super) signal: &'static str,
    pub(super) filter: String,
    pub(super) name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TransportLabels {
    pub(super) transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ListenerLabels {
    pub(super) listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TlsReloadLabels {
    pub(super) name: String,
    pub(super) result: &'static str,
}

pub(super) fn filter_labels(signal: Signal, filter: &str) -> FilterLabels {
    FilterLabels {
        signal: signal.as_str(),
        filter: filter.to_string(),
    }
}

pub(super) fn receiver_labels(signal: Signal, transport: Transport) -> ReceiverLabels {
    ReceiverLabels {
        signal: signal.as_str(),
        transport: transport.as_str(),
    }
}

pub(super) fn exporter_labels(signal: Signal, exporter: &str) -> ExporterLabels {
    ExporterLabels {
        signal: signal.as_str(),
        exporter: exporter.to_string(),
    }
}
