//! The Wasm filter host, weir's data plane for filters: filters are WebAssembly components (or
//! wit-bindgen core modules, which are componentized at load) implementing `wit/filter.wit`, run by
//! wasmtime in a sandbox with no filesystem, network or environment.
//!
//! - [`runtime`]: the engine (pooling allocator, copy-on-write images, epoch ticker) and the compile cache;
//! - [`instance`]: a loaded filter, its instance pool, limits and fault classification;
//! - `host`: what a store holds, and the imports filters call, for every interface version;
//! - [`batch`]: the `batch` resource lent to filters, with an undo journal for `fail-open`;
//! - [`kernels`]: pattern sets and redaction run natively for filters (`weir-kernels` underneath);
//! - [`shared`]: counters and rates shared by every instance of a filter;
//! - `bindings`: the `bindgen!` sites, one per released interface version, each with the conversions
//!   between its generated types and the batch's;
//! - `wasi`: the sandboxed WASI subset (clocks, random, stdout/stderr into the log) for components from
//!   other languages.
//!
//! - [`chain`]: an ordered, immutable list of loaded filters applied to a batch; a pipeline holds one and
//!   swaps it atomically.
//!
//! Which versions run where (push, rollback, persistence, quarantine rollbacks) is the control plane's
//! business, in the `weir` crate above this one; a filter only tells it that it was quarantined
//! ([`Quarantined`]).
#![forbid(unsafe_code)]

pub mod allowance;
pub mod batch;
mod bindings;
pub mod chain;
pub mod componentize;
mod host;
pub mod instance;
pub mod kernels;
pub mod offline;
pub mod runtime;
pub mod shared;
mod wasi;

use tokio::sync::mpsc;

pub use chain::Chain;
pub use instance::{CallError, LoadedFilter, Verdict};
pub use runtime::{Module, PoolSizing, Runtime, compile_into_cache};
pub use weir_core::config::{FilterLimits, MAX_FILTER_MEMORY, OnError};
pub use weir_core::{ChainError, Fault, FaultClass, Signal};

/// A filter asked the control plane to act on it.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// Its pipeline.
    pub signal: Signal,
    /// Its name.
    pub name: String,
    /// The version that failed.
    pub sha256: String,
    /// Which loaded filter failed ([`LoadedFilter::id`]): the control plane acts only if that very
    /// one is still active, never on a version pushed since (even of the same module).
    pub id: u64,
}

/// Sends quarantine notices to the manager.
pub type QuarantineSender = mpsc::UnboundedSender<Quarantined>;

/// A filter as configured: what to load and how to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSpec {
    /// Unique within its pipeline.
    pub name: String,
    /// The configuration handed to `init`, as JSON text.
    pub config: String,
    /// Failure policy.
    pub on_error: OnError,
    /// Limits.
    pub limits: FilterLimits,
}

/// Loading or running a filter failed.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The engine could not be set up.
    #[error("filter runtime: {0}")]
    Setup(String),
    /// The module could not be read.
    #[error("cannot read module {path}: {source}")]
    Read {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid filter.
    #[error("compile: {0}")]
    Compile(String),
    /// The component does not fit weir's filter world.
    #[error("link: {0} (does it implement weir:filter@0.3, @0.2 or @0.1.0?)")]
    Link(String),
    /// `init` refused the configuration.
    #[error("{0}")]
    Init(String),
    /// The dry run on a sample batch failed.
    #[error("dry run on a sample batch failed: {0}")]
    DryRun(String),
    /// The limits are out of range.
    #[error("limits: {0}")]
    Limits(String),
}
