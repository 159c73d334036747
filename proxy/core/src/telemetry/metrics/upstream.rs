//! What the queues do about an upstream that refuses for good or keeps failing: a durable queue's
//! items kept in its dead-letter directory and its delivery held, a memory queue's upstream marked
//! down.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{ExporterLabels, QueueLabels, exporter_labels};
use crate::Signal;

/// The queues' answers to an upstream that refuses for good or keeps failing.
#[derive(Debug)]
pub struct UpstreamMetrics {
    dead_lettered: Family<ExporterLabels, Counter>,
    exporter_held: Family<QueueLabels, Gauge>,
    upstream_down: Family<QueueLabels, Gauge>,
}

impl UpstreamMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            dead_lettered: Family::default(),
            exporter_held: Family::default(),
            upstream_down: Family::default(),
        };
        registry.register(
            "exporter_dead_lettered_items",
            "Acknowledged items a durable queue's upstream refused for good, kept in its dead-letter directory",
            m.dead_lettered.clone(),
        );
        registry.register(
            "exporter_held",
            "1 while a durable queue holds delivery because its upstream refuses (on_permanent_error: hold)",
            m.exporter_held.clone(),
        );
        registry.register(
            "exporter_upstream_down",
            "1 while a memory queue's upstream has been failing: its parts of new requests are refused at once (reason upstream_unavailable), one batch at a time probing it",
            m.upstream_down.clone(),
        );
        m
    }

    /// `items` refused for good were kept in `exporter`'s dead-letter directory.
    pub fn dead_lettered(&self, signal: Signal, exporter: &str, items: usize) {
        self.dead_lettered
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(items as u64);
    }

    /// `exporter`'s durable queue holds (or no longer holds) delivery.
    pub fn held(&self, exporter: &str, held: bool) {
        self.exporter_held
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .set(i64::from(held));
    }

    /// `exporter`'s upstream is down (or up again).
    pub fn down(&self, exporter: &str, down: bool) {
        self.upstream_down
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .set(i64::from(down));
    }
}
