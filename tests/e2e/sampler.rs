//! The reference sampler, compiled to Wasm, through the real weir binary: the same traces get the same
//! decisions on two weir instances, and the adaptive ratio converges to its target.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use weir::{Payload, Signal};

use crate::filters::{wasm, wasm_v01};
use crate::harness::*;

/// `n` single-span traces with trace ids from a fixed sequence.
fn traces(n: u64, seed: u64) -> Payload {
    let mut x = seed;
    let spans = (0..n)
        .map(|i| {
            let mut id = [0u8; 16];
            for chunk in id.chunks_mut(8) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                chunk.copy_from_slice(&x.to_be_bytes());
            }
            Span {
                trace_id: id.to_vec(),
                span_id: (i + 1).to_be_bytes().to_vec(),
                name: format!("op-{i}"),
                ..Default::default()
            }
        })
        .collect();
    traces_of(spans)
}

fn config(url: &str, sampler: &str) -> String {
    config_with(url, sampler, &wasm("sampler"))
}

fn config_with(url: &str, sampler: &str, module: &str) -> String {
    format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - {{ name: sampler, module: "{module}", config: {sampler} }}
"#
    )
}

fn kept(payloads: &[Payload]) -> BTreeSet<(Vec<u8>, String)> {
    payloads
        .iter()
        .flat_map(|p| match p {
            Payload::Traces(t) => t
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| (s.trace_id.clone(), s.trace_state.clone()))
                .collect::<Vec<_>>(),
            _ => vec![],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_weirs_keep_the_same_traces() {
    let batch = traces(400, 42);
    let mut results = Vec::new();
    // One weir runs the sampler as built today, the other its 0.1 build: they must agree.
    for module in [wasm("sampler"), wasm_v01("sampler")] {
        let (upstream, url) = Recorder::grpc().await;
        let weir = Weir::with_config(&config_with(&url, "{ ratio: 0.25 }", &module));
        grpc_raw(&weir, Signal::Traces, batch.encode_protobuf(), false)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while upstream.calls() == 0 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        results.push(kept(&upstream.received()));
    }
    assert_eq!(results[0], results[1], "consistent across instances");
    let n = results[0].len();
    assert!((60..=140).contains(&n), "about a quarter of 400 kept: {n}");
    assert!(
        results[0].iter().all(|(_, ts)| ts == "ot=th:c"),
        "th recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_adaptive_ratio_converges_to_its_target() {
    let (_upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&config(
        &url,
        "{ target_spans_per_second: 500, min_ratio: 0.01, adjust_interval_ms: 200 }",
    ));
    // About 5,000 spans/s offered, one request at a time (one filter instance), for at most 600
    // requests (bounded by count, not by the clock of a shared machine).
    let gauge = r#"weir_filter_gauge{signal="traces",filter="sampler",name="ratio"}"#;
    let started = Instant::now();
    let mut seed = 1;
    let mut ratio = 1.0;
    for _ in 0..600 {
        let tick = Instant::now();
        seed += 1;
        grpc_raw(
            &weir,
            Signal::Traces,
            traces(100, seed).encode_protobuf(),
            false,
        )
        .await
        .unwrap();
        if let Some(rest) = Duration::from_millis(20).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        if started.elapsed() > Duration::from_secs(3) {
            ratio = weir.metric(gauge).await;
            let offered = 100.0 / tick.elapsed().as_secs_f64().max(0.02);
            let target_ratio = 500.0 / offered;
            if (ratio / target_ratio - 1.0).abs() < 0.35 {
                return;
            }
        }
    }
    panic!("ratio {ratio} did not converge to the target in 600 requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_adaptive_target_holds_for_the_whole_weir_with_32_senders() {
    // Eight instances of the sampler run at once; each sees an eighth of the traffic, but they share
    // one rate, so what leaves weir is the target, not eight times it.
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - name: sampler
        module: "{}"
        config: {{ target_spans_per_second: 500, min_ratio: 0.001, adjust_interval_ms: 200 }}
        limits: {{ concurrency: 8 }}
"#,
        wasm("sampler")
    ));
    let url = weir.grpc_url();
    let started = Instant::now();
    let stop = started + Duration::from_secs(10);
    // 32 senders, each 10 spans every 100 ms: about 3,200 spans per second offered, little enough
    // for a debug build sharing the machine with other tests.
    let senders: Vec<_> = (0..32u64)
        .map(|sender| {
            let url = url.clone();
            tokio::spawn(async move {
                let channel = tonic::transport::Endpoint::from_shared(url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let mut client = tonic::client::Grpc::new(channel);
                let mut seed = sender * 1_000_000;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while Instant::now() < stop {
                    tick.tick().await;
                    seed += 1;
                    client.ready().await.unwrap();
                    let body = bytes::Bytes::from(traces(10, seed).encode_protobuf());
                    let path = http::uri::PathAndQuery::from_static(Signal::Traces.grpc_path());
                    client
                        .unary(tonic::Request::new(body), path, RawCodec::new())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    // After 4 s of convergence, measure what leaves over the next 5 s.
    let measure_from = started + Duration::from_secs(4);
    tokio::time::sleep_until(measure_from.into()).await;
    let (t0, n0) = (Instant::now(), upstream.items());
    tokio::time::sleep_until((measure_from + Duration::from_secs(5)).into()).await;
    let (t1, n1) = (Instant::now(), upstream.items());
    for s in senders {
        s.await.unwrap();
    }
    let kept = (n1 - n0) as f64 / (t1 - t0).as_secs_f64();
    eprintln!("kept {kept:.0} spans/s against a target of 500");
    assert!(
        (kept / 500.0 - 1.0).abs() < 0.10,
        "kept {kept:.0} spans/s against a target of 500"
    );
}
