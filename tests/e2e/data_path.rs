//! The data path at wire speed: protobuf bytes forwarded untouched, requests merged into fewer upstream
//! requests (partial success shared out), zstd both ways, compression once per upstream request, and
//! one exporter's full queue holding nobody else's data.

use std::sync::Arc;

use crate::harness::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use weir::{Payload, Signal};

/// A valid traces request that prost would not re-encode to the same bytes: an unknown top-level
/// field, an unknown field inside a span, a default value written out (`kind: 0`), and fields out of
/// their numeric order.
fn unusual_request() -> Vec<u8> {
    let example = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    let canonical = example.encode_protobuf();
    let span = {
        let mut s = Vec::new();
        // name (5) before trace_id (1), kind 0 explicitly, then an unknown varint field 900.
        s.extend([0x2a, 0x04]);
        s.extend(b"odd!");
        s.push(0x0a);
        s.push(16);
        s.extend([0xab; 16]);
        s.extend([0x30, 0x00]);
        s.extend([0xa0, 0x38, 0x07]);
        s
    };
    let mut scope_spans = vec![0x12, span.len() as u8];
    scope_spans.extend(span);
    let mut resource_spans = vec![0x12, scope_spans.len() as u8];
    resource_spans.extend(scope_spans);
    let mut req = canonical;
    req.push(0x0a);
    req.push(resource_spans.len() as u8);
    req.extend(resource_spans);
    // Unknown top-level field 15, a length-delimited blob.
    req.extend([0x7a, 0x03, b'x', b'y', b'z']);
    let decoded = Payload::decode_protobuf(Signal::Traces, &req).unwrap();
    assert_ne!(
        decoded.encode_protobuf(),
        req,
        "prost would change these bytes"
    );
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_reaches_the_upstream_byte_for_byte_over_grpc_and_http() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start_args(&["--upstream", &url, "--upstream-compression", "none"]);
    let req = unusual_request();
    grpc_raw(&weir, Signal::Traces, req.clone(), false)
        .await
        .unwrap();
    let (status, _, _) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/x-protobuf")],
        req.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = post(
        &weir.http_url(Signal::Traces),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        gzip(&req),
    )
    .await;
    assert_eq!(status, 200);
    let items = Payload::decode_protobuf(Signal::Traces, &req)
        .unwrap()
        .item_count();
    upstream.wait_for_items(3 * items).await;
    // One request at a time: each went upstream on its own, as the bytes it was.
    for raw in upstream.raw() {
        assert_eq!(raw.bytes, req);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_durable_queue_writes_and_forwards_the_bytes_received() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&format!(
        r#"
state_dir: "{}"
exporters:
  up: {{ otlp: {{ endpoint: "{url}", compression: none }}, queue: {{ durable: true }} }}
"#,
        state.path().display()
    ));
    let req = unusual_request();
    grpc_raw(&weir, Signal::Traces, req.clone(), false)
        .await
        .unwrap();
    let items = Payload::decode_protobuf(Signal::Traces, &req)
        .unwrap()
        .item_count();
    upstream.wait_for_items(items).await;
    assert_eq!(upstream.raw()[0].bytes, req);
}

fn one_span(name: &str) -> Vec<u8> {
    traces_of(vec![opentelemetry_proto::tonic::trace::v1::Span {
        name: name.into(),
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        ..Default::default()
    }])
    .encode_protobuf()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_merged_upstream_each_hear_the_partial_success() {
    let (upstream, url) = Recorder::grpc().await;
    // A sender holding a request waits for two more (at most 30 s): three requests, one upstream call.
    let weir = Arc::new(Weir::with_config(&format!(
        r#"
exporters:
  up:
    otlp:
      endpoint: "{url}"
    queue: {{ coalesce: {{ max_items: 3, flush_interval: 30s }} }}
"#
    )));
    upstream.script(1, Answer::Partial(2, "too old"));
    let sends: Vec<_> = (0..3)
        .map(|i| {
            let url = weir.grpc_url();
            tokio::spawn(async move {
                grpc_raw_to(&url, Signal::Traces, one_span(&format!("s{i}")), false).await
            })
        })
        .collect();
    let mut rejected = Vec::new();
    for s in sends {
        let resp = ExportTraceServiceResponse::decode(s.await.unwrap().unwrap()).unwrap();
        let p = resp.partial_success.unwrap();
        assert!(p.error_message.contains("too old"), "{p:?}");
        rejected.push(p.rejected_spans);
    }
    // Two of the three spans were rejected; which is unknown, so each client hears that its one span
    // may be among them.
    assert_eq!(rejected, [1, 1, 1]);
    assert_eq!(upstream.calls(), 1);
    assert_eq!(upstream.received()[0].item_count(), 3);
    assert_eq!(
        weir.metric(r#"weir_exporter_coalesced_requests_total{signal="traces",exporter="up"}"#)
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn zstd_is_read_by_both_receivers_and_sent_by_both_exporters() {
    let (grpc_up, grpc_url) = Recorder::grpc().await;
    let (http_up, http_url) = Recorder::http().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  g: {{ otlp: {{ endpoint: "{grpc_url}", compression: zstd }} }}
  h: {{ otlp: {{ endpoint: "{http_url}", protocol: http, compression: zstd, compression_level: 3 }} }}
pipelines:
  traces: {{ exporters: [g, h] }}
"#
    ));
    let body = one_span("z");
    let (status, _, resp) = post(
        &weir.http_url(Signal::Traces),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "zstd"),
        ],
        zstd::encode_all(&body[..], 3).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{resp:?}");
    // gRPC with grpc-encoding: zstd, compressed by tonic.
    let channel = tonic::transport::Endpoint::from_shared(weir.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        tonic::client::Grpc::new(channel).send_compressed(tonic::codec::CompressionEncoding::Zstd);
    client.ready().await.unwrap();
    client
        .unary(
            tonic::Request::new(bytes::Bytes::from(body.clone())),
            http::uri::PathAndQuery::from_static(Signal::Traces.grpc_path()),
            RawCodec::new(),
        )
        .await
        .unwrap();
    for up in [&grpc_up, &http_up] {
        up.wait_for_items(2).await;
        for raw in up.raw() {
            assert_eq!(raw.encoding.as_deref(), Some("zstd"));
            assert_eq!(raw.bytes, body);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_upstream_request_is_compressed_once() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    upstream.script(1, Answer::Status(tonic::Code::Unavailable, "not yet"));
    let body = unusual_request();
    grpc_raw(&weir, Signal::Traces, body.clone(), false)
        .await
        .unwrap();
    assert_eq!(upstream.calls(), 2, "one failed attempt, one retry");
    assert_eq!(upstream.raw()[0].encoding.as_deref(), Some("gzip"));
    // Prepared once for both attempts: the byte counters saw one request, not two.
    let encoded = weir
        .metric(r#"weir_exporter_encoded_bytes_total{exporter="upstream"}"#)
        .await;
    let sent = weir
        .metric(r#"weir_exporter_sent_bytes_total{exporter="upstream"}"#)
        .await;
    assert_eq!(encoded, body.len() as f64);
    assert!(sent > 0.0 && sent < encoded, "{sent} of {encoded}");
}

/// An OTLP/gRPC export over a raw HTTP/2 client, so that the response's message prefix (compressed
/// flag, length) can be read; `accept` goes in `grpc-accept-encoding`.
async fn raw_grpc_export(
    weir: &Weir,
    accept: Option<&str>,
    body: Vec<u8>,
) -> (Option<String>, Vec<u8>) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let mut framed = vec![0u8];
    framed.extend((body.len() as u32).to_be_bytes());
    framed.extend(body);
    let mut req = http::Request::post(format!("{}{}", weir.grpc_url(), Signal::Traces.grpc_path()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(a) = accept {
        req = req.header("grpc-accept-encoding", a);
    }
    let resp = client
        .request(req.body(Full::new(bytes::Bytes::from(framed))).unwrap())
        .await
        .unwrap();
    let encoding = resp
        .headers()
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(
        collected.trailers().unwrap()["grpc-status"],
        "0",
        "{:?}",
        collected.trailers()
    );
    (encoding, collected.to_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_compressed_only_when_asked_and_worth_it() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    // Not asked: not compressed, even with something to say.
    upstream.script(1, Answer::Partial(1, "x"));
    let (_, message) = raw_grpc_export(&weir, None, one_span("a")).await;
    assert_eq!(message[0], 0, "compressed flag");
    // Asked, with a partial success to carry: compressed.
    upstream.script(1, Answer::Partial(1, "x"));
    let (encoding, message) = raw_grpc_export(&weir, Some("gzip"), one_span("b")).await;
    assert_eq!((encoding.as_deref(), message[0]), (Some("gzip"), 1));
    // Asked, but the response is empty: sent as it is, no compressor run for nothing.
    let (_, message) = raw_grpc_export(&weir, Some("gzip"), one_span("c")).await;
    assert_eq!(message, [0, 0, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_refuses_its_part_and_the_other_exporter_still_delivers_now() {
    let (live, live_url) = Recorder::grpc().await;
    let (dead, dead_url) = Recorder::grpc().await;
    dead.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    // Every request goes to both; the dead exporter's queue holds one request (which retries until
    // its deadline), so every later request finds it full.
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ request_timeout: 20s }}
exporters:
  live: {{ otlp: {{ endpoint: "{live_url}" }} }}
  dead:
    otlp:
      endpoint: "{dead_url}"
    retry: {{ initial_interval: 50ms, max_interval: 200ms }}
    queue: {{ max_batches: 1, concurrency: 1 }}
pipelines:
  traces: {{ exporters: [live, dead] }}
"#
    ));
    // The first request takes the dead exporter's only slot and waits there.
    let first = {
        let url = weir.grpc_url();
        tokio::spawn(
            async move { grpc_raw_to(&url, Signal::Traces, one_span("first"), false).await },
        )
    };
    live.wait_for_items(1).await;
    // The next ones: refused (retryable) for the dead exporter's part, their live part delivered.
    for i in 0..10 {
        let err = grpc_raw(&weir, Signal::Traces, one_span(&format!("r{i}")), false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(err.message().contains("queue is full"), "{err:?}");
    }
    // All of them reached the live upstream while the dead one is still down: none waited for it.
    live.wait_for_items(11).await;
    assert_eq!(dead.items(), 0);
    // Their clients retry them, so the live upstream will see them again: counted.
    assert_eq!(
        weir.metric(
            r#"weir_exporter_refused_delivered_items_total{signal="traces",exporter="live"}"#
        )
        .await,
        10.0
    );
    drop(first);
}
