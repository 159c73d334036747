//! weir: a WebAssembly-extensible OpenTelemetry edge proxy.
//!
//! This crate is the top of weir's layers: it builds the running graph ([`app`]), owns the filter
//! control plane ([`control`]: versions, persistence, quarantine rollbacks) and the admin API
//! ([`admin`]), and holds the `weir` command (`main.rs` and `cmd/`, in the binary only). The data
//! path lives in the crates below it, each depending only on the ones beneath (see ARCHITECTURE.md
//! "Layers"):
//!
//! - [`receiver`] (OTLP gRPC and HTTP: limits, admission, status codes) hands requests to
//! - [`pipeline`] (per signal: the filter chain, routing, fan-out, acknowledgement), which runs
//! - [`filter`] (the Wasm filter host) and queues to
//! - [`exporter`] (upstream clients, retries, memory and durable queues);
//! - all of them share `weir-core` ([`config`], [`telemetry`], the request and refusal types) and
//!   `weir-wire` (the parsers of untrusted bytes).
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod control;
pub mod dead_letter;
pub mod fuzzing;
pub mod signing;

pub use weir_core::{Payload, Signal};
pub use weir_core::{config, telemetry};
pub use weir_exporter as exporter;
pub use weir_filter as filter;
pub use weir_pipeline as pipeline;
pub use weir_receiver as receiver;
