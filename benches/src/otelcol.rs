//! The OpenTelemetry Collector as a peer to measure: its two benchmark configs (compiled in from
//! `benches/otelcol.yaml` and `benches/otelcol-tuned.yaml`), and where its binary is.
//!
//! The binary is `otelcol-weir`, built and cached by `tests/peers/build.sh collector`, which names it in
//! the peers' env file (`${WEIR_PEERS_CACHE:-$HOME/.cache/weir/peers}/env`, a `WEIR_OTELCOL=PATH` line).

use std::path::{Path, PathBuf};

/// The Collector with its defaults: batch processor, `otlp_grpc` exporter's own queue and retry.
pub const DEFAULT_CONFIG: &str = include_str!("../otelcol.yaml");

/// The Collector tuned as its documentation recommends for a gateway (sources in the file).
pub const TUNED_CONFIG: &str = include_str!("../otelcol-tuned.yaml");

/// The Collector with its defaults and the `redaction` processor masking what weir's redactor masks
/// (the edge chain's counterpart on secret-dense spans).
pub const REDACTION_CONFIG: &str = include_str!("../otelcol-redaction.yaml");

/// `GOMEMLIMIT` of the tuned setup: its `memory_limiter` hard limit (see `benches/otelcol-tuned.yaml`).
pub const TUNED_GOMEMLIMIT: &str = "800MiB";

/// The command that builds the Collector and writes the env file.
pub const BUILD_COMMAND: &str = "tests/peers/build.sh collector";

/// The peers' env file: `${WEIR_PEERS_CACHE:-$HOME/.cache/weir/peers}/env`.
pub fn env_file() -> Option<PathBuf> {
    let cache = match std::env::var_os("WEIR_PEERS_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/weir/peers"),
    };
    Some(cache.join("env"))
}

/// The `WEIR_OTELCOL` of the env file, if the file names one that exists.
pub fn from_env_file() -> Option<PathBuf> {
    let text = std::fs::read_to_string(env_file()?).ok()?;
    parse_env(&text).filter(|p| p.is_file())
}

/// The value of the `WEIR_OTELCOL=...` line of an env file's text (the last one wins, as in a shell).
pub fn parse_env(text: &str) -> Option<PathBuf> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("WEIR_OTELCOL="))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
        .rfind(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `tests/peers/build.sh` of this checkout.
#[allow(dead_code)] // the benchmark's, not loadgen's
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/build.sh")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_collector_from_an_env_file() {
        let env = "WEIR_OTELCOL=/c/otelcol-v0.161.0-fd58ef51/otelcol-weir\n\
                   WEIR_KAFKA_LIBS=/c/kafka/libs\nWEIR_NATS_SERVER=/usr/sbin/nats-server";
        assert_eq!(
            parse_env(env).as_deref(),
            Some(Path::new("/c/otelcol-v0.161.0-fd58ef51/otelcol-weir"))
        );
        assert_eq!(
            parse_env("WEIR_OTELCOL=\"/a b/otelcol-weir\"\n").as_deref(),
            Some(Path::new("/a b/otelcol-weir"))
        );
        assert_eq!(parse_env("WEIR_KAFKA_LIBS=/c/kafka/libs\n"), None);
        assert_eq!(parse_env("WEIR_OTELCOL=\n"), None);
    }

    #[test]
    fn the_configs_name_their_variables_and_the_tuned_one_its_sources() {
        for config in [DEFAULT_CONFIG, TUNED_CONFIG, REDACTION_CONFIG] {
            for var in [
                "WEIR_BENCH_OTLP_GRPC",
                "WEIR_BENCH_OTLP_HTTP",
                "WEIR_BENCH_SINK_ADDR",
                "WEIR_BENCH_COMPRESSION",
            ] {
                assert!(config.contains(&format!("${{env:{var}}}")), "{var}");
            }
            assert!(config.contains("level: none"), "no :8888 listener");
        }
        assert!(TUNED_CONFIG.contains("processors: [memory_limiter, batch]"));
        assert!(TUNED_CONFIG.contains("https://opentelemetry.io/docs/collector/scaling/"));
        assert!(TUNED_CONFIG.contains(&format!("GOMEMLIMIT={TUNED_GOMEMLIMIT}")));
    }
}
