//! The security settings of listeners and upstreams: TLS (and mTLS) on the receivers and the admin
//! listener, TLS to upstreams, and who may send OTLP (bearer tokens and client-certificate identities,
//! each mapped to a tenant). Plain data: `weir-tls` builds the rustls configurations from it, the
//! receivers authenticate with it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// TLS on a listening socket. Certificates and keys are PEM files, re-read when they change (and on
/// `POST /v1/tls/reload`), so rotating them needs no restart.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle that client certificates are verified against; setting it turns on mTLS.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` (default; a client without a trusted certificate is refused in the
    /// handshake) or `optional` (a client may present none, and then authenticates otherwise).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Lowest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
}

/// Whether a listener with `client_ca` insists on a client certificate.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Every client presents a certificate the CA bundle trusts.
    #[default]
    Required,
    /// A client may present none; one it presents must be trusted.
    Optional,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// TLS to an upstream (an `https://` endpoint).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// CA bundle the upstream's certificate is verified against (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// Client certificate chain for mTLS (with `key`).
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The name the upstream's certificate must carry, when it is not the endpoint's host.
    pub server_name: Option<String>,
    /// Lowest TLS version used: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
}

/// Who may send OTLP to a receiver. With this section, a request that carries no configured bearer
/// token and comes over no connection whose client certificate names a configured identity is refused
/// (HTTP 401, gRPC UNAUTHENTICATED, `reason="unauthenticated"`) before it is read.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngressAuthConfig {
    /// Bearer tokens (`Authorization: Bearer <token>`), each naming its tenant. Use `${env:...}` to keep
    /// them out of the file.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// A file of further tokens, one `TENANT TOKEN` per line (`#` starts a comment), re-read when it
    /// changes.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Client-certificate identities (a URI, DNS or e-mail subject alternative name, or the subject's
    /// common name), each naming its tenant. Needs `tls.client_ca`.
    #[serde(default)]
    pub identities: Vec<IdentityConfig>,
}

/// One bearer token and its tenant.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The token.
    pub token: String,
    /// The tenant its requests belong to.
    pub tenant: String,
}

/// Checks a tenant name: it goes upstream as a header value (`tenant_header`) and into durable queue
/// records, so it is printable ASCII of at most 255 bytes.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty()
        || tenant.len() > 255
        || !tenant.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(format!(
            "tenant `{}`: use 1 to 255 printable ASCII characters",
            tenant.escape_debug()
        ));
    }
    Ok(())
}

/// One client-certificate identity and its tenant.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// A subject alternative name or the subject's common name, exactly.
    pub identity: String,
    /// The tenant its requests belong to.
    pub tenant: String,
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

impl ServerTlsConfig {
    /// Makes relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        resolve(base, &mut self.cert);
        resolve(base, &mut self.key);
        if let Some(p) = &mut self.client_ca {
            resolve(base, p);
        }
    }
}

impl ClientTlsConfig {
    /// Makes relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            resolve(base, p);
        }
    }

    /// Range checks.
    pub fn validate(&self) -> Result<(), String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err("tls: a client certificate needs both `cert` and `key`".into());
        }
        if self.server_name.as_deref().is_some_and(str::is_empty) {
            return Err("tls.server_name must not be empty".into());
        }
        Ok(())
    }
}

impl IngressAuthConfig {
    /// Makes relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = &mut self.token_file {
            resolve(base, p);
        }
    }

    /// Checks the section against the listener's TLS settings.
    pub fn validate(&self, tls: Option<&ServerTlsConfig>) -> Result<(), String> {
        if self.tokens.is_empty() && self.token_file.is_none() && self.identities.is_empty() {
            return Err("auth: name at least one of tokens, token_file and identities".into());
        }
        for t in &self.tokens {
            if t.token.is_empty() || t.tenant.is_empty() {
                return Err("auth.tokens: token and tenant must not be empty".into());
            }
            check_tenant(&t.tenant).map_err(|e| format!("auth.tokens: {e}"))?;
            if t.token.chars().any(char::is_whitespace) {
                return Err(format!(
                    "auth.tokens: the token of tenant `{}` contains whitespace",
                    t.tenant
                ));
            }
        }
        if !self.identities.is_empty() && tls.is_none_or(|t| t.client_ca.is_none()) {
            return Err(
                "auth.identities need client certificates: set tls.client_ca on this listener"
                    .into(),
            );
        }
        for i in &self.identities {
            if i.identity.is_empty() || i.tenant.is_empty() {
                return Err("auth.identities: identity and tenant must not be empty".into());
            }
            check_tenant(&i.tenant).map_err(|e| format!("auth.identities: {e}"))?;
        }
        Ok(())
    }
}
