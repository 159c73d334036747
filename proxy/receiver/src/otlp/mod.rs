//! The `otlp` receiver kind: OTLP over gRPC ([`crate::grpc`]) and HTTP ([`crate::http`]), each on a
//! listener of its own with optional TLS and bearer-token auth. Its configuration section is
//! `receivers.otlp` (or `receivers.otlp/NAME`, for a second set of listeners with other settings).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use weir_core::config::{Config, IngressAuthConfig, ServerTlsConfig, parse_addr};

use crate::auth::Authenticator;
use crate::kind::{Bound, ReceiverError, ReceiverKind, StartContext, Starting, stopped};
use crate::listen::{self, Listener};
use crate::serving::{bind, listener_auth, server_tls};
use crate::{grpc, http};

/// The OTLP receiver. Omitting `grpc` or `http` disables that transport; without a `receivers`
/// section weir listens on both, on 127.0.0.1.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// OTLP/gRPC (default `127.0.0.1:4317`).
    pub grpc: Option<ListenerConfig>,
    /// OTLP/HTTP, protobuf and JSON, HTTP/1.1 and h2c (default `127.0.0.1:4318`).
    pub http: Option<ListenerConfig>,
}

/// A listening socket.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `HOST:PORT` to bind; port 0 picks a free port (weir logs the one it bound).
    pub endpoint: String,
    /// TLS (and mTLS) on this listener; plain TCP without it.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// Who may send to this receiver; anyone who can connect without it.
    #[serde(default)]
    pub auth: Option<IngressAuthConfig>,
}

impl OtlpReceiverConfig {
    fn listeners(&self) -> impl Iterator<Item = (&'static str, &ListenerConfig)> {
        [("grpc", &self.grpc), ("http", &self.http)]
            .into_iter()
            .filter_map(|(t, l)| l.as_ref().map(|l| (t, l)))
    }
}

impl ReceiverKind for OtlpReceiverConfig {
    fn validate(&self) -> Result<(), String> {
        for (transport, l) in self.listeners() {
            parse_addr(&l.endpoint).map_err(|e| format!("{transport}.endpoint: {e}"))?;
            if let Some(auth) = &l.auth {
                auth.validate(l.tls.as_ref())
                    .map_err(|e| format!("{transport}.{e}"))?;
            }
        }
        if self.grpc.is_none() && self.http.is_none() {
            return Err("enable at least one of grpc and http".into());
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        for l in [&mut self.grpc, &mut self.http].into_iter().flatten() {
            if let Some(tls) = &mut l.tls {
                tls.resolve_paths(base);
            }
            if let Some(auth) = &mut l.auth {
                auth.resolve_paths(base);
            }
        }
    }

    fn start<'a>(&'a self, name: &'a str, mut ctx: StartContext<'a>) -> Starting<'a> {
        Box::pin(async move {
            let mut bound = Vec::new();
            if let Some(l) = &self.grpc {
                bound.push(start_grpc(listener_name(name, "grpc"), l, &mut ctx).await?);
            }
            if let Some(l) = &self.http {
                bound.push(start_http(listener_name(name, "http"), l, &mut ctx).await?);
            }
            Ok(bound)
        })
    }
}

/// A listener's name in logs and metrics: `otlp-grpc` for the receiver `otlp`, `otlp/edge-grpc` for
/// `otlp/edge`. Metric labels are `&'static`: a named receiver's label is made once, at start.
fn listener_name(receiver: &str, transport: &'static str) -> &'static str {
    match (receiver, transport) {
        ("otlp", "grpc") => "otlp-grpc",
        ("otlp", "http") => "otlp-http",
        _ => Box::leak(format!("{receiver}-{transport}").into_boxed_str()),
    }
}

/// Binds listener `name` of `l`, with its TLS (offering `alpn`) and its credentials.
async fn listener(
    name: &'static str,
    l: &ListenerConfig,
    alpn: &'static [&'static [u8]],
    ctx: &StartContext<'_>,
) -> Result<(Listener, Option<Arc<Authenticator>>, SocketAddr), ReceiverError> {
    let socket = bind(name, &l.endpoint).await?;
    let addr = socket.local_addr().map_err(|e| ReceiverError::Address {
        listener: name.to_string(),
        message: e.to_string(),
    })?;
    let mut listener = Listener::new(socket, name, ctx.connections, ctx.metrics.clone());
    if let Some(tls) = server_tls(name, l.tls.as_ref(), alpn, ctx.reloader)? {
        listener = listener.with_tls(tls);
    }
    let auth = listener_auth(name, l.auth.as_ref(), ctx.reloader)?;
    Ok((listener, auth, addr))
}

async fn start_grpc(
    name: &'static str,
    l: &ListenerConfig,
    ctx: &mut StartContext<'_>,
) -> Result<Bound, ReceiverError> {
    let (listener, auth, addr) = listener(name, l, weir_tls::ALPN_H2, ctx).await?;
    let limits = ctx.connections.clone();
    let incoming = listener.incoming();
    let routes = grpc::GrpcReceiver::new(ctx.ingest.clone())
        .with_auth(auth)
        .routes();
    let shutdown = stopped(ctx.stop.clone());
    let mut server = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout));
    if let Some(age) = limits.max_connection_age {
        server = server.max_connection_age(age);
    }
    let serving = server
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown);
    ctx.tasks.spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(listener = name, error = %e, "OTLP/gRPC server failed");
        }
    });
    Ok(Bound {
        listener: name,
        addr,
    })
}

async fn start_http(
    name: &'static str,
    l: &ListenerConfig,
    ctx: &mut StartContext<'_>,
) -> Result<Bound, ReceiverError> {
    let (listener, auth, addr) = listener(name, l, weir_tls::ALPN_HTTP, ctx).await?;
    let limits = ctx.connections.clone();
    let app = http::router(ctx.ingest.clone(), auth);
    let shutdown = stopped(ctx.stop.clone());
    ctx.tasks
        .spawn(listen::serve_http(listener, app, limits, shutdown));
    Ok(Bound {
        listener: name,
        addr,
    })
}

/// Sets the receiver `otlp`'s `transport` (`grpc` or `http`) listener to `endpoint` (the command
/// line's `--otlp-grpc` and `--otlp-http`): its TLS and auth settings stay; a transport the file left
/// off is enabled; a file without an `otlp` receiver gets one.
pub fn set_endpoint(config: &mut Config, transport: &str, endpoint: &str) {
    use serde_yaml_ng::{Mapping, Value};
    let section = config.receivers.section_mut("otlp");
    if !section.is_mapping() {
        *section = Value::Mapping(Mapping::new());
    }
    let Some(map) = section.as_mapping_mut() else {
        return;
    };
    let listener = map
        .entry(Value::from(transport))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !listener.is_mapping() {
        *listener = Value::Mapping(Mapping::new());
    }
    if let Some(l) = listener.as_mapping_mut() {
        l.insert(Value::from("endpoint"), Value::from(endpoint));
    }
}

#[cfg(test)]
mod tests;
