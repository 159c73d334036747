//! The exporters' queues: what they hold (batches, items, bytes), items whose client stopped
//! waiting or that a durable queue gave up on, and a durable queue's failed file operations,
//! damaged segments, items replayed at start and the age of its oldest undelivered item.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{ExporterLabels, QueueIoLabels, QueueLabels, exporter_labels};
use crate::Signal;

/// What the exporters' queues hold, and the items they stop sending or give up on.
#[derive(Debug)]
pub struct QueueMetrics {
    queue_batches: Family<QueueLabels, Gauge>,
    queue_items: Family<QueueLabels, Gauge>,
    queue_bytes: Family<QueueLabels, Gauge>,
    queue_abandoned: Family<ExporterLabels, Counter>,
    queue_corrupt: Family<QueueLabels, Counter>,
    queue_io_errors: Family<QueueIoLabels, Counter>,
    queue_replayed: Family<QueueLabels, Counter>,
    queue_oldest: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_dropped: Family<ExporterLabels, Counter>,
}

impl QueueMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            queue_batches: Family::default(),
            queue_items: Family::default(),
            queue_bytes: Family::default(),
            queue_abandoned: Family::default(),
            queue_corrupt: Family::default(),
            queue_io_errors: Family::default(),
            queue_replayed: Family::default(),
            queue_oldest: Family::default(),
            queue_dropped: Family::default(),
        };
        registry.register(
            "exporter_queue_batches",
            "Batches queued for or being sent by an exporter",
            m.queue_batches.clone(),
        );
        registry.register(
            "exporter_queue_items",
            "Items (spans, data points, log records) queued for or being sent by an exporter",
            m.queue_items.clone(),
        );
        registry.register(
            "exporter_queue_bytes",
            "Encoded bytes queued for or being sent by an exporter",
            m.queue_bytes.clone(),
        );
        registry.register(
            "exporter_abandoned_items",
            "Items an exporter stopped sending because the client gave up waiting (it retries them)",
            m.queue_abandoned.clone(),
        );
        registry.register(
            "exporter_queue_corrupt_segments",
            "Durable queue segments found damaged at start; the rest of each was skipped",
            m.queue_corrupt.clone(),
        );
        registry.register(
            "exporter_queue_io_errors",
            "Failed file operations of a durable queue, by operation (write, sync, create, remove, read, dead_letter)",
            m.queue_io_errors.clone(),
        );
        registry.register(
            "exporter_queue_replayed_items",
            "Items a durable queue found at start, left by the previous run, and delivers again",
            m.queue_replayed.clone(),
        );
        registry.register(
            "exporter_queue_oldest_age_seconds",
            "Age of the oldest item a durable queue has not delivered yet",
            m.queue_oldest.clone(),
        );
        registry.register(
            "exporter_dropped_items",
            "Items a durable queue gave up on: the upstream refused them for good, or they were damaged",
            m.queue_dropped.clone(),
        );
        m
    }

    /// An exporter's queue grew (positive) or shrank (negative) by `batches` batches of `items` items and
    /// `bytes` bytes.
    pub fn changed(&self, exporter: &str, batches: i64, items: i64, bytes: i64) {
        let l = QueueLabels {
            exporter: exporter.to_string(),
        };
        self.queue_batches.get_or_create(&l).inc_by(batches);
        self.queue_items.get_or_create(&l).inc_by(items);
        self.queue_bytes.get_or_create(&l).inc_by(bytes);
    }

    /// An exporter stopped sending `items` items because their client stopped waiting.
    pub fn abandoned(&self, signal: Signal, exporter: &str, items: usize) {
        self.queue_abandoned
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(items as u64);
    }

    /// A file operation `op` of `exporter`'s durable queue failed.
    pub fn io_error(&self, exporter: &str, op: &'static str) {
        self.queue_io_errors
            .get_or_create(&QueueIoLabels {
                exporter: exporter.to_string(),
                op,
            })
            .inc();
    }

    /// A segment of `exporter`'s durable queue was found damaged at start.
    pub fn corrupt_segment(&self, exporter: &str) {
        self.queue_corrupt
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .inc();
    }

    /// A durable queue found `items` items left by the previous run.
    pub fn replayed(&self, exporter: &str, items: usize) {
        self.queue_replayed
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .inc_by(items as u64);
    }

    /// The oldest undelivered item of a durable queue is `age` old.
    pub fn oldest(&self, exporter: &str, age: Duration) {
        self.queue_oldest
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .set(age.as_secs_f64());
    }

    /// A durable queue gave up on `items` items.
    pub fn dropped(&self, signal: Signal, exporter: &str, items: usize) {
        self.queue_dropped
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(items as u64);
    }
}
