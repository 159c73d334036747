//! The memory guard: with `limits.max_memory_bytes`, weir refuses new requests (503 / UNAVAILABLE with a
//! retry hint, reason `memory_limit`) before its resident memory passes 90% of the limit, and while it is
//! above that, until it is back under 80%. The gap keeps weir from flapping at the edge; the last 10% is
//! headroom for estimates that fall short.
//!
//! Two measures, because one alone is not enough:
//! - **Resident memory**, read from `/proc/self/status` (`VmRSS`) every 50 ms by a background task (also
//!   the gauge `weir_memory_rss_bytes`). It sees everything, but late: a burst of requests admitted
//!   between two samples would all pass a check against the last sample.
//! - **A charge per request in flight**, estimated from its body size ([`cost`]) at admission and raised
//!   once the body is read and inflated, given back when the request is answered. A request is admitted
//!   only if `max(resident + charged since that sample, idle + charges) + its own charge` stays under
//!   the high mark, where `idle` is the resident memory last seen with nothing in flight. Taking the
//!   larger of the two means memory that is both measured and charged is counted once, and a burst is
//!   counted before it allocates, whether the last sample was taken idle or under load.
//!
//! Under a limit taken from the container's cgroup ([`crate::cgroup`]), the sample is the larger of the
//! resident memory and the cgroup's working set.
//!
//! When refusing, weir also asks the allocator to return free memory to the OS (`malloc_trim` on glibc):
//! freed request buffers otherwise stay resident, and weir would go on refusing with nothing in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use weir_core::telemetry::Metrics;

pub use weir_wire::intake::cost;

/// Decides whether memory allows a new request.
#[derive(Debug)]
pub struct MemoryGuard {
    high: u64,
    low: u64,
    rss: AtomicU64,
    /// Resident memory at the last sample taken with no charge in flight.
    idle: AtomicU64,
    /// The charges of the requests in flight.
    charged: AtomicU64,
    /// `charged` when resident memory was last sampled: what was charged since is not resident yet.
    charged_at_sample: AtomicU64,
    refusing: AtomicBool,
    /// A charge was refused since the sampler last looked.
    pressed: AtomicBool,
}

/// One request's share of the memory budget, given back on drop. Shared (`&self`) so that a body
/// being read (on tonic's side) and the handler charge the same request.
#[derive(Debug)]
pub struct MemoryCharge {
    guard: Arc<MemoryGuard>,
    bytes: std::sync::Mutex<u64>,
}

impl MemoryCharge {
    /// Sets the charge to `bytes`. Lowering always succeeds; raising is `false`, with the charge
    /// unchanged, when the new total would take weir past its high mark.
    pub fn resize(&self, bytes: u64) -> bool {
        let g = &self.guard;
        let mut current = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(extra) = bytes.checked_sub(*current).filter(|e| *e > 0) else {
            g.charged.fetch_sub(*current - bytes, Ordering::AcqRel);
            *current = bytes;
            return true;
        };
        if !g.take(extra) {
            return false;
        }
        *current = bytes;
        true
    }

    /// Raises the charge by `extra` bytes (what was just read); `false`, unchanged, when it does not
    /// fit.
    pub fn add(&self, extra: u64) -> bool {
        let mut current = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if extra > 0 && !self.guard.take(extra) {
            return false;
        }
        *current += extra;
        true
    }

    /// The bytes charged now.
    pub fn bytes(&self) -> u64 {
        *self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a charge of `bytes` could ever fit, with nothing else in flight.
    pub fn could_ever_fit(&self, bytes: u64) -> bool {
        bytes <= self.guard.high
    }
}

/// What a request grows by while it is processed (a filter's host allocations, see
/// [`weir_core::MemoryBudget`]), charged beside its [`MemoryCharge`] and given back with it (when the
/// batch is done).
#[derive(Debug)]
pub struct Growth {
    guard: Arc<MemoryGuard>,
    bytes: AtomicU64,
}

impl Growth {
    /// No growth yet, charged to `guard`.
    pub fn new(guard: Arc<MemoryGuard>) -> Self {
        Self {
            guard,
            bytes: AtomicU64::new(0),
        }
    }
}

impl weir_core::MemoryBudget for Growth {
    fn grow(&self, bytes: u64) -> bool {
        if !self.guard.take(bytes) {
            return false;
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        true
    }
}

impl Drop for Growth {
    fn drop(&mut self) {
        self.guard
            .charged
            .fetch_sub(*self.bytes.get_mut(), Ordering::AcqRel);
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut().unwrap_or_else(|e| e.into_inner());
        self.guard.charged.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl MemoryGuard {
    /// A guard for `limit` bytes of resident memory.
    pub fn new(limit: u64) -> Self {
        Self {
            high: limit / 10 * 9,
            low: limit / 10 * 8,
            rss: AtomicU64::new(0),
            idle: AtomicU64::new(0),
            charged: AtomicU64::new(0),
            charged_at_sample: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            pressed: AtomicBool::new(false),
        }
    }

    /// Whether the sampler should ask the allocator to give free memory back: while refusing, after a
    /// refused charge, or when resident memory is above half the limit with nothing in flight (memory
    /// that is resident then is mostly free memory the allocator kept, and it shrinks the budget).
    fn should_trim(&self) -> bool {
        let pressed = self.pressed.swap(false, Ordering::Relaxed);
        pressed
            || self.over()
            || (self.charged.load(Ordering::Acquire) == 0
                && self.rss.load(Ordering::Relaxed) > self.high / 9 * 5)
    }

    /// Charges `extra` bytes when they fit under the high mark (see the module docs).
    fn take(&self, extra: u64) -> bool {
        let before = self.charged.fetch_add(extra, Ordering::AcqRel);
        let since_sample = before.saturating_sub(self.charged_at_sample.load(Ordering::Relaxed));
        let known = (self.rss.load(Ordering::Relaxed) + since_sample)
            .max(self.idle.load(Ordering::Relaxed) + before);
        if self.over() || known + extra > self.high {
            self.charged.fetch_sub(extra, Ordering::AcqRel);
            self.pressed.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A charge of `bytes` for a new request, or `None` when memory does not allow it.
    pub fn charge(self: &Arc<Self>, bytes: u64) -> Option<MemoryCharge> {
        let c = MemoryCharge {
            guard: self.clone(),
            bytes: std::sync::Mutex::new(0),
        };
        (!self.over() && c.resize(bytes)).then_some(c)
    }

    /// Records a measurement and updates the decision.
    pub fn observe(&self, rss: u64) {
        let charged = self.charged.load(Ordering::Acquire);
        self.rss.store(rss, Ordering::Relaxed);
        self.charged_at_sample.store(charged, Ordering::Relaxed);
        if charged == 0 {
            self.idle.store(rss, Ordering::Relaxed);
        }
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

    /// Samples resident memory every 50 ms for as long as the guard lives; under pressure, gives free
    /// memory back to the OS at most once a second.
    pub fn spawn_sampler(
        self: &Arc<Self>,
        metrics: Arc<Metrics>,
        cgroup: Option<crate::cgroup::Cgroup>,
    ) {
        let guard = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut trimmed: Option<Instant> = None;
            loop {
                let Some(g) = guard.upgrade() else { return };
                if let Some(rss) = rss_bytes() {
                    metrics.memory_rss(rss);
                    let working_set = cgroup.as_ref().and_then(|c| c.working_set());
                    if let Some(ws) = working_set {
                        metrics.memory_cgroup_working_set(ws);
                    }
                    g.observe(rss.max(working_set.unwrap_or(0)));
                }
                if trimmed.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) && g.should_trim()
                {
                    trimmed = Some(Instant::now());
                    // Walks the allocator's arenas: milliseconds, so off the runtime's threads.
                    let _ = tokio::task::spawn_blocking(release_free_memory).await;
                }
                drop(g);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}

/// Asks the allocator to return the free memory it holds to the OS (after a burst of allocation:
/// under memory pressure, and after compiling filters, whose compiler threads leave arenas behind).
#[allow(unsafe_code)] // The one unsafe call in weir: a libc function without a safe wrapper.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
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
    fn charges_count_a_burst_before_it_is_resident() {
        let g = Arc::new(MemoryGuard::new(1000));
        g.observe(300); // idle: nothing charged
        // high mark 900: 300 resident + 3 x 200 charged fits, a fourth does not.
        let charges: Vec<_> = (0..3).map(|_| g.charge(200).expect("fits")).collect();
        assert!(
            g.charge(200).is_none(),
            "the burst is counted before it allocates"
        );
        // Answered, but still resident: the sample counts it.
        drop(charges);
        g.observe(880);
        let small = g.charge(10).expect("880 + 10 fits under 900");
        assert!(g.charge(30).is_none(), "880 resident + 10 + 30 does not");
        drop(small);
        g.observe(400);
        let c = g
            .charge(100)
            .expect("room after the charges were given back");
        assert!(c.resize(400), "raised once the body is read");
        assert!(!c.resize(600), "past the mark");
        assert_eq!(c.bytes(), 400, "unchanged when refused");
        assert!(c.resize(50), "lowered");
        assert_eq!(g.charged.load(Ordering::Relaxed), 50);
        drop(c);
        assert_eq!(g.charged.load(Ordering::Relaxed), 0);
        // Sampled under load: 700 resident with 300 charged. A new charge adds to what was measured
        // (700 + 150 fits), and one charged after the sample is not resident yet (700 + 150 + 100 does not).
        let load = g.charge(300).expect("fits");
        g.observe(700);
        let a = g.charge(150).expect("700 + 150 fits under 900");
        assert!(g.charge(100).is_none(), "700 + 150 since the sample + 100");
        drop((load, a));
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
