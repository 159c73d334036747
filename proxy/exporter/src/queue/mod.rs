//! Each exporter's own bounded queue and senders.
//!
//! A pipeline reserves room in the queue of every exporter a batch is routed to, then enqueues one job
//! per exporter that had room and waits for their answers. Each exporter's dispatcher hands work, in
//! order, to at most `queue.concurrency` senders, which retry within the work's deadline.
//!
//! **Coalescing.** A sender that becomes free takes the next job and, with it, the jobs already
//! waiting behind it of the same signal, up to `queue.coalesce.max_items` and `max_bytes`: their
//! encodings concatenate into one upstream request (an OTLP export request is a list of resources).
//! It waits for more only when `queue.coalesce.flush_interval` asks it to, so at low load nothing waits
//! and at high load fewer, bigger requests go upstream. Every client in a merged request is answered
//! when that request is: success (with the upstream's partial success, see
//! [`PartialSuccess::for_part`]) or the same failure.
//!
//! With `queue.durable` the queue is a [`DurableQueue`] on disk instead: a job is acknowledged once it
//! is written and synced, and a separate delivery loop sends records in order (consecutive records of a
//! signal merged the same way), retrying until the upstream accepts or refuses them for good.
//!
//! The queue is what keeps one upstream's trouble to itself: a dead upstream fills its own queue and
//! then refuses only the requests routed to it, while the admission slots those requests would have held
//! stay free for everyone else (a pipeline gives its slot back once its jobs are queued). A job whose
//! client stopped waiting is abandoned rather than sent: the client retries it, and sending it as well
//! would only make a duplicate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::durable::{DurableError, DurableQueue, Layout, Record};
use super::{ExportRequest, Exporter};
use weir_core::config::{CoalesceConfig, QueueConfig, SyncPolicy};
use weir_core::telemetry::Metrics;
use weir_core::{Encoded, ExportError, PartialSuccess, QueueFull};

mod durable_delivery;
mod health;

use durable_delivery::{Policy, deliver_records, watch_age};
pub use health::{DOWN_AFTER, DOWN_AFTER_FAILURES, Health};

/// What an exporter answers for one job: the upstream's partial success and how long delivery took, or
/// why it failed.
pub type Outcome = Result<(PartialSuccess, Duration), ExportError>;

/// An exporter with its queue: the handle pipelines send to.
#[derive(Debug)]
pub struct ExporterQueue {
    name: Arc<str>,
    /// The upstream's health (memory queues refuse at once while it is down).
    health: Arc<Health>,
    /// `queue.max_batches`.
    max_batches: usize,
    /// The exporter sends the tenant upstream (`tenant_header`): jobs keep it and merge by it.
    keeps_tenant: bool,
    tx: mpsc::Sender<Job>,
    /// `queue.max_batches`: held by a job until it is answered, merged or not.
    batches: Arc<Semaphore>,
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
    tenant: Option<Arc<str>>,
    name: Arc<str>,
    metrics: Arc<Metrics>,
}

/// The room a reservation holds.
#[derive(Debug)]
enum Room {
    Memory {
        slot: mpsc::OwnedPermit<Job>,
        batch: OwnedSemaphorePermit,
        bytes: OwnedSemaphorePermit,
    },
    Durable {
        queue: Arc<DurableQueue>,
        bytes: OwnedSemaphorePermit,
    },
}

/// One client request for one exporter.
#[derive(Debug)]
pub struct Job {
    encoded: Encoded,
    tenant: Option<Arc<str>>,
    deadline: Instant,
    ack: oneshot::Sender<Outcome>,
    _accounted: Accounted,
}

/// Keeps the queue's byte budget and gauges right however a job ends.
#[derive(Debug)]
struct Accounted {
    _batch: OwnedSemaphorePermit,
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
                Layout {
                    max_bytes: config.max_disk_bytes,
                    segment_bytes: config.segment_bytes as u64,
                    max_record_bytes: config.coalesce.max_bytes,
                    sync: config.sync == SyncPolicy::Always,
                    cursor_every: Duration::from_secs(1),
                },
                metrics.clone(),
            )?),
            _ => None,
        };
        let (tx, rx) = mpsc::channel(config.max_batches);
        let health = Arc::new(Health::new(name.clone(), metrics.clone()));
        let max_bytes = config.max_bytes.min(u32::MAX as usize);
        // Only an exporter that sends the tenant upstream keeps it, and merges by it.
        let keeps_tenant = exporter.tenant_header().is_some();
        let exporter = Arc::new(exporter);
        let coalesce = config.coalesce.clone();
        match &durable {
            Some(q) => {
                let (n, m, queue) = (name.clone(), metrics.clone(), q.clone());
                let policy = Policy::of(config);
                let next = q.clone();
                let (max_items, merge_bytes, flush) = (
                    coalesce.max_items,
                    coalesce.max_bytes,
                    coalesce.flush_interval,
                );
                // What senders read back from disk to send is memory: `max_bytes` bounds it, as it
                // bounds a memory queue's.
                let in_flight = Arc::new(Semaphore::new(max_bytes));
                tokio::spawn(dispatch(
                    config.concurrency,
                    async move || {
                        let records = next.next_batch(max_items, merge_bytes, flush).await;
                        let bytes: usize = records.iter().map(Record::len).sum();
                        let cost = bytes.clamp(1, max_bytes) as u32;
                        let permit = in_flight.clone().acquire_many_owned(cost).await.ok()?;
                        Some((records, permit))
                    },
                    move |(records, permit)| {
                        let (name, exporter, metrics, queue) =
                            (n.clone(), exporter.clone(), m.clone(), queue.clone());
                        async move {
                            deliver_records(&name, &exporter, &queue, &records, policy, &metrics)
                                .await;
                            for r in &records {
                                queue.done(r);
                            }
                            drop(permit);
                        }
                    },
                ));
                tokio::spawn(watch_age(name.clone(), Arc::downgrade(q), metrics.clone()));
            }
            None => {
                let (n, m, h) = (name.clone(), metrics.clone(), health.clone());
                let mut coalescer = Coalescer {
                    rx,
                    held: None,
                    config: coalesce,
                };
                tokio::spawn(dispatch(
                    config.concurrency,
                    async move || coalescer.next().await,
                    move |jobs| {
                        let (name, exporter, metrics, health) =
                            (n.clone(), exporter.clone(), m.clone(), h.clone());
                        async move { deliver(&name, &exporter, jobs, &metrics, &health).await }
                    },
                ));
            }
        }
        Ok(Arc::new(Self {
            health,
            max_batches: config.max_batches,
            name,
            keeps_tenant,
            tx,
            batches: Arc::new(Semaphore::new(config.max_batches)),
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
    /// `tenant` is the request's, kept with it when this exporter sends tenants upstream.
    pub fn reserve(
        &self,
        size: usize,
        tenant: Option<&Arc<str>>,
    ) -> Result<Reservation, QueueFull> {
        let full = || QueueFull {
            exporter: self.name.to_string(),
            upstream_down: false,
        };
        let tenant = tenant.filter(|_| self.keeps_tenant).cloned();
        if let Some(queue) = &self.durable {
            let bytes = queue.reserve(size, tenant.as_deref()).ok_or_else(full)?;
            return Ok(Reservation {
                room: Room::Durable {
                    queue: queue.clone(),
                    bytes,
                },
                size,
                tenant,
                name: self.name.clone(),
                metrics: self.metrics.clone(),
            });
        }
        // While the upstream is down, only a batch that finds the queue empty goes in: it probes.
        if self.health.is_down() && self.batches.available_permits() < self.max_batches {
            return Err(QueueFull {
                exporter: self.name.to_string(),
                upstream_down: true,
            });
        }
        let batch = self
            .batches
            .clone()
            .try_acquire_owned()
            .map_err(|_| full())?;
        let slot = self.tx.clone().try_reserve_owned().map_err(|_| full())?;
        let cost = size.clamp(1, self.max_bytes) as u32;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| full())?;
        Ok(Reservation {
            room: Room::Memory { slot, batch, bytes },
            size,
            tenant,
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

    /// The exporter's name, shared (no copy).
    pub fn name_shared(&self) -> Arc<str> {
        self.name.clone()
    }

    /// Enqueues the request; the receiver gets the exporter's outcome.
    pub fn send(self, encoded: Encoded, deadline: Instant) -> oneshot::Receiver<Outcome> {
        let (ack, rx) = oneshot::channel();
        let items = encoded.items();
        let (slot, batch, bytes) = match self.room {
            Room::Memory { slot, batch, bytes } => (slot, batch, bytes),
            Room::Durable { queue, bytes } => {
                // Acknowledged once written and synced; delivery follows from the disk.
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = queue.append(encoded, self.tenant, bytes).await;
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
            encoded,
            tenant: self.tenant,
            deadline,
            ack,
            _accounted: Accounted {
                _batch: batch,
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

/// Takes jobs off a memory queue in order, merging those of one signal that are waiting (see the module
/// docs).
struct Coalescer {
    rx: mpsc::Receiver<Job>,
    /// A job taken off the queue that did not fit the previous group: it starts the next one.
    held: Option<Job>,
    config: CoalesceConfig,
}

impl Coalescer {
    /// The next group of jobs: at least one, of one signal and tenant, within the bounds (a single job above them
    /// goes alone). `None` once the queue is closed and empty.
    async fn next(&mut self) -> Option<Vec<Job>> {
        let first = match self.held.take() {
            Some(job) => job,
            None => self.rx.recv().await?,
        };
        let signal = first.encoded.signal();
        let (mut items, mut bytes) = (first.encoded.items(), first.encoded.len());
        let mut group = vec![first];
        let flush_at = (!self.config.flush_interval.is_zero())
            .then(|| tokio::time::Instant::now() + self.config.flush_interval);
        while items < self.config.max_items && bytes < self.config.max_bytes {
            let next = match self.rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => match flush_at {
                    None => break,
                    Some(at) => match tokio::time::timeout_at(at, self.rx.recv()).await {
                        Ok(Some(job)) => job,
                        Ok(None) | Err(_) => break,
                    },
                },
            };
            let (n, b) = (next.encoded.items(), next.encoded.len());
            if next.encoded.signal() != signal
                || next.tenant != group[0].tenant
                || items + n > self.config.max_items
                || bytes + b > self.config.max_bytes
            {
                self.held = Some(next);
                break;
            }
            items += n;
            bytes += b;
            group.push(next);
        }
        Some(group)
    }
}

/// Runs `deliver` on each item `next` yields, at most `concurrency` at once, each in its own task, until
/// `next` yields `None`. A sender slot is taken before the next item, so items wait in their queue (where
/// they are counted, bounded and merged), not in spawned tasks.
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

/// Sends a group of jobs as one upstream request, retrying within the latest of their deadlines, unless
/// every one of their clients stops waiting first.
async fn deliver(
    name: &str,
    exporter: &Exporter,
    jobs: Vec<Job>,
    metrics: &Metrics,
    health: &Health,
) {
    let mut live = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.ack.is_closed() {
            metrics.export_abandoned(job.encoded.signal(), name, job.encoded.items());
        } else {
            live.push(job);
        }
    }
    let Some(first) = live.first() else { return };
    let signal = first.encoded.signal();
    // A group shares one tenant (see `Coalescer::next`).
    let tenant = first.tenant.clone();
    let parts: Vec<Encoded> = live.iter().map(|j| j.encoded.clone()).collect();
    let items: usize = parts.iter().map(Encoded::items).sum();
    let deadline = live
        .iter()
        .map(|j| j.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    if live.len() > 1 {
        metrics.export_coalesced(signal, name, live.len() - 1);
    }
    let request = ExportRequest {
        signal,
        tenant: tenant.as_deref(),
        parts: &parts,
        items,
        deadline,
    };
    let started = Instant::now();
    let all_gone = futures::future::join_all(live.iter_mut().map(|j| j.ack.closed()));
    let result = tokio::select! {
        r = exporter.export(name, &request, metrics, Some(health)) => r,
        _ = all_gone => {
            metrics.export_abandoned(signal, name, items);
            return;
        }
    };
    let elapsed = started.elapsed();
    match &result {
        Err(e) if e.retryable() => health.failed(),
        _ => health.ok(),
    }
    match &result {
        Ok(p) => {
            let rejected = u64::try_from(p.rejected).unwrap_or(0);
            metrics.items_exported(signal, name, items, rejected, elapsed);
        }
        Err(e) => {
            let retryable = e.retryable();
            metrics.export_failed(signal, name, items, retryable);
            tracing::warn!(
                exporter = name, %signal, items, requests = live.len(), retryable, error = %e,
                "export failed"
            );
        }
    }
    for job in live {
        let outcome = match &result {
            Ok(p) => Ok((p.for_part(job.encoded.items()), elapsed)),
            Err(e) => Err(e.clone()),
        };
        let _ = job.ack.send(outcome);
    }
}

#[cfg(test)]
mod tests;
