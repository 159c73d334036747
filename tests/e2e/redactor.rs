//! The reference redactor, compiled to Wasm, through the real weir binary.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use weir::pipeline::{Payload, Signal};

use crate::filters::wasm;
use crate::harness::*;

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: s(v),
        ..Default::default()
    }
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
        wasm("redactor")
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
