//! The bytes weir takes from outside, and the bytes it writes to its own disk: OTLP requests of the four
//! signals (protobuf, checked by a validating [`walk`] and kept as bytes, or decoded; the JSON mapping),
//! a request's [`body`] as it flows through weir, compression both ways within a size cap ([`codec`]),
//! the export [`response`], and the durable queue's [`record`] format.
//!
//! Everything here parses untrusted input, so it lives in a crate of its own with no runtime, network or
//! Wasm dependencies: the fuzz targets (`fuzz/`) build against it in a minute rather than the half hour
//! an instrumented wasmtime takes, which is what lets CI run them. The fuzz target bodies are in
//! [`fuzzing`].
#![forbid(unsafe_code)]

pub mod body;
pub mod codec;
pub mod fuzzing;
pub mod intake;
pub mod profiles;
pub mod record;
pub mod response;
mod signal;
pub mod walk;

pub use body::{Body, Encoded};
pub use signal::{Payload, Signal, data_points};
