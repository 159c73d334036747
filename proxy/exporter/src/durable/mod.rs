//! A durable queue for one exporter: an append-only segment log under `state_dir/queues/<exporter>/`.
//!
//! Why a log written here rather than an embedded store: the access pattern is a FIFO of opaque, already
//! encoded batches (append at the tail, read once near the head, delete from the head). A segment log does
//! exactly that with one sequential write and one `fdatasync` per group of appends, reads that hit the page
//! cache, and deletion by unlinking whole files, and it lets a damaged segment be skipped on its own. A
//! B-tree store (redb) would add a copy-on-write page write per batch, and an LSM store (fjall) compaction
//! work, for ordering and lookups the queue does not need.
//!
//! Record format ([`weir_wire::record`], little-endian): `len: u32` (bytes after the header), `crc: u32`
//! (CRC-32, IEEE, of those bytes), then `seq: u64`, `enqueued_unix_ms: u64`, `signal: u8`, `items: u32`, and
//! the OTLP protobuf body. Segments are named by the sequence number of their first record and rolled at
//! `segment_bytes`.
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
//!
//! **Recovery.** At start every segment is read in order and each record's checksum verified. A record
//! that fails (torn write, bit rot) ends that segment: what follows it in the segment is skipped with a
//! log line and `weir_exporter_queue_corrupt_segments_total`; the other segments are replayed
//! (`weir_exporter_queue_replayed_items_total`).
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
//!
//! **Bounds.** The bytes of all segments on disk are held as permits of a semaphore of `max_bytes`; a
//! segment's permits are given back when it is deleted, after its last record was delivered. A full queue
//! refuses the batch with a retryable status.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use weir_core::Encoded;
use weir_core::Signal;
use weir_core::fs::{Os, Storage, StorageFile};
use weir_core::telemetry::Metrics;
use weir_wire::record::{self, RecordError};

/// Why the durable queue could not take or give a record.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// A file operation failed.
    #[error("durable queue {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
    /// A record read back is damaged.
    #[error("damaged record: {0}")]
    Record(#[from] RecordError),
    /// A record read back is not the one the index expects, or its segment is gone.
    #[error("record {0} is not where the index says")]
    Misplaced(u64),
    /// The writer is gone (weir is stopping).
    #[error("the durable queue is closed")]
    Closed,
}

impl DurableError {
    /// The same error for another waiter (an `io::Error` cannot be cloned; its kind and text can).
    fn again(&self) -> DurableError {
        match self {
            DurableError::Io { path, source } => DurableError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            DurableError::Record(r) => DurableError::Record(r.clone()),
            DurableError::Misplaced(s) => DurableError::Misplaced(*s),
            DurableError::Closed => DurableError::Closed,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DurableError + '_ {
    move |source| DurableError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One record waiting for delivery.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// The signal.
    pub signal: Signal,
    /// The tenant, for an exporter that sends it upstream.
    pub tenant: Option<Arc<str>>,
    /// Items in it.
    pub items: usize,
    /// When it was written, ms since the Unix epoch.
    pub enqueued_unix_ms: u64,
    segment: u64,
    offset: u64,
    len: u32,
}

impl Record {
    /// Its size on disk, header included.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for a record without bytes (never written).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

struct Segment {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    bytes: u64,
    /// Records not yet delivered (or, during a round, written but not yet answered).
    outstanding: usize,
    sealed: bool,
    permits: Vec<OwnedSemaphorePermit>,
}

struct State {
    segments: BTreeMap<u64, Segment>,
    /// The segment appends go to.
    active: Option<u64>,
    next_seq: u64,
    /// Written and synced but not yet handed to a sender, in order.
    pending: VecDeque<Record>,
    /// Handed out, not yet done: seq -> enqueue time.
    in_flight: BTreeMap<u64, u64>,
    /// `next_seq` when the last round was published: records from here on are not in `pending` yet
    /// (being written or synced).
    published: u64,
}

/// One request waiting for the writer.
struct Append {
    encoded: Encoded,
    tenant: Option<Arc<str>>,
    /// Moved to the segment once the append is written: its bytes are on disk until the segment goes.
    permit: Option<OwnedSemaphorePermit>,
    done: oneshot::Sender<Result<u64, DurableError>>,
}

/// What the writer thread and the queue's handle share.
struct Shared {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    name: Arc<str>,
    state: Mutex<State>,
    available: Notify,
    budget: Arc<Semaphore>,
    max_bytes: usize,
    segment_bytes: u64,
    /// Largest merged record body (one append larger than it is a record of its own).
    max_record_bytes: usize,
    sync: bool,
    cursor_every: Duration,
    /// The delivery cursor last recorded.
    cursor: Mutex<u64>,
    /// Tests: the process is "killed", so the writer stops without recording the cursor.
    #[cfg(test)]
    killed: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
}

/// The delivery cursor's file in the queue's directory (see the module docs).
const CURSOR: &str = "cursor";

/// A durable, bounded, ordered queue (see the module docs).
pub struct DurableQueue {
    shared: Arc<Shared>,
    /// `None` once dropped (the writer thread then finishes).
    writer: Option<mpsc::Sender<Append>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DurableQueue {
    /// Closes the writer's channel and waits for its thread, which finishes its round and records the
    /// delivery cursor: what was delivered is not delivered again after a restart.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableQueue")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Bytes one writer round takes at most before it writes and syncs.
const ROUND_BYTES: usize = 32 << 20;

/// How a durable queue lays out and syncs its log.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Bytes of all segments at most (`queue.max_disk_bytes`).
    pub max_bytes: usize,
    /// A segment rolls at this size (`queue.segment_bytes`).
    pub segment_bytes: u64,
    /// Largest merged record body (`queue.coalesce.max_bytes`).
    pub max_record_bytes: usize,
    /// `fdatasync` before acknowledging (`queue.sync: always`).
    pub sync: bool,
    /// How often the delivery cursor is recorded (see the module docs).
    pub cursor_every: Duration,
}

impl DurableQueue {
    /// Opens (creating it if needed) the queue in `dir`, replaying what a previous run left.
    pub fn open(
        dir: &Path,
        name: &str,
        layout: Layout,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, DurableError> {
        Self::open_on(Arc::new(Os), dir, name, layout, metrics)
    }

    /// [`DurableQueue::open`] on `storage` (tests inject failing file systems here). An error reading
    /// what is there is an error: nothing on disk is skipped or deleted because it could not be read.
    pub fn open_on(
        storage: Arc<dyn Storage>,
        dir: &Path,
        name: &str,
        layout: Layout,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, DurableError> {
        let Layout {
            max_bytes,
            segment_bytes,
            max_record_bytes,
            sync,
            cursor_every,
        } = layout;
        storage.create_dir_all(dir).map_err(io(dir))?;
        let budget = Arc::new(Semaphore::new(max_bytes.min(Semaphore::MAX_PERMITS)));
        let mut state = State {
            segments: BTreeMap::new(),
            active: None,
            next_seq: 1,
            pending: VecDeque::new(),
            in_flight: BTreeMap::new(),
            published: 1,
        };
        // Records below the cursor were delivered before the last stop.
        let cursor = storage
            .read(&dir.join(CURSOR))
            .ok()
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        let mut ids: Vec<(u64, PathBuf)> = storage
            .list(dir)
            .map_err(io(dir))?
            .into_iter()
            .filter_map(|p| {
                let id = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse::<u64>()
                    .ok()?;
                Some((id, p))
            })
            .collect();
        ids.sort();
        let (mut replayed, mut replayed_batches) = (0usize, 0i64);
        let mut replayed_bytes = 0i64;
        for (id, path) in ids {
            let data = storage.read(&path).map_err(io(&path))?;
            let mut offset = 0;
            let mut records = Vec::new();
            loop {
                match record::parse(&data[offset..]) {
                    Ok(None) => break,
                    Ok(Some(p)) => {
                        records.push(Record {
                            seq: p.seq,
                            signal: p.signal,
                            tenant: p.tenant.as_deref().map(Arc::from),
                            items: p.items as usize,
                            enqueued_unix_ms: p.enqueued_unix_ms,
                            segment: id,
                            offset: offset as u64,
                            len: p.len as u32,
                        });
                        offset += p.len;
                    }
                    Err(why) => {
                        tracing::error!(
                            exporter = name, segment = %path.display(), offset, error = %why,
                            skipped_bytes = data.len() - offset,
                            "corrupt record in a queue segment: the rest of the segment is skipped"
                        );
                        metrics.queue_corrupt_segment(name);
                        break;
                    }
                }
            }
            // Sequence numbers go on after every record found, delivered or not.
            state.next_seq = state.next_seq.max(records.last().map_or(0, |r| r.seq) + 1);
            records.retain(|r| r.seq >= cursor);
            if records.is_empty() {
                // Delivered before the last stop, or left empty (or holding only a torn write) by a failed round: it holds nothing to
                // replay. Should the removal fail, the next start tries again.
                if let Err(e) = storage.remove(&path) {
                    tracing::warn!(exporter = name, segment = %path.display(), error = %e, "cannot remove an empty queue segment");
                    metrics.queue_io_error(name, "remove");
                }
                continue;
            }
            let file: Arc<dyn StorageFile> = Arc::from(storage.open(&path).map_err(io(&path))?);
            let bytes = data.len() as u64;
            let permits = budget
                .clone()
                .try_acquire_many_owned(bytes.min(budget.available_permits() as u64) as u32)
                .into_iter()
                .collect();
            replayed += records.iter().map(|r| r.items).sum::<usize>();
            replayed_batches += records.len() as i64;
            replayed_bytes += records.iter().map(|r| r.len as i64).sum::<i64>();
            state.segments.insert(
                id,
                Segment {
                    file,
                    path,
                    bytes,
                    outstanding: records.len(),
                    sealed: true,
                    permits,
                },
            );
            state.pending.extend(records);
        }
        // The cursor is a floor: it may name numbers above every record still on disk (all of them
        // delivered and their segments deleted). Numbering again from below it would make the next
        // recovery take new records for delivered ones.
        state.next_seq = state.next_seq.max(cursor);
        state.published = state.next_seq;
        if replayed > 0 {
            tracing::info!(
                exporter = name,
                items = replayed,
                batches = replayed_batches,
                "replaying the durable queue left by the previous run"
            );
            metrics.queue_replayed(name, replayed);
        }
        metrics.queue_changed(name, replayed_batches, replayed as i64, replayed_bytes);
        let shared = Arc::new(Shared {
            storage,
            dir: dir.to_path_buf(),
            name: Arc::from(name),
            state: Mutex::new(state),
            available: Notify::new(),
            budget,
            max_bytes,
            segment_bytes,
            max_record_bytes: max_record_bytes.max(1),
            sync,
            cursor_every,
            cursor: Mutex::new(cursor),
            #[cfg(test)]
            killed: std::sync::atomic::AtomicBool::new(false),
            metrics,
        });
        let (writer, rx) = mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("weir-queue-{name}"))
            .spawn(move || writer_loop(s, rx))
            .map_err(io(dir))?;
        Ok(Arc::new(Self {
            shared,
            writer: Some(writer),
            thread: Some(thread),
        }))
    }

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
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One record of `segment` is finished with; the segment is deleted once none is outstanding and
    /// `retire` says so (always for a sealed one).
    fn release(&self, st: &mut State, segment: u64, retire: impl FnOnce(&Segment) -> bool) {
        let remove = match st.segments.get_mut(&segment) {
            Some(s) => {
                s.outstanding = s.outstanding.saturating_sub(1);
                s.outstanding == 0 && retire(s)
            }
            None => false,
        };
        if remove {
            if st.active == Some(segment) {
                st.active = None;
            }
            if let Some(s) = st.segments.remove(&segment) {
                self.remove(&s.path);
            }
        }
    }

    /// Deletes a segment none of whose records is outstanding. A failure only costs disk space until
    /// the next start, which replays what the file holds (delivered again rather than lost).
    fn remove(&self, path: &Path) {
        if let Err(e) = self.storage.remove(path) {
            tracing::error!(
                exporter = %self.name, segment = %path.display(), error = %e,
                "cannot delete a delivered queue segment: its records are delivered again after a restart"
            );
            self.metrics.queue_io_error(&self.name, "remove");
        }
    }

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
    fn record_cursor(&self) {
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

/// The writer thread: a round per wake-up, the delivery cursor now and then, until the queue's
/// handle is dropped.
fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<Append>) {
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

#[cfg(test)]
mod tests;
