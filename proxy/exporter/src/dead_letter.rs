//! Where a durable queue puts acknowledged data its upstream refused for good (`on_permanent_error:
//! dead_letter`): `state_dir/queues/NAME/dead-letter/`, one file per refused upstream request, named
//! `UNIXMS-FIRSTSEQ.dead`, holding one record per client request in the durable queue's record format
//! ([`weir_wire::record`], tenant included). A file is written durably (fsynced, renamed, directory
//! fsynced) before the queue lets go of its records, so data weir acknowledged is on disk throughout.
//! `weir dead-letter list` and `weir dead-letter replay` read them back.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use weir_core::fs::Storage;
use weir_core::{Encoded, Signal};
use weir_wire::record;

/// The dead-letter directory of the durable queue in `queue_dir`.
pub fn dir_of(queue_dir: &Path) -> PathBuf {
    queue_dir.join("dead-letter")
}

/// One client request kept in a dead-letter file.
#[derive(Debug, Clone)]
pub struct DeadRequest {
    /// Its signal.
    pub signal: Signal,
    /// Its tenant, for an exporter that sends tenants upstream.
    pub tenant: Option<String>,
    /// Its items.
    pub items: u32,
    /// When it was first queued, ms since the Unix epoch.
    pub enqueued_unix_ms: u64,
    /// The OTLP protobuf request.
    pub body: Bytes,
}

/// One dead-letter file.
#[derive(Debug, Clone)]
pub struct DeadBatch {
    /// The file.
    pub path: PathBuf,
    /// Its requests, in order.
    pub requests: Vec<DeadRequest>,
}

/// Writes `parts` (one upstream request, first queued at `enqueued_unix_ms` as record `first_seq`) to
/// a new file in `dir`; returns it.
pub fn write(
    storage: &dyn Storage,
    dir: &Path,
    first_seq: u64,
    enqueued_unix_ms: u64,
    tenant: Option<&str>,
    parts: &[Encoded],
) -> std::io::Result<PathBuf> {
    let mut buf = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        buf.extend(record::header_of_parts(
            i as u64,
            enqueued_unix_ms,
            p.signal(),
            tenant,
            p.items() as u32,
            &[p.bytes()],
        ));
        buf.extend_from_slice(p.bytes());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let path = dir.join(format!("{now}-{first_seq}.dead"));
    weir_core::fs::write_durably_on(storage, &path, &buf, 0o600)?;
    Ok(path)
}

/// Every dead-letter file in `dir`, oldest first (a missing directory has none). A damaged file is an
/// error naming it: nothing is skipped silently.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<DeadBatch>> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "dead"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    paths.sort();
    paths.into_iter().map(|p| read(&p)).collect()
}

/// One dead-letter file.
pub fn read(path: &Path) -> std::io::Result<DeadBatch> {
    parse(path, Bytes::from(std::fs::read(path)?))
}

/// The dead-letter file `path`, read as `data`.
pub fn parse(path: &Path, data: Bytes) -> std::io::Result<DeadBatch> {
    let mut requests = Vec::new();
    let mut offset = 0;
    loop {
        match record::parse(&data[offset..]) {
            Ok(None) => break,
            Ok(Some(p)) => {
                requests.push(DeadRequest {
                    signal: p.signal,
                    tenant: p.tenant,
                    items: p.items,
                    enqueued_unix_ms: p.enqueued_unix_ms,
                    body: data.slice(offset + p.body.start..offset + p.body.end),
                });
                offset += p.len;
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: record at byte {offset}: {e}", path.display()),
                ));
            }
        }
    }
    Ok(DeadBatch {
        path: path.to_path_buf(),
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_batch_reads_back_whole_with_its_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let parts = [
            Encoded::trusted(Signal::Logs, Bytes::from_static(b"first"), 2),
            Encoded::trusted(Signal::Logs, Bytes::from_static(b"second"), 3),
        ];
        let path = write(
            &weir_core::fs::Os,
            dir.path(),
            41,
            1234,
            Some("team-a"),
            &parts,
        )
        .unwrap();
        let batches = read_dir(dir.path()).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].path, path);
        let r = &batches[0].requests;
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].signal, r[0].items, &r[0].body[..]),
            (Signal::Logs, 2, &b"first"[..])
        );
        assert_eq!((r[1].items, &r[1].body[..]), (3, &b"second"[..]));
        assert_eq!(r[1].tenant.as_deref(), Some("team-a"));
        assert_eq!(r[0].enqueued_unix_ms, 1234);
        // Damage is an error naming the file, never a silent skip.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(".dead") && err.contains("checksum"), "{err}");
        assert!(read_dir(&dir.path().join("missing")).unwrap().is_empty());
    }
}
