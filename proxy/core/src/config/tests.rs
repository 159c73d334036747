use super::*;
use std::time::Duration;

const SAMPLE: &str = r#"
receivers:
  otlp:
    grpc: { endpoint: 127.0.0.1:4317 }
    http: { endpoint: 127.0.0.1:4318 }
exporters:
  backend: { otlp: { endpoint: "http://127.0.0.1:14317", protocol: grpc } }
pipelines:
  traces: { exporters: [backend] }
  metrics: { exporters: [backend] }
  logs: { exporters: [backend] }
admin: { endpoint: 127.0.0.1:9901 }
"#;

#[test]
fn the_documented_shape_parses() {
    let c = Config::from_yaml(SAMPLE).unwrap();
    c.validate().unwrap();
    let e = &c.exporters["backend"];
    assert_eq!(e.kind, "otlp");
    assert_eq!(e.section["protocol"], "grpc");
    assert_eq!(e.queue, QueueConfig::default());
    assert!(e.moved.is_empty());
    let p = c.pipelines.unwrap();
    assert_eq!(p.logs.unwrap().exporters, vec!["backend"]);
}

#[test]
fn unknown_key_error_names_its_path() {
    let err = Config::from_yaml("limits: { max_request_byte: 3 }").unwrap_err();
    match &err {
        ConfigError::Schema { path, message } => {
            assert_eq!(path, "limits.max_request_byte");
            assert!(message.contains("max_request_byte"), "{message}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn receivers_are_kept_by_key_with_their_kind() {
    let c = Config::from_yaml(
        "receivers:\n  otlp: { grpc: { endpoint: 127.0.0.1:1 } }\n  otlp/internal:\n    http: { endpoint: 127.0.0.1:2 }",
    )
    .unwrap();
    c.validate().unwrap();
    let got: Vec<_> = c.receivers.iter().map(|(k, kind, _)| (k, kind)).collect();
    assert_eq!(got, vec![("otlp", "otlp"), ("otlp/internal", "otlp")]);
    let (_, _, internal) = c.receivers.iter().nth(1).unwrap();
    assert_eq!(internal["http"]["endpoint"], "127.0.0.1:2");
}

#[test]
fn receiver_keys_are_kind_or_kind_slash_name() {
    for bad in ["/x", "otlp/", ""] {
        let text = format!("receivers:\n  \"{bad}\": {{}}");
        let err = Config::from_yaml(&text).unwrap().validate().unwrap_err();
        assert!(
            err.to_string().contains("KIND or KIND/NAME"),
            "{bad}: {err}"
        );
    }
    let err = Config::from_yaml("receivers: {}")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("none configured"), "{err}");
}

#[test]
fn unknown_exporter_in_pipeline_is_invalid() {
    let bad = SAMPLE.replace(
        "traces: { exporters: [backend] }",
        "traces: { exporters: [nope] }",
    );
    let err = Config::from_yaml(&bad).unwrap().validate().unwrap_err();
    assert!(err.to_string().contains("unknown exporter `nope`"), "{err}");
}

#[test]
fn env_is_substituted_before_parsing() {
    let text = SAMPLE.replace("14317", "${env:UPSTREAM_PORT}");
    let env = |n: &str| (n == "UPSTREAM_PORT").then(|| "24317".to_string());
    let c = Config::from_yaml_with_env(&text, env).unwrap();
    assert_eq!(
        c.exporters["backend"].section["endpoint"],
        "http://127.0.0.1:24317"
    );
}

#[test]
fn empty_file_means_defaults_and_debug_exporter() {
    let c = Config::from_yaml("").unwrap().resolved();
    c.validate().unwrap();
    assert_eq!(c.exporters["debug"].kind, "debug");
    let p = c.pipelines.unwrap();
    assert_eq!(p.traces.unwrap().exporters, vec!["debug"]);
    let (key, kind, otlp) = c.receivers.iter().next().unwrap();
    assert_eq!((key, kind, c.receivers.len()), ("otlp", "otlp", 1));
    assert_eq!(otlp["grpc"]["endpoint"], "127.0.0.1:4317");
    assert_eq!(otlp["http"]["endpoint"], "127.0.0.1:4318");
}

#[test]
fn durations_and_limits_parse() {
    let c =
        Config::from_yaml("limits: { request_timeout: 250ms, max_request_bytes: 1024 }").unwrap();
    assert_eq!(c.limits.request_timeout, Duration::from_millis(250));
    assert_eq!(c.limits.max_request_bytes, 1024);
    assert_eq!(c.limits.max_concurrent_requests, 1024);
}

#[test]
fn queue_and_retry_sit_beside_the_kind_and_are_validated_there() {
    let c = Config::from_yaml(
        "state_dir: /tmp/x\nexporters:\n  up:\n    otlp: { endpoint: \"http://a:1\" }\n    queue: { durable: true, max_batches: 7 }\n    retry: { max_interval: 1s }",
    )
    .unwrap();
    c.validate().unwrap();
    let e = &c.exporters["up"];
    assert!(e.queue.durable);
    assert_eq!(e.queue.max_batches, 7);
    assert_eq!(e.retry.max_interval, Duration::from_secs(1));
    assert!(e.section.get("queue").is_none());
    // A durable queue needs a state_dir, whatever the kind.
    let c =
        Config::from_yaml("exporters: { up: { debug: {}, queue: { durable: true } } }").unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("exporters.up.queue.durable needs state_dir"),
        "{err}"
    );
    let c =
        Config::from_yaml("exporters: { up: { debug: {}, queue: { max_batches: 0 } } }").unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("exporters.up.queue"), "{err}");
    let c =
        Config::from_yaml("exporters: { up: { debug: {}, retry: { multiplier: 0.5 } } }").unwrap();
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("retry.multiplier")
    );
}

#[test]
fn queue_and_retry_inside_the_kind_section_are_moved_beside_it_with_a_warning() {
    let c = Config::from_yaml(
        "exporters: { up: { otlp: { endpoint: \"http://a:1\", queue: { max_batches: 7 }, retry: { enabled: false } } } }",
    )
    .unwrap();
    let e = &c.exporters["up"];
    assert_eq!(e.queue.max_batches, 7);
    assert!(!e.retry.enabled);
    assert_eq!(e.moved, ["queue", "retry"]);
    assert!(e.section.get("queue").is_none() && e.section.get("retry").is_none());
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("exporters.up.otlp.queue"),
        "{warnings:?}"
    );
    // Both places at once is an error, not a choice.
    let err = Config::from_yaml(
        "exporters: { up: { otlp: { endpoint: \"http://a:1\", queue: {} }, queue: {} } }",
    )
    .unwrap_err();
    assert!(err.to_string().contains("set twice"), "{err}");
    // A bad key inside the moved section names its path.
    let err = Config::from_yaml(
        "exporters: { up: { otlp: { endpoint: \"http://a:1\", queue: { max_batchs: 1 } } } }",
    )
    .unwrap_err();
    assert!(err.to_string().contains("otlp.queue.max_batchs"), "{err}");
}

#[test]
fn an_exporter_has_exactly_one_kind_key() {
    let err = Config::from_yaml("exporters: { up: { queue: {} } }").unwrap_err();
    assert!(err.to_string().contains("needs one kind key"), "{err}");
    let err = Config::from_yaml("exporters: { up: { debug: {}, otlp: {} } }").unwrap_err();
    assert!(err.to_string().contains("exactly one kind key"), "{err}");
    // A kind written without a section (`debug:`) has an empty one.
    let c = Config::from_yaml("exporters: { up: { debug: } }").unwrap();
    assert!(c.exporters["up"].section.as_mapping().unwrap().is_empty());
}

#[test]
fn a_profiles_pipeline_is_warned_about_as_alpha() {
    let c = Config::from_yaml(
        "exporters: { up: { debug: {} } }\npipelines: { profiles: { exporters: [up] } }",
    )
    .unwrap();
    c.validate().unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("pipelines.profiles") && w[0].contains("v1development"),
        "{w:?}"
    );
    // The quick start's pipelines (none written) are not warned about.
    assert!(Config::from_yaml("").unwrap().warnings().is_empty());
}

#[test]
fn a_remote_admin_endpoint_needs_a_token() {
    let c = Config::from_yaml("admin: { endpoint: 0.0.0.0:9901 }").unwrap();
    let err = c.validate().unwrap_err();
    assert!(err.to_string().contains("admin.token"), "{err}");
    let c = Config::from_yaml("admin: { endpoint: 0.0.0.0:9901, token: t0ken }").unwrap();
    c.validate().unwrap();
}

#[test]
fn filters_are_configured_per_pipeline() {
    let text = r#"
exporters:
  up: { otlp: { endpoint: "http://127.0.0.1:4317" } }
pipelines:
  traces:
    exporters: [up]
    filters:
      - name: zone
        module: filters/zone.wasm
        config: { key: edge.zone, value: eu }
        on_error: fail-closed
        limits: { deadline: 10ms, memory: 1048576 }
"#;
    let mut c = Config::from_yaml(text).unwrap();
    c.resolve_paths(Path::new("/etc/weir"));
    c.validate().unwrap();
    let f = &c
        .pipelines
        .as_ref()
        .unwrap()
        .traces
        .as_ref()
        .unwrap()
        .filters[0];
    assert_eq!(f.module, Path::new("/etc/weir/filters/zone.wasm"));
    assert_eq!(f.on_error, OnError::FailClosed);
    assert_eq!(f.limits.deadline, Duration::from_millis(10));
    assert_eq!(f.config_text(), r#"{"key":"edge.zone","value":"eu"}"#);
    let dup = text.replace(
        "filters:\n",
        "filters:\n      - { name: zone, module: x.wasm }\n",
    );
    let dup = Config::from_yaml(&dup).unwrap();
    assert!(dup.validate().unwrap_err().to_string().contains("unique"));
    let bad = text.replace("on_error: fail-closed", "on_error: explode");
    assert!(Config::from_yaml(&bad).is_err());
}

#[test]
fn filter_limits_are_checked_and_size_the_engine() {
    let yaml = r#"
exporters:
  backend: { otlp: { endpoint: "http://127.0.0.1:14317" } }
pipelines:
  traces:
    exporters: [backend]
    filters:
      - { name: a, module: a.wasm, limits: { concurrency: 40, memory: 134217728 } }
      - { name: b, module: b.wasm, limits: { concurrency: 10, instance_wait: 5ms } }
"#;
    let c = Config::from_yaml(yaml).unwrap();
    c.validate().unwrap();
    let (slots, memory) = c.filter_pool();
    // Twice the configured concurrency (a new version warms up beside the old), plus room for pushes.
    assert_eq!(slots as usize, 2 * 50 + 8 * default_concurrency());
    assert_eq!(memory, 128 << 20, "the largest configured memory");
    let b = &c
        .pipelines
        .as_ref()
        .unwrap()
        .traces
        .as_ref()
        .unwrap()
        .filters[1];
    assert_eq!(b.limits.instance_wait, Duration::from_millis(5));
    // Explicit sizes win; without filters the floor holds.
    let explicit = Config::from_yaml(
        "filter_runtime: { instance_slots: 12, max_memory: 1048576 }\nexporters: { b: { debug: {} } }",
    )
    .unwrap();
    assert_eq!(explicit.filter_pool(), (12, 1 << 20));
    let none = Config::from_yaml("exporters: { b: { debug: {} } }").unwrap();
    assert_eq!(
        none.filter_pool(),
        (64.max(8 * default_concurrency() as u32), 64 << 20)
    );
    // Out of range: named in the error.
    for bad in [
        "concurrency: 0",
        "concurrency: 100000",
        "deadline: 0s",
        "memory: 0",
    ] {
        let yaml = format!(
            "exporters: {{ b: {{ debug: {{}} }} }}\npipelines: {{ traces: {{ exporters: [b], filters: [{{ name: f, module: f.wasm, limits: {{ {bad} }} }}] }} }}"
        );
        let err = Config::from_yaml(&yaml).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("limits"), "{bad}: {err}");
    }
}

#[test]
fn connection_limits_parse_with_defaults_and_are_range_checked() {
    let c = Config::from_yaml(
        "limits: { connections: { max_per_listener: 8, body_read_timeout: 2s, max_connection_age: 5m } }",
    )
    .unwrap();
    c.validate().unwrap();
    let l = &c.limits.connections;
    assert_eq!(l.max_per_listener, 8);
    assert_eq!(l.body_read_timeout, Duration::from_secs(2));
    assert_eq!(l.max_connection_age, Some(Duration::from_secs(300)));
    // Unset fields keep their defaults.
    assert_eq!(l.header_read_timeout, Duration::from_secs(10));
    assert_eq!(
        Config::default().limits.connections.max_connection_age,
        None
    );
    for (bad, named) in [
        ("max_per_listener: 0", "max_per_listener"),
        ("body_read_timeout: 0s", "body_read_timeout"),
        (
            "http2_max_concurrent_streams: 0",
            "http2_max_concurrent_streams",
        ),
        ("max_connection_age: 0s", "max_connection_age"),
    ] {
        let c = Config::from_yaml(&format!("limits: {{ connections: {{ {bad} }} }}")).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(named), "{bad}: {e}");
    }
    assert!(Config::from_yaml("limits: { connections: { max_conns: 1 } }").is_err());
}
