//! The OTLP/gRPC receiver: tonic services for traces, metrics and logs.
//!
//! tonic decodes the message (gzip accepted) within `limits.max_decompressed_bytes`, on the wire and
//! after decompression. [`StatusFixLayer`] rewrites the two statuses tonic itself produces that the OTLP
//! specification wants otherwise: an over-size message (tonic: OUT_OF_RANGE) becomes RESOURCE_EXHAUSTED
//! without RetryInfo, not retryable; an undecodable message or gzip stream (tonic: INTERNAL) becomes
//! INVALID_ARGUMENT. When weir or an upstream is full the answer is UNAVAILABLE with RetryInfo.

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

use super::Ingest;
use crate::pipeline::{PartialSuccess, Payload, Refusal, Signal};
use crate::telemetry::Transport;

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
            let _permit = ingest
                .admit(signal, Transport::Grpc)
                .map_err(|busy| unavailable(busy.message(), ingest.limits().retry_after))?;
            let peer = req.remote_addr();
            let timeout = req
                .metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout);
            ingest
                .process(req.into_inner(), Transport::Grpc, peer, timeout)
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
        Refusal::Chain(_) | Refusal::Timeout => Code::InvalidArgument,
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
            partial_success: (!p.is_empty()).then(|| ExportTracePartialSuccess {
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
            partial_success: (!p.is_empty()).then(|| ExportMetricsPartialSuccess {
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
            partial_success: (!p.is_empty()).then(|| ExportLogsPartialSuccess {
                rejected_log_records: p.rejected,
                error_message: p.message,
            }),
        }))
    }
}

/// Rewrites the statuses tonic produces before a handler runs (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusFixLayer;

impl<S> tower::Layer<S> for StatusFixLayer {
    type Service = tower::util::MapResponse<
        S,
        fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body>,
    >;

    fn layer(&self, inner: S) -> Self::Service {
        tower::util::MapResponse::new(inner, fix_status)
    }
}

/// The messages tonic gives its own decoding failures (percent-encoded as in `grpc-message`).
const TONIC_DECODE_FAILURES: [&str; 3] = [
    "failed%20to%20decode%20Protobuf%20message",
    "Error%20decompressing",
    "protocol%20error",
];

fn fix_status(mut resp: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let headers = resp.headers_mut();
    let code = headers.get("grpc-status").map(|v| v.as_bytes());
    let message = headers
        .get("grpc-message")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let replacement = match code {
        // Only tonic's size check answers OUT_OF_RANGE here: weir's handlers never do.
        Some(b"11") => Some("8"),
        Some(b"13")
            if TONIC_DECODE_FAILURES.iter().any(|p| {
                message.starts_with(p.as_bytes())
                    || message.starts_with(p.replace("%20", " ").as_bytes())
            }) =>
        {
            Some("3")
        }
        _ => None,
    };
    if let Some(r) = replacement {
        headers.insert("grpc-status", http::HeaderValue::from_static(r));
    }
    resp
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
        let fixed = fix_status(response_with(
            "11",
            "Error,%20decoded%20message%20length%20too%20large",
        ));
        assert_eq!(fixed.headers()["grpc-status"], "8");
        let fixed = fix_status(response_with(
            "13",
            "failed%20to%20decode%20Protobuf%20message:%20x",
        ));
        assert_eq!(fixed.headers()["grpc-status"], "3");
        // An upstream's INTERNAL passed through to the client stays INTERNAL.
        let kept = fix_status(response_with("13", "exporter%20backend:%20upstream%20said"));
        assert_eq!(kept.headers()["grpc-status"], "13");
        let kept = fix_status(response_with("14", "x"));
        assert_eq!(kept.headers()["grpc-status"], "14");
    }
}
