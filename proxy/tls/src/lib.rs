//! TLS for weir, on rustls with the `ring` provider: server configurations for the receivers and the
//! admin listener (a certificate chain and key, optionally client-certificate verification against a
//! CA bundle), client configurations for upstreams (the system's roots or a CA bundle, optionally a
//! client certificate), both built from PEM files and swapped when the files change ([`reload`]), and
//! the identity a client certificate carries ([`identity`]).
//!
//! ALPN is the caller's: the gRPC receiver offers `h2`, the HTTP receiver and the admin listener `h2`
//! and `http/1.1`, so that both share one HTTPS port.

pub mod identity;
pub mod reload;
#[cfg(feature = "test-pki")]
pub mod test_pki;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use weir_core::config::{ClientAuth, ClientTlsConfig, ServerTlsConfig, TlsVersion};

pub use identity::ClientIdentity;
pub use reload::{Reload, Reloader, Reloading};
pub use rustls;
pub use tokio_rustls;

/// ALPN for a gRPC listener.
pub const ALPN_H2: &[&[u8]] = &[b"h2"];
/// ALPN for an HTTP listener: h2 preferred, HTTP/1.1 on the same port.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file held no usable PEM item of the kind needed.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the combination (a key that does not match its certificate, say).
    #[error("{0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(min: TlsVersion) -> &'static [&'static SupportedProtocolVersion] {
    match min {
        TlsVersion::Tls12 => rustls::ALL_VERSIONS,
        TlsVersion::Tls13 => TLS13_ONLY,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates in a PEM file, in order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            message: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        message: format!("no usable private key: {e}"),
    })
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's CA certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::Config(
            "no system CA certificates found: set tls.ca to a CA bundle".into(),
        ));
    }
    Ok(roots)
}

/// The files a server configuration is built from, for [`Reloading`].
pub fn server_files(c: &ServerTlsConfig) -> Vec<PathBuf> {
    let mut files = vec![c.cert.clone(), c.key.clone()];
    files.extend(c.client_ca.clone());
    files
}

/// The files a client configuration is built from, for [`Reloading`].
pub fn client_files(c: &ClientTlsConfig) -> Vec<PathBuf> {
    [&c.ca, &c.cert, &c.key]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

/// A server configuration from `c`, offering `alpn`.
pub fn server_config(c: &ServerTlsConfig, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let certs = load_certs(&c.cert)?;
    let key = load_key(&c.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(c.min_version))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &c.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = match c.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Config(format!("{}: {e}", ca.display())))?,
            )
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::Config(format!("{} and {}: {e}", c.cert.display(), c.key.display()))
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client configuration from `c` (the system's roots when `c` is `None` or names no CA), offering
/// `alpn`.
pub fn client_config(
    c: Option<&ClientTlsConfig>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let default = ClientTlsConfig::default();
    let c = c.unwrap_or(&default);
    let roots = match &c.ca {
        Some(ca) => load_roots(ca)?,
        None => system_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(c.min_version))
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match (&c.cert, &c.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| {
                TlsError::Config(format!("{} and {}: {e}", cert.display(), key.display()))
            })?,
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The name an upstream's certificate must carry: `server_name` when set, else `host`.
pub fn server_name(
    c: Option<&ClientTlsConfig>,
    host: &str,
) -> Result<ServerName<'static>, TlsError> {
    let name = c.and_then(|c| c.server_name.as_deref()).unwrap_or(host);
    // A bracketed IPv6 host from a URI.
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string())
        .map_err(|e| TlsError::Config(format!("server name `{name}`: {e}")))
}

#[cfg(test)]
mod tests;
