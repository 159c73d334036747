//! Builds the running graph from a [`Config`] and runs it: bind every listener (logging each address),
//! build exporters and pipelines, serve until shutdown, then drain within `limits.shutdown_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Signal;
use crate::admin::{self, AdminState};
use crate::config::{Config, ConfigError, FilterConfig, parse_addr};
use crate::control::Manager;
use crate::exporter::{BuildError, Exporter, ExporterQueue};
use crate::filter::{
    Chain, FilterError, FilterSpec, LoadedFilter, PoolSizing, QuarantineSender, Runtime,
};
use crate::pipeline::{Exporters, Pipeline, Pipelines};
use crate::receiver::Ingest;
use crate::receiver::kind::{Bound, ReceiverError, StartContext};
use crate::receiver::listen::{self, Listener};
use crate::receiver::serving::{bind_quiet, server_tls};
use crate::signing::Trust;
use crate::telemetry::Metrics;
use weir_tls::Reloader;

/// Starting weir failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An exporter could not be built.
    #[error(transparent)]
    Exporter(#[from] BuildError),
    /// A filter could not be loaded.
    #[error("filter {name}: {source}")]
    Filter {
        /// The filter's name.
        name: String,
        /// Why.
        source: FilterError,
    },
    /// A durable queue could not be opened.
    #[error(transparent)]
    Queue(#[from] crate::exporter::durable::DurableError),
    /// The filter runtime could not start.
    #[error(transparent)]
    FilterRuntime(#[from] FilterError),
    /// The state directory could not be read.
    #[error("state directory: {0}")]
    State(String),
    /// A trusted key could not be read, or a configured filter's module is not signed by one.
    #[error("{}: {source}", match name { Some(n) => format!("filter {n}"), None => "module_signing".into() })]
    Signature {
        /// The filter, when a module failed the check (none: a key failed to load).
        name: Option<String>,
        /// Why.
        source: crate::signing::SigningError,
    },
    /// A receiver or the admin API could not listen: an address, a bind, TLS files or a token file.
    #[error(transparent)]
    Listener(#[from] ReceiverError),
}

/// A running weir.
#[derive(Debug)]
pub struct Running {
    /// Every receiver's listeners, as they bound (`otlp-grpc` on `127.0.0.1:4317`).
    pub listeners: Vec<Bound>,
    /// The admin address.
    pub admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    ingest: Arc<Ingest>,
    admin: Arc<AdminState>,
    receivers: JoinSet<()>,
    admin_task: tokio::task::JoinHandle<()>,
    reload_task: tokio::task::JoinHandle<()>,
    published_token: Option<std::path::PathBuf>,
    /// The compile cache of a weir without a state_dir: removed when weir exits.
    _private_cache: Option<tempfile::TempDir>,
    shutdown_timeout: std::time::Duration,
    drain_delay: std::time::Duration,
}

/// How a weir process starts, beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The `weir` binary, to compile filters in a helper process (`weir compile-helper`) that fills
    /// `state_dir`'s compile cache, so the compiler's code and memory never stay in this process. None
    /// (or no `state_dir`): filters compile in-process.
    pub compile_helper: Option<std::path::PathBuf>,
}

/// Builds and starts everything the configuration describes (defaults resolved: without exporters,
/// `debug`). Returns once every listener is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with(config, StartOptions::default()).await
}

/// [`start`], with [`StartOptions`].
pub async fn start_with(config: Config, options: StartOptions) -> Result<Running, StartError> {
    // What `weir validate` warns about, on the file as written (the quick start's pipelines are not).
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let config = config.resolved();
    config.validate()?;
    let receiver_kinds = crate::receiver::registry::parse_all(&config)?;
    crate::exporter::registry::check(&config)?;
    let metrics = Arc::new(Metrics::new());
    // Certificates, keys, CA bundles and token files, re-read when they change.
    let reloader = Arc::new(Reloader::default());

    let mut exporters = Exporters::new();
    for (name, c) in &config.exporters {
        let exporter = Exporter::build(name, c, config.base_dir.as_deref(), &reloader, &metrics)?;
        let queue = c.queue.clone();
        let dir = config
            .state_dir
            .as_ref()
            .map(|d| d.join("queues").join(name));
        exporters.insert(
            name.clone(),
            ExporterQueue::spawn(name, exporter, &queue, dir.as_deref(), metrics.clone())?,
        );
    }
    let exporters = Arc::new(exporters);
    let (quarantine_tx, quarantine_rx) = tokio::sync::mpsc::unbounded_channel();
    let (instances, memory) = config.filter_pool();
    // Without a state_dir, filters still compile in the helper process, into a private temporary
    // cache (mode 0700, removed when weir exits), so the compiler's code and memory never stay in
    // weir: the quick start is as small as a weir with a state_dir.
    let private_cache = match (&config.state_dir, &options.compile_helper) {
        (None, Some(_)) => Some(
            tempfile::Builder::new()
                .prefix("weir-compile-cache-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir()
                .map_err(|e| StartError::State(format!("a private compile cache: {e}")))?,
        ),
        _ => None,
    };
    if let Some(dir) = &private_cache {
        tracing::info!(dir = %dir.path().display(), "no state_dir: filters compile into a private cache, removed at exit");
    }
    let cache_dir = match (&config.state_dir, &private_cache) {
        (Some(d), _) => Some(d.join("cache")),
        (None, Some(t)) => Some(t.path().to_path_buf()),
        (None, None) => None,
    };
    let mut runtime = Runtime::with_sizing(cache_dir.as_deref(), PoolSizing { instances, memory })?
        .with_exporters(exporters.keys().cloned());
    if let Some(program) = options.compile_helper {
        runtime = runtime.with_compile_helper(program);
    }
    let runtime = Arc::new(runtime);
    let trust = Arc::new(load_trust(&config)?);
    let mut signers = Vec::new();
    let mut pipelines = Pipelines::default();
    // `resolved()` always sets pipelines.
    let p = config.pipelines.clone().unwrap_or_default();
    for (signal, pc) in p.by_signal() {
        let Some(pc) = pc else { continue };
        let mut filters = Vec::new();
        for fc in &pc.filters {
            // Loading compiles and runs `init`, which may make blocking WASI calls: off the runtime.
            let (rt, fc, m, q, t) = (
                runtime.clone(),
                fc.clone(),
                metrics.clone(),
                quarantine_tx.clone(),
                trust.clone(),
            );
            let (loaded, signer) =
                tokio::task::spawn_blocking(move || load_filter(&rt, &fc, signal, &m, Some(q), &t))
                    .await
                    .map_err(|e| StartError::State(format!("filter loading task: {e}")))??;
            if let Some(signer) = signer {
                signers.push((loaded.module.sha256.clone(), signer));
            }
            filters.push(loaded);
        }
        pipelines.insert(Pipeline::new(
            signal,
            Chain::new(filters),
            &pc.exporters,
            exporters.clone(),
            metrics.clone(),
        ));
        if signal.is_alpha() {
            tracing::info!(
                signal = %signal, version = weir_wire::profiles::PROTO_VERSION,
                "{signal} are alpha in OTLP: the format may change in a later release"
            );
        }
        tracing::info!(
            signal = %signal, exporters = ?pc.exporters,
            filters = ?pc.filters.iter().map(|f| &f.name).collect::<Vec<_>>(),
            "pipeline ready"
        );
    }
    let pipelines = Arc::new(pipelines);
    let manager = Manager::with_trust(
        runtime.clone(),
        pipelines.clone(),
        metrics.clone(),
        config.state_dir.clone(),
        quarantine_tx,
        trust,
    );
    for (sha256, signer) in signers {
        manager.record_signer(&sha256, signer);
    }
    manager.adopt_configured().await;
    let restored = manager
        .restore()
        .await
        .map_err(|e| StartError::State(e.to_string()))?;
    if restored > 0 {
        tracing::info!(
            filters = restored,
            "applied filter changes from the state directory"
        );
    }
    if runtime.cached_count() > 0 {
        // Compiling filters leaves the compiler threads' freed memory in the allocator's arenas
        // (tens of MiB for three filters): hand it back before serving.
        let _ = tokio::task::spawn_blocking(weir_receiver::memory::release_free_memory).await;
    }
    tokio::spawn(manager.clone().watch_quarantines(quarantine_rx));
    let ingest = Arc::new(Ingest::new(
        pipelines,
        config.limits.clone(),
        metrics.clone(),
    ));

    let (stop, stopped) = watch::channel(false);
    let mut receivers = JoinSet::new();
    let mut listeners = Vec::new();
    for (key, receiver) in &receiver_kinds {
        let ctx = StartContext {
            ingest: &ingest,
            metrics: &metrics,
            reloader: &reloader,
            connections: &config.limits.connections,
            stop: stopped.clone(),
            tasks: &mut receivers,
        };
        listeners.extend(receiver.start(key, ctx).await?);
    }

    let admin_metrics = metrics.clone();
    // Announced ("listening") once the token is published, so that a client that waits for the
    // announcement finds the token.
    let admin_listener = bind_quiet("admin", &config.admin.endpoint).await?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| ReceiverError::Bind {
            listener: "admin".into(),
            addr: parse_addr(&config.admin.endpoint).unwrap_or(([0, 0, 0, 0], 0).into()),
            source,
        })?;
    // Without a configured credential weir makes a token, and publishes it where the CLI looks.
    let configured = config.admin.token.is_some() || !config.admin.client_identities.is_empty();
    let (token, published_token) = if configured {
        // One a weir that died on this port left behind would mislead the CLI.
        let _ = std::fs::remove_file(admin::token::discovery_path(admin_addr.port()));
        (config.admin.token.clone(), None)
    } else {
        let state = |e: std::io::Error| StartError::State(format!("admin token: {e}"));
        let t = admin::token::load_or_create(config.state_dir.as_deref()).map_err(state)?;
        let path = admin::token::publish(admin_addr.port(), &t).map_err(state)?;
        tracing::info!(file = %path.display(), "admin API token made (the weir CLI reads it from this file)");
        (Some(t), Some(path))
    };
    let admin_state = Arc::new(AdminState {
        metrics,
        ready: Default::default(),
        manager,
        access: admin::Access {
            token,
            client_identities: config.admin.client_identities.clone(),
            trust_loopback: config.admin.trust_loopback,
            protect_reads: config.admin.protect_reads,
        },
        reloader: reloader.clone(),
    });
    tracing::info!(listener = "admin", addr = %admin_addr, tls = config.admin.tls.is_some(), "listening");
    let admin_app = admin::router(admin_state.clone());
    let limits = config.limits.connections.clone();
    let mut admin_listener = Listener::new(admin_listener, "admin", &limits, admin_metrics.clone());
    if let Some(tls) = server_tls(
        "admin",
        config.admin.tls.as_ref(),
        weir_tls::ALPN_HTTP,
        &reloader,
    )? {
        admin_listener = admin_listener.with_tls(tls);
    }
    let reload_task = reloader.clone().watch(admin_metrics);
    // The admin listener outlives the receivers' drain so that /metrics stays readable until the end.
    let admin_task = tokio::spawn(listen::serve_http(
        admin_listener,
        admin_app,
        limits,
        std::future::pending(),
    ));
    admin_state.ready.store(true, Ordering::SeqCst);

    Ok(Running {
        listeners,
        admin_addr,
        stop,
        ingest,
        admin: admin_state,
        receivers,
        admin_task,
        reload_task,
        published_token,
        _private_cache: private_cache,
        shutdown_timeout: config.limits.shutdown_timeout,
        drain_delay: config.limits.shutdown_drain_delay,
    })
}

impl Running {
    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }

    /// Serves until the first item of `signals`, then shuts down gracefully (see
    /// [`Running::shutdown_unless`]); a second item ends the shutdown at once.
    pub async fn run_until_signals(self, mut signals: impl futures::Stream<Item = ()> + Unpin) {
        use futures::StreamExt;
        if signals.next().await.is_none() {
            return;
        }
        self.shutdown_unless(async move {
            signals.next().await;
        })
        .await;
    }

    /// Stops accepting, lets in-flight requests finish within `limits.shutdown_timeout`, then stops.
    pub async fn shutdown(self) {
        self.shutdown_unless(std::future::pending()).await;
    }

    /// The graceful shutdown: `/readyz` fails at once; new requests are still served for
    /// `limits.shutdown_drain_delay` (load balancers see the readiness change and stop sending); then
    /// new requests are refused (503 / UNAVAILABLE), listeners close (HTTP/2 GOAWAY) and in-flight
    /// requests get `limits.shutdown_timeout` to finish. If `abort` completes first (a second signal),
    /// everything stops at once.
    pub async fn shutdown_unless(mut self, abort: impl Future<Output = ()>) {
        tokio::pin!(abort);
        self.admin.ready.store(false, Ordering::SeqCst);
        if !self.drain_delay.is_zero() {
            tracing::info!(delay = ?self.drain_delay, "shutting down: not ready, still serving while load balancers catch up");
            tokio::select! {
                () = tokio::time::sleep(self.drain_delay) => {}
                () = &mut abort => return self.stop_now(),
            }
        }
        tracing::info!(timeout = ?self.shutdown_timeout, "shutting down: draining in-flight requests");
        self.ingest.begin_shutdown();
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(self.shutdown_timeout, async {
            while self.receivers.join_next().await.is_some() {}
        });
        let drained = tokio::select! {
            d = drained => d,
            () = &mut abort => return self.stop_now(),
        };
        match drained {
            Ok(()) => tracing::info!("drained; bye"),
            Err(_) => {
                tracing::warn!(
                    "shutdown timeout passed with requests still in flight; closing them"
                );
                self.receivers.abort_all();
            }
        }
        self.finish();
    }

    /// A second signal: everything stops now, requests in flight included.
    fn stop_now(mut self) {
        tracing::warn!("second signal: exiting now");
        self.receivers.abort_all();
        self.finish();
    }

    fn finish(&mut self) {
        self.admin_task.abort();
        self.reload_task.abort();
        if let Some(path) = &self.published_token {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Checks `config` as [`start`] does before it builds anything: the file's own rules, then every
/// receiver's and exporter's kind section, read by its kind.
pub fn check_config(config: &Config) -> Result<(), ConfigError> {
    config.validate()?;
    crate::receiver::registry::check(config)?;
    crate::exporter::registry::check(config)
}

/// Reads every receiver's and exporter's kind section, and loads every configured filter as [`start`] would (compile, link, `init` with the configured exporter
/// names, dry run) without serving anything: `weir validate`. Returns how many there are.
pub fn check_filters(config: &Config) -> Result<usize, StartError> {
    let config = config.clone().resolved();
    check_config(&config)?;
    let p = config.pipelines.clone().unwrap_or_default();
    let filters: Vec<_> = p
        .by_signal()
        .into_iter()
        .filter_map(|(s, pc)| pc.map(|pc| (s, pc.filters.clone())))
        .flat_map(|(s, fs)| fs.into_iter().map(move |f| (s, f)))
        .collect();
    if filters.is_empty() {
        return Ok(0);
    }
    let (instances, memory) = config.filter_pool();
    let runtime = Arc::new(
        Runtime::with_sizing(None, PoolSizing { instances, memory })?
            .with_exporters(config.exporters.keys().cloned()),
    );
    let metrics = Arc::new(Metrics::new());
    let trust = load_trust(&config)?;
    for (signal, fc) in &filters {
        load_filter(&runtime, fc, *signal, &metrics, None, &trust)?;
    }
    Ok(filters.len())
}

/// The trust list of `module_signing` (empty: signatures are not required).
fn load_trust(config: &Config) -> Result<Trust, StartError> {
    Trust::load(&config.module_signing.trusted_keys)
        .map_err(|source| StartError::Signature { name: None, source })
}

/// Reads, checks the signature of (`FILE.sig`, when `trust` has keys), compiles and loads one
/// configured filter; returns it and who signed it. The admin API's pushes load the same way
/// (`control::load`).
pub fn load_filter(
    runtime: &Arc<Runtime>,
    fc: &FilterConfig,
    signal: Signal,
    metrics: &Arc<Metrics>,
    quarantine: Option<QuarantineSender>,
    trust: &Trust,
) -> Result<(Arc<LoadedFilter>, Option<String>), StartError> {
    use crate::control::load::{self, LoadError, ModuleSource};
    let err = |source: FilterError| StartError::Filter {
        name: fc.name.clone(),
        source,
    };
    let started = std::time::Instant::now();
    let spec = FilterSpec {
        name: fc.name.clone(),
        config: fc.config_text(),
        on_error: fc.on_error,
        limits: fc.limits.clone(),
    };
    let source = ModuleSource::File(fc.module.clone());
    let (filter, signer) = load::load_filter(
        runtime, trust, source, spec, signal, metrics, quarantine,
    )
    .map_err(|e| match e {
        LoadError::Read(source) => err(FilterError::Read {
            path: fc.module.display().to_string(),
            source,
        }),
        LoadError::Signature(source) => StartError::Signature {
            name: Some(fc.name.clone()),
            source,
        },
        LoadError::Filter(e) => err(e),
    })?;
    tracing::info!(
        filter = %fc.name, signal = %signal, sha256 = %filter.module.sha256,
        signed_by = signer.as_deref().unwrap_or("-"), elapsed = ?started.elapsed(), "filter loaded"
    );
    Ok((filter, signer))
}
