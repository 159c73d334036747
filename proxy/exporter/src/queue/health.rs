//! Upstream-down tracking: whether an exporter's upstream answers, from the outcomes of its
//! attempts, so that a memory queue can refuse its parts of new requests at once while it is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_core::telemetry::Metrics;

/// After its upstream has failed this long (every attempt since, retryably) ...
pub const DOWN_AFTER: Duration = Duration::from_secs(1);
/// ... and this many attempts in a row, a memory queue refuses its parts of new requests at once
/// instead of holding their clients until their deadlines. Both: a slow upstream that refuses now and
/// then is not down.
pub const DOWN_AFTER_FAILURES: u32 = 3;

/// Whether an exporter's upstream answers: down after an unbroken run of failed attempts at least
/// [`DOWN_AFTER_FAILURES`] long and [`DOWN_AFTER`] old, healthy again at the first success. A memory queue acknowledges only what its upstream
/// accepted, so while the upstream is down a request with a part for it cannot succeed: that part is
/// refused at once (retryable) so the client hears about its other parts, delivered to live upstreams
/// at their own pace, instead of waiting for its deadline (issue 20: a live upstream's data arrived
/// p50 41 s late during an outage of the other, the clients blocked on it). One batch at a time is
/// still taken to probe the upstream.
#[derive(Debug)]
pub struct Health {
    name: Arc<str>,
    epoch: Instant,
    /// Milliseconds after `epoch` (plus one) since when every attempt failed; 0 while healthy.
    failing_since: std::sync::atomic::AtomicU64,
    /// Failed attempts since the last success.
    failures: std::sync::atomic::AtomicU32,
    down: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
}

impl Health {
    pub(super) fn new(name: Arc<str>, metrics: Arc<Metrics>) -> Self {
        Self {
            name,
            epoch: Instant::now(),
            failing_since: std::sync::atomic::AtomicU64::new(0),
            failures: std::sync::atomic::AtomicU32::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
            metrics,
        }
    }

    /// An attempt failed retryably (the upstream is unreachable or unavailable).
    pub fn failed(&self) {
        self.failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let _ = self.failing_since.compare_exchange(
            0,
            now,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
        // The state (and its gauge) follows the attempts, not only the reservations.
        self.is_down();
    }

    /// The upstream accepted (or answered for good): it is up.
    pub fn ok(&self) {
        self.failures.store(0, std::sync::atomic::Ordering::Relaxed);
        self.failing_since
            .store(0, std::sync::atomic::Ordering::Relaxed);
        if self.down.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(exporter = %self.name, "upstream answers again: its parts are queued again");
            self.metrics.upstream_down(&self.name, false);
        }
    }

    /// Whether the upstream has been failing for [`DOWN_AFTER`].
    pub fn is_down(&self) -> bool {
        let since = self
            .failing_since
            .load(std::sync::atomic::Ordering::Relaxed);
        let down = since != 0
            && self.failures.load(std::sync::atomic::Ordering::Relaxed) >= DOWN_AFTER_FAILURES
            && self.epoch.elapsed().as_millis() as u64 + 1 >= since + DOWN_AFTER.as_millis() as u64;
        if down && !self.down.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                exporter = %self.name,
                "upstream down: its parts of new requests are refused at once, one batch probing it"
            );
            self.metrics.upstream_down(&self.name, true);
        }
        down
    }
}
