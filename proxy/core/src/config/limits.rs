//! `limits`: what clients may ask of weir, per request and per connection.

use std::time::Duration;

use serde::Deserialize;

/// Limits. Every refusal they cause is counted on `/metrics` (`weir_requests_refused_total`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest OTLP/HTTP body as received, before decompression (default 8 MiB). Above: 413.
    pub max_request_bytes: usize,
    /// Largest request after decompression, HTTP body or gRPC message (default 32 MiB).
    /// Above: 413 / RESOURCE_EXHAUSTED. A gzip bomb stops here without allocating more.
    pub max_decompressed_bytes: usize,
    /// Requests being decoded, filtered and queued at once over both transports (default 1024). Above:
    /// 503 / UNAVAILABLE, retryable. A request waiting for its upstreams holds no slot: the exporters'
    /// queues (`exporters.*.otlp.queue`) bound those.
    pub max_concurrent_requests: usize,
    /// Time allowed for a request, from decode to the upstream's answer, unless the client's
    /// `grpc-timeout` is shorter (default `30s`). Past it the client gets a retryable status.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests before exiting (default `20s`).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long weir keeps serving new requests with `/readyz` already failing, so that
    /// load balancers and Kubernetes endpoints stop sending before weir stops accepting (default `0s`;
    /// about 5s behind a Kubernetes Service). A second SIGTERM or SIGINT exits at once.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain_delay: Duration,
    /// Seconds suggested to refused clients (`Retry-After`, gRPC RetryInfo) (default `1s`).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Resident memory weir keeps under (default: the container's limit, see `memory_from_cgroup`, or
    /// none). From 90% of it new requests are refused (503 / UNAVAILABLE, retryable) until memory is
    /// back under 80%.
    pub max_memory_bytes: Option<usize>,
    /// Without `max_memory_bytes`, under a cgroup memory limit (a container's), take the limit from the
    /// cgroup and measure the cgroup's working set as well as weir's own resident memory (default
    /// `true`).
    pub memory_from_cgroup: bool,
    /// Slow and greedy clients: connection caps, read deadlines, HTTP/2 limits.
    pub connections: ConnectionLimits,
}

/// What one client connection may hold, and for how long: the OTLP listeners and the admin listener
/// each apply them, so that clients that trickle bytes or open connections without end cannot hold
/// weir's admission slots or file descriptors.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Open connections per listener (default 4096). A connection past it is closed as soon as it is
    /// accepted, and counted (`weir_connections_rejected_total`).
    pub max_per_listener: usize,
    /// Time a client has to send a request's headers, HTTP/1.1 (default `10s`); then the connection is
    /// closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body once its headers are in (default `30s`). Past it the
    /// request is refused (HTTP 408, gRPC DEADLINE_EXCEEDED; `reason="slow_client"`) and its admission
    /// slot is free again.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// HTTP/2 streams a client may have open on one connection (default 256).
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive pings to idle clients, this often (default `30s`) ...
    #[serde(with = "humantime_serde")]
    pub http2_keepalive_interval: Duration,
    /// ... answered within this (default `10s`), or the connection is closed.
    #[serde(with = "humantime_serde")]
    pub http2_keepalive_timeout: Duration,
    /// Connections older than this are asked to close (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close`
    /// after the request in progress), so that a load balancer can spread clients again (default:
    /// never).
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Option<Duration>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_per_listener: 4096,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            http2_max_concurrent_streams: 256,
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_connection_age: None,
        }
    }
}

impl ConnectionLimits {
    /// Range checks.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_per_listener == 0 {
            return Err("limits.connections.max_per_listener must be at least 1".into());
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(
                "limits.connections.http2_max_concurrent_streams must be at least 1".into(),
            );
        }
        for (name, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("http2_keepalive_interval", self.http2_keepalive_interval),
            ("http2_keepalive_timeout", self.http2_keepalive_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("limits.connections.{name} must be more than 0"));
            }
        }
        if self.max_connection_age.is_some_and(|a| a.is_zero()) {
            return Err("limits.connections.max_connection_age must be more than 0".into());
        }
        Ok(())
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 << 20,
            max_decompressed_bytes: 32 << 20,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(20),
            shutdown_drain_delay: Duration::ZERO,
            retry_after: Duration::from_secs(1),
            max_memory_bytes: None,
            memory_from_cgroup: true,
            connections: ConnectionLimits::default(),
        }
    }
}
