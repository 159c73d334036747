//! The filter admin API and the `weir filter` commands against a running weir: push, list, rollback,
//! remove, validation, persistence across restarts, automatic rollback of a quarantined filter, and
//! atomic swaps under load.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use weir::{Payload, Signal};

use crate::filters::wasm;
use crate::harness::*;

fn cli(weir: &Weir, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("filter")
        .args(args)
        .args(["--admin", &format!("http://{}", weir.admin)])
        .output()
        .unwrap()
}

/// The `edge.zone` of every span of `p` (an upstream request: merged client requests may carry
/// several).
fn zones(p: &Payload) -> Vec<Option<String>> {
    let Payload::Traces(t) = p else {
        return vec![];
    };
    t.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|span| attr_text(&span.attributes, "edge.zone"))
        .collect()
}

fn zone(p: &Payload) -> Option<String> {
    zones(p).pop().flatten()
}

async fn send(weir: &Weir) -> u16 {
    post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await
    .0
}

/// Sends one trace and returns the `edge.zone` the upstream saw on it.
async fn zone_upstream_sees(weir: &Weir, upstream: &Recorder) -> Option<String> {
    let n = upstream.items();
    assert_eq!(send(weir).await, 200);
    let got = upstream.wait_for_items(n + 1).await;
    zone(got.last().unwrap())
}

fn config(url: &str, state_dir: &std::path::Path) -> String {
    format!(
        "state_dir: \"{}\"\nexporters:\n  up: {{ otlp: {{ endpoint: \"{url}\" }} }}\n",
        state_dir.display()
    )
}

fn push_zone(weir: &Weir, value: &str) -> String {
    ok(cli(
        weir,
        &[
            "push",
            "zone",
            &wasm("set-attribute"),
            "--config",
            &format!(r#"{{"key":"edge.zone","value":"{value}"}}"#),
        ],
    ))
}

/// Pushes the hostile fixture as `zone`, trapping on every request (the dry run, without headers,
/// passes).
fn push_trapping_zone(weir: &Weir) {
    ok(cli(
        weir,
        &[
            "push",
            "zone",
            &wasm("hostile"),
            "--config",
            r#"{"mode":"trap","only_with_header":"content-type"}"#,
        ],
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn push_list_rollback_and_remove_with_the_cli() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path()));
    assert_eq!(zone_upstream_sees(&weir, &upstream).await, None);

    let out = push_zone(&weir, "v1");
    assert!(out.contains("traces/zone: version 1 active"), "{out}");
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("v1")
    );
    push_zone(&weir, "v2");
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("v2")
    );

    let list: serde_json::Value =
        serde_json::from_str(&ok(cli(&weir, &["list", "--json"]))).unwrap();
    let f = &list["filters"][0];
    assert_eq!(f["name"], "zone");
    assert_eq!(f["version"], 2);
    assert_eq!(f["previous_versions"], 1);
    assert_eq!(f["state"], "active");
    assert_eq!(f["source"], "api");
    assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(f["stats"]["calls"], 1);
    let table = ok(cli(&weir, &["list"]));
    assert!(
        table.contains("zone") && table.contains("active"),
        "{table}"
    );

    let out = ok(cli(&weir, &["rollback", "zone"]));
    assert!(out.contains("rolled back to version 1"), "{out}");
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("v1")
    );
    let out = cli(&weir, &["rollback", "zone"]);
    assert!(!out.status.success(), "no version before 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no previous version"));

    ok(cli(&weir, &["rm", "zone"]));
    assert_eq!(zone_upstream_sees(&weir, &upstream).await, None);
    assert_eq!(
        weir.metric(r#"weir_filter_rollbacks_total{signal="traces",filter="zone"}"#)
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_filters_are_refused_and_nothing_changes() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path()));
    push_zone(&weir, "good");

    // init refuses its config: 422, the active filter stays.
    let out = cli(
        &weir,
        &[
            "push",
            "zone",
            &wasm("hostile"),
            "--config",
            r#"{"mode":"init-fails"}"#,
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("422") && err.contains("refuses its config"),
        "{err}"
    );
    // A dry run that traps: refused too.
    let out = cli(
        &weir,
        &[
            "push",
            "zone",
            &wasm("hostile"),
            "--config",
            r#"{"mode":"trap"}"#,
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dry run"),
        "{out:?}"
    );
    // Garbage module: 400 at upload.
    let junk = state.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let out = cli(&weir, &["push", "zone", junk.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("400"),
        "{out:?}"
    );
    // Unknown module hash and unknown pipeline: 404.
    let admin = format!("http://{}", weir.admin);
    let c = weir::admin::client::AdminClient::new(&admin, None);
    let e = c
        .call(
            http::Method::PUT,
            "/v1/pipelines/traces/filters/x",
            "application/json",
            br#"{"module":"0000"}"#.to_vec(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let e = c
        .call(
            http::Method::PUT,
            "/v1/pipelines/events/filters/x",
            "application/json",
            b"{}".to_vec(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");

    let list: serde_json::Value =
        serde_json::from_str(&ok(cli(&weir, &["list", "--json"]))).unwrap();
    assert_eq!(list["filters"].as_array().unwrap().len(), 1);
    assert_eq!(list["filters"][0]["version"], 1);
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("good")
    );

    // The admin API describes itself.
    let (status, _, body) = get(&format!("{admin}/openapi.json")).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["paths"]["/v1/pipelines/{pipeline}/filters/{name}"]["put"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_filters_survive_a_restart() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let mut weir = Weir::with_config(&config(&url, state.path()));
    push_zone(&weir, "v1");
    push_zone(&weir, "v2");
    let exit = tokio::task::spawn_blocking(move || weir.terminate())
        .await
        .unwrap();
    assert!(exit.success());

    let weir = Weir::with_config(&config(&url, state.path()));
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("v2")
    );
    // History survives too: rollback still works.
    ok(cli(&weir, &["rollback", "zone"]));
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("v1")
    );
    // The compiled code was cached on disk.
    assert!(state.path().join("cache").exists());
    assert!(
        std::fs::read_dir(state.path().join("modules"))
            .unwrap()
            .count()
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_version_that_no_longer_loads_never_blocks_a_start() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let mut weir = Weir::with_config(&config(&url, state.path()));
    push_zone(&weir, "v1");
    // Version 2 is another module, which then disappears from the state directory.
    let out = ok(cli(&weir, &["push", "zone", &wasm("noop")]));
    assert!(out.contains("version 2"), "{out}");
    let noop_sha = weir::filter::runtime::sha256_hex(&std::fs::read(wasm("noop")).unwrap());
    assert!(weir.terminate().success());
    std::fs::remove_file(
        state
            .path()
            .join("modules")
            .join(format!("{noop_sha}.wasm")),
    )
    .unwrap();

    // weir starts, on the newest version that still loads, and says what it skipped.
    let mut weir = Weir::with_config(&config(&url, state.path()));
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("v1")
    );
    assert_eq!(
        weir.metric(r#"weir_filter_restore_failures_total{signal="traces",filter="zone"}"#)
            .await,
        1.0
    );
    assert!(
        weir.logged(|l| l.contains("no longer loads") && l.contains(&noop_sha)),
        "the skipped version is named in the log"
    );
    assert!(weir.terminate().success());

    // A record that does not parse is moved aside; weir starts from the configuration file.
    std::fs::write(state.path().join("filters.json"), b"{ not json").unwrap();
    let weir = Weir::with_config(&config(&url, state.path()));
    assert_eq!(zone_upstream_sees(&weir, &upstream).await, None);
    assert!(state.path().join("filters.json.unreadable").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantined_version_is_rolled_back_automatically() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path()));
    push_zone(&weir, "stable");
    push_trapping_zone(&weir);
    for _ in 0..5 {
        assert_eq!(send(&weir).await, 200, "fail-open while it traps");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list: serde_json::Value =
            serde_json::from_str(&ok(cli(&weir, &["list", "--json"]))).unwrap();
        if list["filters"][0]["version"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not rolled back: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        zone_upstream_sees(&weir, &upstream).await.as_deref(),
        Some("stable")
    );
    assert_eq!(
        weir.metric(r#"weir_filter_quarantines_total{signal="traces",filter="zone"}"#)
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantined_version_made_active_again_by_a_rollback_starts_afresh() {
    let (_upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let weir = Weir::with_config(&config(&url, state.path()));
    push_trapping_zone(&weir);
    let zone = |weir: &Weir| {
        let list: serde_json::Value =
            serde_json::from_str(&ok(cli(weir, &["list", "--json"]))).unwrap();
        list["filters"][0].clone()
    };
    for _ in 0..5 {
        assert_eq!(send(&weir).await, 200, "fail-open while it traps");
    }
    // No previous version: it stays, quarantined (no longer called).
    assert_eq!(zone(&weir)["state"], "quarantined");
    push_zone(&weir, "fixed");
    ok(cli(&weir, &["rollback", "zone"]));
    let back = zone(&weir);
    assert_eq!(
        (back["version"].as_u64(), back["state"].as_str()),
        (Some(1), Some("active"))
    );
    // Called again (a quarantined filter is not): its faults count from zero.
    let calls = back["stats"]["calls"].as_u64().unwrap();
    assert_eq!(send(&weir).await, 200);
    let after = zone(&weir);
    assert_eq!(after["stats"]["calls"].as_u64(), Some(calls + 1));
    assert_eq!(
        after["state"], "active",
        "one fault does not quarantine it again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_swaps_under_load_fail_no_request_and_lose_nothing() {
    let (upstream, url) = Recorder::grpc().await;
    let state = tempfile::tempdir().unwrap();
    let weir = Arc::new(Weir::with_config(&config(&url, state.path())));
    push_zone(&weir, "v0");
    let admin = weir::admin::client::AdminClient::new(&format!("http://{}", weir.admin), None);
    let module = std::fs::read(wasm("set-attribute")).unwrap();
    let sha = admin
        .call(
            http::Method::POST,
            "/v1/modules",
            "application/wasm",
            module,
        )
        .await
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (weir, stop, sent, failed) = (weir.clone(), stop.clone(), sent.clone(), failed.clone());
        senders.push(tokio::spawn(async move {
            // Bounded: stops when told, or after 20 s / 5000 requests at most.
            let until = std::time::Instant::now() + Duration::from_secs(20);
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) || std::time::Instant::now() > until {
                    break;
                }
                if send(&weir).await == 200 {
                    sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for i in 1..=50 {
        let body = serde_json::json!({
            "module": sha,
            "config": { "key": "edge.zone", "value": format!("v{i}") },
        });
        admin
            .call(
                http::Method::PUT,
                "/v1/pipelines/traces/filters/zone",
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    assert!(sent > 50, "load ran during the swaps: {sent}");
    let got = upstream.wait_for_items(sent).await;
    // Each request carries one span; requests may have gone upstream merged.
    let spans: Vec<Option<String>> = got.iter().flat_map(zones).collect();
    assert_eq!(
        spans.len(),
        sent,
        "exactly what was acknowledged, no duplicates"
    );
    // Every span went through exactly one version of the filter.
    let versions: std::collections::BTreeSet<_> = spans.iter().flatten().collect();
    assert_eq!(spans.iter().filter(|z| z.is_none()).count(), 0);
    assert!(versions.len() > 1, "several versions served: {versions:?}");
    assert_eq!(
        weir.metric(r#"weir_filter_swaps_total{signal="traces",filter="zone"}"#)
            .await,
        51.0
    );
}
