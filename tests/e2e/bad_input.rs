//! Bad input gets the status the OTLP specification prescribes, and weir keeps serving.

use std::time::Duration;

use crate::harness::*;
use prost::Message;
use weir::{Payload, Signal};

async fn still_serves(weir: &Weir, upstream: &Recorder) {
    let before = upstream.items();
    let (status, _, _) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 200);
    upstream.wait_for_items(before + 1).await;
}

fn rpc_status(body: &[u8]) -> tonic_types::Status {
    tonic_types::Status::decode(body).expect("body is a google.rpc.Status")
}

const SMALL_LIMITS: &str = r#"
limits: { max_request_bytes: 4096, max_decompressed_bytes: 65536 }
exporters:
  upstream: { otlp: { endpoint: "UPSTREAM" } }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn http_bad_input_statuses() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&SMALL_LIMITS.replace("UPSTREAM", &url));
    let traces = weir.http_url(Signal::Traces);

    // Undecodable protobuf: 400 with a google.rpc.Status body in protobuf.
    let (status, h, body) = post(
        &traces,
        &[("content-type", "application/x-protobuf")],
        vec![0xff, 0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(h["content-type"], "application/x-protobuf");
    let s = rpc_status(&body);
    assert_eq!(s.code, tonic::Code::InvalidArgument as i32);
    assert!(s.message.contains("protobuf"), "{}", s.message);

    // Undecodable JSON: 400 with the Status in JSON.
    let (status, h, body) = post(
        &traces,
        &[("content-type", "application/json")],
        br#"{"resourceSpans": 7}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(h["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 3);

    // Unsupported content type and encoding: 415.
    let (status, _, _) = post(&traces, &[("content-type", "text/plain")], b"{}".to_vec()).await;
    assert_eq!(status, 415);
    let (status, _, _) = post(
        &traces,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "br"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 415);

    // Corrupt gzip: 400.
    let (status, _, _) = post(
        &traces,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        b"definitely not gzip".to_vec(),
    )
    .await;
    assert_eq!(status, 400);

    // Over the wire limit: 413.
    let (status, _, _) = post(
        &traces,
        &[("content-type", "application/json")],
        vec![b' '; 5000],
    )
    .await;
    assert_eq!(status, 413);

    // A gzip bomb: small on the wire, over the decompressed limit: 413.
    let bomb = gzip(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 4096, "{}", bomb.len());
    let (status, _, body) = post(
        &traces,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        bomb,
    )
    .await;
    assert_eq!(status, 413, "{body:?}");

    // Unknown path: 404; wrong method: 405.
    let (status, _, _) = post(
        &format!("http://{}/v1/profiles", weir.http),
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&traces).await;
    assert_eq!(status, 405);

    still_serves(&weir, &upstream).await;
    assert_eq!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="too_large"}"#
        )
        .await,
        2.0
    );
    assert_eq!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="decode"}"#
        )
        .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_bad_input_statuses() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&SMALL_LIMITS.replace("UPSTREAM", &url));

    let err = grpc_raw(&weir, Signal::Traces, vec![0xff, 0xff, 0xff], false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    // Above the message size limit: RESOURCE_EXHAUSTED without RetryInfo (not retryable).
    let big = Payload::decode_json(Signal::Logs, &example("logs.json")).unwrap();
    let weir::Payload::Logs(mut req) = big else {
        unreachable!()
    };
    let one = req.resource_logs[0].clone();
    while prost::Message::encoded_len(&req) < 70_000 {
        req.resource_logs.push(one.clone());
    }
    let bytes = prost::Message::encode_to_vec(&req);
    let err = grpc_raw(&weir, Signal::Logs, bytes.clone(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    use tonic_types::StatusExt;
    assert!(err.get_details_retry_info().is_none());

    // The same compressed is small on the wire but too large once inflated.
    let err = grpc_raw(&weir, Signal::Logs, bytes, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    still_serves(&weir, &upstream).await;
    // Refusals made by tonic before weir's handler runs are counted too.
    assert_eq!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="grpc",reason="decode"}"#
        )
        .await,
        1.0
    );
    assert_eq!(
        weir.metric(
            r#"weir_refused_requests_total{signal="logs",transport="grpc",reason="too_large"}"#
        )
        .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_is_refused_with_retry_hints() {
    let (_upstream, url) = Recorder::grpc().await;
    // The one admission slot is held while a batch is decoded and filtered: a filter that spins until
    // its 2 s deadline (and fails open) holds it long enough to see the next request refused.
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ max_concurrent_requests: 1, retry_after: 2s }}
exporters:
  upstream: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [upstream]
    filters:
      - {{ name: slow, module: "{}", config: {{ mode: spin, after: 1 }}, limits: {{ deadline: 2s }} }}
"#,
        crate::filters::wasm("hostile")
    ));
    let url = weir.http_url(Signal::Traces);
    let slow = tokio::spawn(async move {
        post(
            &url,
            &[("content-type", "application/json")],
            example("trace.json"),
        )
        .await
    });
    // The first request is in the filter, spinning, and holds the one slot.
    weir.wait_for_filter_calls(Signal::Traces, "slow", 1).await;
    let (status, h, _) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(h["retry-after"], "2");
    let err = grpc_raw(&weir, Signal::Logs, Vec::new(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    use tonic_types::StatusExt;
    assert_eq!(
        err.get_details_retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(2))
    );
    assert_eq!(slow.await.unwrap().0, 200, "the admitted request completes");
    assert!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="overloaded"}"#
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_exporter_queue_is_refused_with_retry_hints() {
    let (upstream, url) = Recorder::grpc().await;
    // Two batches in the queue at most (waiting or being sent), one sender: one being sent and one
    // waiting. The upstream takes 3 s per batch (under the 5 s attempt timeout): long enough to see
    // both in the queue on a busy machine.
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ retry_after: 2s, request_timeout: 60s }}
exporters:
  upstream: {{ otlp: {{ endpoint: "{url}" }}, queue: {{ max_batches: 2, concurrency: 1 }} }}
"#
    ));
    upstream.script(2, Answer::Slow(Duration::from_secs(3)));
    let hold = || {
        let url = weir.http_url(Signal::Traces);
        tokio::spawn(async move {
            post(
                &url,
                &[("content-type", "application/json")],
                example("trace.json"),
            )
            .await
            .0
        })
    };
    // One at a time: the first must have left the queue for the sender before the second comes, or
    // the second would find the queue full.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut held = vec![hold()];
    while upstream.calls() == 0 {
        assert!(std::time::Instant::now() < deadline, "first never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held.push(hold());
    while weir
        .metric(r#"weir_exporter_queue_batches{exporter="upstream"}"#)
        .await
        < 2.0
    {
        assert!(std::time::Instant::now() < deadline, "second never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, h, body) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 503, "{body:?}");
    assert_eq!(h["retry-after"], "2");
    assert!(
        String::from_utf8_lossy(&body).contains("queue is full"),
        "{body:?}"
    );
    let err = grpc_raw(&weir, Signal::Traces, example_protobuf(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    use tonic_types::StatusExt;
    assert_eq!(
        err.get_details_retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(2))
    );
    for h in held {
        assert_eq!(h.await.unwrap(), 200, "the queued requests complete");
    }
    assert_eq!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="queue_full"}"#
        )
        .await,
        1.0
    );
    still_serves(&weir, &upstream).await;
}

fn example_protobuf() -> Vec<u8> {
    Payload::decode_json(Signal::Traces, &example("trace.json"))
        .unwrap()
        .encode_protobuf()
}

#[tokio::test(flavor = "multi_thread")]
async fn above_the_memory_limit_requests_are_refused_with_retry_hints() {
    let (upstream, url) = Recorder::grpc().await;
    // 1 MiB: weir's own resident memory is far above it, so every request is refused.
    let weir = Weir::with_config(&format!(
        "limits: {{ max_memory_bytes: 1048576, retry_after: 3s }}\nexporters:\n  upstream: {{ otlp: {{ endpoint: \"{url}\" }} }}\n"
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while weir.metric("weir_memory_rss_bytes").await == 0.0 {
        assert!(std::time::Instant::now() < deadline, "no RSS sample");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, h, body) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 503, "{body:?}");
    assert_eq!(h["retry-after"], "3");
    assert!(String::from_utf8_lossy(&body).contains("memory limit"));
    let err = grpc_raw(&weir, Signal::Traces, example_protobuf(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(upstream.calls(), 0);
    assert!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="memory_limit"}"#
        )
        .await
            >= 1.0
    );
    // The admin side keeps answering.
    assert_eq!(get(&format!("http://{}/healthz", weir.admin)).await.0, 200);
}

/// A span with the given trace id length.
fn span_with_trace_id(len: usize, i: usize) -> opentelemetry_proto::tonic::trace::v1::Span {
    opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: vec![7; len],
        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
        name: format!("span {i}"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_clients_malformed_ids_never_fail_another_clients_data() {
    // Issue 20: a strict upstream (the Collector's pdata) refuses a whole request whose trace ids are
    // not 16 bytes; weir merged client B's 3-byte ids with client A's spans, and A's requests were
    // refused INVALID_ARGUMENT, which an SDK drops for good. weir now refuses B's at the edge, as the
    // data model does, so nothing of B's reaches a merged upstream request.
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }}, queue: {{ coalesce: {{ flush_interval: 20ms }} }} }}
"#
    ));
    let good_url = weir.http_url(Signal::Traces);
    let good: Vec<_> = (0..4)
        .map(|t| {
            let url = good_url.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let body =
                        traces_of(vec![span_with_trace_id(16, t * 100 + i)]).encode_protobuf();
                    let (status, _, body) =
                        post(&url, &[("content-type", "application/x-protobuf")], body).await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                }
            })
        })
        .collect();
    for i in 0..25 {
        let bad = traces_of(vec![span_with_trace_id(3, i)]).encode_protobuf();
        let (status, _, body) = post(
            &good_url,
            &[("content-type", "application/x-protobuf")],
            bad,
        )
        .await;
        assert_eq!(status, 400);
        let s = rpc_status(&body);
        assert_eq!(s.code, tonic::Code::InvalidArgument as i32);
        assert!(s.message.contains("trace id: 3 bytes"), "{}", s.message);
        // Over gRPC too, and in JSON (hex ids of any length decode).
        let bad = traces_of(vec![span_with_trace_id(3, i)]).encode_protobuf();
        let e = grpc_raw(&weir, Signal::Traces, bad, false)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
    let (status, _, body) = post(
        &good_url,
        &[("content-type", "application/json")],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"0102030405060708","name":"x"}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    for g in good {
        g.await.unwrap();
    }
    let got = upstream.wait_for_items(100).await;
    let spans: Vec<_> = got
        .iter()
        .filter_map(|p| match p {
            Payload::Traces(t) => Some(t),
            _ => None,
        })
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(spans.len(), 100);
    assert!(spans.iter().all(|s| s.trace_id.len() == 16));
}
