//! Writing: the writer thread, which appends records to the log in rounds, syncs them and only then
//! acknowledges them.
//!
//! **Writing.** One writer thread owns the log's tail. Appends that arrive while it writes wait for its
//! next round; a round takes everything waiting, merges consecutive appends of one signal (and tenant,
//! for an exporter with `tenant_header`) into one record
//! (their encodings concatenate; up to `coalesce.max_bytes`), writes the records with vectored writes (no
//! copy of the bodies), syncs every segment it wrote once (`sync: always`), and only then answers the
//! appends and hands the records to the senders. So concurrent requests share one write and one
//! `fdatasync` (group commit), and an upstream never sees data weir could still lose. With `sync: none`
//! the OS decides when data reaches the disk: the record survives a crash of weir (kill -9), not a power
//! loss.
//!
//! **Failures.** A failed write cuts the partial record off (`set_len`) and closes the segment; a failed
//! sync is never retried and trusted (after a failed `fdatasync` the kernel may have dropped the pages):
//! the segment is closed, and what the round wrote is refused to its clients (retryably) and not
//! delivered. Either way the next round starts a new segment. Nothing is acknowledged that was not
//! written and synced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use weir_core::Encoded;
use weir_core::fs::StorageFile;
use weir_wire::record;

use super::{DurableError, DurableQueue, Record, Segment, Shared, State, io, now_ms};

/// One request waiting for the writer.
pub(super) struct Append {
    pub(super) encoded: Encoded,
    pub(super) tenant: Option<Arc<str>>,
    /// Moved to the segment once the append is written: its bytes are on disk until the segment goes.
    pub(super) permit: Option<OwnedSemaphorePermit>,
    pub(super) done: oneshot::Sender<Result<u64, DurableError>>,
}

/// Bytes one writer round takes at most before it writes and syncs.
const ROUND_BYTES: usize = 32 << 20;

impl DurableQueue {
    /// Takes room for a record of `size` body bytes of `tenant`, or `None` when the queue is full.
    pub fn reserve(&self, size: usize, tenant: Option<&str>) -> Option<OwnedSemaphorePermit> {
        let cost = (size + record::overhead(tenant))
            .min(self.shared.max_bytes)
            .max(1);
        self.shared
            .budget
            .clone()
            .try_acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
            .ok()
    }

    /// Writes the request and waits until it is synced (per the `sync` policy); then it is safe to
    /// acknowledge. On an error (a full disk, a failed sync) it was not queued and is not delivered.
    pub async fn append(
        &self,
        encoded: Encoded,
        tenant: Option<Arc<str>>,
        permit: OwnedSemaphorePermit,
    ) -> Result<u64, DurableError> {
        let (done, rx) = oneshot::channel();
        self.writer
            .as_ref()
            .ok_or(DurableError::Closed)?
            .send(Append {
                encoded,
                tenant,
                permit: Some(permit),
                done,
            })
            .map_err(|_| DurableError::Closed)?;
        rx.await.unwrap_or(Err(DurableError::Closed))
    }
}

impl Shared {
    /// Seals the active segment (it is full, or a write failed): nothing more is written to it, and it
    /// goes at once if none of its records is outstanding.
    fn close_active(&self, st: &mut State) {
        if let Some(id) = st.active.take()
            && let Some(s) = st.segments.get_mut(&id)
        {
            s.sealed = true;
            if s.outstanding == 0
                && let Some(s) = st.segments.remove(&id)
            {
                self.remove(&s.path);
            }
        }
    }

    /// The segment a record of `len` bytes goes to: the active one, or a new one when it would grow
    /// past `segment_bytes` (or there is none).
    fn segment_for(&self, st: &mut State, seq: u64, len: u64) -> Result<u64, DurableError> {
        let roll = match st.active.and_then(|id| st.segments.get(&id)) {
            Some(s) => s.bytes > 0 && s.bytes + len > self.segment_bytes,
            None => true,
        };
        if !roll && let Some(id) = st.active {
            return Ok(id);
        }
        // The full segment's records of this round are synced with the round's other segments.
        self.close_active(st);
        // Created empty: a file of this name can only be what a failed round left (its first record
        // was never acknowledged), never a segment the queue holds.
        let path = self.dir.join(format!("{seq:020}.seg"));
        let file: Arc<dyn StorageFile> = match self.storage.create(&path, 0o600) {
            Ok(f) => Arc::from(f),
            Err(e) => {
                self.metrics.queue_io_error(&self.name, "create");
                return Err(io(&path)(e));
            }
        };
        if self.sync
            // The new file's directory entry must survive a crash too.
            && let Err(e) = self.storage.sync_dir(&self.dir)
        {
            self.metrics.queue_io_error(&self.name, "sync");
            return Err(io(&self.dir)(e));
        }
        st.segments.insert(
            seq,
            Segment {
                file,
                path,
                bytes: 0,
                outstanding: 0,
                sealed: false,
                permits: Vec::new(),
            },
        );
        st.active = Some(seq);
        Ok(seq)
    }

    /// Writes one record made of `appends` (one signal and tenant), keeping their permits with its
    /// segment.
    fn write_record(&self, st: &mut State, appends: &mut [Append]) -> Result<Record, DurableError> {
        let signal = appends[0].encoded.signal();
        let tenant = appends[0].tenant.clone();
        let items: usize = appends.iter().map(|a| a.encoded.items()).sum();
        let parts: Vec<&[u8]> = appends.iter().map(|a| &a.encoded.bytes()[..]).collect();
        let seq = st.next_seq;
        let enqueued = now_ms();
        let header = record::header_of_parts(
            seq,
            enqueued,
            signal,
            tenant.as_deref(),
            items as u32,
            &parts,
        );
        let record_len = (header.len() + parts.iter().map(|p| p.len()).sum::<usize>()) as u64;
        let id = self.segment_for(st, seq, record_len)?;
        let Some(seg) = st.segments.get_mut(&id) else {
            return Err(DurableError::Io {
                path: self.dir.display().to_string(),
                source: std::io::Error::other("no active segment"),
            });
        };
        let offset = seg.bytes;
        let bufs: Vec<&[u8]> = std::iter::once(&header[..])
            .chain(parts.iter().copied())
            .collect();
        if let Err(e) = seg.file.append(&bufs) {
            // A partial record (disk full) is cut off so that the segment stays readable; should
            // that fail too, recovery ends the segment at the torn record, and the segment takes
            // no more records either way.
            let _ = seg.file.set_len(offset);
            self.metrics.queue_io_error(&self.name, "write");
            return Err(io(&seg.path)(e));
        }
        seg.bytes += record_len;
        seg.outstanding += 1;
        seg.permits
            .extend(appends.iter_mut().filter_map(|a| a.permit.take()));
        st.next_seq += 1;
        Ok(Record {
            seq,
            signal,
            tenant,
            items,
            enqueued_unix_ms: enqueued,
            segment: id,
            offset,
            len: record_len as u32,
        })
    }

    /// One writer round (see the module docs): write everything in `round`, sync, then answer.
    fn write_round(&self, mut round: Vec<Append>) {
        let mut st = self.lock();
        let mut written: Vec<(Record, Vec<Append>)> = Vec::new();
        let mut failure: Option<DurableError> = None;
        let mut refused: Vec<Append> = Vec::new();
        let mut dirty: BTreeMap<u64, (Arc<dyn StorageFile>, PathBuf)> = BTreeMap::new();
        while !round.is_empty() {
            // The longest prefix of one signal and tenant within the record size (at least one
            // append).
            let signal = round[0].encoded.signal();
            let tenant = round[0].tenant.clone();
            let mut n = 0;
            let mut bytes = 0;
            while n < round.len()
                && round[n].encoded.signal() == signal
                && round[n].tenant == tenant
                && (n == 0 || bytes + round[n].encoded.len() <= self.max_record_bytes)
            {
                bytes += round[n].encoded.len();
                n += 1;
            }
            let mut group: Vec<Append> = round.drain(..n).collect();
            if failure.is_some() {
                refused.extend(group);
                continue;
            }
            match self.write_record(&mut st, &mut group) {
                Ok(r) => {
                    if let Some(s) = st.segments.get(&r.segment) {
                        dirty.insert(r.segment, (s.file.clone(), s.path.clone()));
                    }
                    written.push((r, group));
                }
                Err(e) => {
                    tracing::error!(exporter = %self.name, error = %e, "durable queue write failed");
                    self.close_active(&mut st);
                    failure = Some(e);
                    refused.extend(group);
                }
            }
        }
        drop(st);
        // Syncing needs no lock: only this thread writes, and every record written this round is
        // outstanding, so no segment it wrote can be deleted meanwhile.
        let mut sync_failure = None;
        if self.sync {
            for (file, path) in dirty.values() {
                if let Err(e) = file.sync_data() {
                    self.metrics.queue_io_error(&self.name, "sync");
                    sync_failure = Some(io(path)(e));
                    break;
                }
            }
        }
        let mut st = self.lock();
        if let Some(e) = sync_failure {
            // Never retried and trusted: the pages may be gone. What this round wrote is refused and
            // not delivered; its segments take no more records.
            tracing::error!(
                exporter = %self.name, error = %e,
                "syncing the durable queue failed: this round's records are refused"
            );
            // The round's records are cut off their segments too: still in the page cache, they
            // would otherwise be replayed by the next start though their clients were refused.
            let mut cut: BTreeMap<u64, u64> = BTreeMap::new();
            for (r, _) in &written {
                let at = cut.entry(r.segment).or_insert(r.offset);
                *at = (*at).min(r.offset);
            }
            for (segment, offset) in cut {
                if let Some(s) = st.segments.get(&segment)
                    && let Err(e) = s.file.set_len(offset)
                {
                    tracing::error!(
                        exporter = %self.name, segment = %s.path.display(), error = %e,
                        "cannot cut refused records off a segment: a restart may deliver them (as duplicates of the clients' retries)"
                    );
                    self.metrics.queue_io_error(&self.name, "write");
                }
            }
            for (r, group) in written.drain(..) {
                if let Some(s) = st.segments.get_mut(&r.segment) {
                    s.sealed = true;
                }
                if st.active == Some(r.segment) {
                    st.active = None;
                }
                self.release(&mut st, r.segment, |_| true);
                for a in group {
                    let _ = a.done.send(Err(e.again()));
                }
            }
            failure.get_or_insert(e);
        }
        let mut batches = 0i64;
        let (mut items, mut bytes) = (0i64, 0i64);
        for (r, _) in &written {
            batches += 1;
            items += r.items as i64;
            bytes += i64::from(r.len);
            st.pending.push_back(r.clone());
        }
        st.published = st.next_seq;
        drop(st);
        if batches > 0 {
            self.metrics
                .queue_changed(&self.name, batches, items, bytes);
            self.available.notify_one();
        }
        for (r, group) in written {
            for a in group {
                let _ = a.done.send(Ok(r.seq));
            }
        }
        if let Some(e) = failure {
            for a in refused {
                let _ = a.done.send(Err(e.again()));
            }
        }
    }
}

/// The writer thread: a round per wake-up, the delivery cursor now and then, until the queue's
/// handle is dropped.
pub(super) fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<Append>) {
    let mut cursor_due = std::time::Instant::now() + shared.cursor_every;
    loop {
        let first = match rx
            .recv_timeout(cursor_due.saturating_duration_since(std::time::Instant::now()))
        {
            Ok(a) => a,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                shared.record_cursor();
                cursor_due = std::time::Instant::now() + shared.cursor_every;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                #[cfg(test)]
                if shared.killed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                shared.record_cursor();
                return;
            }
        };
        let mut bytes = first.encoded.len();
        let mut round = vec![first];
        while bytes < ROUND_BYTES {
            match rx.try_recv() {
                Ok(a) => {
                    bytes += a.encoded.len();
                    round.push(a);
                }
                Err(_) => break,
            }
        }
        shared.write_round(round);
        if std::time::Instant::now() >= cursor_due {
            shared.record_cursor();
            cursor_due = std::time::Instant::now() + shared.cursor_every;
        }
    }
}
