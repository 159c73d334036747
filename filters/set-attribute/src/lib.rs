//! Sets (or removes) one attribute on every item of every signal; for profiles, whose own attributes
//! are indices into the request's dictionary, on every profile's resource.
//!
//! Config: `{"key": "edge.zone", "value": "eu-1"}`; `"remove": true` removes the key instead;
//! `"drop_if_name": "GET /healthz"` also drops spans with that name; `"drop_if_sample_type": "alloc"`
//! drops profiles of that sample type. The samples of the profiles kept are counted
//! (`weir_filter_counter_total{name="samples"}`).

use weir_guest_sdk::{Batch, Filter, Value, Verdict, export_filter, host, parse_config};

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
    #[serde(default)]
    drop_if_sample_type: Option<String>,
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

    fn profiles(&mut self, batch: &Batch) -> Verdict {
        let mut samples = 0u64;
        for profile in batch.profile_views() {
            let (ty, _unit) = profile.sample_type();
            if self.config.drop_if_sample_type.as_deref() == Some(ty.as_str()) {
                profile.drop_item();
            } else {
                samples += u64::from(profile.sample_count());
            }
        }
        host::counter_add("samples", samples);
        for res in batch.resources() {
            if self.config.remove {
                batch.remove_resource_attribute(res, &self.config.key);
            } else {
                batch.set_resource_attribute(
                    res,
                    &self.config.key,
                    &Value::Str(self.config.value.clone()),
                );
            }
        }
        Verdict::Continue
    }
}

export_filter!(SetAttribute);
