//! Each exporter's own bounded queue and senders.
//!
//! A pipeline first reserves room in the queue of every exporter a batch is routed to, all or nothing:
//! when one queue is full the request is refused with a retryable status and no exporter got a copy.
//! Then it enqueues one job per exporter and waits for their answers. Each exporter's dispatcher hands
//! jobs, in order, to at most `queue.concurrency` senders, which retry within the job's deadline.
//!
//! The queue is what keeps one upstream's trouble to itself: a dead upstream fills its own queue and
//! then refuses only the requests routed to it, while the admission slots those requests would have held
//! stay free for everyone else (a pipeline gives its slot back once its jobs are queued). A job whose
//! client stopped waiting is abandoned rather than sent: the client retries it, and sending it as well
//! would only make a duplicate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::{ExportError, ExportRequest, Exporter};
use crate::config::QueueConfig;
use crate::pipeline::{PartialSuccess, Payload, Signal};
use crate::telemetry::Metrics;

/// What an exporter answers for one job: the upstream's partial success and how long delivery took, or
/// why it failed.
pub type Outcome = Result<(PartialSuccess, Duration), ExportError>;

/// An exporter with its queue: the handle pipelines send to.
#[derive(Debug)]
pub struct ExporterQueue {
    name: Arc<str>,
    tx: mpsc::Sender<Job>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    metrics: Arc<Metrics>,
}

/// The exporter's queue has no room for the batch.
#[derive(Debug, thiserror::Error)]
#[error("exporter {exporter}'s queue is full")]
pub struct QueueFull {
    /// The exporter's name.
    pub exporter: String,
}

/// Room for one job in one exporter's queue, taken before anything is sent.
#[derive(Debug)]
pub struct Reservation {
    slot: mpsc::OwnedPermit<Job>,
    bytes: OwnedSemaphorePermit,
    size: usize,
    name: Arc<str>,
    metrics: Arc<Metrics>,
}

/// One batch for one exporter.
#[derive(Debug)]
pub struct Job {
    signal: Signal,
    payload: Arc<Payload>,
    body: Bytes,
    items: usize,
    deadline: Instant,
    ack: oneshot::Sender<Outcome>,
    _accounted: Accounted,
}

/// Keeps the queue's byte budget and gauges right however a job ends.
#[derive(Debug)]
struct Accounted {
    _bytes: OwnedSemaphorePermit,
    size: usize,
    name: Arc<str>,
    metrics: Arc<Metrics>,
}

impl Drop for Accounted {
    fn drop(&mut self) {
        self.metrics
            .queue_changed(&self.name, -1, -(self.size as i64));
    }
}

impl ExporterQueue {
    /// Starts `exporter`'s dispatcher on the current tokio runtime.
    pub fn spawn(
        name: &str,
        exporter: Exporter,
        config: &QueueConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let name: Arc<str> = Arc::from(name);
        let (tx, rx) = mpsc::channel(config.max_batches);
        let max_bytes = config.max_bytes.min(u32::MAX as usize);
        tokio::spawn(dispatch(
            name.clone(),
            Arc::new(exporter),
            rx,
            config.concurrency,
            metrics.clone(),
        ));
        // Touch the gauges so that they show 0 from the start.
        metrics.queue_changed(&name, 0, 0);
        Arc::new(Self {
            name,
            tx,
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            metrics,
        })
    }

    /// The exporter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes room for a job of `size` encoded bytes, or says the queue is full. Never waits. A batch
    /// larger than the whole budget counts as the whole budget, so it goes through an empty queue.
    pub fn reserve(&self, size: usize) -> Result<Reservation, QueueFull> {
        let full = || QueueFull {
            exporter: self.name.to_string(),
        };
        let slot = self.tx.clone().try_reserve_owned().map_err(|_| full())?;
        let cost = size.clamp(1, self.max_bytes) as u32;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| full())?;
        Ok(Reservation {
            slot,
            bytes,
            size,
            name: self.name.clone(),
            metrics: self.metrics.clone(),
        })
    }
}

impl Reservation {
    /// The exporter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Enqueues the batch; the receiver gets the exporter's outcome.
    pub fn send(
        self,
        signal: Signal,
        payload: Arc<Payload>,
        body: Bytes,
        deadline: Instant,
    ) -> oneshot::Receiver<Outcome> {
        let (ack, rx) = oneshot::channel();
        self.metrics.queue_changed(&self.name, 1, self.size as i64);
        let items = payload.item_count();
        self.slot.send(Job {
            signal,
            payload,
            body,
            items,
            deadline,
            ack,
            _accounted: Accounted {
                _bytes: self.bytes,
                size: self.size,
                name: self.name,
                metrics: self.metrics,
            },
        });
        rx
    }
}

/// Hands jobs in queue order to at most `concurrency` senders.
async fn dispatch(
    name: Arc<str>,
    exporter: Arc<Exporter>,
    mut rx: mpsc::Receiver<Job>,
    concurrency: usize,
    metrics: Arc<Metrics>,
) {
    let senders = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        let Ok(sender) = senders.clone().acquire_owned().await else {
            return;
        };
        let Some(job) = rx.recv().await else {
            return;
        };
        let (name, exporter, metrics) = (name.clone(), exporter.clone(), metrics.clone());
        tokio::spawn(async move {
            deliver(&name, &exporter, job, &metrics).await;
            drop(sender);
        });
    }
}

/// Sends one job, retrying within its deadline, unless its client stops waiting first.
async fn deliver(name: &str, exporter: &Exporter, job: Job, metrics: &Metrics) {
    let Job {
        signal,
        payload,
        body,
        items,
        deadline,
        mut ack,
        _accounted,
    } = job;
    if ack.is_closed() {
        metrics.export_abandoned(signal, name, items);
        return;
    }
    let request = ExportRequest {
        signal,
        payload: &payload,
        body,
        items,
        deadline,
    };
    let started = Instant::now();
    let result = tokio::select! {
        r = exporter.export(name, &request, metrics) => r,
        () = ack.closed() => {
            metrics.export_abandoned(signal, name, items);
            return;
        }
    };
    let elapsed = started.elapsed();
    match &result {
        Ok(p) => {
            let rejected = u64::try_from(p.rejected).unwrap_or(0);
            metrics.items_exported(signal, name, items, rejected, elapsed);
        }
        Err(e) => {
            let retryable = e.retryable();
            metrics.export_failed(signal, name, items, retryable);
            tracing::warn!(
                exporter = name, %signal, items, retryable, error = %e, "export failed"
            );
        }
    }
    let _ = ack.send(result.map(|p| (p, elapsed)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DebugExporterConfig;
    use crate::exporter::DebugExporter;

    fn queue(max_batches: usize, max_bytes: usize) -> Arc<ExporterQueue> {
        let config = QueueConfig {
            max_batches,
            max_bytes,
            concurrency: 1,
        };
        ExporterQueue::spawn(
            "q",
            Exporter::Debug(DebugExporter::new(DebugExporterConfig::default().verbosity)),
            &config,
            Arc::new(Metrics::new()),
        )
    }

    #[tokio::test]
    async fn reservations_are_bounded_by_batches_and_bytes_and_given_back() {
        let q = queue(2, 100);
        let a = q.reserve(40).unwrap();
        let b = q.reserve(40).unwrap();
        assert!(q.reserve(1).is_err(), "two batches at most");
        drop(b);
        assert!(q.reserve(61).is_err(), "100 bytes at most");
        let c = q.reserve(60).unwrap();
        drop((a, c));
        // Larger than the whole budget: fits an empty queue.
        let big = q.reserve(1000).unwrap();
        assert!(q.reserve(1).is_err());
        drop(big);
        assert!(q.reserve(100).is_ok());
    }

    #[tokio::test]
    async fn a_queued_job_is_delivered_and_its_room_given_back() {
        let q = queue(1, 100);
        let payload = Arc::new(Payload::Traces(Default::default()));
        let rx = q.reserve(10).unwrap().send(
            Signal::Traces,
            payload,
            Bytes::new(),
            Instant::now() + Duration::from_secs(5),
        );
        let (partial, _) = rx.await.unwrap().unwrap();
        assert!(partial.is_empty());
        // The job's room comes back once it is done (the sender drops it just after answering).
        let deadline = Instant::now() + Duration::from_secs(5);
        while q.reserve(100).is_err() {
            assert!(Instant::now() < deadline, "room never came back");
            tokio::task::yield_now().await;
        }
        let text = q.metrics.render();
        assert!(
            text.contains("weir_exporter_queue_batches{exporter=\"q\"} 0"),
            "{text}"
        );
    }
}
