//! The receiver kinds weir knows, by the key that names them in the configuration. Adding a kind is
//! its module (a config type that implements [`ReceiverKind`] and `Deserialize`, and what it starts)
//! and one line in [`KINDS`].

use std::path::Path;

use serde::de::DeserializeOwned;
use weir_core::config::{Config, ConfigError};

use crate::kind::ReceiverKind;

/// What reading a kind's section gives: the kind's configuration, or where (a key path) and why not.
type Parsed = Result<Box<dyn ReceiverKind>, (String, String)>;

/// One receiver kind: its key and how its section is read.
pub struct Kind {
    /// The key naming the kind: `receivers.KIND` or `receivers.KIND/NAME`.
    pub name: &'static str,
    parse: fn(serde_yaml_ng::Value) -> Parsed,
}

impl Kind {
    const fn of<T: ReceiverKind + DeserializeOwned + 'static>(name: &'static str) -> Self {
        Self {
            name,
            parse: parse_as::<T>,
        }
    }
}

fn parse_as<T: ReceiverKind + DeserializeOwned + 'static>(section: serde_yaml_ng::Value) -> Parsed {
    serde_path_to_error::deserialize::<_, T>(section)
        .map(|c| Box::new(c) as Box<dyn ReceiverKind>)
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
}

/// Every receiver kind.
pub const KINDS: &[Kind] = &[Kind::of::<crate::otlp::OtlpReceiverConfig>("otlp")];

/// Reads and validates receiver `key`'s section (of kind `kind`), its relative paths made relative
/// to `base`.
pub fn parse(
    key: &str,
    kind: &str,
    section: &serde_yaml_ng::Value,
    base: Option<&Path>,
) -> Result<Box<dyn ReceiverKind>, ConfigError> {
    let found = KINDS.iter().find(|k| k.name == kind).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "receivers.{key}: unknown receiver kind `{kind}` (known: {})",
            KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let section = if section.is_null() {
        serde_yaml_ng::Value::Mapping(Default::default())
    } else {
        section.clone()
    };
    let mut parsed = (found.parse)(section).map_err(|(path, message)| {
        let path = if path == "." {
            format!("receivers.{key}")
        } else {
            format!("receivers.{key}.{path}")
        };
        ConfigError::Schema { path, message }
    })?;
    if let Some(base) = base {
        parsed.resolve_paths(base);
    }
    parsed
        .validate()
        .map_err(|e| ConfigError::Invalid(format!("receivers.{key}: {e}")))?;
    Ok(parsed)
}

/// A receiver's key (`otlp`, `otlp/internal`) and its kind's configuration.
pub type Receiver = (String, Box<dyn ReceiverKind>);

/// Every receiver of `config`, read and validated, by key.
pub fn parse_all(config: &Config) -> Result<Vec<Receiver>, ConfigError> {
    config
        .receivers
        .iter()
        .map(|(key, kind, section)| {
            parse(key, kind, section, config.base_dir.as_deref()).map(|r| (key.to_string(), r))
        })
        .collect()
}

/// Reads and validates every receiver's section of `config` (what `weir run` and `weir validate`
/// check beyond [`Config::validate`]).
pub fn check(config: &Config) -> Result<(), ConfigError> {
    parse_all(config).map(|_| ())
}

#[cfg(test)]
mod tests;
