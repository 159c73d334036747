//! The `weir` command: parse the command line, load and validate the configuration, run.
//! Everything else lives in the library. A bad configuration exits with 64 (EX_USAGE).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weir::config::{
    Compression, Config, ExporterConfig, ListenerConfig, LogFormat, OtlpExporterConfig,
};

/// weir: a WebAssembly-extensible OpenTelemetry edge proxy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy. Flags override the configuration file; without either, weir listens on
    /// 127.0.0.1:4317 (gRPC) and :4318 (HTTP) and prints what it receives (the `debug` exporter).
    Run(RunArgs),
    /// Check a configuration file without binding any port.
    Validate {
        /// The YAML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage the Wasm filters of a running weir (through its admin API), or test one offline.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// What durable queues kept aside because their upstream refused it for good.
    #[command(subcommand)]
    DeadLetter(DeadLetterCommand),
    /// Make an ed25519 key pair for signing filter modules: PREFIX.key (private, PKCS#8 PEM, readable
    /// by you only) and PREFIX.pub (public, PEM: list it in `module_signing.trusted_keys`).
    Keygen {
        /// Path prefix of the two files, e.g. `keys/ops` (signs as `ops`).
        prefix: PathBuf,
    },
    /// Internal: compiles the module on stdin into a compile cache, for a running weir that keeps the
    /// compiler out of its own memory.
    #[command(hide = true)]
    CompileHelper {
        #[arg(long)]
        cache_dir: PathBuf,
        #[arg(long)]
        instances: u32,
        #[arg(long)]
        memory: usize,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
    /// Files, requests and items kept per exporter.
    List {
        /// weir's state_dir.
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Send an exporter's dead letters to an OTLP/HTTP endpoint (weir's own receiver, to go through the
    /// pipeline again, or the upstream); each file is deleted once all of its requests were accepted.
    Replay {
        /// weir's state_dir.
        #[arg(long)]
        state_dir: PathBuf,
        /// The exporter whose dead letters to send.
        #[arg(long)]
        exporter: String,
        /// Where: http(s)://HOST:PORT (requests go to /v1/<signal>).
        #[arg(long)]
        to: String,
        /// A header to send, `NAME: VALUE` (repeatable), e.g. an Authorization the receiver needs.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The header each request's stored tenant is sent in: the exporter's `tenant_header` (replay
        /// does not read the configuration). Only requests kept with a tenant (an exporter with
        /// `tenant_header`) send it; it replaces a --header of the same name.
        #[arg(long, default_value = "X-Scope-OrgID")]
        tenant_header: String,
    },
}

#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// weir's admin API.
    #[arg(long, default_value = "http://127.0.0.1:9901", env = "WEIR_ADMIN")]
    admin: String,
    /// The admin token. Default, for a loopback --admin URL: the one the weir on that port made at
    /// start (its file under $XDG_RUNTIME_DIR/weir/ or /tmp/weir-UID/), when it made one.
    #[arg(long, env = "WEIR_TOKEN")]
    token: Option<String>,
    /// CA bundle an https:// admin API's certificate is verified against (default: system roots).
    #[arg(long, env = "WEIR_ADMIN_CA")]
    admin_ca: Option<PathBuf>,
    /// Client certificate for an admin API that takes mTLS identities (with --admin-key).
    #[arg(long, env = "WEIR_ADMIN_CERT", requires = "admin_key")]
    admin_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, env = "WEIR_ADMIN_KEY", requires = "admin_cert")]
    admin_key: Option<PathBuf>,
}

impl AdminArgs {
    /// A client of the admin API these arguments name.
    fn client(self) -> anyhow::Result<weir::admin::client::AdminClient> {
        let tls = (self.admin_ca.is_some() || self.admin_cert.is_some()).then(|| {
            weir::config::ClientTlsConfig {
                ca: self.admin_ca.clone(),
                cert: self.admin_cert.clone(),
                key: self.admin_key.clone(),
                ..Default::default()
            }
        });
        Ok(
            weir::admin::client::AdminClient::new(&self.admin, self.token)
                .with_tls(tls.as_ref())?,
        )
    }
}

#[derive(Debug, Subcommand)]
enum FilterCommand {
    /// Upload a module and add or replace filter NAME with it; it is validated before it goes live.
    Push {
        /// The filter's name in its pipeline.
        name: String,
        /// The .wasm file (component or wit-bindgen core module).
        file: PathBuf,
        /// Filter configuration: JSON text, or @FILE to read it from a file.
        #[arg(long)]
        config: Option<String>,
        /// The pipeline.
        #[arg(long, default_value = "traces")]
        pipeline: String,
        /// fail-open or fail-closed.
        #[arg(long, default_value = "fail-open")]
        on_error: String,
        /// Time one call may take, e.g. 50ms.
        #[arg(long)]
        deadline: Option<String>,
        /// Memory cap per instance, in bytes.
        #[arg(long)]
        memory: Option<usize>,
        /// The module's signature file [default: FILE.sig, sent when it exists].
        #[arg(long)]
        signature: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Sign a module with a private key from `weir keygen`: writes FILE.sig, which `weir filter push`
    /// sends and weir checks against `module_signing.trusted_keys` (next to a module named in the
    /// configuration file, weir checks it at start).
    Sign {
        /// The private key (PREFIX.key).
        #[arg(long)]
        key: PathBuf,
        /// The .wasm file.
        file: PathBuf,
    },
    /// List the active filters with version, sha256, state and statistics.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Re-activate the previous version of filter NAME.
    Rollback {
        /// The filter's name.
        name: String,
        /// The pipeline.
        #[arg(long, default_value = "traces")]
        pipeline: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Remove filter NAME from its pipeline.
    Rm {
        /// The filter's name.
        name: String,
        /// The pipeline.
        #[arg(long, default_value = "traces")]
        pipeline: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Run a filter offline on an OTLP/JSON batch and print what it did.
    Test {
        /// The .wasm file.
        file: PathBuf,
        /// OTLP/JSON request to feed it.
        #[arg(long)]
        input: PathBuf,
        /// Filter configuration: JSON text, or @FILE.
        #[arg(long)]
        config: Option<String>,
        /// The signal of the input.
        #[arg(long, default_value = "traces")]
        signal: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The YAML configuration.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// OTLP/gRPC listen address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    otlp_http: Option<String>,
    /// Forward everything to this upstream: grpc://HOST:PORT (OTLP/gRPC) or http://HOST:PORT
    /// (OTLP/HTTP protobuf). Replaces the file's exporters; pipelines keep their filters.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Compression towards `--upstream`: gzip (default), zstd or none.
    #[arg(long, value_enum, requires = "upstream")]
    upstream_compression: Option<Compression>,
    /// Admin listen address for /metrics, /healthz, /readyz.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Log format (overrides `logs.format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match Config::load(&config).and_then(|c| {
            // Filters are loaded too (compiled, `init` run with their config, dry run), so a filter
            // config error (a router naming an unknown exporter) shows here, not at start.
            let filters = weir::app::check_filters(&c)
                .map_err(|e| weir::config::ConfigError::Invalid(e.to_string()))?;
            let warnings = c.warnings();
            Ok((c.resolved(), filters, warnings))
        }) {
            Ok((c, filters, warnings)) => {
                for w in warnings {
                    eprintln!("{}: warning: {w}", config.display());
                }
                println!(
                    "{}: ok ({} exporter(s): {}; {filters} filter(s) loaded)",
                    config.display(),
                    c.exporters.len(),
                    c.exporters.keys().cloned().collect::<Vec<_>>().join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(64)
            }
        },
        Command::CompileHelper {
            cache_dir,
            instances,
            memory,
        } => {
            let mut bytes = Vec::new();
            let compiled = std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .map_err(anyhow::Error::from)
                .and_then(|_| {
                    weir::filter::compile_into_cache(
                        &cache_dir,
                        weir::filter::PoolSizing { instances, memory },
                        &bytes,
                    )
                    .map_err(anyhow::Error::from)
                });
            match compiled {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("weir compile-helper: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::DeadLetter(cmd) => match dead_letter_command(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir dead-letter: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Keygen { prefix } => match keygen(&prefix) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir keygen: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Filter(cmd) => {
            // Filters' own log lines and prints go to stderr, so `filter test` shows them.
            weir::telemetry::init_logging(LogFormat::Text, "info");
            match filter_command(cmd) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("weir: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => {
            let config = match build_config(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("weir: {e:#}");
                    return ExitCode::from(64);
                }
            };
            weir::telemetry::init_logging(config.logs.format, &config.logs.level);
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("weir: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn build_config(args: &RunArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(a) = &args.otlp_grpc {
        // The address changes; the file's TLS and auth settings for the listener stay.
        match &mut config.receivers.otlp.grpc {
            Some(l) => l.endpoint = a.clone(),
            None => config.receivers.otlp.grpc = Some(ListenerConfig::new(a.clone())),
        }
    }
    if let Some(a) = &args.otlp_http {
        // The address changes; the file's TLS and auth settings for the listener stay.
        match &mut config.receivers.otlp.http {
            Some(l) => l.endpoint = a.clone(),
            None => config.receivers.otlp.http = Some(ListenerConfig::new(a.clone())),
        }
    }
    if let Some(url) = &args.upstream {
        // The upstream replaces the file's exporters; pipelines keep their filters. An exporter of the
        // file named `upstream` lends its queue and retry settings (a durable queue, say) to it.
        let kept = match config.exporters.remove("upstream") {
            Some(ExporterConfig::Otlp(o)) => Some((o.queue, o.retry)),
            _ => None,
        };
        config.exporters.clear();
        if let Some(p) = &mut config.pipelines {
            for pipeline in p.iter_mut() {
                pipeline.exporters = vec!["upstream".into()];
            }
        }
        let mut exporter = OtlpExporterConfig::from_upstream_url(url)?;
        if let Some((queue, retry)) = kept {
            exporter.queue = queue;
            exporter.retry = retry;
        }
        if let Some(c) = args.upstream_compression {
            exporter.compression = c;
        }
        config
            .exporters
            .insert("upstream".into(), ExporterConfig::Otlp(exporter));
    }
    if let Some(a) = &args.admin {
        config.admin.endpoint = a.clone();
    }
    if let Some(f) = args.log_format {
        config.logs.format = f;
    }
    let config = config.resolved();
    config.validate().context("invalid configuration")?;
    Ok(config)
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        // Filters compile in a helper process (this binary), so the compiler never runs in weir.
        let options = weir::app::StartOptions {
            compile_helper: std::env::current_exe().ok(),
        };
        // Installed first: a signal during start-up (a slow filter compile) shuts down once started.
        let signals = shutdown_signals()?;
        let running = weir::app::start_with(config, options).await?;
        running.run_until_signals(signals).await;
        Ok(())
    })
}

/// SIGINT or SIGTERM.
/// Every SIGTERM or SIGINT, as a stream: the first starts the graceful shutdown, the second ends it.
/// The handlers are installed once, so that a signal between two is never missed.
fn shutdown_signals() -> anyhow::Result<impl futures::Stream<Item = ()> + Unpin> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(()) = term.recv() => tracing::info!("SIGTERM received"),
                Some(()) = int.recv() => tracing::info!("SIGINT received"),
                else => return,
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|()| ((), rx))
    })))
}

/// `--config` as JSON text or `@FILE`.
fn read_config_arg(arg: Option<&str>) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(arg) = arg else { return Ok(None) };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_string(),
    };
    // Not JSON: pass it on as a string; the filter decides what it means.
    Ok(Some(
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

/// `weir keygen PREFIX`: writes PREFIX.key (mode 0600) and PREFIX.pub, refusing to overwrite either.
fn dead_letter_command(cmd: DeadLetterCommand) -> anyhow::Result<()> {
    match cmd {
        DeadLetterCommand::List { state_dir } => {
            let all = weir::dead_letter::list(&state_dir)?;
            if all.is_empty() {
                println!("no dead letters under {}", state_dir.display());
            }
            for e in all {
                let requests: usize = e.batches.iter().map(|b| b.requests.len()).sum();
                let items: u64 = e
                    .batches
                    .iter()
                    .flat_map(|b| &b.requests)
                    .map(|r| u64::from(r.items))
                    .sum();
                println!(
                    "{}: {} file(s), {requests} request(s), {items} item(s)",
                    e.exporter,
                    e.batches.len()
                );
                for b in &e.batches {
                    println!("  {} ({} request(s))", b.path.display(), b.requests.len());
                }
            }
            Ok(())
        }
        DeadLetterCommand::Replay {
            state_dir,
            exporter,
            to,
            headers,
            tenant_header,
        } => {
            let headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .with_context(|| format!("--header `{h}`: use `NAME: VALUE`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (files, requests, items) = runtime.block_on(weir::dead_letter::replay(
                &state_dir,
                &exporter,
                &to,
                &headers,
                &tenant_header,
                |b| {
                    println!(
                        "replayed {} ({} request(s))",
                        b.path.display(),
                        b.requests.len()
                    )
                },
            ))?;
            println!(
                "{exporter}: {files} file(s), {requests} request(s), {items} item(s) replayed to {to}"
            );
            Ok(())
        }
    }
}

fn keygen(prefix: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let pair = weir::signing::generate()?;
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (private, public) = (with(".key"), with(".pub"));
    for p in [&private, &public] {
        anyhow::ensure!(!p.exists(), "{} exists: not overwriting a key", p.display());
    }
    if let Some(dir) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&private)
        .and_then(|mut f| f.write_all(pair.private_pem.as_bytes()))
        .with_context(|| format!("writing {}", private.display()))?;
    std::fs::write(&public, &pair.public_pem)
        .with_context(|| format!("writing {}", public.display()))?;
    println!(
        "key {}: private {} (keep it secret), public {} (trust it in module_signing.trusted_keys)",
        pair.key_id,
        private.display(),
        public.display()
    );
    Ok(())
}

fn filter_command(cmd: FilterCommand) -> anyhow::Result<()> {
    use http::Method;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    match cmd {
        FilterCommand::Test {
            file,
            input,
            config,
            signal,
        } => {
            let module =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let input =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let signal = weir::control::parse_signal(&signal)
                .context("--signal: traces, metrics or logs")?;
            let config = match read_config_arg(config.as_deref())? {
                None => String::new(),
                Some(serde_json::Value::String(s)) => s,
                Some(v) => v.to_string(),
            };
            let report =
                weir::filter::offline::run(&module, &config, signal, &input, Default::default())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        FilterCommand::Push {
            name,
            file,
            config,
            pipeline,
            on_error,
            deadline,
            memory,
            signature,
            admin,
        } => runtime.block_on(async {
            let client = admin.client()?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let signature = match signature {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                None => std::fs::read_to_string(weir::signing::signature_path(&file)).ok(),
            };
            let headers: Vec<(&str, &str)> = signature
                .iter()
                .map(|s| (weir::signing::SIGNATURE_HEADER, s.trim()))
                .collect();
            let started = std::time::Instant::now();
            let uploaded = client
                .call_with_headers(
                    Method::POST,
                    "/v1/modules",
                    "application/wasm",
                    &headers,
                    bytes,
                )
                .await?;
            let sha256 = uploaded["sha256"].as_str().unwrap_or_default().to_string();
            let mut limits = serde_json::Map::new();
            if let Some(d) = deadline {
                limits.insert("deadline".into(), d.into());
            }
            if let Some(m) = memory {
                limits.insert("memory".into(), m.into());
            }
            let mut request = serde_json::json!({
                "module": sha256,
                "on_error": on_error,
                "limits": limits,
            });
            if let Some(c) = read_config_arg(config.as_deref())? {
                request["config"] = c;
            }
            let info = client
                .call(
                    Method::PUT,
                    &format!("/v1/pipelines/{pipeline}/filters/{name}"),
                    "application/json",
                    serde_json::to_vec(&request)?,
                )
                .await?;
            println!(
                "{pipeline}/{name}: version {} active ({}), sha256 {} in {:?}",
                info["version"],
                info["state"].as_str().unwrap_or("?"),
                sha256,
                started.elapsed()
            );
            Ok(())
        }),
        FilterCommand::Sign { key, file } => {
            let private = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let line = weir::signing::sign(&private, &bytes)?;
            let out = weir::signing::signature_path(&file);
            std::fs::write(&out, format!("{line}\n"))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("signed {}: {}", file.display(), out.display());
            Ok(())
        }
        FilterCommand::List { json, admin } => runtime.block_on(async {
            let client = admin.client()?;
            let v = client
                .call(Method::GET, "/v1/filters", "application/json", Vec::new())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "{:<8} {:<20} {:>7} {:<12} {:<14} {:>10} {:>8} {:>10} {:<12}  sha256",
                "PIPELINE",
                "NAME",
                "VERSION",
                "STATE",
                "ON_ERROR",
                "CALLS",
                "ERRORS",
                "DROPPED",
                "SIGNED_BY"
            );
            for f in v["filters"].as_array().into_iter().flatten() {
                // A quarantine with nothing to roll back to says when the filter is tried again.
                let state = match f["retry_in_ms"].as_u64() {
                    Some(ms) => format!("quarantined, retry in {:.0}s", (ms as f64 / 1e3).ceil()),
                    None => f["state"].as_str().unwrap_or("").to_string(),
                };
                println!(
                    "{:<8} {:<20} {:>7} {:<12} {:<14} {:>10} {:>8} {:>10} {:<12}  {}",
                    f["pipeline"].as_str().unwrap_or(""),
                    f["name"].as_str().unwrap_or(""),
                    f["version"],
                    state,
                    f["on_error"].as_str().unwrap_or(""),
                    f["stats"]["calls"],
                    f["stats"]["errors"],
                    f["stats"]["items_dropped"],
                    f["signed_by"].as_str().unwrap_or("-"),
                    f["sha256"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }),
        FilterCommand::Rollback {
            name,
            pipeline,
            admin,
        } => runtime.block_on(async {
            let client = admin.client()?;
            let info = client
                .call(
                    Method::POST,
                    &format!("/v1/pipelines/{pipeline}/filters/{name}/rollback"),
                    "application/json",
                    Vec::new(),
                )
                .await?;
            println!(
                "{pipeline}/{name}: rolled back to version {}, sha256 {}",
                info["version"],
                info["sha256"].as_str().unwrap_or("")
            );
            Ok(())
        }),
        FilterCommand::Rm {
            name,
            pipeline,
            admin,
        } => runtime.block_on(async {
            let client = admin.client()?;
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/pipelines/{pipeline}/filters/{name}"),
                    "application/json",
                    Vec::new(),
                )
                .await?;
            println!("{pipeline}/{name}: removed");
            Ok(())
        }),
    }
}
