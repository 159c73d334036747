//! The send loop: `concurrency` tasks, each sending one request at a time, over a
//! warm-up phase and then a measured window.
//!
//! Every request belongs to the phase in which it *started*: requests started
//! during the warm-up are counted only in the warm-up totals (used for the loss
//! check), requests started in the window are fully measured even if they
//! complete a little after it closes. No request starts after the window closes
//! (`--duration` elapsed or `--max-requests` measured requests issued); the
//! window's length runs from its start until the last task has finished its last
//! request, so rates are `count / window`. Every request has a timeout, so the
//! loop always ends; a task pauses 10 ms after a failed request so that a
//! server refusing instantly is not hammered in a busy loop.

use crate::client::{Failure, Sender};
use crate::payload::Payload;
use crate::procstat;
use crate::sink::SinkCounters;
use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Thread name of the client runtime's workers.
pub const THREAD_NAME: &str = "load-worker";

/// Pause after a failed request.
const FAILURE_BACKOFF: Duration = Duration::from_millis(10);

/// Latencies above this (in µs) are recorded as this value.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Timing and sizing of a run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: u64,
    pub request_timeout: Duration,
    /// Requests per second over all senders, paced; `None` sends back to back.
    pub rate: Option<f64>,
}

/// Why the measured window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Duration,
    MaxRequests,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::MaxRequests => "max-requests",
        }
    }
}

/// Failures of one kind.
#[derive(Debug, Clone, Default)]
pub struct ErrorCount {
    pub count: u64,
    /// The first message seen for this kind.
    pub sample: String,
}

/// Counters of one phase (warm-up or measured window).
#[derive(Debug, Clone, Default)]
pub struct PhaseStats {
    pub ok: u64,
    /// Failed requests, refusals included.
    pub failed: u64,
    /// Of those, retryable refusals ([`Failure::is_refusal`]).
    pub refused: u64,
    /// Spans in all requests sent (successful or not).
    pub spans_sent: u64,
    /// Spans in successful requests, less those reported rejected.
    pub spans_acked: u64,
    /// `partial_success.rejected_spans` summed over successful requests.
    pub spans_rejected: u64,
    /// Request body bytes sent (protobuf, before gRPC/HTTP framing).
    pub bytes_sent: u64,
    pub errors: BTreeMap<String, ErrorCount>,
}

impl PhaseStats {
    fn record(&mut self, payload: &Payload, result: &Result<u64, Failure>) {
        self.spans_sent += payload.spans;
        self.bytes_sent += payload.body.len() as u64;
        match result {
            Ok(rejected) => {
                let rejected = (*rejected).min(payload.spans);
                self.ok += 1;
                self.spans_acked += payload.spans - rejected;
                self.spans_rejected += rejected;
            }
            Err(failure) => {
                self.failed += 1;
                self.refused += u64::from(failure.is_refusal());
                let entry = self.errors.entry(failure.kind.clone()).or_default();
                if entry.count == 0 {
                    entry.sample = failure.message.chars().take(300).collect();
                }
                entry.count += 1;
            }
        }
    }

    fn merge(&mut self, other: PhaseStats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.refused += other.refused;
        self.spans_sent += other.spans_sent;
        self.spans_acked += other.spans_acked;
        self.spans_rejected += other.spans_rejected;
        self.bytes_sent += other.bytes_sent;
        for (kind, count) in other.errors {
            let entry = self.errors.entry(kind).or_default();
            if entry.count == 0 {
                entry.sample = count.sample;
            }
            entry.count += count.count;
        }
    }
}

/// Resource figures taken at the start and the end of the window.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// weir's CPU time in clock ticks, if there is a weir pid and it was readable.
    pub weir_cpu_ticks: Option<u64>,
    /// This process's CPU time in clock ticks (client + sink + everything else).
    pub self_cpu_ticks: Option<u64>,
    /// CPU ticks of the client runtime's threads.
    pub client_cpu_ticks: u64,
    /// CPU ticks of the sink runtime's threads.
    pub sink_cpu_ticks: u64,
    /// Spans received by the sink so far, if there is a sink.
    pub sink_spans: Option<u64>,
}

/// What to sample at the window's edges.
pub struct Probe {
    pub weir_pid: Option<u32>,
    pub sink: Option<Arc<SinkCounters>>,
}

impl Probe {
    pub fn sample(&self) -> Sample {
        Sample {
            weir_cpu_ticks: self.weir_pid.and_then(|pid| procstat::cpu_ticks(pid).ok()),
            self_cpu_ticks: procstat::self_cpu_ticks().ok(),
            client_cpu_ticks: procstat::self_threads_cpu_ticks(THREAD_NAME),
            sink_cpu_ticks: procstat::self_threads_cpu_ticks(crate::sink::THREAD_NAME),
            sink_spans: self.sink.as_ref().map(|s| s.spans()),
        }
    }
}

/// The result of a run.
pub struct LoadOutcome {
    pub warmup: PhaseStats,
    pub measured: PhaseStats,
    /// Latency of successful measured requests, in microseconds.
    pub latency: Histogram<u64>,
    /// From the window's start to the end of its last request.
    pub window: Duration,
    pub stop_reason: StopReason,
    pub before: Sample,
    pub after: Sample,
}

struct Shared {
    window_start: Instant,
    window_end: Instant,
    max_requests: u64,
    issued: AtomicU64,
    hit_max_requests: AtomicBool,
}

struct WorkerResult {
    warmup: PhaseStats,
    measured: PhaseStats,
    latency: Histogram<u64>,
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| anyhow!("creating a latency histogram: {e:?}"))
}

/// Runs the warm-up and the measured window. `senders` are assigned to tasks
/// round-robin; task `i` starts at payload `i` and cycles through all of them.
pub async fn run(
    config: &LoadConfig,
    senders: Vec<Sender>,
    payloads: Arc<Vec<Payload>>,
    probe: &Probe,
) -> Result<LoadOutcome> {
    anyhow::ensure!(!senders.is_empty(), "no senders");
    anyhow::ensure!(!payloads.is_empty(), "no payloads");
    let window_start = Instant::now() + config.warmup;
    let shared = Arc::new(Shared {
        window_start,
        window_end: window_start + config.duration,
        max_requests: config.max_requests,
        issued: AtomicU64::new(0),
        hit_max_requests: AtomicBool::new(false),
    });

    let mut tasks = JoinSet::new();
    for i in 0..config.concurrency {
        let sender = senders[i % senders.len()].clone();
        let latency = new_histogram()?;
        // Each sender keeps 1/concurrency of the rate, its first request offset by its share of one
        // interval so that the senders do not fire together.
        let pace = config.rate.filter(|r| *r > 0.0).map(|r| {
            let interval = Duration::from_secs_f64(config.concurrency as f64 / r);
            (
                interval,
                interval.mul_f64(i as f64 / config.concurrency as f64),
            )
        });
        tasks.spawn(worker(
            i,
            sender,
            Arc::clone(&payloads),
            Arc::clone(&shared),
            config.request_timeout,
            latency,
            pace,
        ));
    }

    tokio::time::sleep_until(window_start).await;
    let before = probe.sample();

    // Each task finishes at most one request timeout after the window closes.
    let join_deadline = shared.window_end + config.request_timeout + Duration::from_secs(5);
    let mut warmup = PhaseStats::default();
    let mut measured = PhaseStats::default();
    let mut latency = new_histogram()?;
    loop {
        let next = tokio::time::timeout_at(join_deadline, tasks.join_next()).await;
        let joined = match next {
            Ok(Some(joined)) => joined,
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                anyhow::bail!("sender tasks did not finish by the deadline");
            }
        };
        let result = joined.context("a sender task panicked")?;
        warmup.merge(result.warmup);
        measured.merge(result.measured);
        latency
            .add(&result.latency)
            .map_err(|e| anyhow!("merging latency histograms: {e:?}"))?;
    }
    let window = Instant::now().saturating_duration_since(window_start);
    let after = probe.sample();

    let stop_reason = if shared.hit_max_requests.load(Ordering::Relaxed) {
        StopReason::MaxRequests
    } else {
        StopReason::Duration
    };
    Ok(LoadOutcome {
        warmup,
        measured,
        latency,
        window,
        stop_reason,
        before,
        after,
    })
}

async fn worker(
    index: usize,
    mut sender: Sender,
    payloads: Arc<Vec<Payload>>,
    shared: Arc<Shared>,
    request_timeout: Duration,
    mut latency: Histogram<u64>,
    pace: Option<(Duration, Duration)>,
) -> WorkerResult {
    let mut warmup = PhaseStats::default();
    let mut measured = PhaseStats::default();
    let mut next = index % payloads.len();
    let mut due = pace.map(|(_, offset)| Instant::now() + offset);
    loop {
        if let (Some(at), Some((interval, _))) = (due.as_mut(), pace) {
            tokio::time::sleep_until(*at).await;
            // A sender that fell behind does not burst to catch up: the next request is one interval
            // after this one at the earliest.
            *at = (*at + interval).max(Instant::now());
        }
        let start = Instant::now();
        if start >= shared.window_end || shared.hit_max_requests.load(Ordering::Relaxed) {
            break;
        }
        let in_window = start >= shared.window_start;
        if in_window && shared.issued.fetch_add(1, Ordering::Relaxed) >= shared.max_requests {
            shared.hit_max_requests.store(true, Ordering::Relaxed);
            break;
        }
        let payload = &payloads[next];
        next = (next + 1) % payloads.len();

        let result =
            match tokio::time::timeout(request_timeout, sender.send(payload.body.clone())).await {
                Ok(result) => result,
                Err(_) => Err(Failure::timeout(request_timeout)),
            };
        let failed = result.is_err();
        if in_window {
            if result.is_ok() {
                let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                latency.saturating_record(micros.max(1));
            }
            measured.record(payload, &result);
        } else {
            warmup.record(payload, &result);
        }
        if failed {
            // Don't spin on a server that refuses instantly.
            tokio::time::sleep(FAILURE_BACKOFF).await;
        }
    }
    WorkerResult {
        warmup,
        measured,
        latency,
    }
}
