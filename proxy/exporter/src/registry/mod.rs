//! The exporter kinds weir knows, by the key that names them in the configuration. Adding a kind is
//! its module (a config type that implements [`ExporterKind`] and `Deserialize`, and an [`Export`]
//! it builds) and one line in [`KINDS`].
//!
//! [`Export`]: crate::kind::Export

use std::path::Path;

use serde::de::DeserializeOwned;
use weir_core::config::{Config, ConfigError, ExporterConfig};

use crate::kind::ExporterKind;

/// What reading a kind's section gives: the kind's configuration, or where (a key path) and why not.
type Parsed = Result<Box<dyn ExporterKind>, (String, String)>;

/// One exporter kind: its key and how its section is read.
pub struct Kind {
    /// The key naming the kind under `exporters.NAME`.
    pub name: &'static str,
    parse: fn(serde_yaml_ng::Value) -> Parsed,
}

impl Kind {
    const fn of<T: ExporterKind + DeserializeOwned + 'static>(name: &'static str) -> Self {
        Self {
            name,
            parse: parse_as::<T>,
        }
    }
}

fn parse_as<T: ExporterKind + DeserializeOwned + 'static>(section: serde_yaml_ng::Value) -> Parsed {
    serde_path_to_error::deserialize::<_, T>(section)
        .map(|c| Box::new(c) as Box<dyn ExporterKind>)
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
}

/// Every exporter kind.
pub const KINDS: &[Kind] = &[
    Kind::of::<crate::otlp::OtlpExporterConfig>("otlp"),
    Kind::of::<crate::debug::DebugExporterConfig>("debug"),
];

/// Reads and validates exporter `name`'s kind section, its relative paths made relative to `base`.
pub fn parse(
    name: &str,
    config: &ExporterConfig,
    base: Option<&Path>,
) -> Result<Box<dyn ExporterKind>, ConfigError> {
    let kind = KINDS
        .iter()
        .find(|k| k.name == config.kind)
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "exporters.{name}: unknown exporter kind `{}` (known: {})",
                config.kind,
                KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            ))
        })?;
    let mut parsed = (kind.parse)(config.section.clone()).map_err(|(path, message)| {
        let path = if path == "." {
            format!("exporters.{name}.{}", config.kind)
        } else {
            format!("exporters.{name}.{}.{path}", config.kind)
        };
        ConfigError::Schema { path, message }
    })?;
    if let Some(base) = base {
        parsed.resolve_paths(base);
    }
    parsed
        .validate()
        .map_err(|e| ConfigError::Invalid(format!("exporters.{name}.{}: {e}", config.kind)))?;
    Ok(parsed)
}

/// Reads and validates every exporter's kind section of `config` (what `weir validate` and the start
/// check beyond [`Config::validate`]).
pub fn check(config: &Config) -> Result<(), ConfigError> {
    for (name, e) in &config.exporters {
        parse(name, e, config.base_dir.as_deref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
