//! Filters at run time: items a filter routed to an exporter weir does not have; what a filter
//! asked for past its allowances (series, log lines); its calls (items in, out, dropped and
//! changed, errors by class, time), recorded through [`FilterMetrics`], the handle a loaded filter
//! keeps; and its quarantines and the rollbacks that may follow them.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::labels::{
    ExporterLabels, FilterErrorLabels, FilterLabels, exporter_labels, filter_labels,
};
use crate::Signal;

/// What filters do while they run, per signal and filter.
#[derive(Debug)]
pub struct FilterRuntimeMetrics {
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
}

impl FilterRuntimeMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
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
        };
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
        m
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
    pub fn series_refused(&self, signal: Signal, filter: &str) {
        self.filter_series_refused
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// A log line of filter `filter` was suppressed (past its lines per second).
    pub fn log_suppressed(&self, signal: Signal, filter: &str) {
        self.filter_log_suppressed
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// One filter's call metrics, with its label set built once: a call then only increments.
    pub fn call_metrics(&self, signal: Signal, filter: &str) -> FilterMetrics {
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
    pub fn called(
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
    pub fn items_out(&self, signal: Signal, filter: &str, items: usize) {
        self.filter_items_out
            .get_or_create(&filter_labels(signal, filter))
            .inc_by(items as u64);
    }

    /// A filter was quarantined.
    pub fn quarantined(&self, signal: Signal, filter: &str) {
        self.filter_quarantines
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// A filter entered (`true`) or left quarantine.
    pub fn quarantine_state(&self, signal: Signal, filter: &str, quarantined: bool) {
        self.filter_quarantined
            .get_or_create(&filter_labels(signal, filter))
            .set(i64::from(quarantined));
    }

    /// A filter was rolled back to its previous version.
    pub fn rolled_back(&self, signal: Signal, filter: &str) {
        self.filter_rollbacks
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }
}

/// A filter's call metrics, looked up once when it is loaded
/// ([`FilterRuntimeMetrics::call_metrics`]).
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

/// Distinct unknown exporter names [`FilterRuntimeMetrics::route_unknown`] keeps a series for.
pub const MAX_UNKNOWN_ROUTE_NAMES: usize = 32;

fn filter_histogram() -> Histogram {
    // 1 µs .. ~0.5 s.
    Histogram::new(exponential_buckets(0.000_001, 2.0, 20))
}
