//! The wasmtime engine weir runs filters in: pooling allocator, copy-on-write memory images, epoch
//! interruption driven by a ticker thread, and compilation (componentizing core modules first) cached by
//! sha256 in memory and on disk.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::FilterError;
use super::bindings;
use super::componentize::{componentize, is_core_module};
use super::host::StoreState;
use weir_kernels::PatternCache;

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A compiled filter module, content-addressed.
#[derive(Clone)]
pub struct Module {
    /// Hex sha256 of the bytes as uploaded.
    pub sha256: String,
    /// The compiled component.
    pub component: Component,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The engine, the linker with weir's host functions, and the module cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    modules: Mutex<HashMap<String, Module>>,
    ticker_stop: Arc<AtomicBool>,
    exporters: Arc<[String]>,
    patterns: Arc<PatternCache>,
    sizing: PoolSizing,
    cache_dir: Option<PathBuf>,
    helper: Option<PathBuf>,
}

/// How many instances the engine has slots for, and how large each instance's memory may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizing {
    /// Component instance slots, for every filter together.
    pub instances: u32,
    /// The largest linear memory of one instance, in bytes: each slot reserves this much address
    /// space (not resident memory).
    pub memory: usize,
}

impl Default for PoolSizing {
    /// Room for tests and `weir filter test`: 64 instances of up to 64 MiB.
    fn default() -> Self {
        Self {
            instances: 64,
            memory: 64 << 20,
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Runtime {
    /// Tells filters (WIT `host.exporters`) which exporter names are valid route labels.
    pub fn with_exporters(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.exporters = names.into_iter().collect();
        self
    }

    /// Compiles in a helper process: `program compile-helper --cache-dir DIR --instances N --memory M`
    /// (the `weir` binary) gets the module on stdin and compiles it into the disk cache with an engine
    /// configured like this one, and this process then loads the compiled code from the cache. The
    /// compiler's code and memory are then touched only in the helper, which exits: a weir that
    /// compiled three filters at start stays as small as one that found them in the cache. Only with
    /// a cache directory; if the helper fails, weir compiles in-process (and says why).
    pub fn with_compile_helper(mut self, program: PathBuf) -> Self {
        self.helper = Some(program);
        self
    }

    /// Compiles `bytes` into the disk cache in the helper process (see [`Runtime::with_compile_helper`]).
    /// False when there is no helper or cache, or the helper failed (logged).
    fn compile_in_helper(&self, sha256: &str, bytes: &[u8]) -> bool {
        let (Some(program), Some(dir)) = (&self.helper, &self.cache_dir) else {
            return false;
        };
        // A marker per module and engine configuration says the cache already holds it (a restart):
        // then there is nothing for a helper to do.
        let marker = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.engine.precompile_compatibility_hash().hash(&mut h);
            dir.join("helper-compiled")
                .join(format!("{sha256}-{:016x}", h.finish()))
        };
        if marker.exists() {
            return true;
        }
        let started = std::time::Instant::now();
        let run = || -> std::io::Result<std::process::Output> {
            let mut child = Command::new(program)
                .arg("compile-helper")
                .arg("--cache-dir")
                .arg(dir)
                .arg("--instances")
                .arg(self.sizing.instances.to_string())
                .arg("--memory")
                .arg(self.sizing.memory.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            // Dropping stdin closes it, so the helper sees the end of the module.
            let written = child.stdin.take().map(|mut i| i.write_all(bytes));
            let out = child.wait_with_output()?;
            written.transpose()?;
            Ok(out)
        };
        match run() {
            Ok(out) if out.status.success() => {
                // Best effort: without the marker the next start only runs the helper again.
                let _ = marker
                    .parent()
                    .map(std::fs::create_dir_all)
                    .and_then(|_| std::fs::write(&marker, b"").ok());
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "filter compiled in a helper process"
                );
                true
            }
            Ok(out) => {
                // An invalid module fails there too: compiling here gives the error its full context.
                tracing::debug!(
                    status = %out.status,
                    stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                    "the compile helper failed; compiling in-process"
                );
                false
            }
            Err(e) => {
                tracing::warn!(
                    program = %program.display(), error = %e,
                    "cannot run the compile helper; compiling in-process"
                );
                false
            }
        }
    }

    /// The exporter names filters may route to (empty when unknown).
    pub fn exporters(&self) -> Arc<[String]> {
        self.exporters.clone()
    }

    /// Builds the engine with the default [`PoolSizing`]. With `cache_dir`, compiled code is also cached
    /// on disk, so a restart does not recompile.
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, FilterError> {
        Self::with_sizing(cache_dir, PoolSizing::default())
    }

    /// Builds the engine with instance slots sized by `sizing` (see `Config::filter_pool`).
    pub fn with_sizing(cache_dir: Option<&Path>, sizing: PoolSizing) -> Result<Self, FilterError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.memory_init_cow(true);
        config.wasm_component_model(true);
        // `WEIR_WASM_PERFMAP=1` writes /tmp/perf-<pid>.map, so that `perf report` names the filters'
        // own functions instead of showing JIT addresses (for profiling a filter; off by default).
        if std::env::var_os("WEIR_WASM_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::default();
        let n = sizing.instances.max(1);
        // A component built from a Rust or C guest holds one to a few core instances, memories and
        // tables; one from an interpreter (componentize-py) a few more.
        pool.total_component_instances(n);
        pool.total_core_instances(n.saturating_mul(8));
        pool.total_memories(n.saturating_mul(2));
        pool.total_tables(n.saturating_mul(8));
        pool.max_memory_size(sizing.memory.min(weir_core::config::MAX_FILTER_MEMORY));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let mut cache_dir_path = None;
        if let Some(dir) = cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                FilterError::Setup(format!("cache directory {}: {e}", dir.display()))
            })?;
            let dir = std::fs::canonicalize(dir).map_err(|e| {
                FilterError::Setup(format!("cache directory {}: {e}", dir.display()))
            })?;
            cache_dir_path = Some(dir.clone());
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache = wasmtime::Cache::new(cache)
                .map_err(|e| FilterError::Setup(format!("compilation cache: {e}")))?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config)
            .map_err(|e| FilterError::Setup(format!("wasmtime engine: {e}")))?;
        let mut linker = Linker::new(&engine);
        // The WASI subset components from other languages import (see `super::wasi`).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| FilterError::Setup(format!("WASI linker: {e}")))?;
        // Every released interface version: a component imports only the one it was built against.
        bindings::v0_1::Filter::add_to_linker::<StoreState, wasmtime::component::HasSelf<StoreState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| FilterError::Setup(format!("linker (0.1.0): {e}")))?;
        bindings::v0_2::Filter::add_to_linker::<StoreState, wasmtime::component::HasSelf<StoreState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| FilterError::Setup(format!("linker (0.2.0): {e}")))?;
        // 0.3's two worlds import the same interfaces: linking the larger one links both.
        bindings::v0_3::ProfilesFilter::add_to_linker::<
            StoreState,
            wasmtime::component::HasSelf<StoreState>,
        >(&mut linker, |s| s)
        .map_err(|e| FilterError::Setup(format!("linker (0.3.0): {e}")))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| FilterError::Setup(format!("epoch thread: {e}")))?;
        Ok(Self {
            engine,
            linker,
            modules: Mutex::new(HashMap::new()),
            ticker_stop,
            exporters: Arc::from(Vec::new()),
            patterns: Arc::new(PatternCache::default()),
            sizing,
            cache_dir: cache_dir_path,
            helper: None,
        })
    }

    /// The engine's instance slots and largest instance memory.
    pub fn sizing(&self) -> PoolSizing {
        self.sizing
    }

    /// Compiled pattern sets, shared by every filter of this runtime.
    pub fn patterns(&self) -> Arc<PatternCache> {
        self.patterns.clone()
    }

    /// The linker.
    pub(super) fn linker(&self) -> &Linker<StoreState> {
        &self.linker
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `bytes` (a component, or a core module built with wit-bindgen, which is componentized
    /// first), or returns the module already compiled from the same bytes. Slow: call it off the request
    /// path.
    pub fn compile(&self, bytes: &[u8]) -> Result<Module, FilterError> {
        let sha256 = sha256_hex(bytes);
        if let Some(m) = self.lock_modules().get(&sha256) {
            return Ok(m.clone());
        }
        self.compile_in_helper(&sha256, bytes);
        let component_bytes;
        let bytes = if is_core_module(bytes) {
            component_bytes = componentize(bytes)?;
            &component_bytes[..]
        } else {
            bytes
        };
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| FilterError::Compile(format!("{e:#}")))?;
        let module = Module {
            sha256: sha256.clone(),
            component,
        };
        self.lock_modules().insert(sha256, module.clone());
        Ok(module)
    }

    /// How many modules this process has compiled (or loaded from the disk cache).
    pub fn cached_count(&self) -> usize {
        self.lock_modules().len()
    }

    /// The module compiled from bytes with this sha256, if this process compiled it.
    pub fn cached(&self, sha256: &str) -> Option<Module> {
        self.lock_modules().get(sha256).cloned()
    }

    /// The sha256 of every module compiled in this process.
    pub fn cached_modules(&self) -> Vec<String> {
        self.lock_modules().keys().cloned().collect()
    }

    /// Drops the compiled module `sha256` (filters loaded from it keep their own reference).
    pub fn forget(&self, sha256: &str) -> bool {
        self.lock_modules().remove(sha256).is_some()
    }

    fn lock_modules(&self) -> std::sync::MutexGuard<'_, HashMap<String, Module>> {
        // A panic while holding this lock cannot leave the map inconsistent: inserts are single calls.
        self.modules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The helper process's side of [`Runtime::with_compile_helper`]: compiles `bytes` into `cache_dir` with
/// an engine sized like the parent's (the cache key covers the engine's configuration, so the sizing
/// must match).
pub fn compile_into_cache(
    cache_dir: &Path,
    sizing: PoolSizing,
    bytes: &[u8],
) -> Result<(), FilterError> {
    Runtime::with_sizing(Some(cache_dir), sizing)?
        .compile(bytes)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn garbage_is_refused_with_a_clear_error() {
        let rt = Runtime::new(None).unwrap();
        let err = rt.compile(b"definitely not wasm").unwrap_err();
        assert!(matches!(err, FilterError::Compile(_)), "{err}");
        // An empty core module makes an empty component: it compiles, but is no filter.
        let rt = std::sync::Arc::new(rt);
        let module = rt.compile(&wat_empty_module()).unwrap();
        let spec = super::super::FilterSpec {
            name: "empty".into(),
            config: String::new(),
            on_error: Default::default(),
            limits: Default::default(),
        };
        let metrics = std::sync::Arc::new(weir_core::telemetry::Metrics::new());
        let err = super::super::LoadedFilter::load(
            rt,
            spec,
            module,
            weir_core::Signal::Traces,
            metrics,
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("weir:filter@0.3, @0.2 or @0.1.0"),
            "{err}"
        );
    }

    /// The smallest valid core module: magic and version.
    fn wat_empty_module() -> Vec<u8> {
        b"\0asm\x01\0\0\0".to_vec()
    }
}
