//! Each exporter's own bounded queue and senders.
//!
//! A pipeline first reserves room in the queue of every exporter a batch is routed to, all or nothing:
//! when one queue is full the request is refused with a retryable status and no exporter got a copy.
//! Then it enqueues one job per exporter and waits for their answers. Each exporter's dispatcher hands
//! jobs, in order, to at most `queue.concurrency` senders, which retry within the job's deadline.
//!
//! With `queue.durable` the queue is a [`DurableQueue`] on disk instead: a job is acknowledged once it
//! is written and synced, and a separate delivery loop sends records in order, retrying until the
//! upstream accepts or refuses them for good.
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

use super::durable::{DurableError, DurableQueue, Record};
use super::{ExportRequest, Exporter};
use weir_core::config::{QueueConfig, SyncPolicy};
use weir_core::telemetry::Metrics;
use weir_core::{ExportError, QueueFull};
use weir_core::{PartialSuccess, Payload, Signal};

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
    durable: Option<Arc<DurableQueue>>,
    metrics: Arc<Metrics>,
}

/// Room for one job in one exporter's queue, taken before anything is sent.
#[derive(Debug)]
pub struct Reservation {
    room: Room,
    size: usize,
    name: Arc<str>,
    metrics: Arc<Metrics>,
}

/// The room a reservation holds.
#[derive(Debug)]
enum Room {
    Memory {
        slot: mpsc::OwnedPermit<Job>,
        bytes: OwnedSemaphorePermit,
    },
    Durable {
        queue: Arc<DurableQueue>,
        bytes: OwnedSemaphorePermit,
    },
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
    items: usize,
    name: Arc<str>,
    metrics: Arc<Metrics>,
}

impl Drop for Accounted {
    fn drop(&mut self) {
        self.metrics
            .queue_changed(&self.name, -1, -(self.items as i64), -(self.size as i64));
    }
}

impl ExporterQueue {
    /// Starts `exporter`'s dispatcher on the current tokio runtime. With `config.durable`, the queue
    /// lives in `durable_dir` (and what a previous run left there is delivered first).
    pub fn spawn(
        name: &str,
        exporter: Exporter,
        config: &QueueConfig,
        durable_dir: Option<&std::path::Path>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, DurableError> {
        let name: Arc<str> = Arc::from(name);
        // Touch the gauges so that they show 0 from the start.
        metrics.queue_changed(&name, 0, 0, 0);
        let durable = match (config.durable, durable_dir) {
            (true, Some(dir)) => Some(DurableQueue::open(
                dir,
                &name,
                config.max_disk_bytes,
                config.segment_bytes as u64,
                config.sync == SyncPolicy::Always,
                metrics.clone(),
            )?),
            _ => None,
        };
        let (tx, rx) = mpsc::channel(config.max_batches);
        let max_bytes = config.max_bytes.min(u32::MAX as usize);
        let exporter = Arc::new(exporter);
        match &durable {
            Some(q) => {
                let (n, m, queue) = (name.clone(), metrics.clone(), q.clone());
                let next = q.clone();
                tokio::spawn(dispatch(
                    config.concurrency,
                    async move || Some(next.next().await),
                    move |record| {
                        let (name, exporter, metrics, queue) =
                            (n.clone(), exporter.clone(), m.clone(), queue.clone());
                        async move {
                            deliver_record(&name, &exporter, &queue, &record, &metrics).await;
                            queue.done(&record);
                        }
                    },
                ));
                tokio::spawn(watch_age(name.clone(), Arc::downgrade(q), metrics.clone()));
            }
            None => {
                let (n, m, mut rx) = (name.clone(), metrics.clone(), rx);
                tokio::spawn(dispatch(
                    config.concurrency,
                    async move || rx.recv().await,
                    move |job| {
                        let (name, exporter, metrics) = (n.clone(), exporter.clone(), m.clone());
                        async move { deliver(&name, &exporter, job, &metrics).await }
                    },
                ));
            }
        }
        Ok(Arc::new(Self {
            name,
            tx,
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            durable,
            metrics,
        }))
    }

    /// True when the queue is on disk: its answer means "written", not "delivered".
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
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
        if let Some(queue) = &self.durable {
            let bytes = queue.reserve(size).ok_or_else(full)?;
            return Ok(Reservation {
                room: Room::Durable {
                    queue: queue.clone(),
                    bytes,
                },
                size,
                name: self.name.clone(),
                metrics: self.metrics.clone(),
            });
        }
        let slot = self.tx.clone().try_reserve_owned().map_err(|_| full())?;
        let cost = size.clamp(1, self.max_bytes) as u32;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| full())?;
        Ok(Reservation {
            room: Room::Memory { slot, bytes },
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
        let items = payload.item_count();
        let (slot, bytes) = match self.room {
            Room::Memory { slot, bytes } => (slot, bytes),
            Room::Durable { queue, bytes } => {
                // Acknowledged once written and synced; delivery follows from the disk.
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = queue.append(signal, items, body, bytes).await;
                    let outcome = result
                        .map(|_| (PartialSuccess::default(), started.elapsed()))
                        .map_err(|e| {
                            tracing::error!(error = %e, "durable queue write failed");
                            ExportError::unavailable(format!(
                                "{e}; the batch was not queued, retry later"
                            ))
                        });
                    let _ = ack.send(outcome);
                });
                return rx;
            }
        };
        self.metrics
            .queue_changed(&self.name, 1, items as i64, self.size as i64);
        slot.send(Job {
            signal,
            payload,
            body,
            items,
            deadline,
            ack,
            _accounted: Accounted {
                _bytes: bytes,
                size: self.size,
                items,
                name: self.name,
                metrics: self.metrics,
            },
        });
        rx
    }
}

/// Hands jobs in queue order to at most `concurrency` senders.
/// Runs `deliver` on each item `next` yields, at most `concurrency` at once, each in its own task, until
/// `next` yields `None`. A sender slot is taken before the next item, so items wait in their queue (where
/// they are counted and bounded), not in spawned tasks.
async fn dispatch<T, F>(
    concurrency: usize,
    mut next: impl AsyncFnMut() -> Option<T>,
    deliver: impl Fn(T) -> F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let senders = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        let Ok(sender) = senders.clone().acquire_owned().await else {
            return;
        };
        let Some(item) = next().await else {
            return;
        };
        let work = deliver(item);
        tokio::spawn(async move {
            work.await;
            drop(sender);
        });
    }
}

/// How long one round of retries for a durable record may take before the next round starts.
const DURABLE_ROUND: Duration = Duration::from_secs(60);

async fn deliver_record(
    name: &str,
    exporter: &Exporter,
    queue: &DurableQueue,
    record: &Record,
    metrics: &Metrics,
) {
    let body = match queue.read(record) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(exporter = name, seq = record.seq, error = %e, "damaged queue record dropped");
            metrics.queue_dropped(record.signal, name, record.items);
            return;
        }
    };
    // The debug exporter prints the decoded batch; the OTLP exporters send the bytes as they are.
    let payload = match exporter {
        Exporter::Debug(_) => Payload::decode_protobuf(record.signal, &body).ok(),
        _ => None,
    }
    .unwrap_or_else(|| Payload::empty(record.signal));
    loop {
        let started = Instant::now();
        let request = ExportRequest {
            signal: record.signal,
            payload: &payload,
            body: body.clone(),
            items: record.items,
            deadline: Instant::now() + DURABLE_ROUND,
        };
        match exporter.export(name, &request, metrics).await {
            Ok(p) => {
                let rejected = u64::try_from(p.rejected).unwrap_or(0);
                metrics.items_exported(
                    record.signal,
                    name,
                    record.items,
                    rejected,
                    started.elapsed(),
                );
                if !p.is_empty() {
                    tracing::warn!(
                        exporter = name, rejected = p.rejected, message = %p.message,
                        "upstream partially accepted a queued batch"
                    );
                }
                return;
            }
            Err(e) if e.retryable() => {
                tracing::warn!(
                    exporter = name, seq = record.seq, error = %e,
                    "upstream still unavailable; the queued batch waits"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                metrics.export_failed(record.signal, name, record.items, false);
                metrics.queue_dropped(record.signal, name, record.items);
                tracing::error!(
                    exporter = name, seq = record.seq, items = record.items, error = %e,
                    "upstream refused a queued batch for good; it is dropped"
                );
                return;
            }
        }
    }
}

/// Keeps `weir_exporter_queue_oldest_age_seconds` current.
async fn watch_age(name: Arc<str>, queue: std::sync::Weak<DurableQueue>, metrics: Arc<Metrics>) {
    loop {
        let Some(q) = queue.upgrade() else { return };
        metrics.queue_oldest(&name, q.oldest_age());
        drop(q);
        tokio::time::sleep(Duration::from_secs(1)).await;
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
    use crate::DebugExporter;
    use weir_core::config::DebugExporterConfig;

    fn queue(max_batches: usize, max_bytes: usize) -> Arc<ExporterQueue> {
        let config = QueueConfig {
            max_batches,
            max_bytes,
            concurrency: 1,
            ..Default::default()
        };
        ExporterQueue::spawn(
            "q",
            Exporter::Debug(DebugExporter::new(DebugExporterConfig::default().verbosity)),
            &config,
            None,
            Arc::new(Metrics::new()),
        )
        .unwrap()
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
