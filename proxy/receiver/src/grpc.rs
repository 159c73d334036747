//! The OTLP/gRPC receiver: the three `Export` methods, served by tonic's server with a pass-through
//! codec, so that a message arrives as the bytes the client sent (inflated when compressed); the
//! validating walk checks and counts them and they go on undecoded.
//!
//! A request is started before tonic reads its message (refused at once while weir shuts down or is
//! over its memory limit, so that a full weir refuses without reading), but admitted (a slot of
//! `max_concurrent_requests`) only once its message is in: a client that trickles its message holds
//! no slot. While it is read, what tonic buffers is charged to the request's memory as it arrives, and
//! a compressed message is inflated by weir, not tonic, charging its buffer before it grows
//! ([`crate::grpc_body`]); the walk then bounds what decoding would allocate, and that is the charge
//! the request is admitted with. `limits.max_decompressed_bytes` applies on the wire and after
//! inflating; the statuses tonic produces itself are rewritten to the ones the OTLP specification
//! wants: an over-size message (tonic: OUT_OF_RANGE) becomes RESOURCE_EXHAUSTED without RetryInfo, not
//! retryable, as does a request that alone needs more memory than the limit allows. An invalid message is
//! INVALID_ARGUMENT; when weir or an upstream is full the answer is UNAVAILABLE with RetryInfo.
//! Responses are compressed only when the client asked (`grpc-accept-encoding`) and there is something
//! to say: an empty response goes out as it is.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use tonic::codec::CompressionEncoding;
use tonic::server::UnaryService;
use tonic::{Code, Request, Response, Status};
use weir_wire::response::ExportResponse;

use super::auth::Authenticator;
use super::decode::DecodeError;
use super::grpc_body::{ChargedBody, Refused, RequestEncoding, take_encoding, unavailable};
use super::listen::ConnInfo;
use super::{Busy, Ingest, Origin, Reading};
use weir_core::telemetry::{RefuseReason, Transport};
use weir_core::{Refusal, Signal};

/// The OTLP gRPC `Export` methods of every signal over one [`Ingest`].
#[derive(Debug, Clone)]
pub struct GrpcReceiver {
    ingest: Arc<Ingest>,
    auth: Option<Arc<Authenticator>>,
}

impl GrpcReceiver {
    /// A receiver feeding `ingest`, open to anyone who can connect.
    pub fn new(ingest: Arc<Ingest>) -> Self {
        Self { ingest, auth: None }
    }

    /// Lets in only requests `auth` authenticates (UNAUTHENTICATED otherwise).
    pub fn with_auth(mut self, auth: Option<Arc<Authenticator>>) -> Self {
        self.auth = auth;
        self
    }

    /// The routes for tonic's server: one [`ExportService`] per signal; any other method is
    /// UNIMPLEMENTED.
    pub fn routes(self) -> tonic::service::Routes {
        let mut router = axum::Router::new();
        for signal in Signal::ALL {
            router = router.route_service(
                signal.grpc_path(),
                ExportService {
                    ingest: self.ingest.clone(),
                    auth: self.auth.clone(),
                    signal,
                },
            );
        }
        let router = router.fallback(|| async {
            Status::unimplemented("weir serves the OTLP Export methods only")
                .into_http::<axum::body::Body>()
        });
        tonic::service::Routes::from(router)
    }
}

/// One signal's `Export` method: admission, then tonic's unary handling with [`RawCodec`], then the
/// rewrite of tonic's own statuses.
#[derive(Debug, Clone)]
pub struct ExportService {
    ingest: Arc<Ingest>,
    auth: Option<Arc<Authenticator>>,
    signal: Signal,
}

impl<B> tower::Service<http::Request<B>> for ExportService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (ingest, signal) = (self.ingest.clone(), self.signal);
        let conn = req.extensions().get::<ConnInfo>();
        if let Some(c) = conn {
            c.served.mark();
        }
        let peer = conn.map(|c| c.peer);
        let tenant = match &self.auth {
            None => None,
            Some(auth) => match auth.authenticate(req.headers(), conn) {
                Ok(tenant) => Some(tenant),
                Err(e) => {
                    // Before admission: a client without credentials costs no slot and no read.
                    ingest.refused_early(signal, Transport::Grpc, RefuseReason::Unauthenticated);
                    let status = Status::unauthenticated(e.to_string());
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
            },
        };
        // Started, not admitted: reading the message holds no slot, only a charge of what it read.
        let reading = match ingest.start(signal, Transport::Grpc) {
            Ok(r) => r,
            Err(busy) => {
                // The body is never read: refusing costs no decoding.
                let status = unavailable(busy.message(), ingest.limits().retry_after);
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        let mut req = req;
        // weir inflates compressed messages itself, charging as it goes (see `grpc_body`).
        let encoding = take_encoding(req.headers_mut());
        Box::pin(async move {
            let started = Instant::now();
            let in_flight = ingest.metrics().in_flight(Transport::Grpc);
            let mut grpc = tonic::server::Grpc::new(RawCodec::new())
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(ingest.limits().max_decompressed_bytes);
            // A client that trickles its message is cut off at the deadline; what it sends is
            // charged as it arrives, and one message is all it may send.
            let deadline = ingest.limits().connections.body_read_timeout;
            let counter = ingest.clone();
            let refused = Refused {
                count: Box::new(move |reason| {
                    counter.refused_early(signal, Transport::Grpc, reason)
                }),
                retry_after: ingest.limits().retry_after,
            };
            let (parts, body) = req.into_parts();
            let body = ChargedBody::new(
                crate::listen::read_deadline(body, deadline),
                reading.clone(),
                encoding.is_some(),
                refused,
            );
            let compressed = body.compressed();
            let req = http::Request::from_parts(parts, body);
            let handler = Export {
                ingest: ingest.clone(),
                signal,
                reading: Some(reading),
                encoding,
                compressed,
                peer,
                tenant,
            };
            let mut resp = grpc.unary(handler, req).await;
            // Received was counted at admission; a status tonic made is a refusal the handler never
            // saw.
            if let Some(reason) = fix_status(&mut resp) {
                ingest
                    .metrics()
                    .request_refused(signal, Transport::Grpc, reason, 0);
            }
            drop(in_flight);
            ingest
                .metrics()
                .request_finished(signal, Transport::Grpc, started.elapsed());
            Ok(resp)
        })
    }
}

/// The handler tonic calls with the message's bytes.
struct Export {
    ingest: Arc<Ingest>,
    signal: Signal,
    reading: Option<Reading>,
    /// The compression weir took off the request, to undo itself ...
    encoding: Option<RequestEncoding>,
    /// ... when the message's frame said it is compressed.
    compressed: Arc<std::sync::atomic::AtomicBool>,
    peer: Option<std::net::SocketAddr>,
    tenant: Option<Arc<str>>,
}

impl UnaryService<Bytes> for Export {
    type Response = ExportResponse;
    type Future = BoxFuture<'static, Result<Response<ExportResponse>, Status>>;

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let (ingest, signal, reading) = (self.ingest.clone(), self.signal, self.reading.take());
        let (peer, tenant) = (self.peer, self.tenant.take());
        // A message sent uncompressed under a grpc-encoding (flag 0) is not inflated.
        let encoding = self
            .encoding
            .filter(|_| self.compressed.load(std::sync::atomic::Ordering::Relaxed));
        Box::pin(async move {
            let retry_after = ingest.limits().retry_after;
            // tonic calls a unary handler once; the request's reading is there.
            let reading = reading.ok_or_else(|| Status::internal("request handled twice"))?;
            let timeout = req
                .metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout);
            let (metadata, _, bytes) = req.into_parts();
            // Inflated (charged as it grows) and walked, off the async workers when large.
            let limit = ingest.limits().max_decompressed_bytes;
            let (r, wire_len) = (reading.clone(), bytes.len());
            let prepare = move || {
                let encoding = encoding.map(|RequestEncoding(e)| e);
                // tonic's buffer for the message was charged at twice the wire bytes: still held.
                weir_wire::intake::prepare(signal, false, encoding, bytes, limit, |n| {
                    r.grow_to(2 * wire_len + n)
                })
            };
            // Compressed bodies too, whatever their size: a small one can inflate to the limit.
            let prepared = if wire_len > crate::decode::BLOCKING_BYTES || encoding.is_some() {
                tokio::task::spawn_blocking(prepare)
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            } else {
                prepare()
            };
            let refuse = |e: DecodeError| {
                let (reason, status) = if e.is_over_budget() {
                    (
                        RefuseReason::MemoryLimit,
                        unavailable(Busy::MemoryLimit.message(), retry_after),
                    )
                } else if e.is_too_large() {
                    (
                        RefuseReason::TooLarge,
                        Status::resource_exhausted(e.to_string()),
                    )
                } else {
                    (
                        RefuseReason::Decode,
                        Status::invalid_argument(e.to_string()),
                    )
                };
                ingest.refused_early(signal, Transport::Grpc, reason);
                status
            };
            let prepared = prepared.map_err(&refuse)?;
            // Charged what decoding will allocate before anything is decoded; then a slot.
            let cost = prepared.cost();
            let admitted = ingest
                .admit(reading, signal, Transport::Grpc, cost)
                .map_err(|busy| match busy {
                    Busy::TooLarge => Status::resource_exhausted(busy.message()),
                    _ => unavailable(busy.message(), retry_after),
                })?;
            // Protobuf stays its bytes: nothing is decoded here.
            let body = prepared.into_body().map_err(&refuse)?;
            let partial = ingest
                .process(
                    admitted,
                    body,
                    Transport::Grpc,
                    Origin::new(peer, metadata.into_headers(), tenant),
                    timeout,
                )
                .await
                .map_err(|r| refusal_status(&ingest, &r))?;
            let mut resp = Response::new(partial.response());
            if partial.is_empty() {
                // Nothing to compress: an empty message goes out as it is.
                resp.disable_compression();
            }
            Ok(resp)
        })
    }
}

/// Reads requests as the bytes they are and writes export responses.
type RawCodec = weir_core::grpc_codec::RawCodec<ExportResponse, Bytes>;

fn refusal_status(ingest: &Ingest, refusal: &Refusal) -> Status {
    let message = refusal.to_string();
    if refusal.retryable() {
        return unavailable(&message, ingest.retry_after(Some(refusal)));
    }
    let code = match refusal {
        Refusal::NoPipeline(_) => Code::Unimplemented,
        Refusal::Export { source, .. } => source.grpc_code,
        Refusal::Chain(_) | Refusal::Timeout | Refusal::QueueFull(_) => Code::InvalidArgument,
    };
    Status::new(code, message)
}

/// Parses the `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The messages tonic gives its own decoding failures (percent-encoded as in `grpc-message`).
const TONIC_DECODE_FAILURES: [&str; 3] = [
    "failed%20to%20decode%20Protobuf%20message",
    "Error%20decompressing",
    "protocol%20error",
];

/// Rewrites a tonic-made status in place; returns the refusal reason when it did.
fn fix_status(resp: &mut http::Response<tonic::body::Body>) -> Option<RefuseReason> {
    let headers = resp.headers_mut();
    let code = headers.get("grpc-status").map(|v| v.as_bytes());
    let message = headers
        .get("grpc-message")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let is_decode_failure = TONIC_DECODE_FAILURES.iter().any(|p| {
        message.starts_with(p.as_bytes()) || message.starts_with(p.replace("%20", " ").as_bytes())
    });
    let (code, reason) = match code {
        // Only tonic's size checks answer OUT_OF_RANGE (uncompressed) or RESOURCE_EXHAUSTED
        // (inflated) here: weir's handlers never do.
        Some(b"11") => ("8", RefuseReason::TooLarge),
        Some(b"8") if message.starts_with(b"Error%20decompressing") => {
            ("8", RefuseReason::TooLarge)
        }
        Some(b"13") if is_decode_failure => ("3", RefuseReason::Decode),
        // The body's read deadline (`listen::read_deadline`): the status is already the right one.
        Some(b"4")
            if message.starts_with(crate::listen::BODY_TIMEOUT_MESSAGE.as_bytes())
                || message.starts_with(
                    crate::listen::BODY_TIMEOUT_MESSAGE
                        .replace(' ', "%20")
                        .as_bytes(),
                ) =>
        {
            ("4", RefuseReason::SlowClient)
        }
        _ => return None,
    };
    headers.insert("grpc-status", http::HeaderValue::from_static(code));
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
    }

    fn response_with(code: &str, message: &str) -> http::Response<tonic::body::Body> {
        let mut r = http::Response::new(tonic::body::Body::empty());
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_str(code).unwrap());
        r.headers_mut().insert(
            "grpc-message",
            http::HeaderValue::from_str(message).unwrap(),
        );
        r
    }

    #[test]
    fn tonic_statuses_are_rewritten_and_others_kept() {
        let too_large = Some(RefuseReason::TooLarge);
        let cases = [
            (
                "11",
                "Error,%20decoded%20message%20length%20too%20large",
                "8",
                too_large,
            ),
            ("8", "Error%20decompressing:%20size%20limit", "8", too_large),
            (
                "13",
                "failed%20to%20decode%20Protobuf%20message:%20x",
                "3",
                Some(RefuseReason::Decode),
            ),
            // An upstream's INTERNAL passed through to the client stays INTERNAL.
            ("13", "exporter%20backend:%20upstream%20said", "13", None),
            ("14", "x", "14", None),
        ];
        for (code, message, want, reason) in cases {
            let mut r = response_with(code, message);
            assert_eq!(fix_status(&mut r), reason, "{code} {message}");
            assert_eq!(r.headers()["grpc-status"], want, "{code} {message}");
        }
    }
}
