//! `admin`: the admin listener (metrics, health, the filter API) and who may use it.

use serde::Deserialize;

use super::ServerTlsConfig;

/// The admin listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `HOST:PORT` (default `127.0.0.1:9901`). A non-loopback address needs `token` or
    /// `client_identities`.
    pub endpoint: String,
    /// The bearer token every change through the API must present (use `${env:...}`). Without it (and
    /// without `client_identities`) weir generates one at start, keeps it in `state_dir/admin-token`
    /// (reused across restarts) and in a file the `weir` CLI finds by the admin port (see
    /// `weir filter --help`).
    pub token: Option<String>,
    /// mTLS client identities (subject alternative names or common names) that may make changes
    /// without a token. Needs `tls.client_ca`.
    pub client_identities: Vec<String>,
    /// Let loopback peers make changes without a credential (default `false`: in a Kubernetes pod every
    /// sidecar shares loopback).
    pub trust_loopback: bool,
    /// Require the credential for `/metrics`, `/healthz`, `/readyz` and `/openapi.json` too (default
    /// `false`: kubelets and Prometheus scrape them).
    pub protect_reads: bool,
    /// TLS (and mTLS) on the admin listener.
    pub tls: Option<ServerTlsConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:9901".into(),
            token: None,
            client_identities: Vec::new(),
            trust_loopback: false,
            protect_reads: false,
            tls: None,
        }
    }
}
