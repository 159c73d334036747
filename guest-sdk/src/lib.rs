//! Write [weir](https://example.invalid/weir) filters in Rust.
//!
//! A filter is a type that implements [`Filter`]; [`export_filter!`] turns it into the exports weir calls.
//! weir lends the filter one batch of one signal at a time through a [`Batch`] handle: reading a trace id
//! does not copy attributes, and changes are made in place on weir's side.
//!
//! ```ignore
//! use weir_guest_sdk::{export_filter, Batch, Filter, Value, Verdict};
//!
//! /// Tags every span with the deployment it passed through, and drops health checks.
//! #[derive(Default)]
//! struct Tagger {
//!     zone: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     zone: String,
//! }
//!
//! impl Filter for Tagger {
//!     fn init(config: &str) -> Result<Self, String> {
//!         let c: Config = weir_guest_sdk::parse_config(config)?;
//!         Ok(Tagger { zone: c.zone })
//!     }
//!
//!     fn traces(&mut self, batch: &Batch) -> Verdict {
//!         for span in batch.items() {
//!             if batch.span_name(span) == "GET /healthz" {
//!                 batch.drop_item(span);
//!                 continue;
//!             }
//!             batch.set_attribute(span, "edge.zone", &Value::Str(self.zone.clone()));
//!         }
//!         Verdict::Continue
//!     }
//! }
//!
//! export_filter!(Tagger);
//! ```
//!
//! Build it for `wasm32-unknown-unknown` as a `cdylib`; weir accepts the core module
//! and makes it a component when it loads it. `filters/build.sh` in the weir repository builds every
//! filter there.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "filter",
        pub_export_macro: true,
        export_macro_name: "__export_filter_world",
        default_bindings_module: "weir_guest_sdk::bindings",
    });
}

use std::cell::RefCell;

pub use bindings::weir::filter::host;
pub use bindings::weir::filter::types::{
    Attribute, Batch, MetricKind, Signal, StatusCode, TraceId, Value, Verdict,
};

/// A weir filter. Every method has a default that lets the batch through unchanged.
///
/// One instance of the type lives in each Wasm instance weir creates, and weir reuses instances, so
/// fields can keep state between batches (a rate estimate, a cache). weir may run several instances of a
/// filter at once, each with its own state.
pub trait Filter: Sized + 'static {
    /// Builds the filter from its configuration: the JSON text of the `config` weir was given, or an
    /// empty string. An error refuses the filter (at push time, before it ever sees data).
    fn init(config: &str) -> Result<Self, String>;

    /// A batch of spans.
    fn traces(&mut self, batch: &Batch) -> Verdict {
        let _ = batch;
        Verdict::Continue
    }

    /// A batch of metrics.
    fn metrics(&mut self, batch: &Batch) -> Verdict {
        let _ = batch;
        Verdict::Continue
    }

    /// A batch of log records.
    fn logs(&mut self, batch: &Batch) -> Verdict {
        let _ = batch;
        Verdict::Continue
    }
}

/// Parses a JSON configuration into `T`; an empty configuration parses as `{}`.
#[cfg(feature = "config")]
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(text).map_err(|e| format!("invalid filter config: {e}"))
}

impl Batch {
    /// Item indices, `0..item_count()`.
    pub fn items(&self) -> std::ops::Range<u32> {
        0..self.item_count()
    }

    /// Resource indices, `0..resource_count()`.
    pub fn resources(&self) -> std::ops::Range<u32> {
        0..self.resource_count()
    }
}

impl TraceId {
    /// The trace id's 16 bytes.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.high.to_be_bytes());
        b[8..].copy_from_slice(&self.low.to_be_bytes());
        b
    }

    /// True for the all-zero (absent) trace id.
    pub fn is_zero(&self) -> bool {
        self.high == 0 && self.low == 0
    }
}

/// Writes a line into weir's log at info level, tagged with the filter's name.
pub fn log(message: &str) {
    host::log(host::Level::Info, message);
}

#[doc(hidden)]
pub mod __private {
    pub use super::bindings::Guest;
    use super::*;

    thread_local! {
        static STATE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    pub fn init<F: Filter>(config: String) -> Result<(), String> {
        let f = F::init(&config)?;
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(f)));
        Ok(())
    }

    pub fn process<F: Filter>(signal: Signal, batch: &Batch) -> Verdict {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some(f) = s.as_mut().and_then(|f| f.downcast_mut::<F>()) else {
                return Verdict::Reject("filter called before init".into());
            };
            match signal {
                Signal::Traces => f.traces(batch),
                Signal::Metrics => f.metrics(batch),
                Signal::Logs => f.logs(batch),
            }
        })
    }
}

/// Exports a [`Filter`] implementation as the filter's Wasm exports. Use it once per filter crate.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        #[doc(hidden)]
        pub struct __WeirFilter;

        impl $crate::__private::Guest for __WeirFilter {
            fn init(config: String) -> Result<(), String> {
                $crate::__private::init::<$filter>(config)
            }
            fn process_traces(batch: &$crate::Batch) -> $crate::Verdict {
                $crate::__private::process::<$filter>($crate::Signal::Traces, batch)
            }
            fn process_metrics(batch: &$crate::Batch) -> $crate::Verdict {
                $crate::__private::process::<$filter>($crate::Signal::Metrics, batch)
            }
            fn process_logs(batch: &$crate::Batch) -> $crate::Verdict {
                $crate::__private::process::<$filter>($crate::Signal::Logs, batch)
            }
        }

        $crate::bindings::__export_filter_world!(__WeirFilter with_types_in $crate::bindings);
    };
}
