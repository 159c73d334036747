//! A filter's fault bookkeeping: its consecutive faults and the window of its last calls, which quarantine
//! it; the quarantine's retries and their backoff; the limit on its fault log lines; and what class a
//! fault is (`classify`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use wasmtime::{Store, Trap};

use super::LoadedFilter;
use crate::Quarantined;
use crate::host::StoreState;
use weir_core::{Fault, FaultClass};

/// A quarantined filter's wait before it is tried again (`limits.quarantine_retry`) doubles with each
/// failed retry, up to this.
pub const QUARANTINE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// Consecutive faults after which a filter is quarantined.
pub const QUARANTINE_AFTER: u32 = 5;
/// The calls a filter's fault rate is taken over ...
pub const FAULT_WINDOW: u32 = 20;
/// ... and the faults among them that quarantine it (half: a filter that fails every other call,
/// which a fresh instance after each trap makes look healthy half the time, is broken).
pub const FAULT_WINDOW_QUARANTINE: u32 = 10;

/// The outcomes of a filter's last [`FAULT_WINDOW`] calls, one bit each (1: a fault), lock-free.
#[derive(Debug, Default)]
pub(super) struct FaultWindow {
    /// Newest outcome in the lowest bit.
    bits: AtomicU64,
    /// Calls recorded, up to the window.
    calls: AtomicU32,
}

impl FaultWindow {
    pub(super) fn clear(&self) {
        self.bits.store(0, Ordering::Relaxed);
        self.calls.store(0, Ordering::Relaxed);
    }

    /// Records one call; returns the faults among the last [`FAULT_WINDOW`] calls and how many calls
    /// that window holds.
    pub(super) fn record(&self, fault: bool) -> (u32, u32) {
        let mask = (1u64 << FAULT_WINDOW) - 1;
        let before = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(((b << 1) | u64::from(fault)) & mask)
            })
            .unwrap_or(0);
        let bits = ((before << 1) | u64::from(fault)) & mask;
        let calls = self
            .calls
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some((c + 1).min(FAULT_WINDOW))
            })
            .map_or(FAULT_WINDOW, |c| (c + 1).min(FAULT_WINDOW));
        (bits.count_ones(), calls)
    }
}

/// Fault log lines one filter may cause per second; the rest are counted and the count reported on the
/// next line let through.
pub(super) const FAULT_LINES_PER_SECOND: u64 = 1;

impl LoadedFilter {
    /// True once the filter failed [`QUARANTINE_AFTER`] times in a row, or [`FAULT_WINDOW_QUARANTINE`]
    /// of its last [`FAULT_WINDOW`] calls.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// Whether calls skip the filter now: quarantined, and its retry not due yet. Once the retry is
    /// due, calls go through: the first success ends the quarantine, the first fault starts the next
    /// wait, twice as long (up to [`QUARANTINE_RETRY_MAX`]).
    pub fn skips_calls(&self) -> bool {
        self.is_quarantined() && self.now_ms() < self.retry_at_ms.load(Ordering::Relaxed)
    }

    /// While quarantined, how long until the filter is tried again (zero: calls go through now).
    pub fn retry_in(&self) -> Option<std::time::Duration> {
        self.is_quarantined().then(|| {
            std::time::Duration::from_millis(
                self.retry_at_ms
                    .load(Ordering::Relaxed)
                    .saturating_sub(self.now_ms()),
            )
        })
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.loaded_at.elapsed().as_millis() as u64
    }

    /// The wait before the next retry: `quarantine_retry`, doubled for each quarantine since the
    /// filter last succeeded, up to [`QUARANTINE_RETRY_MAX`].
    fn next_wait(&self) -> std::time::Duration {
        let k = self.quarantines.load(Ordering::Relaxed).min(16);
        let first = self.spec.limits.quarantine_retry;
        first
            .saturating_mul(2u32.pow(k))
            .min(QUARANTINE_RETRY_MAX.max(first))
    }

    /// Whether a call that began at `start` (ms, with the retry time then) is a retry of a
    /// quarantined filter: it began once the retry was due. A call that began before the quarantine
    /// says nothing about the filter now, and neither ends the quarantine nor moves its retry.
    pub(super) fn is_probe(start: (u64, u64)) -> bool {
        let (now, retry_at) = start;
        retry_at != 0 && now >= retry_at
    }

    /// Ends a quarantine (a retry succeeded, or an operator made the version active again).
    fn end_quarantine(&self) -> bool {
        // It starts afresh: the faults that quarantined it do not count toward the next one.
        self.window.clear();
        self.quarantines.store(0, Ordering::Relaxed);
        self.retry_at_ms.store(0, Ordering::Relaxed);
        let was = self.quarantined.swap(false, Ordering::Relaxed);
        if was {
            self.metrics
                .filter_quarantine_state(self.signal, &self.name, false);
        }
        was
    }

    /// Gives a quarantined filter a fresh start (an operator made it active again): called again,
    /// its fault counts from zero.
    pub fn clear_quarantine(&self) {
        self.consecutive_faults.store(0, Ordering::Relaxed);
        self.window.clear();
        self.end_quarantine();
    }

    /// Counts a call that succeeded; a retry of a quarantined filter that succeeds ends its quarantine.
    /// `start` is when the call began, with the retry time then (see [`LoadedFilter::is_probe`]).
    pub(super) fn record_success(&self, start: (u64, u64)) {
        self.consecutive_faults.store(0, Ordering::Relaxed);
        self.window.record(false);
        if Self::is_probe(start) && self.is_quarantined() && self.end_quarantine() {
            tracing::warn!(
                filter = %self.name, sha256 = %self.module.sha256,
                "quarantined filter tried again and succeeded: it is active again"
            );
        } else if !self.is_quarantined() {
            self.quarantines.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a call that faulted, logs it (one line a second at most), and quarantines the filter once
    /// it failed [`QUARANTINE_AFTER`] times in a row or [`FAULT_WINDOW_QUARANTINE`] of its last
    /// [`FAULT_WINDOW`] calls; a failed retry of a quarantined filter moves its next retry.
    pub(super) fn record_fault(&self, start: (u64, u64), fault: &Fault) {
        let n = self.consecutive_faults.fetch_add(1, Ordering::Relaxed) + 1;
        let (faults, window) = self.window.record(true);
        // A filter failing on every call would log every call: one line a second at most.
        if let Some(suppressed) = self.fault_log.allow() {
            tracing::warn!(
                filter = %self.name, sha256 = %self.module.sha256, class = %fault.class,
                consecutive = n, recent_faults = faults, recent_calls = window,
                suppressed, error = %fault.message, policy = ?self.spec.on_error,
                "filter failed"
            );
        }
        let by_rate = window >= FAULT_WINDOW && faults >= FAULT_WINDOW_QUARANTINE;
        if self.is_quarantined() {
            // A retry after a quarantine failed: the next one waits twice as long. Of
            // concurrent retries failing, one moves the wait.
            if Self::is_probe(start) {
                let wait = self.next_wait();
                let moved = self.retry_at_ms.compare_exchange(
                    start.1,
                    self.now_ms() + wait.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                if moved.is_ok() {
                    self.quarantines.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        filter = %self.name, sha256 = %self.module.sha256,
                        retry_in = ?wait, error = %fault.message,
                        "quarantined filter tried again and failed: still quarantined"
                    );
                }
            }
        } else if (n >= QUARANTINE_AFTER || by_rate) && !self.quarantined.load(Ordering::Relaxed) {
            // Its retry is set before the quarantine shows, so that a concurrent fault
            // never sees a quarantine without its wait.
            let wait = self.next_wait();
            self.retry_at_ms
                .store(self.now_ms() + wait.as_millis() as u64, Ordering::Relaxed);
            if self.quarantined.swap(true, Ordering::Relaxed) {
                // Another call quarantined it meanwhile: its notice is sent.
                return;
            }
            self.quarantines.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .filter_quarantine_state(self.signal, &self.name, true);
            tracing::error!(
                filter = %self.name, sha256 = %self.module.sha256, consecutive = n,
                recent_faults = faults, recent_calls = window, retry_in = ?wait,
                "filter quarantined: {n} consecutive failures, {faults} of its last {window} calls; \
                 rolled back to its previous version if it has one, else tried again after the wait"
            );
            self.metrics.filter_quarantined(self.signal, &self.name);
            if let Some(tx) = &self.quarantine {
                // The manager may be gone at shutdown; then there is nobody to roll back.
                let _ = tx.send(Quarantined {
                    signal: self.signal,
                    name: self.spec.name.clone(),
                    sha256: self.module.sha256.clone(),
                    id: self.id,
                });
            }
        }
    }
}

/// Sorts a wasmtime error into the fault classes the policy and the metrics use.
pub(super) fn classify(store: &Store<StoreState>, e: wasmtime::Error) -> Fault {
    let data = store.data();
    let class = if data.limits.exceeded {
        FaultClass::Memory
    } else if data.bad_output.is_some() {
        FaultClass::BadOutput
    } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        FaultClass::Deadline
    } else {
        FaultClass::Trap
    };
    let message = match (&class, &data.bad_output) {
        (FaultClass::BadOutput, Some(m)) => m.clone(),
        (FaultClass::Memory, _) => match &data.limits.host_exceeded {
            Some(why) => why.clone(),
            None => format!("memory cap of {} bytes exceeded", data.limits.max),
        },
        (FaultClass::Deadline, _) => match data.budget.used_at_stop {
            Some(used) => format!(
                "deadline exceeded: stopped after {:.1} ms of CPU time (limit {:.1} ms)",
                used.as_secs_f64() * 1e3,
                data.budget.limit.as_secs_f64() * 1e3
            ),
            None => "deadline exceeded".to_string(),
        },
        _ => format!("{e:#}"),
    };
    Fault { class, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowance::LineLimit;

    #[test]
    fn the_fault_window_counts_the_last_twenty_calls() {
        let w = FaultWindow::default();
        let mut last = (0, 0);
        for i in 0..40 {
            last = w.record(i % 2 == 1);
        }
        assert_eq!(
            last,
            (10, FAULT_WINDOW),
            "every other call: half of the window"
        );
        for _ in 0..FAULT_WINDOW {
            last = w.record(false);
        }
        assert_eq!(last, (0, FAULT_WINDOW), "old faults leave the window");
        assert_eq!(FaultWindow::default().record(true), (1, 1));
    }

    #[test]
    fn fault_lines_are_limited_to_one_a_second_with_a_count_of_the_rest() {
        let limit = LineLimit::new(FAULT_LINES_PER_SECOND);
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        // A second later the next line reports the two it did not log.
        limit.start_next_second();
        assert_eq!(limit.allow(), Some(2));
    }
}
