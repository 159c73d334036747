//! The proxy child process (weir, or a peer to compare against: Rotel's `rotel-agent`, the
//! OpenTelemetry Collector): spawning it, learning its listen addresses, draining its output, and
//! stopping it.
//!
//! weir is started with every listener on port 0 and `--log-format json`; it
//! announces each bound socket with a log line whose fields are
//! `message = "listening"`, `listener = "otlp-grpc" | "otlp-http" | "admin"` and
//! `addr = "127.0.0.1:PORT"`. Both stdout and stderr are read line by line by
//! background threads for the whole life of the child, so it never blocks on a
//! full pipe; the most recent lines are kept for error messages.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How many recent output lines are kept for diagnostics.
const KEPT_LINES: usize = 200;

/// The addresses weir announced.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    /// Only known if announced before both OTLP listeners.
    pub admin: Option<SocketAddr>,
}

/// A running weir child process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct WeirProcess {
    child: Child,
    listeners: Listeners,
    log: Arc<Mutex<VecDeque<String>>>,
    exit: Option<ExitStatus>,
    /// Files the child reads (the Collector's config), removed after it.
    _scratch: Option<tempfile::TempDir>,
}

enum OutputEvent {
    Listening(String, SocketAddr),
    /// A line with the ready marker the reader was given.
    Ready,
    Closed,
}

/// The Collector's line, on stderr, once every receiver listens.
const OTELCOL_READY: &str = "Everything is ready. Begin running and processing data.";

impl WeirProcess {
    /// Spawns `bin run ...` with all listeners on port 0, forwarding to
    /// `upstream` (with `--upstream`, or, with `upstream_in_config`, through the
    /// config's `${env:WEIR_BENCH_SINK}`), and waits up to `startup_timeout` for
    /// the OTLP listeners.
    pub fn spawn(
        bin: &Path,
        upstream: SocketAddr,
        upstream_in_config: bool,
        extra_args: &[String],
        verbose: bool,
        startup_timeout: Duration,
    ) -> Result<Self> {
        let mut command = Command::new(bin);
        command
            .args([
                "run",
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
            ])
            .env("WEIR_BENCH_SINK", format!("http://{upstream}"));
        if !upstream_in_config {
            command.args(["--upstream", &format!("grpc://{upstream}")]);
        }
        let child = command
            .args(["--admin", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;

        // Replaced as soon as weir has announced its listeners.
        let unknown = SocketAddr::from(([127, 0, 0, 1], 0));
        let (mut process, rx, streams) =
            Self::attach(child, "weir", (unknown, unknown), verbose, None, None)?;
        // On error, dropping `process` stops the child.
        process.listeners = process.wait_for_listeners(&rx, streams, startup_timeout)?;
        Ok(process)
    }

    fn wait_for_listeners(
        &mut self,
        events: &mpsc::Receiver<OutputEvent>,
        mut open_streams: usize,
        timeout: Duration,
    ) -> Result<Listeners> {
        let (mut grpc, mut http, mut admin) = (None, None, None);
        let deadline = Instant::now() + timeout;
        loop {
            // weir announces its admin listener too (after the OTLP ones): wait for it, so that a
            // run can use the admin API (`--push-every`).
            if let (Some(otlp_grpc), Some(otlp_http), Some(_)) = (grpc, http, admin) {
                return Ok(Listeners {
                    otlp_grpc,
                    otlp_http,
                    admin,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "weir did not announce its otlp-grpc and otlp-http listeners within \
                     {timeout:.0?}; its output so far:\n{}",
                    self.recent_output()
                );
            }
            match events.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
                Ok(OutputEvent::Listening(name, addr)) => match name.as_str() {
                    "otlp-grpc" => grpc = Some(addr),
                    "otlp-http" => http = Some(addr),
                    "admin" => admin = Some(addr),
                    _ => {}
                },
                Ok(OutputEvent::Closed) => open_streams = open_streams.saturating_sub(1),
                Ok(OutputEvent::Ready) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open_streams = 0,
            }
            if let Some(status) = self.child.try_wait().context("polling weir")? {
                // Give the readers a moment to collect the last lines.
                thread::sleep(Duration::from_millis(100));
                self.exit = Some(status);
                bail!(
                    "weir exited during startup ({status}); its output:\n{}",
                    self.recent_output()
                );
            }
            if open_streams == 0 {
                bail!(
                    "weir closed its output without announcing its listeners; its output:\n{}",
                    self.recent_output()
                );
            }
        }
    }

    /// Spawns Rotel's `rotel-agent start` (its defaults otherwise) listening on two free loopback ports
    /// and exporting OTLP/gRPC to `upstream` with `compression` (`gzip` or `none`), and waits up to
    /// `startup_timeout` until both ports accept connections. Rotel cannot bind port 0 and announce it,
    /// so the ports are picked by binding and releasing them first.
    pub fn spawn_rotel(
        bin: &Path,
        upstream: SocketAddr,
        compression: &str,
        verbose: bool,
        startup_timeout: Duration,
    ) -> Result<Self> {
        let (grpc, http) = (free_port()?, free_port()?);
        let scratch = std::env::temp_dir().join(format!("loadgen-rotel-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).context("creating Rotel's scratch directory")?;
        let child = Command::new(bin)
            .arg("start")
            .args(["--otlp-grpc-endpoint", &grpc.to_string()])
            .args(["--otlp-http-endpoint", &http.to_string()])
            .args(["--exporter", "otlp"])
            .args(["--otlp-exporter-endpoint", &format!("http://{upstream}")])
            .args(["--otlp-exporter-compression", compression])
            .arg("--pid-file")
            .arg(scratch.join("rotel.pid"))
            .arg("--log-file")
            .arg(scratch.join("rotel.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let (mut process, _rx, _) =
            Self::attach(child, "rotel", (grpc, http), verbose, None, None)?;
        let deadline = Instant::now() + startup_timeout;
        for addr in [grpc, http] {
            loop {
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if let Some(status) = process.exited() {
                    bail!(
                        "rotel-agent exited during startup ({status}); its output:\n{}",
                        process.recent_output()
                    );
                }
                if Instant::now() >= deadline {
                    bail!(
                        "rotel-agent did not listen on {addr} within {startup_timeout:.0?}; its output:\n{}",
                        process.recent_output()
                    );
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(process)
    }

    /// Spawns the OpenTelemetry Collector (`otelcol-weir --config=FILE`) with `config` (one of
    /// `otelcol.rs`'s, whose `${env:...}` variables this sets: two free loopback ports for its OTLP
    /// receiver, `upstream` for its `otlp_grpc` exporter, `compression` of it), and the environment
    /// `env` (added to this process's, without `GOMEMLIMIT` and `GOGC` unless `env` sets them), and
    /// waits up to `startup_timeout` for its ready line. Like Rotel, it cannot announce a port 0, so the
    /// ports are picked by binding and releasing them first.
    pub fn spawn_otelcol(
        bin: &Path,
        config: &str,
        env: &[(&str, &str)],
        upstream: SocketAddr,
        compression: &str,
        verbose: bool,
        startup_timeout: Duration,
    ) -> Result<Self> {
        let (grpc, http) = (free_port()?, free_port()?);
        let scratch = tempfile::Builder::new()
            .prefix("loadgen-otelcol-")
            .tempdir()
            .context("creating the Collector's scratch directory")?;
        let config_path = scratch.path().join("otelcol.yaml");
        std::fs::write(&config_path, config).context("writing the Collector's config")?;
        let mut command = Command::new(bin);
        command
            .arg(format!("--config={}", config_path.display()))
            .env_remove("GOMEMLIMIT")
            .env_remove("GOGC")
            .env("WEIR_BENCH_OTLP_GRPC", grpc.to_string())
            .env("WEIR_BENCH_OTLP_HTTP", http.to_string())
            .env("WEIR_BENCH_SINK_ADDR", upstream.to_string())
            .env("WEIR_BENCH_COMPRESSION", compression);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let (mut process, rx, _) = Self::attach(
            child,
            "otelcol",
            (grpc, http),
            verbose,
            Some(OTELCOL_READY),
            Some(scratch),
        )?;
        let deadline = Instant::now() + startup_timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "the Collector did not log its ready line within {startup_timeout:.0?}; its output:\n{}",
                    process.recent_output()
                );
            }
            match rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
                Ok(OutputEvent::Ready) => return Ok(process),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Both streams closed: it has exited or is about to.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(50))
                }
            }
            if let Some(status) = process.exited() {
                thread::sleep(Duration::from_millis(100));
                bail!(
                    "the Collector exited during startup ({status}); its output:\n{}",
                    process.recent_output()
                );
            }
        }
    }

    /// Wraps a spawned proxy: a reader thread per output stream (named `NAME-stderr`, `NAME-stdout`)
    /// keeping its last lines and reporting `listening` lines and `ready` on the returned channel;
    /// also returns how many streams are read.
    fn attach(
        mut child: Child,
        name: &str,
        (otlp_grpc, otlp_http): (SocketAddr, SocketAddr),
        verbose: bool,
        ready: Option<&'static str>,
        scratch: Option<tempfile::TempDir>,
    ) -> Result<(Self, mpsc::Receiver<OutputEvent>, usize)> {
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT_LINES)));
        let (tx, rx) = mpsc::channel();
        let mut streams = 0;
        if let Some(stderr) = child.stderr.take() {
            let stream = format!("{name}-stderr");
            spawn_reader(
                &stream,
                stderr,
                tx.clone(),
                Arc::clone(&log),
                verbose,
                ready,
            )?;
            streams += 1;
        }
        if let Some(stdout) = child.stdout.take() {
            let stream = format!("{name}-stdout");
            spawn_reader(&stream, stdout, tx, Arc::clone(&log), verbose, None)?;
            streams += 1;
        }
        let process = Self {
            child,
            listeners: Listeners {
                otlp_grpc,
                otlp_http,
                admin: None,
            },
            log,
            exit: None,
            _scratch: scratch,
        };
        Ok((process, rx, streams))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The announced listen addresses.
    pub fn listeners(&self) -> Listeners {
        self.listeners
    }

    /// `Some(status)` if the process has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// The last lines weir wrote, newline-separated.
    pub fn recent_output(&self) -> String {
        match self.log.lock() {
            Ok(lines) if lines.is_empty() => "(nothing)".to_owned(),
            Ok(lines) => lines.iter().cloned().collect::<Vec<_>>().join("\n"),
            Err(_) => "(unavailable)".to_owned(),
        }
    }

    /// SIGKILL at once (a crash), and waits for the child to be reaped (the soak run's).
    #[allow(dead_code)]
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        self.child.kill().context("killing weir")?;
        let status = self.child.wait().context("waiting for weir")?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILLs. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped
        // yet (try_wait above returned None), so the pid cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("waiting for weir")? {
                self.exit = Some(status);
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("loadgen: weir did not exit within {grace:?} of SIGTERM; sending SIGKILL");
        self.child.kill().context("killing weir")?;
        let status = self.child.wait().context("waiting for weir")?;
        self.exit = Some(status);
        Ok(status)
    }
}

impl Drop for WeirProcess {
    fn drop(&mut self) {
        if self.exit.is_none()
            && let Err(e) = self.stop(Duration::from_secs(10))
        {
            eprintln!("loadgen: stopping weir: {e:#}");
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("picking a free port")?;
    listener.local_addr().context("picking a free port")
}

/// Reads `stream` line by line until it closes, keeping the last lines in `log`, and reports weir's
/// `listening` lines and any line containing `ready_marker` on `events`.
fn spawn_reader(
    name: &str,
    stream: impl Read + Send + 'static,
    events: mpsc::Sender<OutputEvent>,
    log: Arc<Mutex<VecDeque<String>>>,
    verbose: bool,
    ready_marker: Option<&'static str>,
) -> Result<()> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                if verbose {
                    eprintln!("[weir] {line}");
                }
                if let Some((listener, addr)) = parse_listening(&line) {
                    let _ = events.send(OutputEvent::Listening(listener, addr));
                }
                if ready_marker.is_some_and(|m| line.contains(m)) {
                    let _ = events.send(OutputEvent::Ready);
                }
                if let Ok(mut lines) = log.lock() {
                    if lines.len() == KEPT_LINES {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
            }
            let _ = events.send(OutputEvent::Closed);
        })
        .with_context(|| format!("spawning thread {name}"))?;
    Ok(())
}

/// Recognises a `listening` log line (tracing-subscriber JSON, with the event's
/// fields nested under `fields` or flattened to the top level).
fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let value: Value = serde_json::from_str(line).ok()?;
    let field = |key: &str| {
        value
            .get("fields")
            .and_then(|f| f.get(key))
            .or_else(|| value.get(key))
            .and_then(Value::as_str)
    };
    if field("message")? != "listening" {
        return None;
    }
    let listener = field("listener")?.to_owned();
    let addr = field("addr")?;
    let addr = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("grpc://"))
        .unwrap_or(addr)
        .parse()
        .ok()?;
    Some((listener, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_lines() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"listening","listener":"otlp-grpc","addr":"127.0.0.1:41234"},"target":"weir::app"}"#;
        let (name, addr) = parse_listening(line).expect("recognised");
        assert_eq!(name, "otlp-grpc");
        assert_eq!(addr, "127.0.0.1:41234".parse().expect("addr"));

        let flat = r#"{"message":"listening","listener":"admin","addr":"127.0.0.1:9"}"#;
        assert_eq!(
            parse_listening(flat).map(|(n, _)| n).as_deref(),
            Some("admin")
        );

        assert!(parse_listening("not json").is_none());
        assert!(parse_listening(r#"{"fields":{"message":"started"}}"#).is_none());
    }
}
