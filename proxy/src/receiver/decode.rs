//! Request bodies: content types, gzip within a size cap, and decoding into a [`Payload`].

use std::io::Read;

use crate::pipeline::{Payload, Signal};

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

/// Inflates a gzip body, refusing without allocating more than `limit + 1` bytes when it expands past
/// `limit` (a gzip bomb stops here). Concatenated gzip members are accepted.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
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
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

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
    fn gunzip_round_trips_and_caps_bombs() {
        let data = vec![b'a'; 10_000];
        assert_eq!(gunzip(&gzip(&data), 10_000).unwrap(), data);
        // 64 MiB of zeros compresses to ~64 KiB; refused at 1 MiB without inflating it all.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 100 << 10);
        assert!(matches!(
            gunzip(&bomb, 1 << 20),
            Err(DecodeError::TooLarge { limit }) if limit == 1 << 20
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(DecodeError::Gzip(_))
        ));
    }
}
