//! The file operations weir's durable state rests on, behind a small seam ([`Storage`]), and writing
//! state files so that a crash leaves the old contents or all of the new, never a torn or missing file
//! (`filters.json`, pushed modules, signatures, the admin token, dead-letter batches).
//!
//! [`Os`] is the real file system. With the `sim-disk` feature, [`sim::SimDisk`] is an in-memory one
//! that keeps what a power loss would keep (only synced bytes, only directory entries whose directory
//! was synced) and fails any chosen call: tests walk every step of a durable write with it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[cfg(any(test, feature = "sim-disk"))]
pub mod sim;

/// The file-system calls under a durable queue and [`write_durably_on`].
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// `mkdir -p`.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The paths in `dir` (`NotFound` when it does not exist).
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// A whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates `path` empty (truncating what was there) with `mode`, for appending and reading.
    fn create(&self, path: &Path, mode: u32) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Renames `from` over `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Unlinks a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (files created, renamed, removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file of a [`Storage`].
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Appends all of `bufs` at the end, in order, or fails (having written any prefix of them).
    fn append(&self, bufs: &[&[u8]]) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: what was appended is durable once this returns `Ok`. After an error it may never
    /// be (the kernel may have dropped the pages); a caller must not retry and trust it.
    fn sync_data(&self) -> io::Result<()>;
    /// Fills `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Os;

impl Storage for Os {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn create(&self, path: &Path, mode: u32) -> io::Result<Box<dyn StorageFile>> {
        // O_APPEND cannot be combined with O_TRUNC: the file is cut right after it is opened.
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(mode)
            .open(path)?;
        file.set_len(0)?;
        Ok(Box::new(OsFile(file)))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(OsFile(File::open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

#[derive(Debug)]
struct OsFile(File);

impl StorageFile for OsFile {
    /// With as few system calls as the kernel allows, without copying the buffers into one first.
    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        let mut slices: Vec<io::IoSlice<'_>> = bufs
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| io::IoSlice::new(b))
            .collect();
        let mut slices = &mut slices[..];
        let mut file = &self.0;
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

/// Writes `bytes` to `path` (created with `mode`): a temporary file in the same directory, synced,
/// renamed over `path`, then the directory synced so that the rename itself is on disk. On an error
/// `path` holds what it held before (the temporary file is removed where it can be).
pub fn write_durably_on(
    storage: &dyn Storage,
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    storage.create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = storage.create(&tmp, mode).and_then(|f| {
        f.append(&[bytes])?;
        f.sync_data()
    });
    if let Err(e) = written.and_then(|()| storage.rename(&tmp, path)) {
        let _ = storage.remove(&tmp);
        return Err(e);
    }
    storage.sync_dir(dir)
}

/// [`write_durably_on`] the real file system.
pub fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_durably_on(&Os, path, bytes, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_durable_write_replaces_the_file_whole_with_its_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("filters.json");
        write_durably(&path, b"first", 0o600).unwrap();
        write_durably(&path, b"second, longer", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["filters.json"], "no temporary file is left");
    }

    #[test]
    fn a_durable_write_that_fails_at_any_step_leaves_the_old_contents_after_a_crash() {
        use sim::SimDisk;
        let path = Path::new("/state/filters.json");
        let prepare = || {
            let disk = SimDisk::new();
            write_durably_on(&disk, path, b"old", 0o644).unwrap();
            disk
        };
        let steps = {
            let disk = prepare();
            let before = disk.counts();
            write_durably_on(&disk, path, b"new", 0o644).unwrap();
            disk.counts_since(&before)
        };
        assert!(steps.len() >= 5, "{steps:?}");
        for (op, n) in steps {
            for nth in 1..=n {
                let disk = prepare();
                disk.fail_next(op, nth);
                let result = write_durably_on(&disk, path, b"new", 0o644);
                let after = disk.crash().read(path).unwrap();
                match result {
                    // The write is durable once it returns Ok.
                    Ok(()) => panic!("{op:?} #{nth} failed but the write reported success"),
                    // Old or new, whole: never torn, never missing.
                    Err(_) => assert!(
                        after == b"old" || after == b"new",
                        "{op:?} #{nth}: {after:?}"
                    ),
                }
                let names = disk.list(Path::new("/state")).unwrap();
                assert_eq!(names, [path], "{op:?} #{nth}: no temporary file is left");
            }
        }
    }
}
