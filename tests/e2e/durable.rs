//! Nothing acknowledged is lost: durable exporter queues through upstream outages, kill -9, a full
//! queue and a graceful shutdown with a backlog. Every test counts exactly: each request carries one span
//! with a unique name, and every name acknowledged to the client must reach the upstream (at least once;
//! duplicates are counted and reported).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use weir::{Payload, Signal};

use crate::harness::*;

fn one_span(name: &str) -> Vec<u8> {
    traces_of(vec![Span {
        name: name.into(),
        trace_id: vec![7; 16],
        span_id: vec![1; 8],
        ..Default::default()
    }])
    .encode_protobuf()
}

/// Span name -> times received.
fn received(r: &Recorder) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for p in r.received() {
        if let Payload::Traces(t) = p {
            for s in t
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                *m.entry(s.name.clone()).or_default() += 1;
            }
        }
    }
    m
}

/// Waits until every acknowledged name arrived; reports duplicates.
async fn all_arrive(upstream: &Recorder, acked: &[String], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let got = received(upstream);
        let missing: Vec<_> = acked.iter().filter(|n| !got.contains_key(*n)).collect();
        if missing.is_empty() {
            let duplicates: usize = got.values().map(|n| n - 1).sum();
            eprintln!(
                "{} acknowledged, {} distinct received, {duplicates} duplicate(s)",
                acked.len(),
                got.len()
            );
            return duplicates;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged items never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(url: &str, state: &std::path::Path, queue: &str) -> String {
    format!(
        r#"
state_dir: "{}"
limits: {{ request_timeout: 5s, retry_after: 1s }}
exporters:
  up:
    otlp:
      endpoint: "{url}"
    retry: {{ initial_interval: 20ms, max_interval: 200ms }}
    queue: {{ durable: true, {queue} }}
"#,
        state.display()
    )
}

/// Sends `n` one-span requests named `{prefix}-{i}` over HTTP, `concurrency` at a time; returns the
/// names acknowledged with 200 and the other statuses seen.
async fn send(weir: &Weir, prefix: &str, n: usize, concurrency: usize) -> (Vec<String>, Vec<u16>) {
    let mut acked = Vec::new();
    let mut others = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(concurrency) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|i| {
                let name = format!("{prefix}-{i}");
                let url = weir.http_url(Signal::Traces);
                tokio::spawn(async move {
                    let (status, _, _) = post(
                        &url,
                        &[("content-type", "application/x-protobuf")],
                        one_span(&name),
                    )
                    .await;
                    (name, status)
                })
            })
            .collect();
        for s in sends {
            let (name, status) = s.await.unwrap();
            if status == 200 {
                acked.push(name);
            } else {
                others.push(status);
            }
        }
    }
    (acked, others)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_outage_under_load_loses_nothing_acknowledged() {
    let (upstream, url) = Recorder::grpc().await;
    upstream.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path(), ""));
    // The upstream is down: weir acknowledges once the data is on disk.
    let (acked, others) = send(&weir, "outage", 200, 8).await;
    assert_eq!((acked.len(), others.len()), (200, 0), "{others:?}");
    assert_eq!(upstream.items(), 0);
    assert_eq!(
        weir.metric(r#"weir_exporter_queue_items{exporter="up"}"#)
            .await,
        200.0
    );
    assert!(
        weir.metric(r#"weir_exporter_queue_bytes{exporter="up"}"#)
            .await
            > 200.0 * 21.0
    );
    // The oldest item ages while the upstream stays down.
    weir.wait_for_metric_at_least(
        r#"weir_exporter_queue_oldest_age_seconds{exporter="up"}"#,
        0.5,
    )
    .await;
    // Back: the backlog drains.
    upstream.always(None);
    let duplicates = all_arrive(&upstream, &acked, Duration::from_secs(60)).await;
    assert_eq!(duplicates, 0, "an outage alone makes no duplicates");
    let deadline = Instant::now() + Duration::from_secs(10);
    while weir
        .metric(r#"weir_exporter_queue_batches{exporter="up"}"#)
        .await
        > 0.0
    {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_load_then_a_restart_delivers_every_acknowledged_item() {
    let (upstream, url) = Recorder::grpc().await;
    // Down during the first run: everything acknowledged is only on disk when weir dies.
    upstream.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let state = tempfile::tempdir().unwrap();
    let yaml = config(&url, state.path(), "segment_bytes: 4096");
    let mut weir = Weir::with_config(&yaml);
    let url_http = weir.http_url(Signal::Traces);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Four senders until weir dies under them.
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (url, stop, acked) = (url_http.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http::<http_body_util::Full<bytes::Bytes>>();
                for i in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let name = format!("kill-{s}-{i}");
                    let req = http::Request::post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(http_body_util::Full::new(bytes::Bytes::from(one_span(
                            &name,
                        ))))
                        .unwrap();
                    match client.request(req).await {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push(name),
                        Ok(_) => {}
                        Err(_) => return, // weir is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 300 {
        assert!(
            Instant::now() < deadline,
            "too few acknowledged before the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    weir.kill9();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(upstream.items(), 0);

    // Same state directory, upstream back.
    upstream.always(None);
    let weir = Weir::with_config(&yaml);
    let duplicates = all_arrive(&upstream, &acked, Duration::from_secs(60)).await;
    assert_eq!(duplicates, 0);
    assert!(
        weir.metric(r#"weir_exporter_queue_replayed_items_total{exporter="up"}"#)
            .await
            >= acked.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_durable_queue_refuses_with_retry_hints_and_loses_nothing() {
    let (upstream, url) = Recorder::grpc().await;
    upstream.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let state = tempfile::tempdir().unwrap();
    // Room for a few dozen one-span records.
    let weir = Weir::with_config(&config(
        &url,
        state.path(),
        "max_disk_bytes: 4096, segment_bytes: 1024",
    ));
    let (acked, others) = send(&weir, "full", 100, 4).await;
    assert!(!acked.is_empty() && acked.len() < 100, "{}", acked.len());
    assert!(others.iter().all(|s| *s == 503), "{others:?}");
    let (status, h, body) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/x-protobuf")],
        one_span("one-more"),
    )
    .await;
    assert_eq!(status, 503, "{body:?}");
    assert_eq!(h["retry-after"], "1");
    let err = grpc_raw(&weir, Signal::Traces, one_span("grpc"), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="queue_full"}"#
        )
        .await
            >= 1.0
    );
    upstream.always(None);
    all_arrive(&upstream, &acked, Duration::from_secs(60)).await;
    // Room again once delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (acked, _) = send(&weir, "after", 1, 1).await;
        if acked.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never had room again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_shutdown_keeps_the_backlog_for_the_next_run() {
    let (upstream, url) = Recorder::grpc().await;
    upstream.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let state = tempfile::tempdir().unwrap();
    // A shutdown that waited for the backlog would wait out the outage: with this timeout, longer
    // than `terminate` waits for the exit, it could not end in time.
    let yaml =
        config(&url, state.path(), "").replace("limits: {", "limits: { shutdown_timeout: 10m,");
    let mut weir = Weir::with_config(&yaml);
    let (acked, _) = send(&weir, "backlog", 50, 5).await;
    assert_eq!(acked.len(), 50);
    assert!(weir.terminate().success());
    assert_eq!(upstream.items(), 0, "the upstream was down throughout");
    assert!(
        weir.logged(|l| l.contains("drained; bye")),
        "a clean exit, the backlog left on disk"
    );
    upstream.always(None);
    let _weir = Weir::with_config(&yaml);
    assert_eq!(
        all_arrive(&upstream, &acked, Duration::from_secs(60)).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_disk_write_is_refused_like_a_full_queue_and_loses_nothing() {
    let (upstream, url) = Recorder::grpc().await;
    upstream.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let state = tempfile::tempdir().unwrap();
    // Files of at most 8 KiB, segments of 64 KiB: each segment hits the limit after a few dozen records,
    // as a full disk would stop it; weir refuses that request and starts a new segment for the next.
    let weir =
        Weir::with_config_and_file_limit(&config(&url, state.path(), "segment_bytes: 65536"), 16);
    let (acked, others) = send(&weir, "disk", 200, 4).await;
    assert!(!acked.is_empty() && !others.is_empty(), "{}", acked.len());
    assert!(others.iter().all(|s| *s == 503), "{others:?}");
    assert!(weir.logged(|l| l.contains("durable queue write failed")));
    // weir keeps serving, and what it acknowledged is intact on disk.
    assert_eq!(get(&format!("http://{}/healthz", weir.admin)).await.0, 200);
    upstream.always(None);
    assert_eq!(
        all_arrive(&upstream, &acked, Duration::from_secs(60)).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_data_an_upstream_refuses_for_good_is_dead_lettered_and_replayable() {
    let (upstream, url) = Recorder::grpc().await;
    // An expired API key: every export is refused for good.
    upstream.always(Some(Answer::Status(
        tonic::Code::PermissionDenied,
        "api key expired",
    )));
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path(), "sync: always"));
    let (acked, others) = send(&weir, "refused", 20, 4).await;
    assert_eq!((acked.len(), others.len()), (20, 0), "{others:?}");
    weir.wait_for_metric(
        r#"weir_exporter_dead_lettered_items_total{signal="traces",exporter="up"}"#,
        20.0,
    )
    .await;
    assert_eq!(upstream.items(), 0);
    assert_eq!(
        weir.metric(r#"weir_exporter_dropped_items_total{signal="traces",exporter="up"}"#)
            .await,
        0.0,
        "nothing acknowledged is dropped"
    );
    let weir_bin = env!("CARGO_BIN_EXE_weir");
    let state_arg = state.path().to_str().unwrap();
    let listed = ok(std::process::Command::new(weir_bin)
        .args(["dead-letter", "list", "--state-dir", state_arg])
        .output()
        .unwrap());
    assert!(
        listed.contains("up: ") && listed.contains("20 item(s)"),
        "{listed}"
    );

    // The key is renewed; the dead letters go through weir again and arrive, each once.
    upstream.always(None);
    let out = ok(std::process::Command::new(weir_bin)
        .args([
            "dead-letter",
            "replay",
            "--state-dir",
            state_arg,
            "--exporter",
            "up",
        ])
        .args(["--to", &format!("http://{}", weir.http)])
        .output()
        .unwrap());
    assert!(out.contains("20 item(s) replayed"), "{out}");
    assert_eq!(
        all_arrive(&upstream, &acked, Duration::from_secs(10)).await,
        0
    );
    let listed = ok(std::process::Command::new(weir_bin)
        .args(["dead-letter", "list", "--state-dir", state_arg])
        .output()
        .unwrap());
    assert!(listed.contains("no dead letters"), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_queue_keeps_refused_data_until_the_upstream_takes_it() {
    let (upstream, url) = Recorder::grpc().await;
    upstream.always(Some(Answer::Status(
        tonic::Code::Unauthenticated,
        "credentials revoked",
    )));
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path(), "on_permanent_error: hold"));
    let (acked, _) = send(&weir, "held", 10, 2).await;
    assert_eq!(acked.len(), 10);
    weir.wait_for_metric(r#"weir_exporter_held{exporter="up"}"#, 1.0)
        .await;
    assert_eq!(upstream.items(), 0);
    // The operator fixes the credentials: delivery resumes by itself.
    upstream.always(None);
    assert_eq!(
        all_arrive(&upstream, &acked, Duration::from_secs(30)).await,
        0
    );
    weir.wait_for_metric(r#"weir_exporter_held{exporter="up"}"#, 0.0)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_failing_retryably_past_max_age_is_dead_lettered_not_retried_forever() {
    let (upstream, url) = Recorder::grpc().await;
    upstream.always(Some(Answer::Status(
        tonic::Code::Unavailable,
        "down for good",
    )));
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path(), "max_age: 1s"));
    let (acked, _) = send(&weir, "stuck", 5, 1).await;
    assert_eq!(acked.len(), 5);
    weir.wait_for_metric(
        r#"weir_exporter_dead_lettered_items_total{signal="traces",exporter="up"}"#,
        5.0,
    )
    .await;
}
