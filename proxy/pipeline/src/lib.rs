//! Per-signal pipelines: a [`Batch`] goes through the filter chain (decoded for it only when it has
//! filters), is split by the route labels filters set, and each part is queued to the exporters it is
//! routed to ([`ExporterQueue`]); the client's acknowledgement waits for every one of them. Without
//! filters, the bytes queued are the bytes the client sent.
//!
//! Routing rule: an item labelled by a filter (WIT `set-route`, `set-item-route`) goes to exactly the
//! exporters its labels name; an unlabelled item goes to the pipeline's `exporters`. A label naming an
//! exporter weir does not have is ignored and counted (`weir_route_unknown_items`); an item whose labels
//! name no known exporter at all goes to the pipeline's `exporters`, so that nothing is lost to a typo.
//! Each distinct part is encoded once and shared by all its exporters and their retries.
//!
//! Acknowledgement rule: [`Pipeline::process`] returns `Ok` only after every exporter the data was routed
//! to accepted it; any failure makes the whole request fail (retryable if any failure was), so weir never
//! says OK for data it might lose. One exporter's trouble (a full queue) does not hold the others' parts
//! back: they go out as usual. When one exporter accepted and another did not, the client's retry gives
//! the first a duplicate: delivery is at least once.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::future::join_all;
use tokio::sync::OwnedSemaphorePermit;

use weir_core::telemetry::Metrics;
use weir_core::{
    Batch, Body, ChainError, Dispatch, Encoded, PartialSuccess, QueueFull, Refusal, Routing, Signal,
};
use weir_exporter::ExporterQueue;
use weir_filter::Chain;

/// Every exporter weir runs, by name: the valid route labels.
pub type Exporters = BTreeMap<String, Arc<ExporterQueue>>;

/// One signal's pipeline: chain, then the exporters each item is routed to.
#[derive(Debug)]
pub struct Pipeline {
    signal: Signal,
    chain: ArcSwap<Chain>,
    /// Where unlabelled items go: the pipeline's `exporters`.
    defaults: Vec<Arc<ExporterQueue>>,
    /// Every exporter, for route labels.
    all: Arc<Exporters>,
    metrics: Arc<Metrics>,
}

/// One part of a batch, encoded, and the exporters it goes to.
struct Delivery {
    encoded: Encoded,
    exporters: Vec<Arc<ExporterQueue>>,
}

impl Pipeline {
    /// A pipeline for `signal` sending unlabelled items to `defaults` (names from `all`).
    pub fn new(
        signal: Signal,
        chain: Chain,
        defaults: &[String],
        all: Arc<Exporters>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            signal,
            chain: ArcSwap::from_pointee(chain),
            defaults: defaults
                .iter()
                .filter_map(|n| all.get(n).cloned())
                .collect(),
            all,
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

    /// Runs the batch through the chain and queues it to every exporter it is routed to; `Ok` means
    /// every one of them delivered it. `admission` (the receiver's slot) is given back once the batch
    /// is queued: from then on the queues bound what waits.
    ///
    /// An exporter whose queue is full refuses its part without holding the others back: they are
    /// queued and delivered at their normal pace, and the client then gets a retryable refusal for
    /// the part that could not be taken. Its retry sends the delivered parts again (at least once);
    /// `weir_exporter_refused_delivered_items_total` counts them.
    pub async fn process(
        &self,
        batch: Batch,
        admission: Option<OwnedSemaphorePermit>,
    ) -> Result<PartialSuccess, Refusal> {
        let deadline = batch.context.deadline;
        let tenant = batch.context.tenant.clone();
        // One load per request: a swap during the request does not affect it.
        let chain = self.chain.load_full();
        let batch = if chain.filters().is_empty() {
            batch
        } else {
            run_blocking(|| chain.apply(batch))?
        };
        if batch.body.items() == 0 {
            // An empty request succeeds without bothering the upstream.
            return Ok(PartialSuccess::default());
        }
        let deliveries = self.route(batch.body, batch.routing)?;
        let mut full: Option<QueueFull> = None;
        let mut waits = Vec::new();
        for d in &deliveries {
            for e in &d.exporters {
                match e.reserve(d.encoded.len(), tenant.as_ref()) {
                    // Shared, not copied, by its exporters and every retry.
                    Ok(r) => waits.push((
                        r.name_shared(),
                        d.encoded.items(),
                        r.send(d.encoded.clone(), deadline),
                    )),
                    Err(f) => {
                        full.get_or_insert(f);
                    }
                }
            }
        }
        drop(admission);
        if waits.is_empty() {
            return Err(full.map_or(Refusal::Timeout, Refusal::QueueFull));
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        let results = tokio::time::timeout_at(
            deadline,
            join_all(
                waits
                    .into_iter()
                    .map(|(name, items, rx)| async move { (name, items, rx.await) }),
            ),
        )
        .await
        .map_err(|_| Refusal::Timeout)?;
        let mut partial = PartialSuccess::default();
        let mut failure: Option<Refusal> = full.map(Refusal::QueueFull);
        let mut delivered = Vec::new();
        for (name, items, result) in results {
            match result {
                Ok(Ok((p, _elapsed))) => {
                    partial.merge(&name, p);
                    delivered.push((name, items));
                }
                // The sender went away without answering: only when weir shuts down.
                Err(_) => {
                    failure.get_or_insert(Refusal::Timeout);
                }
                Ok(Err(source)) => {
                    // A retryable failure wins: the client's retry then reaches the upstream that
                    // failed for the moment.
                    let replace = match &failure {
                        None => true,
                        Some(f) => source.retryable() && !f.retryable(),
                    };
                    if replace {
                        failure = Some(Refusal::Export {
                            exporter: name.to_string(),
                            source,
                        });
                    }
                }
            }
        }
        match failure {
            Some(f) => {
                for (name, items) in delivered {
                    self.metrics.refused_delivered(self.signal, &name, items);
                }
                Err(f)
            }
            None => Ok(partial),
        }
    }

    /// Splits the request by route labels into parts, one per distinct set of exporters. A part that
    /// is the whole request keeps its bytes (encoded only if it has none); the others are copied out of
    /// the decoded messages and encoded.
    fn route(&self, body: Body, routing: Option<Routing>) -> Result<Vec<Delivery>, Refusal> {
        let Some(routing) = routing else {
            return Ok(vec![Delivery {
                encoded: body.into_encoded(),
                exporters: self.defaults.clone(),
            }]);
        };
        // Group 0 is "unlabelled"; group k+1 is label set k. Each group's exporters, by name.
        let mut groups: Vec<Vec<&Arc<ExporterQueue>>> = vec![self.defaults.iter().collect()];
        for set in &routing.sets {
            let mut known = Vec::new();
            for name in set {
                match self.all.get(name) {
                    Some(e) => known.push(e),
                    None => {
                        let n = routing
                            .items
                            .iter()
                            .filter(|i| i.is_some_and(|k| routing.sets[k as usize] == *set))
                            .count();
                        self.metrics.route_unknown(self.signal, name, n);
                    }
                }
            }
            if known.is_empty() {
                known = self.defaults.iter().collect();
            }
            groups.push(known);
        }
        let group_of = |i: usize| {
            routing
                .items
                .get(i)
                .copied()
                .flatten()
                .map_or(0, |k| k as usize + 1)
        };
        let mut present = vec![false; groups.len()];
        for i in 0..routing.items.len() {
            present[group_of(i)] = true;
        }
        // Per exporter, the groups it receives; exporters receiving the same groups share one part.
        let mut by_exporter: BTreeMap<&str, (Arc<ExporterQueue>, Vec<bool>)> = BTreeMap::new();
        for (g, exporters) in groups.iter().enumerate() {
            if !present[g] {
                continue;
            }
            for e in exporters {
                by_exporter
                    .entry(e.name())
                    .or_insert_with(|| ((*e).clone(), vec![false; groups.len()]))
                    .1[g] = true;
            }
        }
        let mut parts: Vec<(Vec<bool>, Vec<Arc<ExporterQueue>>)> = Vec::new();
        for (_, (e, mask)) in by_exporter {
            match parts.iter_mut().find(|(m, _)| *m == mask) {
                Some((_, es)) => es.push(e),
                None => parts.push((mask, vec![e])),
            }
        }
        if let [(mask, _)] = &parts[..]
            && mask.iter().zip(&present).all(|(m, p)| *m || !p)
        {
            let exporters = parts.pop().map(|(_, e)| e).unwrap_or_default();
            return Ok(vec![Delivery {
                encoded: body.into_encoded(),
                exporters,
            }]);
        }
        // Each part copies only its own items; the last one takes the batch itself.
        let Some((last_mask, last_exporters)) = parts.pop() else {
            return Ok(Vec::new());
        };
        let mut payload = body
            .into_payload()
            .map_err(|e| Refusal::Chain(ChainError::Undecodable(e.to_string())))?;
        let mut deliveries: Vec<Delivery> = parts
            .into_iter()
            .map(|(mask, exporters)| Delivery {
                encoded: Encoded::encode(&payload.select_items(|i| mask[group_of(i)])),
                exporters,
            })
            .collect();
        payload.retain_items(|i| last_mask[group_of(i)]);
        deliveries.push(Delivery {
            encoded: Encoded::encode(&payload),
            exporters: last_exporters,
        });
        Ok(deliveries)
    }
}

/// The pipelines of all signals.
#[derive(Debug, Default)]
pub struct Pipelines {
    by_signal: [Option<Pipeline>; Signal::ALL.len()],
}

impl Pipelines {
    /// Installs the pipeline of its signal.
    pub fn insert(&mut self, pipeline: Pipeline) {
        let i = pipeline.signal.index();
        self.by_signal[i] = Some(pipeline);
    }

    /// The pipeline of `signal`, if configured.
    pub fn get(&self, signal: Signal) -> Option<&Pipeline> {
        self.by_signal[signal.index()].as_ref()
    }

    /// Processes a batch in its signal's pipeline, bounded by its deadline.
    pub async fn process(
        &self,
        batch: Batch,
        admission: Option<OwnedSemaphorePermit>,
    ) -> Result<PartialSuccess, Refusal> {
        let signal = batch.body.signal();
        let pipeline = self.get(signal).ok_or(Refusal::NoPipeline(signal))?;
        pipeline.process(batch, admission).await
    }
}

impl Dispatch for Pipelines {
    fn dispatch(
        &self,
        batch: Batch,
        admission: Option<OwnedSemaphorePermit>,
    ) -> Pin<Box<dyn Future<Output = Result<PartialSuccess, Refusal>> + Send + '_>> {
        Box::pin(self.process(batch, admission))
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

#[cfg(test)]
mod tests;
