//! The memory guard: with `limits.max_memory_bytes`, weir refuses new requests (503 / UNAVAILABLE with a
//! retry hint, reason `memory_limit`) while its resident memory is above 90% of the limit, and admits
//! them again once it is back under 80%. The gap keeps weir from flapping at the edge, and refusing at 90%
//! leaves room for the requests already admitted, so the limit itself is not passed.
//!
//! Resident memory is read from `/proc/self/status` (`VmRSS`) every 100 ms by a background task; it is
//! also the gauge `weir_memory_rss_bytes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::telemetry::Metrics;

/// Decides whether memory allows a new request.
#[derive(Debug)]
pub struct MemoryGuard {
    high: u64,
    low: u64,
    rss: AtomicU64,
    refusing: AtomicBool,
}

impl MemoryGuard {
    /// A guard for `limit` bytes of resident memory.
    pub fn new(limit: u64) -> Self {
        Self {
            high: limit / 10 * 9,
            low: limit / 10 * 8,
            rss: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
        }
    }

    /// Records a measurement and updates the decision.
    pub fn observe(&self, rss: u64) {
        self.rss.store(rss, Ordering::Relaxed);
        if rss >= self.high {
            self.refusing.store(true, Ordering::Relaxed);
        } else if rss < self.low {
            self.refusing.store(false, Ordering::Relaxed);
        }
    }

    /// True while new requests must be refused.
    pub fn over(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// Samples resident memory every 100 ms for as long as the guard lives.
    pub fn spawn_sampler(self: &Arc<Self>, metrics: Arc<Metrics>) {
        let guard = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(g) = guard.upgrade() else { return };
                if let Some(rss) = rss_bytes() {
                    g.observe(rss);
                    metrics.memory_rss(rss);
                }
                drop(g);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

/// This process's resident memory, from `/proc/self/status`; `None` where there is no procfs.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vmrss(&status)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_above_ninety_percent_and_recovers_below_eighty() {
        let g = MemoryGuard::new(1000);
        g.observe(850);
        assert!(!g.over());
        g.observe(900);
        assert!(g.over(), "refuses from 90%");
        g.observe(850);
        assert!(g.over(), "still refusing between 80% and 90%");
        g.observe(799);
        assert!(!g.over(), "admits again below 80%");
    }

    #[test]
    fn reads_vmrss() {
        assert_eq!(
            parse_vmrss("Name:\tweir\nVmRSS:\t   2048 kB\nThreads: 4\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_vmrss("Name: x\n"), None);
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }
}
