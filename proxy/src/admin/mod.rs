//! The admin listener: `GET /metrics` (Prometheus text), `GET /healthz` (the process is up),
//! `GET /readyz` (every receiver is bound and weir is not shutting down), `GET /openapi.json`, and the
//! filter API under `/v1` ([`filters`]).
//!
//! Requests from non-loopback peers must carry `Authorization: Bearer <admin.token>`; weir refuses to
//! bind a non-loopback admin address when no token is configured (see `config::Config::validate`).

pub mod client;
pub mod filters;

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
    /// The bearer token non-loopback clients must present.
    pub token: Option<String>,
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
    /// `loopback` or `token`.
    pub auth: &'static str,
}

/// Loopback peers pass; others need the configured bearer token. Either way the handler gets the
/// [`Caller`], for the audit log.
async fn authorize(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    if peer.ip().is_loopback() {
        req.extensions_mut().insert(Caller {
            peer,
            auth: "loopback",
        });
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&s.token, presented) {
        (Some(token), Some(p)) if constant_time_eq(token.as_bytes(), p.as_bytes()) => {
            req.extensions_mut().insert(Caller {
                peer,
                auth: "token",
            });
            next.run(req).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required from non-loopback addresses\n",
        )
            .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn status_from(peer: &str, token: Option<&str>) -> StatusCode {
        let runtime = Arc::new(crate::filter::Runtime::new(None).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let manager = Manager::new(runtime, Default::default(), metrics.clone(), None, tx);
        let app = router(Arc::new(AdminState {
            metrics,
            ready: AtomicBool::new(true),
            manager,
            token: Some("s3cret".into()),
        }));
        let mut req = axum::http::Request::put("/v1/pipelines/traces/filters/x")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = req.body(Body::from(r#"{"module":"00"}"#)).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        app.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn remote_requests_need_the_token() {
        // Refused before anything is looked at.
        assert_eq!(
            status_from("10.1.2.3:5555", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_from("10.1.2.3:5555", Some("wrong")).await,
            StatusCode::UNAUTHORIZED
        );
        // With the token (or from loopback) the request reaches the API: no traces pipeline here.
        assert_eq!(
            status_from("10.1.2.3:5555", Some("s3cret")).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_from("127.0.0.1:5555", None).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(status_from("[::1]:5555", None).await, StatusCode::NOT_FOUND);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }
}
