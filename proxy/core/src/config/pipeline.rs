//! `pipelines`: one per signal, each a filter chain and the exporters its data goes to.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use weir_wire::Signal;

/// The largest linear memory a filter instance may be given (`limits.memory`).
pub const MAX_FILTER_MEMORY: usize = 512 << 20;

/// The most instances one filter may ask for.
pub const MAX_FILTER_CONCURRENCY: usize = 256;

/// Pipelines per signal.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelinesConfig {
    /// Spans.
    pub traces: Option<PipelineConfig>,
    /// Metric points.
    pub metrics: Option<PipelineConfig>,
    /// Log records.
    pub logs: Option<PipelineConfig>,
    /// Profiles, counted by their samples. **Alpha**: OTLP's `v1development` profiles, as
    /// `opentelemetry-proto` v1.10.0 defines them; the format may change in a later OTLP release.
    /// Interface 0.1 and 0.2 filters pass profiles by untouched.
    pub profiles: Option<PipelineConfig>,
}

impl PipelinesConfig {
    /// Every signal with its pipeline, if configured, in [`Signal::ALL`] order.
    pub fn by_signal(&self) -> [(Signal, Option<&PipelineConfig>); Signal::ALL.len()] {
        Signal::ALL.map(|s| (s, self.get(s)))
    }

    /// The pipeline of `signal`.
    pub fn get(&self, signal: Signal) -> Option<&PipelineConfig> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Logs => self.logs.as_ref(),
            Signal::Profiles => self.profiles.as_ref(),
        }
    }

    /// Every configured pipeline, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PipelineConfig> {
        [
            &mut self.traces,
            &mut self.metrics,
            &mut self.logs,
            &mut self.profiles,
        ]
        .into_iter()
        .flatten()
    }

    /// The same pipeline for every signal.
    pub fn all(pipeline: PipelineConfig) -> Self {
        Self {
            traces: Some(pipeline.clone()),
            metrics: Some(pipeline.clone()),
            logs: Some(pipeline.clone()),
            profiles: Some(pipeline),
        }
    }
}

/// One pipeline: receiver, filter chain, exporters.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Names from `exporters`. A client is acknowledged once every one of them accepted the data.
    pub exporters: Vec<String>,
    /// Wasm filters, run in this order on every batch before it is exported.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
}

/// One Wasm filter of a pipeline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Unique within the pipeline; names the filter in logs, metrics and the admin API.
    pub name: String,
    /// Path of the `.wasm` file (a component, or a core module built with wit-bindgen); relative paths
    /// are relative to the configuration file.
    pub module: PathBuf,
    /// Handed to the filter's `init` as JSON text (any YAML value; absent: empty string).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `fail-open` (default: the batch passes as it was) or `fail-closed` (the client gets a retryable
    /// error) when the filter traps, runs out of time or memory, or misbehaves.
    #[serde(default)]
    pub on_error: OnError,
    /// `deadline` per call (default `50ms`) and `memory` per instance in bytes (default 64 MiB).
    #[serde(default)]
    pub limits: FilterLimits,
}

impl FilterConfig {
    /// The filter's `init` argument.
    pub fn config_text(&self) -> String {
        match &self.config {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }
}

/// What to do with a batch when a filter fails on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// The batch passes as it was before the filter (the filter's partial changes are undone).
    #[default]
    FailOpen,
    /// The client gets a retryable error; nothing is forwarded.
    FailClosed,
}

/// Per-filter limits.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterLimits {
    /// CPU time one call may take at least (default `50ms`); past its allowance the call is
    /// interrupted. The allowance grows with the batch: see `deadline_per_item`.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// CPU time a call may take per item of its batch (default `200us`): a call's allowance is the
    /// larger of `deadline` and this times the batch's items, so a large request gets the time its
    /// size needs instead of faulting (and counting toward quarantine) for being large. Zero: a flat
    /// `deadline`.
    #[serde(with = "humantime_serde")]
    pub deadline_per_item: Duration,
    /// Largest linear memory of one instance, in bytes (default 64 MiB, at most [`MAX_FILTER_MEMORY`]).
    pub memory: usize,
    /// Most instances of the filter at once (default: the number of cores): a call waits up to
    /// `instance_wait` for a free one rather than creating more.
    pub concurrency: usize,
    /// How long a call waits for a free instance (default `1s`) before the request is refused
    /// retryably (503 / UNAVAILABLE), as back-pressure.
    #[serde(with = "humantime_serde")]
    pub instance_wait: Duration,
    /// How long a quarantined filter that has no earlier version to roll back to is skipped before
    /// calls try it again (default `10s`); each failed retry doubles the wait, up to 5 minutes, and
    /// the first successful call ends the quarantine.
    #[serde(with = "humantime_serde")]
    pub quarantine_retry: Duration,
}

impl FilterLimits {
    /// Checks the limits are in range; the error says which is not.
    pub fn validate(&self) -> Result<(), String> {
        if self.deadline.is_zero() {
            return Err("deadline must be positive".into());
        }
        if self.memory == 0 || self.memory > MAX_FILTER_MEMORY {
            return Err(format!(
                "memory must be between 1 byte and {MAX_FILTER_MEMORY} bytes"
            ));
        }
        if self.concurrency == 0 || self.concurrency > MAX_FILTER_CONCURRENCY {
            return Err(format!(
                "concurrency must be between 1 and {MAX_FILTER_CONCURRENCY}"
            ));
        }
        Ok(())
    }
}

/// The default instance bound of a filter: one per core.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Default for FilterLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            deadline_per_item: Duration::from_micros(200),
            memory: 64 << 20,
            concurrency: default_concurrency(),
            instance_wait: Duration::from_secs(1),
            quarantine_retry: Duration::from_secs(10),
        }
    }
}
