//! Shutdown as load balancers like it: on SIGTERM `/readyz` fails at once while weir keeps serving for
//! `limits.shutdown_drain_delay`, and a second signal ends the wait at once.

use weir::Signal;

use crate::harness::*;

/// Polls `/readyz` until it answers `want` (bounded: 500 tries, 20 ms apart).
async fn wait_for_readyz(weir: &Weir, want: u16) {
    for _ in 0..500 {
        if get(&format!("http://{}/readyz", weir.admin)).await.0 == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("/readyz never answered {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_first_keeps_serving_and_a_second_signal_exits_at_once() {
    let (upstream, url) = Recorder::grpc().await;
    // A drain delay far longer than the test: only the second signal can end it.
    let mut weir = Weir::with_config(&format!(
        r#"
limits: {{ shutdown_drain_delay: 10m }}
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
"#
    ));
    wait_for_readyz(&weir, 200).await;
    weir.signal("TERM");
    wait_for_readyz(&weir, 503).await;
    // Not ready, but still serving: a load balancer that has not caught up loses nothing.
    let (status, _, _) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 200, "served during the drain delay");
    upstream.wait_for_items(1).await;
    let grpc = grpc_raw(&weir, Signal::Traces, prost_trace(), false).await;
    assert!(grpc.is_ok(), "gRPC too: {grpc:?}");

    weir.signal("INT");
    let exit = tokio::task::spawn_blocking(move || weir.wait_exit())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

fn prost_trace() -> Vec<u8> {
    let weir::Payload::Traces(t) = traces_of(vec![opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: vec![3; 16],
        span_id: vec![4; 8],
        name: "during drain".into(),
        ..Default::default()
    }]) else {
        unreachable!()
    };
    prost::Message::encode_to_vec(&t)
}
