//! Request bodies: content types, decompression within a size cap, and turning bytes into a [`Body`]:
//! protobuf is checked by the validating walk and kept as its bytes; JSON is decoded (and encoded to
//! protobuf once, later, by the pipeline).

use bytes::Bytes;
use weir_core::{Body, Signal};
use weir_wire::codec::Encoding;

/// A supported OTLP/HTTP body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (the OTLP JSON mapping).
    Json,
}

impl ContentType {
    /// Parses a `Content-Type` header, ignoring parameters such as `; charset=utf-8`.
    pub fn parse(header: Option<&str>) -> Option<Self> {
        let essence = header?.split(';').next()?.trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf")
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Some(ContentType::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(ContentType::Json)
        } else {
            None
        }
    }

    /// The header value for responses.
    pub fn header_value(self) -> &'static str {
        match self {
            ContentType::Protobuf => "application/x-protobuf",
            ContentType::Json => "application/json",
        }
    }
}

/// Why a body could not be read into a request: weir-wire's intake error (413 when
/// [`DecodeError::is_too_large`], 503 when [`DecodeError::is_over_budget`], 400 otherwise).
pub use weir_wire::intake::IntakeError as DecodeError;

/// Bodies larger than this are inflated, walked and decoded on the blocking pool, not on an async
/// worker (a JSON body of a few MiB takes tens of milliseconds to decode).
pub const BLOCKING_BYTES: usize = 256 << 10;

pub use weir_wire::intake::Prepared;

/// Inflates `body` (when `encoding` says so) within `limit` bytes, its buffer charged to `reading` as
/// it grows, then walks it (protobuf) or bounds it (JSON): everything before decoding, whose cost it
/// tells ([`weir_wire::intake::prepare`]).
pub fn prepare(
    signal: Signal,
    content_type: ContentType,
    encoding: Option<Encoding>,
    body: Bytes,
    limit: usize,
    reading: &crate::Reading,
) -> Result<Prepared, DecodeError> {
    let wire = body.len();
    weir_wire::intake::prepare(
        signal,
        content_type == ContentType::Json,
        encoding,
        body,
        limit,
        |n| reading.grow_to(wire + n),
    )
}

/// Turns a (decompressed) body into a request: protobuf walked and kept as bytes, JSON decoded.
pub fn decode(signal: Signal, content_type: ContentType, body: Bytes) -> Result<Body, DecodeError> {
    let json = content_type == ContentType::Json;
    weir_wire::intake::prepare(signal, json, None, body, usize::MAX, |_| true)?.into_body()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_with_parameters() {
        assert_eq!(
            ContentType::parse(Some("application/json; charset=utf-8")),
            Some(ContentType::Json)
        );
        assert_eq!(
            ContentType::parse(Some("Application/X-Protobuf")),
            Some(ContentType::Protobuf)
        );
        assert_eq!(ContentType::parse(Some("text/plain")), None);
        assert_eq!(ContentType::parse(None), None);
    }

    #[test]
    fn protobuf_stays_bytes_and_json_is_decoded() {
        let body = decode(Signal::Traces, ContentType::Protobuf, Bytes::new()).unwrap();
        assert!(body.as_encoded().is_some() && body.as_payload().is_none());
        let body = decode(Signal::Traces, ContentType::Json, Bytes::from_static(b"{}")).unwrap();
        assert!(body.as_encoded().is_none() && body.as_payload().is_some());
        assert!(matches!(
            decode(
                Signal::Traces,
                ContentType::Protobuf,
                Bytes::from_static(&[0xff])
            ),
            Err(DecodeError::Protobuf(_))
        ));
    }
}
