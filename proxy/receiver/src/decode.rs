//! Request bodies: content types, decompression within a size cap, and turning bytes into a [`Body`]:
//! protobuf is checked by the validating walk and kept as its bytes; JSON is decoded (and encoded to
//! protobuf once, later, by the pipeline).

use bytes::Bytes;
use weir_core::{Body, Signal};
use weir_wire::codec::{self, DecompressError, Encoding};
use weir_wire::intake::IntakeError;
use weir_wire::walk::WalkError;

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

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decompressed body exceeds the limit.
    #[error("request exceeds {limit} bytes after decompression")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Inflating the body needs more memory than weir's limit has room for now.
    #[error(
        "inflating the request needs {bytes} bytes, more than weir's memory limit has room for; retry later"
    )]
    OverBudget {
        /// The output buffer refused.
        bytes: usize,
    },
    /// The gzip or zstd stream is corrupt.
    #[error("invalid {encoding} body: {source}")]
    Compressed {
        /// `gzip` or `zstd`.
        encoding: &'static str,
        /// What the decoder said.
        source: std::io::Error,
    },
    /// Not a valid protobuf export request.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] WalkError),
    /// JSON decoding failed.
    #[error("invalid OTLP/JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Decoded JSON that the OTLP data model refuses (an id of the wrong length).
    #[error("invalid OTLP/JSON: {0}")]
    JsonModel(WalkError),
}

impl From<DecompressError> for DecodeError {
    fn from(e: DecompressError) -> Self {
        match e {
            DecompressError::TooLarge { limit } => DecodeError::TooLarge { limit },
            DecompressError::OverBudget { bytes } => DecodeError::OverBudget { bytes },
            DecompressError::Corrupt { encoding, source } => {
                DecodeError::Compressed { encoding, source }
            }
        }
    }
}

/// Bodies larger than this are inflated, walked and decoded on the blocking pool, not on an async
/// worker (a JSON body of a few MiB takes tens of milliseconds to decode).
pub const BLOCKING_BYTES: usize = 256 << 10;

pub use weir_wire::intake::Prepared;

impl From<IntakeError> for DecodeError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::TooLarge { limit } => DecodeError::TooLarge { limit },
            IntakeError::Decompress(d) => d.into(),
            IntakeError::Protobuf(w) => DecodeError::Protobuf(w),
            IntakeError::Json(j) => DecodeError::Json(j),
            IntakeError::JsonModel(w) => DecodeError::JsonModel(w),
        }
    }
}

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
    Ok(weir_wire::intake::prepare(
        signal,
        content_type == ContentType::Json,
        encoding,
        body,
        limit,
        |n| reading.grow_to(wire + n),
    )?)
}

/// Inflates a body within `limit` bytes (see [`weir_wire::codec::decompress`]).
pub fn decompress(encoding: Encoding, body: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    Ok(Bytes::from(codec::decompress(encoding, body, limit)?))
}

/// Turns a (decompressed) body into a request: protobuf walked and kept as bytes, JSON decoded.
pub fn decode(signal: Signal, content_type: ContentType, body: Bytes) -> Result<Body, DecodeError> {
    let json = content_type == ContentType::Json;
    let prepared = weir_wire::intake::prepare(signal, json, None, body, usize::MAX, |_| true)?;
    Ok(prepared.into_body()?)
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
