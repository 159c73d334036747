//! A small client of the admin API, used by the `weir filter` commands.

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Calling the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
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
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9901`). Without `token`, the one the weir on
    /// that port made at start is used, if this user can read it (see [`super::token`]).
    pub fn new(base: &str, token: Option<String>) -> Self {
        let base = base.trim_end_matches('/').to_string();
        let token = token.or_else(|| {
            let port = base.parse::<http::Uri>().ok()?.port_u16()?;
            super::token::discover(port)
        });
        Self { base, token }
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
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
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
