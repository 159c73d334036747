//! Requests built to blow the memory limit (issue 20): a few KiB on the wire that inflate to the
//! decompression limit, and inflate to bodies of empty messages, each of which decodes to a struct a
//! hundred times its size. Sent concurrently, in JSON and protobuf, gzip and zstd, over HTTP and gRPC,
//! to a pipeline with a filter (so the request is decoded) and one without. weir refuses them, its
//! peak resident memory stays within `max_memory_bytes` plus a documented constant, and it keeps
//! serving.

use weir::Signal;
use weir_wire::codec::{Encoding, compress};

use crate::filters::wasm;
use crate::harness::*;

const LIMIT: u64 = 256 << 20;
/// What weir may hold beyond its limit: the allocator's slack, stacks, buffers below the charge
/// granularity (README, "Memory limit").
const SLACK: u64 = 64 << 20;
/// The decompression limit: each bomb inflates to just under it.
const INFLATED: usize = 32 << 20;

/// `{"resourceSpans":[{"scopeSpans":[{"spans":[{},{},...]}]}]}` of about `INFLATED` bytes.
fn json_bomb(signal: Signal) -> Vec<u8> {
    let (outer, inner, items) = match signal {
        Signal::Traces => ("resourceSpans", "scopeSpans", "spans"),
        Signal::Logs => ("resourceLogs", "scopeLogs", "logRecords"),
        Signal::Metrics => ("resourceMetrics", "scopeMetrics", "metrics"),
        Signal::Profiles => ("resourceProfiles", "scopeProfiles", "profiles"),
    };
    let head = format!(r#"{{"{outer}":[{{"{inner}":[{{"{items}":["#);
    let n = (INFLATED - 100) / 3;
    let mut body = Vec::with_capacity(INFLATED);
    body.extend_from_slice(head.as_bytes());
    for i in 0..n {
        body.extend_from_slice(if i == 0 { b"{}" } else { b",{}" });
    }
    body.extend_from_slice(b"]}]}]}");
    body
}

/// One resource holding about `INFLATED / 2` empty scopes (`12 00` repeated).
fn protobuf_bomb() -> Vec<u8> {
    let scopes = [0x12u8, 0x00].repeat((INFLATED - 16) / 2);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(scopes.len() as u64, &mut body);
    body.extend_from_slice(&scopes);
    body
}

fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn decompression_and_decoding_bombs_cannot_take_weir_past_its_memory_limit() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ max_memory_bytes: {LIMIT}, max_decompressed_bytes: {INFLATED}, retry_after: 1s }}
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - {{ name: sample, module: "{}", config: {{ ratio: 1.0 }} }}
  logs:
    exporters: [up]
  profiles:
    exporters: [up]
"#,
        wasm("sampler")
    ));
    let baseline = vm_hwm(weir.pid());
    let mut bombs: Vec<(String, Signal, &str, Encoding, Vec<u8>)> = Vec::new();
    for signal in [Signal::Traces, Signal::Logs, Signal::Profiles] {
        for encoding in [Encoding::Gzip, Encoding::Zstd] {
            let json = json_bomb(signal);
            let proto = protobuf_bomb();
            for (ct, raw) in [
                ("application/json", json),
                ("application/x-protobuf", proto),
            ] {
                let wire = compress(encoding, 9, &[bytes::Bytes::from(raw)]).to_vec();
                assert!(wire.len() < 1 << 20, "a bomb is small on the wire");
                bombs.push((
                    format!("{signal} {ct} {}", encoding.as_str()),
                    signal,
                    ct,
                    encoding,
                    wire,
                ));
            }
        }
    }
    // Four of each at once over HTTP.
    for (what, signal, ct, encoding, wire) in &bombs {
        let sends: Vec<_> = (0..4)
            .map(|_| {
                let (url, wire) = (weir.http_url(*signal), wire.clone());
                let (ct, enc) = (*ct, encoding.as_str());
                tokio::spawn(async move {
                    post(
                        &url,
                        &[("content-type", ct), ("content-encoding", enc)],
                        wire,
                    )
                    .await
                })
            })
            .collect();
        for s in sends {
            let (status, _, body) = s.await.unwrap();
            assert!(
                status == 413 || status == 503,
                "{what}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // And protobuf bombs over gRPC, gzip (the encoding every OTLP exporter offers).
    let wire = protobuf_bomb();
    for signal in [Signal::Traces, Signal::Logs, Signal::Profiles] {
        let sends: Vec<_> = (0..4)
            .map(|_| {
                let (url, wire) = (weir.grpc_url(), wire.clone());
                tokio::spawn(async move { grpc_raw_to(&url, signal, wire, true).await })
            })
            .collect();
        for s in sends {
            let status = s.await.unwrap().unwrap_err();
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                ),
                "{signal} over gRPC: {status:?}"
            );
        }
    }
    let peak = vm_hwm(weir.pid());
    eprintln!(
        "baseline {} MiB, peak {} MiB, limit {} MiB",
        baseline >> 20,
        peak >> 20,
        LIMIT >> 20
    );
    assert!(
        peak <= LIMIT + SLACK,
        "peak RSS {} MiB past the {} MiB limit plus {} MiB",
        peak >> 20,
        LIMIT >> 20,
        SLACK >> 20
    );
    // weir keeps serving, with and without the filter.
    for signal in [Signal::Traces, Signal::Logs, Signal::Profiles] {
        let file = match signal {
            Signal::Traces => "trace.json",
            Signal::Profiles => "profiles.json",
            _ => "logs.json",
        };
        let (status, _, _) = post(
            &weir.http_url(signal),
            &[("content-type", "application/json")],
            example(file),
        )
        .await;
        assert_eq!(status, 200, "{signal}");
    }
    // 1 span, 1 log record, 3 samples.
    upstream.wait_for_items(5).await;
    assert!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="too_large"}"#
        )
        .await
            >= 1.0
    );
}
