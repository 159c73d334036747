//! Sets (or removes) one attribute on every item of every signal.
//!
//! Config: `{"key": "edge.zone", "value": "eu-1"}`; `"remove": true` removes the key instead;
//! `"drop_if_name": "GET /healthz"` also drops spans with that name.

use weir_guest_sdk::{Batch, Filter, Value, Verdict, export_filter, parse_config};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    remove: bool,
    #[serde(default)]
    drop_if_name: Option<String>,
}

/// The filter.
pub struct SetAttribute {
    config: Config,
}

impl SetAttribute {
    fn apply(&self, batch: &Batch) {
        for item in batch.items() {
            if self.config.remove {
                batch.remove_attribute(item, &self.config.key);
            } else {
                batch.set_attribute(
                    item,
                    &self.config.key,
                    &Value::Str(self.config.value.clone()),
                );
            }
        }
    }
}

impl Filter for SetAttribute {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = parse_config(config)?;
        if config.key.is_empty() {
            return Err("`key` must not be empty".into());
        }
        Ok(Self { config })
    }

    fn traces(&mut self, batch: &Batch) -> Verdict {
        if let Some(name) = &self.config.drop_if_name {
            for span in batch.spans() {
                if &span.name() == name {
                    span.drop_item();
                }
            }
        }
        self.apply(batch);
        Verdict::Continue
    }

    fn metrics(&mut self, batch: &Batch) -> Verdict {
        self.apply(batch);
        Verdict::Continue
    }

    fn logs(&mut self, batch: &Batch) -> Verdict {
        self.apply(batch);
        Verdict::Continue
    }
}

export_filter!(SetAttribute);
