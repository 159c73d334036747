//! weir's example filter, in Rust with `weir-guest-sdk`: drops the spans whose name starts with a
//! configured prefix, sets a configured attribute on the rest, and counts both
//! (`weir_filter_counter_total{name="dropped"}` and `{name="tagged"}`). Logs and metrics pass unchanged.
//!
//! Config: `{"drop_prefix": "health", "key": "team", "value": "checkout"}`.

use weir_guest_sdk::{Batch, Filter, Value, Verdict, export_filter, host, parse_config};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    drop_prefix: String,
    key: String,
    value: String,
}

/// The filter: its configuration, parsed once at `init`.
pub struct Example {
    config: Config,
    value: Value,
}

impl Filter for Example {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = parse_config(config)?;
        if config.key.is_empty() {
            return Err("`key` must not be empty".into());
        }
        let value = Value::Str(config.value.clone());
        Ok(Self { config, value })
    }

    fn traces(&mut self, batch: &Batch) -> Verdict {
        let (mut dropped, mut tagged) = (0, 0);
        for span in batch.spans() {
            if !self.config.drop_prefix.is_empty()
                && span.name().starts_with(&self.config.drop_prefix)
            {
                span.drop_item();
                dropped += 1;
            } else {
                span.set_attribute(&self.config.key, &self.value);
                tagged += 1;
            }
        }
        host::counter_add("dropped", dropped);
        host::counter_add("tagged", tagged);
        Verdict::Continue
    }
}

export_filter!(Example);
