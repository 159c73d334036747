//! `weir run`: the configuration file with the command line's overrides on top, then serving until
//! SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use weir::config::{Compression, Config, ExporterConfig, LogFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
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

/// `weir run`: a configuration that does not build or validate exits with 64 (EX_USAGE), a failure to
/// start or serve with 1.
pub(crate) fn main(args: &RunArgs) -> ExitCode {
    let config = match build_config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weir: {}", super::report(&e));
            return ExitCode::from(64);
        }
    };
    weir::telemetry::init_logging(config.logs.format, &config.logs.level);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", super::report(&e));
            eprintln!("weir: {}", super::report(&e));
            ExitCode::FAILURE
        }
    }
}

fn build_config(args: &RunArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    // The address changes; the file's TLS and auth settings for the listener stay.
    if let Some(a) = &args.otlp_grpc {
        weir::receiver::otlp::set_endpoint(&mut config, "grpc", a);
    }
    if let Some(a) = &args.otlp_http {
        weir::receiver::otlp::set_endpoint(&mut config, "http", a);
    }
    if let Some(url) = &args.upstream {
        // The upstream replaces the file's exporters; pipelines keep their filters. An exporter of the
        // file named `upstream` lends its queue and retry settings (a durable queue, say) to it.
        let kept = config
            .exporters
            .remove("upstream")
            .map(|e| (e.queue, e.retry));
        config.exporters.clear();
        if let Some(p) = &mut config.pipelines {
            for pipeline in p.iter_mut() {
                pipeline.exporters = vec!["upstream".into()];
            }
        }
        let section = weir::exporter::otlp::upstream_section(url, args.upstream_compression)?;
        let mut exporter = ExporterConfig::new("otlp", section);
        if let Some((queue, retry)) = kept {
            exporter.queue = queue;
            exporter.retry = retry;
        }
        config.exporters.insert("upstream".into(), exporter);
    }
    if let Some(a) = &args.admin {
        config.admin.endpoint = a.clone();
    }
    if let Some(f) = args.log_format {
        config.logs.format = f;
    }
    let config = config.resolved();
    // Receivers' and exporters' sections too, so that a mistake in one exits as a usage error.
    weir::app::check_config(&config).context("invalid configuration")?;
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
