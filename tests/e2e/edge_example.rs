//! `examples/edge.yaml` as a user would run it: sampler and redactor in one chain, two upstreams.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use weir::pipeline::{Payload, Signal};

use crate::filters::wasm_dir;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_example_samples_redacts_and_fans_out() {
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
            ("SAMPLE_RATIO", "1.0".into()),
            ("WEIR_STATE", state.path().display().to_string()),
        ],
    );
    // A span with a secret, and a log with one.
    let mut trace = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    if let Payload::Traces(t) = &mut trace {
        t.resource_spans[0].scope_spans[0].spans[0].attributes.push(
            opentelemetry_proto::tonic::common::v1::KeyValue {
                key: "authorization".into(),
                value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(Value::StringValue("Bearer abcdefgh12345".into())),
                }),
                ..Default::default()
            },
        );
    }
    grpc_raw(&weir, Signal::Traces, trace.encode_protobuf(), false)
        .await
        .unwrap();
    let (status, _, _) = post(
        &weir.http_url(Signal::Logs),
        &[("content-type", "application/json")],
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"login by bob@example.org"}}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200);

    // Traces reach both upstreams, redacted and marked as sampled at probability 1.
    for upstream in [&primary, &archive] {
        let got = upstream.wait_for_items(1).await;
        let Payload::Traces(t) = &got[0] else {
            panic!("{got:?}")
        };
        let span = &t.resource_spans[0].scope_spans[0].spans[0];
        let auth = span
            .attributes
            .iter()
            .find(|a| a.key == "authorization")
            .unwrap();
        assert_eq!(
            auth.value.as_ref().unwrap().value,
            Some(Value::StringValue("****".into()))
        );
    }
    // Logs go to the primary only, with the body redacted.
    let got = primary.wait_for_items(2).await;
    let Payload::Logs(l) = &got[1] else {
        panic!("{got:?}")
    };
    let body = l.resource_logs[0].scope_logs[0].log_records[0]
        .body
        .as_ref()
        .unwrap();
    assert_eq!(body.value, Some(Value::StringValue("login by ****".into())));
    assert_eq!(archive.items(), 1, "no logs in the archive");
}
