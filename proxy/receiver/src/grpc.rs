//! The OTLP/gRPC receiver: tonic services for traces, metrics and logs.
//!
//! tonic decodes the message (gzip accepted) within `limits.max_decompressed_bytes`, on the wire and
//! after decompression. [`EdgeLayer`] rewrites the two statuses tonic itself produces that the OTLP
//! specification wants otherwise: an over-size message (tonic: OUT_OF_RANGE) becomes RESOURCE_EXHAUSTED
//! without RetryInfo, not retryable; an undecodable message or gzip stream (tonic: INTERNAL) becomes
//! INVALID_ARGUMENT. When weir or an upstream is full the answer is UNAVAILABLE with RetryInfo.
//!
//! [`EdgeLayer`] also admits a request before tonic reads its message (with a provisional memory charge,
//! the recent mean message size), so that a full weir refuses without reading, inflating and decoding
//! what it refuses; under overload that work was most of weir's CPU, and the decoded messages pushed
//! resident memory past the limit before the handler could charge them. The handler finds the
//! admission in the request's extensions and charges the decoded message's real size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Admitted, Ingest};
use weir_core::telemetry::{RefuseReason, Transport};
use weir_core::{PartialSuccess, Payload, Refusal, Signal};

/// The three OTLP gRPC services over one [`Ingest`].
#[derive(Debug, Clone)]
pub struct GrpcReceiver {
    ingest: Arc<Ingest>,
}

impl GrpcReceiver {
    /// A receiver feeding `ingest`.
    pub fn new(ingest: Arc<Ingest>) -> Self {
        Self { ingest }
    }

    /// The tonic routes of the three services, with compression and size limits set.
    pub fn routes(self) -> tonic::service::Routes {
        let max = self.ingest.limits().max_decompressed_bytes;
        let traces = TraceServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max);
        let metrics = MetricsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max);
        let logs = LogsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max);
        tonic::service::Routes::new(traces)
            .add_service(metrics)
            .add_service(logs)
    }

    async fn export(
        &self,
        signal: Signal,
        req: Request<Payload>,
    ) -> Result<PartialSuccess, Status> {
        let started = Instant::now();
        let ingest = &self.ingest;
        let _in_flight = ingest.metrics().in_flight(Transport::Grpc);
        let result = async {
            let retry_after = ingest.limits().retry_after;
            // Admitted by the EdgeLayer before tonic read the message; admitted here when the
            // services run without it (in tests).
            let admitted = req
                .extensions()
                .get::<AdmittedSlot>()
                .and_then(|slot| slot.0.lock().unwrap_or_else(|e| e.into_inner()).take());
            let mut admitted = match admitted {
                Some(a) => a,
                None => ingest
                    .admit(signal, Transport::Grpc, ingest.expected_grpc_cost())
                    .map_err(|busy| unavailable(busy.message(), retry_after))?,
            };
            ingest
                .charge_grpc_message(&mut admitted, signal, req.get_ref())
                .map_err(|busy| unavailable(busy.message(), retry_after))?;
            let peer = req.remote_addr();
            let timeout = req
                .metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout);
            let (metadata, _, payload) = req.into_parts();
            ingest
                .process(
                    admitted,
                    payload,
                    Transport::Grpc,
                    peer,
                    metadata.into_headers(),
                    timeout,
                )
                .await
                .map_err(|r| refusal_status(ingest, &r))
        }
        .await;
        ingest
            .metrics()
            .request_finished(signal, Transport::Grpc, started.elapsed());
        result
    }
}

fn unavailable(message: &str, retry_after: Duration) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

fn refusal_status(ingest: &Ingest, refusal: &Refusal) -> Status {
    let message = refusal.to_string();
    if refusal.retryable() {
        return unavailable(&message, ingest.retry_after(Some(refusal)));
    }
    let code = match refusal {
        Refusal::NoPipeline(_) => Code::Unimplemented,
        Refusal::Export { source, .. } => source.grpc_code,
        Refusal::Chain(_) | Refusal::Timeout | Refusal::QueueFull(_) => Code::InvalidArgument,
    };
    Status::new(code, message)
}

/// Parses the `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let p = self
            .export(Signal::Traces, request.map(Payload::Traces))
            .await?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (!p.is_empty()).then_some(ExportTracePartialSuccess {
                rejected_spans: p.rejected,
                error_message: p.message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let p = self
            .export(Signal::Metrics, request.map(Payload::Metrics))
            .await?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (!p.is_empty()).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: p.rejected,
                error_message: p.message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let p = self
            .export(Signal::Logs, request.map(Payload::Logs))
            .await?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (!p.is_empty()).then_some(ExportLogsPartialSuccess {
                rejected_log_records: p.rejected,
                error_message: p.message,
            }),
        }))
    }
}

/// An admission made by [`EdgeLayer`], for the handler to take.
#[derive(Clone)]
struct AdmittedSlot(Arc<std::sync::Mutex<Option<Admitted>>>);

/// The gRPC receiver's edge, around tonic (see the module docs): admits OTLP export requests before
/// tonic reads their message, and rewrites (and counts) the statuses tonic produces before a handler runs.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    ingest: Arc<Ingest>,
}

impl EdgeLayer {
    /// A layer admitting into `ingest`.
    pub fn new(ingest: Arc<Ingest>) -> Self {
        Self { ingest }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService {
            inner,
            ingest: self.ingest.clone(),
        }
    }
}

/// See [`EdgeLayer`].
#[derive(Debug, Clone)]
pub struct EdgeService<S> {
    inner: S,
    ingest: Arc<Ingest>,
}

impl<S, B> tower::Service<http::Request<B>> for EdgeService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let Some(signal) = Signal::ALL
            .into_iter()
            .find(|s| req.uri().path() == s.grpc_path())
        else {
            return Box::pin(self.inner.call(req));
        };
        let ingest = self.ingest.clone();
        match ingest.admit(signal, Transport::Grpc, ingest.expected_grpc_cost()) {
            Ok(admitted) => {
                req.extensions_mut()
                    .insert(AdmittedSlot(Arc::new(std::sync::Mutex::new(Some(
                        admitted,
                    )))));
            }
            Err(busy) => {
                // The body is never read: refusing costs no decoding.
                let status = unavailable(busy.message(), ingest.limits().retry_after);
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            // Received was counted at admission; a status tonic made is a refusal weir's handlers
            // never saw.
            if let Some(reason) = fix_status(&mut resp) {
                ingest
                    .metrics()
                    .request_refused(signal, Transport::Grpc, reason, 0);
            }
            Ok(resp)
        })
    }
}

/// The messages tonic gives its own decoding failures (percent-encoded as in `grpc-message`).
const TONIC_DECODE_FAILURES: [&str; 3] = [
    "failed%20to%20decode%20Protobuf%20message",
    "Error%20decompressing",
    "protocol%20error",
];

/// Rewrites a tonic-made status in place; returns the refusal reason when it did.
fn fix_status(resp: &mut http::Response<tonic::body::Body>) -> Option<RefuseReason> {
    let headers = resp.headers_mut();
    let code = headers.get("grpc-status").map(|v| v.as_bytes());
    let message = headers
        .get("grpc-message")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let is_decode_failure = TONIC_DECODE_FAILURES.iter().any(|p| {
        message.starts_with(p.as_bytes()) || message.starts_with(p.replace("%20", " ").as_bytes())
    });
    let (code, reason) = match code {
        // Only tonic's size checks answer OUT_OF_RANGE (uncompressed) or RESOURCE_EXHAUSTED
        // (inflated) here: weir's handlers never do.
        Some(b"11") => ("8", RefuseReason::TooLarge),
        Some(b"8") if message.starts_with(b"Error%20decompressing") => {
            ("8", RefuseReason::TooLarge)
        }
        Some(b"13") if is_decode_failure => ("3", RefuseReason::Decode),
        _ => return None,
    };
    headers.insert("grpc-status", http::HeaderValue::from_static(code));
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
    }

    fn response_with(code: &str, message: &str) -> http::Response<tonic::body::Body> {
        let mut r = http::Response::new(tonic::body::Body::empty());
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_str(code).unwrap());
        r.headers_mut().insert(
            "grpc-message",
            http::HeaderValue::from_str(message).unwrap(),
        );
        r
    }

    #[test]
    fn tonic_statuses_are_rewritten_and_others_kept() {
        let too_large = Some(RefuseReason::TooLarge);
        let cases = [
            (
                "11",
                "Error,%20decoded%20message%20length%20too%20large",
                "8",
                too_large,
            ),
            ("8", "Error%20decompressing:%20size%20limit", "8", too_large),
            (
                "13",
                "failed%20to%20decode%20Protobuf%20message:%20x",
                "3",
                Some(RefuseReason::Decode),
            ),
            // An upstream's INTERNAL passed through to the client stays INTERNAL.
            ("13", "exporter%20backend:%20upstream%20said", "13", None),
            ("14", "x", "14", None),
        ];
        for (code, message, want, reason) in cases {
            let mut r = response_with(code, message);
            assert_eq!(fix_status(&mut r), reason, "{code} {message}");
            assert_eq!(r.headers()["grpc-status"], want, "{code} {message}");
        }
    }
}
