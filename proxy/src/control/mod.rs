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
//!
//! This file holds the [`Manager`] and the changes that build chains (push, removal, listing); the
//! rest is split by concern: `versions.rs` (what a version is, the history kept, rollbacks),
//! `store.rs` (uploaded modules: signatures, compiling, collecting the unused), `persist.rs`
//! (`filters.json`: recording and restoring) and `load.rs` (loading one filter, the path startup takes
//! too). The admin API converts these types to and from its JSON (`crate::admin::api`); nothing here
//! knows HTTP.

pub(crate) mod load;
mod persist;
mod store;
#[cfg(test)]
mod tests;
mod versions;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

use weir_core::Signal;
use weir_core::telemetry::Metrics;
use weir_filter::{Chain, FilterError, FilterSpec, LoadedFilter, QuarantineSender, Runtime};
use weir_pipeline::Pipelines;

use crate::signing::{SigningError, Trust};
use load::LoadError;
use versions::{Entry, Version};

pub use store::KEEP_UNREFERENCED_MODULES;
pub use versions::{FilterCounts, FilterStatus, VersionSpec};

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
                let request = VersionSpec {
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

    /// Loads a version of filter `name` as `request` describes it (see [`load::load_filter`]).
    async fn load(
        &self,
        signal: Signal,
        name: &str,
        request: &VersionSpec,
    ) -> Result<(Arc<LoadedFilter>, Option<String>), ManageError> {
        request.limits.validate().map_err(FilterError::Limits)?;
        let source = self.module_source(&request.module)?;
        let spec = FilterSpec {
            name: name.to_string(),
            config: request.config_text(),
            on_error: request.on_error,
            limits: request.limits.clone(),
        };
        let runtime = self.runtime.clone();
        let metrics = self.metrics.clone();
        let trust = self.trust.clone();
        let tx = self.quarantine_tx.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            load::load_filter(&runtime, &trust, source, spec, signal, &metrics, Some(tx))
        })
        .await
        .map_err(|e| ManageError::State(format!("load task: {e}")))?;
        let (f, signer) = loaded.map_err(|e| match e {
            LoadError::Read(_) => store::not_uploaded(&request.module),
            LoadError::Signature(e) => e.into(),
            LoadError::Filter(e) => e.into(),
        })?;
        if let Some(signer) = &signer {
            self.record_signer(&request.module, signer.clone());
        }
        Ok((f, signer))
    }

    /// Validates and activates a new version of filter `name` in `signal`'s pipeline (appended to the
    /// chain when new, in place otherwise). Nothing changes when validation fails.
    pub async fn put(
        &self,
        signal: Signal,
        name: &str,
        request: VersionSpec,
    ) -> Result<FilterStatus, ManageError> {
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
        let status = versions::status(signal, name, entries.get(&(signal, name.to_string())));
        status.ok_or_else(|| ManageError::NotFound(name.to_string()))
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
    pub async fn list(&self) -> Vec<FilterStatus> {
        let entries = self.entries.lock().await;
        let order = self.order.lock().await;
        let mut out = Vec::new();
        for (signal, names) in order.iter() {
            for name in names {
                if let Some(i) =
                    versions::status(*signal, name, entries.get(&(*signal, name.clone())))
                {
                    out.push(i);
                }
            }
        }
        out
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
}
