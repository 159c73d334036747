//! `examples/edge.yaml` as a new user would run it, fed by the OpenTelemetry SDK's OTLP/gRPC exporters:
//! sampler, redactor and router in one chain, two upstreams. At the upstreams: consistent sampling,
//! redacted secrets and the routes the example describes.

use std::collections::BTreeMap;

use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::Resource;
use weir::Payload;

use crate::filters::wasm_dir;
use crate::harness::*;

const TRACES: usize = 200;

fn resource(namespace: &str) -> Resource {
    Resource::builder()
        .with_service_name(format!("{namespace}-api"))
        .with_attribute(KeyValue::new("service.namespace", namespace.to_string()))
        .build()
}

/// Sends, as two services (`shop` and `payments`): `TRACES` traces of two spans each from `shop`, the
/// child carrying a bearer token; one internal health-check span; 40 traces from `payments`; and a log
/// record from each service with an e-mail address in its body.
fn emit(grpc: String) {
    for namespace in ["shop", "payments"] {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&grpc)
            .build()
            .unwrap();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource(namespace))
            .build();
        let tracer = provider.tracer("edge");
        let n = if namespace == "shop" { TRACES } else { 40 };
        for i in 0..n {
            let parent = tracer.start(format!("{namespace} GET /items/{i}"));
            let cx = opentelemetry::Context::current_with_span(parent);
            let mut child = tracer.start_with_context(format!("{namespace} db {i}"), &cx);
            child.set_attribute(KeyValue::new("authorization", "Bearer abcdefgh12345"));
            child.end();
            cx.span().end();
        }
        if namespace == "shop" {
            let mut health = tracer.start("health");
            health.set_attribute(KeyValue::new("http.route", "/internal/health"));
            health.end();
        }
        provider.shutdown().unwrap();

        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(&grpc)
            .build()
            .unwrap();
        let logs = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(resource(namespace))
            .build();
        let logger = logs.logger("edge");
        let mut rec = logger.create_log_record();
        rec.set_body(AnyValue::from(format!(
            "{namespace}: login by bob@example.org"
        )));
        rec.set_severity_number(Severity::Info);
        logger.emit(rec);
        logs.shutdown().unwrap();
    }
}

fn spans(received: &[Payload]) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for p in received {
        if let Payload::Traces(t) = p {
            for rs in &t.resource_spans {
                let ns = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.namespace"))
                    .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    out.extend(ss.spans.iter().map(|s| (ns.clone(), s.clone())));
                }
            }
        }
    }
    out
}

fn log_bodies(received: &[Payload]) -> Vec<String> {
    let mut out = Vec::new();
    for p in received {
        if let Payload::Logs(l) = p {
            for r in l.resource_logs.iter().flat_map(|r| &r.scope_logs) {
                for rec in &r.log_records {
                    if let Some(Value::StringValue(s)) =
                        rec.body.as_ref().and_then(|b| b.value.clone())
                    {
                        out.push(s);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// The sampler's rule at ratio 0.25: keep when the trace id's low 56 bits are at least 0.75 * 2^56.
fn kept_at_quarter(trace_id: &[u8]) -> bool {
    let low = u64::from_be_bytes(trace_id[8..16].try_into().unwrap()) & ((1 << 56) - 1);
    low >= 3 << 54
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_example_samples_redacts_and_routes() {
    wasm_dir(); // builds the filters the example names
    let (primary, primary_url) = Recorder::grpc().await;
    let (archive, archive_url) = Recorder::http().await;
    let state = tempfile::tempdir().unwrap();
    let path = format!("{}/../examples/edge.yaml", env!("CARGO_MANIFEST_DIR"));
    let weir = Weir::with_config_file(
        &path,
        &[
            ("PRIMARY", primary_url.replace("grpc://", "http://")),
            ("ARCHIVE", archive_url),
            ("SAMPLE_RATIO", "0.25".into()),
            ("WEIR_STATE", state.path().display().to_string()),
        ],
    );
    let grpc = weir.grpc_url();
    tokio::task::spawn_blocking(move || emit(grpc))
        .await
        .unwrap();
    // Both logs reach the primary; the payments one the archive too.
    primary.wait_for_items(1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while log_bodies(&primary.received()).len() < 2 || log_bodies(&archive.received()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "logs did not arrive");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The queues are durable: clients were acknowledged once the data was on disk. Wait until both
    // queues are empty, so that everything has reached its upstream.
    for exporter in ["primary", "archive"] {
        let gauge = format!(r#"weir_exporter_queue_batches{{exporter="{exporter}"}}"#);
        while weir.metric(&gauge).await > 0.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{exporter} queue did not drain"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // Secrets are redacted on the way.
    assert_eq!(
        log_bodies(&primary.received()),
        ["payments: login by ****", "shop: login by ****"]
    );
    assert_eq!(log_bodies(&archive.received()), ["payments: login by ****"]);

    let (at_primary, at_archive) = (spans(&primary.received()), spans(&archive.received()));
    // Consistent sampling: a span arrives exactly when its trace id says so, so both spans of a trace
    // share the decision, and the threshold is written for samplers downstream.
    let mut per_trace: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (_, s) in at_primary.iter().chain(&at_archive) {
        assert!(
            kept_at_quarter(&s.trace_id),
            "{} should have been dropped",
            s.name
        );
        assert!(s.trace_state.contains("ot=th:c"), "{}", s.trace_state);
        *per_trace.entry(s.trace_id.clone()).or_default() += 1;
    }
    let shop: Vec<_> = at_primary.iter().filter(|(ns, _)| ns == "shop").collect();
    assert!(
        shop.len() > TRACES / 10 && shop.len() < TRACES,
        "{} of {} shop spans kept at ratio 0.25",
        shop.len(),
        TRACES * 2
    );
    for (_, s) in &shop {
        if s.name.starts_with("shop") {
            assert_eq!(
                per_trace[&s.trace_id], 2,
                "both spans of {} are kept",
                s.name
            );
        }
    }
    // Routing: shop spans to the primary only, payments spans to both, the health check (if sampled)
    // to the archive only.
    assert!(
        at_archive
            .iter()
            .all(|(ns, s)| ns == "payments" || s.name == "health")
    );
    let payments = |v: &[(String, Span)]| {
        let mut names: Vec<String> = v
            .iter()
            .filter(|(ns, _)| ns == "payments")
            .map(|(_, s)| s.name.clone())
            .collect();
        names.sort();
        names
    };
    assert!(!payments(&at_archive).is_empty());
    assert_eq!(payments(&at_primary), payments(&at_archive));
    assert!(at_primary.iter().all(|(_, s)| s.name != "health"));
    // Every span with a token arrives with it masked.
    let with_token: Vec<_> = at_primary
        .iter()
        .filter(|(_, s)| s.name.contains(" db "))
        .collect();
    assert!(!with_token.is_empty());
    for (_, s) in with_token {
        let auth = s
            .attributes
            .iter()
            .find(|a| a.key == "authorization")
            .unwrap();
        assert_eq!(
            auth.value.as_ref().unwrap().value,
            Some(Value::StringValue("****".into()))
        );
    }
    assert!(
        weir.metric(r#"weir_filter_counter_total{signal="logs",filter="redact",name="redacted"}"#)
            .await
            >= 2.0
    );
}
