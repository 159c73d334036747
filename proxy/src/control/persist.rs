//! Persistence of the API's changes: `state_dir/filters.json` is written (atomically) before a change
//! goes live, and applied on top of the configuration file's filters at startup.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use weir_core::Signal;

use super::versions::{Entry, VersionSpec};
use super::{ManageError, Manager, parse_signal};

/// What `filters.json` records: the API's changes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    filters: Vec<PersistedFilter>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedFilter {
    pipeline: String,
    name: String,
    /// Oldest first; empty means the filter was removed.
    versions: Vec<VersionSpec>,
}

impl Manager {
    /// Applies the changes recorded in the state directory (at startup). The past never blocks a
    /// start: a recorded version that no longer loads (its module gone or damaged, unsigned under
    /// trusted keys, refused by a newer wasmtime) is skipped with an error line and
    /// `weir_filter_restore_failures_total`, the filter falling back to its newest version that loads
    /// (or to the configuration file's, or to none); a `filters.json` that does not parse is moved aside
    /// (`filters.json.unreadable`) and weir starts from the configuration file.
    pub async fn restore(&self) -> Result<usize, ManageError> {
        let Some(dir) = &self.state_dir else {
            return Ok(0);
        };
        let path = dir.join("filters.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(ManageError::State(format!("{}: {e}", path.display()))),
        };
        let persisted: Persisted = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                let aside = dir.join("filters.json.unreadable");
                tracing::error!(
                    file = %path.display(), moved_to = %aside.display(), error = %e,
                    "the recorded filter changes do not parse: starting from the configuration file's filters"
                );
                std::fs::rename(&path, &aside)
                    .map_err(|e| ManageError::State(format!("{}: {e}", path.display())))?;
                return Ok(0);
            }
        };
        let mut n = 0;
        for pf in persisted.filters {
            let Some(signal) = parse_signal(&pf.pipeline) else {
                continue;
            };
            if pf.versions.is_empty() {
                if self.clear(signal, &pf.name).await.is_ok() {
                    n += 1;
                }
                continue;
            }
            // Reload every kept version so that rollback works after a restart too.
            let mut loaded = Vec::new();
            for request in pf.versions {
                match self.load(signal, &pf.name, &request).await {
                    Ok((filter, signer)) => loaded.push((request, filter, signer)),
                    Err(e) => {
                        tracing::error!(
                            pipeline = %signal, filter = %pf.name, sha256 = %request.module, error = %e,
                            "a recorded filter version no longer loads: skipped"
                        );
                        self.metrics.filter_restore_failed(signal, &pf.name);
                    }
                }
            }
            if loaded.is_empty() {
                // Nothing recorded loads: the configuration file's version (if any) stays.
                continue;
            }
            let mut entries = self.entries.lock().await;
            let entry = entries.entry((signal, pf.name.clone())).or_default();
            entry.versions.clear();
            for (request, filter, signer) in loaded {
                entry.push(request, filter, signer);
            }
            self.append_to_order(signal, &pf.name).await;
            self.swap(signal, &entries).await;
            n += 1;
        }
        self.collect_modules(&*self.entries.lock().await);
        Ok(n)
    }

    /// Applies `change` to the entry of filter `name` and records the result in the state directory,
    /// before anything is swapped in: when the record cannot be written, the entry is put back as it
    /// was and the error returned, so that what runs is always what a restart would run.
    pub(super) async fn record(
        &self,
        entries: &mut BTreeMap<(Signal, String), Entry>,
        signal: Signal,
        name: &str,
        change: impl FnOnce(&mut Entry),
    ) -> Result<(), ManageError> {
        let key = (signal, name.to_string());
        let before = entries.get(&key).cloned();
        change(entries.entry(key.clone()).or_default());
        if let Err(e) = self.persist(entries).await {
            match before {
                Some(b) => entries.insert(key, b),
                None => entries.remove(&key),
            };
            return Err(e);
        }
        Ok(())
    }

    pub(super) async fn persist(
        &self,
        entries: &BTreeMap<(Signal, String), Entry>,
    ) -> Result<(), ManageError> {
        let Some(dir) = &self.state_dir else {
            return Ok(());
        };
        let persisted = Persisted {
            filters: entries
                .iter()
                .filter(|(_, e)| e.versions.is_empty() || e.versions.iter().any(|v| v.from_api))
                .map(|((signal, name), e)| PersistedFilter {
                    pipeline: signal.as_str().to_string(),
                    name: name.clone(),
                    versions: e.versions.iter().map(|v| v.request.clone()).collect(),
                })
                .collect(),
        };
        let text =
            serde_json::to_vec_pretty(&persisted).map_err(|e| ManageError::State(e.to_string()))?;
        write_atomic(&dir.join("filters.json"), &text)
    }
}

/// Writes via a temporary file and a rename, so that a crash never leaves a torn file.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ManageError> {
    weir_core::fs::write_durably(path, bytes, 0o644)
        .map_err(|e| ManageError::State(format!("{}: {e}", path.display())))
}
