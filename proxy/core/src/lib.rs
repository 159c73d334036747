//! The types every stage of weir shares, at the bottom of its layers: the request on its way
//! ([`Batch`]: payload, [`RequestContext`] with its deadline, route labels), what the upstreams said
//! ([`PartialSuccess`]), why a request was not acknowledged ([`Refusal`] and the faults behind it), the
//! seam receivers hand requests through ([`Dispatch`]), the configuration's types ([`config`]) and
//! weir's own metrics and logging ([`telemetry`]).
//!
//! Receivers, the filter host, exporters and queues depend on this crate (and on `weir-wire`, the
//! bytes) and on nothing beside or above them; see ARCHITECTURE.md "Layers".
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
pub mod config;
mod dispatch;
mod export_error;
pub mod fs;
pub mod grpc_codec;
mod refusal;
pub mod telemetry;

pub use batch::{Batch, MemoryBudget, PartialSuccess, RequestContext, Routing, remaining};
pub use dispatch::Dispatch;
pub use export_error::ExportError;
pub use refusal::{ChainError, Fault, FaultClass, QueueFull, Refusal};
pub use weir_wire::{Body, Encoded, Payload, Signal};
