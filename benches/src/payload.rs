//! Builds the request bodies the load generator sends.
//!
//! Every body is built and protobuf-encoded once, before the clock starts, so the
//! send loop pays for framing and I/O only. Content is deterministic for a given
//! seed (SplitMix64, no `rand` dependency) and shaped like real traffic: one
//! resource with a handful of attributes, one instrumentation scope, and spans
//! grouped into small traces (a SERVER root span with CLIENT children), each span
//! carrying about ten attributes of mixed types, a status and, sometimes, an event.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind, status::StatusCode,
};
use prost::Message;
use std::time::{SystemTime, UNIX_EPOCH};

/// One pre-encoded `ExportTraceServiceRequest`.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The protobuf encoding of the request, shared without copying between sends.
    pub body: Bytes,
    /// Number of spans in the request.
    pub spans: u64,
}

/// Builds `variants` distinct requests of `spans_per_request` spans each.
pub fn build(variants: usize, spans_per_request: usize, seed: u64) -> Vec<Payload> {
    let mut rng = SplitMix64(seed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    (0..variants)
        .map(|variant| {
            let request = request(&mut rng, variant, spans_per_request, now);
            Payload {
                body: Bytes::from(request.encode_to_vec()),
                spans: spans_per_request as u64,
            }
        })
        .collect()
}

const SERVICES: &[&str] = &[
    "frontend",
    "checkout",
    "cart",
    "payments",
    "inventory",
    "user-profile",
    "shipping",
    "recommendations",
];

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/users/{id}"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/orders/{id}"),
    ("PUT", "/api/v1/carts/{id}/items"),
    ("DELETE", "/api/v1/sessions/{id}"),
    ("GET", "/api/v1/products/{id}/reviews"),
];

const CLIENT_OPS: &[(&str, &str)] = &[
    ("postgresql", "SELECT users"),
    ("postgresql", "INSERT orders"),
    ("redis", "GET"),
    ("redis", "SETEX"),
    ("mongodb", "find products"),
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
];

const STATUS_CODES: &[i64] = &[200, 200, 200, 200, 200, 200, 201, 204, 304, 404, 500];

fn request(
    rng: &mut SplitMix64,
    variant: usize,
    spans_per_request: usize,
    now_nanos: u64,
) -> ExportTraceServiceRequest {
    let service = SERVICES[variant % SERVICES.len()];
    let resource = Resource {
        attributes: vec![
            kv_str("service.name", service),
            kv_str(
                "service.version",
                &format!("1.{}.{}", variant % 7, rng.below(20)),
            ),
            kv_str(
                "host.name",
                &format!("node-{:03}.prod.internal", rng.below(200)),
            ),
            kv_str("deployment.environment.name", "production"),
            kv_str("telemetry.sdk.language", "rust"),
            kv_int("process.pid", 1000 + rng.below(60_000) as i64),
        ],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "weir-loadgen".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    };

    let mut spans = Vec::with_capacity(spans_per_request);
    while spans.len() < spans_per_request {
        let trace_len = (1 + rng.below(8) as usize).min(spans_per_request - spans.len());
        push_trace(rng, trace_len, now_nanos, &mut spans);
    }

    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Appends one trace: a SERVER root span followed by `len - 1` CLIENT children.
fn push_trace(rng: &mut SplitMix64, len: usize, now_nanos: u64, spans: &mut Vec<Span>) {
    let trace_id = rng.bytes::<16>().to_vec();
    let root_id = rng.bytes::<8>().to_vec();
    let root_start = now_nanos.saturating_sub(rng.below(60_000_000_000));
    let root_duration = 1_000_000 + rng.below(200_000_000);
    let (method, route) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
    let status_code = STATUS_CODES[rng.below(STATUS_CODES.len() as u64) as usize];

    for i in 0..len {
        let is_root = i == 0;
        let (span_id, parent, kind, name, start, end) = if is_root {
            (
                root_id.clone(),
                Vec::new(),
                SpanKind::Server,
                format!("{method} {route}"),
                root_start,
                root_start + root_duration,
            )
        } else {
            let (_, op) = CLIENT_OPS[rng.below(CLIENT_OPS.len() as u64) as usize];
            let start = root_start + rng.below(root_duration / 2);
            let end = start + 50_000 + rng.below(root_duration / 2);
            (
                rng.bytes::<8>().to_vec(),
                root_id.clone(),
                SpanKind::Client,
                op.to_owned(),
                start,
                end,
            )
        };
        let failed = is_root && status_code >= 500;
        let events = if failed {
            vec![Event {
                time_unix_nano: end,
                name: "exception".to_owned(),
                attributes: vec![
                    kv_str("exception.type", "std::io::Error"),
                    kv_str("exception.message", "connection reset by peer"),
                ],
                ..Default::default()
            }]
        } else if rng.below(4) == 0 {
            vec![Event {
                time_unix_nano: start + (end - start) / 2,
                name: "cache.lookup".to_owned(),
                attributes: vec![kv_bool("cache.hit", rng.below(2) == 0)],
                ..Default::default()
            }]
        } else {
            Vec::new()
        };
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id,
            parent_span_id: parent,
            flags: 0x01,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: attributes(rng, method, route, status_code),
            events,
            status: Some(if failed {
                Status {
                    code: StatusCode::Error as i32,
                    message: "Internal Server Error".to_owned(),
                }
            } else {
                Status {
                    code: StatusCode::Unset as i32,
                    message: String::new(),
                }
            }),
            ..Default::default()
        });
    }
}

fn attributes(rng: &mut SplitMix64, method: &str, route: &str, status: i64) -> Vec<KeyValue> {
    let path = route.replace("{id}", &rng.below(1_000_000).to_string());
    let (db_system, _) = CLIENT_OPS[rng.below(CLIENT_OPS.len() as u64) as usize];
    let agent = USER_AGENTS[rng.below(USER_AGENTS.len() as u64) as usize];
    let fingerprint: String = rng
        .bytes::<30>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        kv_str("http.request.method", method),
        kv_str("url.path", &path),
        kv_int("http.response.status_code", status),
        kv_str("server.address", "api.shop.example.com"),
        kv_str("user_agent.original", agent),
        kv_int("net.peer.port", 1024 + rng.below(64_000) as i64),
        kv_str("db.system", db_system),
        kv_bool("app.cache.hit", rng.below(3) == 0),
        kv_double("app.queue.wait_ms", rng.below(50_000) as f64 / 1000.0),
        kv_str("app.request.fingerprint", &fingerprint),
    ]
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

fn kv_bool(key: &str, value: bool) -> KeyValue {
    kv(key, Value::BoolValue(value))
}

fn kv_double(key: &str, value: f64) -> KeyValue {
    kv(key, Value::DoubleValue(value))
}

/// SplitMix64: tiny, fast and good enough for synthetic ids and attribute values.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`0` when `n` is `0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// `N` random bytes, never all zero (an all-zero trace or span id is invalid).
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        if out.iter().all(|&b| b == 0) {
            out[0] = 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn builds_requested_shape() {
        let payloads = build(3, 100, 7);
        assert_eq!(payloads.len(), 3);
        for p in &payloads {
            let req = ExportTraceServiceRequest::decode(p.body.clone()).expect("decodes");
            let spans = &req.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans.len(), 100);
            assert!(
                spans
                    .iter()
                    .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8)
            );
            assert!(spans.iter().all(|s| s.attributes.len() == 10));
        }
    }
}
