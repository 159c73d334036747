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

/// What the spans' attributes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mix {
    /// About 533-byte spans with ten attributes of mixed types and few secrets: the default, and
    /// the secret-free row of the redaction benchmark.
    #[default]
    Plain,
    /// About 850-byte spans whose ten attributes are seven secrets (an e-mail address, a card number,
    /// a token in a URL, SQL with an e-mail address, a client IPv4 and IPv6 address, a bearer JWT)
    /// and three ordinary values (a user agent, a route, a status code): the data a redactor is for.
    /// Every secret carries one of [`LEAK_MARKERS`], so a sink can count what got through.
    Secrets,
}

impl Mix {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mix::Plain => "plain",
            Mix::Secrets => "secrets",
        }
    }
}

/// A piece of every secret [`Mix::Secrets`] plants, in no other value it sends: a string value that
/// still holds one after redaction is a leak. (The redactor masks a whole match, so none survives.)
pub const LEAK_MARKERS: &[&str] = &[
    "@mail.example",
    "tok_",
    "eyJhbGci",
    "2001:db8:",
    "172.16.",
    // With its space: a card is written in groups, and an order id in a URL may hold the digits.
    "4539 ",
];

/// Builds `variants` distinct requests of `spans_per_request` spans each, their attributes of `mix`.
pub fn build_mix(mix: Mix, variants: usize, spans_per_request: usize, seed: u64) -> Vec<Payload> {
    let mut rng = SplitMix64(seed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    (0..variants)
        .map(|variant| {
            let request = request(&mut rng, mix, variant, spans_per_request, now);
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
    mix: Mix,
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
        push_trace(rng, mix, trace_len, now_nanos, &mut spans);
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
fn push_trace(rng: &mut SplitMix64, mix: Mix, len: usize, now_nanos: u64, spans: &mut Vec<Span>) {
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
            attributes: match mix {
                Mix::Plain => attributes(rng, method, route, status_code),
                Mix::Secrets => secret_attributes(rng, route, status_code),
            },
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

const FIRST_NAMES: &[&str] = &["ada", "grace", "alan", "edsger", "barbara", "ken", "radia"];
const LAST_NAMES: &[&str] = &[
    "lovelace", "hopper", "turing", "dijkstra", "liskov", "thompson",
];

/// Seven secrets and three ordinary values, each secret with one of [`LEAK_MARKERS`].
fn secret_attributes(rng: &mut SplitMix64, route: &str, status: i64) -> Vec<KeyValue> {
    let first = FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize];
    let email = format!("{first}.{last}{}@mail.example", rng.below(10_000));
    let hex = |rng: &mut SplitMix64, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
            .collect()
    };
    let id = rng.below(1_000_000);
    let url = format!(
        "https://shop.example.com/api/v1/orders/{id}?lang=en&token=tok_{}&page=2",
        hex(rng, 24)
    );
    let sql = format!(
        "SELECT id, status FROM orders WHERE customer_email = '{}.{}@mail.example' AND region = 'eu' LIMIT 50",
        last,
        rng.below(10_000)
    );
    let ipv4 = format!("172.16.{}.{}", rng.below(256), 1 + rng.below(254));
    let ipv6 = format!(
        "2001:db8:{:x}:{:x}::{:x}",
        rng.below(0xffff),
        rng.below(0xffff),
        1 + rng.below(0xfffe)
    );
    // A JWT: a fixed header ("alg":"HS256") and random base64url-ish payload and signature.
    let jwt = format!(
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi{}.{}",
        hex(rng, 20),
        hex(rng, 32)
    );
    let agent = USER_AGENTS[rng.below(USER_AGENTS.len() as u64) as usize];
    vec![
        kv_str("user.email", &email),
        kv_str("payment.card.number", &card(rng)),
        kv_str("url.full", &url),
        kv_str("db.query.text", &sql),
        kv_str("client.address", &ipv4),
        kv_str("network.peer.address", &ipv6),
        kv_str("http.request.header.x_forwarded_auth", &jwt),
        kv_str("user_agent.original", agent),
        kv_str("http.route", route),
        kv_int("http.response.status_code", status),
    ]
}

/// A Visa-like card number with a valid Luhn check digit, in four groups: `4539 NNNN NNNN NNNC`.
fn card(rng: &mut SplitMix64) -> String {
    let mut digits = vec![4u8, 5, 3, 9];
    digits.extend((0..11).map(|_| rng.below(10) as u8));
    // The check digit makes the Luhn sum of all 16 a multiple of ten.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    digits.push(((10 - sum % 10) % 10) as u8);
    digits
        .chunks(4)
        .map(|g| g.iter().map(|d| char::from(b'0' + d)).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The string values of `request` that still hold a planted secret (a [`LEAK_MARKERS`] entry).
pub fn leaks(request: &ExportTraceServiceRequest) -> u64 {
    let mut n = 0;
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                for kv in &span.attributes {
                    if let Some(AnyValue {
                        value: Some(Value::StringValue(v)),
                    }) = &kv.value
                        && LEAK_MARKERS.iter().any(|m| v.contains(m))
                    {
                        n += 1;
                    }
                }
            }
        }
    }
    n
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
        let payloads = build_mix(Mix::Plain, 3, 100, 7);
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
            assert_eq!(leaks(&req), 0, "the plain mix plants no secrets");
        }
    }

    #[test]
    fn the_secret_mix_plants_seven_secrets_per_span_that_the_detectors_find() {
        let payloads = build_mix(Mix::Secrets, 4, 100, 7);
        let set = weir_kernels::PatternSet::compile(&weir_kernels::PatternSpec {
            detectors: weir_kernels::Detector::ALL.to_vec(),
            ..Default::default()
        })
        .unwrap();
        let mut bytes = 0;
        for p in &payloads {
            let req = ExportTraceServiceRequest::decode(p.body.clone()).expect("decodes");
            let spans = &req.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans.len(), 100);
            assert_eq!(leaks(&req), 7 * 100);
            bytes += p.body.len();
            for span in spans {
                let values = span.attributes.iter().filter_map(|kv| match &kv.value {
                    Some(AnyValue {
                        value: Some(Value::StringValue(v)),
                    }) => Some(v.as_str()),
                    _ => None,
                });
                let mut found = 0;
                for v in values {
                    let mut hits = Vec::new();
                    set.find_values(v, &mut hits);
                    if LEAK_MARKERS.iter().any(|m| v.contains(m)) {
                        assert!(!hits.is_empty(), "no detector finds the secret in {v:?}");
                        found += 1;
                    } else {
                        assert!(
                            hits.is_empty(),
                            "{v:?} is not meant to be a secret: {hits:?}"
                        );
                    }
                }
                assert_eq!(found, 7);
            }
        }
        let per_span = bytes / 400;
        assert!((700..1000).contains(&per_span), "{per_span} bytes per span");
    }

    #[test]
    fn card_numbers_pass_the_luhn_check() {
        let mut rng = SplitMix64(3);
        for _ in 0..100 {
            let c: Vec<u32> = card(&mut rng)
                .chars()
                .filter_map(|c| c.to_digit(10))
                .collect();
            assert_eq!(c.len(), 16);
            let sum: u32 = c
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| {
                    if i % 2 == 1 {
                        if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                    } else {
                        d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0);
        }
    }
}
