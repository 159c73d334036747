//! TLS, mTLS, client authentication and tenants over real sockets: the OpenTelemetry SDK's exporters
//! (tonic with TLS, reqwest with rustls) send to weir's receivers; clients without a certificate, with
//! an untrusted one or with a wrong token are refused; the tenant a token maps to picks the route;
//! weir forwards to `https://` upstreams (another weir, with mTLS) and rotates its certificate under
//! load without failing a request. Every certificate and key is made by the test (`weir_tls::test_pki`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use weir::Signal;
use weir_tls::rustls;
use weir_tls::test_pki::{Ca, replace};

use crate::harness::*;

/// A CA in a temporary directory, and the certificates it signed there.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

/// A certificate and key on disk.
#[derive(Clone)]
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(name);
        replace(&dir.path().join("ca.pem"), &ca.pem());
        Self { dir, ca }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    fn server(&self, stem: &str, cn: &str) -> Pair {
        self.pair(stem, &["localhost", "127.0.0.1"], &[], cn)
    }

    /// A client certificate whose identity is the URI `uri`.
    fn client(&self, stem: &str, uri: &str) -> Pair {
        self.pair(stem, &["client.test"], &[uri], "test client")
    }

    fn pair(&self, stem: &str, names: &[&str], uris: &[&str], cn: &str) -> Pair {
        let (cert, key) = self.ca.leaf(names, uris, cn).write(self.path(), stem);
        Pair { cert, key }
    }

    /// A rustls client trusting this CA, presenting `identity` if given: built with rustls alone, not
    /// with weir's code.
    fn rustls_client(&self, identity: Option<&Pair>, alpn: &[&[u8]]) -> rustls::ClientConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(self.roots());
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(p) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(&p.cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(&p.key).unwrap(),
                )
                .unwrap(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// This CA as the only root.
    fn roots(&self) -> rustls::RootCertStore {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.ca_path()).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        roots
    }

    /// The TLS settings of an HTTP/1.1 client trusting this CA, presenting `identity` if given.
    fn https(&self, identity: Option<&Pair>) -> rustls::ClientConfig {
        self.rustls_client(identity, &[b"http/1.1"])
    }

    /// tonic's TLS settings trusting this CA, presenting `identity` if given.
    fn tonic(&self, identity: Option<&Pair>) -> tonic::transport::ClientTlsConfig {
        let ca = std::fs::read(self.ca_path()).unwrap();
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca))
            .domain_name("localhost");
        if let Some(p) = identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                std::fs::read(&p.cert).unwrap(),
                std::fs::read(&p.key).unwrap(),
            ));
        }
        tls
    }
}

/// A blocking reqwest client over `tls`. Made and dropped on a thread outside the runtime: a blocking
/// client must not be dropped in async code.
fn reqwest_client(tls: rustls::ClientConfig) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Sends `n` spans with the SDK's gRPC exporter (tonic, TLS) to `endpoint`; the export's result.
fn sdk_grpc(
    runtime: tokio::runtime::Handle,
    endpoint: String,
    tls: tonic::transport::ClientTlsConfig,
    n: usize,
) -> Result<(), String> {
    // tonic's channel lives on the test's runtime.
    let _guard = runtime.enter();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_tls_config(tls)
        .build()
        .map_err(|e| e.to_string())?;
    sdk_send(exporter, n)
}

/// Sends `n` spans with the SDK's HTTP exporter over `client` to `endpoint`, with `headers`.
fn sdk_http(
    endpoint: String,
    client: reqwest::blocking::Client,
    headers: &[(&str, &str)],
    n: usize,
) -> Result<(), String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_headers(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    sdk_send(exporter, n)
}

/// Ends `n` spans on a provider with one batch exporter and flushes them: the flush's result says
/// whether the export succeeded.
fn sdk_send(exporter: opentelemetry_otlp::SpanExporter, n: usize) -> Result<(), String> {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("tls-e2e");
    for i in 0..n {
        tracer.in_span(format!("op {i}"), |_| {});
    }
    let flushed = provider.force_flush().map_err(|e| e.to_string());
    let _ = provider.shutdown();
    flushed
}

/// Runs `f` on a thread of its own (the SDK's exporters and reqwest's blocking client block).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("the thread panicked")
}

/// A raw unary gRPC export over TLS (`tls`): its result, whether the handshake or the call failed.
async fn grpc_tls(
    port: u16,
    tls: tonic::transport::ClientTlsConfig,
    body: Vec<u8>,
) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    export_on(channel, tonic::Request::new(bytes::Bytes::from(body)))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// One raw unary trace export of `req` on `channel`.
async fn export_on(
    channel: tonic::transport::Channel,
    req: tonic::Request<bytes::Bytes>,
) -> Result<(), tonic::Status> {
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(Signal::Traces.grpc_path());
    client.unary(req, path, RawCodec::new()).await.map(|_| ())
}

fn trace_request() -> Vec<u8> {
    let p = traces_of(vec![opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "raw".into(),
        ..Default::default()
    }]);
    let weir::Payload::Traces(t) = p else {
        unreachable!()
    };
    prost::Message::encode_to_vec(&t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_serve_otlp_over_tls_and_mtls_and_refuse_whom_they_must() {
    let pki = Pki::new("weir e2e CA");
    let other = Pki::new("someone else's CA");
    let server = pki.server("server", "weir");
    let team_b = pki.client("team-b", "spiffe://test/team-b");
    let team_c = pki.client("team-c", "spiffe://test/team-c");
    let intruder = other.client("intruder", "spiffe://test/team-b");
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
receivers:
  otlp:
    grpc:
      endpoint: 127.0.0.1:0
      tls: {{ cert: "{cert}", key: "{key}", client_ca: "{ca}" }}
    http:
      endpoint: 127.0.0.1:0
      tls: {{ cert: "{cert}", key: "{key}", client_ca: "{ca}", client_auth: optional, min_version: "1.3" }}
      auth:
        tokens: [{{ token: alpha-token, tenant: team-a }}]
        identities: [{{ identity: "spiffe://test/team-b", tenant: team-b }}]
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
"#,
        cert = path(&server.cert),
        key = path(&server.key),
        ca = path(&pki.ca_path()),
    ));
    let grpc = format!("https://localhost:{}", weir.grpc.port());
    let https = format!("https://localhost:{}/v1/traces", weir.http.port());

    // mTLS with the SDK's gRPC exporter, and TLS plus a token with its HTTP exporter.
    let (g, tls, rt) = (
        grpc.clone(),
        pki.tonic(Some(&team_b)),
        tokio::runtime::Handle::current(),
    );
    blocking(move || sdk_grpc(rt, g, tls, 2)).await.unwrap();
    let (h, tls) = (https.clone(), pki.https(None));
    blocking(move || {
        sdk_http(
            h,
            reqwest_client(tls),
            &[("authorization", "Bearer alpha-token")],
            3,
        )
    })
    .await
    .unwrap();
    // Over HTTP a known certificate stands for a token.
    let (h, tls) = (https.clone(), pki.https(Some(&team_b)));
    blocking(move || sdk_http(h, reqwest_client(tls), &[], 1))
        .await
        .unwrap();
    upstream.wait_for_items(6).await;

    // gRPC requires a certificate, from this CA.
    let port = weir.grpc.port();
    let no_cert = grpc_tls(port, pki.tonic(None), trace_request()).await;
    assert!(no_cert.is_err(), "a client without a certificate got in");
    let mut untrusted = pki.tonic(None);
    untrusted = untrusted.identity(tonic::transport::Identity::from_pem(
        std::fs::read(&intruder.cert).unwrap(),
        std::fs::read(&intruder.key).unwrap(),
    ));
    let untrusted = grpc_tls(port, untrusted, trace_request()).await;
    assert!(untrusted.is_err(), "a certificate of another CA got in");
    // tonic may try more than once; each try is a failed handshake.
    let failures = r#"weir_tls_handshake_failures_total{listener="otlp-grpc"}"#;
    let before = weir.wait_for_metric_at_least(failures, 2.0).await;
    // A plaintext client on the TLS port is a failed handshake too, not a crash.
    let plain = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        export_on(
            channel,
            tonic::Request::new(bytes::Bytes::from(trace_request())),
        )
        .await
        .map_err(|s| s.to_string())
    };
    assert!(plain.await.is_err(), "plaintext was answered on a TLS port");
    weir.wait_for_metric_at_least(failures, before + 1.0).await;

    // HTTP: a wrong token, none, and a certificate no tenant has are 401, before anything is read.
    let refusals = blocking({
        let (anonymous, unknown) = (pki.https(None), pki.https(Some(&team_c)));
        let https = https.clone();
        move || {
            let (anonymous, unknown) = (reqwest_client(anonymous), reqwest_client(unknown));
            let send = |client: &reqwest::blocking::Client, token: Option<&str>| {
                let mut req = client
                    .post(&https)
                    .header("content-type", "application/json")
                    .body(r#"{"resourceSpans":[]}"#);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().unwrap();
                let status = resp.status().as_u16();
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_string());
                let body: serde_json::Value = resp.json().unwrap();
                (status, challenge, body["code"].as_i64())
            };
            [
                send(&anonymous, Some("alpha-tokeN")),
                send(&anonymous, None),
                send(&unknown, None),
                send(&unknown, Some("alpha-token")),
            ]
        }
    })
    .await;
    let unauthorized = (401, Some("Bearer".to_string()), Some(16));
    assert_eq!(refusals[0], unauthorized, "wrong token");
    assert_eq!(refusals[1], unauthorized, "no credential");
    assert_eq!(refusals[2], unauthorized, "a certificate no tenant has");
    assert_eq!(refusals[3].0, 200, "the token decides: {:?}", refusals[3]);
    weir.wait_for_metric(
        r#"weir_refused_requests_total{signal="traces",transport="http",reason="unauthenticated"}"#,
        3.0,
    )
    .await;
    // TLS 1.2 is below this listener's minimum.
    let tls12 = blocking({
        let https = https.clone();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
        move || {
            reqwest_client(config)
                .post(&https)
                .bearer_auth("alpha-token")
                .body("{}")
                .send()
                .map(|r| r.status().as_u16())
        }
    })
    .await;
    assert!(tls12.is_err(), "a TLS 1.2 client got an answer: {tls12:?}");
    assert_eq!(upstream.items(), 6, "nothing refused reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_reaches_the_router_filter_and_picks_the_upstream() {
    let (a, a_url) = Recorder::grpc().await;
    let (b, b_url) = Recorder::grpc().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# tenant token\nteam-b bravo-token\n").unwrap();
    let weir = Weir::with_config(&format!(
        r#"
receivers:
  otlp:
    grpc:
      endpoint: 127.0.0.1:0
      auth:
        tokens: [{{ token: alpha-token, tenant: team-a }}]
    http:
      endpoint: 127.0.0.1:0
      auth:
        tokens: [{{ token: alpha-token, tenant: team-a }}]
        token_file: "{tokens}"
state_dir: "{state}"
exporters:
  a: {{ otlp: {{ endpoint: "{a_url}", tenant_header: X-Scope-OrgID }} }}
  # Through the disk: the tenant is kept in the queue's records.
  b: {{ otlp: {{ endpoint: "{b_url}", tenant_header: X-Scope-OrgID }}, queue: {{ durable: true }} }}
pipelines:
  traces:
    exporters: [a, b]
    filters:
      - name: by-tenant
        module: "{router}"
        config: {{ routes: [{{ from: tenant, exact: team-a, exporters: [a] }}], default: [b] }}
"#,
        tokens = path(&tokens),
        state = path(&dir.path().join("state")),
        router = crate::filters::wasm("router"),
    ));
    let send = |token: &'static str| {
        let url = weir.http_url(Signal::Traces);
        async move {
            post(
                &url,
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {token}")),
                    // A client cannot name its tenant: only its credential does.
                    ("x-scope-orgid", "team-a"),
                ],
                example("trace.json"),
            )
            .await
            .0
        }
    };
    assert_eq!(send("alpha-token").await, 200);
    let spans = a.wait_for_items(1).await;
    assert_eq!(b.items(), 0, "team-a's spans went to a only");
    // The tenant goes upstream from the credential, not from the client's own header.
    assert_eq!(a.headers()[0]["x-scope-orgid"], "team-a");
    assert_eq!(
        send("bravo-token").await,
        200,
        "a token from the token file"
    );
    b.wait_for_items(spans.iter().map(weir::Payload::item_count).sum())
        .await;
    assert_eq!(b.headers()[0]["x-scope-orgid"], "team-b");
    assert_eq!(a.received().len(), 1, "team-b's spans did not go to a");

    // The token file is re-read when it changes: bravo's token is revoked, charlie's is added.
    std::fs::write(&tokens, "team-b charlie-token\n").unwrap();
    weir.wait_for_metric(
        r#"weir_tls_reloads_total{name="otlp-http token_file",result="ok"}"#,
        1.0,
    )
    .await;
    assert_eq!(send("bravo-token").await, 401);
    assert_eq!(send("charlie-token").await, 200);

    // gRPC: the token in the metadata; a wrong one is UNAUTHENTICATED and goes nowhere.
    let grpc = |token: &'static str| {
        let url = weir.grpc_url();
        async move {
            let channel = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut req = tonic::Request::new(bytes::Bytes::from(trace_request()));
            req.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            export_on(channel, req).await
        }
    };
    let a_before = a.items();
    grpc("alpha-token").await.unwrap();
    a.wait_for_items(a_before + 1).await;
    let refused = grpc("bravo-token").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    weir.wait_for_metric(
        r#"weir_refused_requests_total{signal="traces",transport="grpc",reason="unauthenticated"}"#,
        1.0,
    )
    .await;
    assert_eq!(a.items(), a_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_forwards_to_https_upstreams_with_mtls_and_a_server_name() {
    let pki = Pki::new("upstream CA");
    // The upstream's certificate names neither localhost nor 127.0.0.1: the exporter must say which
    // name to expect.
    let upstream_cert = pki.pair("upstream", &["upstream.weir.test"], &[], "upstream");
    let edge = pki.client("edge", "spiffe://test/edge");
    let (recorder, url) = Recorder::grpc().await;
    let upstream = Weir::with_config(&format!(
        r#"
receivers:
  otlp:
    grpc:
      endpoint: 127.0.0.1:0
      tls: {{ cert: "{cert}", key: "{key}", client_ca: "{ca}" }}
    http:
      endpoint: 127.0.0.1:0
      tls: {{ cert: "{cert}", key: "{key}", client_ca: "{ca}" }}
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
"#,
        cert = path(&upstream_cert.cert),
        key = path(&upstream_cert.key),
        ca = path(&pki.ca_path()),
    ));
    let tls = format!(
        r#"{{ ca: "{}", cert: "{}", key: "{}", server_name: upstream.weir.test }}"#,
        path(&pki.ca_path()),
        path(&edge.cert),
        path(&edge.key)
    );
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  over-grpc: {{ otlp: {{ endpoint: "https://127.0.0.1:{g}", protocol: grpc, tls: {tls} }} }}
  over-http: {{ otlp: {{ endpoint: "https://127.0.0.1:{h}", protocol: http, tls: {tls} }} }}
"#,
        g = upstream.grpc.port(),
        h = upstream.http.port(),
    ));
    let (status, _, _) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 200, "both upstreams acknowledged over mTLS");
    let per_copy = weir::Payload::item_count(&traces_payload(&example("trace.json")));
    recorder.wait_for_items(2 * per_copy).await;
    assert_eq!(
        upstream
            .metric(r#"weir_tls_handshake_failures_total{listener="otlp-grpc"}"#)
            .await,
        0.0
    );
}

fn traces_payload(json: &[u8]) -> weir::Payload {
    let req: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
        serde_json::from_slice(json).unwrap();
    weir::Payload::Traces(req)
}

/// The names (SANs) of the certificate a fresh TLS connection to `port` is served.
async fn served_names(pki: &Pki, port: u16) -> Vec<String> {
    let config = Arc::new(pki.rustls_client(None, &[b"http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = weir_tls::tokio_rustls::TlsConnector::from(config)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    weir_tls::ClientIdentity::from_der(&leaf).unwrap().names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_failing_a_request() {
    let pki = Pki::new("rotation CA");
    let server = pki.pair(
        "server",
        &["localhost", "127.0.0.1", "before.weir.test"],
        &[],
        "weir",
    );
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
receivers:
  otlp:
    http:
      endpoint: 127.0.0.1:0
      tls: {{ cert: "{cert}", key: "{key}" }}
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
"#,
        cert = path(&server.cert),
        key = path(&server.key),
    ));
    let port = weir.http.port();
    assert!(
        served_names(&pki, port)
            .await
            .contains(&"before.weir.test".to_string())
    );

    // Clients send without pause, some on one kept-alive connection, some on a new connection per
    // request, while the certificate is replaced under them.
    let https = format!("https://localhost:{port}/v1/traces");
    let (sent, failed, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut clients = Vec::new();
    for fresh_connections in [false, true, false, true] {
        let (https, sent, failed, stop) =
            (https.clone(), sent.clone(), failed.clone(), stop.clone());
        let config = pki.https(None);
        clients.push(std::thread::spawn(move || {
            let kept = reqwest_client(config.clone());
            // Bounded: at most 3000 requests a client.
            for _ in 0..3000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let client = if fresh_connections {
                    reqwest::blocking::Client::builder()
                        .tls_backend_preconfigured(config.clone())
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap()
                } else {
                    kept.clone()
                };
                let ok = client
                    .post(&https)
                    .header("content-type", "application/json")
                    .body(r#"{"resourceSpans":[]}"#)
                    .send()
                    .map(|r| r.status().as_u16() == 200)
                    .unwrap_or(false);
                if ok {
                    sent.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let wait_for_sent = |n: usize| {
        let sent = sent.clone();
        async move {
            for _ in 0..1000 {
                if sent.load(Ordering::SeqCst) >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!(
                "only {} requests were answered",
                sent.load(Ordering::SeqCst)
            );
        }
    };
    wait_for_sent(40).await;
    // A new key and certificate, each written by a rename (as a Kubernetes secret update swaps files).
    let rotated = pki
        .ca
        .leaf(&["localhost", "127.0.0.1", "after.weir.test"], &[], "weir");
    replace(&server.key, &rotated.key_pem);
    replace(&server.cert, &rotated.cert_pem);
    weir.wait_for_metric(
        r#"weir_tls_reloads_total{name="otlp-http",result="ok"}"#,
        1.0,
    )
    .await;
    let before = sent.load(Ordering::SeqCst);
    wait_for_sent(before + 40).await;
    // And on demand through the admin API, with the token weir made at start.
    let token = weir::admin::token::discover(weir.admin.port()).expect("weir published its token");
    let (status, _, body) = post(
        &format!("http://{}/v1/tls/reload", weir.admin),
        &[("authorization", &format!("Bearer {token}"))],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let reports: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reports["reloaded"][0]["name"], "otlp-http");
    assert_eq!(reports["reloaded"][0]["reloaded"], true);
    let before = sent.load(Ordering::SeqCst);
    wait_for_sent(before + 40).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "a request failed during rotation"
    );
    assert!(
        served_names(&pki, port)
            .await
            .contains(&"after.weir.test".to_string())
    );
    assert_eq!(upstream.calls(), 0, "empty requests never go upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_over_mtls_takes_a_known_certificate_as_a_credential() {
    let pki = Pki::new("admin CA");
    let server = pki.server("admin", "weir admin");
    let ops = pki.client("ops", "spiffe://test/ops");
    let dev = pki.client("dev", "spiffe://test/dev");
    let weir = Weir::with_config(&format!(
        r#"
admin:
  endpoint: 127.0.0.1:0
  token: admin-secret
  tls: {{ cert: "{cert}", key: "{key}", client_ca: "{ca}", client_auth: optional }}
  client_identities: ["spiffe://test/ops"]
"#,
        cert = path(&server.cert),
        key = path(&server.key),
        ca = path(&pki.ca_path()),
    ));
    let base = format!("https://localhost:{}", weir.admin.port());
    assert_eq!(
        weir::admin::token::discover(weir.admin.port()),
        None,
        "a configured token is not published"
    );
    let token = "admin-secret".to_string();
    let (ops_tls, dev_tls) = (ops.clone(), dev.clone());
    let (ops, dev, anonymous) = (
        pki.https(Some(&ops)),
        pki.https(Some(&dev)),
        pki.https(None),
    );
    let statuses = blocking(move || {
        let (ops, dev, anonymous) = (
            reqwest_client(ops),
            reqwest_client(dev),
            reqwest_client(anonymous),
        );
        let reload = |c: &reqwest::blocking::Client, token: Option<&str>| {
            let mut r = c.post(format!("{base}/v1/tls/reload"));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().unwrap().status().as_u16()
        };
        let metrics = anonymous
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .status()
            .as_u16();
        [
            reload(&ops, None),
            reload(&dev, None),
            reload(&anonymous, None),
            reload(&anonymous, Some(&token)),
            metrics,
        ]
    })
    .await;
    assert_eq!(statuses, [200, 401, 401, 200, 200]);

    // The CLI over HTTPS: a change with the ops certificate and no token goes through; with dev's it
    // is refused.
    let cli = |pair: &Pair| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["filter", "push", "tag", &crate::filters::wasm("noop")])
            .args([
                "--admin",
                &format!("https://localhost:{}", weir.admin.port()),
            ])
            .args(["--admin-ca", &path(&pki.ca_path())])
            .args([
                "--admin-cert",
                &path(&pair.cert),
                "--admin-key",
                &path(&pair.key),
            ])
            .env_remove("WEIR_TOKEN")
            .output()
            .unwrap()
    };
    let out = ok(cli(&ops_tls));
    assert!(out.contains("tag"), "{out}");
    let refused = cli(&dev_tls);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(
        weir.logged(|l| l.contains("weir::audit")
            && l.contains("tls-reload")
            && l.contains(r#""auth":"mtls""#)),
        "the change through mTLS is audited"
    );
}
