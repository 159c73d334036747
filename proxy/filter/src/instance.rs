//! A loaded filter: its `InstancePre`, a pool of initialized instances reused across calls (a filter
//! keeps state between batches), per-call limits (epoch deadline, memory cap), fault classification and
//! the host functions filters import.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::batch::BatchState;
use super::bindings::{v0_1, v0_2};
use super::host::{CpuBudget, MemoryCap, StoreState};
use super::runtime::{Module, Runtime};
use super::shared::Shared;
use super::{FilterError, FilterSpec, OnError};
use super::{QuarantineSender, Quarantined};
use weir_core::telemetry::{FilterMetrics, Metrics};
use weir_core::{Fault, FaultClass, Payload, Signal};

/// The outcome of one filter call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// The filter refused the batch.
    Reject(String),
}

/// The `weir:filter` 0.2 version a component was built against (`0.2.0` or `0.2.1`), read from the
/// name of the `types` interface it imports: both link to the same bindings.
fn exported_version(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> &'static str {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if let Some(version) = name.strip_prefix("weir:filter/types@") {
            return match version {
                "0.2.0" => "0.2.0",
                _ => "0.2.1",
            };
        }
    }
    "0.2.1"
}

/// A component's exports, by the interface version it was built against.
enum Bindings {
    V01(v0_1::Filter),
    V02(v0_2::Filter),
}

/// A linked component, ready to instantiate, by interface version.
enum Pre {
    V01(v0_1::FilterPre<StoreState>),
    V02(v0_2::FilterPre<StoreState>),
}

struct Instance {
    store: Store<StoreState>,
    bindings: Bindings,
}

/// Counters of one filter version, shown by the admin API.
#[derive(Debug, Default)]
pub struct FilterStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls that faulted.
    pub errors: AtomicU64,
    /// Items seen.
    pub items_in: AtomicU64,
    /// Items dropped by the filter.
    pub items_dropped: AtomicU64,
    /// Items changed by the filter.
    pub items_modified: AtomicU64,
    /// Batches the filter rejected.
    pub rejected: AtomicU64,
    /// Calls refused because every instance stayed busy (back-pressure, not faults).
    pub busy: AtomicU64,
}

/// Why a call did not return a verdict.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The filter failed; its `on_error` policy applies.
    #[error("{0}")]
    Fault(Fault),
    /// Every instance stayed busy for the whole wait: the request is refused retryably, whatever the
    /// policy (passing a batch around a redactor because it is busy would leak what it redacts).
    #[error("all {concurrency} instances are busy")]
    Busy {
        /// The filter's instance bound.
        concurrency: usize,
    },
    /// The call failed because weir is at its memory limit (the request's memory charge was
    /// refused): load, not the filter's fault. Refused retryably whatever the policy, never counted
    /// toward quarantine.
    #[error("{0}")]
    Overloaded(String),
}

/// A filter's instances: the idle ones, how many are alive, and a way to sleep until one comes back.
///
/// Checkout and checkin are lock-free (a bounded queue of idle instances and an atomic count of live
/// ones), so calls on many threads do not contend on one lock. The mutex and condition variable are used
/// only by a call that finds every instance busy and sleeps: it registers as a waiter under the mutex and
/// looks again before sleeping, and a checkin that sees a waiter takes the mutex before notifying, so a
/// wakeup cannot fall between the look and the sleep.
struct Pool<T = Instance> {
    idle: ArrayQueue<T>,
    live: AtomicUsize,
    capacity: usize,
    waiters: AtomicUsize,
    sleep: Mutex<()>,
    freed: Condvar,
}

/// What a checkout got: an idle instance, or the right to create one.
enum Slot<T = Instance> {
    Idle(T),
    New,
}

impl<T> Pool<T> {
    fn new(capacity: usize) -> Self {
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
    fn reserve(&self) -> bool {
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
    fn checkout(&self, wait: std::time::Duration) -> Option<Slot<T>> {
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

    fn checkin(&self, instance: T) {
        // At most `capacity` are alive, so the queue has room; if it ever had not, the instance goes.
        if self.idle.push(instance).is_err() {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
        self.wake();
    }

    /// An instance is gone (it faulted, or could not be made): room for a new one.
    fn discard(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            drop(self.sleep.lock().unwrap_or_else(|p| p.into_inner()));
            self.freed.notify_one();
        }
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// `init` may use this many times a call's deadline (it compiles what the filter needs).
pub const INIT_DEADLINE_FACTOR: u32 = 10;
/// ... and at least this much CPU time.
pub const MIN_INIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// A quarantined filter's wait before it is tried again (`limits.quarantine_retry`) doubles with each
/// failed retry, up to this.
pub const QUARANTINE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// Where [`LoadedFilter::id`]s come from.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Consecutive faults after which a filter is quarantined.
pub const QUARANTINE_AFTER: u32 = 5;
/// The calls a filter's fault rate is taken over ...
pub const FAULT_WINDOW: u32 = 20;
/// ... and the faults among them that quarantine it (half: a filter that fails every other call,
/// which a fresh instance after each trap makes look healthy half the time, is broken).
pub const FAULT_WINDOW_QUARANTINE: u32 = 10;

/// The outcomes of a filter's last [`FAULT_WINDOW`] calls, one bit each (1: a fault), lock-free.
#[derive(Debug, Default)]
struct FaultWindow {
    /// Newest outcome in the lowest bit.
    bits: AtomicU64,
    /// Calls recorded, up to the window.
    calls: AtomicU32,
}

impl FaultWindow {
    fn clear(&self) {
        self.bits.store(0, Ordering::Relaxed);
        self.calls.store(0, Ordering::Relaxed);
    }

    /// Records one call; returns the faults among the last [`FAULT_WINDOW`] calls and how many calls
    /// that window holds.
    fn record(&self, fault: bool) -> (u32, u32) {
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

/// At most one log line a second for a filter's faults, with a count of those not logged.
#[derive(Debug, Default)]
struct LogLimit {
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&self, epoch: Instant) -> Option<u64> {
        let now = epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now < last + 1000 {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.last_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// A filter ready to run.
pub struct LoadedFilter {
    /// Its configuration.
    pub spec: FilterSpec,
    /// Its module.
    pub module: Module,
    /// Counters.
    pub stats: FilterStats,
    pre: Pre,
    /// The interface version the module was built against, e.g. `0.2.0`.
    pub interface: &'static str,
    shared: Arc<Shared>,
    allowance: Arc<crate::allowance::Allowance>,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    pool: Pool,
    /// Its call metrics, labels resolved once.
    call_metrics: FilterMetrics,
    consecutive_faults: AtomicU32,
    window: FaultWindow,
    fault_log: LogLimit,
    loaded_at: Instant,
    quarantined: AtomicBool,
    /// While quarantined: when (ms after `loaded_at`) calls are let through again to try the filter.
    retry_at_ms: AtomicU64,
    /// Quarantines since the filter last succeeded: the retry backoff doubles with each.
    quarantines: AtomicU32,
    id: u64,
    name: Arc<str>,
    signal: Signal,
    quarantine: Option<QuarantineSender>,
}

impl std::fmt::Debug for LoadedFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedFilter")
            .field("name", &self.spec.name)
            .field("sha256", &self.module.sha256)
            .finish_non_exhaustive()
    }
}

/// Sample batches every filter must accept before it is activated (the OTLP specification's examples).
const SAMPLES: [(Signal, &[u8]); 3] = [
    (
        Signal::Traces,
        include_bytes!("../../../tests/data/otlp-examples/trace.json"),
    ),
    (
        Signal::Metrics,
        include_bytes!("../../../tests/data/otlp-examples/metrics.json"),
    ),
    (
        Signal::Logs,
        include_bytes!("../../../tests/data/otlp-examples/logs.json"),
    ),
];

impl LoadedFilter {
    /// Prepares `module` with `spec`: links it, creates one instance, runs `init` with the config, and a
    /// dry run on a sample batch of the signal the filter will see. Any failure refuses the filter.
    pub fn load(
        runtime: Arc<Runtime>,
        spec: FilterSpec,
        module: Module,
        signal: Signal,
        metrics: Arc<Metrics>,
        quarantine: Option<QuarantineSender>,
    ) -> Result<Arc<Self>, FilterError> {
        spec.limits.validate().map_err(FilterError::Limits)?;
        let max = runtime.sizing().memory;
        if spec.limits.memory > max {
            return Err(FilterError::Limits(format!(
                "memory {} bytes is above the engine's instance size of {max} bytes \
                 (filter_runtime.max_memory)",
                spec.limits.memory
            )));
        }
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let linked = runtime
            .linker()
            .instantiate_pre(&module.component)
            .map_err(|e| FilterError::Link(format!("{e:#}")))?;
        // The exports say which version a component implements: try the newest first.
        let (pre, interface) = match v0_2::FilterPre::new(linked.clone()) {
            Ok(p) => (
                Pre::V02(p),
                exported_version(runtime.engine(), &module.component),
            ),
            Err(e2) => match v0_1::FilterPre::new(linked) {
                Ok(p) => (Pre::V01(p), "0.1.0"),
                Err(_) => return Err(FilterError::Link(format!("{e2:#}"))),
            },
        };
        let call_metrics = metrics.filter_metrics(signal, &name);
        let pool = Pool::new(spec.limits.concurrency);
        let filter = Self {
            spec,
            module,
            stats: FilterStats::default(),
            pre,
            interface,
            shared: Arc::new(Shared::default()),
            allowance: Arc::default(),
            runtime,
            metrics,
            pool,
            call_metrics,
            consecutive_faults: AtomicU32::new(0),
            window: FaultWindow::default(),
            fault_log: LogLimit::default(),
            loaded_at: Instant::now(),
            quarantined: AtomicBool::new(false),
            retry_at_ms: AtomicU64::new(0),
            quarantines: AtomicU32::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name,
            signal,
            quarantine,
        };
        let instance = filter.instantiate().map_err(|e| match e {
            CallError::Fault(f) if f.class == FaultClass::Init => FilterError::Init(f.message),
            e => FilterError::DryRun(e.to_string()),
        })?;
        filter.pool.live.fetch_add(1, Ordering::SeqCst);
        filter.pool.checkin(instance);
        let sample = SAMPLES
            .iter()
            .find(|(s, _)| *s == signal)
            .and_then(|(s, b)| Payload::decode_json(*s, b).ok())
            .ok_or_else(|| FilterError::DryRun("no sample batch".into()))?;
        let mut instance = filter
            .checkout()
            .map_err(|e| FilterError::DryRun(e.to_string()))?;
        let mut sample = BatchState::new(sample, http::HeaderMap::new(), None);
        sample.begin();
        // The dry run does not count in the filter's statistics or metrics.
        instance.store.data_mut().dry_run = true;
        let (_, result) = filter.run(&mut instance, sample);
        result.map_err(|fault| FilterError::DryRun(fault.to_string()))?;
        instance.store.data_mut().dry_run = false;
        filter.pool.checkin(instance);
        Ok(Arc::new(filter))
    }

    /// Creates, initializes and pools one more instance, within the filter's `concurrency` (pre-warming;
    /// benchmarks time it). Returns false when the pool is already full.
    pub fn prewarm(&self) -> Result<bool, CallError> {
        if !self.pool.reserve() {
            return Ok(false);
        }
        match self.instantiate() {
            Ok(instance) => {
                self.pool.checkin(instance);
                Ok(true)
            }
            Err(f) => {
                self.pool.discard();
                Err(f)
            }
        }
    }

    /// Instances alive (idle or in a call).
    pub fn instances(&self) -> usize {
        self.pool.live()
    }

    /// The filter's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

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

    fn now_ms(&self) -> u64 {
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
    fn is_probe(start: (u64, u64)) -> bool {
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

    /// Unique in this process: tells two loads of the same module and config apart.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Gives a quarantined filter a fresh start (an operator made it active again): called again,
    /// its fault counts from zero.
    pub fn clear_quarantine(&self) {
        self.consecutive_faults.store(0, Ordering::Relaxed);
        self.window.clear();
        self.end_quarantine();
    }

    fn new_store(&self) -> Store<StoreState> {
        let mut store = Store::new(
            self.runtime.engine(),
            StoreState {
                table: ResourceTable::new(),
                wasi: super::wasi::context(super::wasi::Output {
                    filter: self.name.clone(),
                    signal: self.signal,
                    allowance: self.allowance.clone(),
                    metrics: self.metrics.clone(),
                }),
                limits: MemoryCap {
                    max: self.spec.limits.memory,
                    exceeded: false,
                    host_exceeded: None,
                },
                filter: self.name.clone(),
                signal: self.signal,
                metrics: self.metrics.clone(),
                bad_output: None,
                dry_run: false,
                exporters: self.runtime.exporters(),
                patterns: self.runtime.patterns(),
                pattern_sets: 0,
                shared: self.shared.clone(),
                budget: CpuBudget::default(),
                allowance: self.allowance.clone(),
                host_bytes: 0,
                uncharged: 0,
                memory: None,
                overloaded: None,
            },
        );
        store.limiter(|s| &mut s.limits);
        // Each epoch tick past the deadline asks the thread's CPU clock how much the call has used: a
        // call waiting for a core on a busy machine is not charged for the wait.
        store.epoch_deadline_callback(|mut ctx| {
            let budget = &mut ctx.data_mut().budget;
            let used = budget.used();
            if used >= budget.limit {
                budget.used_at_stop = Some(used);
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store
    }

    /// Starts the CPU-time budget of a call (or of `init`, which compiles what the filter needs and gets
    /// [`INIT_DEADLINE_FACTOR`] times the deadline, at least [`MIN_INIT_DEADLINE`]).
    /// A call's allowance grows with its batch: the larger of `deadline` and `deadline_per_item`
    /// times its `items`, so a large request is not a fault for being large.
    fn start_budget(&self, store: &mut Store<StoreState>, init: bool, items: usize) {
        let deadline = self.spec.limits.deadline;
        let limit = if init {
            (deadline * INIT_DEADLINE_FACTOR).max(MIN_INIT_DEADLINE)
        } else {
            deadline.max(
                self.spec
                    .limits
                    .deadline_per_item
                    .saturating_mul(u32::try_from(items).unwrap_or(u32::MAX)),
            )
        };
        store.data_mut().budget = CpuBudget {
            started: super::host::thread_cpu(),
            limit,
            used_at_stop: None,
        };
        // The first check comes after one tick; from then on, one per tick.
        store.set_epoch_deadline(1);
    }

    /// A new, initialized instance. The engine having no free slot for it is [`CallError::Busy`]
    /// (back-pressure); anything else is the filter's fault.
    fn instantiate(&self) -> Result<Instance, CallError> {
        let mut store = self.new_store();
        self.start_budget(&mut store, true, 0);
        let bindings = match &self.pre {
            Pre::V01(p) => p.instantiate(&mut store).map(Bindings::V01),
            Pre::V02(p) => p.instantiate(&mut store).map(Bindings::V02),
        }
        .map_err(|e| {
            if e.chain()
                .any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>())
            {
                CallError::Busy {
                    concurrency: self.spec.limits.concurrency,
                }
            } else {
                CallError::Fault(classify(&store, e))
            }
        })?;
        let init = match &bindings {
            Bindings::V01(b) => b.call_init(&mut store, &self.spec.config),
            Bindings::V02(b) => b.call_init(&mut store, &self.spec.config),
        };
        match init {
            Ok(Ok(())) => Ok(Instance { store, bindings }),
            Ok(Err(reason)) => Err(CallError::Fault(Fault {
                class: FaultClass::Init,
                message: format!("init refused the config: {reason}"),
            })),
            Err(e) => Err(CallError::Fault(classify(&store, e))),
        }
    }

    /// An idle instance, or a new one while fewer than `concurrency` are alive, or, when all are busy,
    /// the first to come back within `instance_wait`.
    fn checkout(&self) -> Result<Instance, CallError> {
        match self.pool.checkout(self.spec.limits.instance_wait) {
            Some(Slot::Idle(i)) => Ok(i),
            Some(Slot::New) => self.instantiate().inspect_err(|_| self.pool.discard()),
            None => Err(CallError::Busy {
                concurrency: self.spec.limits.concurrency,
            }),
        }
    }

    /// Runs the filter on `batch`. On a fault the batch comes back with the filter's partial changes
    /// undone, and the instance is discarded (its state may be corrupt).
    pub fn call(&self, mut batch: BatchState) -> (BatchState, Result<Verdict, CallError>) {
        let started = Instant::now();
        let start = (self.now_ms(), self.retry_at_ms.load(Ordering::Relaxed));
        let items = batch.len();
        let (dropped_before, modified_before) = (batch.dropped_count(), batch.modified_count());
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .items_in
            .fetch_add(items as u64, Ordering::Relaxed);
        batch.begin();
        let (batch, result) = match self.checkout() {
            Err(CallError::Busy { concurrency }) => {
                // Back-pressure, not the filter's fault: nothing is counted against it.
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                return (batch, Err(CallError::Busy { concurrency }));
            }
            Err(CallError::Fault(fault)) => (batch, Err(fault)),
            Err(e @ CallError::Overloaded(_)) => return (batch, Err(e)),
            Ok(mut instance) => {
                let (mut batch, result) = self.run(&mut instance, batch);
                if result.is_ok() {
                    self.pool.checkin(instance);
                } else {
                    drop(instance);
                    self.pool.discard();
                }
                match result {
                    Ok(v) => (batch, Ok(v)),
                    Err(CallError::Fault(f)) => (batch, Err(f)),
                    Err(e) => {
                        // weir's load, not the filter's fault: undone, counted as back-pressure,
                        // never toward quarantine.
                        batch.rollback();
                        self.stats.busy.fetch_add(1, Ordering::Relaxed);
                        return (batch, Err(e));
                    }
                }
            }
        };
        let mut batch = batch;
        let elapsed = started.elapsed();
        match &result {
            Ok(verdict) => {
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
                let dropped = batch.dropped_count() - dropped_before;
                let modified = batch.modified_count().saturating_sub(modified_before);
                self.stats
                    .items_dropped
                    .fetch_add(dropped as u64, Ordering::Relaxed);
                self.stats
                    .items_modified
                    .fetch_add(modified as u64, Ordering::Relaxed);
                if matches!(verdict, Verdict::Reject(_)) {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                }
                self.call_metrics.called(items, dropped, modified, elapsed);
            }
            Err(fault) => {
                batch.rollback();
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.metrics.filter_called(
                    self.signal,
                    &self.name,
                    items,
                    0,
                    0,
                    elapsed,
                    Some(fault.class.as_str()),
                );
                if self.fails_open() {
                    // The batch goes on unchanged: its items are out.
                    self.metrics
                        .filter_items_out(self.signal, &self.name, items);
                }
                let n = self.consecutive_faults.fetch_add(1, Ordering::Relaxed) + 1;
                let (faults, window) = self.window.record(true);
                // A filter failing on every call would log every call: one line a second at most.
                if let Some(suppressed) = self.fault_log.allow(self.loaded_at) {
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
                } else if (n >= QUARANTINE_AFTER || by_rate)
                    && !self.quarantined.load(Ordering::Relaxed)
                {
                    // Its retry is set before the quarantine shows, so that a concurrent fault
                    // never sees a quarantine without its wait.
                    let wait = self.next_wait();
                    self.retry_at_ms
                        .store(self.now_ms() + wait.as_millis() as u64, Ordering::Relaxed);
                    if self.quarantined.swap(true, Ordering::Relaxed) {
                        // Another call quarantined it meanwhile: its notice is sent.
                        return (batch, result.map_err(CallError::Fault));
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
        (batch, result.map_err(CallError::Fault))
    }

    fn run(
        &self,
        instance: &mut Instance,
        batch: BatchState,
    ) -> (BatchState, Result<Verdict, CallError>) {
        let signal = batch.signal();
        let items = batch.len();
        let store = &mut instance.store;
        self.start_budget(store, false, items);
        let data = store.data_mut();
        data.bad_output = None;
        data.overloaded = None;
        data.limits.exceeded = false;
        data.limits.host_exceeded = None;
        data.host_bytes = 0;
        data.uncharged = 0;
        data.memory = batch.memory().cloned();
        // Invariant: the table holds at most this one batch, so it is never full.
        let handle = store
            .data_mut()
            .table
            .push(batch)
            .expect("invariant: a store's resource table holds one batch at a time");
        let rep = handle.rep();
        let borrowed = Resource::<BatchState>::new_borrow(rep);
        let r = match &instance.bindings {
            Bindings::V01(b) => match signal {
                Signal::Traces => b.call_process_traces(&mut *store, borrowed),
                Signal::Metrics => b.call_process_metrics(&mut *store, borrowed),
                Signal::Logs => b.call_process_logs(&mut *store, borrowed),
                // Interface 0.1 has no profiles: its filters pass them by.
                Signal::Profiles => Ok(v0_1::weir::filter::types::Verdict::Continue),
            }
            .map(|v| match v {
                v0_1::weir::filter::types::Verdict::Continue => Verdict::Continue,
                v0_1::weir::filter::types::Verdict::Reject(r) => Verdict::Reject(r),
            }),
            Bindings::V02(b) => match signal {
                Signal::Traces => b.call_process_traces(&mut *store, borrowed),
                Signal::Metrics => b.call_process_metrics(&mut *store, borrowed),
                Signal::Logs => b.call_process_logs(&mut *store, borrowed),
                // Interface 0.2 has no profiles: its filters pass them by.
                Signal::Profiles => Ok(v0_2::weir::filter::types::Verdict::Continue),
            }
            .map(|v| match v {
                v0_2::weir::filter::types::Verdict::Continue => Verdict::Continue,
                v0_2::weir::filter::types::Verdict::Reject(r) => Verdict::Reject(r),
            }),
        };
        // The rest of what the call handed the host is charged too; refused at the very end, the
        // call's work stands (it is less than a charge chunk).
        let data = store.data_mut();
        if let Some(m) = data.memory.take() {
            let _ = m.grow(std::mem::take(&mut data.uncharged) as u64);
        }
        let result = r.map_err(|e| match store.data_mut().overloaded.take() {
            Some(why) => CallError::Overloaded(why),
            None => CallError::Fault(classify(store, e)),
        });
        // Invariant: the handle was pushed above and the guest can only borrow it, never drop it.
        let batch = store
            .data_mut()
            .table
            .delete(handle)
            .expect("invariant: the lent batch is still in the table after the call");
        (batch, result)
    }

    /// Applies the `on_error` policy; true when the batch may go on.
    pub fn fails_open(&self) -> bool {
        self.spec.on_error == OnError::FailOpen
    }
}

/// Sorts a wasmtime error into the fault classes the policy and the metrics use.
fn classify(store: &Store<StoreState>, e: wasmtime::Error) -> Fault {
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
    use crate::runtime::PoolSizing;
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
        let limit = LogLimit::default();
        let epoch = Instant::now();
        assert_eq!(limit.allow(epoch), Some(0));
        assert_eq!(limit.allow(epoch), None);
        assert_eq!(limit.allow(epoch), None);
        // A second later the next line reports the two it did not log.
        let earlier = epoch - std::time::Duration::from_secs(2);
        limit.last_ms.store(1, Ordering::Relaxed);
        assert_eq!(limit.allow(earlier), Some(2));
    }

    #[test]
    fn a_filter_built_against_0_2_0_links_to_the_0_2_1_host_and_says_so() {
        let runtime = Arc::new(Runtime::new(None).unwrap());
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/filters-v0.2.0/set_attribute.wasm"
        ))
        .unwrap();
        let module = runtime.compile(&bytes).unwrap();
        let spec = FilterSpec {
            name: "old".into(),
            config: r#"{"key": "k", "value": "v"}"#.into(),
            on_error: OnError::FailClosed,
            limits: Default::default(),
        };
        let metrics = Arc::new(Metrics::new());
        let filter =
            LoadedFilter::load(runtime, spec, module, Signal::Traces, metrics, None).unwrap();
        assert_eq!(filter.interface, "0.2.0");
    }

    #[test]
    fn an_engine_without_a_free_slot_is_back_pressure_not_a_fault() {
        let runtime = Arc::new(
            Runtime::with_sizing(
                None,
                PoolSizing {
                    instances: 1,
                    memory: 64 << 20,
                },
            )
            .unwrap(),
        );
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/filters-v0.1/noop.wasm"
        ))
        .unwrap();
        let module = runtime.compile(&bytes).unwrap();
        let spec = FilterSpec {
            name: "noop".into(),
            config: String::new(),
            on_error: OnError::FailClosed,
            limits: weir_core::config::FilterLimits {
                concurrency: 2,
                ..Default::default()
            },
        };
        let metrics = Arc::new(Metrics::new());
        let filter =
            LoadedFilter::load(runtime, spec, module, Signal::Traces, metrics, None).unwrap();
        // The filter may have two instances, but the engine has room for one, which it holds.
        let err = filter.prewarm().unwrap_err();
        assert!(matches!(err, CallError::Busy { concurrency: 2 }), "{err}");
        assert_eq!(filter.instances(), 1);
        assert_eq!(filter.stats.errors.load(Ordering::Relaxed), 0);
    }
}
