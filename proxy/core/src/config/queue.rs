//! The machinery every exporter kind is given by configuration, whatever it sends to: its queue
//! (`queue`: memory or durable, with coalescing) and its retries (`retry`), which sit beside the kind's
//! own section in an exporter (`exporters.NAME.queue`, `exporters.NAME.retry`), not inside it; and the
//! body compression a kind may ask for ([`Compression`]).

use std::time::Duration;

use serde::Deserialize;
use weir_wire::codec::Encoding;

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

    /// The configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
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

impl QueueConfig {
    /// Checks what the schema cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batches == 0 || self.max_bytes == 0 || self.concurrency == 0 {
            return Err("queue: max_batches, max_bytes and concurrency must be positive".into());
        }
        if self.coalesce.max_items == 0 || self.coalesce.max_bytes == 0 {
            return Err("queue.coalesce: max_items and max_bytes must be positive".into());
        }
        if self.max_bytes > u32::MAX as usize || self.max_disk_bytes > u32::MAX as usize {
            return Err(format!(
                "queue.max_bytes and queue.max_disk_bytes: at most {} bytes",
                u32::MAX
            ));
        }
        if self.durable && (self.max_disk_bytes == 0 || self.segment_bytes == 0) {
            return Err("queue: max_disk_bytes and segment_bytes must be positive".into());
        }
        Ok(())
    }
}

impl RetryConfig {
    /// Checks what the schema cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.multiplier < 1.0 {
            return Err("retry.multiplier must be at least 1".into());
        }
        Ok(())
    }
}
