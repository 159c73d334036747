//! A loaded filter: its `InstancePre`, a pool of initialized instances reused across calls (a filter
//! keeps state between batches), per-call limits (epoch deadline, memory cap), fault classification and
//! the host functions filters import.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};

use super::batch::{BadIndex, BatchState};
use super::bindings::weir::filter::{host, types};
use super::bindings::{Filter as FilterBindings, FilterPre};
use super::runtime::{EPOCH_TICK, Module, Runtime};
use super::{FilterError, FilterSpec, OnError};
use super::{QuarantineSender, Quarantined};
use weir_core::telemetry::Metrics;
use weir_core::{Fault, FaultClass, Payload, Signal};

/// The outcome of one filter call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// The filter refused the batch.
    Reject(String),
}

/// What a store holds: the resource table the batch is lent through, the memory cap, and who to blame.
pub struct StoreState {
    table: ResourceTable,
    wasi: wasmtime_wasi::WasiCtx,
    limits: MemoryCap,
    filter: Arc<str>,
    signal: Signal,
    metrics: Arc<Metrics>,
    bad_output: Option<String>,
    /// During the validation dry run the filter's own counters and gauges are not recorded.
    dry_run: bool,
    /// Valid route labels.
    exporters: Arc<[String]>,
}

/// Refuses memory growth past the filter's cap and remembers that it did.
struct MemoryCap {
    max: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct Instance {
    store: Store<StoreState>,
    bindings: FilterBindings,
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
}

/// Consecutive faults after which a filter is quarantined.
pub const QUARANTINE_AFTER: u32 = 5;

/// A filter ready to run.
pub struct LoadedFilter {
    /// Its configuration.
    pub spec: FilterSpec,
    /// Its module.
    pub module: Module,
    /// Counters.
    pub stats: FilterStats,
    pre: FilterPre<StoreState>,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    idle: Mutex<Vec<Instance>>,
    consecutive_faults: AtomicU32,
    quarantined: AtomicBool,
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
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let pre = runtime
            .linker()
            .instantiate_pre(&module.component)
            .and_then(FilterPre::new)
            .map_err(|e| FilterError::Link(format!("{e:#}")))?;
        let filter = Self {
            spec,
            module,
            stats: FilterStats::default(),
            pre,
            runtime,
            metrics,
            idle: Mutex::new(Vec::new()),
            consecutive_faults: AtomicU32::new(0),
            quarantined: AtomicBool::new(false),
            name,
            signal,
            quarantine,
        };
        let instance = filter.instantiate().map_err(|f| match f.class {
            FaultClass::Init => FilterError::Init(f.message),
            _ => FilterError::DryRun(f.to_string()),
        })?;
        filter.checkin(instance);
        let sample = SAMPLES
            .iter()
            .find(|(s, _)| *s == signal)
            .and_then(|(s, b)| Payload::decode_json(*s, b).ok())
            .ok_or_else(|| FilterError::DryRun("no sample batch".into()))?;
        let mut instance = filter
            .checkout()
            .map_err(|f| FilterError::DryRun(f.to_string()))?;
        let mut sample = BatchState::new(sample, http::HeaderMap::new(), None);
        sample.begin();
        // The dry run does not count in the filter's statistics or metrics.
        instance.store.data_mut().dry_run = true;
        let (_, result) = filter.run(&mut instance, sample);
        result.map_err(|fault| FilterError::DryRun(fault.to_string()))?;
        instance.store.data_mut().dry_run = false;
        filter.checkin(instance);
        Ok(Arc::new(filter))
    }

    /// Creates, initializes and pools one more instance (pre-warming; benchmarks time it).
    pub fn prewarm(&self) -> Result<(), Fault> {
        let instance = self.instantiate()?;
        self.checkin(instance);
        Ok(())
    }

    /// The filter's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// True once the filter failed [`QUARANTINE_AFTER`] times in a row.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed)
    }

    fn new_store(&self) -> Store<StoreState> {
        let mut store = Store::new(
            self.runtime.engine(),
            StoreState {
                table: ResourceTable::new(),
                wasi: super::wasi::context(self.name.clone()),
                limits: MemoryCap {
                    max: self.spec.limits.memory,
                    exceeded: false,
                },
                filter: self.name.clone(),
                signal: self.signal,
                metrics: self.metrics.clone(),
                bad_output: None,
                dry_run: false,
                exporters: self.runtime.exporters(),
            },
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store
    }

    fn ticks(&self) -> u64 {
        (self.spec.limits.deadline.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
    }

    fn instantiate(&self) -> Result<Instance, Fault> {
        let mut store = self.new_store();
        // `init` gets the same deadline as a batch.
        store.set_epoch_deadline(self.ticks());
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&store, e))?;
        match bindings.call_init(&mut store, &self.spec.config) {
            Ok(Ok(())) => Ok(Instance { store, bindings }),
            Ok(Err(reason)) => Err(Fault {
                class: FaultClass::Init,
                message: format!("init refused the config: {reason}"),
            }),
            Err(e) => Err(classify(&store, e)),
        }
    }

    fn checkout(&self) -> Result<Instance, Fault> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(i) => Ok(i),
            None => self.instantiate(),
        }
    }

    fn checkin(&self, instance: Instance) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(instance);
    }

    /// Runs the filter on `batch`. On a fault the batch comes back with the filter's partial changes
    /// undone, and the instance is discarded (its state may be corrupt).
    pub fn call(&self, mut batch: BatchState) -> (BatchState, Result<Verdict, Fault>) {
        let started = Instant::now();
        let items = batch.len();
        let (dropped_before, modified_before) = (batch.dropped_count(), batch.modified_count());
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .items_in
            .fetch_add(items as u64, Ordering::Relaxed);
        batch.begin();
        let (batch, result) = match self.checkout() {
            Err(fault) => (batch, Err(fault)),
            Ok(mut instance) => {
                let (batch, result) = self.run(&mut instance, batch);
                if result.is_ok() {
                    self.checkin(instance);
                }
                (batch, result)
            }
        };
        let mut batch = batch;
        let elapsed = started.elapsed();
        match &result {
            Ok(verdict) => {
                self.consecutive_faults.store(0, Ordering::Relaxed);
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
                self.metrics.filter_called(
                    self.signal,
                    &self.name,
                    items,
                    dropped,
                    modified,
                    elapsed,
                    None,
                );
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
                let n = self.consecutive_faults.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    filter = %self.name, sha256 = %self.module.sha256, class = %fault.class,
                    consecutive = n, error = %fault.message, policy = ?self.spec.on_error,
                    "filter failed"
                );
                if n >= QUARANTINE_AFTER && !self.quarantined.swap(true, Ordering::Relaxed) {
                    tracing::error!(filter = %self.name, sha256 = %self.module.sha256,
                        "filter quarantined after {n} consecutive failures");
                    self.metrics.filter_quarantined(self.signal, &self.name);
                    if let Some(tx) = &self.quarantine {
                        // The manager may be gone at shutdown; then there is nobody to roll back.
                        let _ = tx.send(Quarantined {
                            signal: self.signal,
                            name: self.spec.name.clone(),
                            sha256: self.module.sha256.clone(),
                        });
                    }
                }
            }
        }
        (batch, result)
    }

    fn run(
        &self,
        instance: &mut Instance,
        batch: BatchState,
    ) -> (BatchState, Result<Verdict, Fault>) {
        let signal = batch.signal();
        let store = &mut instance.store;
        store.set_epoch_deadline(self.ticks());
        store.data_mut().bad_output = None;
        store.data_mut().limits.exceeded = false;
        // Invariant: the table holds at most this one batch, so it is never full.
        let handle = store
            .data_mut()
            .table
            .push(batch)
            .expect("invariant: a store's resource table holds one batch at a time");
        let rep = handle.rep();
        let borrowed = Resource::<BatchState>::new_borrow(rep);
        let b = &instance.bindings;
        let r = match signal {
            Signal::Traces => b.call_process_traces(&mut *store, borrowed),
            Signal::Metrics => b.call_process_metrics(&mut *store, borrowed),
            Signal::Logs => b.call_process_logs(&mut *store, borrowed),
        };
        let result = match r {
            Ok(types::Verdict::Continue) => Ok(Verdict::Continue),
            Ok(types::Verdict::Reject(reason)) => Ok(Verdict::Reject(reason)),
            Err(e) => Err(classify(store, e)),
        };
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
        (FaultClass::Memory, _) => format!("memory cap of {} bytes exceeded", data.limits.max),
        (FaultClass::Deadline, _) => "deadline exceeded".to_string(),
        _ => format!("{e:#}"),
    };
    Fault { class, message }
}

impl StoreState {
    fn batch(&self, h: &Resource<BatchState>) -> wasmtime::Result<&BatchState> {
        Ok(self.table.get(h)?)
    }

    fn batch_mut(&mut self, h: &Resource<BatchState>) -> wasmtime::Result<&mut BatchState> {
        Ok(self.table.get_mut(h)?)
    }

    fn bad<T>(&mut self, r: Result<T, BadIndex>) -> wasmtime::Result<T> {
        r.map_err(|e| {
            self.bad_output = Some(e.to_string());
            wasmtime::Error::msg(e.to_string())
        })
    }
}

type H = Resource<BatchState>;
type WResult<T> = wasmtime::Result<T>;

/// Forwards a read-only accessor that can fail on a bad index.
macro_rules! read {
    ($self:ident, $h:ident, $method:ident ( $($arg:expr),* )) => {{
        let r = $self.batch(&$h)?.$method($($arg),*);
        $self.bad(r)
    }};
}

/// Forwards a mutator that can fail on a bad index.
macro_rules! write {
    ($self:ident, $h:ident, $method:ident ( $($arg:expr),* )) => {{
        let r = $self.batch_mut(&$h)?.$method($($arg),*);
        $self.bad(r)
    }};
}

impl wasmtime_wasi::WasiView for StoreState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

impl types::HostBatch for StoreState {
    fn signal(&mut self, h: H) -> WResult<types::Signal> {
        Ok(self.batch(&h)?.wit_signal())
    }
    fn header(&mut self, h: H, name: String) -> WResult<Option<String>> {
        Ok(self.batch(&h)?.header(&name))
    }
    fn peer(&mut self, h: H) -> WResult<Option<String>> {
        Ok(self.batch(&h)?.peer())
    }
    fn resource_count(&mut self, h: H) -> WResult<u32> {
        Ok(self.batch(&h)?.resource_count() as u32)
    }
    fn resource_attributes(&mut self, h: H, res: u32) -> WResult<Vec<types::Attribute>> {
        write!(self, h, resource_attributes(res))
    }
    fn resource_attribute(&mut self, h: H, res: u32, key: String) -> WResult<Option<types::Value>> {
        write!(self, h, resource_attribute(res, &key))
    }
    fn set_resource_attribute(
        &mut self,
        h: H,
        res: u32,
        key: String,
        value: types::Value,
    ) -> WResult<()> {
        write!(self, h, set_resource_attribute(res, &key, value))
    }
    fn remove_resource_attribute(&mut self, h: H, res: u32, key: String) -> WResult<bool> {
        write!(self, h, remove_resource_attribute(res, &key))
    }
    fn set_route(&mut self, h: H, res: u32, exporters: Vec<String>) -> WResult<()> {
        write!(self, h, set_route(res, exporters))
    }
    fn set_item_route(&mut self, h: H, item: u32, exporters: Vec<String>) -> WResult<()> {
        write!(self, h, set_item_route(item, exporters))
    }
    fn item_count(&mut self, h: H) -> WResult<u32> {
        Ok(self.batch(&h)?.len() as u32)
    }
    fn item_resource(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, item_resource(item))
    }
    fn scope_name(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, scope_name(item))
    }
    fn attributes(&mut self, h: H, item: u32) -> WResult<Vec<types::Attribute>> {
        read!(self, h, attributes(item))
    }
    fn attribute(&mut self, h: H, item: u32, key: String) -> WResult<Option<types::Value>> {
        read!(self, h, attribute(item, &key))
    }
    fn set_attribute(&mut self, h: H, item: u32, key: String, value: types::Value) -> WResult<()> {
        write!(self, h, set_attribute(item, &key, value))
    }
    fn remove_attribute(&mut self, h: H, item: u32, key: String) -> WResult<bool> {
        write!(self, h, remove_attribute(item, &key))
    }
    fn drop_item(&mut self, h: H, item: u32) -> WResult<()> {
        write!(self, h, drop_item(item))
    }
    fn is_dropped(&mut self, h: H, item: u32) -> WResult<bool> {
        read!(self, h, is_dropped(item))
    }
    fn trace_id(&mut self, h: H, item: u32) -> WResult<types::TraceId> {
        read!(self, h, trace_id(item))
    }
    fn trace_ids(&mut self, h: H) -> WResult<Vec<types::TraceId>> {
        Ok(self.batch(&h)?.trace_ids())
    }
    fn span_id(&mut self, h: H, item: u32) -> WResult<u64> {
        read!(self, h, span_id(item))
    }
    fn parent_span_id(&mut self, h: H, item: u32) -> WResult<u64> {
        read!(self, h, parent_span_id(item))
    }
    fn span_name(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, span_name(item))
    }
    fn set_span_name(&mut self, h: H, item: u32, name: String) -> WResult<()> {
        write!(self, h, set_span_name(item, name))
    }
    fn span_kind(&mut self, h: H, item: u32) -> WResult<u8> {
        read!(self, h, span_kind(item))
    }
    fn span_status(&mut self, h: H, item: u32) -> WResult<(types::StatusCode, String)> {
        read!(self, h, span_status(item))
    }
    fn span_times(&mut self, h: H, item: u32) -> WResult<(u64, u64)> {
        read!(self, h, span_times(item))
    }
    fn trace_state(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, trace_state(item))
    }
    fn set_trace_state(&mut self, h: H, item: u32, value: String) -> WResult<()> {
        write!(self, h, set_trace_state(item, value))
    }
    fn event_count(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, event_count(item))
    }
    fn event_name(&mut self, h: H, item: u32, event: u32) -> WResult<String> {
        read!(self, h, event_name(item, event))
    }
    fn event_attributes(&mut self, h: H, item: u32, event: u32) -> WResult<Vec<types::Attribute>> {
        read!(self, h, event_attributes(item, event))
    }
    fn set_event_attribute(
        &mut self,
        h: H,
        item: u32,
        event: u32,
        key: String,
        value: types::Value,
    ) -> WResult<()> {
        write!(self, h, set_sub_attribute(item, false, event, &key, value))
    }
    fn remove_event_attribute(
        &mut self,
        h: H,
        item: u32,
        event: u32,
        key: String,
    ) -> WResult<bool> {
        write!(self, h, remove_sub_attribute(item, false, event, &key))
    }
    fn link_count(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, link_count(item))
    }
    fn link_attributes(&mut self, h: H, item: u32, link: u32) -> WResult<Vec<types::Attribute>> {
        read!(self, h, link_attributes(item, link))
    }
    fn set_link_attribute(
        &mut self,
        h: H,
        item: u32,
        link: u32,
        key: String,
        value: types::Value,
    ) -> WResult<()> {
        write!(self, h, set_sub_attribute(item, true, link, &key, value))
    }
    fn remove_link_attribute(&mut self, h: H, item: u32, link: u32, key: String) -> WResult<bool> {
        write!(self, h, remove_sub_attribute(item, true, link, &key))
    }
    fn severity(&mut self, h: H, item: u32) -> WResult<(u8, String)> {
        read!(self, h, severity(item))
    }
    fn body(&mut self, h: H, item: u32) -> WResult<Option<types::Value>> {
        read!(self, h, body(item))
    }
    fn set_body(&mut self, h: H, item: u32, value: types::Value) -> WResult<()> {
        write!(self, h, set_body(item, value))
    }
    fn log_time(&mut self, h: H, item: u32) -> WResult<u64> {
        read!(self, h, log_time(item))
    }
    fn metric_name(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, metric_name(item))
    }
    fn metric_kind(&mut self, h: H, item: u32) -> WResult<types::MetricKind> {
        read!(self, h, metric_kind(item))
    }
    fn point_count(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, point_count(item))
    }
    fn point_value(&mut self, h: H, item: u32, point: u32) -> WResult<Option<f64>> {
        read!(self, h, point_value(item, point))
    }
    fn drop(&mut self, _h: H) -> WResult<()> {
        // Batches are only ever lent (borrowed); weir takes them back itself after the call.
        Ok(())
    }
}

impl host::Host for StoreState {
    fn log(&mut self, level: host::Level, message: String) -> WResult<()> {
        let message: String = message.chars().take(4096).collect();
        let f = &*self.filter;
        match level {
            host::Level::Trace => tracing::trace!(filter = f, "{message}"),
            host::Level::Debug => tracing::debug!(filter = f, "{message}"),
            host::Level::Info => tracing::info!(filter = f, "{message}"),
            host::Level::Warn => tracing::warn!(filter = f, "{message}"),
            host::Level::Error => tracing::error!(filter = f, "{message}"),
        }
        Ok(())
    }
    fn counter_add(&mut self, name: String, delta: u64) -> WResult<()> {
        if self.dry_run {
            return Ok(());
        }
        self.metrics
            .filter_counter(self.signal, &self.filter, &name, delta);
        Ok(())
    }
    fn gauge_set(&mut self, name: String, value: f64) -> WResult<()> {
        if self.dry_run {
            return Ok(());
        }
        self.metrics
            .filter_gauge(self.signal, &self.filter, &name, value);
        Ok(())
    }
    fn monotonic_now(&mut self) -> WResult<u64> {
        Ok(process_monotonic())
    }
    fn wall_now(&mut self) -> WResult<u64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64))
    }
    fn random_u64(&mut self) -> WResult<u64> {
        Ok(random_u64())
    }
    fn exporters(&mut self) -> WResult<Vec<String>> {
        Ok(self.exporters.to_vec())
    }
}

/// Nanoseconds since the first call in this process: one clock for every instance.
fn process_monotonic() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// 64 random bits from SipHash keyed by the OS (std's `RandomState`), over a counter.
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    STATE
        .get_or_init(Default::default)
        .hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}
