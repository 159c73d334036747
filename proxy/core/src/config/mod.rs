//! The configuration file: serde types only, plus loading and validation.
//!
//! What the user writes is `FooConfig`; the `weir` crate's `app` builds what runs from it. The `///` docs on each
//! field double as the configuration reference (README "Configuration"). Every struct denies unknown keys,
//! and [`Config::from_yaml`] reports the full path of a key it does not know (`exporters.backend.otlp.endpont`).
//! `${env:VAR}` (or `${env:VAR:-default}`) is substituted in the raw text before parsing.

mod env;
mod security;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use weir_wire::Signal;
use weir_wire::codec::Encoding;

pub use env::substitute_env;
pub use security::{
    ClientAuth, ClientTlsConfig, IdentityConfig, IngressAuthConfig, ServerTlsConfig, TlsVersion,
    TokenConfig, check_tenant,
};

/// Everything that can go wrong while loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `${env:VAR}` named a variable that is not set and has no default.
    #[error("environment variable {0} is not set (referenced as ${{env:{0}}})")]
    MissingEnv(String),
    /// `${env:...}` was not closed or is malformed.
    #[error(
        "malformed environment reference at byte {0}: expected ${{env:NAME}} or ${{env:NAME:-default}}"
    )]
    BadEnvReference(usize),
    /// The YAML did not match the schema; `path` names the key.
    #[error("at `{path}`: {message}")]
    Schema {
        /// Dotted path of the offending key (`.` for the root).
        path: String,
        /// What serde said.
        message: String,
    },
    /// The configuration parsed but is inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The root of the configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where weir accepts OTLP.
    pub receivers: ReceiversConfig,
    /// Named upstreams. A pipeline names the exporters its data goes to.
    pub exporters: BTreeMap<String, ExporterConfig>,
    /// One pipeline per signal. A signal without a pipeline is refused with 404 / UNIMPLEMENTED.
    /// When the file has no `pipelines` at all, every signal goes to every exporter (or to `debug`).
    pub pipelines: Option<PipelinesConfig>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin: AdminConfig,
    /// Limits that protect weir from its clients.
    pub limits: LimitsConfig,
    /// weir's own logs.
    pub logs: LogsConfig,
    /// Where weir keeps state across restarts: the compiled-filter cache (and filters pushed through the
    /// admin API). Absent: nothing is kept.
    pub state_dir: Option<PathBuf>,
    /// The Wasm engine's instance slots, shared by every filter.
    pub filter_runtime: FilterRuntimeConfig,
    /// Signed filter modules: the keys a module must be signed by.
    pub module_signing: ModuleSigningConfig,
}

/// Signed filter modules. With trusted keys, every module pushed through the admin API and every module
/// this file names must carry a valid signature by one of them (`weir filter sign` writes
/// `FILE.wasm.sig`; `weir filter push` sends it); anything else is refused and nothing changes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModuleSigningConfig {
    /// Public key files (PEM, as `weir keygen` writes them); relative paths are relative to the
    /// configuration file. A key signs as its file's stem (`ops.pub`: `ops`). Empty (the default):
    /// signatures are neither required nor checked.
    pub trusted_keys: Vec<PathBuf>,
}

/// How many filter instances the Wasm engine has room for, and how large each may grow. Slots are
/// reserved address space, not resident memory, but they are bounded from the configuration rather
/// than fixed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterRuntimeConfig {
    /// Instance slots for all filters together (default: twice the configured filters' `concurrency`,
    /// so that a new version can warm up beside the old, plus room for pushed filters; at least 64).
    pub instance_slots: Option<u32>,
    /// The largest `limits.memory` any filter may have, in bytes (default: the largest configured, at
    /// least 64 MiB). A pushed filter asking for more is refused.
    pub max_memory: Option<usize>,
}

impl Config {
    /// What `weir validate` warns about in a valid configuration: pipelines of signals OTLP has not
    /// declared stable (profiles).
    pub fn warnings(&self) -> Vec<String> {
        let Some(p) = &self.pipelines else {
            return Vec::new();
        };
        p.by_signal()
            .into_iter()
            .filter(|(s, p)| s.is_alpha() && p.is_some())
            .map(|(s, _)| {
                format!(
                    "pipelines.{s}: {s} are alpha in OTLP; weir speaks {}, and a later OTLP \
                     release may change the format",
                    weir_wire::profiles::PROTO_VERSION
                )
            })
            .collect()
    }

    /// The engine's instance slots and per-instance memory, from `filter_runtime` or the filters
    /// configured.
    pub fn filter_pool(&self) -> (u32, usize) {
        let filters: Vec<&FilterLimits> = self
            .pipelines
            .iter()
            .flat_map(|p| p.by_signal())
            .filter_map(|(_, p)| p)
            .flat_map(|p| p.filters.iter().map(|f| &f.limits))
            .collect();
        let configured: usize = filters.iter().map(|l| l.concurrency).sum();
        let slots = self.filter_runtime.instance_slots.unwrap_or_else(|| {
            let room = 8 * default_concurrency();
            ((2 * configured + room) as u32).max(64)
        });
        let memory = self.filter_runtime.max_memory.unwrap_or_else(|| {
            filters
                .iter()
                .map(|l| l.memory)
                .max()
                .unwrap_or(0)
                .max(64 << 20)
        });
        (slots, memory.min(MAX_FILTER_MEMORY))
    }
}

/// Receivers. Only OTLP for now.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiversConfig {
    /// The OTLP receiver: gRPC and HTTP.
    pub otlp: OtlpReceiverConfig,
}

impl Default for ReceiversConfig {
    fn default() -> Self {
        Self {
            otlp: OtlpReceiverConfig {
                grpc: Some(ListenerConfig::new("127.0.0.1:4317")),
                http: Some(ListenerConfig::new("127.0.0.1:4318")),
            },
        }
    }
}

/// The OTLP receiver. Omitting `grpc` or `http` disables that transport.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// OTLP/gRPC (default `127.0.0.1:4317`).
    pub grpc: Option<ListenerConfig>,
    /// OTLP/HTTP, protobuf and JSON, HTTP/1.1 and h2c (default `127.0.0.1:4318`).
    pub http: Option<ListenerConfig>,
}

/// A listening socket.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `HOST:PORT` to bind; port 0 picks a free port (weir logs the one it bound).
    pub endpoint: String,
    /// TLS (and mTLS) on this listener; plain TCP without it.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// Who may send to this receiver; anyone who can connect without it.
    #[serde(default)]
    pub auth: Option<IngressAuthConfig>,
}

impl ListenerConfig {
    /// A plain listener on `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            tls: None,
            auth: None,
        }
    }
}

/// One upstream. Exactly one kind key: `otlp` or `debug`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "ExporterKinds")]
// Built once at start; the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ExporterConfig {
    /// Forward over OTLP/gRPC or OTLP/HTTP (protobuf).
    Otlp(OtlpExporterConfig),
    /// Print one summary line per batch on stdout (and every item when `verbosity: detailed`).
    Debug(DebugExporterConfig),
}

/// The YAML shape of an exporter: a map with exactly one kind key. (YAML enums need `!tags`; a map
/// with optional keys reads better and reports unknown keys with their path.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExporterKinds {
    otlp: Option<OtlpExporterConfig>,
    debug: Option<DebugExporterConfig>,
}

impl TryFrom<ExporterKinds> for ExporterConfig {
    type Error = String;

    fn try_from(k: ExporterKinds) -> Result<Self, String> {
        match (k.otlp, k.debug) {
            (Some(o), None) => Ok(ExporterConfig::Otlp(o)),
            (None, Some(d)) => Ok(ExporterConfig::Debug(d)),
            (None, None) => Err("an exporter needs one kind key: `otlp` or `debug`".into()),
            (Some(_), Some(_)) => {
                Err("an exporter has exactly one kind key: `otlp` or `debug`".into())
            }
        }
    }
}

/// Wire protocol of an OTLP exporter.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC; `endpoint` is `http://HOST:PORT`.
    #[default]
    Grpc,
    /// OTLP/HTTP protobuf; `endpoint` is the base URL, weir appends `/v1/traces` etc.
    Http,
}

/// Compression of requests sent upstream.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip (the OTLP default).
    #[default]
    Gzip,
    /// zstd: as small as gzip or smaller for a fraction of its CPU; OTLP/gRPC and OTLP/HTTP servers
    /// that accept it (the OpenTelemetry Collector does).
    Zstd,
}

impl Compression {
    /// The encoding, `None` for uncompressed.
    pub fn encoding(self) -> Option<Encoding> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some(Encoding::Gzip),
            Compression::Zstd => Some(Encoding::Zstd),
        }
    }
}

/// An OTLP upstream.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// `http://HOST:PORT` (gRPC) or the OTLP/HTTP base URL. `grpc://` is accepted for gRPC.
    pub endpoint: String,
    /// `grpc` (default) or `http`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `gzip` (default), `zstd` or `none`. Each upstream request is compressed once, and every retry
    /// sends the same bytes.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level: gzip 0 to 9, zstd 1 to 19. Default: the fastest (1 for both), whose ratio on
    /// OTLP is within a few percent of the higher levels' at a fraction of the CPU (the table is in
    /// `docs/benchmarks.md`).
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// Time allowed for one attempt (default `5s`). Retries are bounded by the client's deadline.
    #[serde(default = "default_export_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra headers (gRPC metadata) sent with every request, e.g. an API key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retries of retryable upstream answers.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The exporter's own queue and senders.
    #[serde(default)]
    pub queue: QueueConfig,
    /// TLS settings for an `https://` endpoint (default: verified against the system's roots).
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
    /// Send each request's tenant (from the receiver's `auth`) upstream in this header, e.g.
    /// `X-Scope-OrgID` for Loki, Mimir and Tempo. Requests of different tenants are then never merged
    /// into one upstream request, in memory or on disk.
    #[serde(default)]
    pub tenant_header: Option<String>,
}

/// An exporter's bounded queue: requests wait in it for one of the exporter's senders, so that a slow
/// or dead upstream fills its own queue (and then refuses) instead of holding up the others.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Client requests waiting or being sent, merged or not, at most (default 1000). Above: 503 /
    /// UNAVAILABLE, retryable.
    pub max_batches: usize,
    /// Encoded bytes waiting or being sent, at most (default 64 MiB). Above: 503 / UNAVAILABLE. With
    /// a durable queue, what waits is on disk: this bounds what senders hold in memory, read back to
    /// send.
    pub max_bytes: usize,
    /// Requests sent upstream at once (default 64).
    pub concurrency: usize,
    /// How requests waiting for this exporter are merged into fewer upstream requests.
    pub coalesce: CoalesceConfig,
    /// Keep the queue on disk under `state_dir/queues/NAME` (default false). Clients are then
    /// acknowledged once their data is written (and synced, see `sync`), and the queue survives
    /// upstream outages and restarts, kill -9 included; weir retries delivery until the upstream
    /// accepts or refuses for good.
    pub durable: bool,
    /// Durable queue: bytes on disk at most (default 1 GiB). Above: 503 / UNAVAILABLE.
    pub max_disk_bytes: usize,
    /// Durable queue: size at which a segment file is closed and a new one started (default 8 MiB).
    pub segment_bytes: usize,
    /// Durable queue: `always` (default: `fdatasync` before acknowledging, shared by concurrent
    /// requests) or `none` (the OS writes back; survives a crash of weir, not a power loss).
    pub sync: SyncPolicy,
    /// Durable queue: what happens to acknowledged data the upstream refuses for good (a 4xx, an
    /// expired credential): `dead_letter` (default: kept under `state_dir/queues/NAME/dead-letter/`,
    /// counted, replayable with `weir dead-letter replay`), `hold` (delivery stops and retries, up to
    /// every 10 s, until the upstream takes it; `weir_exporter_held` is 1 meanwhile), or `drop`
    /// (counted).
    pub on_permanent_error: OnPermanentError,
    /// Durable queue: a batch still failing retryably this long after it was queued is treated as
    /// refused for good, per `on_permanent_error`, instead of holding a sender forever (default: retried
    /// as long as it takes).
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

/// What a durable queue does with data its upstream refuses for good.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnPermanentError {
    /// Keep it aside, replayable.
    #[default]
    DeadLetter,
    /// Stop delivering and retry until the upstream accepts.
    Hold,
    /// Drop it, counted.
    Drop,
}

/// Merging of client requests into upstream requests. An OTLP export request is a list of resources, so
/// requests of one signal concatenate into one; each client is still answered only when the upstream
/// request it went out in was accepted (or, with a durable queue, written). By default a sender that
/// becomes free takes what is already waiting, up to the bounds, and waits for nothing more: merging
/// adds no latency at low load and saves per-request work (and compresses better) at high load.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CoalesceConfig {
    /// Items (spans, data points, log records) in one upstream request, at most (default 8192). A
    /// single client request above it goes out on its own, whole.
    pub max_items: usize,
    /// Encoded bytes in one upstream request, at most (default 2 MiB: half of the 4 MiB gRPC servers
    /// accept by default).
    pub max_bytes: usize,
    /// How long a sender waits for more requests once it has one (default `0s`: it does not). A
    /// longer interval asks for fewer, bigger upstream requests at the price of that much latency. With
    /// a durable queue, which acknowledges clients once their data is written, the wait delays only the
    /// delivery: `durable: true` with an interval of some tens of milliseconds batches small requests as
    /// a collector's batch processor does, without making clients wait.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
}

impl Default for CoalesceConfig {
    fn default() -> Self {
        Self {
            max_items: 8192,
            max_bytes: 2 << 20,
            flush_interval: Duration::ZERO,
        }
    }
}

/// When the durable queue forces data to disk.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// `fdatasync` before acknowledging.
    #[default]
    Always,
    /// Leave it to the OS.
    None,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_batches: 1000,
            max_bytes: 64 << 20,
            concurrency: 64,
            coalesce: CoalesceConfig::default(),
            durable: false,
            max_disk_bytes: 1 << 30,
            segment_bytes: 8 << 20,
            sync: SyncPolicy::Always,
            on_permanent_error: OnPermanentError::default(),
            max_age: None,
        }
    }
}

fn default_export_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Exponential backoff with full jitter for retryable upstream answers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retry at all (default true).
    pub enabled: bool,
    /// First backoff (default `50ms`).
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Largest backoff (default `5s`). A server's RetryInfo / Retry-After takes precedence.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Growth factor per attempt (default 2).
    pub multiplier: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_interval: Duration::from_millis(50),
            max_interval: Duration::from_secs(5),
            multiplier: 2.0,
        }
    }
}

/// The debug exporter.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    /// `basic` (one line per batch, default) or `detailed` (every item too).
    pub verbosity: Verbosity,
}

/// How much the debug exporter prints.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    /// One summary line per batch.
    #[default]
    Basic,
    /// The summary line, then every item as JSON.
    Detailed,
}

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

/// The largest linear memory a filter instance may be given (`limits.memory`).
pub const MAX_FILTER_MEMORY: usize = 512 << 20;

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

/// The most instances one filter may ask for.
pub const MAX_FILTER_CONCURRENCY: usize = 256;

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

/// The admin listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `HOST:PORT` (default `127.0.0.1:9901`). A non-loopback address needs `token` or
    /// `client_identities`.
    pub endpoint: String,
    /// The bearer token every change through the API must present (use `${env:...}`). Without it (and
    /// without `client_identities`) weir generates one at start, keeps it in `state_dir/admin-token`
    /// (reused across restarts) and in a file the `weir` CLI finds by the admin port (see
    /// `weir filter --help`).
    pub token: Option<String>,
    /// mTLS client identities (subject alternative names or common names) that may make changes
    /// without a token. Needs `tls.client_ca`.
    pub client_identities: Vec<String>,
    /// Let loopback peers make changes without a credential (default `false`: in a Kubernetes pod every
    /// sidecar shares loopback).
    pub trust_loopback: bool,
    /// Require the credential for `/metrics`, `/healthz`, `/readyz` and `/openapi.json` too (default
    /// `false`: kubelets and Prometheus scrape them).
    pub protect_reads: bool,
    /// TLS (and mTLS) on the admin listener.
    pub tls: Option<ServerTlsConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:9901".into(),
            token: None,
            client_identities: Vec::new(),
            trust_loopback: false,
            protect_reads: false,
            tls: None,
        }
    }
}

/// Limits. Every refusal they cause is counted on `/metrics` (`weir_requests_refused_total`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest OTLP/HTTP body as received, before decompression (default 8 MiB). Above: 413.
    pub max_request_bytes: usize,
    /// Largest request after decompression, HTTP body or gRPC message (default 32 MiB).
    /// Above: 413 / RESOURCE_EXHAUSTED. A gzip bomb stops here without allocating more.
    pub max_decompressed_bytes: usize,
    /// Requests being decoded, filtered and queued at once over both transports (default 1024). Above:
    /// 503 / UNAVAILABLE, retryable. A request waiting for its upstreams holds no slot: the exporters'
    /// queues (`exporters.*.otlp.queue`) bound those.
    pub max_concurrent_requests: usize,
    /// Time allowed for a request, from decode to the upstream's answer, unless the client's
    /// `grpc-timeout` is shorter (default `30s`). Past it the client gets a retryable status.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests before exiting (default `20s`).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long weir keeps serving new requests with `/readyz` already failing, so that
    /// load balancers and Kubernetes endpoints stop sending before weir stops accepting (default `0s`;
    /// about 5s behind a Kubernetes Service). A second SIGTERM or SIGINT exits at once.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain_delay: Duration,
    /// Seconds suggested to refused clients (`Retry-After`, gRPC RetryInfo) (default `1s`).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Resident memory weir keeps under (default: the container's limit, see `memory_from_cgroup`, or
    /// none). From 90% of it new requests are refused (503 / UNAVAILABLE, retryable) until memory is
    /// back under 80%.
    pub max_memory_bytes: Option<usize>,
    /// Without `max_memory_bytes`, under a cgroup memory limit (a container's), take the limit from the
    /// cgroup and measure the cgroup's working set as well as weir's own resident memory (default
    /// `true`).
    pub memory_from_cgroup: bool,
    /// Slow and greedy clients: connection caps, read deadlines, HTTP/2 limits.
    pub connections: ConnectionLimits,
}

/// What one client connection may hold, and for how long: the OTLP listeners and the admin listener
/// each apply them, so that clients that trickle bytes or open connections without end cannot hold
/// weir's admission slots or file descriptors.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Open connections per listener (default 4096). A connection past it is closed as soon as it is
    /// accepted, and counted (`weir_connections_rejected_total`).
    pub max_per_listener: usize,
    /// Time a client has to send a request's headers, HTTP/1.1 (default `10s`); then the connection is
    /// closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body once its headers are in (default `30s`). Past it the
    /// request is refused (HTTP 408, gRPC DEADLINE_EXCEEDED; `reason="slow_client"`) and its admission
    /// slot is free again.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// HTTP/2 streams a client may have open on one connection (default 256).
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive pings to idle clients, this often (default `30s`) ...
    #[serde(with = "humantime_serde")]
    pub http2_keepalive_interval: Duration,
    /// ... answered within this (default `10s`), or the connection is closed.
    #[serde(with = "humantime_serde")]
    pub http2_keepalive_timeout: Duration,
    /// Connections older than this are asked to close (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close`
    /// after the request in progress), so that a load balancer can spread clients again (default:
    /// never).
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Option<Duration>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_per_listener: 4096,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            http2_max_concurrent_streams: 256,
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_connection_age: None,
        }
    }
}

impl ConnectionLimits {
    /// Range checks.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_per_listener == 0 {
            return Err("limits.connections.max_per_listener must be at least 1".into());
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(
                "limits.connections.http2_max_concurrent_streams must be at least 1".into(),
            );
        }
        for (name, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("http2_keepalive_interval", self.http2_keepalive_interval),
            ("http2_keepalive_timeout", self.http2_keepalive_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("limits.connections.{name} must be more than 0"));
            }
        }
        if self.max_connection_age.is_some_and(|a| a.is_zero()) {
            return Err("limits.connections.max_connection_age must be more than 0".into());
        }
        Ok(())
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 << 20,
            max_decompressed_bytes: 32 << 20,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(20),
            shutdown_drain_delay: Duration::ZERO,
            retry_after: Duration::from_secs(1),
            max_memory_bytes: None,
            memory_from_cgroup: true,
            connections: ConnectionLimits::default(),
        }
    }
}

/// weir's own log output (on stderr).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `weir=debug,info` (default `info`; `RUST_LOG` wins).
    pub level: String,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Reads, substitutes `${env:...}`, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::from_yaml(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// Makes relative filter module and key paths relative to `base` (the configuration file's
    /// directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let otlp = &mut self.receivers.otlp;
        for l in [&mut otlp.grpc, &mut otlp.http].into_iter().flatten() {
            if let Some(tls) = &mut l.tls {
                tls.resolve_paths(base);
            }
            if let Some(auth) = &mut l.auth {
                auth.resolve_paths(base);
            }
        }
        if let Some(tls) = &mut self.admin.tls {
            tls.resolve_paths(base);
        }
        for exporter in self.exporters.values_mut() {
            if let ExporterConfig::Otlp(o) = exporter
                && let Some(tls) = &mut o.tls
            {
                tls.resolve_paths(base);
            }
        }
        for key in &mut self.module_signing.trusted_keys {
            if key.is_relative() {
                *key = base.join(&*key);
            }
        }
        if let Some(p) = &mut self.pipelines {
            for pipeline in p.iter_mut() {
                for f in &mut pipeline.filters {
                    if f.module.is_relative() {
                        f.module = base.join(&f.module);
                    }
                }
            }
        }
    }

    /// Parses YAML (after `${env:...}` substitution) without validating.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_with_env(text, |name| std::env::var(name).ok())
    }

    /// [`Config::from_yaml`] with `${env:...}` looked up by `lookup`.
    pub fn from_yaml_with_env(
        text: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = substitute_env(text, lookup)?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Schema {
                path,
                message: e.into_inner().to_string(),
            }
        })
    }

    /// Checks what the schema cannot: addresses parse, pipelines name known exporters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let otlp = &self.receivers.otlp;
        for (name, l) in [("grpc", &otlp.grpc), ("http", &otlp.http)] {
            if let Some(l) = l {
                parse_addr(&l.endpoint).map_err(|e| {
                    ConfigError::Invalid(format!("receivers.otlp.{name}.endpoint: {e}"))
                })?;
                if let Some(auth) = &l.auth {
                    auth.validate(l.tls.as_ref())
                        .map_err(|e| ConfigError::Invalid(format!("receivers.otlp.{name}.{e}")))?;
                }
            }
        }
        if otlp.grpc.is_none() && otlp.http.is_none() {
            return invalid("receivers.otlp: enable at least one of grpc and http".into());
        }
        self.limits
            .connections
            .validate()
            .map_err(ConfigError::Invalid)?;
        let admin = parse_addr(&self.admin.endpoint)
            .map_err(|e| ConfigError::Invalid(format!("admin.endpoint: {e}")))?;
        if !admin.ip().is_loopback()
            && self.admin.token.is_none()
            && self.admin.client_identities.is_empty()
        {
            return invalid(format!(
                "admin.endpoint {admin} is not a loopback address: set admin.token (or admin.client_identities) so that remote clients can authenticate"
            ));
        }
        if self.admin.token.as_deref() == Some("") {
            return invalid("admin.token must not be empty".into());
        }
        if !self.admin.client_identities.is_empty()
            && self
                .admin
                .tls
                .as_ref()
                .is_none_or(|t| t.client_ca.is_none())
        {
            return invalid(
                "admin.client_identities need client certificates: set admin.tls.client_ca".into(),
            );
        }
        for (name, exporter) in &self.exporters {
            if let ExporterConfig::Otlp(o) = exporter {
                o.validate()
                    .map_err(|e| ConfigError::Invalid(format!("exporters.{name}: {e}")))?;
                if o.queue.durable && self.state_dir.is_none() {
                    return invalid(format!(
                        "exporters.{name}.otlp.queue.durable needs state_dir, where the queue is kept"
                    ));
                }
            }
        }
        if let Some(p) = &self.pipelines {
            for (signal, pipeline) in p.by_signal() {
                let Some(pipeline) = pipeline else { continue };
                if pipeline.exporters.is_empty() {
                    return invalid(format!("pipelines.{signal}.exporters: name at least one"));
                }
                let mut names = std::collections::HashSet::new();
                for f in &pipeline.filters {
                    if f.name.is_empty() || !names.insert(f.name.as_str()) {
                        return invalid(format!(
                            "pipelines.{signal}.filters: filter names must be unique and non-empty (`{}`)",
                            f.name
                        ));
                    }
                    if let Err(e) = f.limits.validate() {
                        return invalid(format!(
                            "pipelines.{signal}.filters.{}.limits: {e}",
                            f.name
                        ));
                    }
                }
                for e in &pipeline.exporters {
                    if !self.exporters.contains_key(e) {
                        return invalid(format!(
                            "pipelines.{signal}.exporters: unknown exporter `{e}` (known: {})",
                            known(&self.exporters)
                        ));
                    }
                }
            }
        }
        let l = &self.limits;
        if l.max_request_bytes == 0 || l.max_decompressed_bytes == 0 {
            return invalid("limits: sizes must be positive".into());
        }
        if l.max_memory_bytes == Some(0) {
            return invalid("limits.max_memory_bytes must be positive".into());
        }
        if l.max_concurrent_requests == 0 {
            return invalid("limits.max_concurrent_requests must be positive".into());
        }
        if l.request_timeout.is_zero() {
            return invalid("limits.request_timeout must be positive".into());
        }
        Ok(())
    }

    /// The exporters each signal's pipeline uses, after defaults: without a `pipelines` section every
    /// signal goes to every exporter, and without exporters to a `debug` exporter.
    pub fn resolved(mut self) -> Self {
        if self.exporters.is_empty() {
            self.exporters.insert(
                "debug".into(),
                ExporterConfig::Debug(DebugExporterConfig::default()),
            );
        }
        if self.pipelines.is_none() {
            let all = PipelineConfig {
                exporters: self.exporters.keys().cloned().collect(),
                filters: Vec::new(),
            };
            self.pipelines = Some(PipelinesConfig::all(all));
        }
        self
    }
}

fn known(exporters: &BTreeMap<String, ExporterConfig>) -> String {
    if exporters.is_empty() {
        return "none".into();
    }
    exporters.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Parses `HOST:PORT` where HOST is an IP address or `localhost`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("bad port in `{s}`"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!("`{s}` is not HOST:PORT with an IP address"))
}

impl OtlpExporterConfig {
    /// Builds an exporter config from a quick-start `--upstream` URL: `grpc://` or `http://`/`https://`.
    pub fn from_upstream_url(url: &str) -> Result<Self, ConfigError> {
        let (protocol, endpoint) = if let Some(rest) = url.strip_prefix("grpc://") {
            (OtlpProtocol::Grpc, format!("http://{rest}"))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            (OtlpProtocol::Http, url.to_string())
        } else {
            return Err(ConfigError::Invalid(format!(
                "--upstream `{url}`: use grpc://HOST:PORT or http://HOST:PORT"
            )));
        };
        let c = Self {
            endpoint,
            protocol,
            compression: Compression::default(),
            compression_level: None,
            timeout: default_export_timeout(),
            headers: BTreeMap::new(),
            retry: RetryConfig::default(),
            queue: QueueConfig::default(),
            tls: None,
            tenant_header: None,
        };
        c.validate().map_err(ConfigError::Invalid)?;
        Ok(c)
    }

    /// The encoding and level requests are compressed with, `None` without compression.
    pub fn compression(&self) -> Option<(Encoding, i32)> {
        let e = self.compression.encoding()?;
        Some((
            e,
            self.compression_level.unwrap_or_else(|| e.default_level()),
        ))
    }

    /// The endpoint as a URI, `grpc://` normalised to `http://`.
    pub fn uri(&self) -> Result<http::Uri, String> {
        let e = match self.endpoint.strip_prefix("grpc://") {
            Some(rest) => format!("http://{rest}"),
            None => self.endpoint.clone(),
        };
        let uri: http::Uri = e
            .parse()
            .map_err(|err| format!("endpoint `{}`: {err}", self.endpoint))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(format!(
                    "endpoint `{}`: needs http:// or https://",
                    self.endpoint
                ));
            }
        }
        if uri.host().is_none() {
            return Err(format!("endpoint `{}`: no host", self.endpoint));
        }
        Ok(uri)
    }

    /// Whether the endpoint is `https://`.
    pub fn is_tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    fn validate(&self) -> Result<(), String> {
        self.uri()?;
        if let Some(tls) = &self.tls {
            if !self.is_tls() {
                return Err(format!(
                    "tls is set but endpoint `{}` is not https://",
                    self.endpoint
                ));
            }
            tls.validate()?;
        }
        if self.timeout.is_zero() {
            return Err("timeout must be positive".into());
        }
        if let Some(h) = &self.tenant_header {
            http::HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("tenant_header `{h}` is not a header name"))?;
        }
        for (k, v) in &self.headers {
            http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("header name `{k}`"))?;
            http::HeaderValue::from_str(v).map_err(|_| format!("header `{k}` value"))?;
        }
        if let (Some(level), Some(e)) = (self.compression_level, self.compression.encoding())
            && !e.levels().contains(&level)
        {
            return Err(format!(
                "compression_level {level}: {} takes {} to {}",
                e.as_str(),
                e.levels().start(),
                e.levels().end()
            ));
        }
        if self.retry.multiplier < 1.0 {
            return Err("retry.multiplier must be at least 1".into());
        }
        let q = &self.queue;
        if q.max_batches == 0 || q.max_bytes == 0 || q.concurrency == 0 {
            return Err("queue: max_batches, max_bytes and concurrency must be positive".into());
        }
        if q.coalesce.max_items == 0 || q.coalesce.max_bytes == 0 {
            return Err("queue.coalesce: max_items and max_bytes must be positive".into());
        }
        if q.max_bytes > u32::MAX as usize || q.max_disk_bytes > u32::MAX as usize {
            return Err(format!(
                "queue.max_bytes and queue.max_disk_bytes: at most {} bytes",
                u32::MAX
            ));
        }
        if q.durable && (q.max_disk_bytes == 0 || q.segment_bytes == 0) {
            return Err("queue: max_disk_bytes and segment_bytes must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
