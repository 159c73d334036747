use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use weir_core::config::{ClientAuth, ClientTlsConfig, ServerTlsConfig, TlsVersion};
use weir_core::telemetry::Metrics;

use super::test_pki::{Ca, replace};
use super::*;

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("weir test CA");
        replace(&dir.path().join("ca.pem"), &ca.pem());
        Self { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server(&self, client_ca: bool, auth: ClientAuth) -> ServerTlsConfig {
        let (cert, key) = self
            .ca
            .leaf(&["localhost", "127.0.0.1"], &[], "weir")
            .write(self.dir.path(), "server");
        ServerTlsConfig {
            cert,
            key,
            client_ca: client_ca.then(|| self.path("ca.pem")),
            client_auth: auth,
            min_version: TlsVersion::Tls12,
        }
    }

    fn client(&self, identity: Option<&str>) -> ClientTlsConfig {
        let (cert, key) = match identity {
            Some(uri) => {
                let (c, k) = self
                    .ca
                    .leaf(&["client.test"], &[uri], "test client")
                    .write(self.dir.path(), "client");
                (Some(c), Some(k))
            }
            None => (None, None),
        };
        ClientTlsConfig {
            ca: Some(self.path("ca.pem")),
            cert,
            key,
            server_name: None,
            min_version: TlsVersion::Tls12,
        }
    }
}

/// One handshake over an in-memory pipe: the client's result, and the identity the server saw.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> (Result<(), String>, Option<ClientIdentity>) {
    let (c, s) = tokio::io::duplex(64 << 10);
    let acceptor = TlsAcceptor::from(server);
    let server = tokio::spawn(async move {
        let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| ClientIdentity::from_der(c));
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(identity)
    });
    let connector = TlsConnector::from(client);
    let name = ServerName::try_from("localhost").unwrap();
    let client = async {
        let mut tls = connector
            .connect(name, c)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        // With TLS 1.3 a refused client certificate shows only on the first read.
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        Ok(())
    }
    .await;
    let identity = server.await.unwrap().ok().flatten();
    (client, identity)
}

#[tokio::test]
async fn a_client_trusting_the_ca_completes_a_handshake_and_negotiates_h2() {
    let pki = Pki::new();
    let server = server_config(&pki.server(false, ClientAuth::Required), ALPN_HTTP).unwrap();
    assert_eq!(
        server.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let client = client_config(Some(&pki.client(None)), ALPN_H2).unwrap();
    let (result, identity) = handshake(Arc::new(server), Arc::new(client)).await;
    result.unwrap();
    assert_eq!(identity, None, "no client certificate, no identity");
}

#[tokio::test]
async fn mtls_required_refuses_a_client_without_a_certificate_and_names_one_with_it() {
    let pki = Pki::new();
    let server = Arc::new(server_config(&pki.server(true, ClientAuth::Required), ALPN_H2).unwrap());
    let anonymous = client_config(Some(&pki.client(None)), ALPN_H2).unwrap();
    let (result, _) = handshake(server.clone(), Arc::new(anonymous)).await;
    assert!(result.is_err(), "a client without a certificate is refused");

    let with_cert =
        client_config(Some(&pki.client(Some("spiffe://test/team-a"))), ALPN_H2).unwrap();
    let (result, identity) = handshake(server, Arc::new(with_cert)).await;
    result.unwrap();
    let identity = identity.expect("the server saw the client's certificate");
    assert!(identity.has("spiffe://test/team-a"), "{identity:?}");
    assert!(identity.has("client.test"), "{identity:?}");
    assert!(
        !identity.has("test client"),
        "with SANs the common name is not a name: {identity:?}"
    );

    // A certificate with no SANs is named by its common name.
    let (cert, key) = pki
        .ca
        .leaf(&[], &[], "legacy-client")
        .write(pki.dir.path(), "legacy");
    let mut legacy = pki.client(None);
    (legacy.cert, legacy.key) = (Some(cert), Some(key));
    let (result, identity) = handshake(
        Arc::new(server_config(&pki.server(true, ClientAuth::Required), ALPN_H2).unwrap()),
        Arc::new(client_config(Some(&legacy), ALPN_H2).unwrap()),
    )
    .await;
    result.unwrap();
    assert_eq!(identity.unwrap().names, ["legacy-client"]);
}

#[tokio::test]
async fn mtls_refuses_a_certificate_from_another_ca_and_optional_lets_anonymous_in() {
    let pki = Pki::new();
    let other = Pki::new();
    let server = Arc::new(server_config(&pki.server(true, ClientAuth::Optional), ALPN_H2).unwrap());
    let mut untrusted = other.client(Some("spiffe://test/intruder"));
    untrusted.ca = Some(pki.path("ca.pem"));
    let untrusted = client_config(Some(&untrusted), ALPN_H2).unwrap();
    let (result, _) = handshake(server.clone(), Arc::new(untrusted)).await;
    assert!(
        result.is_err(),
        "a certificate the CA did not sign is refused"
    );

    let anonymous = client_config(Some(&pki.client(None)), ALPN_H2).unwrap();
    let (result, identity) = handshake(server, Arc::new(anonymous)).await;
    result.unwrap();
    assert_eq!(identity, None);
}

#[tokio::test]
async fn tls13_minimum_refuses_a_tls12_client() {
    let pki = Pki::new();
    let mut c = pki.server(false, ClientAuth::Required);
    c.min_version = TlsVersion::Tls13;
    let server = Arc::new(server_config(&c, ALPN_H2).unwrap());
    let tls12 = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(load_roots(&pki.path("ca.pem")).unwrap())
        .with_no_client_auth();
    let (result, _) = handshake(server.clone(), Arc::new(tls12)).await;
    assert!(result.is_err());
    let tls13 = client_config(Some(&pki.client(None)), ALPN_H2).unwrap();
    handshake(server, Arc::new(tls13)).await.0.unwrap();
}

#[test]
fn a_key_that_does_not_match_its_certificate_and_missing_files_are_clear_errors() {
    let pki = Pki::new();
    let mut c = pki.server(false, ClientAuth::Required);
    let other = pki.ca.leaf(&["localhost"], &[], "other");
    replace(&c.key, &other.key_pem);
    let err = server_config(&c, ALPN_H2).unwrap_err().to_string();
    assert!(err.contains("server.crt"), "{err}");
    c.cert = pki.path("missing.crt");
    let err = server_config(&c, ALPN_H2).unwrap_err().to_string();
    assert!(
        err.contains("missing.crt") && err.contains("No such file"),
        "{err}"
    );
    replace(&pki.path("empty.pem"), "nothing here\n");
    c.cert = pki.path("empty.pem");
    let err = server_config(&c, ALPN_H2).unwrap_err().to_string();
    assert!(err.contains("no CERTIFICATE"), "{err}");
}

#[tokio::test]
async fn a_changed_certificate_is_picked_up_and_a_broken_one_keeps_the_previous() {
    let pki = Pki::new();
    let config = pki.server(false, ClientAuth::Required);
    let c = config.clone();
    let reloading = Reloading::new("test", server_files(&config), move || {
        server_config(&c, ALPN_H2).map_err(|e| e.to_string())
    })
    .unwrap();
    let reloader = Reloader::default();
    reloader.add(reloading.clone());
    let metrics = Metrics::new();
    assert!(
        reloader.check(false, &metrics).is_empty(),
        "nothing changed"
    );

    let first = reloading.current();
    pki.ca
        .leaf(&["localhost"], &[], "weir, rotated")
        .write(pki.dir.path(), "server");
    let reports = reloader.check(false, &metrics);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].reloaded, "{reports:?}");
    let second = reloading.current();
    assert!(
        !Arc::ptr_eq(&first, &second),
        "a new configuration is in place"
    );

    replace(&config.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n");
    let reports = reloader.check(false, &metrics);
    assert!(
        !reports[0].reloaded && reports[0].error.is_some(),
        "{reports:?}"
    );
    assert!(
        Arc::ptr_eq(&second, &reloading.current()),
        "the previous one stays"
    );
    let client = client_config(Some(&pki.client(None)), ALPN_H2).unwrap();
    handshake(reloading.current(), Arc::new(client))
        .await
        .0
        .unwrap();
    assert!(
        reloader.check(false, &metrics).is_empty(),
        "a failed file is not retried until it changes"
    );
    let rendered = metrics.render();
    assert!(
        rendered.contains(r#"weir_tls_reloads_total{name="test",result="error"} 1"#),
        "{rendered}"
    );
}
