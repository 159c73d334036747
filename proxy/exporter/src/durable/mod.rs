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
//! **Bounds.** The bytes of all segments on disk are held as permits of a semaphore of `max_bytes`; a
//! segment's permits are given back when it is deleted, after its last record was delivered. A full queue
//! refuses the batch with a retryable status.
//!
//! **Files.** Each concern reads alone: `recovery` is what happens at start (scanning the segments,
//! ending a segment at a torn or damaged record, restoring the delivery cursor), `writer` the writer
//! thread (appends, group commit, failed rounds), `reader` delivery (batches for the senders, reading
//! records back, finishing them) and the delivery cursor. This file holds what they share: the
//! records, segments and state, and the segments' deletion.

mod reader;
mod recovery;
mod writer;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use weir_core::Signal;
use weir_core::fs::{Storage, StorageFile};
use weir_core::telemetry::Metrics;
use weir_wire::record::RecordError;

use writer::Append;

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
    /// How often the delivery cursor is recorded (see the `reader` module).
    pub cursor_every: Duration,
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
}

#[cfg(test)]
mod tests;
