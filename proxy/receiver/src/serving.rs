//! What every listening component sets up the same way, receivers of any kind and the admin API: a
//! bound socket (logged), its reloading TLS configuration, and its bearer-token credentials.

use std::sync::Arc;

use tokio::net::TcpListener;
use weir_core::config::{IngressAuthConfig, ServerTlsConfig, parse_addr};
use weir_tls::{Reload, Reloader, Reloading};

use crate::auth::Authenticator;
use crate::kind::ReceiverError;

/// Binds `endpoint` for `listener` and logs the address it bound (`listening`).
pub async fn bind(listener: &str, endpoint: &str) -> Result<TcpListener, ReceiverError> {
    let l = bind_quiet(listener, endpoint).await?;
    if let Ok(bound) = l.local_addr() {
        tracing::info!(listener, addr = %bound, "listening");
    }
    Ok(l)
}

/// [`bind`] without the log line (a listener that announces itself later).
pub async fn bind_quiet(listener: &str, endpoint: &str) -> Result<TcpListener, ReceiverError> {
    let addr = parse_addr(endpoint).map_err(|message| ReceiverError::Address {
        listener: listener.to_string(),
        message,
    })?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| ReceiverError::Bind {
            listener: listener.to_string(),
            addr,
            source,
        })
}

/// The reloading server configuration of `listener`'s `tls`, registered with `reloader`.
pub fn server_tls(
    listener: &'static str,
    tls: Option<&ServerTlsConfig>,
    alpn: &'static [&'static [u8]],
    reloader: &Reloader,
) -> Result<Option<Arc<Reloading<weir_tls::rustls::ServerConfig>>>, ReceiverError> {
    let Some(tls) = tls else { return Ok(None) };
    let c = tls.clone();
    let config = Reloading::new(listener, weir_tls::server_files(tls), move || {
        weir_tls::server_config(&c, alpn).map_err(|e| e.to_string())
    })
    .map_err(|message| ReceiverError::Credentials {
        what: format!("{listener} tls"),
        message,
    })?;
    reloader.add(config.clone());
    tracing::info!(
        listener,
        mtls = tls.client_ca.is_some(),
        "TLS on; certificates are re-read when they change"
    );
    Ok(Some(config))
}

/// The credentials of `listener`'s `auth`, its token file registered with `reloader`.
pub fn listener_auth(
    listener: &'static str,
    auth: Option<&IngressAuthConfig>,
    reloader: &Reloader,
) -> Result<Option<Arc<Authenticator>>, ReceiverError> {
    let Some(auth) = auth else { return Ok(None) };
    let (authenticator, file) =
        Authenticator::new(auth, listener).map_err(|message| ReceiverError::Credentials {
            what: format!("{listener} auth"),
            message,
        })?;
    if let Some(file) = file {
        reloader.add(file as Arc<dyn Reload>);
    }
    Ok(Some(Arc::new(authenticator)))
}
