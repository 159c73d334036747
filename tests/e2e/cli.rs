//! The command line: `weir validate`, graceful shutdown on SIGTERM, health endpoints.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use weir::Signal;

fn validate(yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--config"])
        .arg(&path)
        .env("WEIR_TEST_PORT", "14317")
        .output()
        .unwrap()
}

#[test]
fn validate_accepts_the_documented_config_and_names_bad_keys() {
    let good = r#"
receivers:
  otlp:
    grpc: { endpoint: 127.0.0.1:4317 }
    http: { endpoint: 127.0.0.1:4318 }
exporters:
  backend: { otlp: { endpoint: "http://127.0.0.1:${env:WEIR_TEST_PORT}", protocol: grpc } }
pipelines:
  traces: { exporters: [backend] }
  metrics: { exporters: [backend] }
  logs: { exporters: [backend] }
admin: { endpoint: 127.0.0.1:9901 }
"#;
    let out = validate(good);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let out = validate(&good.replace("protocol: grpc", "protcol: grpc"));
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exporters.backend.otlp.protcol"), "{err}");

    let out = validate(&good.replace("${env:WEIR_TEST_PORT}", "${env:WEIR_UNSET_VARIABLE}"));
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WEIR_UNSET_VARIABLE"));

    // Valid, with warnings on stderr: an alpha signal's pipeline, and a queue where weir 0.1 kept it.
    let out = validate(
        &good
            .replace(
                "  logs: { exporters: [backend] }",
                "  logs: { exporters: [backend] }\n  profiles: { exporters: [backend] }",
            )
            .replace(
                "protocol: grpc }",
                "protocol: grpc, queue: { max_batches: 10 } }",
            ),
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: pipelines.profiles: profiles are alpha")
            && err.contains("v1development"),
        "{err}"
    );
    assert!(
        err.contains("warning: exporters.backend.otlp.queue"),
        "{err}"
    );
    assert!(
        !validate(good).stderr.windows(7).any(|w| w == b"warning"),
        "no warning without them"
    );

    let out = validate(&good.replace("{ otlp: {", "{ kafka: {"));
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown exporter kind `kafka` (known: otlp, debug)"),
        "{err}"
    );

    // A receiver's section is read by its kind, with the key's full path.
    let out = validate(&good.replace("grpc: { endpoint", "grpc: { endpont"));
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("receivers.otlp.grpc.endpont"), "{err}");
    let out = validate(&good.replace("  otlp:\n    grpc", "  nats/in:\n    grpc"));
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("receivers.nats/in: unknown receiver kind `nats` (known: otlp)"),
        "{err}"
    );

    // validate binds nothing: a config for a port in use still validates.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = validate(&good.replace("127.0.0.1:4317", &format!("127.0.0.1:{port}")));
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn run_refuses_a_bad_receiver_section_as_a_usage_error_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "receivers:\n  otlp: { http: { endpoint: nowhere } }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--admin", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("receivers.otlp: http.endpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let (upstream, url) = Recorder::grpc().await;
    let mut weir = Weir::start(&url);
    let (status, _, _) = get(&format!("http://{}/healthz", weir.admin)).await;
    assert_eq!(status, 200);
    let (status, _, _) = get(&format!("http://{}/readyz", weir.admin)).await;
    assert_eq!(status, 200);

    upstream.script(1, Answer::Slow(Duration::from_millis(800)));
    let url = weir.http_url(Signal::Traces);
    let in_flight = tokio::spawn(async move {
        post(
            &url,
            &[("content-type", "application/json")],
            example("trace.json"),
        )
        .await
    });
    while upstream.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let exit = tokio::task::spawn_blocking(move || {
        let s = weir.terminate();
        (s, weir)
    })
    .await
    .unwrap();
    assert!(exit.0.success(), "exit status {:?}", exit.0);
    assert_eq!(
        in_flight.await.unwrap().0,
        200,
        "in-flight request finished"
    );
    assert_eq!(upstream.items(), 1);
    let logs = exit.1.logs.lock().unwrap().join("\n");
    assert!(logs.contains("SIGTERM received"), "{logs}");
}

#[test]
fn bad_flags_exit_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--upstream", "kafka://nowhere:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("grpc://HOST:PORT"));
}
