//! The reference router, compiled to Wasm, through the real weir binary: routing by each selector,
//! fan-out, unknown exporter names refused, and a dead upstream that does not hold up the other.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use weir::{Payload, Signal};

use crate::filters::{wasm, wasm_v01};
use crate::harness::*;

/// One resource with `tenant`, and spans given as (name, http.route).
fn resource(tenant: &str, spans: &[(&str, &str)]) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("tenant", tenant)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: spans
                .iter()
                .map(|(name, route)| Span {
                    name: name.to_string(),
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    attributes: vec![kv("http.route", route)],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn traces(resources: Vec<ResourceSpans>) -> Vec<u8> {
    Payload::Traces(ExportTraceServiceRequest {
        resource_spans: resources,
    })
    .encode_protobuf()
}

fn span_names(received: &[Payload]) -> Vec<String> {
    let mut names: Vec<String> = received
        .iter()
        .flat_map(|p| match p {
            Payload::Traces(t) => t.resource_spans.clone(),
            _ => vec![],
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .map(|s| s.name)
        .collect();
    names.sort();
    names
}

async fn post_traces(weir: &Weir, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
    let mut h = vec![("content-type", "application/x-protobuf")];
    h.extend_from_slice(headers);
    post(&weir.http_url(Signal::Traces), &h, body).await.0
}

const RULES: &str = r#"
          routes:
            - { from: resource_attribute, key: tenant, exact: beta, exporters: [b] }
            - { from: header, key: x-team, prefix: pay, exporters: [b, c] }
            - { from: attribute, key: http.route, regex: "^/internal/", exporters: [c] }
          default: [a]"#;

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_resource_attribute_header_and_item_attribute_and_fans_out() {
    routes_by_resource_attribute_header_and_item_attribute_and_fans_out_with(wasm("router")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_resource_attribute_header_and_item_attribute_and_fans_out_built_against_0_1() {
    routes_by_resource_attribute_header_and_item_attribute_and_fans_out_with(wasm_v01("router"))
        .await;
}

async fn routes_by_resource_attribute_header_and_item_attribute_and_fans_out_with(module: String) {
    let (a, a_url) = Recorder::grpc().await;
    let (b, b_url) = Recorder::grpc().await;
    let (c, c_url) = Recorder::http().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  a: {{ otlp: {{ endpoint: "{a_url}" }} }}
  b: {{ otlp: {{ endpoint: "{b_url}" }} }}
  c: {{ otlp: {{ endpoint: "{c_url}", protocol: http }} }}
pipelines:
  traces:
    exporters: [a]
    filters:
      - name: route
        module: "{}"
        on_error: fail-closed
        config:{RULES}
"#,
        module
    ));
    // One request, three destinations: a whole resource by its attribute, and the spans of another
    // resource split by their own attribute.
    let body = traces(vec![
        resource("beta", &[("beta-1", "/public"), ("beta-2", "/internal/x")]),
        resource(
            "gamma",
            &[
                ("gamma-internal", "/internal/y"),
                ("gamma-public", "/public"),
            ],
        ),
    ]);
    grpc_raw(&weir, Signal::Traces, body, false).await.unwrap();
    // By header, to two exporters.
    let body = traces(vec![resource("gamma", &[("payroll", "/public")])]);
    assert_eq!(
        post_traces(&weir, &[("x-team", "payroll")], body).await,
        200
    );

    let (got_a, got_b, got_c) = (
        a.wait_for_items(1).await,
        b.wait_for_items(3).await,
        c.wait_for_items(2).await,
    );
    assert_eq!(span_names(&got_a), ["gamma-public"]);
    assert_eq!(span_names(&got_b), ["beta-1", "beta-2", "payroll"]);
    assert_eq!(span_names(&got_c), ["gamma-internal", "payroll"]);
    // Nothing more arrives later: every request was answered, which a memory queue does once its
    // exporters delivered it, and nothing is left in a queue.
    for exporter in ["a", "b", "c"] {
        let queued = format!(r#"weir_exporter_queue_batches{{exporter="{exporter}"}}"#);
        assert_eq!(weir.metric(&queued).await, 0.0, "{exporter}");
    }
    assert_eq!((a.items(), b.items(), c.items()), (1, 3, 2));
    // A split part keeps its resource.
    let Payload::Traces(t) = &got_c[0] else {
        panic!()
    };
    let res = t.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(res.attributes, vec![kv("tenant", "gamma")]);
    let counter = |name: &str| {
        format!(r#"weir_filter_counter_total{{signal="traces",filter="route",name="{name}"}}"#)
    };
    assert_eq!(weir.metric(&counter("matched")).await, 4.0);
    assert_eq!(weir.metric(&counter("defaulted")).await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_exporter_names_are_refused_when_the_config_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
exporters:
  a: {{ otlp: {{ endpoint: "http://127.0.0.1:1" }} }}
pipelines:
  traces:
    exporters: [a]
    filters:
      - name: route
        module: "{}"
        config: {{ routes: [{{ from: header, key: x-team, exact: pay, exporters: [payments] }}] }}
"#,
            wasm("router")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("routes[0].exporters: unknown exporter `payments` (weir has: a)"),
        "{err}"
    );

    // Pushing it to a running weir is refused the same way, and nothing changes.
    let (_up, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["filter", "push", "route", &wasm("router"), "--config"])
        .arg(r#"{"default":["nope"]}"#)
        .args(["--admin", &format!("http://{}", weir.admin)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("422") && err.contains("unknown exporter `nope`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_upstream_fills_its_own_queue_and_the_other_keeps_receiving() {
    let (live, live_url) = Recorder::grpc().await;
    let (dead, dead_url) = Recorder::grpc().await;
    dead.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    // Eight admission slots in all: if requests for the dead upstream held theirs while retrying, the
    // live upstream's requests would be refused. The dead exporter's senders take one request each
    // (`coalesce.max_items: 1`: every request here has one span), so it holds at most 2 in flight and 4
    // queued of the 16, however the arrivals bunch up.
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ max_concurrent_requests: 8, request_timeout: 8s }}
exporters:
  live: {{ otlp: {{ endpoint: "{live_url}" }} }}
  dead:
    otlp:
      endpoint: "{dead_url}"
    retry: {{ initial_interval: 20ms, max_interval: 100ms }}
    queue: {{ max_batches: 4, concurrency: 2, coalesce: {{ max_items: 1 }} }}
pipelines:
  traces:
    exporters: [live]
    filters:
      - name: route
        module: "{}"
        config: {{ routes: [{{ from: header, key: x-tenant, exact: dead, exporters: [dead] }}] }}
"#,
        wasm("router")
    ));
    // 16 requests for the dead upstream at once, and while they are pending, 60 for the live one.
    let dead_sends: Vec<_> = (0..16)
        .map(|i| {
            let body = traces(vec![resource("t", &[(&format!("dead-{i}"), "/")])]);
            let url = weir.http_url(Signal::Traces);
            tokio::spawn(async move {
                let h = [
                    ("content-type", "application/x-protobuf"),
                    ("x-tenant", "dead"),
                ];
                post(&url, &h, body).await.0
            })
        })
        .collect();
    // Every one of the 16 was taken into the dead exporter's queue or refused before the live
    // requests start.
    let refused = |reason: &str| {
        format!(
            r#"weir_refused_requests_total{{signal="traces",transport="http",reason="{reason}"}}"#
        )
    };
    let dead_batches = r#"weir_exporter_queue_batches{exporter="dead"}"#;
    let (w, refused_of) = (&weir, &refused);
    let settled = wait_for("the dead upstream's 16 requests settling", || async move {
        let n = w.metric(&refused_of("queue_full")).await
            + w.metric(&refused_of("overloaded")).await
            + w.metric(&refused_of("upstream_unavailable")).await
            + w.metric(dead_batches).await;
        (n >= 16.0).then_some(n)
    })
    .await;
    assert_eq!(
        settled, 16.0,
        "the dead upstream's requests, queued or refused"
    );
    let mut live_statuses = Vec::new();
    for round in 0..15 {
        let sends: Vec<_> = (0..4)
            .map(|i| {
                let body = traces(vec![resource("t", &[(&format!("live-{round}-{i}"), "/")])]);
                let url = weir.http_url(Signal::Traces);
                tokio::spawn(async move {
                    post(&url, &[("content-type", "application/x-protobuf")], body)
                        .await
                        .0
                })
            })
            .collect();
        for s in sends {
            live_statuses.push(s.await.unwrap());
        }
    }
    // The live requests did not wait for the dead upstream's requests to time out: those it queued
    // are still waiting (for their 8 s deadline) when the last live one is answered.
    let waiting = dead_sends.iter().filter(|s| !s.is_finished()).count();
    assert!(waiting > 0, "every dead request had finished");
    assert!(live_statuses.iter().all(|s| *s == 200), "{live_statuses:?}");
    // 60 requests of one span each (merged or not on their way).
    assert_eq!(span_names(&live.wait_for_items(60).await).len(), 60);

    // The dead upstream's requests: refused at once when its queue was full, or failed at their
    // deadline; never acknowledged.
    let mut dead_statuses = Vec::new();
    for s in dead_sends {
        dead_statuses.push(s.await.unwrap());
    }
    assert!(dead_statuses.iter().all(|s| *s == 503), "{dead_statuses:?}");
    // At most 6 were taken (2 in flight, 4 queued); the rest were refused at once: as queue_full, or,
    // for those that arrived while the burst held all 8 admission slots, as overloaded, or, once the
    // upstream had been failing for a second, as upstream_unavailable (how the 16 bunch up decides the
    // split, not the total).
    let queue_full = weir.metric(&refused("queue_full")).await;
    let overloaded = weir.metric(&refused("overloaded")).await;
    // Those that came once the upstream had been failing for a second: refused at once as down.
    let down = weir.metric(&refused("upstream_unavailable")).await;
    assert!(
        queue_full + overloaded + down >= 10.0,
        "{queue_full} + {overloaded} + {down}"
    );
    assert!(dead.calls() > 0);
    assert_eq!(dead.items(), 0);

    // The upstream comes back: its traffic flows again, and the live one got nothing of it.
    dead.always(None);
    let body = traces(vec![resource("t", &[("dead-again", "/")])]);
    assert_eq!(post_traces(&weir, &[("x-tenant", "dead")], body).await, 200);
    assert_eq!(span_names(&dead.received()), ["dead-again"]);
    assert!(
        !span_names(&live.received())
            .iter()
            .any(|n| n.starts_with("dead"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_upstream_never_waits_for_a_dead_one_with_memory_queues() {
    live_never_waits_for_dead(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_upstream_never_waits_for_a_dead_one_when_a_router_splits_a_resource() {
    live_never_waits_for_dead(true).await;
}

/// Issue 20: with memory queues, requests whose items went to a live and a dead upstream were
/// answered only at their deadline, so clients that wait for their answer before sending more (every
/// SDK's batch exporter) delivered to the live upstream 41 s late (p50) during an outage. Here the
/// deadline is ten minutes: a request that waited for the dead upstream would not be answered within
/// the test's bounded waits. `routed`: the router sends the items of one resource to both (`from:
/// attribute`); else the pipeline fans every request out to both.
async fn live_never_waits_for_dead(routed: bool) {
    let (live, live_url) = Recorder::grpc().await;
    let (dead, dead_url) = Recorder::grpc().await;
    dead.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let pipeline = if routed {
        format!(
            r#"
    exporters: [live]
    filters:
      - name: route
        module: "{}"
        config: {{ routes: [{{ from: attribute, key: http.route, prefix: /dead/, exporters: [dead] }}] }}"#,
            wasm("router")
        )
    } else {
        "\n    exporters: [live, dead]".to_string()
    };
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ request_timeout: 10m }}
exporters:
  live: {{ otlp: {{ endpoint: "{live_url}" }} }}
  dead: {{ otlp: {{ endpoint: "{dead_url}" }} }}
pipelines:
  traces:{pipeline}
"#
    ));
    // One resource, its spans for the live upstream and (routed) one for the dead one.
    let request = |name: &str| {
        let mut spans = vec![(name.to_string(), "/".to_string())];
        if routed {
            spans.push((format!("{name}-dead"), "/dead/x".to_string()));
        }
        let spans: Vec<(&str, &str)> = spans
            .iter()
            .map(|(n, r)| (n.as_str(), r.as_str()))
            .collect();
        traces(vec![resource("t", &spans)])
    };
    // The first request's part for the dead upstream waits in its queue, retried: the probe.
    let probe = {
        let body = request("probe");
        let url = weir.http_url(Signal::Traces);
        tokio::spawn(async move {
            post(&url, &[("content-type", "application/x-protobuf")], body)
                .await
                .0
        })
    };
    weir.wait_for_metric(r#"weir_exporter_upstream_down{exporter="dead"}"#, 1.0)
        .await;
    // One client sending one request after another: each is answered (503: its dead part was
    // refused at once, retryable) while the probe is still waiting, and each one's live part has
    // arrived.
    for i in 0..20 {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            post_traces(&weir, &[], request(&format!("live-{i}"))),
        )
        .await
        .expect("answered without waiting for the dead upstream");
        assert_eq!(answer, 503, "request {i}");
        assert!(
            span_names(&live.received()).contains(&format!("live-{i}")),
            "request {i}'s live part arrived before its answer"
        );
    }
    assert!(
        !probe.is_finished(),
        "the probe waits for the dead upstream"
    );
    assert_eq!(
        weir.metric(
            r#"weir_refused_requests_total{signal="traces",transport="http",reason="upstream_unavailable"}"#
        )
        .await,
        20.0
    );
    assert!(
        !span_names(&live.received())
            .iter()
            .any(|n| n.ends_with("-dead")),
        "the live upstream got only its own part"
    );
    // The upstream comes back: the probe gets through, and requests are acknowledged again.
    dead.always(None);
    assert_eq!(probe.await.unwrap(), 200);
    weir.wait_for_metric(r#"weir_exporter_upstream_down{exporter="dead"}"#, 0.0)
        .await;
    assert_eq!(post_traces(&weir, &[], request("both")).await, 200);
    let want = if routed { "both-dead" } else { "both" };
    assert!(span_names(&dead.received()).contains(&want.to_string()));
}
