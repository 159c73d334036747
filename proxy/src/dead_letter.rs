//! `weir dead-letter`: what durable queues kept aside because their upstream refused it for good
//! (`queue.on_permanent_error: dead_letter`), listed per exporter, and replayed to an OTLP/HTTP
//! endpoint (weir's own receiver, to go through the pipeline again, or the upstream directly) once
//! the cause is fixed. A file is deleted only after every request in it was accepted; the first refusal
//! stops the replay with the file and the answer named, so nothing is lost or sent twice by the tool.

use std::path::{Path, PathBuf};

use http::Method;

use crate::admin::client::AdminClient;
use crate::exporter::dead_letter::{self, DeadBatch};

/// Replaying failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// A directory or file could not be read or removed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
    /// Its files, oldest first.
    pub batches: Vec<DeadBatch>,
}

/// The dead letters of every exporter under `state_dir`.
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
        let batches = dead_letter::read_dir(&dir(state_dir, &exporter))?;
        if !batches.is_empty() {
            out.push(ExporterDeadLetters { exporter, batches });
        }
    }
    Ok(out)
}

fn dir(state_dir: &Path, exporter: &str) -> PathBuf {
    dead_letter::dir_of(&state_dir.join("queues").join(exporter))
}

/// Sends every dead letter of `exporter` to `to` (`http(s)://HOST:PORT`, requests go to
/// `/v1/<signal>` as protobuf) with `headers`, deleting each file once all of its requests were
/// accepted; `progress` is told about each file. Returns (files, requests, items) replayed.
pub async fn replay(
    state_dir: &Path,
    exporter: &str,
    to: &str,
    headers: &[(String, String)],
    mut progress: impl FnMut(&DeadBatch),
) -> Result<(usize, usize, u64), DeadLetterError> {
    let client = AdminClient::plain(to);
    let batches = dead_letter::read_dir(&dir(state_dir, exporter))?;
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (mut files, mut requests, mut items) = (0, 0, 0u64);
    for batch in &batches {
        for (index, r) in batch.requests.iter().enumerate() {
            client
                .call_with_headers(
                    Method::POST,
                    &format!("/v1/{}", r.signal.as_str()),
                    "application/x-protobuf",
                    &headers,
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
        }
        std::fs::remove_file(&batch.path)?;
        files += 1;
        progress(batch);
    }
    Ok((files, requests, items))
}
