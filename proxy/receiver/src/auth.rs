//! Who may send OTLP to a receiver (`receivers.otlp.<grpc|http>.auth`): a bearer token
//! (`Authorization: Bearer <token>`, inline or from a token file re-read when it changes) or a verified
//! client certificate whose identity is configured; each names the tenant the request belongs to.
//!
//! A presented token decides on its own: a wrong one is refused even over a trusted certificate (a
//! client that sends a token means it). Without one, the connection's certificate identity is looked
//! up. Tokens are held as SHA-256 digests and compared in constant time against every configured one,
//! so neither the comparison nor its length leaks which prefix matched; tokens are never logged.
//! The check runs before admission, so that a refused client costs no admission slot, no body read and
//! no decoding.

use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use weir_core::config::IngressAuthConfig;
use weir_tls::{Reload, Reloading};

use crate::listen::ConnInfo;

/// What a 401 / UNAUTHENTICATED says.
pub const UNAUTHENTICATED_MESSAGE: &str = "authentication required: send Authorization: Bearer <token>, or a client certificate this receiver knows";

#[derive(Debug, Clone)]
struct Token {
    digest: [u8; 32],
    tenant: Arc<str>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Why a request was not let in (the message never says which token was close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// No token and no known certificate.
    #[error("{UNAUTHENTICATED_MESSAGE}")]
    Missing,
    /// A token that no tenant has.
    #[error("the bearer token is not valid for this receiver")]
    WrongToken,
}

/// One receiver's credentials.
#[derive(Debug)]
pub struct Authenticator {
    tokens: Vec<Token>,
    file: Option<Arc<Reloading<Vec<Token>>>>,
    identities: Vec<(String, Arc<str>)>,
}

/// Parses a token file: one `TENANT TOKEN` per line; blank lines and `#` comments are skipped.
fn parse_token_file(path: &Path) -> Result<Vec<Token>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(tenant), Some(_), None) if weir_core::config::check_tenant(tenant).is_err() => {
                return Err(format!(
                    "{} line {}: the tenant is not 1 to 255 printable ASCII characters",
                    path.display(),
                    n + 1
                ));
            }
            (Some(tenant), Some(token), None) => tokens.push(Token {
                digest: digest(token.as_bytes()),
                tenant: tenant.into(),
            }),
            // The line is not echoed: it may hold a token.
            _ => {
                return Err(format!(
                    "{} line {}: expected `TENANT TOKEN`",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    Ok(tokens)
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case); `None` for another
/// scheme or a value that is not text. Any `Authorization` header is a presented credential: a caller
/// treats `None` as a wrong one, never as none at all.
pub fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `presented` is `expected`, in time that depends on neither (both are hashed first).
pub fn token_matches(expected: &str, presented: &str) -> bool {
    digest(expected.as_bytes())
        .ct_eq(&digest(presented.as_bytes()))
        .into()
}

impl Authenticator {
    /// The credentials of `config`; the token file (if any) is read now and returned for the
    /// reloader, named `name`.
    pub fn new(
        config: &IngressAuthConfig,
        name: &str,
    ) -> Result<(Self, Option<Arc<dyn Reload>>), String> {
        let tokens = config
            .tokens
            .iter()
            .map(|t| Token {
                digest: digest(t.token.as_bytes()),
                tenant: t.tenant.as_str().into(),
            })
            .collect();
        let file = match &config.token_file {
            None => None,
            Some(path) => {
                let p = path.clone();
                Some(Reloading::new(
                    format!("{name} token_file"),
                    vec![path.clone()],
                    move || parse_token_file(&p),
                )?)
            }
        };
        let identities = config
            .identities
            .iter()
            .map(|i| (i.identity.clone(), Arc::<str>::from(i.tenant.as_str())))
            .collect();
        let reload = file.clone().map(|f| f as Arc<dyn Reload>);
        Ok((
            Self {
                tokens,
                file,
                identities,
            },
            reload,
        ))
    }

    /// The tenant of a request with `headers` over the connection `conn`.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        conn: Option<&ConnInfo>,
    ) -> Result<Arc<str>, Unauthenticated> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let presented = bearer(value).ok_or(Unauthenticated::WrongToken)?;
            return self
                .tenant_of_token(presented.as_bytes())
                .ok_or(Unauthenticated::WrongToken);
        }
        let identity = conn
            .and_then(|c| c.identity.as_ref())
            .ok_or(Unauthenticated::Missing)?;
        self.identities
            .iter()
            .find(|(name, _)| identity.has(name))
            .map(|(_, tenant)| tenant.clone())
            .ok_or(Unauthenticated::Missing)
    }

    fn tenant_of_token(&self, presented: &[u8]) -> Option<Arc<str>> {
        let presented = digest(presented);
        let file = self.file.as_ref().map(|f| f.current());
        let all = self.tokens.iter().chain(file.iter().flat_map(|f| f.iter()));
        // Every token is compared, whichever matches.
        let mut found = None;
        for t in all {
            if bool::from(t.digest.ct_eq(&presented)) && found.is_none() {
                found = Some(t.tenant.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;
