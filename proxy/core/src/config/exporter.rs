//! `exporters`: named upstreams, as the configuration file holds them. The bottom layer knows an
//! exporter's shape, not its kinds: each kind (`otlp`, `debug`, ...) owns its configuration type,
//! validation and build beside its code in `weir-exporter`, whose registry reads the kind's section.
//! What every kind is given, the queue and the retries, is read here ([`super::queue`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{QueueConfig, RetryConfig};

/// One exporter: exactly one kind key, whose section the kind's own configuration type reads, and
/// the machinery every kind is given, beside it:
///
/// ```yaml
/// exporters:
///   backend:
///     otlp: { endpoint: "http://collector:4317" }
///     queue: { durable: true }
///     retry: { max_interval: 10s }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ExporterShape")]
pub struct ExporterConfig {
    /// The kind key: `otlp`, `debug`.
    pub kind: String,
    /// The kind's section as written; the kind's configuration type parses and validates it.
    pub section: serde_yaml_ng::Value,
    /// The exporter's queue (memory or durable) and senders.
    pub queue: QueueConfig,
    /// Retries of retryable upstream answers.
    pub retry: RetryConfig,
    /// Shared keys found inside the kind's section, where weir 0.1 had them (`otlp.queue`,
    /// `otlp.retry`), and moved beside it: `weir validate` warns about each.
    pub moved: Vec<&'static str>,
}

impl ExporterConfig {
    /// An exporter of `kind` with `section`, default queue and retries.
    pub fn new(kind: impl Into<String>, section: serde_yaml_ng::Value) -> Self {
        Self {
            kind: kind.into(),
            section,
            queue: QueueConfig::default(),
            retry: RetryConfig::default(),
            moved: Vec::new(),
        }
    }
}

/// The YAML shape: the shared keys, and every other key a kind (exactly one is allowed).
#[derive(Deserialize)]
struct ExporterShape {
    #[serde(default)]
    queue: Option<QueueConfig>,
    #[serde(default)]
    retry: Option<RetryConfig>,
    #[serde(flatten)]
    kinds: BTreeMap<String, serde_yaml_ng::Value>,
}

impl TryFrom<ExporterShape> for ExporterConfig {
    type Error = String;

    fn try_from(shape: ExporterShape) -> Result<Self, String> {
        let mut kinds = shape.kinds.into_iter();
        let (kind, mut section) = match (kinds.next(), kinds.next()) {
            (Some(k), None) => k,
            (None, _) => {
                return Err("an exporter needs one kind key, such as `otlp` or `debug`".into());
            }
            (Some((a, _)), Some((b, _))) => {
                return Err(format!(
                    "an exporter has exactly one kind key besides `queue` and `retry`; found `{a}` and `{b}`"
                ));
            }
        };
        if section.is_null() {
            section = serde_yaml_ng::Value::Mapping(Default::default());
        }
        let mut moved = Vec::new();
        let mut lift = |key: &'static str| -> Option<serde_yaml_ng::Value> {
            let v = section.as_mapping_mut()?.remove(key)?;
            moved.push(key);
            Some(v)
        };
        let (old_queue, old_retry) = (lift("queue"), lift("retry"));
        let queue = shared(shape.queue, old_queue, &kind, "queue")?;
        let retry = shared(shape.retry, old_retry, &kind, "retry")?;
        Ok(Self {
            kind,
            section,
            queue,
            retry,
            moved,
        })
    }
}

/// A shared setting from beside the kind's section or, as weir 0.1 had it, from inside it.
fn shared<T: serde::de::DeserializeOwned + Default>(
    beside: Option<T>,
    inside: Option<serde_yaml_ng::Value>,
    kind: &str,
    key: &str,
) -> Result<T, String> {
    match (beside, inside) {
        (Some(_), Some(_)) => Err(format!(
            "`{key}` is set twice, beside `{kind}` and inside it: keep the one beside it"
        )),
        (Some(v), None) => Ok(v),
        (None, Some(v)) => serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            format!("{kind}.{key}.{path}: {}", e.into_inner())
        }),
        (None, None) => Ok(T::default()),
    }
}
