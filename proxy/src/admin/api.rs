//! The filter API's JSON: the request body of a push ([`FilterRequest`]) and a filter as the API shows
//! it ([`FilterInfo`]), converted to and from the control plane's own types. `openapi.json` describes
//! them.

use serde::{Deserialize, Serialize};

use weir_core::config::{FilterLimits, OnError};

use crate::control::{FilterStatus, VersionSpec};

/// What a new filter version is made of (the admin API's request body).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterRequest {
    /// The module's sha256, as returned by the upload.
    pub module: String,
    /// Handed to `init` as JSON text.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `fail-open` (default) or `fail-closed`.
    #[serde(default)]
    pub on_error: OnError,
    /// Deadline and memory cap.
    #[serde(default)]
    pub limits: FilterLimits,
}

impl From<FilterRequest> for VersionSpec {
    fn from(r: FilterRequest) -> Self {
        Self {
            module: r.module,
            config: r.config,
            on_error: r.on_error,
            limits: r.limits,
        }
    }
}

/// One filter as the admin API lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilterInfo {
    /// The pipeline (signal).
    pub pipeline: String,
    /// The filter's name.
    pub name: String,
    /// Increases with every push of this name.
    pub version: u64,
    /// The active module.
    pub sha256: String,
    /// `active` or `quarantined`.
    pub state: String,
    /// While quarantined with nothing to roll back to: milliseconds until calls try the filter again
    /// (0: the next call does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Failure policy.
    pub on_error: OnError,
    /// Versions available to roll back to.
    pub previous_versions: usize,
    /// Where the active version came from: `config` or `api`.
    pub source: String,
    /// Counters of the active version.
    pub stats: FilterStatsInfo,
    /// The trusted key that signed the active version's module (`module_signing`), if any.
    #[serde(default)]
    pub signed_by: Option<String>,
}

/// Counters of a filter version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FilterStatsInfo {
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Items seen.
    pub items_in: u64,
    /// Items dropped.
    pub items_dropped: u64,
    /// Items changed.
    pub items_modified: u64,
    /// Batches rejected.
    pub rejected: u64,
    /// Calls refused because every instance stayed busy (back-pressure).
    #[serde(default)]
    pub busy: u64,
    /// Instances alive now.
    #[serde(default)]
    pub instances: usize,
    /// The largest linear memory an instance has had, in bytes (what each instance costs).
    #[serde(default)]
    pub instance_memory_bytes: u64,
    /// The interface version the module implements (`0.1.0`, `0.2.0`, `0.2.1`, `0.3.0`).
    #[serde(default)]
    pub interface: String,
}

impl From<FilterStatus> for FilterInfo {
    fn from(s: FilterStatus) -> Self {
        let c = s.counts;
        Self {
            pipeline: s.signal.as_str().to_string(),
            name: s.name,
            version: s.version,
            sha256: s.sha256,
            state: if s.quarantined {
                "quarantined"
            } else {
                "active"
            }
            .to_string(),
            retry_in_ms: s.retry_in.map(|d| d.as_millis() as u64),
            on_error: s.on_error,
            previous_versions: s.previous_versions,
            source: if s.from_api { "api" } else { "config" }.to_string(),
            stats: FilterStatsInfo {
                calls: c.calls,
                errors: c.errors,
                items_in: c.items_in,
                items_dropped: c.items_dropped,
                items_modified: c.items_modified,
                rejected: c.rejected,
                busy: c.busy,
                instances: s.instances,
                instance_memory_bytes: c.instance_memory,
                interface: s.interface.to_string(),
            },
            signed_by: s.signed_by,
        }
    }
}
