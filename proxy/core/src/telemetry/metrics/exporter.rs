//! The exporters' metrics: items an upstream accepted, dropped as a partial success, or that could
//! not be delivered; retried attempts and the time to deliver a batch; client requests coalesced
//! into one upstream request; the upstream requests' bytes before and after compression; and items
//! delivered for a request whose client was told to retry.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{ExportFailedLabels, ExporterLabels, QueueLabels, exporter_labels};
use super::latency_histogram;
use crate::Signal;

/// What the exporters count: items delivered, dropped upstream, failed and retried, time and bytes.
#[derive(Debug)]
pub struct ExporterMetrics {
    exported_items: Family<ExporterLabels, Counter>,
    export_failed_items: Family<ExportFailedLabels, Counter>,
    upstream_rejected_items: Family<ExporterLabels, Counter>,
    export_retries: Family<ExporterLabels, Counter>,
    export_duration: Family<ExporterLabels, Histogram, fn() -> Histogram>,
    export_coalesced: Family<ExporterLabels, Counter>,
    export_encoded_bytes: Family<QueueLabels, Counter>,
    export_sent_bytes: Family<QueueLabels, Counter>,
    refused_delivered: Family<ExporterLabels, Counter>,
}

impl ExporterMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            exported_items: Family::default(),
            export_failed_items: Family::default(),
            upstream_rejected_items: Family::default(),
            export_retries: Family::default(),
            export_duration: Family::new_with_constructor(latency_histogram),
            export_coalesced: Family::default(),
            export_encoded_bytes: Family::default(),
            export_sent_bytes: Family::default(),
            refused_delivered: Family::default(),
        };
        registry.register(
            "exported_items",
            "Items an upstream accepted",
            m.exported_items.clone(),
        );
        registry.register(
            "export_failed_items",
            "Items an exporter could not deliver (the client was not acknowledged)",
            m.export_failed_items.clone(),
        );
        registry.register(
            "upstream_rejected_items",
            "Items an upstream dropped and reported as a partial success (passed back to the client)",
            m.upstream_rejected_items.clone(),
        );
        registry.register(
            "export_retries",
            "Retried export attempts",
            m.export_retries.clone(),
        );
        registry.register(
            "export_duration_seconds",
            "Time to deliver one batch upstream, retries included",
            m.export_duration.clone(),
        );
        registry.register(
            "exporter_coalesced_requests",
            "Client requests that went upstream merged into the upstream request of an earlier one",
            m.export_coalesced.clone(),
        );
        registry.register(
            "exporter_encoded_bytes",
            "Protobuf bytes of the upstream requests an exporter prepared, before compression",
            m.export_encoded_bytes.clone(),
        );
        registry.register(
            "exporter_sent_bytes",
            "Bytes of the upstream requests an exporter prepared, after compression (once per request, not per attempt)",
            m.export_sent_bytes.clone(),
        );
        registry.register(
            "exporter_refused_delivered_items",
            "Items an exporter delivered for a request whose client was told to retry because another exporter could not take its part: the retry sends them again (at-least-once)",
            m.refused_delivered.clone(),
        );
        m
    }

    /// An upstream accepted `items` items (after `rejected` partial-success drops) in `elapsed`.
    pub fn exported(
        &self,
        signal: Signal,
        exporter: &str,
        items: usize,
        rejected: u64,
        elapsed: Duration,
    ) {
        let l = exporter_labels(signal, exporter);
        self.exported_items
            .get_or_create(&l)
            .inc_by((items as u64).saturating_sub(rejected));
        if rejected > 0 {
            self.upstream_rejected_items
                .get_or_create(&l)
                .inc_by(rejected);
        }
        self.export_duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    /// An exporter gave up on `items` items.
    pub fn failed(&self, signal: Signal, exporter: &str, items: usize, retryable: bool) {
        self.export_failed_items
            .get_or_create(&ExportFailedLabels {
                signal: signal.as_str(),
                exporter: exporter.to_string(),
                retryable: if retryable { "true" } else { "false" },
            })
            .inc_by(items as u64);
    }

    /// An exporter retries an attempt.
    pub fn retried(&self, signal: Signal, exporter: &str) {
        self.export_retries
            .get_or_create(&exporter_labels(signal, exporter))
            .inc();
    }

    /// `n` client requests went upstream in the upstream request of an earlier one.
    pub fn coalesced(&self, signal: Signal, exporter: &str, n: usize) {
        self.export_coalesced
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(n as u64);
    }

    /// An exporter prepared an upstream request of `encoded` protobuf bytes, `sent` on the wire.
    pub fn sent_bytes(&self, exporter: &str, encoded: usize, sent: usize) {
        let labels = QueueLabels {
            exporter: exporter.to_string(),
        };
        self.export_encoded_bytes
            .get_or_create(&labels)
            .inc_by(encoded as u64);
        self.export_sent_bytes
            .get_or_create(&labels)
            .inc_by(sent as u64);
    }

    /// `exporter` delivered `items` of a request whose client was told to retry.
    pub fn refused_delivered(&self, signal: Signal, exporter: &str, items: usize) {
        self.refused_delivered
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(items as u64);
    }
}
