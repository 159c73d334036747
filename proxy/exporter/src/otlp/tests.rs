use super::*;

#[test]
fn upstream_urls() {
    let g = OtlpExporterConfig::from_upstream_url("grpc://127.0.0.1:4317").unwrap();
    assert_eq!(g.protocol, OtlpProtocol::Grpc);
    assert_eq!(g.uri().unwrap().to_string(), "http://127.0.0.1:4317/");
    let h = OtlpExporterConfig::from_upstream_url("http://127.0.0.1:4318").unwrap();
    assert_eq!(h.protocol, OtlpProtocol::Http);
    assert!(OtlpExporterConfig::from_upstream_url("kafka://x").is_err());
}

#[test]
fn the_quick_start_section_reads_back_as_the_same_exporter() {
    let section = upstream_section("http://127.0.0.1:4318", Some(Compression::Zstd)).unwrap();
    let c: OtlpExporterConfig = serde_yaml_ng::from_value(section).unwrap();
    assert_eq!(c.protocol, OtlpProtocol::Http);
    assert_eq!(c.compression, Compression::Zstd);
    assert_eq!(c.endpoint, "http://127.0.0.1:4318");
    assert_eq!(c.timeout, Duration::from_secs(5));
}

#[test]
fn validation_names_what_is_wrong() {
    let base = || OtlpExporterConfig::from_upstream_url("grpc://127.0.0.1:4317").unwrap();
    let mut c = base();
    c.tenant_header = Some("bad header".into());
    assert!(c.validate().unwrap_err().contains("tenant_header"));
    let mut c = base();
    c.compression_level = Some(42);
    assert!(c.validate().unwrap_err().contains("compression_level 42"));
    let mut c = base();
    c.timeout = Duration::ZERO;
    assert!(c.validate().unwrap_err().contains("timeout"));
}
