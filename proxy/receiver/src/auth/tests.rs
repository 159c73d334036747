use super::*;
use weir_core::config::{IdentityConfig, TokenConfig};
use weir_tls::ClientIdentity;

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

fn conn(names: &[&str]) -> ConnInfo {
    ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        identity: Some(Arc::new(ClientIdentity {
            names: names.iter().map(|s| s.to_string()).collect(),
            subject: String::new(),
        })),
        served: Default::default(),
    }
}

fn config(file: Option<std::path::PathBuf>) -> IngressAuthConfig {
    IngressAuthConfig {
        tokens: vec![TokenConfig {
            token: "alpha-token".into(),
            tenant: "team-a".into(),
        }],
        token_file: file,
        identities: vec![IdentityConfig {
            identity: "spiffe://test/b".into(),
            tenant: "team-b".into(),
        }],
    }
}

#[test]
fn tokens_and_identities_name_their_tenant_and_anything_else_is_refused() {
    let (auth, reload) = Authenticator::new(&config(None), "otlp-http").unwrap();
    assert!(reload.is_none());
    let none = HeaderMap::new();
    assert_eq!(
        &*auth.authenticate(&bearer("alpha-token"), None).unwrap(),
        "team-a"
    );
    assert_eq!(
        &*auth
            .authenticate(&none, Some(&conn(&["x", "spiffe://test/b"])))
            .unwrap(),
        "team-b"
    );
    assert_eq!(
        auth.authenticate(&bearer("alpha-tokeN"), None),
        Err(Unauthenticated::WrongToken)
    );
    assert_eq!(
        auth.authenticate(&bearer("wrong"), Some(&conn(&["spiffe://test/b"]))),
        Err(Unauthenticated::WrongToken),
        "a wrong token is refused over a known certificate too"
    );
    assert_eq!(
        auth.authenticate(&none, None),
        Err(Unauthenticated::Missing)
    );
    assert_eq!(
        auth.authenticate(&none, Some(&conn(&["spiffe://test/c"]))),
        Err(Unauthenticated::Missing)
    );
    let mut basic = HeaderMap::new();
    basic.insert(http::header::AUTHORIZATION, "Basic Zm9v".parse().unwrap());
    assert_eq!(
        auth.authenticate(&basic, None),
        Err(Unauthenticated::WrongToken)
    );
}

#[test]
fn filters_never_see_the_credential_a_receiver_consumed() {
    let headers = bearer("alpha-token");
    let kept = crate::Origin::new(None, headers.clone(), None);
    assert!(
        kept.headers.contains_key(http::header::AUTHORIZATION),
        "no auth: the client's own header"
    );
    let consumed = crate::Origin::new(None, headers, Some("team-a".into()));
    assert!(!consumed.headers.contains_key(http::header::AUTHORIZATION));
}

#[test]
fn bearer_takes_the_scheme_in_any_case_and_nothing_else() {
    let v = |s: &'static str| http::HeaderValue::from_static(s);
    assert_eq!(super::bearer(&v("Bearer abc")), Some("abc"));
    assert_eq!(super::bearer(&v("BEARER  abc ")), Some("abc"));
    assert_eq!(super::bearer(&v("Basic abc")), None);
    assert_eq!(super::bearer(&v("Bearer ")), None);
    assert_eq!(super::bearer(&v("Bearer")), None);
    assert!(super::token_matches("abc", "abc") && !super::token_matches("abc", "abd"));
}

#[test]
fn the_token_file_is_read_and_reread_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, "# tenants\nteam-c gamma-token\n\n").unwrap();
    let (auth, reload) = Authenticator::new(&config(Some(path.clone())), "otlp-grpc").unwrap();
    let reload = reload.expect("the file is watched");
    assert_eq!(
        &*auth.authenticate(&bearer("gamma-token"), None).unwrap(),
        "team-c"
    );
    assert_eq!(
        &*auth.authenticate(&bearer("alpha-token"), None).unwrap(),
        "team-a"
    );

    std::fs::write(&path, "team-d delta-token\n").unwrap();
    assert_eq!(reload.reload(true), Ok(true));
    assert_eq!(
        &*auth.authenticate(&bearer("delta-token"), None).unwrap(),
        "team-d"
    );
    assert_eq!(
        auth.authenticate(&bearer("gamma-token"), None),
        Err(Unauthenticated::WrongToken),
        "a token taken out of the file no longer works"
    );

    std::fs::write(&path, "only-one-field\n").unwrap();
    let err = reload.reload(true).unwrap_err();
    assert!(
        err.contains("line 1") && !err.contains("only-one-field"),
        "{err}"
    );
    assert_eq!(
        &*auth.authenticate(&bearer("delta-token"), None).unwrap(),
        "team-d",
        "a broken file keeps the previous tokens"
    );
}
