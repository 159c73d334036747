//! Senders that post one pre-encoded `ExportTraceServiceRequest` body and classify
//! the outcome.
//!
//! * gRPC: a tonic client with weir's raw codec, which writes the already-encoded
//!   bytes as the message (no protobuf encoding per request) and decodes the
//!   export response (the shape every signal's shares) to read `partial_success`.
//! * HTTP: a hyper 1 HTTP/1.1 client posting the same bytes to `/v1/traces` with
//!   `content-type: application/x-protobuf`.

use anyhow::{Context, Result};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::uri::PathAndQuery;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint};
use weir_core::grpc_codec::RawCodec;
use weir_wire::response::ExportResponse;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Why a request failed: `kind` groups failures in the report (`grpc Unavailable`,
/// `http 503`, `timeout`, ...), `message` is a sample detail.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

impl Failure {
    fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// A retryable refusal (gRPC UNAVAILABLE or RESOURCE_EXHAUSTED, HTTP 429 or 503): weir protecting
    /// itself, as it should under overload, rather than failing.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "grpc Unavailable" | "grpc ResourceExhausted" | "http 429" | "http 503"
        )
    }

    /// A request that did not complete within the request timeout.
    pub fn timeout(after: Duration) -> Self {
        Self::new("timeout", format!("no response within {after:?}"))
    }
}

/// Sends one request body; cheap to clone (clones share connections).
#[derive(Clone)]
pub enum Sender {
    Grpc(Grpc<Channel>),
    Http(Box<HttpSender>),
}

/// The OTLP/HTTP client and its `/v1/traces` URI.
#[derive(Clone)]
pub struct HttpSender {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
}

impl Sender {
    /// Opens `connections` HTTP/2 connections to an OTLP/gRPC server and returns
    /// one sender per connection.
    pub async fn grpc(
        addr: SocketAddr,
        connections: usize,
        timeout: Duration,
        compression: Option<tonic::codec::CompressionEncoding>,
    ) -> Result<Vec<Sender>> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .context("building the gRPC endpoint")?
            .tcp_nodelay(true)
            .connect_timeout(timeout);
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let channel = tokio::time::timeout(timeout, endpoint.connect())
                .await
                .with_context(|| format!("connecting to {addr}: timed out after {timeout:?}"))?
                .with_context(|| format!("connecting to {addr}"))?;
            let mut grpc = Grpc::new(channel);
            if let Some(c) = compression {
                grpc = grpc.send_compressed(c);
            }
            senders.push(Sender::Grpc(grpc));
        }
        Ok(senders)
    }

    /// An HTTP/1.1 sender for `http://addr/v1/traces`; the client's pool opens
    /// as many keep-alive connections as there are concurrent requests.
    pub fn http(addr: SocketAddr, pool_size: usize) -> Result<Sender> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool_size)
            .build(connector);
        let uri = format!("http://{addr}/v1/traces")
            .parse()
            .context("building the OTLP/HTTP URI")?;
        Ok(Sender::Http(Box::new(HttpSender { client, uri })))
    }

    /// Sends `body`; on success returns the number of spans the server reported
    /// as rejected (`partial_success.rejected_spans`).
    pub async fn send(&mut self, body: Bytes) -> Result<u64, Failure> {
        match self {
            Sender::Grpc(grpc) => {
                grpc.ready()
                    .await
                    .map_err(|e| Failure::new("transport", error_chain(&e)))?;
                let response = grpc
                    .unary(
                        tonic::Request::new(body),
                        PathAndQuery::from_static(EXPORT_PATH),
                        RawCodec::<Bytes, ExportResponse>::new(),
                    )
                    .await
                    .map_err(|status| {
                        Failure::new(
                            format!("grpc {:?}", status.code()),
                            status.message().to_owned(),
                        )
                    })?;
                Ok(rejected_spans(response.get_ref()))
            }
            Sender::Http(http) => {
                let HttpSender { client, uri } = &**http;
                let request = Request::post(uri.clone())
                    .header(CONTENT_TYPE, "application/x-protobuf")
                    .body(Full::new(body))
                    .map_err(|e| Failure::new("request", e.to_string()))?;
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| Failure::new("transport", error_chain(&e)))?;
                let status = response.status();
                let is_protobuf = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("protobuf"));
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| Failure::new("transport", error_chain(&e)))?
                    .to_bytes();
                if !status.is_success() {
                    let detail = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
                    return Err(Failure::new(
                        format!("http {}", status.as_u16()),
                        detail.into_owned(),
                    ));
                }
                // A body that is not a protobuf response carries no partial success.
                Ok(if is_protobuf {
                    ExportResponse::decode(bytes)
                        .map(|r| rejected_spans(&r))
                        .unwrap_or(0)
                } else {
                    0
                })
            }
        }
    }
}

fn rejected_spans(response: &ExportResponse) -> u64 {
    response
        .partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected).unwrap_or(0))
}

/// `error: source: source...` on one line.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
