//! Per-signal pipelines: a decoded [`Batch`] goes through the filter chain seam, then to every exporter
//! of its pipeline, and the client's acknowledgement waits for all of them.
//!
//! Acknowledgement rule: [`Pipeline::process`] returns `Ok` only after every exporter's upstream accepted
//! the data; any failure makes the whole request fail (retryable if any failure was), so weir never says
//! OK for data it might lose. When one exporter accepted and another did not, the client's retry gives
//! the first a duplicate: delivery is at least once.

mod chain;
mod signal;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::future::join_all;

pub use chain::{Chain, ChainError};
pub use signal::{Payload, Signal};

use crate::exporter::{ExportError, ExportRequest, Exporter};
use crate::telemetry::{Metrics, RefuseReason};

/// Where a batch came from, for filters (later), logs and metrics.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address, when known.
    pub peer: Option<std::net::SocketAddr>,
    /// The request's headers (gRPC metadata), which filters may read.
    pub headers: http::HeaderMap,
    /// When the request must be answered: the sooner of `limits.request_timeout` and the client's
    /// own deadline (`grpc-timeout`).
    pub deadline: Instant,
}

/// One decoded request on its way through a pipeline.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The OTLP request.
    pub payload: Payload,
    /// Where it came from and until when it may take.
    pub context: RequestContext,
}

/// The upstream's OTLP partial success, passed back to the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    /// Items the upstream(s) rejected (the largest count when several did).
    pub rejected: i64,
    /// Their explanation(s).
    pub message: String,
}

impl PartialSuccess {
    /// True when nothing was rejected and nothing was said.
    pub fn is_empty(&self) -> bool {
        self.rejected == 0 && self.message.is_empty()
    }

    fn merge(&mut self, exporter: &str, other: PartialSuccess) {
        if other.is_empty() {
            return;
        }
        self.rejected = self.rejected.max(other.rejected);
        if !other.message.is_empty() {
            if !self.message.is_empty() {
                self.message.push_str("; ");
            }
            self.message.push_str(exporter);
            self.message.push_str(": ");
            self.message.push_str(&other.message);
        }
    }
}

/// Why a request was not acknowledged: decides the client's status code.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No pipeline handles this signal.
    #[error("no pipeline for {0}")]
    NoPipeline(Signal),
    /// The deadline passed before every upstream answered.
    #[error("deadline exceeded before the upstream answered")]
    Timeout,
    /// The filter chain refused the batch.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// An exporter failed; retryable or not as the upstream said.
    #[error("exporter {exporter}: {source}")]
    Export {
        /// The exporter's name.
        exporter: String,
        /// What happened.
        source: ExportError,
    },
}

impl Refusal {
    /// Whether the client should retry.
    pub fn retryable(&self) -> bool {
        match self {
            Refusal::NoPipeline(_) => false,
            Refusal::Timeout => true,
            Refusal::Chain(e) => e.retryable(),
            Refusal::Export { source, .. } => source.retryable(),
        }
    }

    /// The metric reason.
    pub fn reason(&self) -> RefuseReason {
        match self {
            Refusal::NoPipeline(_) => RefuseReason::NoPipeline,
            Refusal::Timeout => RefuseReason::Timeout,
            Refusal::Chain(e) if e.retryable() => RefuseReason::FilterFailed,
            Refusal::Chain(_) => RefuseReason::FilterRejected,
            Refusal::Export { source, .. } if source.retryable() => {
                RefuseReason::UpstreamUnavailable
            }
            Refusal::Export { .. } => RefuseReason::UpstreamRejected,
        }
    }
}

/// An exporter with the name the configuration gave it.
#[derive(Debug)]
pub struct NamedExporter {
    /// Name from `exporters:`.
    pub name: String,
    /// The exporter.
    pub exporter: Exporter,
}

/// One signal's pipeline: chain, then exporters.
#[derive(Debug)]
pub struct Pipeline {
    signal: Signal,
    chain: ArcSwap<Chain>,
    exporters: Vec<Arc<NamedExporter>>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// A pipeline for `signal` sending to `exporters`.
    pub fn new(
        signal: Signal,
        chain: Chain,
        exporters: Vec<Arc<NamedExporter>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            signal,
            chain: ArcSwap::from_pointee(chain),
            exporters,
            metrics,
        }
    }

    /// The signal.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The chain new requests run on.
    pub fn chain(&self) -> Arc<Chain> {
        self.chain.load_full()
    }

    /// Swaps in a new chain atomically: requests in flight finish on the chain they started with.
    pub fn swap_chain(&self, chain: Chain) -> Arc<Chain> {
        self.chain.swap(Arc::new(chain))
    }

    /// Runs the batch through the chain and every exporter; `Ok` means every upstream accepted it.
    pub async fn process(&self, batch: Batch) -> Result<PartialSuccess, Refusal> {
        let deadline = batch.context.deadline;
        // One load per request: a swap during the request does not affect it.
        let chain = self.chain.load_full();
        let batch = if chain.filters().is_empty() {
            batch
        } else {
            run_blocking(|| chain.apply(batch))?
        };
        let items = batch.payload.item_count();
        if items == 0 {
            // An empty request succeeds without bothering the upstream.
            return Ok(PartialSuccess::default());
        }
        // Encoded once, shared by every exporter and every retry.
        let body = Bytes::from(batch.payload.encode_protobuf());
        let request = ExportRequest {
            signal: self.signal,
            payload: &batch.payload,
            body,
            items,
            deadline,
        };
        let sends = self.exporters.iter().map(|e| {
            let request = &request;
            async move {
                let started = Instant::now();
                let result = e.exporter.export(&e.name, request, &self.metrics).await;
                (e, result, started.elapsed())
            }
        });
        let deadline = tokio::time::Instant::from_std(deadline);
        let results = tokio::time::timeout_at(deadline, join_all(sends))
            .await
            .map_err(|_| {
                for e in &self.exporters {
                    self.metrics
                        .export_failed(self.signal, &e.name, items, true);
                }
                Refusal::Timeout
            })?;
        let mut partial = PartialSuccess::default();
        let mut failure: Option<Refusal> = None;
        for (e, result, elapsed) in results {
            match result {
                Ok(p) => {
                    let rejected = u64::try_from(p.rejected).unwrap_or(0);
                    self.metrics
                        .items_exported(self.signal, &e.name, items, rejected, elapsed);
                    partial.merge(&e.name, p);
                }
                Err(source) => {
                    let retryable = source.retryable();
                    self.metrics
                        .export_failed(self.signal, &e.name, items, retryable);
                    tracing::warn!(
                        exporter = %e.name, signal = %self.signal, items, retryable,
                        error = %source, "export failed"
                    );
                    // A retryable failure wins: the client's retry then reaches the upstream that
                    // failed for the moment.
                    let replace = match &failure {
                        None => true,
                        Some(f) => retryable && !f.retryable(),
                    };
                    if replace {
                        failure = Some(Refusal::Export {
                            exporter: e.name.clone(),
                            source,
                        });
                    }
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(partial),
        }
    }
}

/// The pipelines of all signals.
#[derive(Debug, Default)]
pub struct Pipelines {
    traces: Option<Pipeline>,
    metrics: Option<Pipeline>,
    logs: Option<Pipeline>,
}

impl Pipelines {
    /// Installs the pipeline of its signal.
    pub fn insert(&mut self, pipeline: Pipeline) {
        let slot = match pipeline.signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        };
        *slot = Some(pipeline);
    }

    /// The pipeline of `signal`, if configured.
    pub fn get(&self, signal: Signal) -> Option<&Pipeline> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Logs => self.logs.as_ref(),
        }
    }

    /// Processes a batch in its signal's pipeline, bounded by its deadline.
    pub async fn process(&self, batch: Batch) -> Result<PartialSuccess, Refusal> {
        let signal = batch.payload.signal();
        let pipeline = self.get(signal).ok_or(Refusal::NoPipeline(signal))?;
        pipeline.process(batch).await
    }
}

/// Runs CPU-bound, synchronous work (Wasm filter calls, which may also make blocking WASI calls) without
/// stalling the other tasks of a multi-threaded runtime: the worker hands its queue to another thread for
/// the duration. Elsewhere (a current-thread runtime, no runtime) it simply calls `f`.
fn run_blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Time left until `deadline`, zero when it passed.
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
