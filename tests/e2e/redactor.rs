//! The reference redactor, compiled to Wasm, through the real weir binary.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use weir::{Payload, Signal};

use crate::filters::{wasm, wasm_v01};
use crate::harness::*;

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.into())),
    })
}

fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_redacted_before_they_leave() {
    secrets_are_redacted_before_they_leave_with(wasm("redactor")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_redacted_before_they_leave_built_against_0_1() {
    secrets_are_redacted_before_they_leave_with(wasm_v01("redactor")).await;
}

async fn secrets_are_redacted_before_they_leave_with(module: String) {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  logs:
    exporters: [up]
    filters:
      - name: redact
        module: "{}"
        config: {{ block_keys: [password], summary: true }}
        on_error: fail-closed
"#,
        module
    ));
    let request = Payload::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop"), kv("host.ip", "10.1.2.3")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: s("payment by jane@example.com with 4111-1111-1111-1111"),
                    attributes: vec![
                        kv("password", "hunter2"),
                        kv("http.url", "/pay?order=9&api_key=s3cr3t"),
                        kv("note", "nothing to see"),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    grpc_raw(&weir, Signal::Logs, request.encode_protobuf(), false)
        .await
        .unwrap();
    let got = upstream.wait_for_items(1).await;
    let Payload::Logs(l) = &got[0] else { panic!() };
    let res = &l.resource_logs[0].resource.as_ref().unwrap().attributes;
    assert_eq!(text(get(res, "service.name")).as_deref(), Some("shop"));
    assert_eq!(text(get(res, "host.ip")).as_deref(), Some("****"));
    let rec = &l.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(
        text(rec.body.as_ref().and_then(|b| b.value.as_ref())).as_deref(),
        Some("payment by **** with ****")
    );
    assert_eq!(
        text(get(&rec.attributes, "password")).as_deref(),
        Some("****")
    );
    assert_eq!(
        text(get(&rec.attributes, "http.url")).as_deref(),
        Some("/pay?order=9&api_key=****")
    );
    assert_eq!(
        text(get(&rec.attributes, "note")).as_deref(),
        Some("nothing to see")
    );
    assert_eq!(
        text(get(&rec.attributes, "redaction.redacted.keys")).as_deref(),
        Some("password,http.url,body")
    );
    assert_eq!(
        weir.metric(r#"weir_filter_counter_total{signal="logs",filter="redact",name="redacted"}"#)
            .await,
        4.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn span_event_and_link_attributes_are_redacted_too() {
    span_event_and_link_attributes_are_redacted_too_with(wasm("redactor")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn span_event_and_link_attributes_are_redacted_too_built_against_0_1() {
    span_event_and_link_attributes_are_redacted_too_with(wasm_v01("redactor")).await;
}

async fn span_event_and_link_attributes_are_redacted_too_with(module: String) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - name: redact
        module: "{}"
        config: {{ summary: true }}
        on_error: fail-closed
"#,
        module
    ));
    let request = Payload::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: "checkout".into(),
                    events: vec![Event {
                        name: "exception".into(),
                        attributes: vec![kv("exception.message", "no user jane@example.com")],
                        ..Default::default()
                    }],
                    links: vec![Link {
                        attributes: vec![kv("auth", "Bearer abcdefgh12345"), kv("ok", "fine")],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    grpc_raw(&weir, Signal::Traces, request.encode_protobuf(), false)
        .await
        .unwrap();
    let got = upstream.wait_for_items(1).await;
    let Payload::Traces(t) = &got[0] else {
        panic!()
    };
    let span = &t.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        text(get(&span.events[0].attributes, "exception.message")).as_deref(),
        Some("no user ****")
    );
    assert_eq!(
        text(get(&span.links[0].attributes, "auth")).as_deref(),
        Some("****")
    );
    assert_eq!(
        text(get(&span.links[0].attributes, "ok")).as_deref(),
        Some("fine")
    );
    assert_eq!(
        text(get(&span.attributes, "redaction.redacted.keys")).as_deref(),
        Some("event.exception.message,link.auth")
    );
}
