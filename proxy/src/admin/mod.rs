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
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn app(access: Access) -> Router {
        let runtime = Arc::new(crate::filter::Runtime::new(None).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let manager = Manager::new(runtime, Default::default(), metrics.clone(), None, tx);
        router(Arc::new(AdminState {
            metrics,
            ready: AtomicBool::new(true),
            manager,
            access,
            reloader: Default::default(),
        }))
    }

    fn token_only() -> Access {
        Access {
            token: Some("s3cret".into()),
            ..Default::default()
        }
    }

    async fn status_from(peer: &str, token: Option<&str>) -> StatusCode {
        status_with(token_only(), "PUT", peer, token, None).await
    }

    async fn status_with(
        access: Access,
        method: &str,
        peer: &str,
        token: Option<&str>,
        identity: Option<&str>,
    ) -> StatusCode {
        let uri = match method {
            "PUT" => "/v1/pipelines/traces/filters/x",
            _ => "/metrics",
        };
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = req.body(Body::from(r#"{"module":"00"}"#)).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(ConnInfo {
            peer,
            identity: identity.map(|name| {
                Arc::new(weir_tls::ClientIdentity {
                    names: vec![name.to_string()],
                    subject: String::new(),
                })
            }),
            served: Default::default(),
        });
        app(access).oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn changes_need_a_credential_from_loopback_too_unless_loopback_is_trusted() {
        assert_eq!(
            status_from("127.0.0.1:5555", None).await,
            StatusCode::UNAUTHORIZED,
            "in a pod every sidecar is on loopback"
        );
        assert_eq!(
            status_from("127.0.0.1:5555", Some("s3cret")).await,
            StatusCode::NOT_FOUND
        );
        let trusted = Access {
            trust_loopback: true,
            ..token_only()
        };
        assert_eq!(
            status_with(trusted.clone(), "PUT", "127.0.0.1:5555", None, None).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_with(trusted, "PUT", "10.0.0.1:5555", None, None).await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn a_known_client_certificate_is_a_credential_and_reads_are_open_unless_protected() {
        let mtls = Access {
            client_identities: vec!["spiffe://test/ops".into()],
            ..token_only()
        };
        let put = |id| status_with(mtls.clone(), "PUT", "10.0.0.1:5555", None, id);
        assert_eq!(put(Some("spiffe://test/ops")).await, StatusCode::NOT_FOUND);
        assert_eq!(
            put(Some("spiffe://test/dev")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_with(
                mtls.clone(),
                "PUT",
                "10.0.0.1:5555",
                Some("wrong"),
                Some("spiffe://test/ops")
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "a wrong token is refused whatever else the request has"
        );
        assert_eq!(
            status_with(token_only(), "GET", "10.0.0.1:5555", None, None).await,
            StatusCode::OK,
            "Prometheus scrapes without a credential"
        );
        let protected = Access {
            protect_reads: true,
            ..token_only()
        };
        assert_eq!(
            status_with(protected.clone(), "GET", "10.0.0.1:5555", None, None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_with(protected, "GET", "10.0.0.1:5555", Some("s3cret"), None).await,
            StatusCode::OK
        );
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
        // With the token the request reaches the API: no traces pipeline here.
        assert_eq!(
            status_from("10.1.2.3:5555", Some("s3cret")).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_from("[::1]:5555", None).await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn another_authorization_scheme_is_a_wrong_credential_not_none() {
        let open_loopback = Access {
            trust_loopback: true,
            ..token_only()
        };
        let status = |token: &'static str| {
            let access = open_loopback.clone();
            async move {
                let mut req = axum::http::Request::get("/metrics")
                    .header(header::AUTHORIZATION, token)
                    .body(Body::empty())
                    .unwrap();
                let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
                req.extensions_mut().insert(ConnectInfo(peer));
                app(access).oneshot(req).await.unwrap().status()
            }
        };
        assert_eq!(status("Basic czNjcmV0").await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status("bearer s3cret").await,
            StatusCode::OK,
            "the scheme in any case"
        );
        assert_eq!(status("Bearer s3cre").await, StatusCode::UNAUTHORIZED);
    }
}
