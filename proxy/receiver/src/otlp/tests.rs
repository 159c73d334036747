use weir_core::config::Config;

use super::*;

fn otlp(c: &Config) -> OtlpReceiverConfig {
    let (_, _, section) = c.receivers.iter().find(|(k, _, _)| *k == "otlp").unwrap();
    serde_yaml_ng::from_value(section.clone()).unwrap()
}

#[test]
fn set_endpoint_keeps_the_listener_settings_and_enables_a_missing_transport() {
    let mut c = Config::from_yaml(
        "receivers:\n  otlp:\n    grpc:\n      endpoint: 127.0.0.1:4317\n      auth: { tokens: [{ token: t, tenant: a }] }",
    )
    .unwrap();
    set_endpoint(&mut c, "grpc", "127.0.0.1:0");
    set_endpoint(&mut c, "http", "127.0.0.1:9");
    let o = otlp(&c);
    let grpc = o.grpc.unwrap();
    assert_eq!(grpc.endpoint, "127.0.0.1:0");
    assert!(grpc.auth.is_some(), "the file's auth stays");
    assert_eq!(o.http.unwrap().endpoint, "127.0.0.1:9");
}

#[test]
fn set_endpoint_adds_an_otlp_receiver_beside_others() {
    let mut c =
        Config::from_yaml("receivers:\n  otlp/internal: { http: { endpoint: 127.0.0.1:1 } }")
            .unwrap();
    set_endpoint(&mut c, "grpc", "127.0.0.1:0");
    assert_eq!(c.receivers.len(), 2);
    let o = otlp(&c);
    assert_eq!(o.grpc.unwrap().endpoint, "127.0.0.1:0");
    assert!(o.http.is_none());
}

#[test]
fn auth_needs_what_it_names() {
    let c: OtlpReceiverConfig = serde_yaml_ng::from_str(
        "grpc:\n  endpoint: 127.0.0.1:0\n  auth: { identities: [{ identity: x, tenant: a }] }",
    )
    .unwrap();
    let err = c.validate().unwrap_err();
    assert!(err.starts_with("grpc.auth"), "{err}");
}

#[test]
fn listener_names_are_the_metric_labels() {
    assert_eq!(listener_name("otlp", "grpc"), "otlp-grpc");
    assert_eq!(listener_name("otlp", "http"), "otlp-http");
    assert_eq!(listener_name("otlp/edge", "http"), "otlp/edge-http");
}
