//! Request bodies: content types, gzip within a size cap, and decoding into a [`Payload`].

use weir_wire::gzip::GzipError;

use weir_core::{Payload, Signal};

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
    /// The gzip stream is corrupt.
    #[error("invalid gzip body: {0}")]
    Gzip(std::io::Error),
    /// Protobuf decoding failed.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// JSON decoding failed.
    #[error("invalid OTLP/JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<GzipError> for DecodeError {
    fn from(e: GzipError) -> Self {
        match e {
            GzipError::TooLarge { limit } => DecodeError::TooLarge { limit },
            GzipError::Corrupt(e) => DecodeError::Gzip(e),
        }
    }
}

/// Inflates a gzip body within `limit` bytes (see [`weir_wire::gzip::gunzip`]).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    Ok(weir_wire::gzip::gunzip(body, limit)?)
}

/// Decodes a (decompressed) body.
pub fn decode(
    signal: Signal,
    content_type: ContentType,
    body: &[u8],
) -> Result<Payload, DecodeError> {
    Ok(match content_type {
        ContentType::Protobuf => Payload::decode_protobuf(signal, body)?,
        ContentType::Json => Payload::decode_json(signal, body)?,
    })
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
}
