//! Signed filter modules through the real binary: `weir keygen`, `weir filter sign`, and a weir whose
//! `module_signing` trusts one key. Signed pushes go live and `weir filter list` names the signer;
//! unsigned, wrongly signed and untrusted pushes are refused (403) and nothing changes; a configured
//! module without a valid signature stops `weir validate`; a restart checks the stored signature again;
//! every change, accepted or refused, leaves one audit line.

use std::path::Path;
use std::process::{Command, Output};

use crate::filters::wasm;
use crate::harness::*;

fn weir_cmd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .unwrap()
}

fn refused(out: Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(stderr.contains(reason), "want `{reason}` in: {stderr}");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn push(weir: &Weir, name: &str, module: &Path) -> Output {
    let admin = format!("http://{}", weir.admin);
    weir_cmd(&[
        "filter",
        "push",
        name,
        path(module),
        "--config",
        r#"{"key":"signed","value":"yes"}"#,
        "--admin",
        &admin,
    ])
}

/// `weir filter list` shows the filter `stamp` signed by `ops`.
fn assert_signed_by_ops(table: &str) {
    assert!(
        table
            .lines()
            .any(|l| l.contains("stamp") && l.contains(" ops ")),
        "{table}"
    );
}

fn list(weir: &Weir) -> String {
    let admin = format!("http://{}", weir.admin);
    ok(weir_cmd(&["filter", "list", "--admin", &admin]))
}

#[tokio::test(flavor = "multi_thread")]
async fn only_modules_signed_by_a_trusted_key_are_accepted() {
    let (upstream, url) = Recorder::grpc().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for key in ["ops", "other"] {
        let out = ok(weir_cmd(&["keygen", path(&d.join(key))]));
        assert!(out.contains("key "), "{out}");
    }
    // Keygen never overwrites a key.
    refused(
        weir_cmd(&["keygen", path(&d.join("ops"))]),
        "not overwriting",
    );
    let module = std::fs::read(wasm("set-attribute")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let signed = write("signed.wasm", &module);
    let unsigned = write("unsigned.wasm", &module);
    let by_other = write("other.wasm", &module);
    let tampered = write("tampered.wasm", &std::fs::read(wasm("noop")).unwrap());
    let sign = |key: &str, file: &Path| {
        ok(weir_cmd(&[
            "filter",
            "sign",
            "--key",
            path(&d.join(format!("{key}.key"))),
            path(file),
        ]))
    };
    sign("ops", &signed);
    sign("other", &by_other);
    // The noop module carrying set-attribute's signature.
    std::fs::copy(d.join("signed.wasm.sig"), d.join("tampered.wasm.sig")).unwrap();

    let state = tempfile::tempdir().unwrap();
    let yaml = format!(
        "state_dir: \"{}\"\nmodule_signing: {{ trusted_keys: [\"{}\"] }}\nexporters:\n  up: {{ otlp: {{ endpoint: \"{url}\" }} }}\n",
        state.path().display(),
        d.join("ops.pub").display()
    );
    let weir = Weir::with_config(&yaml);
    ok(push(&weir, "stamp", &signed));
    assert_signed_by_ops(&list(&weir));

    refused(push(&weir, "bad", &unsigned), "not signed");
    refused(
        push(&weir, "bad", &by_other),
        "not in module_signing.trusted_keys",
    );
    refused(push(&weir, "bad", &tampered), "does not match this module");
    // The API answers 403, and nothing changed: only the signed filter is there, and it runs.
    let token = weir::admin::token::discover(weir.admin.port()).expect("weir published its token");
    let (status, _, body) = post(
        &format!("http://{}/v1/modules", weir.admin),
        &[
            ("content-type", "application/wasm"),
            ("authorization", &format!("Bearer {token}")),
        ],
        module.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body:?}");
    let table = list(&weir);
    assert!(!table.contains("bad"), "{table}");
    // One audit line per change, accepted or refused: who, what, which module, how it ended.
    let sha256 = weir::filter::runtime::sha256_hex(&module);
    let audit: Vec<serde_json::Value> = weir
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "weir::audit")
        .map(|v| v["fields"].clone())
        .collect();
    let has = |action: &str, result: &str| {
        audit.iter().any(|f| {
            f["action"] == action
                && f["result"] == result
                && f["sha256"] == sha256.as_str()
                && f["auth"] == "token"
                && f["peer"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("127.0.0.1:"))
        })
    };
    assert!(has("upload", "ok") && has("put", "ok"), "{audit:?}");
    assert!(has("upload", "refused"), "{audit:?}");
    assert!(
        audit.iter().any(|f| f["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not signed"))),
        "{audit:?}"
    );
    let (status, _, _) = post(
        &weir.http_url(weir::Signal::Traces),
        &[("content-type", "application/json")],
        example("trace.json"),
    )
    .await;
    assert_eq!(status, 200);
    let got = upstream.wait_for_items(1).await;
    assert_eq!(
        attr_text(&traces_attrs(&got[0]), "signed").as_deref(),
        Some("yes")
    );

    // A restart loads the pushed version from the state directory and checks its signature again.
    drop(weir);
    let weir = Weir::with_config(&yaml);
    assert_signed_by_ops(&list(&weir));
    drop(weir);

    // A module named in the configuration file is checked at start (and by `weir validate`).
    let with_filter = |module: &Path| {
        let cfg = d.join("with-filter.yaml");
        std::fs::write(
            &cfg,
            format!(
                "{yaml}pipelines:\n  traces:\n    exporters: [up]\n    filters:\n      - {{ name: f, module: \"{}\", config: {{ key: k, value: v }} }}\n",
                module.display()
            ),
        )
        .unwrap();
        weir_cmd(&["validate", "--config", path(&cfg)])
    };
    ok(with_filter(&signed));
    refused(with_filter(&unsigned), "not signed");
}

/// The attributes of the first span of an upstream request.
fn traces_attrs(p: &weir::Payload) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    let weir::Payload::Traces(t) = p else {
        panic!("not traces")
    };
    t.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .clone()
}
