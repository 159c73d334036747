//! The filter control plane's metrics: recorded versions that no longer load at start, chains
//! swapped in, and the compiled modules held in memory and those collected.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{FilterLabels, filter_labels};
use crate::Signal;

/// What the filter control plane does: restores that fail, swaps, modules held and collected.
#[derive(Debug)]
pub struct FilterControlMetrics {
    filter_restore_failures: Family<FilterLabels, Counter>,
    filter_swaps: Family<FilterLabels, Counter>,
    filter_modules: Gauge,
    filter_modules_collected: Counter,
}

impl FilterControlMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            filter_restore_failures: Family::default(),
            filter_swaps: Family::default(),
            filter_modules: Gauge::default(),
            filter_modules_collected: Counter::default(),
        };
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
        m
    }

    /// A recorded version of `filter` did not load at start and was skipped.
    pub fn restore_failed(&self, signal: Signal, filter: &str) {
        self.filter_restore_failures
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// A chain containing `filter` was swapped in.
    pub fn swapped(&self, signal: Signal, filter: &str) {
        self.filter_swaps
            .get_or_create(&filter_labels(signal, filter))
            .inc();
    }

    /// `held` compiled modules are in memory after `collected` unreferenced ones were deleted.
    pub fn modules(&self, held: usize, collected: usize) {
        self.filter_modules.set(held as i64);
        self.filter_modules_collected.inc_by(collected as u64);
    }
}
