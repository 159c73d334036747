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
    /// (OTLP/HTTP protobuf). Replaces the file's exporters and pipelines.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Compression towards `--upstream`: gzip (default) or none.
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
        Command::Validate { config } => match Config::load(&config) {
            Ok(c) => {
                let c = c.resolved();
                println!(
                    "{}: ok ({} exporter(s): {})",
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
        config.receivers.otlp.grpc = Some(ListenerConfig {
            endpoint: a.clone(),
        });
    }
    if let Some(a) = &args.otlp_http {
        config.receivers.otlp.http = Some(ListenerConfig {
            endpoint: a.clone(),
        });
    }
    if let Some(url) = &args.upstream {
        config.exporters.clear();
        config.pipelines = None;
        let mut exporter = OtlpExporterConfig::from_upstream_url(url)?;
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
        let running = weir::app::start(config).await?;
        running.run_until(shutdown_signal()).await;
        Ok(())
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops weir");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
