//! Wasm filters end to end: compiled guests (built by `filters/build.sh`) configured in a pipeline of the
//! real weir binary. Hostile guests are contained, and their `on_error` policy decides the outcome.

use std::path::PathBuf;
use std::sync::OnceLock;

use weir::{Payload, Signal};

use crate::harness::*;

/// Builds every filter and fixture once per test run; returns the folder of `.wasm` files.
pub fn wasm_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = std::process::Command::new("bash")
            .arg(root.join("filters/build.sh"))
            .output()
            .expect("run filters/build.sh");
        assert!(
            out.status.success(),
            "filters/build.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        root.join("target/wasm")
    })
    .clone()
}

pub fn wasm(name: &str) -> String {
    wasm_dir()
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// A filter as built against `weir:filter@0.1.0` before 0.2.0 existed (`tests/data/filters-v0.1/`):
/// weir must keep loading it and it must behave as it did.
pub fn wasm_v01(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/filters-v0.1")
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// A config sending traces through one filter to `upstream`.
pub fn one_filter(
    upstream: &str,
    module: &str,
    config: &str,
    on_error: &str,
    limits: &str,
) -> String {
    format!(
        r#"
limits: {{ retry_after: 1s }}
exporters:
  up: {{ otlp: {{ endpoint: "{upstream}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - name: f
        module: "{}"
        config: {config}
        on_error: {on_error}
        limits: {limits}
"#,
        wasm(module)
    )
}

fn str_attr(p: &Payload, key: &str) -> Option<String> {
    let Payload::Traces(t) = p else { return None };
    let span = &t.resource_spans[0].scope_spans[0].spans[0];
    attr_text(&span.attributes, key)
}

async fn send_trace(weir: &Weir) -> (u16, http::HeaderMap, bytes::Bytes) {
    post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await
}

fn trace() -> Payload {
    Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filters_attribute_change_arrives_upstream() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - {{ name: zone, module: "{m}", config: {{ key: edge.zone, value: eu-1 }} }}
      - {{ name: noop, module: "{noop}" }}
  logs:
    exporters: [up]
    filters:
      - {{ name: zone, module: "{m}", config: {{ key: edge.zone, value: eu-2 }} }}
"#,
        m = wasm("set-attribute"),
        noop = wasm("noop"),
    ));
    let (status, _, body) = send_trace(&weir).await;
    assert_eq!(status, 200, "{body:?}");
    let got = upstream.wait_for_items(1).await;
    assert_eq!(str_attr(&got[0], "edge.zone").as_deref(), Some("eu-1"));
    // Everything else is as sent.
    let Payload::Traces(mut t) = got[0].clone() else {
        panic!()
    };
    t.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .retain(|kv| kv.key != "edge.zone");
    assert_eq!(Payload::Traces(t), trace());

    grpc_raw(
        &weir,
        Signal::Logs,
        Payload::decode_json(Signal::Logs, &example("logs.json"))
            .unwrap()
            .encode_protobuf(),
        false,
    )
    .await
    .unwrap();
    let got = upstream.wait_for_items(2).await;
    let Payload::Logs(l) = &got[1] else { panic!() };
    let rec = &l.resource_logs[0].scope_logs[0].log_records[0];
    assert!(rec.attributes.iter().any(|kv| kv.key == "edge.zone"));
    assert_eq!(
        weir.metric(r#"weir_filter_items_modified_total{signal="traces",filter="zone"}"#)
            .await,
        1.0
    );
}

/// With a `state_dir`, weir compiles its filters in a helper process (`weir compile-helper`) that fills
/// the compile cache, and loads the compiled code from there: the compiler never runs in the serving
/// process (which is what keeps it small). The marker per module is the helper's trace; a restart finds
/// the cache warm and the filter still works.
#[tokio::test(flavor = "multi_thread")]
async fn filters_compile_in_a_helper_process_into_the_cache() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let yaml = format!(
        "state_dir: \"{}\"\n{}",
        state.path().display(),
        one_filter(
            &url,
            "set-attribute",
            "{ key: k, value: v }",
            "fail-closed",
            "{}"
        )
    );
    let bytes = std::fs::read(wasm("set-attribute")).unwrap();
    let sha256 = weir::filter::runtime::sha256_hex(&bytes);
    for round in 1..=2 {
        let weir = Weir::with_config(&yaml);
        let markers: Vec<String> = std::fs::read_dir(state.path().join("cache/helper-compiled"))
            .expect("the helper leaves a marker per module")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(markers.len(), 1, "{markers:?}");
        assert!(markers[0].starts_with(&sha256), "{markers:?}");
        let (status, _, body) = send_trace(&weir).await;
        assert_eq!(status, 200, "{body:?}");
        let got = upstream.wait_for_items(round).await;
        assert_eq!(str_attr(&got[round - 1], "k").as_deref(), Some("v"));
        let logs = weir.logs.lock().unwrap().join("\n");
        assert!(!logs.contains("compiling in-process"), "{logs}");
    }
}

/// Without a `state_dir` (the quick start), filters compile in the helper process too, into a private
/// cache (mode 0700) that weir removes when it exits: the serving process never holds the compiler.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_state_dir_filters_compile_in_a_helper_into_a_private_cache_removed_at_exit() {
    use std::os::unix::fs::PermissionsExt;
    let (upstream, url) = Recorder::grpc().await;
    let mut weir = Weir::with_config(&one_filter(
        &url,
        "set-attribute",
        "{ key: k, value: v }",
        "fail-closed",
        "{}",
    ));
    let dir = weir
        .private_cache()
        .expect("weir names its private compile cache");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    let markers = std::fs::read_dir(dir.join("helper-compiled"))
        .expect("the helper compiled the filter there")
        .count();
    assert_eq!(markers, 1);
    let (status, _, body) = send_trace(&weir).await;
    assert_eq!(status, 200, "{body:?}");
    let got = upstream.wait_for_items(1).await;
    assert_eq!(str_attr(&got[0], "k").as_deref(), Some("v"));
    let logs = weir.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("compiling in-process"), "{logs}");
    assert!(weir.terminate().success());
    assert!(!dir.exists(), "{} outlived weir", dir.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_can_drop_items_and_reject_batches() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&one_filter(
        &url,
        "set-attribute",
        r#"{ key: k, value: v, drop_if_name: "I'm a server span" }"#,
        "fail-closed",
        "{}",
    ));
    let (status, _, _) = send_trace(&weir).await;
    assert_eq!(status, 200);
    assert_eq!(
        upstream.calls(),
        0,
        "the only span was dropped: nothing to forward"
    );
    assert_eq!(
        weir.metric(r#"weir_filter_items_dropped_total{signal="traces",filter="f"}"#)
            .await,
        1.0
    );

    let weir = Weir::with_config(&one_filter(
        &url,
        "hostile",
        "{ mode: reject }",
        "fail-open",
        "{}",
    ));
    let (status, _, body) = send_trace(&weir).await;
    assert_eq!(status, 400, "a rejection is not retryable");
    assert!(String::from_utf8_lossy(&body).contains("rejects on purpose"));
}

/// Each limit and fault: the obeyed case passes the data; the violated case is contained, classified,
/// and the policy decides: fail-open forwards the batch unchanged, fail-closed answers 503.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_guests_are_contained_and_the_policy_decides() {
    let cases = [
        // (mode, limits, obeyed?, class)
        // A generous deadline: the memory cases must hit the cap, not the clock, on a busy machine.
        ("hog-small", "{ memory: 16777216, deadline: 5s }", true, ""),
        ("hog", "{ memory: 16777216, deadline: 5s }", false, "memory"),
        ("behave", "{ deadline: 20ms }", true, ""),
        ("spin", "{ deadline: 20ms }", false, "deadline"),
        ("trap", "{}", false, "trap"),
        ("garbage", "{}", false, "bad_output"),
    ];
    for (mode, limits, obeyed, class) in cases {
        for policy in ["fail-open", "fail-closed"] {
            let (upstream, url) = Recorder::grpc().await;
            let weir = Weir::with_config(&one_filter(
                &url,
                "hostile",
                &format!("{{ mode: {mode}, after: 1 }}"),
                policy,
                limits,
            ));
            let (status, h, body) = send_trace(&weir).await;
            let what = format!("{mode} {policy}: {body:?}");
            if obeyed || policy == "fail-open" {
                assert_eq!(status, 200, "{what}");
                assert_eq!(upstream.wait_for_items(1).await, vec![trace()], "{what}");
            } else {
                assert_eq!(status, 503, "{what}");
                assert!(h.contains_key("retry-after"), "{what}");
                assert_eq!(upstream.calls(), 0, "{what}");
            }
            if !obeyed {
                let metric = format!(
                    r#"weir_filter_errors_total{{signal="traces",filter="f",class="{class}"}}"#
                );
                assert_eq!(weir.metric(&metric).await, 1.0, "{what}");
            }
            // weir keeps serving. A fault discards the instance, and the fresh one behaves for its
            // first batch (`after: 1`); an obeyed limit keeps the instance, whose mode allows it.
            let (status, _, body) = send_trace(&weir).await;
            assert_eq!(status, 200, "{what}: then {body:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_that_keeps_failing_is_quarantined() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&one_filter(
        &url,
        "hostile",
        "{ mode: trap, only_with_header: content-type }",
        "fail-open",
        "{}",
    ));
    for _ in 0..7 {
        let (status, _, _) = send_trace(&weir).await;
        assert_eq!(status, 200);
    }
    assert_eq!(upstream.wait_for_items(7).await.len(), 7);
    assert_eq!(
        weir.metric(r#"weir_filter_quarantines_total{signal="traces",filter="f"}"#)
            .await,
        1.0
    );
    // Once quarantined the guest is no longer called: 5 faults, not 7.
    assert_eq!(
        weir.metric(r#"weir_filter_errors_total{signal="traces",filter="f",class="trap"}"#)
            .await,
        5.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantined_filter_with_no_earlier_version_is_tried_again_and_recovers() {
    // Issue 20: a configured filter has no earlier version to roll back to, so once quarantined it
    // stayed so until a restart. It traps only on requests carrying `x-fail`.
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&one_filter(
        &url,
        "hostile",
        "{ mode: trap, only_with_header: x-fail }",
        "fail-closed",
        "{ quarantine_retry: 300ms }",
    ));
    let traces_url = weir.http_url(Signal::Traces);
    let failing = || {
        post(
            &traces_url,
            &[("content-type", "application/json"), ("x-fail", "1")],
            example("trace.json"),
        )
    };
    for _ in 0..5 {
        let (status, _, _) = failing().await;
        assert_eq!(status, 503, "fail-closed");
    }
    let gauge = r#"weir_filter_quarantined{signal="traces",filter="f"}"#;
    assert_eq!(weir.metric(gauge).await, 1.0);
    let (_, _, listed) = get(&format!("http://{}/v1/filters", weir.admin)).await;
    let listed = String::from_utf8_lossy(&listed).to_string();
    assert!(listed.contains("\"quarantined\""), "{listed}");
    assert!(listed.contains("\"retry_in_ms\""), "{listed}");
    // Quarantined and fail-closed: refused without calling the filter, until the retry is due;
    // a retry that fails waits again; one that succeeds ends the quarantine.
    let (status, _, _) = failing().await;
    assert_eq!(status, 503);
    wait_for("a retry that fails, once the wait is over", || async {
        let (status, _, _) = failing().await;
        assert_eq!(status, 503);
        let faults = weir
            .metric(r#"weir_filter_errors_total{signal="traces",filter="f",class="trap"}"#)
            .await;
        (faults >= 6.0).then_some(())
    })
    .await;
    assert_eq!(weir.metric(gauge).await, 1.0, "still quarantined");
    wait_for("a retry that succeeds", || async {
        let (status, _, _) = send_trace(&weir).await;
        (status == 200).then_some(())
    })
    .await;
    assert_eq!(weir.metric(gauge).await, 0.0, "active again");
    let (status, _, _) = send_trace(&weir).await;
    assert_eq!(status, 200);
    assert!(upstream.wait_for_items(2).await.len() >= 2);
    assert!(weir.logged(|l| l.contains("tried again and succeeded")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_that_fails_every_other_call_is_quarantined_by_its_fault_rate() {
    let (upstream, url) = Recorder::grpc().await;
    // Each instance behaves once, then traps; the trapping instance is replaced by a fresh one, so
    // faults never run five in a row: only the rate gives the filter away.
    let weir = Weir::with_config(&one_filter(
        &url,
        "hostile",
        "{ mode: trap, after: 1, only_with_header: content-type }",
        "fail-open",
        "{ concurrency: 1 }",
    ));
    let quarantines = r#"weir_filter_quarantines_total{signal="traces",filter="f"}"#;
    let mut sent = 0;
    while weir.metric(quarantines).await == 0.0 {
        assert!(
            sent < 40,
            "not quarantined after {sent} calls, half of them faults"
        );
        let (status, _, _) = send_trace(&weir).await;
        assert_eq!(status, 200, "fail-open lets every batch through");
        sent += 1;
    }
    assert!(
        sent >= 20,
        "the rate is judged over 20 calls, not fewer: {sent}"
    );
    // Items a failing fail-open filter passed on unchanged are items out: all that went in.
    let items_in = weir
        .metric(r#"weir_filter_items_in_total{signal="traces",filter="f"}"#)
        .await;
    upstream.wait_for_items(items_in as usize).await;
    assert_eq!(
        weir.metric(r#"weir_filter_items_out_total{signal="traces",filter="f"}"#)
            .await,
        items_in
    );
}

#[test]
fn a_filter_that_refuses_its_config_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.yaml");
    std::fs::write(
        &path,
        one_filter(
            "grpc://127.0.0.1:1",
            "hostile",
            "{ mode: init-fails }",
            "fail-open",
            "{}",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "run",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refuses its config on purpose"), "{err}");
}

#[test]
fn filter_test_runs_a_filter_offline() {
    let input = format!(
        "{}/../tests/data/otlp-examples/trace.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["filter", "test", &wasm("set-attribute"), "--input", &input])
        .args(["--config", r#"{"key":"edge.zone","value":"lab"}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "continue");
    assert_eq!(report["items_in"], 1);
    assert_eq!(report["items_modified"], 1);
    let out_payload =
        Payload::decode_json(Signal::Traces, report["output"].to_string().as_bytes()).unwrap();
    assert_eq!(str_attr(&out_payload, "edge.zone").as_deref(), Some("lab"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["filter", "test", &wasm("hostile"), "--input", &input])
        .args(["--config", r#"{"mode":"trap","only_with_header":"x"}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn components_are_accepted_as_well_as_core_modules() {
    // What `wasm-tools component new` would make of the core module.
    let core = std::fs::read(wasm("set-attribute")).unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("component.wasm");
    std::fs::write(&path, component).unwrap();
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - {{ name: zone, module: "{}", config: {{ key: edge.zone, value: component }} }}
"#,
        path.display()
    ));
    let (status, _, _) = send_trace(&weir).await;
    assert_eq!(status, 200);
    let got = upstream.wait_for_items(1).await;
    assert_eq!(str_attr(&got[0], "edge.zone").as_deref(), Some("component"));
}

/// A filter written in Python (componentize-py), with WASI for its runtime: stdout goes into weir's log,
/// within the filter's log-line allowance (every line logged or counted).
#[tokio::test(flavor = "multi_thread")]
async fn a_python_filter_runs_with_its_prints_in_the_log() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters:
      - name: py
        module: "{}"
        config: {{ value: from-python, verbose: true }}
        limits: {{ deadline: 5s, memory: 268435456 }}
"#,
        wasm("py-tagger")
    ));
    let (status, _, body) = send_trace(&weir).await;
    assert_eq!(status, 200, "{body:?}");
    let got = upstream.wait_for_items(1).await;
    assert_eq!(
        str_attr(&got[0], "filter.lang").as_deref(),
        Some("from-python")
    );
    let first = upstream.items();
    assert!(weir.logged(|l| l.contains("python tagger ready")));
    assert_eq!(
        weir.metric(r#"weir_filter_counter_total{signal="traces",filter="py",name="tagged"}"#)
            .await,
        first as f64
    );
    let tagged = || {
        let logs = weir.logs.lock().unwrap();
        logs.iter().filter(|l| l.contains("tagged item")).count()
    };
    let tagged = &tagged;
    // A few lines so far (a ready line per instance, a line per item, and one for the sample batch's
    // span the dry run at load tagged): all within the allowance.
    let dry_run = 1;
    wait_for("the first prints logged", || async move {
        (tagged() == first + dry_run).then_some(())
    })
    .await;
    let suppressed_metric =
        r#"weir_filter_log_lines_suppressed_total{signal="traces",filter="py"}"#;
    assert_eq!(weir.metric(suppressed_metric).await, 0.0);
    // 200 spans, a print for each: far past the 20 lines a second a filter may log.
    let spans = (0..200u8)
        .map(|i| opentelemetry_proto::tonic::trace::v1::Span {
            name: format!("s{i}"),
            trace_id: vec![i; 16],
            span_id: vec![1; 8],
            ..Default::default()
        })
        .collect();
    let (status, _, _) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/x-protobuf")],
        traces_of(spans).encode_protobuf(),
    )
    .await;
    assert_eq!(status, 200);
    upstream.wait_for_items(first + 200).await;
    let printed = first + dry_run + 200;
    let suppressed = weir.metric(suppressed_metric).await as usize;
    assert!(suppressed >= 200 - 2 * 20, "{suppressed} lines suppressed");
    wait_for("every print logged or counted", || async move {
        (tagged() + suppressed >= printed).then_some(())
    })
    .await;
    assert_eq!(
        tagged() + suppressed,
        printed,
        "every print logged or counted"
    );
}
