//! The admin listener: `GET /metrics` (Prometheus text), `GET /healthz` (the process is up),
//! `GET /readyz` (every receiver is bound and weir is not shutting down), `GET /openapi.json`, and the
//! filter API under `/v1` ([`filters`], its JSON in `api.rs`).
//!
//! `POST /v1/tls/reload` re-reads every certificate, key, CA bundle and token file now.
//!
//! Every change (any method but GET and HEAD) needs a credential: `Authorization: Bearer <token>`
//! (`admin.token`, or the one weir made at start, see [`token`]) or, over mTLS, a client certificate
//! whose identity is in `admin.client_identities`; loopback peers pass without one only with
//! `admin.trust_loopback` (in a Kubernetes pod every sidecar shares loopback). Reads (`/metrics`,
//! `/healthz`, `/readyz`, `/openapi.json`, `GET /v1/filters`) are open unless `admin.protect_reads`.
//! Tokens are compared in constant time and never logged.

mod api;
pub mod client;
pub mod filters;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::control::Manager;
use crate::receiver::listen::ConnInfo;
use crate::telemetry::Metrics;

/// Largest module upload (64 MiB).
const MAX_MODULE_BYTES: usize = 64 << 20;

/// What the admin endpoints read.
#[derive(Debug)]
pub struct AdminState {
    /// The metrics to render.
    pub metrics: Arc<Metrics>,
    /// Set once receivers are bound, cleared at shutdown.
    pub ready: AtomicBool,
    /// The filter control plane.
    pub manager: Arc<Manager>,
    /// Who may make changes (and, with `protect_reads`, read).
    pub access: Access,
    /// Every certificate, key and token file weir re-reads, for `POST /v1/tls/reload`.
    pub reloader: Arc<weir_tls::Reloader>,
}

/// The admin API's credentials.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The bearer token (configured, or made at start).
    pub token: Option<String>,
    /// mTLS identities that may make changes.
    pub client_identities: Vec<String>,
    /// Loopback peers make changes without a credential.
    pub trust_loopback: bool,
    /// Reads need a credential too.
    pub protect_reads: bool,
}

/// The admin router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    filters::OPENAPI,
                )
            }),
        )
        .route("/v1/modules", post(filters::upload))
        .route("/v1/filters", get(filters::list))
        .route(
            "/v1/pipelines/{pipeline}/filters/{name}",
            put(filters::put).delete(filters::remove),
        )
        .route(
            "/v1/pipelines/{pipeline}/filters/{name}/rollback",
            post(filters::rollback),
        )
        .route("/v1/tls/reload", post(tls_reload))
        .layer(DefaultBodyLimit::max(MAX_MODULE_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Who made an admin request, as the audit log names them: the peer, and how it was let in (the token
/// itself is never logged).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The client's address.
    pub peer: SocketAddr,
    /// `token`, `mtls`, `loopback` (with `admin.trust_loopback`) or `open` (a read).
    pub auth: &'static str,
}

/// Lets a request in if it needs no credential or carries one (see the module docs); the handler
/// gets the [`Caller`], for the audit log.
async fn authorize(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let read = req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD;
    let access = &s.access;
    // Any Authorization header is a presented credential, valid or not.
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(crate::receiver::auth::bearer);
    let identity = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.identity.clone());
    let auth = if let Some(p) = presented {
        // A presented token decides: a wrong one is refused whatever else the request has.
        match (&access.token, p) {
            (Some(token), Some(p)) if crate::receiver::auth::token_matches(token, p) => {
                Some("token")
            }
            _ => None,
        }
    } else if identity
        .as_ref()
        .is_some_and(|id| access.client_identities.iter().any(|name| id.has(name)))
    {
        Some("mtls")
    } else if access.trust_loopback && peer.ip().is_loopback() {
        Some("loopback")
    } else if read && !access.protect_reads {
        Some("open")
    } else {
        None
    };
    let Some(auth) = auth else {
        let what = if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "a credential is required: Authorization: Bearer <admin token> (the weir CLI finds the \
             token weir made at start by itself), or a client certificate named in \
             admin.client_identities"
        };
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{what}\n"),
        )
            .into_response();
    };
    req.extensions_mut().insert(Caller { peer, auth });
    next.run(req).await
}

/// `POST /v1/tls/reload`: re-reads every certificate, key, CA bundle and token file now, whether or
/// not it changed; 200 with what was reloaded, 500 naming the ones that failed (they keep their
/// previous contents).
async fn tls_reload(
    State(s): State<Arc<AdminState>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let (reloader, metrics) = (s.reloader.clone(), s.metrics.clone());
    let reports = tokio::task::spawn_blocking(move || reloader.check(true, &metrics))
        .await
        .unwrap_or_default();
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    tracing::info!(
        target: "weir::audit", peer = %caller.peer, auth = caller.auth, action = "tls-reload",
        target = "-", sha256 = "-", result = if failed == 0 { "ok" } else { "error" },
        reason = failed.to_string(), "admin change"
    );
    let status = if failed == 0 {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (
        status,
        axum::Json(serde_json::json!({ "reloaded": reports })),
    )
        .into_response()
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

#[cfg(test)]
mod tests;
