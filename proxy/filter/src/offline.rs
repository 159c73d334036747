//! `weir filter test`: runs a filter on an OTLP/JSON batch offline and reports what it did. The filter
//! author's inner loop: no weir server, no upstream.

use std::sync::Arc;

use serde::Serialize;

use super::batch::BatchState;
use super::{FilterError, FilterLimits, FilterSpec, LoadedFilter, OnError, Runtime, Verdict};
use weir_core::telemetry::Metrics;
use weir_core::{Payload, Signal};

/// What one offline run produced.
#[derive(Debug, Serialize)]
pub struct TestReport {
    /// `continue`, `reject: ...` or `error: ...`.
    pub verdict: String,
    /// Items in the input (spans, metrics, log records or profiles: what a filter drops).
    pub items_in: usize,
    /// Items the filter dropped.
    pub items_dropped: usize,
    /// Items the filter changed.
    pub items_modified: usize,
    /// Route labels the filter set: label set (comma-separated exporter names) to item count.
    pub routes: std::collections::BTreeMap<String, usize>,
    /// The counters the filter added to (`host.counter-add`), by name: what `/metrics` would show as
    /// `weir_filter_counter_total`.
    pub counters: std::collections::BTreeMap<String, u64>,
    /// The batch after the filter, as OTLP/JSON.
    pub output: serde_json::Value,
}

/// Runs `module` with `config` on `input` (OTLP/JSON of `signal`).
pub fn run(
    module: &[u8],
    config: &str,
    signal: Signal,
    input: &[u8],
    limits: FilterLimits,
) -> Result<TestReport, FilterError> {
    let payload = Payload::decode_json(signal, input)
        .map_err(|e| FilterError::DryRun(format!("input is not OTLP/JSON {signal}: {e}")))?;
    let runtime = Arc::new(Runtime::new(None)?);
    let compiled = runtime.compile(module)?;
    let spec = FilterSpec {
        name: "test".into(),
        config: config.to_string(),
        on_error: OnError::FailClosed,
        limits,
    };
    let metrics = Arc::new(Metrics::new());
    let filter = LoadedFilter::load(runtime, spec, compiled, signal, metrics.clone(), None)?;
    let batch = BatchState::new(payload, http::HeaderMap::new(), None);
    // What a filter drops and changes are items of the batch: profiles, not their samples.
    let items_in = batch.len();
    let (batch, result) = filter.call(batch);
    let items_dropped = batch.dropped_count();
    let items_modified = batch.modified_count();
    let verdict = match result {
        Ok(Verdict::Continue) => "continue".to_string(),
        Ok(Verdict::Reject(r)) => format!("reject: {r}"),
        Err(fault) => format!("error: {fault}"),
    };
    let (payload, routing, _) = batch.finish();
    let mut routes = std::collections::BTreeMap::new();
    if let Some(r) = routing {
        for id in r.items.iter().flatten() {
            *routes.entry(r.sets[*id as usize].join(",")).or_insert(0) += 1;
        }
    }
    let output = serde_json::from_slice(&payload.encode_json()).unwrap_or_default();
    Ok(TestReport {
        verdict,
        items_in,
        items_dropped,
        items_modified,
        routes,
        counters: counters(&metrics.render()),
        output,
    })
}

/// The filter counters in a `/metrics` exposition: `name` label to value.
fn counters(exposition: &str) -> std::collections::BTreeMap<String, u64> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("weir_filter_counter_total{"))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            let name = labels.split("name=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_read_from_the_exposition() {
        let text = "# TYPE weir_filter_counter_total counter\n\
            weir_filter_counter_total{signal=\"traces\",filter=\"test\",name=\"dropped\"} 2\n\
            weir_filter_counter_total{signal=\"traces\",filter=\"test\",name=\"tagged\"} 14\n\
            weir_other_total 3\n";
        let got = super::counters(text);
        assert_eq!(got.get("dropped"), Some(&2));
        assert_eq!(got.get("tagged"), Some(&14));
        assert_eq!(got.len(), 2);
    }
}
