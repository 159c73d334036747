//! The reference peers that `tests/peers/build.sh` builds (the OpenTelemetry Collector, Apache Kafka,
//! NATS), started on 127.0.0.1 ephemeral ports with a bounded wait for their ready line, and killed
//! when dropped.
//!
//! A peer this machine has not built skips the test that needs it, with the command that builds it;
//! with `WEIR_REQUIRE_PEERS=1` (`.ci/run` sets it) a missing peer fails the test instead.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The peers' cache, where `tests/peers/build.sh` puts them.
fn cache() -> PathBuf {
    match std::env::var_os("WEIR_PEERS_CACHE") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/weir/peers")
        }
    }
}

/// `KEY=VALUE` lines of the cache's `env` file, overridden by the process environment.
fn peers_env() -> HashMap<String, String> {
    let mut env: HashMap<String, String> = std::fs::read_to_string(cache().join("env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    for key in ["WEIR_OTELCOL", "WEIR_KAFKA_LIBS", "WEIR_NATS_SERVER"] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.into(), v);
        }
    }
    env
}

/// The path the peers' env names for `key`, when it exists. Missing: `None` (the test skips, and says
/// how to build the peer), or a panic when `WEIR_REQUIRE_PEERS` is set.
pub fn peer(key: &str, which: &str) -> Option<PathBuf> {
    let found = peers_env()
        .get(key)
        .map(PathBuf::from)
        .filter(|p| p.exists());
    if found.is_none() {
        let needs = match which {
            "collector" => "Go 1.26 or newer on PATH",
            "kafka" => "Java 17 and Maven: apt-get install -y openjdk-17-jdk-headless maven",
            _ => "apt-get install -y nats-server",
        };
        let message = format!(
            "{key} is not built on this machine: run `tests/peers/build.sh {which}` (it needs {needs}; see tests/peers/README.md)"
        );
        if std::env::var_os("WEIR_REQUIRE_PEERS").is_some() {
            panic!("{message}; WEIR_REQUIRE_PEERS is set, so the test cannot skip");
        }
        eprintln!("skipped: {message}");
    }
    found
}

/// A port nothing listens on now (bound, then closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer process, its output kept, killed when dropped.
pub struct Process {
    name: &'static str,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

impl Process {
    fn spawn(name: &'static str, mut cmd: Command) -> Process {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let readers: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in readers {
            let (output, tx) = (output.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Process {
            name,
            child,
            output,
            lines,
        }
    }

    /// Waits (at most `limit`) for a line of output that contains `ready`; panics with the output when
    /// the process exits first or the time runs out.
    fn wait_for_line(&mut self, ready: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) if line.contains(ready) => return,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!(
                            "{} exited ({status}) before it was ready:\n{}",
                            self.name,
                            self.output()
                        );
                    }
                    if left.is_zero() {
                        panic!(
                            "{} was not ready within {limit:?}:\n{}",
                            self.name,
                            self.output()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "{} closed its output ({status:?}) before it was ready:\n{}",
                        self.name,
                        self.output()
                    );
                }
            }
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OpenTelemetry Collector (`otelcol-weir`) running a configuration the test wrote.
pub struct Collector {
    pub process: Process,
    /// A folder for the configuration and for what the test has it write (file exporters).
    pub dir: tempfile::TempDir,
}

/// What every test Collector's `service` has: no telemetry listener of its own (it would bind :8888).
pub const COLLECTOR_TELEMETRY: &str =
    "telemetry: { metrics: { level: none }, logs: { level: info } }";

impl Collector {
    /// Starts the Collector with `config(dir)` (the YAML, given the folder for its files), profiles on;
    /// `None` when the Collector is not built here (the test skips).
    pub fn start(config: impl FnOnce(&Path) -> String) -> Option<Collector> {
        let bin = peer("WEIR_OTELCOL", "collector")?;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.yaml");
        std::fs::write(&path, config(dir.path())).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config={}", path.display()))
            .arg("--feature-gates=service.profilesSupport");
        let mut process = Process::spawn("the Collector", cmd);
        process.wait_for_line(
            "Everything is ready. Begin running and processing data.",
            Duration::from_secs(60),
        );
        Some(Collector { process, dir })
    }

    /// A file in the Collector's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A single-node Apache Kafka broker (KRaft, broker and controller in one), with its own data folder.
pub struct Kafka {
    pub process: Process,
    /// `127.0.0.1:PORT` of its PLAINTEXT listener.
    pub bootstrap: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Kafka {
    /// Formats a fresh data folder and starts the broker; `None` when Kafka is not built here.
    pub fn start() -> Option<Kafka> {
        let libs = peer("WEIR_KAFKA_LIBS", "kafka")?;
        let home = libs.parent().unwrap().to_path_buf();
        let dir = tempfile::tempdir().unwrap();
        let (broker, controller) = (free_port(), free_port());
        let template = std::fs::read_to_string(home.join("server.properties.template")).unwrap();
        let properties = dir.path().join("server.properties");
        std::fs::write(
            &properties,
            template
                .replace("@BROKER_PORT@", &broker.to_string())
                .replace("@CONTROLLER_PORT@", &controller.to_string())
                .replace("@LOG_DIR@", &dir.path().join("data").display().to_string()),
        )
        .unwrap();
        // `quiet`: warnings only (the broker must log at info: its ready line is one).
        let java = |main: &str, quiet: bool| {
            let mut cmd = Command::new("java");
            if quiet {
                cmd.arg("-Dkafka.log.level=WARN");
            }
            cmd.args([
                "-Xms64m",
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                home.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg(main);
            cmd
        };
        let mut format = java("kafka.tools.StorageTool", true);
        // A cluster id is 16 bytes, base64url ("weir-interop-id" and a zero byte).
        format
            .args([
                "format",
                "--standalone",
                "-t",
                "d2Vpci1pbnRlcm9wLWlkAA",
                "-c",
            ])
            .arg(&properties);
        let out = format.output().expect("running Kafka's StorageTool");
        assert!(out.status.success(), "formatting Kafka's storage: {out:?}");
        let mut server = java("kafka.Kafka", false);
        server.arg(&properties);
        let mut process = Process::spawn("Kafka", server);
        process.wait_for_line("Kafka Server started", Duration::from_secs(120));
        Some(Kafka {
            process,
            bootstrap: SocketAddr::from(([127, 0, 0, 1], broker)),
            _dir: dir,
        })
    }
}

/// A NATS server with JetStream, its store in a folder of its own.
pub struct Nats {
    pub process: Process,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Its monitoring endpoint (`/healthz`, `/jsz`).
    pub monitor: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// Starts `nats-server -js`; `None` when it is not installed here.
    pub fn start() -> Option<Nats> {
        let bin = peer("WEIR_NATS_SERVER", "nats")?;
        let dir = tempfile::tempdir().unwrap();
        let (port, monitor) = (free_port(), free_port());
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor.to_string(), "-sd"])
            .arg(dir.path());
        let mut process = Process::spawn("nats-server", cmd);
        process.wait_for_line("Server is ready", Duration::from_secs(30));
        Some(Nats {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            monitor: SocketAddr::from(([127, 0, 0, 1], monitor)),
            _dir: dir,
        })
    }
}
