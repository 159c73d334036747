//! A small client of the admin API, used by the `weir filter` commands: plain HTTP, or HTTPS (the
//! system's roots or a CA bundle, optionally a client certificate for mTLS) for an `https://` URL.

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Calling the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS settings could not be loaded.
    #[error("TLS for {url}: {message}")]
    Tls {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The URL or request was malformed.
    #[error("bad request to {url}: {message}")]
    Request {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// weir could not be reached.
    #[error("cannot reach weir's admin API at {url}: {message} (is weir running? see --admin)")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// weir answered with an error.
    #[error("{status}: {message}")]
    Status {
        /// The status.
        status: StatusCode,
        /// weir's explanation.
        message: String,
    },
}

/// An admin API client.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    tls: Option<std::sync::Arc<weir_tls::rustls::ClientConfig>>,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9901`). Without `token`, for a loopback URL, the
    /// one the weir on that port made at start is used, if this user can read it (see
    /// [`super::token`]); a local token is never sent to another host.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let base = base.trim_end_matches('/').to_string();
        let token = token.or_else(|| {
            let uri = base.parse::<http::Uri>().ok()?;
            let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
            let local = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !local {
                return None;
            }
            super::token::discover(uri.port_u16()?)
        });
        Self {
            base,
            token,
            tls: None,
        }
    }

    /// A client for `base` that sends no token, not even a discovered one (for a receiver, not the
    /// admin API).
    pub fn plain(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: None,
            tls: None,
        }
    }

    /// Speaks HTTPS to an `https://` URL with `tls` (`None`: the system's roots, no client
    /// certificate).
    pub fn with_tls(
        mut self,
        tls: Option<&weir_core::config::ClientTlsConfig>,
    ) -> Result<Self, ClientError> {
        if !self.base.starts_with("https://") {
            if tls.is_some() {
                return Err(ClientError::Tls {
                    url: self.base.clone(),
                    message: "TLS settings were given for an http:// URL".into(),
                });
            }
            return Ok(self);
        }
        let config = weir_tls::client_config(tls, &[]).map_err(|e| ClientError::Tls {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        self.tls = Some(std::sync::Arc::new(config));
        Ok(self)
    }

    /// Sends a request and returns the JSON answer (`null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<serde_json::Value, ClientError> {
        self.call_with_headers(method, path, content_type, &[], body)
            .await
    }

    /// [`AdminClient::call`] with extra request headers.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}{}", self.base, path);
        let builder = Client::builder(TokioExecutor::new());
        let client = match &self.tls {
            None => builder.build(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(plain_only())
                    .https_or_http()
                    .enable_http1()
                    .build(),
            ),
            Some(tls) => builder.build(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((**tls).clone())
                    .https_only()
                    .enable_http1()
                    .build(),
            ),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::CONTENT_TYPE, content_type);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Request {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| ClientError::Connect {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Connect {
                url: url.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        let value: serde_json::Value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).trim().to_string())
            })
        };
        if !status.is_success() {
            let message = value
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            return Err(ClientError::Status { status, message });
        }
        Ok(value)
    }
}

/// A TLS configuration for a client that never uses it (an http:// URL): trusts nothing.
fn plain_only() -> weir_tls::rustls::ClientConfig {
    weir_tls::rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        weir_tls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(weir_tls::rustls::RootCertStore::empty())
    .with_no_client_auth()
}
