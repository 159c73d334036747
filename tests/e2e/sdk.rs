//! The OpenTelemetry SDK's own OTLP exporters (gRPC via tonic, HTTP protobuf via hyper, gzip) send
//! traces, metrics and logs through weir, and the upstream receives what the SDK produced.

use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_sdk::Resource;
use weir::Payload;

use crate::harness::*;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Via {
    Grpc,
    Http,
}

fn resource() -> Resource {
    Resource::builder()
        .with_service_name("weir-e2e")
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .build()
}

/// Emits 3 spans, one counter and 2 log records with the SDK; returns the span (trace id, span id).
pub(crate) fn emit_with_sdk(
    via: Via,
    weir_grpc: String,
    weir_http: String,
) -> Vec<([u8; 16], [u8; 8])> {
    let spans = match via {
        Via::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&weir_grpc)
            .with_compression(Compression::Gzip)
            .build(),
        Via::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_compression(Compression::Gzip)
            .with_endpoint(format!("{weir_http}/v1/traces"))
            .build(),
    }
    .unwrap();
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(spans)
        .with_resource(resource())
        .build();
    let tracer = tracer_provider.tracer("e2e");
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut span = tracer.start(format!("GET /items/{i}"));
        span.set_attribute(KeyValue::new("http.response.status_code", 200 + i as i64));
        span.set_attribute(KeyValue::new("user.tier", "gold"));
        let sc = span.span_context().clone();
        ids.push((sc.trace_id().to_bytes(), sc.span_id().to_bytes()));
        span.end();
    }
    tracer_provider.shutdown().unwrap();

    let metrics = match via {
        Via::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(&weir_grpc)
            .build(),
        Via::Http => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{weir_http}/v1/metrics"))
            .build(),
    }
    .unwrap();
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource())
        .build();
    let counter = meter_provider.meter("e2e").u64_counter("orders").build();
    counter.add(5, &[KeyValue::new("region", "eu")]);
    counter.add(2, &[KeyValue::new("region", "eu")]);
    meter_provider.force_flush().unwrap();
    meter_provider.shutdown().unwrap();

    let logs = match via {
        Via::Grpc => opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(&weir_grpc)
            .build(),
        Via::Http => opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{weir_http}/v1/logs"))
            .build(),
    }
    .unwrap();
    let logger_provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_simple_exporter(logs)
        .with_resource(resource())
        .build();
    let logger = logger_provider.logger("e2e");
    for body in ["user signed in", "cart emptied"] {
        let mut rec = logger.create_log_record();
        rec.set_body(AnyValue::from(body));
        rec.set_severity_number(Severity::Info);
        rec.add_attribute("user.id", 42);
        logger.emit(rec);
    }
    logger_provider.shutdown().unwrap();
    ids
}

async fn sdk_roundtrip(via: Via) {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let (g, h) = (weir.grpc_url(), format!("http://{}", weir.http));
    let ids = tokio::task::spawn_blocking(move || emit_with_sdk(via, g, h))
        .await
        .unwrap();
    // 3 spans + 1 data point + 2 log records.
    let got = upstream.wait_for_items(6).await;

    let mut spans = Vec::new();
    let mut points = 0;
    let mut logs = Vec::new();
    for p in &got {
        match p {
            Payload::Traces(r) => {
                for rs in &r.resource_spans {
                    let res = &rs.resource.as_ref().unwrap().attributes;
                    assert_eq!(attr_text(res, "service.name").as_deref(), Some("weir-e2e"));
                    for ss in &rs.scope_spans {
                        assert_eq!(ss.scope.as_ref().unwrap().name, "e2e");
                        spans.extend(ss.spans.iter().cloned());
                    }
                }
            }
            Payload::Metrics(r) => {
                for m in r
                    .resource_metrics
                    .iter()
                    .flat_map(|rm| &rm.scope_metrics)
                    .flat_map(|s| &s.metrics)
                {
                    assert_eq!(m.name, "orders");
                    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) =
                        &m.data
                    else {
                        panic!("not a sum: {m:?}")
                    };
                    let dp = &sum.data_points[0];
                    assert_eq!(attr_text(&dp.attributes, "region").as_deref(), Some("eu"));
                    assert_eq!(
                        dp.value,
                        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(7))
                    );
                    points += sum.data_points.len();
                    assert_eq!(sum.data_points.len(), 1);
                }
            }
            Payload::Logs(r) => {
                for rl in r.resource_logs.iter().flat_map(|rl| &rl.scope_logs) {
                    logs.extend(rl.log_records.iter().cloned());
                }
            }
            Payload::Profiles(_) => panic!("the SDK sent no profiles"),
        }
    }
    // Cumulative: every export (flush, then shutdown) carries the one point, with the same total.
    assert!(points >= 1, "{via:?}");
    assert_eq!(spans.len(), 3, "{via:?}");
    for (i, (trace_id, span_id)) in ids.iter().enumerate() {
        let s = spans
            .iter()
            .find(|s| s.span_id == span_id)
            .unwrap_or_else(|| panic!("span {i} missing"));
        assert_eq!(s.trace_id, trace_id);
        assert_eq!(s.name, format!("GET /items/{i}"));
        assert_eq!(
            attr_text(&s.attributes, "http.response.status_code"),
            Some((200 + i).to_string())
        );
        assert_eq!(
            attr_text(&s.attributes, "user.tier").as_deref(),
            Some("gold")
        );
    }
    let bodies: Vec<_> = logs
        .iter()
        .map(|l| match l.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, ["user signed in", "cart emptied"]);
    assert!(
        logs.iter()
            .all(|l| attr_text(&l.attributes, "user.id").as_deref() == Some("42"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_grpc_exporters_through_weir() {
    sdk_roundtrip(Via::Grpc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_http_exporters_through_weir() {
    sdk_roundtrip(Via::Http).await;
}
