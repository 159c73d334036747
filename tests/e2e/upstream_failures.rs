//! Retryable upstream answers are retried until the data arrives; permanent ones reach the client as
//! such; retries that run out end in a retryable status, never a success.

use crate::harness::*;
use weir::{Payload, Signal};

fn config(url: &str, request_timeout: &str) -> String {
    let protocol = if url.starts_with("grpc://") {
        "grpc"
    } else {
        "http"
    };
    format!(
        r#"
limits: {{ request_timeout: {request_timeout}, retry_after: 3s }}
exporters:
  upstream:
    otlp:
      endpoint: "{url}"
      protocol: {protocol}
    retry: {{ initial_interval: 20ms, max_interval: 100ms }}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_upstream_is_retried_until_the_data_arrives() {
    for (upstream, url) in [Recorder::grpc().await, Recorder::http().await] {
        let weir = Weir::with_config(&config(&url, "10s"));
        upstream.script(3, Answer::Status(tonic::Code::Unavailable, "warming up"));
        let payload = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
        grpc_raw(&weir, Signal::Traces, payload.encode_protobuf(), false)
            .await
            .expect("acknowledged once the upstream accepted");
        assert_eq!(upstream.received(), vec![payload], "{url}");
        assert_eq!(upstream.calls(), 4, "{url}");
        assert_eq!(
            weir.metric(r#"weir_export_retries_total{signal="traces",exporter="upstream"}"#)
                .await,
            3.0,
            "{url}"
        );
        // The otlp kind's own family: every attempt, by the upstream's answer.
        let (protocol, down, up) = if url.starts_with("grpc://") {
            ("grpc", "UNAVAILABLE", "OK")
        } else {
            ("http", "503", "200")
        };
        let answered = |status: &str| {
            format!(
                r#"weir_otlp_exporter_responses_total{{exporter="upstream",protocol="{protocol}",status="{status}"}}"#
            )
        };
        assert_eq!(weir.metric(&answered(down)).await, 3.0, "{url}");
        assert_eq!(weir.metric(&answered(up)).await, 1.0, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_upstream_errors_reach_the_client() {
    for (upstream, url) in [Recorder::grpc().await, Recorder::http().await] {
        let weir = Weir::with_config(&config(&url, "10s"));
        upstream.always(Some(Answer::Status(
            tonic::Code::InvalidArgument,
            "span name too long",
        )));
        let payload = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
        let err = grpc_raw(&weir, Signal::Traces, payload.encode_protobuf(), false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{url}: {err:?}");
        assert!(err.message().contains("span name too long"), "{err:?}");
        let (status, _, body) = post(
            &weir.http_url(Signal::Traces),
            &[("content-type", "application/json")],
            example("trace.json"),
        )
        .await;
        assert_eq!(status, 400, "{url}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("span name too long")
        );
        assert_eq!(upstream.calls(), 2, "{url}: not retried");
        assert!(upstream.received().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_that_run_out_end_in_a_retryable_status() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&config(&url, "400ms"));
    upstream.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let payload = Payload::decode_json(Signal::Logs, &example("logs.json")).unwrap();
    let err = grpc_raw(&weir, Signal::Logs, payload.encode_protobuf(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    use tonic_types::StatusExt;
    assert!(err.get_details_retry_info().is_some());
    let (status, h, _) = post(
        &weir.http_url(Signal::Logs),
        &[("content-type", "application/json")],
        example("logs.json"),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(h["retry-after"], "3");
    assert!(upstream.calls() > 2, "retried before giving up");
    // Each request's item ran out of retries, or was abandoned when its deadline (the same 400 ms)
    // ended the client's wait first: which comes first is a race, and both are counted.
    let failed = weir
        .metric(
            r#"weir_export_failed_items_total{signal="logs",exporter="upstream",retryable="true"}"#,
        )
        .await;
    let abandoned = weir
        .metric(r#"weir_exporter_abandoned_items_total{signal="logs",exporter="upstream"}"#)
        .await;
    assert!(
        failed + abandoned >= 2.0,
        "{failed} failed, {abandoned} abandoned"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_upstream_is_unavailable_not_an_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let weir = Weir::with_config(&config(&format!("grpc://127.0.0.1:{port}"), "300ms"));
    let (status, _, _) = post(
        &weir.http_url(Signal::Metrics),
        &[("content-type", "application/json")],
        example("metrics.json"),
    )
    .await;
    assert_eq!(status, 503);
    let unanswered = r#"weir_otlp_exporter_responses_total{exporter="upstream",protocol="grpc",status="unanswered"}"#;
    assert!(weir.metric(unanswered).await >= 1.0);
}
