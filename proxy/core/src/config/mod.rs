//! The configuration file: serde types only, plus loading and validation, one file per section.
//!
//! What the user writes is `FooConfig`; the `weir` crate's `app` builds what runs from it. The `///` docs on each
//! field double as the configuration reference (README "Configuration"). Every struct denies unknown keys,
//! and [`Config::from_yaml`] reports the full path of a key it does not know (`receivers.otlp.grpc.endpont`).
//! `${env:VAR}` (or `${env:VAR:-default}`) is substituted in the raw text before parsing.
//!
//! A receiver's or an exporter's kind section (`otlp`, `debug`) is kept as written here and read by
//! the kind's own configuration type in `weir-receiver` or `weir-exporter` (see [`ReceiversConfig`]
//! and [`ExporterConfig`]): the bottom layer does not know the kinds.

mod admin;
mod env;
mod exporter;
mod limits;
mod logs;
mod pipeline;
mod queue;
mod receiver;
mod security;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use admin::AdminConfig;
pub use env::substitute_env;
pub use exporter::ExporterConfig;
pub use limits::{ConnectionLimits, LimitsConfig};
pub use logs::{LogFormat, LogsConfig};
pub use pipeline::{
    FilterConfig, FilterLimits, MAX_FILTER_CONCURRENCY, MAX_FILTER_MEMORY, OnError, PipelineConfig,
    PipelinesConfig, default_concurrency,
};
pub use queue::{
    CoalesceConfig, Compression, OnPermanentError, QueueConfig, RetryConfig, SyncPolicy,
};
pub use receiver::ReceiversConfig;

pub mod kinds;
pub use security::{
    ClientAuth, ClientTlsConfig, IdentityConfig, IngressAuthConfig, ServerTlsConfig, TlsVersion,
    TokenConfig, check_tenant,
};

/// Everything that can go wrong while loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `${env:VAR}` named a variable that is not set and has no default.
    #[error("environment variable {0} is not set (referenced as ${{env:{0}}})")]
    MissingEnv(String),
    /// `${env:...}` was not closed or is malformed.
    #[error(
        "malformed environment reference at byte {0}: expected ${{env:NAME}} or ${{env:NAME:-default}}"
    )]
    BadEnvReference(usize),
    /// The YAML did not match the schema; `path` names the key.
    #[error("at `{path}`: {message}")]
    Schema {
        /// Dotted path of the offending key (`.` for the root).
        path: String,
        /// What serde said.
        message: String,
    },
    /// The configuration parsed but is inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The root of the configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where weir takes data in, by receiver (`otlp`, `otlp/NAME`).
    pub receivers: ReceiversConfig,
    /// Named upstreams. A pipeline names the exporters its data goes to.
    pub exporters: BTreeMap<String, ExporterConfig>,
    /// One pipeline per signal. A signal without a pipeline is refused with 404 / UNIMPLEMENTED.
    /// When the file has no `pipelines` at all, every signal goes to every exporter (or to `debug`).
    pub pipelines: Option<PipelinesConfig>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin: AdminConfig,
    /// Limits that protect weir from its clients.
    pub limits: LimitsConfig,
    /// weir's own logs.
    pub logs: LogsConfig,
    /// Where weir keeps state across restarts: the compiled-filter cache (and filters pushed through the
    /// admin API). Absent: nothing is kept (`weir run` compiles filters into a private temporary
    /// cache, removed when it exits).
    pub state_dir: Option<PathBuf>,
    /// The Wasm engine's instance slots, shared by every filter.
    pub filter_runtime: FilterRuntimeConfig,
    /// Signed filter modules: the keys a module must be signed by.
    pub module_signing: ModuleSigningConfig,
    /// The configuration file's folder, which relative paths in exporter kind sections (read by their
    /// kinds) are relative to; set by [`Config::load`].
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// Signed filter modules. With trusted keys, every module pushed through the admin API and every module
/// this file names must carry a valid signature by one of them (`weir filter sign` writes
/// `FILE.wasm.sig`; `weir filter push` sends it); anything else is refused and nothing changes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModuleSigningConfig {
    /// Public key files (PEM, as `weir keygen` writes them); relative paths are relative to the
    /// configuration file. A key signs as its file's stem (`ops.pub`: `ops`). Empty (the default):
    /// signatures are neither required nor checked.
    pub trusted_keys: Vec<PathBuf>,
}

/// How many filter instances the Wasm engine has room for, and how large each may grow. Slots are
/// reserved address space, not resident memory, but they are bounded from the configuration rather
/// than fixed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterRuntimeConfig {
    /// Instance slots for all filters together (default: twice the configured filters' `concurrency`,
    /// so that a new version can warm up beside the old, plus room for pushed filters; at least 64).
    pub instance_slots: Option<u32>,
    /// The largest `limits.memory` any filter may have, in bytes (default: the largest configured, at
    /// least 64 MiB). A pushed filter asking for more is refused.
    pub max_memory: Option<usize>,
}

impl Config {
    /// What `weir validate` warns about in a valid configuration: pipelines of signals OTLP has not
    /// declared stable (profiles).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .exporters
            .iter()
            .flat_map(|(name, e)| {
                e.moved.iter().map(move |key| {
                    format!(
                        "exporters.{name}.{kind}.{key}: `{key}` belongs beside `{kind}` now \
                         (exporters.{name}.{key}), as every exporter kind has one",
                        kind = e.kind
                    )
                })
            })
            .collect();
        let Some(p) = &self.pipelines else {
            return warnings;
        };
        warnings.extend(
            p.by_signal()
                .into_iter()
                .filter(|(s, p)| s.is_alpha() && p.is_some())
                .map(|(s, _)| {
                    format!(
                        "pipelines.{s}: {s} are alpha in OTLP; weir speaks {}, and a later OTLP \
                     release may change the format",
                        weir_wire::profiles::PROTO_VERSION
                    )
                }),
        );
        warnings
    }

    /// The engine's instance slots and per-instance memory, from `filter_runtime` or the filters
    /// configured.
    pub fn filter_pool(&self) -> (u32, usize) {
        let filters: Vec<&FilterLimits> = self
            .pipelines
            .iter()
            .flat_map(|p| p.by_signal())
            .filter_map(|(_, p)| p)
            .flat_map(|p| p.filters.iter().map(|f| &f.limits))
            .collect();
        let configured: usize = filters.iter().map(|l| l.concurrency).sum();
        let slots = self.filter_runtime.instance_slots.unwrap_or_else(|| {
            let room = 8 * default_concurrency();
            ((2 * configured + room) as u32).max(64)
        });
        let memory = self.filter_runtime.max_memory.unwrap_or_else(|| {
            filters
                .iter()
                .map(|l| l.memory)
                .max()
                .unwrap_or(0)
                .max(64 << 20)
        });
        (slots, memory.min(MAX_FILTER_MEMORY))
    }
}

impl Config {
    /// Reads, substitutes `${env:...}`, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::from_yaml(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.base_dir = Some(base.to_path_buf());
        config.validate()?;
        Ok(config)
    }

    /// Makes relative filter module and key paths relative to `base` (the configuration file's
    /// directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.admin.tls {
            tls.resolve_paths(base);
        }
        for key in &mut self.module_signing.trusted_keys {
            if key.is_relative() {
                *key = base.join(&*key);
            }
        }
        if let Some(p) = &mut self.pipelines {
            for pipeline in p.iter_mut() {
                for f in &mut pipeline.filters {
                    if f.module.is_relative() {
                        f.module = base.join(&f.module);
                    }
                }
            }
        }
    }

    /// Parses YAML (after `${env:...}` substitution) without validating.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_with_env(text, |name| std::env::var(name).ok())
    }

    /// [`Config::from_yaml`] with `${env:...}` looked up by `lookup`.
    pub fn from_yaml_with_env(
        text: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = substitute_env(text, lookup)?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Schema {
                path,
                message: e.into_inner().to_string(),
            }
        })
    }

    /// Checks what the schema cannot: addresses parse, pipelines name known exporters. A receiver's
    /// or an exporter's kind section is checked by its kind (the registries of `weir-receiver` and
    /// `weir-exporter`), at start, and by `weir run` and `weir validate` before that.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        self.receivers.validate().map_err(ConfigError::Invalid)?;
        self.limits
            .connections
            .validate()
            .map_err(ConfigError::Invalid)?;
        let admin = parse_addr(&self.admin.endpoint)
            .map_err(|e| ConfigError::Invalid(format!("admin.endpoint: {e}")))?;
        if !admin.ip().is_loopback()
            && self.admin.token.is_none()
            && self.admin.client_identities.is_empty()
        {
            return invalid(format!(
                "admin.endpoint {admin} is not a loopback address: set admin.token (or admin.client_identities) so that remote clients can authenticate"
            ));
        }
        if self.admin.token.as_deref() == Some("") {
            return invalid("admin.token must not be empty".into());
        }
        if !self.admin.client_identities.is_empty()
            && self
                .admin
                .tls
                .as_ref()
                .is_none_or(|t| t.client_ca.is_none())
        {
            return invalid(
                "admin.client_identities need client certificates: set admin.tls.client_ca".into(),
            );
        }
        for (name, exporter) in &self.exporters {
            exporter
                .queue
                .validate()
                .and_then(|()| exporter.retry.validate())
                .map_err(|e| ConfigError::Invalid(format!("exporters.{name}.{e}")))?;
            if exporter.queue.durable && self.state_dir.is_none() {
                return invalid(format!(
                    "exporters.{name}.queue.durable needs state_dir, where the queue is kept"
                ));
            }
        }
        if let Some(p) = &self.pipelines {
            for (signal, pipeline) in p.by_signal() {
                let Some(pipeline) = pipeline else { continue };
                if pipeline.exporters.is_empty() {
                    return invalid(format!("pipelines.{signal}.exporters: name at least one"));
                }
                let mut names = std::collections::HashSet::new();
                for f in &pipeline.filters {
                    if f.name.is_empty() || !names.insert(f.name.as_str()) {
                        return invalid(format!(
                            "pipelines.{signal}.filters: filter names must be unique and non-empty (`{}`)",
                            f.name
                        ));
                    }
                    if let Err(e) = f.limits.validate() {
                        return invalid(format!(
                            "pipelines.{signal}.filters.{}.limits: {e}",
                            f.name
                        ));
                    }
                }
                for e in &pipeline.exporters {
                    if !self.exporters.contains_key(e) {
                        return invalid(format!(
                            "pipelines.{signal}.exporters: unknown exporter `{e}` (known: {})",
                            known(&self.exporters)
                        ));
                    }
                }
            }
        }
        let l = &self.limits;
        if l.max_request_bytes == 0 || l.max_decompressed_bytes == 0 {
            return invalid("limits: sizes must be positive".into());
        }
        if l.max_memory_bytes == Some(0) {
            return invalid("limits.max_memory_bytes must be positive".into());
        }
        if l.max_concurrent_requests == 0 {
            return invalid("limits.max_concurrent_requests must be positive".into());
        }
        if l.request_timeout.is_zero() {
            return invalid("limits.request_timeout must be positive".into());
        }
        Ok(())
    }

    /// The exporters each signal's pipeline uses, after defaults: without a `pipelines` section every
    /// signal goes to every exporter, and without exporters to a `debug` exporter.
    pub fn resolved(mut self) -> Self {
        if self.exporters.is_empty() {
            self.exporters.insert(
                "debug".into(),
                ExporterConfig::new("debug", serde_yaml_ng::Value::Mapping(Default::default())),
            );
        }
        if self.pipelines.is_none() {
            let all = PipelineConfig {
                exporters: self.exporters.keys().cloned().collect(),
                filters: Vec::new(),
            };
            self.pipelines = Some(PipelinesConfig::all(all));
        }
        self
    }
}

fn known(exporters: &BTreeMap<String, ExporterConfig>) -> String {
    if exporters.is_empty() {
        return "none".into();
    }
    exporters.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Parses `HOST:PORT` where HOST is an IP address or `localhost`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("bad port in `{s}`"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!("`{s}` is not HOST:PORT with an IP address"))
}

#[cfg(test)]
mod tests;
