//! An in-memory [`Storage`] for tests: it keeps what a power loss would keep, and fails the calls a test
//! picks.
//!
//! Each file has the bytes a reader sees and the bytes that are durable (those of its last successful
//! [`StorageFile::sync_data`]); each path has a name readers see and a durable name (set by
//! [`Storage::sync_dir`] of its directory). [`SimDisk::crash`] returns the disk a reboot would find.
//! A failed sync loses the pages it was asked to write, as Linux does: a later successful sync does
//! not bring them back (they read back as zeros after a crash), so code that retries a failed sync and
//! trusts it is caught.
//!
//! Faults are armed per kind of call ([`Op`]) and count: [`SimDisk::fail_next`]`(Op::Sync, 2)` fails the
//! second sync from now. A failed append writes half of what it was given first (a torn write).
//! [`SimDisk::counts`] tells a test how many calls of each kind a run made, so that it can walk them all.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Storage, StorageFile};

/// A kind of file-system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// [`Storage::create_dir_all`].
    CreateDir,
    /// [`Storage::list`].
    List,
    /// [`Storage::read`].
    Read,
    /// [`Storage::create`].
    Create,
    /// [`Storage::open`].
    Open,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`StorageFile::append`].
    Append,
    /// [`StorageFile::set_len`].
    SetLen,
    /// [`StorageFile::sync_data`].
    Sync,
    /// [`StorageFile::read_at`].
    ReadAt,
}

#[derive(Debug, Default, Clone)]
struct Node {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Bytes a failed sync lost: they never become durable.
    lost: Vec<std::ops::Range<usize>>,
}

#[derive(Debug, Default)]
struct Disk {
    nodes: Vec<Node>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    counts: BTreeMap<Op, usize>,
    /// Armed faults: the call of that kind whose count reaches the value fails.
    faults: Vec<(Op, usize)>,
    fired: Vec<(Op, usize)>,
}

impl Disk {
    /// Counts a call; `Err` when it is one armed to fail.
    fn call(&mut self, op: Op) -> io::Result<()> {
        let n = self.counts.entry(op).or_default();
        *n += 1;
        let n = *n;
        if let Some(i) = self.faults.iter().position(|&f| f == (op, n)) {
            self.faults.swap_remove(i);
            self.fired.push((op, n));
            let kind = match op {
                Op::Append => "No space left on device (simulated)",
                _ => "Input/output error (simulated)",
            };
            return Err(io::Error::other(kind));
        }
        Ok(())
    }

    fn node(&self, path: &Path) -> io::Result<usize> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }

    fn dir_exists(&self, dir: &Path) -> io::Result<()> {
        if self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", dir.display()),
            ))
        }
    }
}

/// The simulated disk (see the module docs). Clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimDisk(Arc<Mutex<Disk>>);

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms a fault: the `nth` call of kind `op` from now fails.
    pub fn fail_next(&self, op: Op, nth: usize) {
        let mut d = self.lock();
        let done = d.counts.get(&op).copied().unwrap_or(0);
        d.faults.push((op, done + nth));
    }

    /// The faults that fired, as (kind, count since the disk was made).
    pub fn fired(&self) -> Vec<(Op, usize)> {
        self.lock().fired.clone()
    }

    /// Calls made so far, by kind.
    pub fn counts(&self) -> BTreeMap<Op, usize> {
        self.lock().counts.clone()
    }

    /// Calls made since `before` (a [`SimDisk::counts`]), by kind; kinds not called are left out.
    pub fn counts_since(&self, before: &BTreeMap<Op, usize>) -> BTreeMap<Op, usize> {
        self.counts()
            .into_iter()
            .map(|(op, n)| (op, n - before.get(&op).copied().unwrap_or(0)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// The disk a power loss leaves: durable names only, each file with its durable bytes. No faults
    /// are armed on it.
    pub fn crash(&self) -> SimDisk {
        let d = self.lock();
        let mut after = Disk {
            dirs: d.dirs.clone(),
            ..Disk::default()
        };
        for (path, &node) in &d.durable_names {
            let bytes = d.nodes[node].durable.clone();
            after.nodes.push(Node {
                data: bytes.clone(),
                durable: bytes,
                lost: Vec::new(),
            });
            let id = after.nodes.len() - 1;
            after.names.insert(path.clone(), id);
            after.durable_names.insert(path.clone(), id);
        }
        SimDisk(Arc::new(Mutex::new(after)))
    }
}

impl Storage for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut d = self.lock();
        d.call(Op::CreateDir)?;
        // Directories are durable at once: the durable queue's are made once, at start.
        for a in dir.ancestors() {
            d.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut d = self.lock();
        d.call(Op::List)?;
        d.dir_exists(dir)?;
        let mut out: Vec<PathBuf> = d
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        out.extend(d.dirs.iter().filter(|p| p.parent() == Some(dir)).cloned());
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut d = self.lock();
        d.call(Op::Read)?;
        let n = d.node(path)?;
        Ok(d.nodes[n].data.clone())
    }

    fn create(&self, path: &Path, _mode: u32) -> io::Result<Box<dyn StorageFile>> {
        let mut d = self.lock();
        d.call(Op::Create)?;
        d.dir_exists(path.parent().unwrap_or(Path::new("/")))?;
        let node = match d.names.get(path) {
            Some(&n) => {
                d.nodes[n].data.clear();
                n
            }
            None => {
                d.nodes.push(Node::default());
                let n = d.nodes.len() - 1;
                d.names.insert(path.to_path_buf(), n);
                n
            }
        };
        Ok(Box::new(SimFile {
            disk: self.clone(),
            node,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut d = self.lock();
        d.call(Op::Open)?;
        let node = d.node(path)?;
        Ok(Box::new(SimFile {
            disk: self.clone(),
            node,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut d = self.lock();
        d.call(Op::Rename)?;
        let n = d.node(from)?;
        d.names.remove(from);
        d.names.insert(to.to_path_buf(), n);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut d = self.lock();
        d.call(Op::Remove)?;
        d.node(path)?;
        d.names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut d = self.lock();
        d.call(Op::SyncDir)?;
        d.dir_exists(dir)?;
        let d = &mut *d;
        d.durable_names.retain(|p, _| p.parent() != Some(dir));
        for (p, &n) in &d.names {
            if p.parent() == Some(dir) {
                d.durable_names.insert(p.clone(), n);
            }
        }
        Ok(())
    }
}

/// An open file of a [`SimDisk`]; like a file descriptor, it outlives its name.
#[derive(Debug)]
struct SimFile {
    disk: SimDisk,
    node: usize,
}

impl StorageFile for SimFile {
    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        let mut d = self.disk.lock();
        let all: Vec<u8> = bufs.concat();
        if let Err(e) = d.call(Op::Append) {
            let half = all.len() / 2;
            d.nodes[self.node].data.extend_from_slice(&all[..half]);
            return Err(e);
        }
        d.nodes[self.node].data.extend_from_slice(&all);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut d = self.disk.lock();
        d.call(Op::SetLen)?;
        d.nodes[self.node].data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut d = self.disk.lock();
        let failed = d.call(Op::Sync);
        let node = &mut d.nodes[self.node];
        match failed {
            Err(e) => {
                // The pages not yet durable are dropped and marked clean.
                let from = node.durable.len().min(node.data.len());
                node.lost.push(from..node.data.len());
                Err(e)
            }
            Ok(()) => {
                let mut bytes = node.data.clone();
                for r in &node.lost {
                    let end = r.end.min(bytes.len());
                    if r.start < end {
                        bytes[r.start..end].fill(0);
                    }
                }
                node.durable = bytes;
                Ok(())
            }
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut d = self.disk.lock();
        d.call(Op::ReadAt)?;
        let data = &d.nodes[self.node].data;
        let start = offset as usize;
        let end = start + buf.len();
        if end > data.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_only_synced_bytes_under_synced_names() {
        let disk = SimDisk::new();
        let dir = Path::new("/q");
        disk.create_dir_all(dir).unwrap();
        let a = disk.create(&dir.join("a"), 0o600).unwrap();
        a.append(&[b"one", b"two"]).unwrap();
        a.sync_data().unwrap();
        disk.sync_dir(dir).unwrap();
        a.append(&[b"three"]).unwrap();
        let b = disk.create(&dir.join("b"), 0o600).unwrap();
        b.append(&[b"unnamed"]).unwrap();
        b.sync_data().unwrap();
        let after = disk.crash();
        assert_eq!(after.read(&dir.join("a")).unwrap(), b"onetwo");
        assert!(
            after.read(&dir.join("b")).is_err(),
            "its name was never synced"
        );
    }

    #[test]
    fn a_failed_sync_loses_its_pages_for_good_and_a_failed_append_tears() {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/q")).unwrap();
        let f = disk.create(Path::new("/q/a"), 0o600).unwrap();
        disk.sync_dir(Path::new("/q")).unwrap();
        f.append(&[b"abcd"]).unwrap();
        disk.fail_next(Op::Sync, 1);
        assert!(f.sync_data().is_err());
        f.append(&[b"ef"]).unwrap();
        // Retried and "successful", but the first four bytes were lost.
        f.sync_data().unwrap();
        assert_eq!(disk.crash().read(Path::new("/q/a")).unwrap(), b"\0\0\0\0ef");
        disk.fail_next(Op::Append, 1);
        assert!(f.append(&[b"1234"]).is_err());
        assert_eq!(disk.read(Path::new("/q/a")).unwrap(), b"abcdef12");
        assert_eq!(disk.fired(), [(Op::Sync, 1), (Op::Append, 3)]);
    }
}
