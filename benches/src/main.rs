//! `loadgen`: a load generator for weir.
//!
//! It starts a counting OTLP/gRPC sink, spawns weir forwarding to it, and sends
//! pre-encoded `ExportTraceServiceRequest`s to weir over OTLP/gRPC or OTLP/HTTP
//! from many concurrent tasks for a bounded time. It then reports throughput
//! (client-acknowledged and sink-confirmed spans per second), request latency,
//! weir's CPU time and peak memory, and checks that the sink received every
//! acknowledged span. See `benches/README.md`.

mod client;
mod load;
mod otelcol;
mod payload;
mod procstat;
mod report;
mod sink;
mod weir;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use client::Sender;
use load::{LoadConfig, Probe};
use report::{EndState, Report, RunInfo};
use sink::{Sink, SinkCounters, SinkDecode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::WeirProcess;

/// Wire protocol used to send to weir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// OTLP/gRPC `TraceService/Export`.
    Grpc,
    /// OTLP/HTTP `POST /v1/traces` with a protobuf body (HTTP/1.1).
    Http,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

/// Which proxy a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProxyKind {
    /// weir (`--weir-bin`).
    Weir,
    /// Rotel's `rotel-agent` (`--rotel-bin`), with its defaults, as a peer to compare against.
    Rotel,
    /// The OpenTelemetry Collector (`--otelcol-bin`) with its defaults (`benches/otelcol.yaml`).
    Otelcol,
    /// The OpenTelemetry Collector tuned for a gateway as its docs recommend
    /// (`benches/otelcol-tuned.yaml`, and `GOMEMLIMIT`).
    OtelcolTuned,
    /// The OpenTelemetry Collector with its defaults and its `redaction` processor masking what weir's
    /// redactor masks (`benches/otelcol-redaction.yaml`).
    OtelcolRedaction,
}

/// Compression of what the proxy sends to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UpstreamCompression {
    /// The proxy's own default (gzip for weir, Rotel and the Collector).
    Default,
    Gzip,
    Zstd,
    None,
}

impl UpstreamCompression {
    fn as_str(self) -> &'static str {
        match self {
            UpstreamCompression::Default => "default",
            UpstreamCompression::Gzip => "gzip",
            UpstreamCompression::Zstd => "zstd",
            UpstreamCompression::None => "none",
        }
    }
}

/// Load generator for weir: pre-encoded OTLP trace requests through weir to a
/// counting sink.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// weir binary to spawn [default: `weir` next to this binary if it exists,
    /// else target/release/weir].
    #[arg(long, value_name = "PATH")]
    weir_bin: Option<PathBuf>,

    /// The proxy to measure: weir, or for comparison Rotel (`rotel-agent`) or the OpenTelemetry
    /// Collector with its defaults (`otelcol`) or tuned for a gateway (`otelcol-tuned`).
    #[arg(long, value_enum, default_value_t = ProxyKind::Weir)]
    proxy: ProxyKind,

    /// `rotel-agent` binary for `--proxy rotel` [default: `rotel-agent` on PATH].
    #[arg(long, value_name = "PATH")]
    rotel_bin: Option<PathBuf>,

    /// The Collector (`otelcol-weir`) for `--proxy otelcol|otelcol-tuned` [default: $WEIR_OTELCOL, else
    /// the WEIR_OTELCOL of the peers' env file, written by `tests/peers/build.sh collector`].
    #[arg(long, value_name = "PATH", env = "WEIR_OTELCOL")]
    otelcol_bin: Option<PathBuf>,

    /// Compression of the proxy's requests to the sink (weir: `--upstream-compression`; Rotel:
    /// `--otlp-exporter-compression`; the Collector: its exporter's `compression`). `default` passes
    /// nothing (the Collector: gzip, its default). With `--direct`, the client compresses its requests
    /// to the sink this way (gRPC only).
    #[arg(long, value_enum, default_value_t = UpstreamCompression::Default)]
    upstream_compression: UpstreamCompression,

    /// Pace the senders to this many requests per second in all (spread evenly over the senders)
    /// instead of sending back to back: latency at a given load rather than at saturation.
    #[arg(long, value_name = "REQ_PER_S")]
    rate: Option<f64>,

    /// Extra argument for `weir run` (repeatable), e.g. `--weir-arg=--config --weir-arg=weir.yaml`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    weir_arg: Vec<String>,

    /// Load an already-running weir listening at ADDR (its OTLP/gRPC or OTLP/HTTP
    /// address, per --protocol) instead of spawning weir and the sink.
    #[arg(long, value_name = "ADDR", conflicts_with = "direct")]
    target: Option<SocketAddr>,

    /// With --target: pid of that weir, to measure its CPU time and memory.
    #[arg(long, value_name = "PID", requires = "target")]
    pid: Option<u32>,

    /// Send straight to the sink, without weir (baseline of loadgen + sink alone).
    #[arg(long)]
    direct: bool,

    /// Protocol to send with.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,

    /// Concurrent senders, each with one request in flight at a time.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,

    /// gRPC connections (HTTP/2 channels), shared round-robin by the senders.
    /// Ignored for --protocol http, whose pool opens one connection per sender.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,

    /// Spans in each request.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    spans_per_request: u32,

    /// Distinct pre-encoded requests, sent in rotation.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    variants: u32,

    /// Seed of the synthetic content (same seed, same requests).
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Length of the measured window, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    duration: Duration,

    /// Stop the window after this many measured requests, if earlier than --duration.
    #[arg(long, value_name = "N", default_value_t = 10_000_000)]
    max_requests: u64,

    /// Unmeasured warm-up before the window, in seconds.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs_or_zero)]
    warmup: Duration,

    /// Per-request timeout (and connect timeout), in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    request_timeout: Duration,

    /// How long to wait for weir to announce its listeners, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    startup_timeout: Duration,

    /// After the window, how long to wait for the sink to receive every
    /// acknowledged span, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs_or_zero)]
    drain_timeout: Duration,

    /// Worker threads of the load generator's client runtime.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    client_threads: u32,

    /// What the spans carry: `plain`, or `secrets` (seven of ten attributes are secrets, which the
    /// sink counts if they arrive unmasked: needs `--sink-decode full`).
    #[arg(long, value_enum, default_value_t = payload::Mix::Plain)]
    mix: payload::Mix,

    /// How the sink decodes requests: `full` decodes every span into Rust types
    /// (like a real collector); `count` decodes only the framing down to each
    /// span, which costs far less CPU.
    #[arg(long, value_enum, default_value_t = SinkDecode::Full)]
    sink_decode: SinkDecode,

    /// Worker threads of the sink's runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    sink_threads: u32,

    /// Do not fail the run when the sink received fewer spans than were
    /// acknowledged (e.g. a weir config that drops spans on purpose).
    #[arg(long)]
    allow_loss: bool,

    /// Do not pass `--upstream` to weir: its config (`--weir-arg=--config ...`) sends to the sink itself,
    /// through `${env:WEIR_BENCH_SINK}` (an OTLP/gRPC URL), next to any other exporters it has.
    #[arg(long)]
    sink_in_config: bool,

    /// Do not fail the run on retryable refusals (gRPC UNAVAILABLE / RESOURCE_EXHAUSTED, HTTP 429 / 503):
    /// for overload runs, where refusing is what weir should do. They are still counted and reported.
    #[arg(long)]
    allow_refusals: bool,

    /// The sink answers each request after this many milliseconds: an upstream slower than weir, so
    /// that the offered load can be a multiple of what the upstream sustains.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    sink_delay_ms: u64,

    /// While the load runs, push a new version of a filter through weir's admin API every MS
    /// milliseconds (`--push-filter`, `--push-module`, `--push-config`): latency across live swaps.
    #[arg(long, value_name = "MS", requires = "push_module")]
    push_every: Option<u64>,
    /// The traces pipeline's filter `--push-every` replaces.
    #[arg(long, value_name = "NAME", default_value = "route")]
    push_filter: String,
    /// The module `--push-every` pushes (uploaded once; every push is a new version of it).
    #[arg(long, value_name = "PATH")]
    push_module: Option<PathBuf>,
    /// The filter config (JSON) `--push-every` pushes with.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    push_config: String,
    /// Print the figures as one JSON object line on stdout (the human report
    /// then goes to stderr).
    #[arg(long)]
    json: bool,

    /// Echo weir's output (prefixed `[weir]`) to stderr.
    #[arg(long)]
    verbose: bool,
}

impl Args {
    /// The report's `mode` of a run through a spawned proxy.
    fn proxy_mode(&self) -> &'static str {
        match self.proxy {
            ProxyKind::Weir => "weir",
            ProxyKind::Rotel => "rotel",
            ProxyKind::Otelcol => "otelcol",
            ProxyKind::OtelcolTuned => "otelcol-tuned",
            ProxyKind::OtelcolRedaction => "otelcol-redaction",
        }
    }
}

fn parse_secs_or_zero(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err("must be between 0 and 86400 seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let d = parse_secs_or_zero(s)?;
    if d.is_zero() {
        return Err("must be more than 0 seconds".to_owned());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The weir binary to spawn when --weir-bin is not given.
fn default_weir_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("weir")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("target/release/weir"))
}

/// Runs the benchmark; `Ok(false)` if it ran but did not pass.
fn run(args: &Args) -> Result<bool> {
    if args.direct && args.protocol == Protocol::Http {
        bail!("--direct only supports --protocol grpc (the sink speaks OTLP/gRPC only)");
    }
    let concurrency = args.concurrency as usize;
    let connections = args.connections as usize;

    if args.mix == payload::Mix::Secrets
        && args.sink_decode != SinkDecode::Full
        && args.target.is_none()
    {
        bail!("--mix secrets counts leaks at the sink, which needs --sink-decode full");
    }
    let payloads = payload::build_mix(
        args.mix,
        args.variants as usize,
        args.spans_per_request as usize,
        args.seed,
    );
    let mean_body_bytes =
        payloads.iter().map(|p| p.body.len()).sum::<usize>() as f64 / payloads.len() as f64;
    let payloads = Arc::new(payloads);

    // The sink (and weir, through Drop) must outlive the client runtime and be
    // stopped outside it.
    let sink = match args.target {
        Some(_) => None,
        None => {
            let sink = Sink::start(
                args.sink_threads as usize,
                args.sink_decode,
                Duration::from_millis(args.sink_delay_ms),
            )?;
            eprintln!(
                "loadgen: sink ({} decode) listening on {}",
                args.sink_decode.as_str(),
                sink.addr()
            );
            Some(sink)
        }
    };
    let mut weir_process = None;
    let mut weir_bin = None;
    let (mode, target, weir_pid) = match (&sink, args.target) {
        (_, Some(target)) => ("target", target, args.pid),
        (Some(sink), None) if args.direct => ("direct", sink.addr(), None),
        (Some(sink), None) => {
            let (bin, process) = match args.proxy {
                ProxyKind::Weir => {
                    let bin = args.weir_bin.clone().unwrap_or_else(default_weir_bin);
                    eprintln!("loadgen: starting {}", bin.display());
                    let mut weir_args = args.weir_arg.clone();
                    if args.upstream_compression != UpstreamCompression::Default {
                        weir_args.push("--upstream-compression".into());
                        weir_args.push(args.upstream_compression.as_str().into());
                    }
                    let process = WeirProcess::spawn(
                        &bin,
                        sink.addr(),
                        args.sink_in_config,
                        &weir_args,
                        args.verbose,
                        args.startup_timeout,
                    )?;
                    (bin, process)
                }
                ProxyKind::Rotel => {
                    let bin = args
                        .rotel_bin
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("rotel-agent"));
                    eprintln!("loadgen: starting {}", bin.display());
                    let compression = match args.upstream_compression {
                        UpstreamCompression::Default | UpstreamCompression::Gzip => "gzip",
                        UpstreamCompression::None => "none",
                        UpstreamCompression::Zstd => {
                            bail!("rotel-agent 0.0.1a15 offers gzip or none, not zstd")
                        }
                    };
                    let process = WeirProcess::spawn_rotel(
                        &bin,
                        sink.addr(),
                        compression,
                        args.verbose,
                        args.startup_timeout,
                    )?;
                    (bin, process)
                }
                ProxyKind::Otelcol | ProxyKind::OtelcolTuned | ProxyKind::OtelcolRedaction => {
                    let bin = match &args.otelcol_bin {
                        Some(bin) => bin.clone(),
                        None => otelcol::from_env_file().with_context(|| {
                            format!(
                                "no Collector: pass --otelcol-bin, or build it with `{}`",
                                otelcol::BUILD_COMMAND
                            )
                        })?,
                    };
                    eprintln!("loadgen: starting {}", bin.display());
                    let compression = match args.upstream_compression {
                        UpstreamCompression::Default => "gzip",
                        c => c.as_str(),
                    };
                    let (config, env): (_, &[(&str, &str)]) = match args.proxy {
                        ProxyKind::OtelcolTuned => (
                            otelcol::TUNED_CONFIG,
                            &[("GOMEMLIMIT", otelcol::TUNED_GOMEMLIMIT)],
                        ),
                        ProxyKind::OtelcolRedaction => (otelcol::REDACTION_CONFIG, &[]),
                        _ => (otelcol::DEFAULT_CONFIG, &[]),
                    };
                    let process = WeirProcess::spawn_otelcol(
                        &bin,
                        config,
                        env,
                        sink.addr(),
                        compression,
                        args.verbose,
                        args.startup_timeout,
                    )?;
                    (bin, process)
                }
            };
            let listeners = process.listeners();
            eprintln!(
                "loadgen: {} (pid {}) listening: otlp-grpc {}, otlp-http {}{}",
                args.proxy_mode(),
                process.pid(),
                listeners.otlp_grpc,
                listeners.otlp_http,
                listeners
                    .admin
                    .map(|a| format!(", admin {a}"))
                    .unwrap_or_default()
            );
            let target = match args.protocol {
                Protocol::Grpc => listeners.otlp_grpc,
                Protocol::Http => listeners.otlp_http,
            };
            let pid = process.pid();
            weir_bin = Some(bin.display().to_string());
            weir_process = Some(process);
            (args.proxy_mode(), target, Some(pid))
        }
        (None, None) => bail!("internal error: no sink and no target"),
    };

    let config = LoadConfig {
        concurrency,
        warmup: args.warmup,
        duration: args.duration,
        max_requests: args.max_requests,
        request_timeout: args.request_timeout,
        rate: args.rate,
    };
    let admin = weir_process
        .as_ref()
        .and_then(|p| p.listeners().admin)
        .map(|a| format!("http://{a}"));
    let pushes = match (args.push_every, &args.push_module) {
        (Some(every), Some(module)) => {
            let Some(admin) = admin else {
                bail!("--push-every needs the spawned weir's admin API");
            };
            let config: serde_json::Value =
                serde_json::from_str(&args.push_config).context("--push-config")?;
            Some(Pusher {
                admin,
                every: Duration::from_millis(every.max(1)),
                filter: args.push_filter.clone(),
                module: std::fs::read(module)
                    .with_context(|| format!("--push-module {}", module.display()))?,
                config,
                // Bounded: the warm-up and the window, no more.
                until: Instant::now() + args.warmup + args.duration,
            })
        }
        _ => None,
    };
    let probe = Probe {
        weir_pid,
        sink: sink.as_ref().map(Sink::counters),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads as usize)
        .thread_name(load::THREAD_NAME)
        .enable_all()
        .build()
        .context("building the client runtime")?;
    let outcome = runtime.block_on(async {
        let senders = match args.protocol {
            Protocol::Grpc => {
                // Straight to the sink, the client compresses as the proxy would have: the sink's
                // inflating is then part of the baseline too.
                let compression = match (args.direct, args.upstream_compression) {
                    (true, UpstreamCompression::Gzip) => Some(tonic::codec::CompressionEncoding::Gzip),
                    (true, UpstreamCompression::Zstd) => Some(tonic::codec::CompressionEncoding::Zstd),
                    _ => None,
                };
                Sender::grpc(target, connections, args.request_timeout, compression).await?
            }
            Protocol::Http => vec![Sender::http(target, concurrency)?],
        };
        eprintln!(
            "loadgen: {concurrency} senders to {target}: warming up {:.1} s, then measuring {:.1} s",
            args.warmup.as_secs_f64(),
            args.duration.as_secs_f64()
        );
        let pushing = pushes.map(|p| tokio::spawn(p.run()));
        let outcome = load::run(&config, senders, Arc::clone(&payloads), &probe).await;
        if let Some(pushing) = pushing {
            let (done, failed) = pushing.await.context("push task")??;
            eprintln!("loadgen: pushed {done} filter versions during the run, {failed} failed");
            if failed > 0 {
                bail!("{failed} of {} pushes failed", done + failed);
            }
        }
        outcome
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let outcome = outcome?;

    let acked_total = outcome.warmup.spans_acked + outcome.measured.spans_acked;
    let mut end = EndState::default();
    if let Some(counters) = &probe.sink {
        let (spans, waited) = wait_for_sink(counters, acked_total, args.drain_timeout);
        end.sink_total_spans = Some(spans);
        end.drain_wait = waited;
        end.sink_total_requests = Some(counters.requests());
        end.sink_leaks = (args.sink_decode == SinkDecode::Full).then(|| counters.leaks());
        // A proxy that acknowledges before it delivers (a batch processor, a durable queue) has worked
        // on until now for what it acknowledged in the window.
        end.weir_cpu_ticks_drained = weir_pid.and_then(|pid| procstat::cpu_ticks(pid).ok());
    }
    if let Some(pid) = weir_pid {
        end.weir_peak_rss_kib = procstat::peak_rss_kib(pid).ok();
        end.weir_rss_kib = procstat::rss_kib(pid).ok();
    }
    if let Some(process) = weir_process.as_mut() {
        if let Some(status) = process.exited() {
            end.weir_exited_early = Some(status.to_string());
            eprintln!(
                "loadgen: weir exited early ({status}); its last output:\n{}",
                process.recent_output()
            );
        }
        match process.stop(Duration::from_secs(10)) {
            Ok(status) if end.weir_exited_early.is_none() => {
                eprintln!("loadgen: {} stopped ({status})", args.proxy_mode())
            }
            Ok(_) => {}
            Err(e) => eprintln!("loadgen: stopping weir: {e:#}"),
        }
    }
    drop(weir_process);
    if let Some(sink) = sink {
        sink.shutdown();
    }

    let info = RunInfo {
        mode,
        upstream_compression: args.upstream_compression.as_str(),
        rate: args.rate,
        protocol: args.protocol.as_str(),
        target,
        weir_pid,
        weir_bin,
        concurrency,
        connections,
        spans_per_request: args.spans_per_request as usize,
        variants: args.variants as usize,
        mean_body_bytes,
        mix: args.mix.as_str(),
        warmup: args.warmup,
        duration: args.duration,
        max_requests: args.max_requests,
        allow_loss: args.allow_loss,
        allow_refusals: args.allow_refusals,
    };
    let report = Report::new(info, outcome, end);
    if args.json {
        eprint!("{}", report.human());
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    Ok(report.problems().is_empty())
}

/// `--push-every`: new versions of one filter, pushed through the admin API while the load runs.
struct Pusher {
    admin: String,
    every: Duration,
    filter: String,
    module: Vec<u8>,
    config: serde_json::Value,
    until: Instant,
}

impl Pusher {
    /// Uploads the module once, then pushes a version every `every` until `until`; returns how many
    /// pushes succeeded and failed.
    async fn run(self) -> Result<(u64, u64)> {
        use http::Method;
        let client = ::weir::admin::client::AdminClient::new(&self.admin, None);
        let uploaded = client
            .call(Method::POST, "/v1/modules", "application/wasm", self.module)
            .await?;
        let request = serde_json::to_vec(&serde_json::json!({
            "module": uploaded["sha256"],
            "config": self.config,
            "on_error": "fail-closed",
        }))?;
        let path = format!("/v1/pipelines/traces/filters/{}", self.filter);
        let (mut done, mut failed) = (0, 0);
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while Instant::now() < self.until {
            tick.tick().await;
            match client
                .call(Method::PUT, &path, "application/json", request.clone())
                .await
            {
                Ok(_) => done += 1,
                Err(e) => {
                    failed += 1;
                    eprintln!("loadgen: push failed: {e}");
                }
            }
        }
        Ok((done, failed))
    }
}

/// Waits up to `timeout` for the sink to have received `expected` spans;
/// returns the count it reached and how long that took.
fn wait_for_sink(counters: &SinkCounters, expected: u64, timeout: Duration) -> (u64, Duration) {
    let start = Instant::now();
    loop {
        let spans = counters.spans();
        if spans >= expected || start.elapsed() >= timeout {
            return (spans, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn weir_args_accept_flags() {
        let args = Args::try_parse_from([
            "loadgen",
            "--weir-arg",
            "--config",
            "--weir-arg=weir.yaml",
            "--duration",
            "0.5",
        ])
        .expect("parses");
        assert_eq!(args.weir_arg, ["--config", "weir.yaml"]);
        assert_eq!(args.duration, Duration::from_millis(500));
    }

    #[test]
    fn the_collector_is_a_proxy_in_two_setups() {
        for (value, kind, mode) in [
            ("otelcol", ProxyKind::Otelcol, "otelcol"),
            ("otelcol-tuned", ProxyKind::OtelcolTuned, "otelcol-tuned"),
            (
                "otelcol-redaction",
                ProxyKind::OtelcolRedaction,
                "otelcol-redaction",
            ),
        ] {
            let args = Args::try_parse_from([
                "loadgen",
                "--proxy",
                value,
                "--otelcol-bin",
                "/opt/otelcol-weir",
                "--upstream-compression",
                "zstd",
            ])
            .expect("parses");
            assert_eq!(args.proxy, kind);
            assert_eq!(args.proxy_mode(), mode);
            assert_eq!(
                args.otelcol_bin.as_deref(),
                Some(std::path::Path::new("/opt/otelcol-weir"))
            );
        }
    }
}
