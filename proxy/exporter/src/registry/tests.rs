use super::*;
use weir_core::config::Config;

fn exporter(yaml: &str) -> (Config, ExporterConfig) {
    let c = Config::from_yaml(yaml).unwrap();
    let e = c.exporters["up"].clone();
    (c, e)
}

#[test]
fn every_kind_is_found_by_its_key_and_its_section_read() {
    for (yaml, kind) in [
        (
            "exporters: { up: { otlp: { endpoint: \"http://127.0.0.1:4317\" } } }",
            "otlp",
        ),
        (
            "exporters: { up: { debug: { verbosity: detailed } } }",
            "debug",
        ),
        ("exporters: { up: { debug: } }", "debug"),
    ] {
        let (c, e) = exporter(yaml);
        assert_eq!(e.kind, kind);
        parse("up", &e, None).unwrap();
        check(&c).unwrap();
    }
    assert_eq!(
        KINDS.iter().map(|k| k.name).collect::<Vec<_>>(),
        ["otlp", "debug"]
    );
}

#[test]
fn an_unknown_kind_names_the_known_ones() {
    let (c, _) = exporter("exporters: { up: { kafka: { brokers: [a] } } }");
    let err = check(&c).unwrap_err().to_string();
    assert!(err.contains("unknown exporter kind `kafka`"), "{err}");
    assert!(err.contains("otlp, debug"), "{err}");
}

#[test]
fn a_bad_key_in_a_kind_section_names_its_full_path() {
    let (_, e) =
        exporter("exporters: { up: { otlp: { endpoint: \"http://a:1\", protocl: grpc } } }");
    match parse("up", &e, None).unwrap_err() {
        ConfigError::Schema { path, message } => {
            assert_eq!(path, "exporters.up.otlp.protocl");
            assert!(message.contains("protocl"), "{message}");
        }
        other => panic!("{other}"),
    }
    let (_, e) = exporter("exporters: { up: { otlp: { endpoint: \"ftp://x\" } } }");
    let err = parse("up", &e, None).unwrap_err().to_string();
    assert!(
        err.contains("exporters.up.otlp") && err.contains("http://"),
        "{err}"
    );
}

#[test]
fn relative_paths_in_a_kind_section_are_made_relative_to_the_configuration() {
    let (_, e) =
        exporter("exporters: { up: { otlp: { endpoint: \"https://a:1\", tls: { ca: ca.pem } } } }");
    let parsed = parse("up", &e, Some(Path::new("/etc/weir"))).unwrap();
    assert!(
        format!("{parsed:?}").contains("/etc/weir/ca.pem"),
        "{parsed:?}"
    );
}
