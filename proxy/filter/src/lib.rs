//! The Wasm filter runtime: filters are WebAssembly components (or wit-bindgen core modules, which are
//! componentized at load) implementing `wit/filter.wit`, run by wasmtime in a sandbox with no filesystem,
//! network or environment.
//!
//! - [`runtime`]: the engine (pooling allocator, copy-on-write images, epoch ticker) and the compile cache;
//! - [`instance`]: a loaded filter, its instance pool, limits and fault classification, the host imports;
//! - [`batch`]: the `batch` resource lent to filters, with an undo journal for `fail-open`;
//! - [`bindings`]: the one `bindgen!` site;
//! - `wasi`: the sandboxed WASI subset (clocks, random, stdout/stderr into the log) for components from
//!   other languages.
//!
//! A pipeline runs its filters as a [`crate::pipeline::Chain`], an immutable value swapped atomically.

pub mod batch;
mod bindings;
pub mod instance;
pub mod manager;
pub mod offline;
pub mod runtime;
mod wasi;

use std::time::Duration;

use serde::Deserialize;

pub use instance::{Fault, LoadedFilter, Verdict};
pub use manager::Manager;
pub use runtime::{Module, Runtime};

/// What to do with a batch when a filter fails on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// The batch passes as it was before the filter (the filter's partial changes are undone).
    #[default]
    FailOpen,
    /// The client gets a retryable error; nothing is forwarded.
    FailClosed,
}

/// Why a filter call failed. The class is a label on `/metrics` and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClass {
    /// The guest trapped (a panic, an unreachable, a bad memory access).
    Trap,
    /// The call ran past its deadline.
    Deadline,
    /// The instance tried to grow its memory past the cap.
    Memory,
    /// The guest handed weir something invalid (an item index that does not exist).
    BadOutput,
    /// `init` refused the configuration when a new instance was made.
    Init,
}

impl FaultClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultClass::Trap => "trap",
            FaultClass::Deadline => "deadline",
            FaultClass::Memory => "memory",
            FaultClass::BadOutput => "bad_output",
            FaultClass::Init => "init",
        }
    }
}

impl std::fmt::Display for FaultClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-filter limits.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterLimits {
    /// Time one call may take (default `50ms`); past it the call is interrupted.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Largest linear memory of one instance, in bytes (default 64 MiB, at most 512 MiB).
    pub memory: usize,
}

impl Default for FilterLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            memory: 64 << 20,
        }
    }
}

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
    #[error("link: {0} (does it implement weir:filter@0.1.0?)")]
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
