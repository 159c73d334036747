//! What a client sends arrives unchanged upstream, whatever the transport, encoding and compression.

use crate::harness::*;
use prost::Message;
use weir::{Payload, Signal};

const EXAMPLES: [(Signal, &str); 4] = [
    (Signal::Traces, "trace.json"),
    (Signal::Metrics, "metrics.json"),
    (Signal::Logs, "logs.json"),
    (Signal::Profiles, "profiles.json"),
];

#[tokio::test(flavor = "multi_thread")]
async fn spec_examples_over_http_json_protobuf_and_gzip_arrive_unchanged() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let mut expected = Vec::new();
    for (signal, file) in EXAMPLES {
        let json = example(file);
        let payload = Payload::decode_json(signal, &json).unwrap();
        let proto = payload.encode_protobuf();
        let url = weir.http_url(signal);
        let cases: [(&str, Option<&str>, Vec<u8>); 4] = [
            ("application/json", None, json.clone()),
            ("application/json; charset=utf-8", Some("gzip"), gzip(&json)),
            ("application/x-protobuf", None, proto.clone()),
            ("application/x-protobuf", Some("gzip"), gzip(&proto)),
        ];
        for (ct, encoding, body) in cases {
            let mut headers = vec![("content-type", ct)];
            if let Some(e) = encoding {
                headers.push(("content-encoding", e));
            }
            let (status, h, resp) = post(&url, &headers, body).await;
            assert_eq!(status, 200, "{file} {ct} {encoding:?}: {resp:?}");
            // The response uses the request's content type.
            let essence = ct.split(';').next().unwrap();
            assert_eq!(h["content-type"], essence);
            if essence == "application/json" {
                assert_eq!(&resp[..], b"{}");
            }
            expected.push(payload.clone());
        }
    }
    let n: usize = expected.iter().map(Payload::item_count).sum();
    let got = upstream.wait_for_items(n).await;
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_plain_and_gzip_arrive_unchanged() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let mut expected = Vec::new();
    for (signal, file) in EXAMPLES {
        let payload = Payload::decode_json(signal, &example(file)).unwrap();
        for gzip in [false, true] {
            let resp = grpc_raw(&weir, signal, payload.encode_protobuf(), gzip)
                .await
                .unwrap();
            assert!(resp.is_empty(), "no partial success expected");
            expected.push(payload.clone());
        }
    }
    let n: usize = expected.iter().map(Payload::item_count).sum();
    assert_eq!(upstream.wait_for_items(n).await, expected);
    assert_eq!(
        weir.metric(r#"weir_exported_items_total{signal="traces",exporter="upstream"}"#)
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_upstream_receives_unchanged() {
    let (upstream, url) = Recorder::http().await;
    let weir = Weir::start(&url);
    let mut expected = Vec::new();
    for (signal, file) in EXAMPLES {
        let payload = Payload::decode_json(signal, &example(file)).unwrap();
        grpc_raw(&weir, signal, payload.encode_protobuf(), false)
            .await
            .unwrap();
        expected.push(payload);
    }
    let n: usize = expected.iter().map(Payload::item_count).sum();
    assert_eq!(upstream.wait_for_items(n).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_prior_knowledge_is_served() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let payload = Payload::decode_json(Signal::Logs, &example("logs.json")).unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(weir.http_url(Signal::Logs))
        .header("content-type", "application/x-protobuf")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            payload.encode_protobuf(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.wait_for_items(1).await, vec![payload]);
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_success_is_passed_back() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let payload = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    upstream.script(2, Answer::Partial(1, "some spans were too old"));
    let resp = grpc_raw(&weir, Signal::Traces, payload.encode_protobuf(), false)
        .await
        .unwrap();
    let resp =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(resp)
            .unwrap();
    let p = resp.partial_success.unwrap();
    assert_eq!(p.rejected_spans, 1);
    assert!(p.error_message.contains("too old"), "{}", p.error_message);

    let (status, _, body) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
    assert_eq!(
        weir.metric(r#"weir_upstream_rejected_items_total{signal="traces",exporter="upstream"}"#)
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_requests_succeed() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    for signal in Signal::ALL {
        let (status, _, body) = post(
            &weir.http_url(signal),
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(status, 200, "{body:?}");
        let (status, _, _) = post(
            &weir.http_url(signal),
            &[("content-type", "application/x-protobuf")],
            Vec::new(),
        )
        .await;
        assert_eq!(status, 200);
        grpc_raw(&weir, signal, Vec::new(), false).await.unwrap();
    }
    assert_eq!(upstream.calls(), 0, "nothing to forward");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_upstream_the_debug_exporter_prints_batches() {
    let weir = Weir::start_args(&[]);
    for (signal, file) in EXAMPLES {
        let (status, _, _) = post(
            &weir.http_url(signal),
            &[("content-type", "application/json")],
            example(file),
        )
        .await;
        assert_eq!(status, 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = weir.stdout.lock().unwrap().join("\n");
        if out.lines().count() >= 3 {
            assert!(
                out.contains("debug: traces: 1 resource(s), 1 spans"),
                "{out}"
            );
            assert!(
                out.contains("debug: logs: 1 resource(s), 1 log records"),
                "{out}"
            );
            assert!(
                out.contains("debug: metrics: 1 resource(s), 3 data points"),
                "{out}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_with_headers_and_no_compression() {
    let (a, a_url) = Recorder::grpc().await;
    let (b, b_url) = Recorder::http().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  a:
    otlp:
      endpoint: "{a_url}"
      compression: none
      headers: {{ x-api-key: "k-123" }}
  b:
    otlp:
      endpoint: "{b_url}"
      protocol: http
      headers: {{ x-tenant: "blue" }}
pipelines:
  traces: {{ exporters: [a, b] }}
  logs: {{ exporters: [b] }}
"#
    ));
    let traces = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    let logs = Payload::decode_json(Signal::Logs, &example("logs.json")).unwrap();
    grpc_raw(&weir, Signal::Traces, traces.encode_protobuf(), false)
        .await
        .unwrap();
    grpc_raw(&weir, Signal::Logs, logs.encode_protobuf(), false)
        .await
        .unwrap();
    // Metrics have no pipeline here: UNIMPLEMENTED, not retryable.
    let err = grpc_raw(&weir, Signal::Metrics, b"".to_vec(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert_eq!(a.received(), vec![traces.clone()]);
    assert_eq!(b.received(), vec![traces, logs]);
    let ah = &a.headers()[0];
    assert_eq!(ah["x-api-key"], "k-123");
    assert!(ah.get("grpc-encoding").is_none(), "compression: none");
    let bh = &b.headers()[0];
    assert_eq!(bh["x-tenant"], "blue");
    assert_eq!(bh["content-encoding"], "gzip");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_otlp_receiver_listens_on_its_own_and_feeds_the_same_pipelines() {
    let (upstream, url) = Recorder::grpc().await;
    // The harness's --otlp-grpc/--otlp-http add the receiver `otlp` beside the file's `otlp/internal`.
    let weir = Weir::with_config(&format!(
        r#"
receivers:
  otlp/internal:
    http: {{ endpoint: "127.0.0.1:0" }}
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
"#
    ));
    let internal = weir
        .listener("otlp/internal-http")
        .expect("the named receiver's listener is announced");
    assert_ne!(internal, weir.http);
    assert!(
        weir.listener("otlp/internal-grpc").is_none(),
        "grpc was left off"
    );
    let payload = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    let body = payload.encode_protobuf();
    let ct = [("content-type", "application/x-protobuf")];
    for addr in [internal, weir.http] {
        let url = format!("http://{addr}{}", Signal::Traces.http_path());
        let (status, _, resp) = post(&url, &ct, body.clone()).await;
        assert_eq!(status, 200, "{addr}: {resp:?}");
    }
    let got = upstream.wait_for_items(2 * payload.item_count()).await;
    assert_eq!(got, vec![payload.clone(), payload]);
    // Each listener counts its own connections.
    let accepted = |l: &str| format!(r#"weir_connections_accepted_total{{listener="{l}"}}"#);
    assert_eq!(weir.metric(&accepted("otlp/internal-http")).await, 1.0);
    assert_eq!(weir.metric(&accepted("otlp-http")).await, 1.0);
}
