//! What one filter may make the host keep on its behalf, so that a guest cannot exhaust the host: metric
//! series it names (`host.counter-add`, `host.gauge-set`), log lines (`host.log`, stdout and stderr), and
//! bytes a single call hands the host to hold (attribute values, names, routes; see
//! `host::StoreState::charge`).
//!
//! Every instance of a filter version shares one [`Allowance`]; a new version starts with a fresh one.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The most counter and gauge names one filter version may create: each is a metric series.
pub const MAX_SERIES: usize = 100;
/// The longest counter or gauge name, in bytes.
pub const MAX_SERIES_NAME: usize = 128;
/// Log lines (host log, stdout and stderr together) one filter may write per second; the rest are
/// counted and the count reported on the next line let through.
pub const LOG_LINES_PER_SECOND: u64 = 20;

/// One filter version's allowance (see the module docs).
#[derive(Debug)]
pub struct Allowance {
    series: Mutex<HashSet<String>>,
    lines: LineLimit,
}

impl Default for Allowance {
    fn default() -> Self {
        Self {
            series: Mutex::default(),
            lines: LineLimit::new(LOG_LINES_PER_SECOND),
        }
    }
}

impl Allowance {
    /// Whether the filter may record a series named `name`: one it created before, or a new one within
    /// [`MAX_SERIES`] and [`MAX_SERIES_NAME`].
    pub fn series(&self, name: &str) -> bool {
        if name.len() > MAX_SERIES_NAME {
            return false;
        }
        let mut seen = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(name) {
            return true;
        }
        if seen.len() >= MAX_SERIES {
            return false;
        }
        seen.insert(name.to_string());
        true
    }

    /// `Some(lines suppressed since the last one let through)` when the filter may log a line now.
    pub fn log_line(&self) -> Option<u64> {
        self.lines.allow()
    }
}

/// At most `per_second` events in each second, counting the rest (lock-free; at the edge of a second a
/// racing event may slip through or be counted, which is all a log limit needs).
#[derive(Debug)]
pub struct LineLimit {
    per_second: u64,
    epoch: Instant,
    /// The current second since `epoch` (high 32 bits) and the events let through in it (low 32).
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl LineLimit {
    /// A limit of `per_second` events a second.
    pub fn new(per_second: u64) -> Self {
        Self {
            per_second,
            epoch: Instant::now(),
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(events suppressed since the last one let through)`, or `None` (counted) past the limit.
    pub fn allow(&self) -> Option<u64> {
        let second = self.epoch.elapsed().as_secs() & 0xffff_ffff;
        let updated = self
            .window
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                let (s, n) = (w >> 32, w & 0xffff_ffff);
                if s != second {
                    Some(second << 32 | 1)
                } else if n < self.per_second {
                    Some(w + 1)
                } else {
                    None
                }
            });
        match updated {
            Ok(_) => Some(self.suppressed.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Makes the next event fall in a new second, as if a second had passed.
    #[cfg(test)]
    pub(crate) fn start_next_second(&self) {
        self.window.store(u64::MAX << 32, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_bounded_in_number_and_name_length() {
        let a = Allowance::default();
        for i in 0..MAX_SERIES {
            assert!(a.series(&format!("c{i}")));
        }
        assert!(!a.series("one-more"), "past the cap");
        assert!(a.series("c7"), "a series it has keeps working");
        assert!(!Allowance::default().series(&"x".repeat(MAX_SERIES_NAME + 1)));
    }

    #[test]
    fn lines_past_the_limit_are_counted_and_reported_on_the_next_one() {
        let l = LineLimit::new(3);
        let first: Vec<_> = (0..5).map(|_| l.allow()).collect();
        assert_eq!(first, [Some(0), Some(0), Some(0), None, None]);
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 2);
        // The next second: the count of what was suppressed comes with the first line.
        l.start_next_second();
        assert_eq!(l.allow(), Some(2));
        assert_eq!(l.allow(), Some(0));
    }
}
