//! The receiver kinds weir knows, by the key that names them in the configuration. Adding a kind is
//! its module (a config type that implements [`ReceiverKind`] and `Deserialize`, and what it starts)
//! and one line in [`KINDS`].

use std::path::Path;

use serde::de::DeserializeOwned;
use weir_core::config::kinds::{self, read};
use weir_core::config::{Config, ConfigError};

use crate::kind::ReceiverKind;

/// One receiver kind: its key (`receivers.KIND` or `receivers.KIND/NAME`) and how its section is read.
pub type Kind = kinds::Kind<dyn ReceiverKind>;

const fn of<T: ReceiverKind + DeserializeOwned + 'static>(name: &'static str) -> Kind {
    Kind {
        name,
        parse: |section| read::<T>(section).map(|c| Box::new(c) as Box<dyn ReceiverKind>),
    }
}

/// Every receiver kind.
pub const KINDS: &[Kind] = &[of::<crate::otlp::OtlpReceiverConfig>("otlp")];

/// Reads and validates receiver `key`'s section (of kind `kind`), its relative paths made relative
/// to `base`.
pub fn parse(
    key: &str,
    kind: &str,
    section: &serde_yaml_ng::Value,
    base: Option<&Path>,
) -> Result<Box<dyn ReceiverKind>, ConfigError> {
    let at = format!("receivers.{key}");
    let mut parsed = kinds::parse(KINDS, "receiver", kind, &at, &at, section)?;
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
