//! The bytes weir takes from outside, and the bytes it writes to its own disk: OTLP requests of the three
//! signals (protobuf and the JSON mapping), gzip inflation within a size cap, and the durable queue's
//! record format.
//!
//! Everything here parses untrusted input, so it lives in a crate of its own with no runtime, network or
//! Wasm dependencies: the fuzz targets (`fuzz/`) build against it in a minute rather than the half hour
//! an instrumented wasmtime takes, which is what lets CI run them. The fuzz target bodies are in
//! [`fuzzing`].

pub mod fuzzing;
pub mod gzip;
pub mod record;
pub mod response;
mod signal;
pub mod walk;

pub use signal::{Payload, Signal, data_points};
