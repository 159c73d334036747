//! A loaded filter: its `InstancePre`, a pool of initialized instances reused across calls (a filter
//! keeps state between batches), per-call limits (epoch deadline, memory cap) and fault classification.
//!
//! - `pool`: the instance pool;
//! - `faults`: the fault window, quarantine and its retries, and the limit on fault log lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{Store, UpdateDeadline};

use super::QuarantineSender;
use super::allowance::LineLimit;
use super::batch::BatchState;
use super::bindings::{v0_1, v0_2, v0_3};
use super::host::{CpuBudget, MemoryCap, StoreState};
use super::runtime::{Module, Runtime};
use super::shared::Shared;
use super::{FilterError, FilterSpec, OnError};
use faults::{FAULT_LINES_PER_SECOND, FaultWindow, classify};
pub use faults::{FAULT_WINDOW, FAULT_WINDOW_QUARANTINE, QUARANTINE_AFTER, QUARANTINE_RETRY_MAX};
use pool::{Pool, Slot};
use weir_core::telemetry::{FilterMetrics, Metrics};
use weir_core::{Fault, FaultClass, Payload, Signal};

mod faults;
mod pool;

/// The outcome of one filter call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// The filter refused the batch.
    Reject(String),
}

/// The `weir:filter` version of 0.2 or later a component was built against (`0.2.0`, `0.2.1`,
/// `0.3.0`, `0.3.1`), read from the name of the `types` interface it imports (0.2.0 and 0.2.1 link to the same
/// bindings, and so do 0.3.0 and 0.3.1).
fn exported_version(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> &'static str {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if let Some(version) = name.strip_prefix("weir:filter/types@") {
            return match version {
                "0.2.0" => "0.2.0",
                "0.3.0" => "0.3.0",
                "0.3.1" => "0.3.1",
                _ => "0.2.1",
            };
        }
    }
    "0.2.1"
}

fn v03_verdict(v: v0_3::weir::filter::types::Verdict) -> Verdict {
    match v {
        v0_3::weir::filter::types::Verdict::Continue => Verdict::Continue,
        v0_3::weir::filter::types::Verdict::Reject(r) => Verdict::Reject(r),
    }
}

/// A component's exports, by the interface version it was built against.
enum Bindings {
    V01(v0_1::Filter),
    V02(v0_2::Filter),
    /// 0.3, world `profiles-filter`: sees profiles.
    V03(v0_3::ProfilesFilter),
    /// 0.3, world `filter`: passes profiles by.
    V03NoProfiles(v0_3::without_profiles::Filter),
}

/// A linked component, ready to instantiate, by interface version.
enum Pre {
    V01(v0_1::FilterPre<StoreState>),
    V02(v0_2::FilterPre<StoreState>),
    V03(v0_3::ProfilesFilterPre<StoreState>),
    V03NoProfiles(v0_3::without_profiles::FilterPre<StoreState>),
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
    /// The largest linear memory any instance has had, in bytes: what one instance costs.
    pub instance_memory: Arc<AtomicU64>,
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

/// `init` may use this many times a call's deadline (it compiles what the filter needs).
pub const INIT_DEADLINE_FACTOR: u32 = 10;
/// ... and at least this much CPU time.
pub const MIN_INIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// Where [`LoadedFilter::id`]s come from.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
    /// At most [`FAULT_LINES_PER_SECOND`] fault log lines.
    fault_log: LineLimit,
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

/// Sample batches every filter must accept before it is activated (the OTLP specification's examples,
/// and weir's profiles example built from the specification's text).
const SAMPLES: [(Signal, &[u8]); Signal::ALL.len()] = [
    (
        Signal::Traces,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/otlp-examples/trace.json"
        )),
    ),
    (
        Signal::Metrics,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/otlp-examples/metrics.json"
        )),
    ),
    (
        Signal::Logs,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/otlp-examples/logs.json"
        )),
    ),
    (
        Signal::Profiles,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/otlp-examples/profiles.json"
        )),
    ),
];

impl LoadedFilter {
    /// Whether the component exports `process-profiles` (interface 0.3, world `profiles-filter`).
    fn sees_profiles(&self) -> bool {
        matches!(self.pre, Pre::V03(_))
    }

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
        let version = exported_version(runtime.engine(), &module.component);
        let (pre, interface) = if version.starts_with("0.3.") {
            match v0_3::ProfilesFilterPre::new(linked.clone()) {
                Ok(p) => (Pre::V03(p), version),
                Err(with_profiles) => match v0_3::without_profiles::FilterPre::new(linked) {
                    Ok(p) => (Pre::V03NoProfiles(p), version),
                    Err(_) => return Err(FilterError::Link(format!("{with_profiles:#}"))),
                },
            }
        } else {
            match v0_2::FilterPre::new(linked.clone()) {
                Ok(p) => (Pre::V02(p), version),
                Err(e2) => match v0_1::FilterPre::new(linked) {
                    Ok(p) => (Pre::V01(p), "0.1.0"),
                    Err(_) => return Err(FilterError::Link(format!("{e2:#}"))),
                },
            }
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
            fault_log: LineLimit::new(FAULT_LINES_PER_SECOND),
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

    /// Unique in this process: tells two loads of the same module and config apart.
    pub fn id(&self) -> u64 {
        self.id
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
                    largest: self.stats.instance_memory.clone(),
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
            Pre::V03(p) => p.instantiate(&mut store).map(Bindings::V03),
            Pre::V03NoProfiles(p) => p.instantiate(&mut store).map(Bindings::V03NoProfiles),
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
            Bindings::V03(b) => b.call_init(&mut store, &self.spec.config),
            Bindings::V03NoProfiles(b) => b.call_init(&mut store, &self.spec.config),
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
        if batch.signal() == Signal::Profiles && !self.sees_profiles() {
            // No `process-profiles` export (interface 0.1, 0.2, or 0.3's world `filter`): the
            // profiles pass by without an instance being taken, and nothing is counted.
            return (batch, Ok(Verdict::Continue));
        }
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
                self.record_success(start);
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
                self.record_fault(start, fault);
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
                // No `process-profiles`: `call` passes profiles by before an instance is taken.
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
                // No `process-profiles`: `call` passes profiles by before an instance is taken.
                Signal::Profiles => Ok(v0_2::weir::filter::types::Verdict::Continue),
            }
            .map(|v| match v {
                v0_2::weir::filter::types::Verdict::Continue => Verdict::Continue,
                v0_2::weir::filter::types::Verdict::Reject(r) => Verdict::Reject(r),
            }),
            Bindings::V03(b) => match signal {
                Signal::Traces => b.call_process_traces(&mut *store, borrowed),
                Signal::Metrics => b.call_process_metrics(&mut *store, borrowed),
                Signal::Logs => b.call_process_logs(&mut *store, borrowed),
                Signal::Profiles => b.call_process_profiles(&mut *store, borrowed),
            }
            .map(v03_verdict),
            Bindings::V03NoProfiles(b) => match signal {
                Signal::Traces => b.call_process_traces(&mut *store, borrowed),
                Signal::Metrics => b.call_process_metrics(&mut *store, borrowed),
                Signal::Logs => b.call_process_logs(&mut *store, borrowed),
                // No `process-profiles`: `call` passes profiles by before an instance is taken.
                Signal::Profiles => Ok(v0_3::weir::filter::types::Verdict::Continue),
            }
            .map(v03_verdict),
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

#[cfg(test)]
mod tests;
