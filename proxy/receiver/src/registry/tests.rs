use weir_core::config::{Config, ConfigError};

use super::*;

fn config(yaml: &str) -> Config {
    let c = Config::from_yaml(yaml).unwrap();
    c.validate().unwrap();
    c
}

#[test]
fn the_default_is_one_otlp_receiver_on_both_transports() {
    let c = Config::default();
    let all = parse_all(&c).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "otlp");
    let text = format!("{:?}", all[0].1);
    assert!(
        text.contains("127.0.0.1:4317") && text.contains("127.0.0.1:4318"),
        "{text}"
    );
}

#[test]
fn an_unknown_key_is_named_by_its_full_path() {
    let c = config("receivers:\n  otlp/edge:\n    grpc: { endpont: 127.0.0.1:4317 }");
    match check(&c).unwrap_err() {
        ConfigError::Schema { path, message } => {
            assert_eq!(path, "receivers.otlp/edge.grpc.endpont");
            assert!(message.contains("endpont"), "{message}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn an_unknown_kind_lists_the_known_ones() {
    let c = config("receivers:\n  kafka/orders: { brokers: [a] }");
    let err = check(&c).unwrap_err().to_string();
    assert!(err.contains("receivers.kafka/orders"), "{err}");
    assert!(
        err.contains("unknown receiver kind `kafka` (known: otlp)"),
        "{err}"
    );
}

#[test]
fn a_kind_validates_its_section() {
    let c = config("receivers:\n  otlp: { http: { endpoint: not-an-address } }");
    let err = check(&c).unwrap_err().to_string();
    assert!(err.contains("receivers.otlp: http.endpoint"), "{err}");
    let c = config("receivers:\n  otlp/none: {}");
    let err = check(&c).unwrap_err().to_string();
    assert!(
        err.contains("receivers.otlp/none: enable at least one of grpc and http"),
        "{err}"
    );
    let c = config("receivers:\n  otlp:");
    let err = check(&c).unwrap_err().to_string();
    assert!(err.contains("enable at least one"), "{err}");
}

#[test]
fn relative_paths_are_made_relative_to_the_file() {
    let mut c = config(
        "receivers:\n  otlp:\n    http:\n      endpoint: 127.0.0.1:0\n      tls: { cert: c.pem, key: k.pem }",
    );
    c.base_dir = Some("/etc/weir".into());
    let all = parse_all(&c).unwrap();
    let text = format!("{:?}", all[0].1);
    assert!(text.contains("/etc/weir/c.pem"), "{text}");
}
