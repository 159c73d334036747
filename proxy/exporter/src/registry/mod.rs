//! The exporter kinds weir knows, by the key that names them in the configuration. Adding a kind is
//! its module (a config type that implements [`ExporterKind`] and `Deserialize`, and an [`Export`]
//! it builds) and one line in [`KINDS`].
//!
//! [`Export`]: crate::kind::Export

use std::path::Path;

use serde::de::DeserializeOwned;
use weir_core::config::kinds::{self, read};
use weir_core::config::{Config, ConfigError, ExporterConfig};

use crate::kind::ExporterKind;

/// One exporter kind: its key under `exporters.NAME` and how its section is read.
pub type Kind = kinds::Kind<dyn ExporterKind>;

const fn of<T: ExporterKind + DeserializeOwned + 'static>(name: &'static str) -> Kind {
    Kind {
        name,
        parse: |section| read::<T>(section).map(|c| Box::new(c) as Box<dyn ExporterKind>),
    }
}

/// Every exporter kind.
pub const KINDS: &[Kind] = &[
    of::<crate::otlp::OtlpExporterConfig>("otlp"),
    of::<crate::debug::DebugExporterConfig>("debug"),
];

/// Reads and validates exporter `name`'s kind section, its relative paths made relative to `base`.
pub fn parse(
    name: &str,
    config: &ExporterConfig,
    base: Option<&Path>,
) -> Result<Box<dyn ExporterKind>, ConfigError> {
    let at = format!("exporters.{name}.{}", config.kind);
    let key = format!("exporters.{name}");
    let mut parsed = kinds::parse(KINDS, "exporter", &config.kind, &key, &at, &config.section)?;
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
