//! What happens at start: the queue's directory is scanned and its log replayed.
//!
//! **Recovery.** At start every segment is read in order and each record's checksum verified. A record
//! that fails (torn write, bit rot) ends that segment: what follows it in the segment is skipped with a
//! log line and `weir_exporter_queue_corrupt_segments_total`; the other segments are replayed
//! (`weir_exporter_queue_replayed_items_total`).
//!
//! The delivery cursor (see `reader`) is read first, and records below it are not replayed; a
//! segment left with nothing to replay (all delivered, or left empty or holding only a torn write by
//! a failed round) is deleted. Numbering goes on after every record found and never from below the cursor. Then the
//! writer thread starts.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::{Notify, Semaphore};

use weir_core::fs::{Os, Storage, StorageFile};
use weir_core::telemetry::Metrics;
use weir_wire::record;

use super::reader::CURSOR;
use super::writer::writer_loop;
use super::{DurableError, DurableQueue, Layout, Record, Segment, Shared, State, io};

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
}
