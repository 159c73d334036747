//! The counters and gauges filters keep themselves (host imports `counter-add` and `gauge-set`),
//! one series per signal, filter and name.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::FilterNamedLabels;
use crate::Signal;

/// The series filters keep themselves, per signal, filter and name.
#[derive(Debug)]
pub struct GuestMetrics {
    filter_counters: Family<FilterNamedLabels, Counter>,
    filter_gauges: Family<FilterNamedLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl GuestMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            filter_counters: Family::default(),
            filter_gauges: Family::default(),
        };
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
        m
    }

    /// A filter's own counter.
    pub fn counter(&self, signal: Signal, filter: &str, name: &str, delta: u64) {
        self.filter_counters
            .get_or_create(&FilterNamedLabels {
                signal: signal.as_str(),
                filter: filter.to_string(),
                name: name.chars().take(128).collect(),
            })
            .inc_by(delta);
    }

    /// A filter's own gauge.
    pub fn gauge(&self, signal: Signal, filter: &str, name: &str, value: f64) {
        self.filter_gauges
            .get_or_create(&FilterNamedLabels {
                signal: signal.as_str(),
                filter: filter.to_string(),
                name: name.chars().take(128).collect(),
            })
            .set(value);
    }
}
