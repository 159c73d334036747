//! Values built from files and rebuilt when the files change: TLS configurations, token lists.
//!
//! A [`Reloading`] holds the current value in an `ArcSwap`: a handshake or a request takes the current
//! one without a lock, and a rebuild swaps in the next without touching connections already made with
//! the previous one. The files' stamps (modification time, size, inode: a Kubernetes secret update swaps
//! a symlink, which changes the inode) decide whether a rebuild is due; a rebuild that fails (a
//! half-written file, a key that does not match its certificate) keeps the previous value, is logged and
//! counted, and is tried again when the files change again. A [`Reloader`] checks every registered value
//! once a second and on demand (`POST /v1/tls/reload`).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use weir_core::telemetry::Metrics;

/// How often a [`Reloader`] looks at the files.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

type Build<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

/// A value built from `files`, rebuilt when they change.
pub struct Reloading<T> {
    name: String,
    files: Vec<PathBuf>,
    /// Held for a whole rebuild (stamps, build, store), so that two reloads at once (the watcher and
    /// `POST /v1/tls/reload`) cannot store the older files' value last.
    stamps: Mutex<Vec<Option<Stamp>>>,
    current: ArcSwap<T>,
    build: Build<T>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("name", &self.name)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Builds the first value (an error here is a start-up error) and remembers how to build the next.
    pub fn new(
        name: impl Into<String>,
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Arc<Self>, String> {
        let stamps = files.iter().map(stamp).collect();
        let first = build()?;
        Ok(Arc::new(Self {
            name: name.into(),
            files,
            stamps: Mutex::new(stamps),
            current: ArcSwap::from_pointee(first),
            build: Box::new(build),
        }))
    }

    /// The current value.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }
}

/// Something a [`Reloader`] keeps fresh.
pub trait Reload: Send + Sync {
    /// Its name in logs and metrics (`otlp-grpc`, `exporter backend`, ...).
    fn name(&self) -> &str;
    /// Rebuilds if the files changed (or always, with `force`): `Ok(true)` when a new value is in
    /// place, `Ok(false)` when nothing changed; on `Err` the previous value stays.
    fn reload(&self, force: bool) -> Result<bool, String>;
}

impl<T: Send + Sync + 'static> Reload for Reloading<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn reload(&self, force: bool) -> Result<bool, String> {
        let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        let now: Vec<_> = self.files.iter().map(stamp).collect();
        if !force && *stamps == now {
            return Ok(false);
        }
        // Remembered even if the build fails: it is tried again when the files change again, not
        // every second.
        *stamps = now;
        let next = (self.build)()?;
        self.current.store(Arc::new(next));
        Ok(true)
    }
}

/// What one check did to one value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// The value's name.
    pub name: String,
    /// Whether a new value is in place.
    pub reloaded: bool,
    /// Why the rebuild failed (the previous value stays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every reloading value of one weir.
#[derive(Default)]
pub struct Reloader {
    items: Mutex<Vec<Arc<dyn Reload>>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// Keeps `item` fresh from now on.
    pub fn add(&self, item: Arc<dyn Reload>) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
    }

    /// Whether anything is registered.
    pub fn is_empty(&self) -> bool {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Checks every value (rebuilding all with `force`), logging and counting what changed.
    pub fn check(&self, force: bool, metrics: &Metrics) -> Vec<ReloadReport> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut reports = Vec::new();
        for item in items {
            match item.reload(force) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(name = item.name(), "reloaded certificates or tokens");
                    metrics.tls_reloaded(item.name(), true);
                    reports.push(ReloadReport {
                        name: item.name().to_string(),
                        reloaded: true,
                        error: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(name = item.name(), error = %e, "reload failed; the previous certificates or tokens stay in use");
                    metrics.tls_reloaded(item.name(), false);
                    reports.push(ReloadReport {
                        name: item.name().to_string(),
                        reloaded: false,
                        error: Some(e),
                    });
                }
            }
        }
        reports
    }

    /// Checks once every [`CHECK_INTERVAL`] until the returned task is aborted.
    pub fn watch(self: Arc<Self>, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                // Reading a few small files: off the async workers.
                let (this, m) = (self.clone(), metrics.clone());
                let _ = tokio::task::spawn_blocking(move || this.check(false, &m)).await;
            }
        })
    }
}
