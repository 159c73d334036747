//! The filter control plane: which filter versions each pipeline runs, and every change to that (push,
//! rollback, removal, automatic rollback after a quarantine). A change builds a new immutable chain and
//! swaps it into the pipeline; startup takes the same path.
//!
//! With a state directory, uploaded modules (`modules/<sha256>.wasm`) and the API's changes
//! (`filters.json`) survive a restart: at start weir loads the configuration file's filters, then applies
//! the recorded changes on top, so a filter pushed or removed through the API stays so, and the file's
//! other filters stay as the file says. An API change is recorded before it is swapped in: when the
//! record cannot be written, nothing changes (an automatic rollback after a quarantine still goes
//! live, with an error line).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

use weir_core::Signal;
use weir_core::config::{FilterLimits, OnError};
use weir_core::telemetry::Metrics;
use weir_filter::{
    Chain, FilterError, FilterSpec, LoadedFilter, QuarantineSender, Quarantined, Runtime,
};
use weir_pipeline::Pipelines;

use crate::signing::{SigningError, Trust, signature_path};

/// Versions of a filter kept for rollback.
const HISTORY: usize = 5;

/// Uploaded modules that no filter version references and are kept anyway, the most recently
/// uploaded first (an upload is usually followed by the push that uses it); older ones are deleted
/// from memory and from `state_dir/modules`.
pub const KEEP_UNREFERENCED_MODULES: usize = 4;

/// A control-plane operation failed; the variant decides the admin API's status code.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The request names something that cannot be a name (a module name that is a path) (400).
    #[error("{0}")]
    BadRequest(String),
    /// Unknown pipeline, filter or module (404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out in the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The filter failed validation; nothing changed (422).
    #[error(transparent)]
    Invalid(#[from] FilterError),
    /// The state directory could not be written (500).
    #[error("state directory: {0}")]
    State(String),
    /// The module is not signed by a trusted key (`module_signing`); nothing changed (403).
    #[error(transparent)]
    Signature(#[from] SigningError),
}

/// What a new filter version is made of (the admin API's request body).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterRequest {
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

impl FilterRequest {
    fn config_text(&self) -> String {
        match &self.config {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }
}

/// One filter as the admin API lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilterInfo {
    /// The pipeline (signal).
    pub pipeline: String,
    /// The filter's name.
    pub name: String,
    /// Increases with every push of this name.
    pub version: u64,
    /// The active module.
    pub sha256: String,
    /// `active` or `quarantined`.
    pub state: String,
    /// While quarantined with nothing to roll back to: milliseconds until calls try the filter again
    /// (0: the next call does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Failure policy.
    pub on_error: OnError,
    /// Versions available to roll back to.
    pub previous_versions: usize,
    /// Where the active version came from: `config` or `api`.
    pub source: String,
    /// Counters of the active version.
    pub stats: FilterStatsInfo,
    /// The trusted key that signed the active version's module (`module_signing`), if any.
    #[serde(default)]
    pub signed_by: Option<String>,
}

/// Counters of a filter version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FilterStatsInfo {
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
    #[serde(default)]
    pub busy: u64,
    /// Instances alive now.
    #[serde(default)]
    pub instances: usize,
    /// The interface version the module implements (`0.1.0`, `0.2.0`).
    #[serde(default)]
    pub interface: String,
}

#[derive(Clone)]
struct Version {
    version: u64,
    request: FilterRequest,
    filter: Arc<LoadedFilter>,
    from_api: bool,
    signed_by: Option<String>,
}

#[derive(Default, Clone)]
struct Entry {
    /// Oldest first; the last is active. Empty: removed.
    versions: Vec<Version>,
    next_version: u64,
}

impl Entry {
    /// Adds an API-made version as the active one, keeping at most [`HISTORY`] versions.
    fn push(
        &mut self,
        request: FilterRequest,
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
    versions: Vec<FilterRequest>,
}

/// The control plane.
pub struct Manager {
    runtime: Arc<Runtime>,
    pipelines: Arc<Pipelines>,
    metrics: Arc<Metrics>,
    state_dir: Option<PathBuf>,
    quarantine_tx: QuarantineSender,
    /// Changes are serialized: one at a time, each a complete swap.
    entries: Mutex<BTreeMap<(Signal, String), Entry>>,
    /// Filter order per pipeline (names in chain order).
    order: Mutex<BTreeMap<Signal, Vec<String>>>,
    /// The keys modules must be signed by (none: nothing is required).
    trust: Arc<Trust>,
    /// Who signed each module verified in this process, by sha256.
    signers: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Modules uploaded in this process, oldest first (see [`KEEP_UNREFERENCED_MODULES`]).
    uploads: std::sync::Mutex<Vec<String>>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").finish_non_exhaustive()
    }
}

/// Parses `traces`, `metrics` or `logs`.
pub fn parse_signal(s: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|x| x.as_str() == s)
}

impl Manager {
    /// A manager over `pipelines`. `quarantine_tx` is the sender whose receiver
    /// [`Manager::watch_quarantines`] drains; the configuration's filters were loaded with it too.
    pub fn new(
        runtime: Arc<Runtime>,
        pipelines: Arc<Pipelines>,
        metrics: Arc<Metrics>,
        state_dir: Option<PathBuf>,
        quarantine_tx: QuarantineSender,
    ) -> Arc<Self> {
        Self::with_trust(
            runtime,
            pipelines,
            metrics,
            state_dir,
            quarantine_tx,
            Arc::default(),
        )
    }

    /// [`Manager::new`], requiring modules signed by a key of `trust` (when it has any).
    pub fn with_trust(
        runtime: Arc<Runtime>,
        pipelines: Arc<Pipelines>,
        metrics: Arc<Metrics>,
        state_dir: Option<PathBuf>,
        quarantine_tx: QuarantineSender,
        trust: Arc<Trust>,
    ) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            pipelines,
            metrics,
            state_dir,
            quarantine_tx,
            entries: Mutex::new(BTreeMap::new()),
            order: Mutex::new(BTreeMap::new()),
            trust,
            signers: Default::default(),
            uploads: Default::default(),
        })
    }

    /// Records who signed a module verified elsewhere (the configuration file's, at startup).
    pub fn record_signer(&self, sha256: &str, signer: String) {
        self.lock_signers().insert(sha256.to_string(), signer);
    }

    fn lock_signers(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // Inserts and lookups are single calls: a panic cannot leave the map half-changed.
        self.signers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn signer_of(&self, sha256: &str) -> Option<String> {
        self.lock_signers().get(sha256).cloned()
    }

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

    /// Registers the configuration file's filters (already in the chains) as version 1.
    pub async fn adopt_configured(&self) {
        let mut entries = self.entries.lock().await;
        let mut order = self.order.lock().await;
        for signal in Signal::ALL {
            let Some(p) = self.pipelines.get(signal) else {
                continue;
            };
            let chain = p.chain();
            let names = order.entry(signal).or_default();
            for f in chain.filters() {
                names.push(f.name().to_string());
                let request = FilterRequest {
                    module: f.module.sha256.clone(),
                    config: Some(serde_json::Value::String(f.spec.config.clone())),
                    on_error: f.spec.on_error,
                    limits: f.spec.limits.clone(),
                };
                entries.insert(
                    (signal, f.name().to_string()),
                    Entry {
                        versions: vec![Version {
                            version: 1,
                            request,
                            filter: f.clone(),
                            from_api: false,
                            signed_by: self.signer_of(&f.module.sha256),
                        }],
                        next_version: 2,
                    },
                );
            }
        }
    }

    /// Checks an uploaded module's signature (a `weir filter sign` line) against the trust list,
    /// compiles and stores it; returns its sha256. With trusted keys configured, a module without a
    /// valid signature by one of them is refused before anything is compiled or stored.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        signature: Option<String>,
    ) -> Result<String, ManageError> {
        let signer = self.trust.verify(&bytes, signature.as_deref())?;
        let runtime = self.runtime.clone();
        let (module, bytes) = tokio::task::spawn_blocking(move || {
            let m = runtime.compile(&bytes);
            // The compiler threads' freed memory goes back to the OS, not into an idle arena.
            weir_receiver::memory::release_free_memory();
            (m, bytes)
        })
        .await
        .map_err(|e| ManageError::State(format!("compile task: {e}")))?;
        let module = module?;
        if let Some(dir) = &self.state_dir {
            let path = modules_dir(dir).join(format!("{}.wasm", module.sha256));
            if !path.exists() {
                write_atomic(&path, &bytes)?;
            }
            // Kept beside the module, so that it is checked again when a restart loads it.
            if let (Some(_), Some(line)) = (&signer, &signature) {
                write_atomic(&signature_path(&path), line.trim().as_bytes())?;
            }
        }
        if let Some(signer) = signer {
            self.record_signer(&module.sha256, signer);
        }
        {
            let mut uploads = self.lock_uploads();
            uploads.retain(|u| *u != module.sha256);
            uploads.push(module.sha256.clone());
        }
        self.collect_modules(&*self.entries.lock().await);
        Ok(module.sha256)
    }

    fn lock_uploads(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // Single calls on a Vec: a panic cannot leave it half-changed.
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the modules no kept version references, beyond the [`KEEP_UNREFERENCED_MODULES`]
    /// uploaded last: the compiled code in memory, the file in `state_dir/modules` and its signature.
    /// Runs after every change, under the lock of `entries`. (wasmtime's own disk cache of compiled
    /// code, `state_dir/cache`, is bounded by wasmtime's cache cleanup.)
    fn collect_modules(&self, entries: &BTreeMap<(Signal, String), Entry>) {
        let referenced: std::collections::HashSet<&str> = entries
            .values()
            .flat_map(|e| &e.versions)
            .map(|v| v.filter.module.sha256.as_str())
            .collect();
        // Newest first: uploaded in this process (latest first), then files a previous run left,
        // by modification time.
        let uploads = self.lock_uploads().clone();
        let mut unreferenced: std::collections::HashMap<String, std::time::SystemTime> =
            Default::default();
        for sha in self.runtime.cached_modules() {
            unreferenced.insert(sha, std::time::UNIX_EPOCH);
        }
        if let Some(dir) = &self.state_dir
            && let Ok(files) = std::fs::read_dir(modules_dir(dir))
        {
            for f in files.flatten() {
                let path = f.path();
                if path.extension().is_none_or(|x| x != "wasm") {
                    continue;
                }
                let Some(sha) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let mtime = f.metadata().and_then(|m| m.modified());
                unreferenced.insert(sha.to_string(), mtime.unwrap_or(std::time::UNIX_EPOCH));
            }
        }
        unreferenced.retain(|sha, _| !referenced.contains(sha.as_str()));
        let mut ranked: Vec<_> = unreferenced
            .into_iter()
            .map(|(sha, mtime)| {
                let uploaded = uploads.iter().position(|u| *u == sha).map_or(0, |i| i + 1);
                ((uploaded, mtime), sha)
            })
            .collect();
        ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut collected = 0;
        for (_, sha) in ranked.into_iter().skip(KEEP_UNREFERENCED_MODULES) {
            self.runtime.forget(&sha);
            if let Some(dir) = &self.state_dir {
                let path = modules_dir(dir).join(format!("{sha}.wasm"));
                for p in [signature_path(&path), path] {
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            tracing::warn!(file = %p.display(), error = %e, "cannot delete an unused module")
                        }
                    }
                }
            }
            self.lock_uploads().retain(|u| *u != sha);
            self.lock_signers().remove(&sha);
            tracing::info!(sha256 = %sha, "deleted an uploaded module no filter version uses");
            collected += 1;
        }
        self.metrics
            .filter_modules(self.runtime.cached_modules().len(), collected);
    }

    /// Who signed module `sha256`: verified in this process, or now from its stored signature. With
    /// trusted keys configured, a module that has none is refused.
    fn check_signed(
        &self,
        sha256: &str,
        bytes: Option<&[u8]>,
    ) -> Result<Option<String>, ManageError> {
        if !self.trust.is_required() {
            return Ok(None);
        }
        if let Some(s) = self.signer_of(sha256) {
            return Ok(Some(s));
        }
        let (Some(bytes), Some(dir)) = (bytes, &self.state_dir) else {
            return Err(SigningError::Unsigned.into());
        };
        let path = signature_path(&modules_dir(dir).join(format!("{sha256}.wasm")));
        let line = std::fs::read_to_string(path).ok();
        let signer = self.trust.verify(bytes, line.as_deref())?;
        if let Some(s) = &signer {
            self.record_signer(sha256, s.clone());
        }
        Ok(signer)
    }

    /// The compiled module `sha256` and who signed it.
    async fn module(
        &self,
        sha256: &str,
    ) -> Result<(weir_filter::Module, Option<String>), ManageError> {
        // The name becomes a file name under `state_dir/modules`: a path must never get that far.
        check_module_name(sha256)?;
        let signer = self.signer_of(sha256);
        if let Some(m) = self.runtime.cached(sha256)
            && (signer.is_some() || !self.trust.is_required())
        {
            return Ok((m, signer));
        }
        let Some(dir) = &self.state_dir else {
            // Compiled here but never verified (trusted keys are required): there is no stored
            // signature to check either.
            if self.runtime.cached(sha256).is_some() {
                return Err(SigningError::Unsigned.into());
            }
            return Err(ManageError::NotFound(format!(
                "module {sha256} is not uploaded (POST /v1/modules first)"
            )));
        };
        let path = modules_dir(dir).join(format!("{sha256}.wasm"));
        let bytes = std::fs::read(&path).map_err(|_| {
            ManageError::NotFound(format!(
                "module {sha256} is not uploaded (POST /v1/modules first)"
            ))
        })?;
        let signer = self.check_signed(sha256, Some(&bytes))?;
        let runtime = self.runtime.clone();
        let m = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| ManageError::State(format!("compile task: {e}")))??;
        Ok((m, signer))
    }

    async fn load(
        &self,
        signal: Signal,
        name: &str,
        request: &FilterRequest,
    ) -> Result<(Arc<LoadedFilter>, Option<String>), ManageError> {
        request.limits.validate().map_err(FilterError::Limits)?;
        let (module, signer) = self.module(&request.module).await?;
        let spec = FilterSpec {
            name: name.to_string(),
            config: request.config_text(),
            on_error: request.on_error,
            limits: request.limits.clone(),
        };
        let runtime = self.runtime.clone();
        let metrics = self.metrics.clone();
        let tx = self.quarantine_tx.clone();
        let f = tokio::task::spawn_blocking(move || {
            LoadedFilter::load(runtime, spec, module, signal, metrics, Some(tx))
        })
        .await
        .map_err(|e| ManageError::State(format!("load task: {e}")))??;
        Ok((f, signer))
    }

    /// Validates and activates a new version of filter `name` in `signal`'s pipeline (appended to the
    /// chain when new, in place otherwise). Nothing changes when validation fails.
    pub async fn put(
        &self,
        signal: Signal,
        name: &str,
        request: FilterRequest,
    ) -> Result<FilterInfo, ManageError> {
        if name.is_empty() || name.len() > 128 || name.contains('/') {
            return Err(ManageError::Conflict(
                "a filter name is 1 to 128 characters, no `/`".into(),
            ));
        }
        self.pipeline(signal)?;
        let (filter, signer) = self.load(signal, name, &request).await?;
        let mut entries = self.entries.lock().await;
        self.record(&mut entries, signal, name, |e| {
            e.push(request, filter, signer)
        })
        .await?;
        self.append_to_order(signal, name).await;
        self.swap(signal, &entries).await;
        self.metrics.filter_swapped(signal, name);
        self.collect_modules(&entries);
        let info = info(signal, name, entries.get(&(signal, name.to_string())));
        info.ok_or_else(|| ManageError::NotFound(name.to_string()))
    }

    /// Re-activates the previous version of a filter.
    pub async fn rollback(&self, signal: Signal, name: &str) -> Result<FilterInfo, ManageError> {
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
        info(signal, name, entries.get(&(signal, name.to_string())))
            .ok_or_else(|| ManageError::NotFound(name.to_string()))
    }

    /// Removes a filter from its pipeline.
    pub async fn remove(&self, signal: Signal, name: &str) -> Result<(), ManageError> {
        self.clear(signal, name).await?;
        self.collect_modules(&*self.entries.lock().await);
        Ok(())
    }

    /// [`Manager::remove`] without collecting modules (a restore does that once every recorded
    /// version is loaded).
    async fn clear(&self, signal: Signal, name: &str) -> Result<(), ManageError> {
        let mut entries = self.entries.lock().await;
        entries
            .get(&(signal, name.to_string()))
            .filter(|e| !e.versions.is_empty())
            .ok_or_else(|| ManageError::NotFound(format!("no filter {name} in {signal}")))?;
        self.record(&mut entries, signal, name, |e| e.versions.clear())
            .await?;
        self.swap(signal, &entries).await;
        Ok(())
    }

    /// Every active filter.
    pub async fn list(&self) -> Vec<FilterInfo> {
        let entries = self.entries.lock().await;
        let order = self.order.lock().await;
        let mut out = Vec::new();
        for (signal, names) in order.iter() {
            for name in names {
                if let Some(i) = info(*signal, name, entries.get(&(*signal, name.clone()))) {
                    out.push(i);
                }
            }
        }
        out
    }

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

    /// Puts a new filter name at the end of its pipeline's chain order (existing names keep their place).
    async fn append_to_order(&self, signal: Signal, name: &str) {
        let mut order = self.order.lock().await;
        let names = order.entry(signal).or_default();
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }

    fn pipeline(&self, signal: Signal) -> Result<&crate::pipeline::Pipeline, ManageError> {
        self.pipelines
            .get(signal)
            .ok_or_else(|| ManageError::NotFound(format!("no {signal} pipeline is configured")))
    }

    /// Builds the chain of `signal` from the active versions, in order, and swaps it in.
    async fn swap(&self, signal: Signal, entries: &BTreeMap<(Signal, String), Entry>) {
        let Ok(pipeline) = self.pipeline(signal) else {
            return;
        };
        let order = self.order.lock().await;
        let filters = order
            .get(&signal)
            .into_iter()
            .flatten()
            .filter_map(|name| entries.get(&(signal, name.clone()))?.versions.last())
            .map(|v| v.filter.clone())
            .collect();
        pipeline.swap_chain(Chain::new(filters));
    }

    /// Applies `change` to the entry of filter `name` and records the result in the state directory,
    /// before anything is swapped in: when the record cannot be written, the entry is put back as it
    /// was and the error returned, so that what runs is always what a restart would run.
    async fn record(
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

    async fn persist(
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

/// The version a rollback made active again starts afresh: a quarantine it earned before is cleared.
/// Returns its module.
fn reactivate(entry: &Entry) -> String {
    entry.versions.last().map_or_else(String::new, |v| {
        v.filter.clear_quarantine();
        v.filter.module.sha256.clone()
    })
}

fn info(signal: Signal, name: &str, entry: Option<&Entry>) -> Option<FilterInfo> {
    let entry = entry?;
    let v = entry.versions.last()?;
    let s = &v.filter.stats;
    use std::sync::atomic::Ordering::Relaxed;
    Some(FilterInfo {
        pipeline: signal.as_str().to_string(),
        name: name.to_string(),
        version: v.version,
        sha256: v.filter.module.sha256.clone(),
        state: if v.filter.is_quarantined() {
            "quarantined"
        } else {
            "active"
        }
        .to_string(),
        retry_in_ms: v.filter.retry_in().map(|d| d.as_millis() as u64),
        on_error: v.request.on_error,
        previous_versions: entry.versions.len() - 1,
        source: if v.from_api { "api" } else { "config" }.to_string(),
        stats: FilterStatsInfo {
            calls: s.calls.load(Relaxed),
            errors: s.errors.load(Relaxed),
            items_in: s.items_in.load(Relaxed),
            items_dropped: s.items_dropped.load(Relaxed),
            items_modified: s.items_modified.load(Relaxed),
            rejected: s.rejected.load(Relaxed),
            busy: s.busy.load(Relaxed),
            instances: v.filter.instances(),
            interface: v.filter.interface.to_string(),
        },
        signed_by: v.signed_by.clone(),
    })
}

/// The longest module name accepted.
const MAX_MODULE_NAME: usize = 128;

/// A module name from a request (the sha256 an upload returned) names a file in
/// `state_dir/modules`: 1 to [`MAX_MODULE_NAME`] of `A-Z a-z 0-9 _ . -`, not starting with a dot (so
/// neither `.` nor `..`). Anything else is refused (400) before it is joined into a path.
fn check_module_name(name: &str) -> Result<(), ManageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_MODULE_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ManageError::BadRequest(format!(
            "module {name:?} is not a module name (1 to {MAX_MODULE_NAME} of A-Z a-z 0-9 _ . -, \
             not starting with a dot; the sha256 an upload returned)"
        )))
    }
}

fn modules_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("modules")
}

/// Writes via a temporary file and a rename, so that a crash never leaves a torn file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ManageError> {
    weir_core::fs::write_durably(path, bytes, 0o644)
        .map_err(|e| ManageError::State(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_filter::Chain;
    use weir_pipeline::Pipeline;

    /// A manager with a traces pipeline and no exporters, and the sha256 of an uploaded module.
    async fn manager(state_dir: Option<PathBuf>) -> (Arc<Manager>, String) {
        let metrics = Arc::new(Metrics::new());
        let runtime = Arc::new(Runtime::new(None).unwrap());
        let mut pipelines = Pipelines::default();
        pipelines.insert(Pipeline::new(
            Signal::Traces,
            Chain::new(Vec::new()),
            &[],
            Arc::default(),
            metrics.clone(),
        ));
        let (tx, _rx) = mpsc::unbounded_channel();
        let m = Manager::new(runtime, Arc::new(pipelines), metrics, state_dir, tx);
        let bytes = include_bytes!("../../../tests/data/filters-v0.2.0/set_attribute.wasm");
        let sha = m.upload(bytes.to_vec(), None).await.unwrap();
        (m, sha)
    }

    fn zone(sha: &str, value: &str) -> FilterRequest {
        FilterRequest {
            module: sha.to_string(),
            config: Some(serde_json::json!({"key": "edge.zone", "value": value})),
            on_error: OnError::FailOpen,
            limits: FilterLimits::default(),
        }
    }

    /// The notice a failing filter sends, for the active version of `zone`.
    async fn notice_for_active(m: &Manager) -> Quarantined {
        let entries = m.entries.lock().await;
        let v = entries[&(Signal::Traces, "zone".to_string())]
            .versions
            .last()
            .unwrap();
        Quarantined {
            signal: Signal::Traces,
            name: "zone".into(),
            sha256: v.filter.module.sha256.clone(),
            id: v.filter.id(),
        }
    }

    async fn active_version(m: &Manager) -> u64 {
        m.list().await[0].version
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_push_made_after_a_quarantine_decision_is_never_rolled_back_by_it() {
        let (m, sha) = manager(None).await;
        m.put(Signal::Traces, "zone", zone(&sha, "v1"))
            .await
            .unwrap();
        m.put(Signal::Traces, "zone", zone(&sha, "v2"))
            .await
            .unwrap();
        // Version 2 fails and is quarantined; before the manager acts on it, an operator pushes a
        // fixed configuration of the same module.
        let stale = notice_for_active(&m).await;
        m.put(Signal::Traces, "zone", zone(&sha, "v3"))
            .await
            .unwrap();
        m.on_quarantined(&stale).await;
        assert_eq!(active_version(&m).await, 3, "the operator's push stays");
        // A notice about the version that is active does roll it back.
        let current = notice_for_active(&m).await;
        m.on_quarantined(&current).await;
        assert_eq!(active_version(&m).await, 2);
    }

    /// The config value of the filter the traces pipeline runs as `zone`, and its listed version.
    async fn live_zone(m: &Manager) -> (Option<String>, Option<u64>) {
        let chain = m.pipelines.get(Signal::Traces).unwrap().chain();
        let live = chain
            .filters()
            .iter()
            .find(|f| f.name() == "zone")
            .map(|f| f.spec.config.clone());
        (live, m.list().await.first().map(|i| i.version))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_change_that_cannot_be_recorded_changes_nothing() {
        let state = tempfile::tempdir().unwrap();
        let (m, sha) = manager(Some(state.path().to_path_buf())).await;
        m.put(Signal::Traces, "zone", zone(&sha, "v1"))
            .await
            .unwrap();
        m.put(Signal::Traces, "zone", zone(&sha, "v2"))
            .await
            .unwrap();
        let v2 = live_zone(&m).await;
        assert_eq!(v2.1, Some(2));
        // From now on filters.json cannot be replaced: a directory stands in its place (root ignores
        // permission bits, not this).
        let recorded = state.path().join("filters.json");
        std::fs::remove_file(&recorded).unwrap();
        std::fs::create_dir_all(recorded.join("in-the-way")).unwrap();

        let err = m
            .put(Signal::Traces, "zone", zone(&sha, "v3"))
            .await
            .unwrap_err();
        assert!(matches!(err, ManageError::State(_)), "{err}");
        assert_eq!(live_zone(&m).await, v2, "a push not recorded is not live");

        let err = m.rollback(Signal::Traces, "zone").await.unwrap_err();
        assert!(matches!(err, ManageError::State(_)), "{err}");
        assert_eq!(
            live_zone(&m).await,
            v2,
            "a rollback not recorded is not live"
        );

        let err = m.remove(Signal::Traces, "zone").await.unwrap_err();
        assert!(matches!(err, ManageError::State(_)), "{err}");
        assert_eq!(
            live_zone(&m).await,
            v2,
            "a removal not recorded is not live"
        );

        let err = m
            .put(Signal::Traces, "other", zone(&sha, "new"))
            .await
            .unwrap_err();
        assert!(matches!(err, ManageError::State(_)), "{err}");
        let chain = m.pipelines.get(Signal::Traces).unwrap().chain();
        assert_eq!(
            chain.filters().len(),
            1,
            "a new filter not recorded is not live"
        );
        assert_eq!(m.list().await.len(), 1);

        // Once the state directory is writable again, changes go through, numbered on from 2.
        std::fs::remove_dir_all(&recorded).unwrap();
        let info = m
            .put(Signal::Traces, "zone", zone(&sha, "v3"))
            .await
            .unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.previous_versions, 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_module_name_that_is_a_path_is_refused_before_it_reaches_the_disk() {
        let state = tempfile::tempdir().unwrap();
        let (m, _) = manager(Some(state.path().to_path_buf())).await;
        // Valid modules planted where `modules/../x.wasm` and `modules/a/b.wasm` lead.
        let bytes = include_bytes!("../../../tests/data/filters-v0.2.0/set_attribute.wasm");
        std::fs::write(state.path().join("x.wasm"), bytes).unwrap();
        std::fs::create_dir_all(modules_dir(state.path()).join("a")).unwrap();
        std::fs::write(modules_dir(state.path()).join("a/b.wasm"), bytes).unwrap();
        for name in ["../x", "a/b", "..", ".", ".hidden", "", "a\\b"] {
            let err = m
                .put(Signal::Traces, "zone", zone(name, "v1"))
                .await
                .expect_err(name);
            assert!(matches!(err, ManageError::BadRequest(_)), "{name}: {err}");
        }
        assert!(m.list().await.is_empty(), "nothing was pushed");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unreferenced_modules_beyond_the_newest_few_are_deleted_from_memory_and_disk() {
        let state = tempfile::tempdir().unwrap();
        let (m, used) = manager(Some(state.path().to_path_buf())).await;
        m.put(Signal::Traces, "zone", zone(&used, "v1"))
            .await
            .unwrap();
        let base = include_bytes!("../../../tests/data/filters-v0.2.0/set_attribute.wasm");
        // Distinct modules: the same component with a custom section naming it.
        let mut shas = Vec::new();
        for i in 0..KEEP_UNREFERENCED_MODULES + 2 {
            let mut bytes = base.to_vec();
            let name = format!("copy-{i}");
            bytes.extend([0, name.len() as u8 + 1, name.len() as u8]);
            bytes.extend(name.as_bytes());
            shas.push(m.upload(bytes, None).await.unwrap());
        }
        let files = |sha: &str| {
            modules_dir(state.path())
                .join(format!("{sha}.wasm"))
                .exists()
        };
        // The two uploaded first went; the newest ones stay, and so does the module in use.
        for (i, sha) in shas.iter().enumerate() {
            let kept = i >= 2;
            assert_eq!(files(sha), kept, "module {i} on disk");
            assert_eq!(
                m.runtime.cached(sha).is_some(),
                kept,
                "module {i} in memory"
            );
        }
        assert!(files(&used) && m.runtime.cached(&used).is_some());
        let text = m.metrics.render();
        assert!(
            text.contains("weir_filter_modules_collected_total 2"),
            "{text}"
        );
        // A collected module is gone: pushing it asks for an upload.
        let err = m
            .put(Signal::Traces, "zone", zone(&shas[0], "x"))
            .await
            .unwrap_err();
        assert!(matches!(err, ManageError::NotFound(_)), "{err}");
        // When a rollback leaves a version unreferenced, it is a candidate like any upload.
        m.put(Signal::Traces, "zone", zone(&shas[5], "v2"))
            .await
            .unwrap();
        m.rollback(Signal::Traces, "zone").await.unwrap();
        assert!(files(&shas[5]), "the newest upload is kept");
    }
}
