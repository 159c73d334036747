//! Test harness: the real `weir` binary on ephemeral ports, a recording OTLP upstream (gRPC and
//! HTTP) whose answers a test can script, and small raw clients.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use weir::{Payload, Signal};
use weir_wire::response::{ExportPartialSuccess, ExportResponse};

/// Makes ring rustls's process-wide default: the SDK's HTTP exporter builds a reqwest client with
/// rustls but no provider of its own (the tests build reqwest without aws-lc-rs).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = weir_tls::rustls::crypto::ring::default_provider().install_default();
    });
}

/// A running weir binary. Killed on drop.
pub struct Weir {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Weir {
    /// `weir run` forwarding to `upstream` (grpc://... or http://...), ephemeral ports.
    pub fn start(upstream: &str) -> Weir {
        Self::start_with(&["--upstream", upstream], None)
    }

    /// `weir run` with only the flags (no upstream: the debug exporter).
    pub fn start_args(args: &[&str]) -> Weir {
        Self::start_with(args, None)
    }

    /// `weir run --config PATH` for a file of the repository, with extra environment variables.
    pub fn with_config_file(path: &str, envs: &[(&str, String)]) -> Weir {
        Self::spawn(&["--config", path], None, envs, None)
    }

    /// Like [`Weir::with_config`], with every file weir writes limited to `blocks` × 512 bytes
    /// (`ulimit -f`, SIGXFSZ ignored): writes past it fail the way they do on a full disk.
    pub fn with_config_and_file_limit(yaml: &str, blocks: u64) -> Weir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, yaml).unwrap();
        let path = path.to_str().unwrap().to_string();
        Self::spawn(&["--config", &path], Some(dir), &[], Some(blocks))
    }

    /// `weir run --config FILE` with `yaml` (receivers and admin on ephemeral ports unless set).
    pub fn with_config(yaml: &str) -> Weir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, yaml).unwrap();
        let path = path.to_str().unwrap().to_string();
        Self::start_with(&["--config", &path], Some(dir))
    }

    fn start_with(extra: &[&str], dir: Option<tempfile::TempDir>) -> Weir {
        Self::spawn(extra, dir, &[], None)
    }

    fn spawn(
        extra: &[&str],
        dir: Option<tempfile::TempDir>,
        envs: &[(&str, String)],
        file_blocks: Option<u64>,
    ) -> Weir {
        install_crypto_provider();
        let bin = env!("CARGO_BIN_EXE_weir");
        let mut cmd = match file_blocks {
            None => Command::new(bin),
            Some(blocks) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    r#"trap '' XFSZ; ulimit -f "$1"; shift; exec "$@""#,
                    "sh",
                    &blocks.to_string(),
                    bin,
                ]);
                c
            }
        };
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.args([
            "run",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
        ])
        .args(["--admin", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn weir");
        let stderr = child.stderr.take().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let f = &v["fields"];
                    if f["message"] == "listening" {
                        let _ = tx.send((
                            f["listener"].as_str().unwrap_or("").to_string(),
                            f["addr"].as_str().unwrap_or("").parse::<SocketAddr>().ok(),
                        ));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (mut grpc, mut http, mut admin) = (None, None, None);
        // Generous: a Python filter (CPython inside) compiles at startup, slowly on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(120);
        while grpc.is_none() || http.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((l, a)) => match l.as_str() {
                    "otlp-grpc" => grpc = a,
                    "otlp-http" => http = a,
                    "admin" => admin = a,
                    _ => {}
                },
                Err(_) => panic!("weir did not start: {:?}", logs.lock().unwrap()),
            }
        }
        Weir {
            child,
            grpc: grpc.unwrap(),
            http: http.unwrap(),
            admin: admin.unwrap(),
            logs,
            stdout,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn http_url(&self, signal: Signal) -> String {
        format!("http://{}{}", self.http, signal.http_path())
    }

    /// Kills weir with SIGKILL (no chance to flush or clean up) and waits for it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends `signal` (`TERM`, `INT`) without waiting.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for weir to exit (bounded: 30 s) and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "weir did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "weir did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of one Prometheus sample, 0 when absent.
    /// Waits until metric `name_and_labels` reads `want` (bounded: 500 reads, 20 ms apart).
    pub async fn wait_for_metric(&self, name_and_labels: &str, want: f64) {
        for _ in 0..500 {
            if self.metric(name_and_labels).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{name_and_labels} never reached {want} (now {})",
            self.metric(name_and_labels).await
        );
    }

    /// Waits until metric `name_and_labels` reads at least `want` (bounded as
    /// [`Weir::wait_for_metric`]), for counts a client library's retries decide; returns the value.
    pub async fn wait_for_metric_at_least(&self, name_and_labels: &str, want: f64) -> f64 {
        for _ in 0..500 {
            let now = self.metric(name_and_labels).await;
            if now >= want {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{name_and_labels} never reached {want} (now {})",
            self.metric(name_and_labels).await
        );
    }

    /// Where listener `name` (`otlp/internal-http`) bound, as weir logged it. Every receiver's
    /// listener is announced before the admin listener, which `Weir` waits for.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.logs.lock().unwrap().iter().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let f = &v["fields"];
            (f["message"] == "listening" && f["listener"] == name)
                .then(|| f["addr"].as_str()?.parse().ok())?
        })
    }

    /// The private compile cache weir announced (a weir without a `state_dir`).
    pub fn private_cache(&self) -> Option<std::path::PathBuf> {
        self.logs.lock().unwrap().iter().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let f = &v["fields"];
            f["message"]
                .as_str()?
                .contains("filters compile into a private cache")
                .then(|| f["dir"].as_str().map(std::path::PathBuf::from))?
        })
    }

    /// Whether a line weir logged so far satisfies `line`.
    pub fn logged(&self, line: impl Fn(&str) -> bool) -> bool {
        self.logs.lock().unwrap().iter().any(|l| line(l))
    }

    /// Calls filter `name` of `signal` has started, as the admin API lists them.
    pub async fn filter_calls(&self, signal: Signal, name: &str) -> u64 {
        let (status, _, body) = get(&format!("http://{}/v1/filters", self.admin)).await;
        assert_eq!(status, 200);
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        list["filters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["pipeline"] == signal.as_str() && f["name"] == name)
            .and_then(|f| f["stats"]["calls"].as_u64())
            .unwrap_or(0)
    }

    /// Waits until filter `name` of `signal` has started `calls` calls (bounded as [`wait_for`]).
    pub async fn wait_for_filter_calls(&self, signal: Signal, name: &str, calls: u64) {
        wait_for(
            &format!("filter {signal}/{name} starting {calls} calls"),
            || async move { (self.filter_calls(signal, name).await >= calls).then_some(()) },
        )
        .await
    }

    pub async fn metric(&self, name_and_labels: &str) -> f64 {
        let (status, _, body) = get(&format!("http://{}/metrics", self.admin)).await;
        assert_eq!(status, 200);
        let text = String::from_utf8(body.to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killed, weir could not remove its private compile cache either.
        if let Some(dir) = self.private_cache() {
            let _ = std::fs::remove_dir_all(dir);
        }
        // Killed, weir could not remove the admin token file it published.
        let _ = std::fs::remove_file(weir::admin::token::discovery_path(self.admin.port()));
    }
}

/// How the recording upstream answers the next export calls.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A gRPC error status.
    Status(tonic::Code, &'static str),
    /// Success after a delay.
    Slow(Duration),
    /// Success with a partial-success rejection of n items.
    Partial(i64, &'static str),
}

/// One accepted upstream request as it arrived: its protobuf bytes (decompressed) and how it was
/// compressed on the wire.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub signal: Signal,
    pub bytes: Bytes,
    pub encoding: Option<String>,
}

#[derive(Default)]
struct RecorderState {
    received: Vec<Payload>,
    raw: Vec<RawRequest>,
    headers: Vec<http::HeaderMap>,
    script: VecDeque<Answer>,
    always: Option<Answer>,
    calls: usize,
}

/// An OTLP upstream recording what reaches it, over gRPC and HTTP.
#[derive(Clone, Default)]
pub struct Recorder {
    state: Arc<Mutex<RecorderState>>,
}

impl Recorder {
    /// Starts a gRPC upstream on 127.0.0.1 (gzip and zstd accepted); returns it and its `grpc://` URL.
    /// It reads each message as its raw bytes ([`Recorder::raw`]) before decoding it.
    pub async fn grpc() -> (Recorder, String) {
        let r = Recorder::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut router = axum::Router::new();
        for signal in Signal::ALL {
            router = router.route_service(
                signal.grpc_path(),
                RecorderService {
                    recorder: r.clone(),
                    signal,
                },
            );
        }
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::from(router))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        (r, format!("grpc://{addr}"))
    }

    /// Starts an OTLP/HTTP (protobuf, gzip) upstream; returns it and its base URL.
    pub async fn http() -> (Recorder, String) {
        use axum::routing::post;
        let r = Recorder::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut app = axum::Router::new();
        for signal in Signal::ALL {
            let rec = r.clone();
            app = app.route(
                signal.http_path(),
                post(move |headers: http::HeaderMap, body: Bytes| {
                    let rec = rec.clone();
                    async move { rec.http_export(signal, headers, body).await }
                }),
            );
        }
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, format!("http://{addr}"))
    }

    async fn http_export(
        &self,
        signal: Signal,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let encoding = headers
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        let raw = match encoding.as_deref() {
            Some("gzip") => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                    .unwrap();
                out
            }
            Some("zstd") => zstd::decode_all(&body[..]).unwrap(),
            None => body.to_vec(),
            Some(other) => panic!("unexpected content-encoding {other}"),
        };
        assert_eq!(headers["content-type"], "application/x-protobuf");
        let raw = Bytes::from(raw);
        let payload = Payload::decode_protobuf(signal, &raw).unwrap();
        match self.answer(headers, signal, raw, encoding, payload).await {
            Ok(_) => (http::StatusCode::OK, Vec::new()).into_response(),
            Err(status) => {
                let code = match status.code() {
                    tonic::Code::Unavailable => 503,
                    tonic::Code::InvalidArgument => 400,
                    _ => 500,
                };
                let body = prost::Message::encode_to_vec(&tonic_types::Status {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                    details: vec![],
                });
                (
                    http::StatusCode::from_u16(code).unwrap(),
                    [("retry-after", "0")],
                    body,
                )
                    .into_response()
            }
        }
    }

    /// The next `n` calls get `answer`.
    pub fn script(&self, n: usize, answer: Answer) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..n {
            s.script.push_back(answer.clone());
        }
    }

    /// Every call (after the script) gets `answer`.
    pub fn always(&self, answer: Option<Answer>) {
        self.state.lock().unwrap().always = answer;
    }

    /// Every accepted request's bytes, as they arrived (decompressed).
    pub fn raw(&self) -> Vec<RawRequest> {
        self.state.lock().unwrap().raw.clone()
    }

    /// Everything accepted so far.
    pub fn received(&self) -> Vec<Payload> {
        self.state.lock().unwrap().received.clone()
    }

    /// The headers (gRPC metadata) of every call.
    pub fn headers(&self) -> Vec<http::HeaderMap> {
        self.state.lock().unwrap().headers.clone()
    }

    /// Export calls so far, answered or not.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// Items accepted so far.
    pub fn items(&self) -> usize {
        self.received().iter().map(Payload::item_count).sum()
    }

    /// Waits until `items` items arrived (or panics after 10 s).
    pub async fn wait_for_items(&self, items: usize) -> Vec<Payload> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.items() < items {
            assert!(
                Instant::now() < deadline,
                "only {} of {items} items arrived",
                self.items()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }

    async fn answer(
        &self,
        headers: http::HeaderMap,
        signal: Signal,
        bytes: Bytes,
        encoding: Option<String>,
        payload: Payload,
    ) -> Result<i64, tonic::Status> {
        let answer = {
            let mut s = self.state.lock().unwrap();
            s.calls += 1;
            s.headers.push(headers);
            s.script.pop_front().or_else(|| s.always.clone())
        };
        let mut rejected = 0;
        match answer {
            Some(Answer::Status(code, msg)) => return Err(tonic::Status::new(code, msg)),
            Some(Answer::Slow(d)) => tokio::time::sleep(d).await,
            Some(Answer::Partial(n, _)) => rejected = n,
            None => {}
        }
        let mut s = self.state.lock().unwrap();
        s.received.push(payload);
        s.raw.push(RawRequest {
            signal,
            bytes,
            encoding,
        });
        Ok(rejected)
    }
}

/// The recorder's gRPC `Export` method for one signal: tonic reads the message as raw bytes
/// ([`RawCodec`]), gzip or zstd.
#[derive(Clone)]
struct RecorderService {
    recorder: Recorder,
    signal: Signal,
}

impl tower::Service<http::Request<axum::body::Body>> for RecorderService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<axum::body::Body>) -> Self::Future {
        let handler = RecorderExport(self.recorder.clone(), self.signal);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(weir_core::grpc_codec::RawCodec::<
                ExportResponse,
                Bytes,
            >::new())
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
            .max_decoding_message_size(usize::MAX);
            Ok(grpc.unary(handler, req).await)
        })
    }
}

struct RecorderExport(Recorder, Signal);

impl tonic::server::UnaryService<Bytes> for RecorderExport {
    type Response = ExportResponse;
    type Future =
        futures::future::BoxFuture<'static, Result<tonic::Response<ExportResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let (recorder, signal) = (self.0.clone(), self.1);
        Box::pin(async move {
            let headers = request.metadata().clone().into_headers();
            let encoding = headers
                .get("grpc-encoding")
                .map(|v| v.to_str().unwrap().to_string());
            let bytes = request.into_inner();
            let payload = Payload::decode_protobuf(signal, &bytes)
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            let rejected = recorder
                .answer(headers, signal, bytes, encoding, payload)
                .await?;
            // Every signal's response has this one shape.
            Ok(tonic::Response::new(ExportResponse {
                partial_success: (rejected > 0).then(|| ExportPartialSuccess {
                    rejected,
                    error_message: "some items were too old".into(),
                }),
            }))
        })
    }
}

/// A raw HTTP/1.1 POST; returns status, headers and body.
/// Polls `probe` every 20 ms, at most 500 times, until it yields a value; panics naming `what`
/// otherwise. For events weir shows only through its metrics, API or log.
pub async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    for _ in 0..500 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}

/// A raw HTTP GET.
pub async fn get(url: &str) -> (u16, http::HeaderMap, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The stdout of a command that must have succeeded (else both of its outputs, in the panic).
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/data/otlp-examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The gRPC codec sending raw bytes and returning raw bytes: lets a test send anything.
pub type RawCodec = weir_core::grpc_codec::RawCodec<Bytes, Bytes>;

/// Sends raw bytes as an OTLP gRPC export of `signal`, optionally gzip-compressed by tonic.
pub async fn grpc_raw(
    weir: &Weir,
    signal: Signal,
    body: Vec<u8>,
    gzip: bool,
) -> Result<Bytes, tonic::Status> {
    grpc_raw_to(&weir.grpc_url(), signal, body, gzip).await
}

/// [`grpc_raw`] to a gRPC URL, for tasks that do not hold the [`Weir`].
pub async fn grpc_raw_to(
    url: &str,
    signal: Signal,
    body: Vec<u8>,
    gzip: bool,
) -> Result<Bytes, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    if gzip {
        client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(signal.grpc_path());
    client
        .unary(
            tonic::Request::new(Bytes::from(body)),
            path,
            RawCodec::new(),
        )
        .await
        .map(|r| r.into_inner())
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The attribute `key` as text (a string, or an integer in decimal); `None` when absent or of another type.
pub fn attr_text(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match attrs
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A traces request of one resource and one scope holding `spans`.
pub fn traces_of(spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) -> Payload {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    Payload::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}
