//! `receivers`: where weir accepts OTLP, and who may send.

use serde::Deserialize;

use super::{IngressAuthConfig, ServerTlsConfig};

/// Receivers. Only OTLP for now.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiversConfig {
    /// The OTLP receiver: gRPC and HTTP.
    pub otlp: OtlpReceiverConfig,
}

impl Default for ReceiversConfig {
    fn default() -> Self {
        Self {
            otlp: OtlpReceiverConfig {
                grpc: Some(ListenerConfig::new("127.0.0.1:4317")),
                http: Some(ListenerConfig::new("127.0.0.1:4318")),
            },
        }
    }
}

/// The OTLP receiver. Omitting `grpc` or `http` disables that transport.
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

impl ListenerConfig {
    /// A plain listener on `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            tls: None,
            auth: None,
        }
    }
}
