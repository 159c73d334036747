//! A filter's instance pool: idle instances reused across calls, a bound on how many are alive, and a
//! wait for one when all are busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::Instance;

/// A filter's instances: the idle ones, how many are alive, and a way to sleep until one comes back.
///
/// Checkout and checkin are lock-free (a bounded queue of idle instances and an atomic count of live
/// ones), so calls on many threads do not contend on one lock. The mutex and condition variable are used
/// only by a call that finds every instance busy and sleeps: it registers as a waiter under the mutex and
/// looks again before sleeping, and a checkin that sees a waiter takes the mutex before notifying, so a
/// wakeup cannot fall between the look and the sleep.
pub(super) struct Pool<T = Instance> {
    idle: ArrayQueue<T>,
    pub(super) live: AtomicUsize,
    capacity: usize,
    waiters: AtomicUsize,
    sleep: Mutex<()>,
    freed: Condvar,
}

/// What a checkout got: an idle instance, or the right to create one.
pub(super) enum Slot<T = Instance> {
    Idle(T),
    New,
}

impl<T> Pool<T> {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            idle: ArrayQueue::new(capacity),
            live: AtomicUsize::new(0),
            capacity,
            waiters: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            freed: Condvar::new(),
        }
    }

    /// Counts one more live instance, unless `capacity` are alive.
    pub(super) fn reserve(&self) -> bool {
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn try_checkout(&self) -> Option<Slot<T>> {
        if let Some(i) = self.idle.pop() {
            return Some(Slot::Idle(i));
        }
        self.reserve().then_some(Slot::New)
    }

    /// An idle instance or a new slot, waiting up to `wait` for one when all are busy.
    pub(super) fn checkout(&self, wait: std::time::Duration) -> Option<Slot<T>> {
        if let Some(slot) = self.try_checkout() {
            return Some(slot);
        }
        let until = Instant::now() + wait;
        // Nothing the lock guards can be left half-done by a panic: it guards no data.
        let mut guard = self.sleep.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            if let Some(slot) = self.try_checkout() {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return Some(slot);
            }
            let now = Instant::now();
            if now >= until {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            guard = self
                .freed
                .wait_timeout(guard, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub(super) fn checkin(&self, instance: T) {
        // At most `capacity` are alive, so the queue has room; if it ever had not, the instance goes.
        if self.idle.push(instance).is_err() {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
        self.wake();
    }

    /// An instance is gone (it faulted, or could not be made): room for a new one.
    pub(super) fn discard(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            drop(self.sleep.lock().unwrap_or_else(|p| p.into_inner()));
            self.freed.notify_one();
        }
    }

    pub(super) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Many threads checking out and in: never more than `capacity` alive or held, no instance lost or
    /// handed to two threads at once, and every waiter woken (a lost wakeup would leave a thread asleep
    /// for the whole minute and fail it as busy).
    #[test]
    fn pool_bounds_instances_and_wakes_every_waiter() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 2_000;
        let pool = Arc::new(Pool::<usize>::new(2));
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (pool, held, peak, made) =
                    (pool.clone(), held.clone(), peak.clone(), made.clone());
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        let instance = match pool.checkout(Duration::from_secs(60)) {
                            Some(Slot::Idle(i)) => i,
                            Some(Slot::New) => made.fetch_add(1, Ordering::SeqCst),
                            None => panic!("a waiter was not woken"),
                        };
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        held.fetch_sub(1, Ordering::SeqCst);
                        // Now and then an instance faults and is discarded instead.
                        if round % 97 == 0 {
                            pool.discard();
                        } else {
                            pool.checkin(instance);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2, "more than 2 held at once");
        assert!(pool.live() <= 2);
        assert_eq!(pool.idle.len(), pool.live(), "every live instance is back");
        // Discarded ones were replaced: more than two were made, each counted once.
        assert!(made.load(Ordering::SeqCst) > 2);
    }

    #[test]
    fn pool_refuses_when_busy_for_the_whole_wait() {
        let pool = Pool::<u8>::new(1);
        assert!(matches!(pool.checkout(Duration::ZERO), Some(Slot::New)));
        assert!(pool.checkout(Duration::from_millis(1)).is_none());
        pool.checkin(7);
        assert!(matches!(pool.checkout(Duration::ZERO), Some(Slot::Idle(7))));
    }
}
