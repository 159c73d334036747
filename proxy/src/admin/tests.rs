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
