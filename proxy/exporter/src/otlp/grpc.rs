//! The OTLP/gRPC upstream client: hyper's HTTP/2 client over one lazily connected, pooled connection
//! (`TCP_NODELAY`, keep-alive pings), sending each upstream request as one gRPC message framed by hand
//! so that its body is compressed once and shared by every retry (see the crate docs for why not
//! tonic's client). The upstream's status comes from its trailers (or a trailers-only response) and is
//! read by tonic's `Status`, RetryInfo included.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tonic::{Code, Status};

use super::OtlpExporterConfig;
use super::connect::Connector;
use super::metrics::{Answer, OtlpMetrics};
use super::upstream::Upstream;
use crate::body::{Chunks, Prepared};
use crate::kind::BuildContext;
use weir_core::{ExportError, PartialSuccess, Signal};
use weir_wire::codec::{self, Encoding};
use weir_wire::response::ExportResponse;

/// Largest upstream response weir reads.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// An OTLP/gRPC exporter.
#[derive(Debug)]
pub struct GrpcExporter {
    client: Client<Connector, Chunks>,
    /// The `Export` method's URI per signal.
    uris: [Uri; Signal::ALL.len()],
    /// The configured headers and the gRPC ones.
    headers: HeaderMap,
    upstream: Upstream,
    name: String,
    metrics: OtlpMetrics,
}

impl GrpcExporter {
    /// Builds the client; the connection is made on first use and re-made after failures.
    pub fn new(
        name: &str,
        config: &OtlpExporterConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Self, String> {
        let uri = config.uri()?;
        let base = uri.to_string().trim_end_matches('/').to_string();
        let uri_of = |s: Signal| -> Result<Uri, String> {
            format!("{base}{}", s.grpc_path())
                .parse()
                .map_err(|e| format!("endpoint `{}`: {e}", config.endpoint))
        };
        let mut uris = Vec::with_capacity(Signal::ALL.len());
        for s in Signal::ALL {
            uris.push(uri_of(s)?);
        }
        let uris = <[Uri; Signal::ALL.len()]>::try_from(uris)
            .map_err(|_| "one URI per signal".to_string())?;
        let upstream = Upstream::new(config)?;
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build(Connector::new(name, config, true, ctx.reloader)?);
        let mut headers = upstream.headers.clone();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("weir/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some((e, _)) = upstream.compression {
            headers.insert("grpc-encoding", HeaderValue::from_static(e.as_str()));
        }
        Ok(Self {
            client,
            uris,
            headers,
            upstream,
            name: name.to_string(),
            metrics: OtlpMetrics::of(ctx.metrics),
        })
    }

    /// One attempt, bounded by the configured timeout and the time `left`.
    async fn send(
        &self,
        signal: Signal,
        tenant: Option<&str>,
        body: &Prepared,
        left: Duration,
    ) -> Result<PartialSuccess, ExportError> {
        let timeout = self.upstream.timeout.min(left);
        let mut req = Request::post(self.uris[signal.index()].clone())
            .body(body.grpc_message())
            .map_err(|e| ExportError::unavailable(format!("bad request: {e}")))?;
        *req.headers_mut() = self.upstream.headers_for(&self.headers, tenant);
        req.headers_mut()
            .insert("grpc-timeout", grpc_timeout(timeout));
        let answer = Answer::new();
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| {
                ExportError::unavailable(format!("upstream unreachable: {}", chain(&e)))
            })?;
            let (parts, body) = resp.into_parts();
            if parts.status != StatusCode::OK {
                answer.set(http_to_grpc(parts.status) as i32);
                return Err(ExportError::from_grpc(&Status::new(
                    http_to_grpc(parts.status),
                    format!("upstream answered HTTP {}", parts.status),
                )));
            }
            // A trailers-only response carries its status in the headers.
            if let Some(status) = Status::from_header_map(&parts.headers) {
                answer.set(status.code() as i32);
                return match status.code() {
                    Code::Ok => Ok(PartialSuccess::default()),
                    _ => Err(ExportError::from_grpc(&status)),
                };
            }
            let collected = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    ExportError::unavailable(format!("reading the upstream's response: {e}"))
                })?;
            let status = collected
                .trailers()
                .and_then(Status::from_header_map)
                .ok_or_else(|| {
                    ExportError::unavailable("the upstream's response ended without a grpc-status")
                })?;
            answer.set(status.code() as i32);
            if status.code() != Code::Ok {
                return Err(ExportError::from_grpc(&status));
            }
            let encoding = parts
                .headers
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Encoding::parse(v).ok().flatten());
            Ok(response(&collected.to_bytes(), encoding)
                .map(PartialSuccess::from)
                .unwrap_or_default())
        };
        let result = match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(ExportError::unavailable(format!(
                "no answer within {timeout:?}"
            ))),
            Ok(r) => r,
        };
        answer.count(&self.metrics, &self.name, "grpc");
        result
    }
}

/// The export response in a gRPC response body (a length-prefixed message, maybe compressed). A body
/// weir cannot read is no reason to fail a request the upstream accepted: it reads as no partial
/// success.
fn response(body: &[u8], encoding: Option<Encoding>) -> Option<ExportResponse> {
    if body.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let message = body.get(5..5 + len)?;
    let message = match (body[0], encoding) {
        (0, _) => Bytes::copy_from_slice(message),
        (_, Some(e)) => Bytes::from(codec::decompress(e, message, MAX_RESPONSE_BYTES).ok()?),
        (_, None) => return None,
    };
    prost::Message::decode(message).ok()
}

/// `grpc-timeout` in milliseconds (at most 8 digits).
fn grpc_timeout(t: Duration) -> HeaderValue {
    let ms = t.as_millis().clamp(1, 99_999_999);
    HeaderValue::from_str(&format!("{ms}m")).unwrap_or(HeaderValue::from_static("1S"))
}

/// The gRPC code of an HTTP status from something that is not a gRPC server (a proxy in between), as
/// the gRPC specification maps them.
fn http_to_grpc(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// `error: source: source...` on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl crate::kind::Export for GrpcExporter {
    fn compression(&self) -> Option<(weir_wire::codec::Encoding, i32)> {
        self.upstream.compression
    }

    fn tenant_header(&self) -> Option<&http::HeaderName> {
        self.upstream.tenant_header.as_ref()
    }

    fn attempt<'a>(
        &'a self,
        request: &'a crate::ExportRequest<'a>,
        body: &'a Prepared,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'a, Result<PartialSuccess, ExportError>> {
        Box::pin(self.send(request.signal, request.tenant, body, timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use weir_wire::response::ExportPartialSuccess;

    #[test]
    fn responses_are_read_plain_or_compressed() {
        let r = ExportResponse {
            partial_success: Some(ExportPartialSuccess {
                rejected: 3,
                error_message: "bad".into(),
            }),
        };
        let m = r.encode_to_vec();
        let mut plain = vec![0];
        plain.extend((m.len() as u32).to_be_bytes());
        plain.extend(&m);
        assert_eq!(response(&plain, None), Some(r.clone()));
        let c = codec::compress(Encoding::Gzip, 1, &[Bytes::from(m)]);
        let mut gz = vec![1];
        gz.extend((c.len() as u32).to_be_bytes());
        gz.extend(&c);
        assert_eq!(response(&gz, Some(Encoding::Gzip)), Some(r));
        assert_eq!(response(&gz, None), None);
        assert_eq!(response(b"", None), None);
    }

    #[test]
    fn statuses_of_non_grpc_answers_follow_the_grpc_mapping() {
        assert_eq!(
            http_to_grpc(StatusCode::SERVICE_UNAVAILABLE),
            Code::Unavailable
        );
        assert_eq!(http_to_grpc(StatusCode::NOT_FOUND), Code::Unimplemented);
        assert_eq!(http_to_grpc(StatusCode::IM_A_TEAPOT), Code::Unknown);
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout(Duration::ZERO), "1m");
    }
}
