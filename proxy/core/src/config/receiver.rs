//! `receivers`: where weir takes data in. The bottom layer knows a receiver's shape, not its kinds:
//! each kind (`otlp`, ...) owns its configuration type, validation and start beside its code in
//! `weir-receiver`, whose registry reads the kind's section. A receiver's key is its kind, or
//! `KIND/NAME` for a second receiver of one kind (as the OpenTelemetry Collector names them):
//!
//! ```yaml
//! receivers:
//!   otlp:                      # the public listeners, with TLS and tokens
//!     grpc: { endpoint: "0.0.0.0:4317", tls: { ... }, auth: { ... } }
//!   otlp/internal:             # plain, for the node's own agents
//!     http: { endpoint: "127.0.0.1:4318" }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_yaml_ng::{Mapping, Value};

/// Every receiver, by key, its kind's section as written. Without a `receivers` section weir has one
/// receiver, `otlp`, on `127.0.0.1:4317` (gRPC) and `127.0.0.1:4318` (HTTP).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiversConfig {
    sections: BTreeMap<String, Value>,
}

impl Default for ReceiversConfig {
    fn default() -> Self {
        let listener = |endpoint: &str| {
            let mut m = Mapping::new();
            m.insert("endpoint".into(), endpoint.into());
            Value::Mapping(m)
        };
        let mut otlp = Mapping::new();
        otlp.insert("grpc".into(), listener("127.0.0.1:4317"));
        otlp.insert("http".into(), listener("127.0.0.1:4318"));
        Self {
            sections: BTreeMap::from([("otlp".to_string(), Value::Mapping(otlp))]),
        }
    }
}

impl<'de> Deserialize<'de> for ReceiversConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let sections = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
        Ok(Self { sections })
    }
}

impl ReceiversConfig {
    /// Each receiver: its key, its kind (the key up to a `/`) and its section (an empty map where the
    /// file left it empty).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.sections
            .iter()
            .map(|(key, section)| (key.as_str(), kind_of(key), section))
    }

    /// How many receivers there are.
    pub fn len(&self) -> usize {
        self.sections.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// Receiver `key`'s section, made (empty) when the file has no such receiver.
    pub fn section_mut(&mut self, key: &str) -> &mut Value {
        self.sections.entry(key.to_string()).or_insert(Value::Null)
    }

    /// Checks the keys: at least one receiver, each `KIND` or `KIND/NAME` with neither part empty.
    pub fn validate(&self) -> Result<(), String> {
        if self.sections.is_empty() {
            return Err(
                "receivers: none configured; weir needs at least one (such as `otlp`)".into(),
            );
        }
        for key in self.sections.keys() {
            let bad = match key.split_once('/') {
                Some((kind, name)) => kind.is_empty() || name.is_empty(),
                None => key.is_empty(),
            };
            if bad {
                return Err(format!(
                    "receivers.{key}: a receiver's key is KIND or KIND/NAME, as in `otlp` or `otlp/internal`"
                ));
            }
        }
        Ok(())
    }
}

/// A receiver key's kind: `otlp` for `otlp` and for `otlp/internal`.
pub fn kind_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(kind, _)| kind)
}
