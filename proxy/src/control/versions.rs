//! Filter versions: what one is made of ([`VersionSpec`]), the history kept per filter for rollback,
//! what the control plane reports about the active one ([`FilterStatus`]), and rollbacks, by an operator
//! or after a quarantine.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use weir_core::Signal;
use weir_core::config::{FilterLimits, OnError};
use weir_filter::{LoadedFilter, Quarantined};

use super::{ManageError, Manager};

/// Versions of a filter kept for rollback.
const HISTORY: usize = 5;

/// What a filter version is made of. Also the form each version is recorded in, in `filters.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// The module's sha256, as returned by the upload.
    pub module: String,
    /// Handed to `init` as JSON text.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `fail-open` (default) or `fail-closed`.
    #[serde(default)]
    pub on_error: OnError,
    /// Deadline and memory cap.
    #[serde(default)]
    pub limits: FilterLimits,
}

impl VersionSpec {
    pub(super) fn config_text(&self) -> String {
        match &self.config {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }
}

/// The active version of one filter, as [`Manager::put`], [`Manager::rollback`] and [`Manager::list`]
/// report it.
#[derive(Debug, Clone)]
pub struct FilterStatus {
    /// The pipeline.
    pub signal: Signal,
    /// The filter's name.
    pub name: String,
    /// Increases with every push of this name.
    pub version: u64,
    /// The active module.
    pub sha256: String,
    /// Whether the active version is quarantined.
    pub quarantined: bool,
    /// While quarantined with nothing to roll back to: the time until calls try the filter again
    /// (zero: the next call does).
    pub retry_in: Option<Duration>,
    /// Failure policy.
    pub on_error: OnError,
    /// Versions available to roll back to.
    pub previous_versions: usize,
    /// The active version came from the API (not the configuration file).
    pub from_api: bool,
    /// Counters of the active version.
    pub counts: FilterCounts,
    /// Instances of the active version alive now.
    pub instances: usize,
    /// The interface version the module implements (`0.1.0`, `0.2.0`).
    pub interface: &'static str,
    /// The trusted key that signed the active version's module (`module_signing`), if any.
    pub signed_by: Option<String>,
}

/// Counters of a filter version, read at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterCounts {
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Items seen.
    pub items_in: u64,
    /// Items dropped.
    pub items_dropped: u64,
    /// Items changed.
    pub items_modified: u64,
    /// Batches rejected.
    pub rejected: u64,
    /// Calls refused because every instance stayed busy (back-pressure).
    pub busy: u64,
    /// The largest linear memory an instance has had, in bytes.
    pub instance_memory: u64,
}

#[derive(Clone)]
pub(super) struct Version {
    pub(super) version: u64,
    pub(super) request: VersionSpec,
    pub(super) filter: Arc<LoadedFilter>,
    pub(super) from_api: bool,
    pub(super) signed_by: Option<String>,
}

#[derive(Default, Clone)]
pub(super) struct Entry {
    /// Oldest first; the last is active. Empty: removed.
    pub(super) versions: Vec<Version>,
    pub(super) next_version: u64,
}

impl Entry {
    /// Adds an API-made version as the active one, keeping at most [`HISTORY`] versions.
    pub(super) fn push(
        &mut self,
        request: VersionSpec,
        filter: Arc<LoadedFilter>,
        signed_by: Option<String>,
    ) {
        self.next_version = self.next_version.max(1);
        self.versions.push(Version {
            version: self.next_version,
            request,
            filter,
            from_api: true,
            signed_by,
        });
        self.next_version += 1;
        if self.versions.len() > HISTORY {
            self.versions.remove(0);
        }
    }
}

impl Manager {
    /// Rolls a quarantined filter back to its previous version, when it has one.
    pub async fn watch_quarantines(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Quarantined>) {
        while let Some(q) = rx.recv().await {
            self.on_quarantined(&q).await;
        }
    }

    /// Acts on one quarantine: decided and carried out under one lock, and only if the filter that
    /// failed is still the active one. A version an operator pushed (or rolled back to) since the
    /// filter failed is never undone, even one of the same module.
    pub async fn on_quarantined(&self, q: &Quarantined) {
        let mut entries = self.entries.lock().await;
        let key = (q.signal, q.name.clone());
        let Some(entry) = entries.get_mut(&key) else {
            return;
        };
        if entry.versions.last().map(|v| v.filter.id()) != Some(q.id) {
            tracing::info!(
                filter = %q.name, signal = %q.signal, sha256 = %q.sha256,
                "a quarantined filter was replaced meanwhile: nothing to roll back"
            );
            return;
        }
        if entry.versions.len() < 2 {
            tracing::warn!(
                filter = %q.name, signal = %q.signal,
                "quarantined filter has no previous version; its on_error policy applies until it is replaced"
            );
            return;
        }
        entry.versions.pop();
        let to = reactivate(entry);
        self.swap(q.signal, &entries).await;
        self.metrics.filter_rolled_back(q.signal, &q.name);
        match self.persist(&entries).await {
            Ok(()) => tracing::warn!(
                filter = %q.name, signal = %q.signal, from = %q.sha256, to = %to,
                "quarantined filter rolled back to its previous version"
            ),
            Err(e) => {
                tracing::error!(filter = %q.name, error = %e, "automatic rollback not recorded")
            }
        }
        self.collect_modules(&entries);
    }

    /// Re-activates the previous version of a filter.
    pub async fn rollback(&self, signal: Signal, name: &str) -> Result<FilterStatus, ManageError> {
        let mut entries = self.entries.lock().await;
        let entry = entries
            .get_mut(&(signal, name.to_string()))
            .filter(|e| !e.versions.is_empty())
            .ok_or_else(|| ManageError::NotFound(format!("no filter {name} in {signal}")))?;
        if entry.versions.len() < 2 {
            return Err(ManageError::Conflict(format!(
                "filter {name} has no previous version to roll back to"
            )));
        }
        self.record(&mut entries, signal, name, |e| {
            e.versions.pop();
        })
        .await?;
        if let Some(entry) = entries.get(&(signal, name.to_string())) {
            reactivate(entry);
        }
        self.swap(signal, &entries).await;
        self.metrics.filter_rolled_back(signal, name);
        self.collect_modules(&entries);
        status(signal, name, entries.get(&(signal, name.to_string())))
            .ok_or_else(|| ManageError::NotFound(name.to_string()))
    }
}

/// The version a rollback made active again starts afresh: a quarantine it earned before is cleared.
/// Returns its module.
fn reactivate(entry: &Entry) -> String {
    entry.versions.last().map_or_else(String::new, |v| {
        v.filter.clear_quarantine();
        v.filter.module.sha256.clone()
    })
}

/// The active version of filter `name`, when it has one.
pub(super) fn status(signal: Signal, name: &str, entry: Option<&Entry>) -> Option<FilterStatus> {
    let entry = entry?;
    let v = entry.versions.last()?;
    let s = &v.filter.stats;
    use std::sync::atomic::Ordering::Relaxed;
    Some(FilterStatus {
        signal,
        name: name.to_string(),
        version: v.version,
        sha256: v.filter.module.sha256.clone(),
        quarantined: v.filter.is_quarantined(),
        retry_in: v.filter.retry_in(),
        on_error: v.request.on_error,
        previous_versions: entry.versions.len() - 1,
        from_api: v.from_api,
        counts: FilterCounts {
            calls: s.calls.load(Relaxed),
            errors: s.errors.load(Relaxed),
            items_in: s.items_in.load(Relaxed),
            items_dropped: s.items_dropped.load(Relaxed),
            items_modified: s.items_modified.load(Relaxed),
            rejected: s.rejected.load(Relaxed),
            busy: s.busy.load(Relaxed),
            instance_memory: s.instance_memory.load(Relaxed),
        },
        instances: v.filter.instances(),
        interface: v.filter.interface,
        signed_by: v.signed_by.clone(),
    })
}
