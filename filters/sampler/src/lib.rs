//! The sampler filter: consistent probability sampling by trace id, fixed or adaptive.
//!
//! Config (JSON):
//! - `ratio` (0..1, default 1): the fixed sampling probability;
//! - or `target_spans_per_second` with `min_ratio` (default 0.0001), `max_ratio` (default 1) and
//!   `adjust_interval_ms` (default 1000): the filter measures the input rate of the whole weir over five
//!   intervals (a rate shared by all its instances, `host.shared-rate`) and sets its ratio to hold the
//!   target; the ratio in force is reported once per interval as the gauge
//!   `weir_filter_gauge{name="ratio"}`;
//! - `log_hash_attributes` (default `["service.name"]`): for log records without a trace id, the
//!   attributes whose values are hashed to give the record its randomness.
//!
//! The decision logic is in [`consistent`].

pub mod consistent;

use consistent::{Adaptive, decide, fnv1a, threshold};
use weir_guest_sdk::{Batch, Filter, Value, Verdict, export_filter, host, parse_config};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    ratio: Option<f64>,
    target_spans_per_second: Option<f64>,
    #[serde(default = "default_min")]
    min_ratio: f64,
    #[serde(default = "default_max")]
    max_ratio: f64,
    #[serde(default = "default_interval")]
    adjust_interval_ms: u64,
    #[serde(default = "default_log_keys")]
    log_hash_attributes: Vec<String>,
}

fn default_min() -> f64 {
    0.0001
}
fn default_max() -> f64 {
    1.0
}
fn default_interval() -> u64 {
    1000
}
fn default_log_keys() -> Vec<String> {
    vec!["service.name".into()]
}

/// The filter.
pub struct Sampler {
    threshold: u64,
    adaptive: Option<Adaptive>,
    log_keys: Vec<String>,
}

impl Sampler {
    fn from_config(c: Config) -> Result<Self, String> {
        let in_range = |x: f64| (0.0..=1.0).contains(&x);
        if !in_range(c.min_ratio) || !in_range(c.max_ratio) || c.min_ratio > c.max_ratio {
            return Err("min_ratio and max_ratio must be in [0, 1], min <= max".into());
        }
        let (ratio, adaptive) = match (c.ratio, c.target_spans_per_second) {
            (Some(_), Some(_)) => {
                return Err("set either `ratio` or `target_spans_per_second`, not both".into());
            }
            (Some(r), None) if in_range(r) => (r, None),
            (Some(_), None) => return Err("ratio must be in [0, 1]".into()),
            (None, Some(t)) if t > 0.0 => (
                c.max_ratio,
                Some(Adaptive::new(
                    t,
                    c.min_ratio,
                    c.max_ratio,
                    c.adjust_interval_ms.max(1) * 1_000_000,
                )),
            ),
            (None, Some(_)) => return Err("target_spans_per_second must be positive".into()),
            (None, None) => (1.0, None),
        };
        Ok(Self {
            threshold: threshold(ratio),
            adaptive,
            log_keys: c.log_hash_attributes,
        })
    }

    fn observe(&mut self, items: u32) {
        let Some(a) = &mut self.adaptive else {
            return;
        };
        // Every instance records its items in one rate shared by all of them and reads the whole
        // weir's: the ratio then holds the target for weir, not for each instance.
        let rate = host::shared_rate("input", u64::from(items), a.window_ms());
        let ratio = a.ratio_for(rate);
        self.threshold = threshold(ratio);
        if a.report_due(host::monotonic_now()) {
            host::gauge_set("ratio", ratio);
        }
    }

    fn log_randomness(&self, batch: &Batch, item: u32) -> u64 {
        let values: Vec<String> = self
            .log_keys
            .iter()
            .map(|k| {
                let v = batch
                    .attribute(item, k)
                    .or_else(|| batch.resource_attribute(batch.item_resource(item), k));
                match v {
                    Some(Value::Str(s)) => s,
                    Some(Value::Int(i)) => i.to_string(),
                    Some(Value::Boolean(b)) => b.to_string(),
                    Some(Value::Double(d)) => d.to_string(),
                    Some(Value::Json(j)) => j,
                    Some(Value::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
                    None => String::new(),
                }
            })
            .collect();
        let parts: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        fnv1a(&parts)
    }
}

impl Filter for Sampler {
    fn init(config: &str) -> Result<Self, String> {
        Self::from_config(parse_config(config)?)
    }

    fn traces(&mut self, batch: &Batch) -> Verdict {
        self.observe(batch.item_count());
        let t = self.threshold;
        // Three calls for the whole batch in (the tracestates in one buffer), at most two out.
        let ids = batch.trace_ids();
        let states = batch.trace_states();
        let mut dropped = Vec::new();
        let mut rewritten = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let item = i as u32;
            let d = decide(id.low, states.get(i), t);
            if !d.keep {
                dropped.push(item);
            } else if let Some(ts) = d.tracestate {
                rewritten.push((item, ts));
            }
        }
        if !dropped.is_empty() {
            batch.drop_items(&dropped);
        }
        if !rewritten.is_empty() {
            batch.set_trace_states(&rewritten);
        }
        Verdict::Continue
    }

    fn logs(&mut self, batch: &Batch) -> Verdict {
        self.observe(batch.item_count());
        let t = self.threshold;
        let mut dropped = Vec::new();
        for (i, id) in batch.trace_ids().iter().enumerate() {
            let item = i as u32;
            let r = if id.is_zero() {
                self.log_randomness(batch, item)
            } else {
                id.low
            };
            if !decide(r, "", t).keep {
                dropped.push(item);
            }
        }
        if !dropped.is_empty() {
            batch.drop_items(&dropped);
        }
        Verdict::Continue
    }
}

export_filter!(Sampler);
