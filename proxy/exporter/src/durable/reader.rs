//! Delivery: batches of records for the senders, reading a record back, finishing it (or
//! dead-lettering it), and the delivery cursor that keeps a restart from delivering again what was
//! delivered.
//!
//! **The delivery cursor.** A segment is deleted only once all of its records are delivered, so after
//! a crash the records already delivered from the segments still on disk would all go again. The
//! writer thread therefore records, at most every `cursor_every` and when the queue closes, the lowest
//! sequence number not yet delivered in `cursor` (8 bytes, written to a temporary file and renamed, not
//! synced: losing it costs duplicates, never data), and recovery skips the records below it. It only
//! ever names records that are done: those handed out, those waiting, and those of a round still being
//! synced all stay above it. It is also a floor for numbering: a start that finds no segment (all
//! delivered and deleted) goes on from the cursor, never from 1, or the next recovery would skip the
//! new records as delivered ones (issue 20: five acknowledged records lost after two clean restarts
//! and a kill).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use weir_core::Encoded;
use weir_wire::record;

use super::{DurableError, DurableQueue, Record, Shared, io, now_ms};

/// The delivery cursor's file in the queue's directory (see the module docs).
pub(super) const CURSOR: &str = "cursor";

impl DurableQueue {
    /// The next records to deliver, in order: the first one (waiting until there is one) and those of
    /// its signal and tenant right behind it, up to `max_items` and `max_bytes` in all. With a `flush` interval it
    /// waits that long after the first for more, unless the bounds are reached first: a durable queue
    /// acknowledges on write, so waiting here delays delivery, not clients.
    pub async fn next_batch(
        &self,
        max_items: usize,
        max_bytes: usize,
        flush: Duration,
    ) -> Vec<Record> {
        let mut batch: Vec<Record> = Vec::new();
        let (mut items, mut bytes) = (0usize, 0usize);
        let mut flush_at: Option<tokio::time::Instant> = None;
        loop {
            let notified = self.shared.available.notified();
            {
                let mut st = self.shared.lock();
                let mut full = false;
                while let Some(r) = st.pending.front() {
                    if let Some(first) = batch.first()
                        && (r.signal != first.signal
                            || r.tenant != first.tenant
                            || items + r.items > max_items
                            || bytes + r.len as usize > max_bytes)
                    {
                        full = true;
                        break;
                    }
                    items += r.items;
                    bytes += r.len as usize;
                    if let Some(r) = st.pending.pop_front() {
                        st.in_flight.insert(r.seq, r.enqueued_unix_ms);
                        batch.push(r);
                    }
                }
                let due = flush_at.is_some_and(|at| tokio::time::Instant::now() >= at);
                if !batch.is_empty()
                    && (full || flush.is_zero() || due || items >= max_items || bytes >= max_bytes)
                {
                    return batch;
                }
            }
            if !batch.is_empty() && flush_at.is_none() {
                flush_at = Some(tokio::time::Instant::now() + flush);
            }
            // Every round notifies after its records are synced; `notify_one` keeps a permit when
            // nobody waits, so records that arrive between the check and this await are not missed.
            match flush_at {
                None => notified.await,
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, notified).await;
                }
            }
        }
    }

    /// Where this queue keeps what its upstream refused for good (see [`crate::dead_letter`]).
    pub fn dead_letter_dir(&self) -> PathBuf {
        crate::dead_letter::dir_of(&self.shared.dir)
    }

    /// Writes `parts` (records from `first_seq`, the oldest queued at `oldest_ms`) durably to a new
    /// dead-letter file; returns it. Blocking: call it off the runtime's worker threads.
    pub fn dead_letter(
        &self,
        first_seq: u64,
        oldest_ms: u64,
        tenant: Option<&str>,
        parts: &[Encoded],
    ) -> std::io::Result<PathBuf> {
        let written = crate::dead_letter::write(
            &*self.shared.storage,
            &self.dead_letter_dir(),
            first_seq,
            oldest_ms,
            tenant,
            parts,
        );
        if written.is_err() {
            self.shared
                .metrics
                .queue_io_error(&self.shared.name, "dead_letter");
        }
        written
    }

    /// The next record to deliver, in order; waits until there is one.
    pub async fn next(&self) -> Record {
        let mut batch = self.next_batch(1, 1, Duration::ZERO).await;
        batch.swap_remove(0)
    }

    /// Reads a record's body back. A record damaged since it was written is an error.
    pub fn read(&self, r: &Record) -> Result<Bytes, DurableError> {
        let (file, path) = {
            let st = self.shared.lock();
            st.segments
                .get(&r.segment)
                .map(|s| (s.file.clone(), s.path.clone()))
                .ok_or(DurableError::Misplaced(r.seq))?
        };
        let mut buf = vec![0; r.len as usize];
        if let Err(e) = file.read_at(&mut buf, r.offset) {
            self.shared
                .metrics
                .queue_io_error(&self.shared.name, "read");
            return Err(io(&path)(e));
        }
        match record::parse(&buf)? {
            Some(p) if p.seq == r.seq => Ok(Bytes::from(buf).slice(p.body)),
            _ => Err(DurableError::Misplaced(r.seq)),
        }
    }

    /// The record was delivered (or given up on): its segment goes once all of its records are done.
    pub fn done(&self, r: &Record) {
        let shared = &self.shared;
        let mut st = shared.lock();
        st.in_flight.remove(&r.seq);
        let low = shared.budget.available_permits() < shared.max_bytes / 2;
        let segment_bytes = shared.segment_bytes;
        shared.release(&mut st, r.segment, |s| {
            // A drained active segment is retired too once it is large or room runs low, so that its
            // bytes never hold the queue full (a new one starts with the next record).
            s.sealed || low || s.bytes >= segment_bytes / 2
        });
        drop(st);
        shared
            .metrics
            .queue_changed(&shared.name, -1, -(r.items as i64), -(r.len as i64));
    }

    /// Age of the oldest record not yet delivered.
    pub fn oldest_age(&self) -> Duration {
        let st = self.shared.lock();
        let oldest = [
            st.in_flight.values().min().copied(),
            st.pending.front().map(|r| r.enqueued_unix_ms),
        ]
        .into_iter()
        .flatten()
        .min();
        oldest.map_or(Duration::ZERO, |t| {
            Duration::from_millis(now_ms().saturating_sub(t))
        })
    }
}

impl Shared {
    /// The lowest sequence number not delivered yet: below every record handed out, waiting, or in a
    /// round not published yet.
    fn low_water(&self) -> u64 {
        let st = self.lock();
        [
            st.in_flight.keys().next().copied(),
            st.pending.front().map(|r| r.seq),
            Some(st.published),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(st.published)
    }

    /// Records the delivery cursor when it moved (best effort: see the module docs).
    pub(super) fn record_cursor(&self) {
        let low = self.low_water();
        let mut recorded = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        if *recorded == low {
            return;
        }
        let path = self.dir.join(CURSOR);
        let tmp = self.dir.join("cursor.tmp");
        let written = self
            .storage
            .create(&tmp, 0o600)
            .and_then(|f| f.append(&[&low.to_le_bytes()]))
            .and_then(|()| self.storage.rename(&tmp, &path));
        match written {
            Ok(()) => *recorded = low,
            Err(e) => {
                tracing::warn!(exporter = %self.name, error = %e, "cannot record the delivery cursor: a restart may deliver more again");
                self.metrics.queue_io_error(&self.name, "cursor");
            }
        }
    }
}
