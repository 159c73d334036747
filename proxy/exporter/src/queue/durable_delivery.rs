//! Delivery from a durable queue: records read back from disk and sent upstream, consecutive ones
//! of one signal as one request, retried in rounds until the upstream accepts them or refuses them
//! for good; then, per `on_permanent_error` and `max_age`, dead-lettered, dropped or held. And the
//! gauge of the oldest record's age.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::durable::{DurableError, DurableQueue, Record};
use crate::{ExportRequest, Exporter};
use weir_core::Encoded;
use weir_core::config::{OnPermanentError, QueueConfig};
use weir_core::telemetry::Metrics;

/// How long one round of retries for a durable record may take before the next round starts.
const DURABLE_ROUND: Duration = Duration::from_secs(60);

/// Sends consecutive records of one signal as one upstream request, retrying in rounds until the
/// upstream accepts them or refuses them for good.
pub(super) async fn deliver_records(
    name: &str,
    exporter: &Exporter,
    queue: &Arc<DurableQueue>,
    records: &[Record],
    policy: Policy,
    metrics: &Metrics,
) {
    let mut parts = Vec::with_capacity(records.len());
    for record in records {
        let mut wait = Duration::from_millis(100);
        loop {
            match queue.read(record) {
                Ok(body) => parts.push(Encoded::trusted(record.signal, body, record.items)),
                // A failed read (EIO) says nothing about the data: it is still on disk, acknowledged,
                // and read again, less and less often, rather than given up.
                Err(DurableError::Io { path, source }) => {
                    tracing::error!(
                        exporter = name, seq = record.seq, file = %path, error = %source,
                        "cannot read a queued record back: retrying"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(HOLD_RETRY_MAX);
                    continue;
                }
                // Its checksum no longer matches: the bytes are gone, and sending them would send
                // garbage.
                Err(e) => {
                    tracing::error!(exporter = name, seq = record.seq, error = %e, "damaged queue record dropped");
                    metrics.queue_dropped(record.signal, name, record.items);
                }
            }
            break;
        }
    }
    let Some(first) = parts.first() else { return };
    let signal = first.signal();
    // A batch of records shares one tenant (see `DurableQueue::next_batch`).
    let tenant = records.first().and_then(|r| r.tenant.clone());
    let items: usize = parts.iter().map(Encoded::items).sum();
    if parts.len() > 1 {
        metrics.export_coalesced(signal, name, parts.len() - 1);
    }
    let (first_seq, last_seq) = (
        records.first().map_or(0, |r| r.seq),
        records.last().map_or(0, |r| r.seq),
    );
    let oldest_ms = records
        .iter()
        .map(|r| r.enqueued_unix_ms)
        .min()
        .unwrap_or(0);
    let mut rounds = 0u32;
    let mut holding = false;
    let mut hold_wait = Duration::from_millis(200);
    loop {
        rounds += 1;
        let started = Instant::now();
        let request = ExportRequest {
            signal,
            tenant: tenant.as_deref(),
            parts: &parts,
            items,
            // A round retries within it; with `max_age`, no longer than the batch may live.
            deadline: policy.round_deadline(oldest_ms),
        };
        let result = exporter.export(name, &request, metrics, None).await;
        let refusal = match result {
            Ok(p) => {
                let rejected = u64::try_from(p.rejected).unwrap_or(0);
                metrics.items_exported(signal, name, items, rejected, started.elapsed());
                if !p.is_empty() {
                    tracing::warn!(
                        exporter = name, rejected = p.rejected, message = %p.message,
                        "upstream partially accepted queued batches"
                    );
                }
                if holding {
                    tracing::info!(
                        exporter = name,
                        "the upstream accepts again: delivery resumes"
                    );
                    metrics.exporter_held(name, false);
                }
                return;
            }
            Err(e) if e.retryable() && !policy.given_up(oldest_ms) => {
                tracing::warn!(
                    exporter = name, first_seq, last_seq, error = %e,
                    "upstream still unavailable; the queued batches wait"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => e,
        };
        // Refused for good, or retried past max_age / max_attempts: the data was acknowledged, so
        // it is kept aside, held, or (only if so configured) dropped.
        let why = if refusal.retryable() {
            format!("still failing past queue.max_age ({rounds} delivery rounds): {refusal}")
        } else {
            refusal.to_string()
        };
        match policy.on_permanent_error {
            OnPermanentError::Drop => {
                metrics.export_failed(signal, name, items, false);
                metrics.queue_dropped(signal, name, items);
                tracing::error!(
                    exporter = name, first_seq, last_seq, items, error = %why,
                    "upstream refused queued batches for good; they are dropped (on_permanent_error: drop)"
                );
                return;
            }
            OnPermanentError::DeadLetter => {
                let dir = queue.dead_letter_dir();
                let written = {
                    let (queue, parts, tenant) = (queue.clone(), parts.clone(), tenant.clone());
                    tokio::task::spawn_blocking(move || {
                        queue.dead_letter(first_seq, oldest_ms, tenant.as_deref(), &parts)
                    })
                    .await
                };
                match written {
                    Ok(Ok(path)) => {
                        metrics.export_failed(signal, name, items, false);
                        metrics.dead_lettered(signal, name, items);
                        tracing::error!(
                            exporter = name, first_seq, last_seq, items, error = %why,
                            file = %path.display(),
                            "upstream refused queued batches for good; kept in the dead-letter directory (weir dead-letter replay)"
                        );
                        return;
                    }
                    Ok(Err(e)) => tracing::error!(
                        exporter = name, first_seq, error = %e, dir = %dir.display(),
                        "cannot write the dead-letter file: the batches are held and retried"
                    ),
                    Err(e) => {
                        tracing::error!(exporter = name, error = %e, "dead-letter task failed")
                    }
                }
            }
            OnPermanentError::Hold => {}
        }
        // Held: nothing is given up; the upstream is asked again, less and less often (up to every
        // 10 s), until it takes it.
        if !holding {
            holding = true;
            metrics.exporter_held(name, true);
            tracing::error!(
                exporter = name, first_seq, last_seq, items, error = %why,
                "upstream refuses queued batches: delivery holds and retries until it accepts"
            );
        }
        tokio::time::sleep(hold_wait).await;
        hold_wait = (hold_wait * 2).min(HOLD_RETRY_MAX);
    }
}

/// The longest a held queue waits before asking its upstream again.
const HOLD_RETRY_MAX: Duration = Duration::from_secs(10);

/// What a durable queue does when its upstream will not take a batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    on_permanent_error: OnPermanentError,
    max_age: Option<Duration>,
}

impl Policy {
    pub(super) fn of(config: &QueueConfig) -> Self {
        Self {
            on_permanent_error: config.on_permanent_error,
            max_age: config.max_age,
        }
    }

    /// How long a batch queued at `oldest_ms` has been in the queue.
    fn age(oldest_ms: u64) -> Duration {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Duration::from_millis(now_ms.saturating_sub(oldest_ms))
    }

    /// Whether a batch whose oldest record was queued at `oldest_ms` is past `max_age`.
    fn given_up(&self, oldest_ms: u64) -> bool {
        self.max_age.is_some_and(|a| Self::age(oldest_ms) >= a)
    }

    /// When one delivery round of that batch ends: a minute from now, or at `max_age`.
    fn round_deadline(&self, oldest_ms: u64) -> Instant {
        let round = match self.max_age {
            Some(a) => DURABLE_ROUND.min(a.saturating_sub(Self::age(oldest_ms))),
            None => DURABLE_ROUND,
        };
        Instant::now() + round
    }
}

/// Keeps `weir_exporter_queue_oldest_age_seconds` current.
pub(super) async fn watch_age(
    name: Arc<str>,
    queue: std::sync::Weak<DurableQueue>,
    metrics: Arc<Metrics>,
) {
    loop {
        let Some(q) = queue.upgrade() else { return };
        metrics.queue_oldest(&name, q.oldest_age());
        drop(q);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
