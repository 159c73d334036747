//! How the OTLP exporters reach their upstream: TCP with `TCP_NODELAY` and the attempt timeout as
//! connect timeout, and for an `https://` endpoint TLS on top (hyper-rustls) with the exporter's `tls`
//! settings: the system's roots or a CA bundle, an optional client certificate, an optional server-name
//! override. The TLS configuration is re-read when its files change; pooled connections keep the
//! session they made, new ones use the new configuration.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::OtlpExporterConfig;
use http::Uri;
use hyper_rustls::{
    FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream,
};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use weir_tls::{Reloader, Reloading};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector for one upstream, plain or TLS.
#[derive(Debug, Clone)]
pub enum Connector {
    /// `http://`.
    Plain(HttpConnector),
    /// `https://`, with the configuration current when a connection is made.
    Tls(Arc<Reloading<HttpsConnector<HttpConnector>>>),
}

fn tcp(timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    // A request's last frame must not wait for an ACK.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(timeout));
    // hyper-rustls decides the scheme.
    connector.enforce_http(false);
    connector
}

impl Connector {
    /// The connector for `config`'s endpoint, offering (ALPN) HTTP/2 only with `http2`, else
    /// HTTP/1.1; a TLS configuration is registered with `reloader` as `exporter NAME`.
    pub fn new(
        name: &str,
        config: &OtlpExporterConfig,
        http2: bool,
        reloader: &Reloader,
    ) -> Result<Self, String> {
        if !config.is_tls() {
            return Ok(Connector::Plain(tcp(config.timeout)));
        }
        let uri = config.uri()?;
        let host = uri.host().unwrap_or_default().to_string();
        let tls = config.tls.clone();
        let timeout = config.timeout;
        let files = tls.as_ref().map(weir_tls::client_files).unwrap_or_default();
        let build = move || -> Result<HttpsConnector<HttpConnector>, String> {
            // hyper-rustls sets ALPN from the versions enabled below.
            let client = weir_tls::client_config(tls.as_ref(), &[]).map_err(|e| e.to_string())?;
            let name = weir_tls::server_name(tls.as_ref(), &host).map_err(|e| e.to_string())?;
            let builder = HttpsConnectorBuilder::new()
                .with_tls_config(client)
                .https_only()
                .with_server_name_resolver(FixedServerNameResolver::new(name));
            Ok(if http2 {
                builder.enable_http2().wrap_connector(tcp(timeout))
            } else {
                builder.enable_http1().wrap_connector(tcp(timeout))
            })
        };
        let reloading = Reloading::new(format!("exporter {name}"), files, build)?;
        reloader.add(reloading.clone());
        Ok(Connector::Tls(reloading))
    }
}

impl tower::Service<Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both connectors are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self {
            Connector::Plain(c) => {
                let connecting = tower::Service::call(c, uri);
                Box::pin(async move {
                    let io = connecting.await.map_err(|e| Box::new(e) as BoxError)?;
                    Ok(MaybeHttpsStream::Http(io))
                })
            }
            Connector::Tls(reloading) => {
                let mut current = (*reloading.current()).clone();
                Box::pin(async move { tower::Service::call(&mut current, uri).await })
            }
        }
    }
}
