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
//! the OTLP protobuf body.
//! Segments are named by the sequence number of their first record and rolled at `segment_bytes`.
//!
//! Durability: [`DurableQueue::append`] returns once the record is written and `fdatasync`ed (with
//! `sync: always`, the default); appends that arrive while a sync runs share the next one (group commit).
//! With `sync: none` the OS decides when data reaches the disk: the record survives a crash of weir
//! (kill -9), not a power loss. weir acknowledges the client after `append` returns.
//!
//! Recovery: at start every segment is read in order and each record's checksum verified. A record that
//! fails (torn write, bit rot) ends that segment: what follows it in the segment is skipped with a log
//! line and `weir_exporter_queue_corrupt_segments_total`; the other segments are replayed
//! (`weir_exporter_queue_replayed_items_total`).
//!
//! Bounds: the bytes of all segments on disk are held as permits of a semaphore of `max_bytes`; a
//! segment's permits are given back when it is deleted, after its last record was delivered. A full queue,
//! or a failed write (a full disk), refuses the batch with a retryable status: nothing is acknowledged that
//! was not written.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use weir_wire::record::{self, RecordError};

use weir_core::Signal;
use weir_core::telemetry::Metrics;

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
    /// Items in it.
    pub items: usize,
    /// When it was written, ms since the Unix epoch.
    pub enqueued_unix_ms: u64,
    segment: u64,
    offset: u64,
    len: u32,
}

struct Segment {
    file: Arc<File>,
    path: PathBuf,
    bytes: u64,
    /// Records not yet delivered.
    outstanding: usize,
    sealed: bool,
    permits: Vec<OwnedSemaphorePermit>,
}

struct State {
    segments: BTreeMap<u64, Segment>,
    /// The segment appends go to.
    active: Option<u64>,
    next_seq: u64,
    /// Written but not yet handed to a sender, in order.
    pending: VecDeque<Record>,
    /// Handed out, not yet done: seq -> enqueue time.
    in_flight: BTreeMap<u64, u64>,
    /// Last sequence number written to the active segment.
    written: u64,
}

/// A durable, bounded, ordered queue (see the module docs).
pub struct DurableQueue {
    dir: PathBuf,
    name: Arc<str>,
    state: Mutex<State>,
    /// Signals the syncer that there is something to sync.
    unsynced: Condvar,
    synced: watch::Sender<u64>,
    available: Notify,
    budget: Arc<Semaphore>,
    max_bytes: usize,
    segment_bytes: u64,
    sync: bool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableQueue")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl DurableQueue {
    /// Opens (creating it if needed) the queue in `dir`, replaying what a previous run left.
    pub fn open(
        dir: &Path,
        name: &str,
        max_bytes: usize,
        segment_bytes: u64,
        sync: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, DurableError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let budget = Arc::new(Semaphore::new(max_bytes.min(Semaphore::MAX_PERMITS)));
        let mut state = State {
            segments: BTreeMap::new(),
            active: None,
            next_seq: 1,
            pending: VecDeque::new(),
            in_flight: BTreeMap::new(),
            written: 0,
        };
        let mut ids: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
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
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io(&path))?;
            let mut offset = 0;
            let mut records = Vec::new();
            loop {
                match record::parse(&data[offset..]) {
                    Ok(None) => break,
                    Ok(Some(p)) => {
                        records.push(Record {
                            seq: p.seq,
                            signal: p.signal,
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
            if records.is_empty() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let file = File::open(&path).map_err(io(&path))?;
            let bytes = data.len() as u64;
            let permits = budget
                .clone()
                .try_acquire_many_owned(bytes.min(budget.available_permits() as u64) as u32)
                .into_iter()
                .collect();
            state.next_seq = state.next_seq.max(records.last().map_or(0, |r| r.seq) + 1);
            replayed += records.iter().map(|r| r.items).sum::<usize>();
            replayed_batches += records.len() as i64;
            replayed_bytes += records.iter().map(|r| r.len as i64).sum::<i64>();
            state.segments.insert(
                id,
                Segment {
                    file: Arc::new(file),
                    path,
                    bytes,
                    outstanding: records.len(),
                    sealed: true,
                    permits,
                },
            );
            state.pending.extend(records);
        }
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
        state.written = state.next_seq - 1;
        let (synced, _) = watch::channel(state.written);
        let q = Arc::new(Self {
            dir: dir.to_path_buf(),
            name: Arc::from(name),
            state: Mutex::new(state),
            unsynced: Condvar::new(),
            synced,
            available: Notify::new(),
            budget,
            max_bytes,
            segment_bytes,
            sync,
            metrics,
        });
        let weak = Arc::downgrade(&q);
        std::thread::Builder::new()
            .name(format!("weir-sync-{name}"))
            .spawn(move || syncer(weak))
            .map_err(io(dir))?;
        Ok(q)
    }

    /// Takes room for a record of `size` body bytes, or `None` when the queue is full.
    pub fn reserve(&self, size: usize) -> Option<OwnedSemaphorePermit> {
        let cost = (size + record::OVERHEAD).min(self.max_bytes).max(1);
        self.budget
            .clone()
            .try_acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
            .ok()
    }

    /// Writes a record and waits until it is synced (per the `sync` policy); then it is safe to
    /// acknowledge. On an error (a full disk) nothing was added.
    pub async fn append(
        self: &Arc<Self>,
        signal: Signal,
        items: usize,
        body: Bytes,
        permit: OwnedSemaphorePermit,
    ) -> Result<u64, DurableError> {
        let q = self.clone();
        let seq = tokio::task::spawn_blocking(move || q.write(signal, items, &body, permit))
            .await
            .map_err(|e| DurableError::Io {
                path: self.dir.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })??;
        if self.sync {
            let mut rx = self.synced.subscribe();
            // The sender lives as long as the queue, which `self` keeps alive.
            let _ = rx.wait_for(|s| *s >= seq).await;
        }
        self.available.notify_one();
        Ok(seq)
    }

    fn write(
        &self,
        signal: Signal,
        items: usize,
        body: &[u8],
        permit: OwnedSemaphorePermit,
    ) -> Result<u64, DurableError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let seq = st.next_seq;
        let header = record::header(seq, now_ms(), signal, items as u32, body);
        let record_len = (header.len() + body.len()) as u64;
        // Roll the active segment when this record would make it too big.
        let roll = match st.active.and_then(|id| st.segments.get(&id)) {
            Some(s) => s.bytes > 0 && s.bytes + record_len > self.segment_bytes,
            None => true,
        };
        if roll {
            if let Some(id) = st.active.take()
                && let Some(s) = st.segments.get_mut(&id)
            {
                if self.sync {
                    s.file.sync_data().map_err(io(&s.path))?;
                }
                s.sealed = true;
                if s.outstanding == 0 {
                    let s = st.segments.remove(&id);
                    if let Some(s) = s {
                        let _ = std::fs::remove_file(&s.path);
                    }
                }
            }
            let path = self.dir.join(format!("{seq:020}.seg"));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
                .map_err(io(&path))?;
            if self.sync {
                // The new file's directory entry must survive a crash too.
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io(&self.dir))?;
            }
            st.segments.insert(
                seq,
                Segment {
                    file: Arc::new(file),
                    path,
                    bytes: 0,
                    outstanding: 0,
                    sealed: false,
                    permits: Vec::new(),
                },
            );
            st.active = Some(seq);
        }
        let id = st.active.unwrap_or(seq);
        let Some(seg) = st.segments.get_mut(&id) else {
            return Err(DurableError::Io {
                path: self.dir.display().to_string(),
                source: std::io::Error::other("no active segment"),
            });
        };
        let offset = seg.bytes;
        if let Err(e) = write_all_vectored(&seg.file, &header, body) {
            // A partial record (disk full) is cut off so that the segment stays readable, and the
            // segment is closed: the next record starts a new file once there is room again.
            let _ = seg.file.set_len(offset);
            let err = io(&seg.path)(e);
            seg.sealed = true;
            if seg.outstanding == 0 {
                let path = seg.path.clone();
                st.segments.remove(&id);
                let _ = std::fs::remove_file(path);
            }
            st.active = None;
            return Err(err);
        }
        seg.bytes += record_len;
        seg.outstanding += 1;
        seg.permits.push(permit);
        st.next_seq += 1;
        st.written = seq;
        st.pending.push_back(Record {
            seq,
            signal,
            items,
            enqueued_unix_ms: now_ms(),
            segment: id,
            offset,
            len: record_len as u32,
        });
        drop(st);
        self.metrics
            .queue_changed(&self.name, 1, items as i64, record_len as i64);
        self.unsynced.notify_one();
        Ok(seq)
    }

    /// The next record to deliver, in order; waits until there is one.
    pub async fn next(&self) -> Record {
        loop {
            let notified = self.available.notified();
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                // Unsynced records are not handed out before they are durable, so that an upstream
                // never sees data weir could still lose.
                let synced = *self.synced.borrow();
                if let Some(r) = st.pending.front()
                    && (!self.sync || r.seq <= synced)
                {
                    let r = st.pending.pop_front().expect("front exists");
                    st.in_flight.insert(r.seq, r.enqueued_unix_ms);
                    return r;
                }
            }
            // Every append notifies after its record is synced; `notify_one` keeps a permit when
            // nobody waits, so a record that arrives between the check and this await is not missed.
            notified.await;
        }
    }

    /// Reads a record's body back. A record damaged since it was written is an error.
    pub fn read(&self, r: &Record) -> Result<Bytes, DurableError> {
        let (file, path) = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.segments
                .get(&r.segment)
                .map(|s| (s.file.clone(), s.path.clone()))
                .ok_or(DurableError::Misplaced(r.seq))?
        };
        let mut buf = vec![0; r.len as usize];
        file.read_exact_at(&mut buf, r.offset).map_err(io(&path))?;
        match record::parse(&buf)? {
            Some(p) if p.seq == r.seq => Ok(Bytes::from(buf).slice(p.body)),
            _ => Err(DurableError::Misplaced(r.seq)),
        }
    }

    /// The record was delivered (or given up on): its segment goes once all of its records are done.
    pub fn done(&self, r: &Record) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.in_flight.remove(&r.seq);
        let active = st.active == Some(r.segment);
        let low = self.budget.available_permits() < self.max_bytes / 2;
        let remove = match st.segments.get_mut(&r.segment) {
            Some(s) => {
                s.outstanding = s.outstanding.saturating_sub(1);
                // A drained active segment is retired too once it is large or room runs low, so that
                // its bytes never hold the queue full (a new one starts with the next record).
                s.outstanding == 0 && (s.sealed || low || s.bytes >= self.segment_bytes / 2)
            }
            None => false,
        };
        if remove && active {
            st.active = None;
        }
        if remove && let Some(s) = st.segments.remove(&r.segment) {
            let _ = std::fs::remove_file(&s.path);
        }
        drop(st);
        self.metrics
            .queue_changed(&self.name, -1, -(r.items as i64), -(r.len as i64));
    }

    /// Age of the oldest record not yet delivered.
    pub fn oldest_age(&self) -> Duration {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
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

/// Syncs the active segment whenever something was written since the last sync, and publishes how far
/// the log is durable. One sync covers every append that arrived before it started.
/// Writes a record's header and body with as few system calls as the kernel allows, without copying the
/// body into a record buffer first.
fn write_all_vectored(mut file: &File, header: &[u8], body: &[u8]) -> std::io::Result<()> {
    let mut bufs = [std::io::IoSlice::new(header), std::io::IoSlice::new(body)];
    let mut bufs = &mut bufs[..];
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn syncer(q: std::sync::Weak<DurableQueue>) {
    loop {
        let Some(queue) = q.upgrade() else { return };
        let (target, file) = {
            let st = queue.state.lock().unwrap_or_else(|e| e.into_inner());
            let synced = *queue.synced.borrow();
            if st.written <= synced {
                let (_st, _) = queue
                    .unsynced
                    .wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let file = st
                .active
                .and_then(|id| st.segments.get(&id))
                .map(|s| s.file.clone());
            (st.written, file)
        };
        if queue.sync
            && let Some(f) = file
            && let Err(e) = f.sync_data()
        {
            tracing::error!(exporter = %queue.name, error = %e, "syncing the durable queue failed");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        queue.synced.send_replace(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max: usize, segment: u64) -> Arc<DurableQueue> {
        DurableQueue::open(dir, "q", max, segment, true, Arc::new(Metrics::new())).unwrap()
    }

    async fn put(q: &Arc<DurableQueue>, body: &[u8]) -> u64 {
        let permit = q.reserve(body.len()).expect("room");
        q.append(Signal::Traces, 1, Bytes::copy_from_slice(body), permit)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn delivers_in_order_and_replays_what_was_not_done_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 1 << 20, 64);
        for i in 0..5u8 {
            put(&q, &[i; 10]).await;
        }
        let first = q.next().await;
        assert_eq!(q.read(&first).unwrap(), Bytes::from(vec![0u8; 10]));
        q.done(&first);
        let second = q.next().await;
        assert_eq!(second.seq, first.seq + 1);
        // Not done: replayed after a restart, with everything after it, in order.
        drop(q);
        let q = open(dir.path(), 1 << 20, 64);
        let mut bodies = Vec::new();
        for _ in 0..4 {
            let r = q.next().await;
            bodies.push(q.read(&r).unwrap()[0]);
            q.done(&r);
        }
        assert_eq!(bodies, [1, 2, 3, 4]);
        // New records continue the sequence.
        let seq = put(&q, b"x").await;
        assert!(seq > second.seq + 3);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn delivered_segments_are_deleted_and_their_room_given_back() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about three records of 100 bytes; segments of one record each.
        let q = open(dir.path(), 3 * (100 + record::OVERHEAD), 1);
        for _ in 0..3 {
            put(&q, &[1; 100]).await;
        }
        assert!(q.reserve(100).is_none(), "full");
        let files = || std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files(), 3);
        for _ in 0..2 {
            let r = q.next().await;
            q.done(&r);
        }
        // Two sealed segments went; the active one stays until it rolls.
        assert_eq!(files(), 1);
        assert!(q.reserve(100).is_some());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_corrupt_segment_is_skipped_and_the_others_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 1 << 20, 1);
        for i in 0..3u8 {
            put(&q, &[i; 50]).await;
        }
        drop(q);
        let mut segs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        // Damage the middle segment's body.
        let mut data = std::fs::read(&segs[1]).unwrap();
        let n = data.len();
        data[n - 1] ^= 0xff;
        std::fs::write(&segs[1], data).unwrap();
        let metrics = Arc::new(Metrics::new());
        let q = DurableQueue::open(dir.path(), "q", 1 << 20, 1, true, metrics.clone()).unwrap();
        let a = q.next().await;
        let b = q.next().await;
        assert_eq!((q.read(&a).unwrap()[0], q.read(&b).unwrap()[0]), (0, 2));
        let text = metrics.render();
        assert!(
            text.contains(r#"weir_exporter_queue_corrupt_segments_total{exporter="q"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"weir_exporter_queue_replayed_items_total{exporter="q"} 2"#));
    }
}
