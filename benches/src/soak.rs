//! The soak run (issue 13): for a bounded time, load through weir with a durable queue while the
//! upstream flaps, weir is restarted every few seconds (on the same state directory): twice with
//! SIGTERM (a clean stop that drains and records the delivery cursor), then with SIGKILL, in turn
//! (issue 20: two clean restarts and a kill lost acknowledged data), the `zone` filter is swapped through the admin API, and a hostile filter (it traps on
//! every call) is pushed and must be quarantined. Then the upstream stays up until every acknowledged
//! span has arrived, and the run reports sent, acknowledged, received, duplicates and lost.
//!
//! Every span carries a unique name, so the count is exact. Exit status 1 when an acknowledged span
//! never arrived or the hostile filter was not quarantined.
//!
//! ```text
//! cargo build --release -p weir -p weir-bench && bash filters/build.sh
//! target/release/soak --seconds 600 --weir-bin target/release/weir --report docs/soak.md
//! ```

#[path = "weir.rs"]
#[allow(dead_code)]
mod child;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use child::WeirProcess;

#[derive(Parser, Debug)]
#[command(about = "weir's soak run: load, a flapping upstream, kill -9 restarts, filter swaps")]
struct Args {
    /// How long the chaos lasts (then the backlog drains).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The weir binary.
    #[arg(long, default_value = "target/debug/weir")]
    weir_bin: PathBuf,
    /// Where the built filters are (`filters/build.sh`).
    #[arg(long, default_value = "target/wasm")]
    wasm_dir: PathBuf,
    /// Restart weir this often (ms): SIGTERM, SIGTERM, SIGKILL, in turn.
    #[arg(long, default_value_t = 5000)]
    kill_every_ms: u64,
    /// Toggle the upstream between up and refusing (UNAVAILABLE) this often (ms).
    #[arg(long, default_value_t = 1500)]
    flap_every_ms: u64,
    /// Push a new version of the `zone` filter this often (ms).
    #[arg(long, default_value_t = 2000)]
    swap_every_ms: u64,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Spans per request.
    #[arg(long, default_value_t = 20)]
    spans_per_request: usize,
    /// How long the backlog may take to drain once the chaos stops (s).
    #[arg(long, default_value_t = 120)]
    drain_seconds: u64,
    /// Append the report, as Markdown, to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print weir's output.
    #[arg(long)]
    verbose: bool,
}

/// The upstream: counts every span name it accepts; while down it refuses with UNAVAILABLE.
#[derive(Default)]
struct Upstream {
    up: AtomicBool,
    received: Mutex<HashMap<String, u32>>,
    refused: AtomicU64,
}

struct SinkService(Arc<Upstream>);

#[tonic::async_trait]
impl TraceService for SinkService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        if !self.0.up.load(Ordering::Relaxed) {
            self.0.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Status::unavailable("soak: the upstream is down"));
        }
        let mut received = self.0.received.lock().unwrap_or_else(|p| p.into_inner());
        for r in &request.get_ref().resource_spans {
            for s in &r.scope_spans {
                for span in &s.spans {
                    *received.entry(span.name.clone()).or_default() += 1;
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// What the senders saw.
#[derive(Default)]
struct Sent {
    spans: AtomicU64,
    refused_requests: AtomicU64,
    acked: Mutex<HashSet<String>>,
}

/// The address senders send to; `None` while weir restarts.
type Target = Arc<Mutex<Option<SocketAddr>>>;

fn request(names: &[String]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: names
                    .iter()
                    .map(|n| Span {
                        name: n.clone(),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One sender: requests of unique span names, one at a time, until `stop`; reconnects across
/// restarts.
async fn sender(id: usize, spans: usize, target: Target, sent: Arc<Sent>, stop: Arc<AtomicBool>) {
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(addr) = *target.lock().unwrap_or_else(|p| p.into_inner()) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid endpoint")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10));
        let Ok(channel) = endpoint.connect().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut client = TraceServiceClient::new(channel);
        while !stop.load(Ordering::Relaxed) {
            seq += 1;
            let names: Vec<String> = (0..spans).map(|i| format!("s{id}-{seq}-{i}")).collect();
            let mut req = Request::new(request(&names));
            req.metadata_mut()
                .insert("x-soak", tonic::metadata::MetadataValue::from_static("1"));
            sent.spans.fetch_add(spans as u64, Ordering::Relaxed);
            match client.export(req).await {
                Ok(_) => sent
                    .acked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(names),
                Err(status) => {
                    sent.refused_requests.fetch_add(1, Ordering::Relaxed);
                    if status.code() == tonic::Code::Unavailable
                        || status.code() == tonic::Code::Unknown
                    {
                        // A refusal (the queue full) or weir gone: reconnect after a moment.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        break;
                    }
                }
            }
        }
    }
}

fn config(state: &Path) -> String {
    format!(
        r#"
state_dir: "{}"
exporters:
  up:
    otlp:
      endpoint: "${{env:WEIR_BENCH_SINK}}"
    retry: {{ initial_interval: 20ms, max_interval: 200ms }}
    queue: {{ durable: true }}
pipelines:
  traces:
    exporters: [up]
"#,
        state.display()
    )
}

/// Runs `weir filter ARGS --admin URL`, bounded to 30 s; true on success.
fn filter_cli(bin: &Path, admin: SocketAddr, args: &[&str]) -> bool {
    let Ok(mut child) = Command::new(bin)
        .arg("filter")
        .args(args)
        .args(["--admin", &format!("http://{admin}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// One sample of weir's `/metrics`, 0 when absent or unreadable.
async fn metric(admin: SocketAddr, name_and_labels: &str) -> f64 {
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(admin),
    )
    .await
    else {
        return 0.0;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    if stream.write_all(ask.as_bytes()).await.is_err() {
        return 0.0;
    }
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text));
    if !matches!(read.await, Ok(Ok(_))) {
        return 0.0;
    }
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Chaos {
    kills: u64,
    terms: u64,
    flaps: u64,
    swaps_ok: u64,
    swaps_failed: u64,
    quarantined: bool,
}

fn spawn_weir(bin: &Path, sink: SocketAddr, config: &Path, verbose: bool) -> Result<WeirProcess> {
    WeirProcess::spawn(
        bin,
        sink,
        true,
        &["--config".to_string(), config.display().to_string()],
        verbose,
        Duration::from_secs(60),
    )
    .context("starting weir")
}

async fn run(args: Args) -> Result<bool> {
    let wasm = |name: &str| args.wasm_dir.join(format!("{name}.wasm"));
    for m in ["set-attribute", "hostile"] {
        if !wasm(m).exists() {
            bail!(
                "{} is missing: build the filters (bash filters/build.sh)",
                wasm(m).display()
            );
        }
    }
    let upstream = Arc::new(Upstream::default());
    upstream.up.store(true, Ordering::Relaxed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink = listener.local_addr()?;
    let service = TraceServiceServer::new(SinkService(upstream.clone()))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    let state = tempfile::tempdir()?;
    let config_path = state.path().join("weir.yaml");
    std::fs::write(&config_path, config(&state.path().join("state")))?;
    let mut weir = spawn_weir(&args.weir_bin, sink, &config_path, args.verbose)?;
    let target: Target = Arc::new(Mutex::new(Some(weir.listeners().otlp_grpc)));
    let sent = Arc::new(Sent::default());
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..args.senders)
        .map(|id| {
            tokio::spawn(sender(
                id,
                args.spans_per_request,
                target.clone(),
                sent.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    let mut chaos = Chaos {
        kills: 0,
        terms: 0,
        flaps: 0,
        swaps_ok: 0,
        swaps_failed: 0,
        quarantined: false,
    };
    let (mut next_kill, mut next_flap, mut next_swap) = (
        started + Duration::from_millis(args.kill_every_ms),
        started + Duration::from_millis(args.flap_every_ms),
        started + Duration::from_millis(args.swap_every_ms),
    );
    let mut hostile_pushed = false;
    let bin = args.weir_bin.clone();
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_flap {
            let was = upstream.up.fetch_xor(true, Ordering::Relaxed);
            chaos.flaps += 1;
            eprintln!("soak: upstream {}", if was { "down" } else { "up" });
            next_flap = now + Duration::from_millis(args.flap_every_ms);
        }
        if now >= next_kill {
            *target.lock().unwrap_or_else(|p| p.into_inner()) = None;
            if (chaos.kills + chaos.terms) % 3 == 2 {
                weir.kill9()?;
                chaos.kills += 1;
                eprintln!("soak: weir killed ({})", chaos.kills);
            } else {
                // A clean stop: drains and exits 0, or it is no clean stop.
                let status = weir.stop(Duration::from_secs(60))?;
                if !status.success() {
                    bail!("weir did not stop cleanly on SIGTERM: {status}");
                }
                chaos.terms += 1;
                eprintln!("soak: weir stopped with SIGTERM ({})", chaos.terms);
            }
            weir = spawn_weir(&bin, sink, &config_path, args.verbose)?;
            *target.lock().unwrap_or_else(|p| p.into_inner()) = Some(weir.listeners().otlp_grpc);
            next_kill = Instant::now() + Duration::from_millis(args.kill_every_ms);
            // Right after the first restart: the hostile filter, with a whole period to be caught.
            if !hostile_pushed {
                hostile_pushed = true;
                let admin = weir.listeners().admin.context("no admin listener")?;
                let hostile = wasm("hostile");
                let ok = tokio::task::spawn_blocking({
                    let bin = bin.clone();
                    move || {
                        filter_cli(
                            &bin,
                            admin,
                            &[
                                "push",
                                "hostile",
                                &hostile.display().to_string(),
                                "--config",
                                r#"{"mode":"trap","only_with_header":"x-soak"}"#,
                            ],
                        )
                    }
                })
                .await?;
                if !ok {
                    bail!("pushing the hostile filter failed");
                }
                let q = r#"weir_filter_quarantines_total{signal="traces",filter="hostile"}"#;
                for _ in 0..100 {
                    if metric(admin, q).await >= 1.0 {
                        chaos.quarantined = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                eprintln!("soak: hostile filter quarantined: {}", chaos.quarantined);
            }
        }
        if now >= next_swap {
            let admin = weir.listeners().admin.context("no admin listener")?;
            let module = wasm("set-attribute").display().to_string();
            let value = format!(r#"{{"key":"soak.zone","value":"v{}"}}"#, chaos.swaps_ok);
            let ok = tokio::task::spawn_blocking({
                let bin = bin.clone();
                move || filter_cli(&bin, admin, &["push", "zone", &module, "--config", &value])
            })
            .await?;
            if ok {
                chaos.swaps_ok += 1;
            } else {
                chaos.swaps_failed += 1;
            }
            next_swap = Instant::now() + Duration::from_millis(args.swap_every_ms);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }
    upstream.up.store(true, Ordering::Relaxed);
    let chaos_secs = started.elapsed().as_secs_f64();

    // Drain: every acknowledged span must arrive.
    let acked = sent.acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let drain_until = Instant::now() + Duration::from_secs(args.drain_seconds);
    let missing = loop {
        let missing = {
            let received = upstream.received.lock().unwrap_or_else(|p| p.into_inner());
            acked.iter().filter(|n| !received.contains_key(*n)).count()
        };
        if missing == 0 || Instant::now() >= drain_until {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drain_secs = started.elapsed().as_secs_f64() - chaos_secs;
    let (received, duplicates) = {
        let r = upstream.received.lock().unwrap_or_else(|p| p.into_inner());
        let extra: u64 = r.values().map(|&n| u64::from(n.saturating_sub(1))).sum();
        (r.len(), extra)
    };
    let _ = weir.stop(Duration::from_secs(30));

    let sent_spans = sent.spans.load(Ordering::Relaxed);
    let mut report = String::new();
    writeln!(
        report,
        "| seconds | kills (SIGTERM) | upstream flaps | filter swaps (failed) | hostile quarantined | spans sent | acknowledged | received | duplicates | lost | drain |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    writeln!(
        report,
        "| {:.0} | {} ({}) | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {:.1} s |",
        chaos_secs,
        chaos.kills,
        chaos.terms,
        chaos.flaps,
        chaos.swaps_ok,
        chaos.swaps_failed,
        if chaos.quarantined { "yes" } else { "no" },
        sent_spans,
        acked.len(),
        received,
        duplicates,
        missing,
        drain_secs,
    )?;
    println!("{report}");
    println!(
        "requests refused or failed (not acknowledged, the client's to retry): {}; upstream refusals while down: {}",
        sent.refused_requests.load(Ordering::Relaxed),
        upstream.refused.load(Ordering::Relaxed)
    );
    if let Some(path) = &args.report {
        let mut text = std::fs::read_to_string(path).unwrap_or_default();
        text.push_str(&report);
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if acked.is_empty() {
        eprintln!("soak: nothing was acknowledged: the run says nothing");
        return Ok(false);
    }
    Ok(missing == 0 && chaos.quarantined)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: FAILED (see the report)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: {e:#}");
            ExitCode::FAILURE
        }
    }
}
