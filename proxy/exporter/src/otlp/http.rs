//! The OTLP/HTTP upstream client (protobuf): hyper's pooled client with `TCP_NODELAY`, posting to
//! `{endpoint}/v1/{signal}` (`/v1development/profiles` for profiles), the body compressed (gzip or zstd) once per upstream request.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::OtlpExporterConfig;
use super::connect::Connector;
use super::metrics::{Answer, OtlpMetrics};
use super::upstream::Upstream;
use crate::body::{Chunks, Prepared};
use crate::kind::BuildContext;
use weir_core::ExportError;
use weir_core::{PartialSuccess, Signal};
use weir_wire::response::ExportResponse;

/// Largest upstream response weir reads.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// An OTLP/HTTP exporter.
#[derive(Debug)]
pub struct HttpExporter {
    client: Client<Connector, Chunks>,
    base: String,
    /// The configured headers and the OTLP/HTTP ones.
    headers: HeaderMap,
    upstream: Upstream,
    name: String,
    metrics: OtlpMetrics,
}

impl HttpExporter {
    /// Builds the client.
    pub fn new(
        name: &str,
        config: &OtlpExporterConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Self, String> {
        let uri = config.uri()?;
        let upstream = Upstream::new(config)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(Connector::new(name, config, false, ctx.reloader)?);
        let mut headers = upstream.headers.clone();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        if let Some((e, _)) = upstream.compression {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(e.as_str()),
            );
        }
        Ok(Self {
            client,
            base: uri.to_string().trim_end_matches('/').to_string(),
            headers,
            upstream,
            name: name.to_string(),
            metrics: OtlpMetrics::of(ctx.metrics),
        })
    }

    /// One attempt.
    async fn send(
        &self,
        signal: Signal,
        tenant: Option<&str>,
        body: &Prepared,
        left: Duration,
    ) -> Result<PartialSuccess, ExportError> {
        let timeout = self.upstream.timeout.min(left);
        let mut req = Request::post(format!("{}{}", self.base, signal.http_path()))
            .body(body.body())
            .map_err(|e| ExportError::unavailable(format!("bad request: {e}")))?;
        *req.headers_mut() = self.upstream.headers_for(&self.headers, tenant);
        let answer = Answer::new();
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ExportError::unavailable(format!("upstream unreachable: {e}")))?;
            let status = resp.status();
            answer.set(i32::from(status.as_u16()));
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                let r: ExportResponse = prost::Message::decode(body).unwrap_or_default();
                Ok(r.into())
            } else {
                Err(ExportError::from_http(
                    status,
                    retry_after,
                    &error_detail(status, &body),
                ))
            }
        };
        let result = match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(ExportError::unavailable(format!(
                "no answer within {timeout:?}"
            ))),
            Ok(r) => r,
        };
        answer.count(&self.metrics, &self.name, "http");
        result
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The message of a `google.rpc.Status` body, or the body as text.
fn error_detail(status: StatusCode, body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    if let Ok(s) = <tonic_types::Status as prost::Message>::decode(body)
        && !s.message.is_empty()
    {
        return s.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let cut: String = text.chars().take(256).collect();
    if cut.is_empty() {
        status.to_string()
    } else {
        cut
    }
}

impl crate::kind::Export for HttpExporter {
    fn compression(&self) -> Option<(weir_wire::codec::Encoding, i32)> {
        self.upstream.compression
    }

    fn tenant_header(&self) -> Option<&::http::HeaderName> {
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

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn error_detail_reads_rpc_status_or_text() {
        let s = tonic_types::Status {
            code: 3,
            message: "bad span".into(),
            details: vec![],
        };
        let body = prost::Message::encode_to_vec(&s);
        assert_eq!(error_detail(StatusCode::BAD_REQUEST, &body), "bad span");
        assert_eq!(error_detail(StatusCode::BAD_REQUEST, b"nope\n"), "nope");
    }
}
