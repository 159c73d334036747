//! The example filter in every language, end to end: `weir filter new` writes the project, `weir filter
//! test` builds it from source with the language's own toolchain and runs it offline, `weir filter
//! push` loads it into a running weir through the admin API, and the upstream sees its effect (health
//! spans dropped, the rest tagged) while `/metrics` shows its counters.
//!
//! The toolchains come from `examples/filters/toolchains.sh` (cached in ~/.cache/weir/tools, whose
//! `env` file this reads). A missing toolchain skips its test with the install line its build script
//! printed; with `WEIR_REQUIRE_TOOLCHAINS=1` (`.ci/run` sets it) it fails instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::harness::*;
use weir::Signal;

/// Builds take the machine's cores: one at a time.
static BUILDS: Mutex<()> = Mutex::new(());

/// PATH with the cached toolchains in front.
fn tool_path() -> String {
    let tools = match std::env::var_os("WEIR_TOOLS") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/weir/tools")
        }
    };
    let extra = std::fs::read_to_string(tools.join("env"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("WEIR_TOOLS_PATH=").map(str::to_string));
    let path = std::env::var("PATH").unwrap_or_default();
    match extra {
        Some(extra) => format!("{extra}:{path}"),
        None => path,
    }
}

fn weir_cli(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env("PATH", tool_path())
        // Rust projects share one target directory, so the SDK's dependencies build once.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/filter-projects"),
        )
        .output()
        .unwrap()
}

/// The spans of every request the upstream got: name and `team` attribute.
fn spans(got: &[weir::Payload]) -> Vec<(String, Option<String>)> {
    got.iter()
        .flat_map(|p| match p {
            weir::Payload::Traces(t) => t.resource_spans.clone(),
            _ => vec![],
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .map(|span| {
            let team = attr_text(&span.attributes, "team");
            (span.name, team)
        })
        .collect()
}

/// A project made by `weir filter new demo --lang LANG` in a temporary directory, built and run
/// offline by `weir filter test`: the directory, the project and the test's report. `None` when the
/// toolchain is missing (and `WEIR_REQUIRE_TOOLCHAINS` is not set).
fn built_project(lang: &str) -> Option<(tempfile::TempDir, PathBuf, serde_json::Value)> {
    let work = tempfile::tempdir().unwrap();
    let out = weir_cli(&["filter", "new", "demo", "--lang", lang], work.path());
    assert!(out.status.success(), "{lang}: filter new: {out:?}");
    let project = work.path().join("demo");
    let out = {
        let _one = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
        weir_cli(&["filter", "test", "demo"], work.path())
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(69) {
        let line = stderr
            .lines()
            .find(|l| l.contains("missing toolchain"))
            .unwrap_or("a toolchain is missing");
        let message = format!(
            "{lang}: {line} (or run examples/filters/toolchains.sh, which installs them all)"
        );
        if std::env::var_os("WEIR_REQUIRE_TOOLCHAINS").is_some() {
            panic!("{message}; WEIR_REQUIRE_TOOLCHAINS is set, so the test cannot skip");
        }
        eprintln!("skipped: {message}");
        return None;
    }
    assert!(out.status.success(), "{lang}: filter test: {stderr}");
    let report = serde_json::from_slice(&out.stdout).unwrap();
    Some((work, project, report))
}

/// Pushes the project's module as `demo`, with its test config and the default limits.
fn push(weir: &Weir, project: &Path) -> String {
    let config = format!("@{}", project.join("test/config.json").display());
    ok(Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["filter", "push", "demo"])
        .arg(project.join("build/filter.wasm"))
        .args(["--config", &config])
        .args(["--admin", &format!("http://{}", weir.admin)])
        .output()
        .unwrap())
}

/// New project, offline test, push, and the effect at the upstream, for `lang`.
async fn example_end_to_end(lang: &str) {
    // Built from source and run offline on the project's own test input.
    let Some((_work, project, report)) = built_project(lang) else {
        return;
    };
    assert_eq!(report["verdict"], "continue", "{lang}: {report}");
    assert_eq!(report["items_in"], 4, "{lang}: {report}");
    assert_eq!(report["items_dropped"], 2, "{lang}: {report}");
    assert_eq!(report["counters"]["dropped"], 2, "{lang}: {report}");
    assert_eq!(report["counters"]["tagged"], 2, "{lang}: {report}");

    // Pushed into a running weir with the CLI, with the default limits.
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let pushed = push(&weir, &project);
    assert!(
        pushed.contains("traces/demo: version 1 active"),
        "{lang}: {pushed}"
    );

    let (status, _, body) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/json")],
        std::fs::read(project.join("test/input.json")).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{lang}: {body:?}");
    let got = upstream.wait_for_items(2).await;
    let mut seen = spans(&got);
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("GET /cart".to_string(), Some("checkout".to_string())),
            ("SELECT orders".to_string(), Some("checkout".to_string())),
        ],
        "{lang}"
    );
    for (name, want) in [("dropped", 2.0), ("tagged", 2.0)] {
        weir.wait_for_metric(
            &format!(r#"weir_filter_counter_total{{signal="traces",filter="demo",name="{name}"}}"#),
            want,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_example_end_to_end() {
    example_end_to_end("rust").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn go_example_end_to_end() {
    example_end_to_end("go").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_example_end_to_end() {
    example_end_to_end("js").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_example_end_to_end() {
    example_end_to_end("ts").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_example_end_to_end() {
    example_end_to_end("python").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_example_end_to_end() {
    example_end_to_end("c").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zig_example_end_to_end() {
    example_end_to_end("zig").await;
}

/// The Go SDK gives back what the host hands a call (span names, through `cabi_realloc`) when the call
/// ends. 40 batches of 1,000 spans with 1 KB names pass 40 MB of names through one instance; kept, they
/// would take it past 32 MiB of linear memory (and to its 64 MiB limit, a fault on every call).
#[tokio::test(flavor = "multi_thread")]
async fn a_go_filter_gives_back_what_each_call_was_handed() {
    let Some((_work, project, _)) = built_project("go") else {
        return;
    };
    let (_upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    push(&weir, &project);
    let spans: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            serde_json::json!({
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": format!("{:016x}", i + 1),
                "name": format!("{i:04}-{}", "n".repeat(1000)),
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "resourceSpans": [{ "scopeSpans": [{ "spans": spans }] }]
    }))
    .unwrap();
    for _ in 0..40 {
        let (status, _, reply) = post(
            &weir.http_url(Signal::Traces),
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
        assert_eq!(status, 200, "{reply:?}");
    }
    let list = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "filter",
            "list",
            "--json",
            "--admin",
            &format!("http://{}", weir.admin),
        ])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&ok(list)).unwrap();
    let stats = &list["filters"][0]["stats"];
    assert_eq!(stats["errors"], 0, "{stats}");
    assert!(
        stats["items_in"].as_u64().unwrap() >= 40 * 1000,
        "every span seen: {stats}"
    );
    let memory = stats["instance_memory_bytes"].as_u64().unwrap();
    assert!(
        memory < 32 << 20,
        "an instance grew to {memory} bytes: {stats}"
    );
}
