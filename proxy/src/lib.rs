//! weir: a WebAssembly-extensible OpenTelemetry edge proxy.
//!
//! The library holds everything; the `weir` binary (`main.rs`) only parses the command line. The data
//! path, socket to upstream, is described in `ARCHITECTURE.md`; in short:
//!
//! [`receiver`] (OTLP gRPC and HTTP: decode, limits, status codes) → [`pipeline`] (per signal: the filter
//! chain seam, then fan-out to exporters, acknowledgement) → [`exporter`] (OTLP gRPC/HTTP upstreams with
//! retries, and `debug`). [`app`] builds and runs the whole graph from a [`config::Config`];
//! [`admin`] serves `/metrics` and health; [`telemetry`] owns metrics and logging.
// One exception, allowed where it is: `malloc_trim` in `receiver::memory`.
#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod config;
pub mod exporter;
pub mod filter;
pub mod fuzzing;
pub mod pipeline;
pub mod receiver;
pub mod telemetry;
