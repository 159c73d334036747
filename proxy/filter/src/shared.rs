//! State shared by every instance of one filter (`host.shared-add`, `host.shared-rate`): instances of a
//! filter run concurrently, each with its own memory, so a filter that must hold a target for the whole
//! of weir (an adaptive sampler's rate) needs one place they all see.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// The most names one filter may use, counters and rates together: guest-chosen names must not grow
/// the host without bound.
pub const MAX_SHARED_NAMES: usize = 64;

/// Width of one bucket of a rate.
const BUCKET_MS: u64 = 100;
/// The longest window a rate keeps.
const MAX_WINDOW_MS: u64 = 60_000;

/// A filter used too many names.
#[derive(Debug, thiserror::Error)]
#[error("a filter may use at most {MAX_SHARED_NAMES} shared counters and rates (name `{0}`)")]
pub struct TooManyNames(String);

#[derive(Debug, Default)]
struct Rate {
    /// (bucket number, events in it), oldest first.
    buckets: VecDeque<(u64, u64)>,
    /// Bucket number of the first event ever recorded.
    first: Option<u64>,
}

/// Counters and rates of one filter version.
#[derive(Debug)]
pub struct Shared {
    started: Instant,
    counters: Mutex<HashMap<String, i64>>,
    rates: Mutex<HashMap<String, Rate>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            counters: Mutex::default(),
            rates: Mutex::default(),
        }
    }
}

impl Shared {
    fn names(&self) -> usize {
        let c = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let r = self.rates.lock().unwrap_or_else(|p| p.into_inner()).len();
        c + r
    }

    /// Adds to a counter and returns its new value.
    pub fn add(&self, name: &str, delta: i64) -> Result<i64, TooManyNames> {
        let known = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name);
        if !known && self.names() >= MAX_SHARED_NAMES {
            return Err(TooManyNames(name.to_string()));
        }
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let v = counters.entry(name.to_string()).or_default();
        *v = v.saturating_add(delta);
        Ok(*v)
    }

    /// Records `events` now and returns the rate per second over the last `window_ms`.
    pub fn rate(&self, name: &str, events: u64, window_ms: u32) -> Result<f64, TooManyNames> {
        self.rate_at(
            name,
            events,
            window_ms,
            self.started.elapsed().as_millis() as u64,
        )
    }

    fn rate_at(
        &self,
        name: &str,
        events: u64,
        window_ms: u32,
        now_ms: u64,
    ) -> Result<f64, TooManyNames> {
        let window = u64::from(window_ms).clamp(BUCKET_MS, MAX_WINDOW_MS);
        let known = self
            .rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name);
        if !known && self.names() >= MAX_SHARED_NAMES {
            return Err(TooManyNames(name.to_string()));
        }
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let r = rates.entry(name.to_string()).or_default();
        let bucket = now_ms / BUCKET_MS;
        let first = *r.first.get_or_insert(bucket);
        match r.buckets.back_mut() {
            // Guest-supplied counts saturate: a filter must not be able to panic the host.
            Some((b, n)) if *b == bucket => *n = n.saturating_add(events),
            _ => r.buckets.push_back((bucket, events)),
        }
        let oldest_kept = bucket.saturating_sub(MAX_WINDOW_MS / BUCKET_MS);
        while r.buckets.front().is_some_and(|(b, _)| *b < oldest_kept) {
            r.buckets.pop_front();
        }
        // The window starts at a bucket boundary `window` before now and ends now, in the middle
        // of the current bucket; before a full window has passed since the first event, it starts
        // at the first event's bucket.
        let width = (window / BUCKET_MS).max(1);
        let from = (bucket + 1).saturating_sub(width).max(first);
        let sum: u64 = r
            .buckets
            .iter()
            .rev()
            .take_while(|(b, _)| *b >= from)
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
        let span_ms = now_ms.saturating_sub(from * BUCKET_MS).max(1) as f64;
        Ok(sum as f64 * 1000.0 / span_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_across_callers() {
        let s = Shared::default();
        assert_eq!(s.add("a", 5).unwrap(), 5);
        assert_eq!(s.add("a", -2).unwrap(), 3);
        assert_eq!(s.add("b", 1).unwrap(), 1);
    }

    #[test]
    fn rates_cover_the_window_and_forget_the_rest() {
        let s = Shared::default();
        // 10 events every 10 ms for 2 s: 1000 per second, whatever the phase within a bucket.
        let mut rates = Vec::new();
        for ms in (0..2000).step_by(10) {
            let r = s.rate_at("in", 10, 1000, ms + 5).unwrap();
            if ms >= 1000 {
                rates.push(r);
            }
        }
        for r in rates {
            assert!((r / 1000.0 - 1.0).abs() < 0.02, "{r}");
        }
        // Early on the rate is over the time since the first event's bucket, not the whole window.
        let t = Shared::default();
        assert_eq!(t.rate_at("in", 50, 1000, 50).unwrap(), 1000.0);
        // After a silence longer than the window, only the new events count.
        let r = s.rate_at("in", 10, 1000, 10_050).unwrap();
        assert!((r - 10.0 * 1000.0 / 950.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn names_are_bounded() {
        let s = Shared::default();
        for i in 0..MAX_SHARED_NAMES {
            s.add(&format!("n{i}"), 1).unwrap();
        }
        assert!(s.add("one-more", 1).is_err());
        assert!(s.rate("one-more", 1, 1000).is_err());
        assert!(s.add("n0", 1).is_ok(), "known names still work");
    }

    #[test]
    fn guest_event_counts_saturate_instead_of_overflowing() {
        let s = Shared::default();
        // Twice u64::MAX into one bucket: the bucket saturates, no panic.
        s.rate_at("big", u64::MAX, 1000, 50).unwrap();
        let r = s.rate_at("big", u64::MAX, 1000, 60).unwrap();
        assert_eq!(r, u64::MAX as f64 * 1000.0 / 60.0);
        // u64::MAX in two buckets of one window: the sum saturates too.
        let r = s.rate_at("big", u64::MAX, 1000, 150).unwrap();
        assert_eq!(r, u64::MAX as f64 * 1000.0 / 150.0);
    }
}
