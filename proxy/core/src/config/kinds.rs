//! What the receiver and exporter registries share: a table of kinds, each with the key that names
//! it and how its section (kept as written by this layer) is read into the kind's own type, with the
//! key's full path in errors. The tables themselves live with the kinds, in `weir-receiver` and
//! `weir-exporter`; `K` is their trait object (`dyn ReceiverKind`, `dyn ExporterKind`).

use serde::de::DeserializeOwned;

use super::ConfigError;

/// Where in a section reading failed (a key path, `.` for the section itself), and why.
pub type SectionError = (String, String);

/// One kind of component: the key naming it, and how its section is read.
pub struct Kind<K: ?Sized + 'static> {
    /// The kind's key in the configuration (`otlp`, `debug`).
    pub name: &'static str,
    /// Reads a section into the kind's configuration (a table fills it with [`read`]).
    pub parse: fn(serde_yaml_ng::Value) -> Result<Box<K>, SectionError>,
}

/// Reads `section` as `T`, or says where and why not.
pub fn read<T: DeserializeOwned>(section: serde_yaml_ng::Value) -> Result<T, SectionError> {
    serde_path_to_error::deserialize(section)
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
}

/// Reads `section` (an empty map when the file left it empty) with the kind named `kind` in `kinds`.
/// `at` is the section's path (`receivers.otlp/edge`, `exporters.up.otlp`), `key` where an unknown
/// kind's name is reported (`receivers.kafka`, `exporters.up`), and `component` what the kinds are
/// kinds of (`receiver`).
pub fn parse<K: ?Sized + 'static>(
    kinds: &[Kind<K>],
    component: &str,
    kind: &str,
    key: &str,
    at: &str,
    section: &serde_yaml_ng::Value,
) -> Result<Box<K>, ConfigError> {
    let found = kinds.iter().find(|k| k.name == kind).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "{key}: unknown {component} kind `{kind}` (known: {})",
            kinds.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let section = if section.is_null() {
        serde_yaml_ng::Value::Mapping(Default::default())
    } else {
        section.clone()
    };
    (found.parse)(section).map_err(|(path, message)| ConfigError::Schema {
        path: if path == "." {
            at.to_string()
        } else {
            format!("{at}.{path}")
        },
        message,
    })
}
