//! The host side of the filter interface: what a wasmtime store holds for one filter instance
//! ([`StoreState`]), the memory cap, and the imports filters call, for every released version of
//! `weir:filter` (`v0_1`, `v0_2`). Every version shares the [`BatchState`] it is lent and the host
//! functions below; the methods of its generated traits are written once, as macros over a version's
//! generated modules (`batch`), and each version's module invokes those its interface has.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};

use crate::allowance::Allowance;
use crate::batch::BatchState;
use crate::shared::Shared;
use weir_core::telemetry::Metrics;
use weir_core::{MemoryBudget, Signal};
use weir_kernels::PatternCache;

mod batch;
mod v0_1;
mod v0_2;
mod v0_3;

/// A batch lent to a guest, as the generated traits take it.
type H = Resource<BatchState>;
/// A guest's pattern set, as the generated traits take it.
type P = Resource<crate::kernels::PatternSetHandle>;
type WResult<T> = wasmtime::Result<T>;

/// What a store holds: the resource table the batch is lent through, the memory cap, and who to blame.
pub struct StoreState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: wasmtime_wasi::WasiCtx,
    pub(crate) limits: MemoryCap,
    pub(crate) filter: Arc<str>,
    pub(crate) signal: Signal,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) bad_output: Option<String>,
    /// During the validation dry run the filter's own counters and gauges are not recorded.
    pub(crate) dry_run: bool,
    /// Valid route labels.
    pub(crate) exporters: Arc<[String]>,
    /// Compiled pattern sets, shared by every filter of the runtime.
    pub(crate) patterns: Arc<PatternCache>,
    /// Pattern sets this instance holds (bounded by [`MAX_PATTERN_SETS`]).
    pub(crate) pattern_sets: usize,
    /// State shared by every instance of this filter.
    pub(crate) shared: Arc<Shared>,
    /// The CPU time the running call may use.
    pub(crate) budget: CpuBudget,
    /// Series, log lines: what this filter version may make the host keep.
    pub(crate) allowance: Arc<Allowance>,
    /// Bytes the running call handed the host to keep ([`StoreState::charge`]).
    pub(crate) host_bytes: usize,
    /// Of those, bytes not yet charged to the request's memory budget.
    pub(crate) uncharged: usize,
    /// The running call's request memory budget, with a memory limit.
    pub(crate) memory: Option<Arc<dyn MemoryBudget>>,
    /// Set when the running call failed because weir's memory limit refused its request's charge:
    /// weir's load, not the filter's fault (never counted toward quarantine).
    pub(crate) overloaded: Option<String>,
}

/// The size of what a guest hands the host to keep: its bytes, roughly (fixed-size parts count 8).
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for String {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weight for u32 {
    fn weight(&self) -> usize {
        4
    }
}

impl<T: Weight> Weight for Vec<T> {
    fn weight(&self) -> usize {
        self.iter().map(Weight::weight).sum::<usize>() + 8
    }
}

impl<A: Weight, B: Weight> Weight for (A, B) {
    fn weight(&self) -> usize {
        self.0.weight() + self.1.weight()
    }
}

/// [`Weight`] for a version's generated `value` variant (the same shape in every version).
macro_rules! value_weight {
    ($value:ty) => {
        impl Weight for $value {
            fn weight(&self) -> usize {
                match self {
                    Self::Str(s) | Self::Json(s) => s.len() + 8,
                    Self::Bytes(b) => b.len() + 8,
                    Self::Boolean(_) | Self::Int(_) | Self::Double(_) => 8,
                }
            }
        }
    };
}

/// How much of a call's host allocations is charged to the request's memory budget at a time: one
/// atomic operation per 64 KiB rather than per host call.
const CHARGE_CHUNK: usize = 64 << 10;

/// A call's CPU-time budget, checked on every epoch tick past the deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuBudget {
    /// The calling thread's CPU clock when the call began (a call runs on one thread throughout).
    pub(crate) started: std::time::Duration,
    /// How much it may use.
    pub(crate) limit: std::time::Duration,
    /// What it had used when it was stopped.
    pub(crate) used_at_stop: Option<std::time::Duration>,
}

/// Attributes as an interface version's type.
pub(crate) fn attributes<A: for<'a> From<&'a KeyValue>>(kvs: &[KeyValue]) -> Vec<A> {
    kvs.iter().map(A::from).collect()
}

/// A value as an interface version's type.
pub(crate) fn value<V: for<'a> From<&'a AnyValue>>(v: Option<&AnyValue>) -> Option<V> {
    v.map(V::from)
}

/// CPU time the calling thread has used.
pub(crate) fn thread_cpu() -> std::time::Duration {
    cpu_time::ThreadTime::now().as_duration()
}

impl CpuBudget {
    /// CPU time used since the call began.
    pub(crate) fn used(&self) -> std::time::Duration {
        thread_cpu().saturating_sub(self.started)
    }
}

impl Default for CpuBudget {
    fn default() -> Self {
        Self {
            started: thread_cpu(),
            limit: std::time::Duration::MAX,
            used_at_stop: None,
        }
    }
}

/// Refuses memory growth past the filter's cap and remembers that it did.
pub(crate) struct MemoryCap {
    pub(crate) max: usize,
    pub(crate) exceeded: bool,
    /// Why, when the host's side of the call went past its allowance rather than linear memory.
    pub(crate) host_exceeded: Option<String>,
    /// The largest linear memory of the filter's instances (shared by them; `FilterStats`).
    pub(crate) largest: std::sync::Arc<std::sync::atomic::AtomicU64>,
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
        // Called for a memory's first allocation too, so this sees every instance's size.
        self.largest
            .fetch_max(desired as u64, std::sync::atomic::Ordering::Relaxed);
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

/// The most pattern sets one instance may hold at once.
pub(crate) const MAX_PATTERN_SETS: usize = 64;

/// The host functions, shared by every version.
impl StoreState {
    fn log(&mut self, level: tracing::Level, message: &str) {
        // At most LOG_LINES_PER_SECOND a second for the filter, with stdout and stderr.
        let Some(suppressed) = self.allowance.log_line() else {
            self.metrics
                .filter_log_suppressed(self.signal, &self.filter);
            return;
        };
        let message: String = message.chars().take(4096).collect();
        let f = &*self.filter;
        match level {
            tracing::Level::TRACE => tracing::trace!(filter = f, suppressed, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(filter = f, suppressed, "{message}"),
            tracing::Level::INFO => tracing::info!(filter = f, suppressed, "{message}"),
            tracing::Level::WARN => tracing::warn!(filter = f, suppressed, "{message}"),
            _ => tracing::error!(filter = f, suppressed, "{message}"),
        }
    }

    fn counter_add(&mut self, name: &str, delta: u64) {
        if !self.dry_run && self.series(name) {
            self.metrics
                .filter_counter(self.signal, &self.filter, name, delta);
        }
    }

    fn gauge_set(&mut self, name: &str, value: f64) {
        if !self.dry_run && self.series(name) {
            self.metrics
                .filter_gauge(self.signal, &self.filter, name, value);
        }
    }

    /// Whether the filter may record series `name` (see [`Allowance::series`]); counts a refusal.
    fn series(&self, name: &str) -> bool {
        let ok = self.allowance.series(name);
        if !ok {
            self.metrics
                .filter_series_refused(self.signal, &self.filter);
        }
        ok
    }

    /// Counts `bytes` the guest hands the host to keep (attribute keys and values, names, routes).
    /// Past the call's allowance (as much as the filter's own memory cap), or past what weir's memory
    /// limit allows the request, the call fails as a memory fault.
    pub(crate) fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.host_bytes = self.host_bytes.saturating_add(bytes);
        if self.host_bytes > self.limits.max {
            return Err(self.host_fault(format!(
                "the call handed weir more than {} bytes to keep (the filter's memory cap)",
                self.limits.max
            )));
        }
        self.uncharged += bytes;
        if self.uncharged >= CHARGE_CHUNK {
            self.settle()?;
        }
        Ok(())
    }

    /// Charges what the call handed the host and is not charged yet to the request's memory budget.
    pub(crate) fn settle(&mut self) -> wasmtime::Result<()> {
        let bytes = std::mem::take(&mut self.uncharged) as u64;
        match &self.memory {
            Some(m) if bytes > 0 && !m.grow(bytes) => {
                let why =
                    "weir is at its memory limit: what the call handed weir to keep was refused";
                self.overloaded = Some(why.into());
                Err(self.host_fault(why.into()))
            }
            _ => Ok(()),
        }
    }

    fn host_fault(&mut self, why: String) -> wasmtime::Error {
        self.limits.exceeded = true;
        self.limits.host_exceeded = Some(why.clone());
        wasmtime::Error::msg(why)
    }

    fn wall_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

impl StoreState {
    pub(crate) fn batch(&self, h: &Resource<BatchState>) -> wasmtime::Result<&BatchState> {
        Ok(self.table.get(h)?)
    }

    pub(crate) fn batch_mut(
        &mut self,
        h: &Resource<BatchState>,
    ) -> wasmtime::Result<&mut BatchState> {
        Ok(self.table.get_mut(h)?)
    }

    pub(crate) fn bad<T, E: std::fmt::Display>(&mut self, r: Result<T, E>) -> wasmtime::Result<T> {
        r.map_err(|e| {
            self.bad_output = Some(e.to_string());
            wasmtime::Error::msg(e.to_string())
        })
    }
}

/// Forwards a read-only accessor that can fail on a bad index; `=> f` converts what it returns (while
/// the batch is borrowed) into the interface's type.
macro_rules! read {
    ($self:ident, $h:ident, $method:ident ( $($arg:expr),* ) $(=> $map:expr)?) => {{
        let r = $self.batch(&$h)?.$method($($arg),*)$(.map($map))?;
        $self.bad(r)
    }};
}

/// Forwards a mutator that can fail on a bad index; `=> f` as for [`read!`].
macro_rules! write {
    ($self:ident, $h:ident, $method:ident ( $($arg:expr),* ) $(=> $map:expr)?) => {{
        let r = $self.batch_mut(&$h)?.$method($($arg),*)$(.map($map))?;
        $self.bad(r)
    }};
}
/// The `host` interface both versions share, implemented for the generated `host` module in scope at
/// the call; a version's additions follow as the macro's input.
macro_rules! host_functions {
    ($($extra:tt)*) => {
        impl host::Host for StoreState {
            fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
                let level = match level {
                    host::Level::Trace => tracing::Level::TRACE,
                    host::Level::Debug => tracing::Level::DEBUG,
                    host::Level::Info => tracing::Level::INFO,
                    host::Level::Warn => tracing::Level::WARN,
                    host::Level::Error => tracing::Level::ERROR,
                };
                StoreState::log(self, level, &message);
                Ok(())
            }
            fn counter_add(&mut self, name: String, delta: u64) -> wasmtime::Result<()> {
                StoreState::counter_add(self, &name, delta);
                Ok(())
            }
            fn gauge_set(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
                StoreState::gauge_set(self, &name, value);
                Ok(())
            }
            fn monotonic_now(&mut self) -> wasmtime::Result<u64> {
                Ok(super::process_monotonic())
            }
            fn wall_now(&mut self) -> wasmtime::Result<u64> {
                Ok(StoreState::wall_now())
            }
            fn random_u64(&mut self) -> wasmtime::Result<u64> {
                Ok(super::random_u64())
            }
            fn exporters(&mut self) -> wasmtime::Result<Vec<String>> {
                Ok(self.exporters.to_vec())
            }
            $($extra)*
        }
    };
}

pub(crate) use {host_functions, read, value_weight, write};

impl wasmtime_wasi::WasiView for StoreState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Nanoseconds since the first call in this process: one clock for every instance.
pub(crate) fn process_monotonic() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// 64 random bits from SipHash keyed by the OS (std's `RandomState`), over a counter.
pub(crate) fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    STATE
        .get_or_init(Default::default)
        .hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The error for a profiles batch reaching a filter whose interface (0.1, 0.2) has no profiles: such
/// filters are never called for profiles (the chain passes profiles by them), so this is a host bug
/// surfacing as a trap, not something a guest can cause.
pub(crate) fn profiles_unknown() -> wasmtime::Error {
    wasmtime::Error::msg("a profiles batch reached a filter of an interface without profiles")
}
