//! weir's memory as the memory limit sees it: resident memory, the limit in force, and the cgroup's
//! working set when the limit is the cgroup's.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The memory gauges: resident memory, the limit in force, the cgroup's working set.
#[derive(Debug)]
pub struct MemoryMetrics {
    memory_rss: Gauge,
    memory_limit: Gauge,
    memory_cgroup_working_set: Gauge,
}

impl MemoryMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            memory_rss: Gauge::default(),
            memory_limit: Gauge::default(),
            memory_cgroup_working_set: Gauge::default(),
        };
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
        m
    }

    /// weir's resident memory was measured.
    pub fn rss(&self, bytes: u64) {
        self.memory_rss
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The memory limit in force.
    pub fn limit(&self, bytes: u64) {
        self.memory_limit
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The cgroup's working set.
    pub fn cgroup_working_set(&self, bytes: u64) {
        self.memory_cgroup_working_set
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
