//! The memory limit under real pressure. Large requests held by a slow upstream push weir's resident
//! memory up to `limits.max_memory_bytes`: weir refuses new requests (503, reason `memory_limit`) without
//! its peak resident memory passing the limit, every request it acknowledged arrives, and once the
//! upstream drains what weir holds, weir admits requests again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use weir::Signal;

use crate::harness::*;

const LIMIT: u64 = 192 << 20;
const SPANS: usize = 4000;

/// A request of `SPANS` spans, about 1.5 MiB of protobuf, each span named `{tag}/{i}`.
fn big_request(tag: usize) -> Vec<u8> {
    let spans = (0..SPANS)
        .map(|i| Span {
            name: format!("{tag}/{i}"),
            trace_id: (tag as u128 * 100_000 + i as u128).to_be_bytes().to_vec(),
            span_id: vec![1; 8],
            attributes: (0..4)
                .map(|a| kv(&format!("attr.{a}"), &format!("{a}-{i}-{}", "x".repeat(60))))
                .collect(),
            ..Default::default()
        })
        .collect();
    traces_of(spans).encode_protobuf()
}

/// A `VmHWM`/`VmRSS`-style field of `/proc/<pid>/status`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Sends one request over OTLP/HTTP or OTLP/gRPC: `Ok` when acknowledged, `Err` with the refusal's
/// message when refused for memory; anything else fails the test.
async fn send(grpc: bool, url: &str, body: Vec<u8>) -> Result<(), String> {
    if grpc {
        return match grpc_raw_to(url, Signal::Traces, body, false).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::Unavailable => {
                use tonic_types::StatusExt;
                assert_eq!(
                    s.get_details_retry_info().and_then(|r| r.retry_delay),
                    Some(Duration::from_secs(1))
                );
                Err(s.message().to_string())
            }
            Err(s) => panic!("unexpected status {s:?}"),
        };
    }
    let (status, h, body) = post(url, &[("content-type", "application/x-protobuf")], body).await;
    match status {
        200 => Ok(()),
        503 => {
            assert_eq!(h["retry-after"], "1");
            Err(String::from_utf8_lossy(&body).into_owned())
        }
        s => panic!("unexpected status {s}: {body:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn under_memory_pressure_over_http_weir_refuses_stays_under_its_limit_and_recovers() {
    pressure(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_memory_pressure_over_grpc_weir_refuses_stays_under_its_limit_and_recovers() {
    pressure(true).await;
}

async fn pressure(grpc: bool) {
    let (upstream, url) = Recorder::grpc().await;
    // The exporter queue is far bigger than the memory limit, so the memory guard is what refuses.
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ max_memory_bytes: {LIMIT}, retry_after: 1s, request_timeout: 60s }}
exporters:
  upstream:
    otlp:
      endpoint: "{url}"
      compression: none
    queue: {{ max_batches: 100000, max_bytes: 4000000000, concurrency: 256 }}
"#
    ));
    let baseline = proc_status_bytes(weir.pid(), "VmRSS:");
    assert!(baseline < LIMIT / 2, "weir starts at {baseline} bytes");

    // Phase 1: a slow upstream holds every batch for 2 s while 32 senders keep sending large requests,
    // until one is refused for memory.
    upstream.always(Some(Answer::Slow(Duration::from_secs(2))));
    let refused = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = if grpc {
        weir.grpc_url()
    } else {
        weir.http_url(Signal::Traces)
    };
    let senders: Vec<_> = (0..32)
        .map(|t| {
            let (refused, url) = (refused.clone(), url.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut n = 0;
                while !refused.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let tag = t * 1000 + n;
                    n += 1;
                    match send(grpc, &url, big_request(tag)).await {
                        Ok(()) => acked.push(tag),
                        Err(message) => {
                            assert!(message.contains("memory limit"), "{message}");
                            refused.store(true, Ordering::Relaxed);
                        }
                    }
                }
                acked
            })
        })
        .collect();
    while !refused.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "never refused: RSS {} of a {LIMIT}-byte limit",
            proc_status_bytes(weir.pid(), "VmRSS:")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Phase 2: the upstream is fast again; what weir holds drains.
    upstream.always(None);
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    let peak = proc_status_bytes(weir.pid(), "VmHWM:");
    eprintln!(
        "baseline RSS {} MiB, peak {} MiB, limit {} MiB; {} large requests acknowledged",
        baseline >> 20,
        peak >> 20,
        LIMIT >> 20,
        acked.len()
    );
    assert!(!acked.is_empty(), "no request got through before the limit");
    assert!(
        peak <= LIMIT,
        "peak RSS {peak} passed the {LIMIT}-byte limit"
    );
    let transport = if grpc { "grpc" } else { "http" };
    assert!(
        weir.metric(&format!(
            r#"weir_refused_requests_total{{signal="traces",transport="{transport}",reason="memory_limit"}}"#
        ))
        .await
            >= 1.0
    );
    // Acknowledged means the upstream accepted it; refused requests never reached it.
    assert_eq!(upstream.items(), acked.len() * SPANS);

    // Phase 3: with the pressure gone, weir admits again (resident memory back under 80% of the limit).
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(message) = send(grpc, &url, big_request(999_999)).await {
        assert!(message.contains("memory limit"), "{message}");
        assert!(
            Instant::now() < deadline,
            "still refusing 20 s after the pressure ended: RSS {} of a {LIMIT}-byte limit",
            proc_status_bytes(weir.pid(), "VmRSS:")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And the memory the burst used goes back to the OS, rather than staying resident in the allocator
    // (which would shrink the budget for the next burst).
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_status_bytes(weir.pid(), "VmRSS:") > LIMIT / 2 {
        assert!(
            Instant::now() < deadline,
            "resident memory stays at {} MiB with nothing in flight",
            proc_status_bytes(weir.pid(), "VmRSS:") >> 20
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "after: RSS {} MiB",
        proc_status_bytes(weir.pid(), "VmRSS:") >> 20
    );
}
