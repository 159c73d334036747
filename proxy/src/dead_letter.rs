//! `weir dead-letter`: what durable queues kept aside because their upstream refused it for good
//! (`queue.on_permanent_error: dead_letter`), listed per exporter, and replayed to an OTLP/HTTP
//! endpoint (weir's own receiver, to go through the pipeline again, or the upstream directly) once
//! the cause is fixed. Each request goes with the tenant it was kept with, in the exporter's
//! `tenant_header` (`--tenant-header`). A file is deleted only after every request in it was accepted;
//! the first refusal stops the replay with the file and the answer named. How many requests of a file
//! were accepted is recorded durably beside it (`UNIXMS-SEQ.replayed`) after each one, so that the next
//! replay (and `list`) starts at the first request not accepted: nothing is lost, and nothing accepted
//! is sent again by the tool (short of a crash between an acceptance and its record).

use std::path::{Path, PathBuf};

use http::Method;

use crate::admin::client::AdminClient;
use crate::exporter::dead_letter::{self, DeadBatch};

/// Replaying failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// A directory or file could not be read, written or removed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// `--tenant-header` is not a header name.
    #[error("tenant header {0}")]
    TenantHeader(String),
    /// The endpoint refused a request (or could not be reached).
    #[error("{file}: request {index} ({signal}, {items} items) was not accepted: {source}")]
    Refused {
        /// The dead-letter file.
        file: String,
        /// Which request of the file.
        index: usize,
        /// Its signal.
        signal: crate::Signal,
        /// Its items.
        items: u32,
        /// The endpoint's answer.
        source: crate::admin::client::ClientError,
    },
}

/// One exporter's dead letters.
#[derive(Debug)]
pub struct ExporterDeadLetters {
    /// The exporter.
    pub exporter: String,
    /// Its files, oldest first, each without the requests an earlier replay got accepted.
    pub batches: Vec<DeadBatch>,
}

/// The dead letters of every exporter under `state_dir` (without the requests a replay got accepted).
pub fn list(state_dir: &Path) -> Result<Vec<ExporterDeadLetters>, DeadLetterError> {
    let queues = state_dir.join("queues");
    let mut names: Vec<String> = match std::fs::read_dir(&queues) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    let mut out = Vec::new();
    for exporter in names {
        let batches: Vec<DeadBatch> = pending(&dir(state_dir, &exporter))?
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        if !batches.is_empty() {
            out.push(ExporterDeadLetters { exporter, batches });
        }
    }
    Ok(out)
}

fn dir(state_dir: &Path, exporter: &str) -> PathBuf {
    dead_letter::dir_of(&state_dir.join("queues").join(exporter))
}

/// The file beside dead-letter file `dead` that records how many of its requests (from the first) an
/// earlier replay got accepted: `UNIXMS-SEQ.replayed`, the count in decimal.
fn progress_path(dead: &Path) -> PathBuf {
    dead.with_extension(PROGRESS)
}

const PROGRESS: &str = "replayed";

/// How many requests of `batch` were accepted already (0 without a progress record).
fn accepted(batch: &DeadBatch) -> Result<usize, DeadLetterError> {
    let path = progress_path(&batch.path);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    match text.trim().parse::<usize>() {
        Ok(n) if n <= batch.requests.len() => Ok(n),
        _ => Err(DeadLetterError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: not a count of accepted requests of {} ({} requests): {text:?}",
                path.display(),
                batch.path.display(),
                batch.requests.len()
            ),
        ))),
    }
}

/// The dead letters in `dir`, oldest first, each with the requests an earlier replay got accepted
/// left out, and how many those were. A progress record whose file is gone (a replay stopped between
/// the two deletions) is deleted.
fn pending(dir: &Path) -> Result<Vec<(DeadBatch, usize)>, DeadLetterError> {
    let mut out = Vec::new();
    for mut batch in dead_letter::read_dir(dir)? {
        let done = accepted(&batch)?;
        batch.requests.drain(..done);
        out.push((batch, done));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for p in entries.flatten().map(|e| e.path()) {
            if p.extension().is_some_and(|x| x == PROGRESS) && !p.with_extension("dead").exists() {
                std::fs::remove_file(&p)?;
            }
        }
    }
    Ok(out)
}

/// Sends every dead letter of `exporter` to `to` (`http(s)://HOST:PORT`, requests go to
/// `/v1/<signal>` as protobuf) with `headers`, and each request kept with a tenant with its tenant in
/// `tenant_header` (the exporter's `tenant_header`; it replaces one of `headers` of the same name);
/// `progress` is told about each file. After each accepted request the count accepted is recorded
/// durably beside its file (`.replayed`), and the file is deleted once all of it was accepted: a
/// replay stopped by a refusal (or interrupted) resumes at the first request not accepted, and never
/// sends again one that was. Returns (files, requests, items) replayed.
pub async fn replay(
    state_dir: &Path,
    exporter: &str,
    to: &str,
    headers: &[(String, String)],
    tenant_header: &str,
    mut progress: impl FnMut(&DeadBatch),
) -> Result<(usize, usize, u64), DeadLetterError> {
    let tenant_name = http::HeaderName::from_bytes(tenant_header.as_bytes())
        .map_err(|e| DeadLetterError::TenantHeader(format!("{tenant_header:?}: {e}")))?;
    let client = AdminClient::plain(to);
    let dir = dir(state_dir, exporter);
    let batches = pending(&dir)?;
    let (mut files, mut requests, mut items) = (0, 0, 0u64);
    for (batch, done) in &batches {
        for (i, r) in batch.requests.iter().enumerate() {
            let index = done + i;
            let mut sent: Vec<(&str, &str)> = headers
                .iter()
                .filter(|(k, _)| {
                    r.tenant.is_none() || !tenant_name.as_str().eq_ignore_ascii_case(k)
                })
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if let Some(t) = &r.tenant {
                sent.push((tenant_name.as_str(), t.as_str()));
            }
            client
                .call_with_headers(
                    Method::POST,
                    &format!("/v1/{}", r.signal.as_str()),
                    "application/x-protobuf",
                    &sent,
                    r.body.to_vec(),
                )
                .await
                .map_err(|source| DeadLetterError::Refused {
                    file: batch.path.display().to_string(),
                    index,
                    signal: r.signal,
                    items: r.items,
                    source,
                })?;
            requests += 1;
            items += u64::from(r.items);
            if i + 1 < batch.requests.len() {
                weir_core::fs::write_durably(
                    &progress_path(&batch.path),
                    (index + 1).to_string().as_bytes(),
                    0o600,
                )?;
            }
        }
        // The file first, made durable, then its progress: a progress record never outlives its
        // file's deletion unnoticed, and a file never comes back without its progress.
        std::fs::remove_file(&batch.path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        match std::fs::remove_file(progress_path(&batch.path)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        files += 1;
        progress(batch);
    }
    Ok((files, requests, items))
}

#[cfg(test)]
mod tests;
