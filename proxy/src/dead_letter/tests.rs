use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use weir_core::Encoded;

use super::*;
use crate::Signal;

/// What the endpoint saw: (tenant header, body) per request, and which requests (by arrival, from
/// 0) it refuses.
#[derive(Default)]
struct Seen {
    requests: Vec<(Option<String>, Bytes)>,
    refuse: Vec<usize>,
}

async fn endpoint(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut seen = seen.lock().unwrap();
    let n = seen.requests.len();
    let mut tenants = headers.get_all("x-scope-orgid").iter();
    let tenant = tenants.next().map(|v| v.to_str().unwrap().to_string());
    assert!(tenants.next().is_none(), "one tenant header at most");
    seen.requests.push((tenant, body));
    if seen.refuse.contains(&n) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// An OTLP/HTTP endpoint on loopback; its base URL.
async fn serve(seen: Arc<Mutex<Seen>>) -> String {
    let app = axum::Router::new()
        .route("/v1/{signal}", axum::routing::post(endpoint))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn dead(state: &Path, first_seq: u64, tenant: Option<&str>, bodies: &[&'static str]) {
    let parts: Vec<_> = bodies
        .iter()
        .map(|b| Encoded::trusted(Signal::Logs, Bytes::from_static(b.as_bytes()), 1))
        .collect();
    let dir = dir(state, "up");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dead_letter::write(&weir_core::fs::Os, &dir, first_seq, 0, tenant, &parts).unwrap();
    // Ordered names, whatever the clock did (the name starts with the time it was written).
    std::fs::rename(&path, dir.join(format!("0-{first_seq:04}.dead"))).unwrap();
}

fn bodies(seen: &Mutex<Seen>) -> Vec<(Option<String>, String)> {
    seen.lock()
        .unwrap()
        .requests
        .iter()
        .map(|(t, b)| (t.clone(), String::from_utf8(b.to_vec()).unwrap()))
        .collect()
}

#[tokio::test]
async fn each_request_is_replayed_with_its_stored_tenant() {
    let state = tempfile::tempdir().unwrap();
    dead(state.path(), 1, Some("team-a"), &["a1", "a2"]);
    dead(state.path(), 3, Some("team-b"), &["b1"]);
    dead(state.path(), 4, None, &["n1"]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let to = serve(seen.clone()).await;
    // A header of the same name given by hand goes only with requests kept without a tenant.
    let by_hand = [("x-scope-orgid".to_string(), "by-hand".to_string())];
    let done = replay(state.path(), "up", &to, &by_hand, "X-Scope-OrgID", |_| {})
        .await
        .unwrap();
    assert_eq!(done, (3, 4, 4));
    let t = |s: &str| Some(s.to_string());
    assert_eq!(
        bodies(&seen),
        [
            (t("team-a"), "a1".into()),
            (t("team-a"), "a2".into()),
            (t("team-b"), "b1".into()),
            (t("by-hand"), "n1".into()),
        ]
    );
}

#[tokio::test]
async fn a_replay_after_a_refusal_resumes_at_the_first_request_not_accepted() {
    let state = tempfile::tempdir().unwrap();
    dead(state.path(), 1, None, &["r1", "r2", "r3"]);
    dead(state.path(), 4, None, &["s1"]);
    let seen = Arc::new(Mutex::new(Seen {
        refuse: vec![1],
        ..Default::default()
    }));
    let to = serve(seen.clone()).await;
    let err = replay(state.path(), "up", &to, &[], "X-Scope-OrgID", |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeadLetterError::Refused { index: 1, .. }),
        "{err}"
    );
    // What is left to send is what was not accepted.
    let left = list(state.path()).unwrap();
    let left: Vec<usize> = left[0].batches.iter().map(|b| b.requests.len()).collect();
    assert_eq!(left, [2, 1]);

    let done = replay(state.path(), "up", &to, &[], "X-Scope-OrgID", |_| {})
        .await
        .unwrap();
    assert_eq!(done, (2, 3, 3));
    let sent: Vec<String> = bodies(&seen).into_iter().map(|(_, b)| b).collect();
    assert_eq!(sent, ["r1", "r2", "r2", "r3", "s1"], "r1 was accepted once");
    assert!(list(state.path()).unwrap().is_empty());
    let files: Vec<_> = std::fs::read_dir(dir(state.path(), "up"))
        .unwrap()
        .collect();
    assert!(files.is_empty(), "nothing is left behind: {files:?}");
}
