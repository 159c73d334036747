//! Prometheus metrics (`prometheus-client`), one family per fact, labelled by signal, transport and
//! exporter. Names follow `weir_<thing>_<unit>_total`.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Signal;

mod labels;

use labels::*;
pub use labels::{RefuseReason, Transport};

fn filter_histogram() -> Histogram {
    // 1 µs .. ~0.5 s.
    Histogram::new(exponential_buckets(0.000_001, 2.0, 20))
}

fn latency_histogram() -> Histogram {
    // 250 µs .. ~65 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

/// All of weir's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    received_items: Family<ReceiverLabels, Counter>,
    received_requests: Family<ReceiverLabels, Counter>,
    refused_requests: Family<RefusedLabels, Counter>,
    refused_items: Family<RefusedLabels, Counter>,
    request_duration: Family<ReceiverLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<TransportLabels, Gauge>,
    connections_open: Family<ListenerLabels, Gauge>,
    connections_accepted: Family<ListenerLabels, Counter>,
    connections_rejected: Family<ListenerLabels, Counter>,
    tls_handshake_failures: Family<ListenerLabels, Counter>,
    tls_reloads: Family<TlsReloadLabels, Counter>,
    exported_items: Family<ExporterLabels, Counter>,
    export_failed_items: Family<ExportFailedLabels, Counter>,
    upstream_rejected_items: Family<ExporterLabels, Counter>,
    export_retries: Family<ExporterLabels, Counter>,
    export_duration: Family<ExporterLabels, Histogram, fn() -> Histogram>,
    export_coalesced: Family<ExporterLabels, Counter>,
    export_encoded_bytes: Family<QueueLabels, Counter>,
    export_sent_bytes: Family<QueueLabels, Counter>,
    refused_delivered: Family<ExporterLabels, Counter>,
    queue_batches: Family<QueueLabels, Gauge>,
    queue_items: Family<QueueLabels, Gauge>,
    queue_bytes: Family<QueueLabels, Gauge>,
    queue_abandoned: Family<ExporterLabels, Counter>,
    queue_corrupt: Family<QueueLabels, Counter>,
    queue_io_errors: Family<QueueIoLabels, Counter>,
    queue_replayed: Family<QueueLabels, Counter>,
    queue_oldest: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_dropped: Family<ExporterLabels, Counter>,
    memory_rss: Gauge,
    memory_limit: Gauge,
    memory_cgroup_working_set: Gauge,
    route_unknown: Family<ExporterLabels, Counter>,
    /// The unknown exporter names `route_unknown` has a series for (bounded: guests choose them).
    route_unknown_names: std::sync::Mutex<std::collections::HashSet<String>>,
    filter_series_refused: Family<FilterLabels, Counter>,
    filter_log_suppressed: Family<FilterLabels, Counter>,
    filter_calls: Family<FilterLabels, Counter>,
    filter_errors: Family<FilterErrorLabels, Counter>,
    filter_items_in: Family<FilterLabels, Counter>,
    filter_items_out: Family<FilterLabels, Counter>,
    filter_items_dropped: Family<FilterLabels, Counter>,
    filter_items_modified: Family<FilterLabels, Counter>,
    filter_duration: Family<FilterLabels, Histogram, fn() -> Histogram>,
    filter_quarantines: Family<FilterLabels, Counter>,
    filter_quarantined: Family<FilterLabels, Gauge>,
    filter_rollbacks: Family<FilterLabels, Counter>,
    filter_restore_failures: Family<FilterLabels, Counter>,
    dead_lettered: Family<ExporterLabels, Counter>,
    exporter_held: Family<QueueLabels, Gauge>,
    upstream_down: Family<QueueLabels, Gauge>,
    filter_swaps: Family<FilterLabels, Counter>,
    filter_modules: Gauge,
    filter_modules_collected: Counter,
    filter_counters: Family<FilterNamedLabels, Counter>,
    filter_gauges: Family<FilterNamedLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weir");
        let m = Self {
            received_items: Family::default(),
            received_requests: Family::default(),
            refused_requests: Family::default(),
            refused_items: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            connections_open: Family::default(),
            connections_accepted: Family::default(),
            connections_rejected: Family::default(),
            tls_handshake_failures: Family::default(),
            tls_reloads: Family::default(),
            exported_items: Family::default(),
            export_failed_items: Family::default(),
            upstream_rejected_items: Family::default(),
            export_retries: Family::default(),
            export_duration: Family::new_with_constructor(latency_histogram),
            export_coalesced: Family::default(),
            export_encoded_bytes: Family::default(),
            export_sent_bytes: Family::default(),
            refused_delivered: Family::default(),
            queue_batches: Family::default(),
            queue_items: Family::default(),
            queue_bytes: Family::default(),
            queue_abandoned: Family::default(),
            queue_corrupt: Family::default(),
            queue_io_errors: Family::default(),
            queue_replayed: Family::default(),
            queue_oldest: Family::default(),
            queue_dropped: Family::default(),
            memory_rss: Gauge::default(),
            memory_limit: Gauge::default(),
            memory_cgroup_working_set: Gauge::default(),
            route_unknown: Family::default(),
            route_unknown_names: Default::default(),
            filter_series_refused: Family::default(),
            filter_log_suppressed: Family::default(),
            filter_calls: Family::default(),
            filter_errors: Family::default(),
            filter_items_in: Family::default(),
            filter_items_out: Family::default(),
            filter_items_dropped: Family::default(),
            filter_items_modified: Family::default(),
            filter_duration: Family::new_with_constructor(filter_histogram),
            filter_quarantines: Family::default(),
            filter_quarantined: Family::default(),
            filter_rollbacks: Family::default(),
            filter_restore_failures: Family::default(),
            dead_lettered: Family::default(),
            exporter_held: Family::default(),
            upstream_down: Family::default(),
            filter_swaps: Family::default(),
            filter_modules: Gauge::default(),
            filter_modules_collected: Counter::default(),
            filter_counters: Family::default(),
            filter_gauges: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "received_items",
            "Items (spans, data points, log records) decoded from clients",
            m.received_items.clone(),
        );
        registry.register(
            "received_requests",
            "Export requests that arrived, decoded or not",
            m.received_requests.clone(),
        );
        registry.register(
            "refused_requests",
            "Requests not acknowledged, by reason",
            m.refused_requests.clone(),
        );
        registry.register(
            "refused_items",
            "Decoded items not acknowledged (the client was told to retry or that they are invalid)",
            m.refused_items.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request headers to response, per signal and transport",
            m.request_duration.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being processed",
            m.in_flight.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open, per listener",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted, per listener",
            m.connections_accepted.clone(),
        );
        registry.register(
            "connections_rejected",
            "Client connections closed at once because the listener had limits.connections.max_per_listener open",
            m.connections_rejected.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out (no certificate, an untrusted one, not TLS at all)",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "tls_reloads",
            "Certificate, key, CA bundle and token files re-read after they changed (result ok or error; on error the previous ones stay)",
            m.tls_reloads.clone(),
        );
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
        registry.register(
            "memory_rss_bytes",
            "weir's resident memory (sampled when limits.max_memory_bytes is set)",
            m.memory_rss.clone(),
        );
        registry.register(
            "memory_limit_bytes",
            "The memory limit in force: limits.max_memory_bytes, or the container's cgroup limit",
            m.memory_limit.clone(),
        );
        registry.register(
            "memory_cgroup_working_set_bytes",
            "The cgroup's memory use less inactive file pages (sampled when the limit is the cgroup's)",
            m.memory_cgroup_working_set.clone(),
        );
        registry.register(
            "route_unknown_items",
            "Items a filter labelled with an exporter name weir does not know (the label is ignored)",
            m.route_unknown.clone(),
        );
        registry.register(
            "filter_series_refused",
            "Counter or gauge updates a filter asked for past its allowance of series (100 names of up to 128 bytes)",
            m.filter_series_refused.clone(),
        );
        registry.register(
            "filter_log_lines_suppressed",
            "Log lines (host log, stdout, stderr) a filter wrote past its 20 a second; the next line let through says how many",
            m.filter_log_suppressed.clone(),
        );
        registry.register("filter_calls", "Filter calls", m.filter_calls.clone());
        registry.register(
            "filter_errors",
            "Filter calls that failed, by class: trap, deadline, memory, bad_output, init",
            m.filter_errors.clone(),
        );
        registry.register(
            "filter_items_in",
            "Items filters saw",
            m.filter_items_in.clone(),
        );
        registry.register(
            "filter_items_out",
            "Items filters let through",
            m.filter_items_out.clone(),
        );
        registry.register(
            "filter_items_dropped",
            "Items filters dropped",
            m.filter_items_dropped.clone(),
        );
        registry.register(
            "filter_items_modified",
            "Items filters changed",
            m.filter_items_modified.clone(),
        );
        registry.register(
            "filter_call_duration_seconds",
            "Time of one filter call",
            m.filter_duration.clone(),
        );
        registry.register(
            "filter_quarantines",
            "Filters quarantined after repeated failures",
            m.filter_quarantines.clone(),
        );
        registry.register(
            "filter_quarantined",
            "1 while a filter is quarantined (a quarantine with no earlier version to roll back to is retried with a backoff)",
            m.filter_quarantined.clone(),
        );
        registry.register(
            "filter_rollbacks",
            "Filter versions rolled back (by the admin API or after a quarantine)",
            m.filter_rollbacks.clone(),
        );
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
        registry.register(
            "filter_restore_failures",
            "Filter versions recorded in state_dir that no longer load at start (skipped; weir starts without them)",
            m.filter_restore_failures.clone(),
        );
        registry.register(
            "filter_swaps",
            "Filter chains swapped in",
            m.filter_swaps.clone(),
        );
        registry.register(
            "filter_modules",
            "Compiled filter modules held in memory (in use, kept for rollback, or recently uploaded)",
            m.filter_modules.clone(),
        );
        registry.register(
            "filter_modules_collected",
            "Uploaded modules no filter version referenced any more, deleted from memory and state_dir/modules",
            m.filter_modules_collected.clone(),
        );
        registry.register(
            "filter_counter",
            "Counters that filters keep (host import counter-add)",
            m.filter_counters.clone(),
        );
        registry.register(
            "filter_gauge",
            "Gauges that filters set (host import gauge-set)",
            m.filter_gauges.clone(),
        );
        Self { registry, ..m }
    }

    /// The registry, to render or to register more families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A request arrived.
    pub fn request_received(&self, signal: Signal, transport: Transport) {
        self.received_requests
            .get_or_create(&receiver_labels(signal, transport))
            .inc();
    }

    /// A request decoded into `items` items.
    pub fn items_received(&self, signal: Signal, transport: Transport, items: usize) {
        self.received_items
            .get_or_create(&receiver_labels(signal, transport))
            .inc_by(items as u64);
    }

    /// A request was refused; `items` is 0 when it was refused before decoding.
    pub fn request_refused(
        &self,
        signal: Signal,
        transport: Transport,
        reason: RefuseReason,
        items: usize,
    ) {
        let labels = RefusedLabels {
            signal: signal.as_str(),
            transport: transport.as_str(),
            reason: reason.as_str(),
        };
        self.refused_requests.get_or_create(&labels).inc();
        if items > 0 {
            self.refused_items
                .get_or_create(&labels)
                .inc_by(items as u64);
        }
    }

    /// A request finished after `elapsed`, whatever its outcome.
    pub fn request_finished(&self, signal: Signal, transport: Transport, elapsed: Duration) {
        self.request_duration
            .get_or_create(&receiver_labels(signal, transport))
            .observe(elapsed.as_secs_f64());
    }

    /// The in-flight gauge of `transport`; keep the guard while the request runs.
    pub fn in_flight(&self, transport: Transport) -> InFlightGuard {
        let gauge = self
            .in_flight
            .get_or_create(&TransportLabels {
                transport: transport.as_str(),
            })
            .clone();
        gauge.inc();
        InFlightGuard(gauge)
    }

    /// A connection was accepted on `listener`: counted, and open until the guard is dropped.
    pub fn connection_opened(&self, listener: &'static str) -> InFlightGuard {
        let labels = ListenerLabels { listener };
        self.connections_accepted.get_or_create(&labels).inc();
        let gauge = self.connections_open.get_or_create(&labels).clone();
        gauge.inc();
        InFlightGuard(gauge)
    }

    /// A TLS handshake on `listener` failed.
    pub fn tls_handshake_failed(&self, listener: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&ListenerLabels { listener })
            .inc();
    }

    /// The files behind `name` (a listener's TLS, an exporter's TLS, a token file) were re-read.
    pub fn tls_reloaded(&self, name: &str, ok: bool) {
        self.tls_reloads
            .get_or_create(&TlsReloadLabels {
                name: name.to_string(),
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// A connection on `listener` was closed at once: the listener was full.
    pub fn connection_rejected(&self, listener: &'static str) {
        self.connections_rejected
            .get_or_create(&ListenerLabels { listener })
            .inc();
    }

    /// An upstream accepted `items` items (after `rejected` partial-success drops) in `elapsed`.
    pub fn items_exported(
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
    pub fn export_failed(&self, signal: Signal, exporter: &str, items: usize, retryable: bool) {
        self.export_failed_items
            .get_or_create(&ExportFailedLabels {
                signal: signal.as_str(),
                exporter: exporter.to_string(),
                retryable: if retryable { "true" } else { "false" },
            })
            .inc_by(items as u64);
    }

    /// An exporter's queue grew (positive) or shrank (negative) by `batches` batches of `items` items and
    /// `bytes` bytes.
    pub fn queue_changed(&self, exporter: &str, batches: i64, items: i64, bytes: i64) {
        let l = QueueLabels {
            exporter: exporter.to_string(),
        };
        self.queue_batches.get_or_create(&l).inc_by(batches);
        self.queue_items.get_or_create(&l).inc_by(items);
        self.queue_bytes.get_or_create(&l).inc_by(bytes);
    }

    /// An exporter stopped sending `items` items because their client stopped waiting.
    pub fn export_abandoned(&self, signal: Signal, exporter: &str, items: usize) {
        self.queue_abandoned
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(items as u64);
    }

    /// A file operation `op` of `exporter`'s durable queue failed.
    pub fn queue_io_error(&self, exporter: &str, op: &'static str) {
        self.queue_io_errors
            .get_or_create(&QueueIoLabels {
                exporter: exporter.to_string(),
                op,
            })
            .inc();
    }

    /// A segment of `exporter`'s durable queue was found damaged at start.
    pub fn queue_corrupt_segment(&self, exporter: &str) {
        self.queue_corrupt
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .inc();
    }

    /// A durable queue found `items` items left by the previous run.
    pub fn queue_replayed(&self, exporter: &str, items: usize) {
        self.queue_replayed
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .inc_by(items as u64);
    }

    /// The oldest undelivered item of a durable queue is `age` old.
    pub fn queue_oldest(&self, exporter: &str, age: Duration) {
        self.queue_oldest
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .set(age.as_secs_f64());
    }

    /// The memory limit in force.
    pub fn memory_limit(&self, bytes: u64) {
        self.memory_limit
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The cgroup's working set.
    pub fn memory_cgroup_working_set(&self, bytes: u64) {
        self.memory_cgroup_working_set
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// weir's resident memory was measured.
    pub fn memory_rss(&self, bytes: u64) {
        self.memory_rss
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A durable queue gave up on `items` items.
    pub fn queue_dropped(&self, signal: Signal, exporter: &str, items: usize) {
        self.queue_dropped
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(items as u64);
    }

    /// `items` refused for good were kept in `exporter`'s dead-letter directory.
    pub fn dead_lettered(&self, signal: Signal, exporter: &str, items: usize) {
        self.dead_lettered
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(items as u64);
    }

    /// `exporter`'s durable queue holds (or no longer holds) delivery.
    pub fn exporter_held(&self, exporter: &str, held: bool) {
        self.exporter_held
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .set(i64::from(held));
    }

    /// `exporter`'s upstream is down (or up again).
    pub fn upstream_down(&self, exporter: &str, down: bool) {
        self.upstream_down
            .get_or_create(&QueueLabels {
                exporter: exporter.to_string(),
            })
            .set(i64::from(down));
    }

    /// A filter routed `items` items to `exporter`, which is not configured.
    /// Past [`MAX_UNKNOWN_ROUTE_NAMES`] distinct names (guests choose them), the rest are counted
    /// under `exporter="_other"`.
    pub fn route_unknown(&self, signal: Signal, exporter: &str, items: usize) {
        let label = {
            let mut names = self
                .route_unknown_names
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if names.contains(exporter)
                || (names.len() < MAX_UNKNOWN_ROUTE_NAMES && exporter.len() <= 128)
            {
                names.insert(exporter.to_string());
                exporter
            } else {
                "_other"
            }
        };
        self.route_unknown
            .get_or_create(&exporter_labels(signal, label))
            .inc_by(items as u64);
    }

    /// Filter `filter` asked for a counter or gauge past its allowance of series.
    pub fn filter_series_refused(&self, signal: Signal, filter: &str) {
        self.filter_series_refused
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// A log line of filter `filter` was suppressed (past its lines per second).
    pub fn filter_log_suppressed(&self, signal: Signal, filter: &str) {
        self.filter_log_suppressed
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// `n` client requests went upstream in the upstream request of an earlier one.
    pub fn export_coalesced(&self, signal: Signal, exporter: &str, n: usize) {
        self.export_coalesced
            .get_or_create(&exporter_labels(signal, exporter))
            .inc_by(n as u64);
    }

    /// An exporter prepared an upstream request of `encoded` protobuf bytes, `sent` on the wire.
    pub fn export_sent_bytes(&self, exporter: &str, encoded: usize, sent: usize) {
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

    /// An exporter retries an attempt.
    pub fn export_retried(&self, signal: Signal, exporter: &str) {
        self.export_retries
            .get_or_create(&exporter_labels(signal, exporter))
            .inc();
    }
}

impl Metrics {
    /// One filter's call metrics, with its label set built once: a call then only increments.
    pub fn filter_metrics(&self, signal: Signal, filter: &str) -> FilterMetrics {
        let l = filter_labels(signal, filter);
        FilterMetrics {
            calls: self.filter_calls.get_or_create(&l).clone(),
            duration: self.filter_duration.get_or_create(&l).clone(),
            items_in: self.filter_items_in.get_or_create(&l).clone(),
            items_out: self.filter_items_out.get_or_create(&l).clone(),
            dropped: self.filter_items_dropped.get_or_create(&l).clone(),
            modified: self.filter_items_modified.get_or_create(&l).clone(),
        }
    }

    /// A filter call finished; `fault` is the error class when it failed.
    #[allow(clippy::too_many_arguments)]
    pub fn filter_called(
        &self,
        signal: Signal,
        filter: &str,
        items: usize,
        dropped: usize,
        modified: usize,
        elapsed: Duration,
        fault: Option<&'static str>,
    ) {
        let l = filter_labels(signal, filter);
        self.filter_calls.get_or_create(&l).inc();
        self.filter_duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
        self.filter_items_in.get_or_create(&l).inc_by(items as u64);
        if let Some(class) = fault {
            self.filter_errors
                .get_or_create(&FilterErrorLabels {
                    signal: signal.as_str(),
                    filter: filter.to_string(),
                    class,
                })
                .inc();
            return;
        }
        self.filter_items_out
            .get_or_create(&l)
            .inc_by(items.saturating_sub(dropped) as u64);
        if dropped > 0 {
            self.filter_items_dropped
                .get_or_create(&l)
                .inc_by(dropped as u64);
        }
        if modified > 0 {
            self.filter_items_modified
                .get_or_create(&l)
                .inc_by(modified as u64);
        }
    }

    /// `items` went on unchanged past a filter that failed with `on_error: fail-open`.
    pub fn filter_items_out(&self, signal: Signal, filter: &str, items: usize) {
        self.filter_items_out
            .get_or_create(&filter_labels(signal, filter))
            .inc_by(items as u64);
    }

    /// A filter was quarantined.
    pub fn filter_quarantined(&self, signal: Signal, filter: &str) {
        self.filter_quarantines
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// A filter entered (`true`) or left quarantine.
    pub fn filter_quarantine_state(&self, signal: Signal, filter: &str, quarantined: bool) {
        self.filter_quarantined
            .get_or_create(&filter_labels(signal, filter))
            .set(i64::from(quarantined));
    }

    /// A filter was rolled back to its previous version.
    pub fn filter_rolled_back(&self, signal: Signal, filter: &str) {
        self.filter_rollbacks
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// `held` compiled modules are in memory after `collected` unreferenced ones were deleted.
    pub fn filter_modules(&self, held: usize, collected: usize) {
        self.filter_modules.set(held as i64);
        self.filter_modules_collected.inc_by(collected as u64);
    }

    /// A recorded version of `filter` did not load at start and was skipped.
    pub fn filter_restore_failed(&self, signal: Signal, filter: &str) {
        self.filter_restore_failures
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// A chain containing `filter` was swapped in.
    pub fn filter_swapped(&self, signal: Signal, filter: &str) {
        self.filter_swaps
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// A filter's own counter.
    pub fn filter_counter(&self, signal: Signal, filter: &str, name: &str, delta: u64) {
        self.filter_counters
            .get_or_create(&FilterNamedLabels {
                signal: signal.as_str(),
                filter: filter.to_string(),
                name: name.chars().take(128).collect(),
            })
            .inc_by(delta);
    }

    /// A filter's own gauge.
    pub fn filter_gauge(&self, signal: Signal, filter: &str, name: &str, value: f64) {
        self.filter_gauges
            .get_or_create(&FilterNamedLabels {
                signal: signal.as_str(),
                filter: filter.to_string(),
                name: name.chars().take(128).collect(),
            })
            .set(value);
    }
}

/// A filter's call metrics, looked up once when it is loaded ([`Metrics::filter_metrics`]).
#[derive(Debug, Clone)]
pub struct FilterMetrics {
    calls: Counter,
    duration: Histogram,
    items_in: Counter,
    items_out: Counter,
    dropped: Counter,
    modified: Counter,
}

impl FilterMetrics {
    /// A call that returned a verdict.
    pub fn called(&self, items: usize, dropped: usize, modified: usize, elapsed: Duration) {
        self.calls.inc();
        self.duration.observe(elapsed.as_secs_f64());
        self.items_in.inc_by(items as u64);
        self.items_out.inc_by(items.saturating_sub(dropped) as u64);
        if dropped > 0 {
            self.dropped.inc_by(dropped as u64);
        }
        if modified > 0 {
            self.modified.inc_by(modified as u64);
        }
    }
}

/// Distinct unknown exporter names [`Metrics::route_unknown`] keeps a series for.
pub const MAX_UNKNOWN_ROUTE_NAMES: usize = 32;

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlightGuard(Gauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests;
