//! The OTLP/HTTP receiver (axum on hyper, HTTP/1.1 and h2c): `POST /v1/traces`, `/v1/metrics`,
//! `/v1/logs` and `/v1development/profiles` (alpha) with protobuf or JSON bodies, optionally gzip- or zstd-compressed. A protobuf body is
//! checked by the validating walk and forwarded as the bytes it is; JSON is decoded.
//!
//! Status codes per the OTLP specification: 400 (body: `google.rpc.Status`) for undecodable data, 415 for
//! an unsupported content type or encoding, 413 above a size limit (checked on the wire and after
//! decompression), 503 with `Retry-After` when weir or the upstream cannot take more, 401 without the
//! credentials the receiver's `auth` asks for. The response uses the request's content type.
//!
//! A request takes its admission slot only once its body is read and inflated: reading is charged to
//! the memory limit as the buffer grows (with or without `Content-Length`), inflating likewise, and
//! the request is then admitted with the bound on what decoding it allocates. Large bodies are
//! inflated, walked and decoded on the blocking pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use prost::Message;
use tonic::Code;

use super::auth::Authenticator;
use super::decode::{self, ContentType, DecodeError};
use super::listen::ConnInfo;
use super::{Busy, Ingest, Origin};
use weir_core::telemetry::{RefuseReason, Transport};
use weir_core::{PartialSuccess, Refusal, Signal};
use weir_wire::codec::Encoding;

/// The router for the OTLP/HTTP endpoints; with `auth`, only requests it authenticates are let in
/// (401 otherwise).
pub fn router(ingest: Arc<Ingest>, auth: Option<Arc<Authenticator>>) -> Router {
    let mut router = Router::new();
    for signal in Signal::ALL {
        let auth = auth.clone();
        router = router.route(
            signal.http_path(),
            post(
                move |State(ingest): State<Arc<Ingest>>,
                      ConnectInfo(peer): ConnectInfo<SocketAddr>,
                      req: Request<Body>| async move {
                    export(&ingest, auth.as_deref(), signal, peer, req).await
                },
            ),
        );
    }
    router
        // weir applies its own, configurable limits.
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

async fn export(
    ingest: &Ingest,
    auth: Option<&Authenticator>,
    signal: Signal,
    peer: SocketAddr,
    req: Request<Body>,
) -> Response {
    let started = Instant::now();
    let _in_flight = ingest.metrics().in_flight(Transport::Http);
    let response = handle(ingest, auth, signal, peer, req).await;
    ingest
        .metrics()
        .request_finished(signal, Transport::Http, started.elapsed());
    response
}

async fn handle(
    ingest: &Ingest,
    auth: Option<&Authenticator>,
    signal: Signal,
    peer: SocketAddr,
    req: Request<Body>,
) -> Response {
    let limits = ingest.limits();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let content_type = ContentType::parse(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    // Before admission: a client without credentials costs no slot and no read.
    let tenant = match auth {
        None => None,
        Some(auth) => match auth.authenticate(headers, parts.extensions.get::<ConnInfo>()) {
            Ok(tenant) => Some(tenant),
            Err(e) => {
                ingest.refused_early(signal, Transport::Http, RefuseReason::Unauthenticated);
                let mut response = error(
                    content_type.unwrap_or(ContentType::Json),
                    StatusCode::UNAUTHORIZED,
                    Code::Unauthenticated,
                    &e.to_string(),
                    None,
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        },
    };
    let Some(content_type) = content_type else {
        ingest.refused_early(signal, Transport::Http, RefuseReason::UnsupportedMediaType);
        return error(
            ContentType::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            "unsupported content type: use application/x-protobuf or application/json",
            None,
        );
    };
    let encoding = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) if Encoding::parse(v).is_ok() => Encoding::parse(v).ok().flatten(),
        Some(v) => {
            ingest.refused_early(signal, Transport::Http, RefuseReason::UnsupportedMediaType);
            let shown = v.unwrap_or("?").trim();
            return error(
                content_type,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                &format!("unsupported content encoding `{shown}`: use gzip, zstd or none"),
                None,
            );
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = |what: &str| {
        ingest.refused_early(signal, Transport::Http, RefuseReason::TooLarge);
        error(
            content_type,
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            what,
            None,
        )
    };
    let over_request_limit = || format!("request body exceeds {} bytes", limits.max_request_bytes);
    let undecodable = |e: DecodeError| {
        ingest.refused_early(signal, Transport::Http, RefuseReason::Decode);
        error(
            content_type,
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            &e.to_string(),
            None,
        )
    };
    // Started, not admitted: reading holds no slot, only a memory charge of what it has read.
    let reading = match ingest.start(signal, Transport::Http) {
        Ok(r) => r,
        Err(busy) => return busy_response(content_type, busy, limits.retry_after),
    };
    if declared.is_some_and(|n| n > limits.max_request_bytes) {
        return too_large(&over_request_limit());
    }
    // A client that trickles its body is cut off at the deadline.
    let read = read_body(body, limits.max_request_bytes, &reading);
    let Ok(read) = tokio::time::timeout(limits.connections.body_read_timeout, read).await else {
        ingest.refused_early(signal, Transport::Http, RefuseReason::SlowClient);
        return error(
            content_type,
            StatusCode::REQUEST_TIMEOUT,
            Code::DeadlineExceeded,
            &crate::listen::BodyTimeout(limits.connections.body_read_timeout).to_string(),
            None,
        );
    };
    let body: Bytes = match read {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return too_large(&over_request_limit()),
        Err(ReadError::Memory) => {
            ingest.refused_early(signal, Transport::Http, RefuseReason::MemoryLimit);
            return busy_response(content_type, Busy::MemoryLimit, limits.retry_after);
        }
        Err(ReadError::Body(e)) => {
            ingest.refused_early(signal, Transport::Http, RefuseReason::Decode);
            return error(
                content_type,
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                &format!("could not read the request body: {e}"),
                None,
            );
        }
    };
    // Inflating, walking and decoding large bodies is milliseconds of CPU: off the async workers.
    let max_decompressed = limits.max_decompressed_bytes;
    let r = reading.clone();
    // Compressed bodies too, whatever their size: a small one can inflate to the limit.
    let prepared = if body.len() > decode::BLOCKING_BYTES || encoding.is_some() {
        tokio::task::spawn_blocking(move || {
            decode::prepare(signal, content_type, encoding, body, max_decompressed, &r)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    } else {
        decode::prepare(signal, content_type, encoding, body, max_decompressed, &r)
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) if e.is_too_large() => return too_large(&e.to_string()),
        Err(e) if e.is_over_budget() => {
            ingest.refused_early(signal, Transport::Http, RefuseReason::MemoryLimit);
            return busy_response(content_type, Busy::MemoryLimit, limits.retry_after);
        }
        Err(e) => return undecodable(e),
    };
    // Charged what decoding will allocate before anything is decoded; then a slot.
    let admitted = match ingest.admit(reading, signal, Transport::Http, prepared.cost()) {
        Ok(a) => a,
        Err(busy) => return busy_response(content_type, busy, limits.retry_after),
    };
    let decoded = if prepared.len() > decode::BLOCKING_BYTES {
        tokio::task::spawn_blocking(move || prepared.into_body())
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    } else {
        prepared.into_body()
    };
    let body = match decoded {
        Ok(b) => b,
        Err(e) => return undecodable(e),
    };
    match ingest
        .process(
            admitted,
            body,
            Transport::Http,
            Origin::new(Some(peer), parts.headers, tenant),
            None,
        )
        .await
    {
        Ok(partial) => success(content_type, signal, &partial),
        Err(refusal) => refusal_response(ingest, content_type, &refusal),
    }
}

fn busy_response(ct: ContentType, busy: Busy, retry_after: std::time::Duration) -> Response {
    if !busy.retryable() {
        return error(
            ct,
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            busy.message(),
            None,
        );
    }
    error(
        ct,
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Unavailable,
        busy.message(),
        Some(retry_after),
    )
}

/// Why a body could not be read.
enum ReadError {
    /// Past `max_request_bytes`.
    TooLarge,
    /// weir's memory limit has no room for it.
    Memory,
    /// The connection failed.
    Body(axum::Error),
}

/// Reads a body of at most `limit` bytes into one buffer, charging the buffer to `reading` before it
/// grows, as bytes arrive: a body without `Content-Length` costs what it has sent, never a guess, and
/// one that declares a large length and sends nothing costs nothing. While the buffer moves to a larger
/// one both are held, so a growth to `n` bytes is charged `2n`; the finished buffer is cut to its length.
async fn read_body(
    mut body: Body,
    limit: usize,
    reading: &super::Reading,
) -> Result<Bytes, ReadError> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(ReadError::Body)?.into_data() else {
            continue;
        };
        if buf.is_empty() && http_body::Body::is_end_stream(&body) {
            // The whole body in one piece (most small requests): kept as it came, no copy.
            if data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            if !reading.grow_to(data.len()) {
                return Err(ReadError::Memory);
            }
            return Ok(data);
        }
        let need = buf.len() + data.len();
        if need > limit {
            return Err(ReadError::TooLarge);
        }
        if need > buf.capacity() {
            let grown = need.max(buf.capacity() * 2).max(64 << 10).min(limit);
            if !reading.grow_to(grown.saturating_mul(2)) {
                return Err(ReadError::Memory);
            }
            buf.reserve_exact(grown - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    buf.shrink_to_fit();
    Ok(Bytes::from(buf))
}

fn refusal_response(ingest: &Ingest, ct: ContentType, refusal: &Refusal) -> Response {
    let message = refusal.to_string();
    if refusal.retryable() {
        let after = ingest.retry_after(Some(refusal));
        return error(
            ct,
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            &message,
            Some(after),
        );
    }
    let (status, code) = match refusal {
        Refusal::NoPipeline(_) => (StatusCode::NOT_FOUND, Code::Unimplemented),
        Refusal::Export { source, .. } => (source.http_status, source.grpc_code),
        Refusal::Chain(_) | Refusal::Timeout | Refusal::QueueFull(_) => {
            (StatusCode::BAD_REQUEST, Code::InvalidArgument)
        }
    };
    error(ct, status, code, &message, None)
}

/// A successful export response, with the partial success when there is one.
fn success(ct: ContentType, signal: Signal, partial: &PartialSuccess) -> Response {
    let body = match ct {
        ContentType::Protobuf => partial.response().encode_to_vec(),
        ContentType::Json => {
            let value = if partial.is_empty() {
                serde_json::json!({})
            } else {
                let field = signal.rejected_field();
                serde_json::json!({"partialSuccess": {
                    field: partial.rejected.to_string(),
                    "errorMessage": partial.message,
                }})
            };
            value.to_string().into_bytes()
        }
    };
    ([(header::CONTENT_TYPE, ct.header_value())], body).into_response()
}

/// An error response whose body is a `google.rpc.Status` in the request's content type.
fn error(
    ct: ContentType,
    status: StatusCode,
    code: Code,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> Response {
    let body = match ct {
        ContentType::Protobuf => tonic_types::Status {
            code: code as i32,
            message: message.to_string(),
            details: vec![],
        }
        .encode_to_vec(),
        ContentType::Json => serde_json::json!({"code": code as i32, "message": message})
            .to_string()
            .into_bytes(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ct.header_value()),
    );
    if let Some(after) = retry_after {
        // Retry-After has whole seconds; round up so that a client never comes back early.
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    (status, headers, body).into_response()
}
