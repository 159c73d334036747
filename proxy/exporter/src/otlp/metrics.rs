//! The `otlp` exporter kind's own metric family: every attempt, by what the upstream answered
//! (`weir_otlp_exporter_responses_total{exporter, protocol, status}`). `status` is the gRPC status
//! name (`OK`, `UNAVAILABLE`) over gRPC, the HTTP status code (`200`, `503`) over HTTP, and
//! `unanswered` when no answer came (no connection, a timeout, a response cut short). The families
//! every exporter has (`weir_exporter_*`) count items and retries; this one tells an operator which
//! answers the retries were for.

use std::borrow::Cow;
use std::sync::atomic::{AtomicI32, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use weir_core::telemetry::Metrics;

/// The family's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    exporter: String,
    protocol: &'static str,
    /// Borrowed but for an HTTP status code.
    status: Cow<'static, str>,
}

/// The `otlp` kind's family, shared by every `otlp` exporter.
#[derive(Clone, Debug, Default)]
pub struct OtlpMetrics {
    responses: Family<ResponseLabels, Counter>,
}

impl OtlpMetrics {
    /// The family, registered in `metrics` by the first `otlp` exporter built.
    pub fn of(metrics: &Metrics) -> Self {
        metrics.kind_family("otlp", |registry| {
            let m = Self::default();
            registry.register(
                "otlp_exporter_responses",
                "Attempts of otlp exporters, by the upstream's answer: a gRPC status name, an HTTP status code, or unanswered",
                m.responses.clone(),
            );
            m
        })
    }
}

/// What one attempt got: set where the upstream's answer is read, counted once when the attempt
/// ends.
pub(crate) struct Answer {
    /// The gRPC code or HTTP status; `-1` while unanswered.
    status: AtomicI32,
}

impl Answer {
    pub(crate) fn new() -> Self {
        Self {
            status: AtomicI32::new(-1),
        }
    }

    /// The upstream answered `status` (a gRPC code or an HTTP status).
    pub(crate) fn set(&self, status: i32) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// Counts the attempt of `exporter` over `protocol` (`grpc` or `http`).
    pub(crate) fn count(&self, metrics: &OtlpMetrics, exporter: &str, protocol: &'static str) {
        let status = match (self.status.load(Ordering::Relaxed), protocol) {
            (s, _) if s < 0 => Cow::Borrowed("unanswered"),
            (s, "grpc") => Cow::Borrowed(grpc_name(s)),
            (s, _) => Cow::Owned(s.to_string()),
        };
        metrics
            .responses
            .get_or_create(&ResponseLabels {
                exporter: exporter.to_string(),
                protocol,
                status,
            })
            .inc();
    }
}

/// A gRPC status code's canonical name.
fn grpc_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .copied()
        .unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::telemetry::Transport;

    #[test]
    fn one_family_for_every_otlp_exporter_rendered_after_the_shared_ones() {
        let m = Metrics::new();
        let (a, b) = (OtlpMetrics::of(&m), OtlpMetrics::of(&m));
        let answer = Answer::new();
        answer.count(&a, "up", "grpc");
        answer.set(14);
        answer.count(&b, "up", "grpc");
        answer.count(&b, "up", "grpc");
        let answer = Answer::new();
        answer.set(503);
        answer.count(&a, "side", "http");
        m.items_received(weir_core::Signal::Traces, Transport::Grpc, 1);
        let text = m.render();
        for line in [
            r#"weir_otlp_exporter_responses_total{exporter="up",protocol="grpc",status="unanswered"} 1"#,
            r#"weir_otlp_exporter_responses_total{exporter="up",protocol="grpc",status="UNAVAILABLE"} 2"#,
            r#"weir_otlp_exporter_responses_total{exporter="side",protocol="http",status="503"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert_eq!(
            text.matches("# TYPE weir_otlp_exporter_responses counter")
                .count(),
            1
        );
        let family = text.find("weir_otlp_exporter_responses").unwrap();
        assert!(family > text.find("weir_received_items").unwrap());
        assert!(text.ends_with("# EOF\n"), "one end, after every family");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn grpc_codes_have_their_names() {
        assert_eq!(grpc_name(0), "OK");
        assert_eq!(grpc_name(8), "RESOURCE_EXHAUSTED");
        assert_eq!(grpc_name(16), "UNAUTHENTICATED");
        assert_eq!(grpc_name(99), "UNKNOWN");
    }
}
