//! What a receiver does with a request body between reading it and admitting it: inflate it (its
//! buffer charged as it grows), walk it (protobuf) or bound it (JSON), and tell what the request will
//! cost in memory, all before anything is decoded. The receivers run this; so does the `hostile_body`
//! fuzz target, which holds the cost to what decoding really allocates.

use bytes::Bytes;

use crate::codec::{self, DecompressError, Encoding};
use crate::walk::{self, WalkError};
use crate::{Body, Encoded, Payload, Signal};

/// Why a body was refused before admission.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Larger than the limit, inflated or not.
    #[error("request exceeds {limit} bytes after decompression")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Inflating failed or was refused its memory.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
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

impl IntakeError {
    /// Larger than the limit, on the wire or inflated (413 / RESOURCE_EXHAUSTED).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            IntakeError::TooLarge { .. }
                | IntakeError::Decompress(DecompressError::TooLarge { .. })
        )
    }

    /// Inflating was refused its memory: weir is full for now (503 / UNAVAILABLE).
    pub fn is_over_budget(&self) -> bool {
        matches!(
            self,
            IntakeError::Decompress(DecompressError::OverBudget { .. })
        )
    }
}

/// How many bytes of memory a request is charged once its body is read and inflated (`body` bytes)
/// and before anything is decoded: the body, its re-encoding for the upstream (or the protobuf a JSON
/// body becomes), and `decoded`, the bound on what decoding it into structs allocates
/// ([`walk::Counts::decoded_bytes`] for protobuf, [`walk::json_decoded_bound`] for JSON). A bound
/// from the bytes' own shape, not a ratio: two bytes of an empty message decode to a struct of a
/// hundred.
pub fn cost(body: usize, decoded: usize) -> u64 {
    (body as u64)
        .saturating_mul(2)
        .saturating_add(decoded as u64)
}

/// A request body read, inflated and checked, not decoded yet: what it will cost is known.
#[derive(Debug)]
pub enum Prepared {
    /// Protobuf, walked: it stays bytes unless a filter needs it decoded.
    Protobuf(Encoded),
    /// JSON, with the bound on what decoding it allocates.
    Json {
        /// The request.
        signal: Signal,
        /// The (inflated) body.
        raw: Bytes,
        /// [`walk::json_decoded_bound`] of it.
        bound: usize,
    },
}

impl Prepared {
    /// The request's memory charge (see [`cost`]).
    pub fn cost(&self) -> u64 {
        match self {
            Prepared::Protobuf(e) => cost(e.len(), e.counts().decoded_bytes),
            Prepared::Json { raw, bound, .. } => cost(raw.len(), *bound),
        }
    }

    /// The inflated body's size.
    pub fn len(&self) -> usize {
        match self {
            Prepared::Protobuf(e) => e.len(),
            Prepared::Json { raw, .. } => raw.len(),
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The request: protobuf as its bytes, JSON decoded (and its ids checked).
    pub fn into_body(self) -> Result<Body, IntakeError> {
        Ok(match self {
            Prepared::Protobuf(e) => Body::from_encoded(e),
            Prepared::Json { signal, raw, .. } => {
                let payload = Payload::decode_json(signal, &raw)?;
                payload.check_ids().map_err(IntakeError::JsonModel)?;
                Body::from_payload(payload)
            }
        })
    }
}

/// Inflates `body` (when `encoding` says so) within `limit` bytes, asking `grow(n)` before what it
/// holds beyond the body grows to `n` bytes (see [`codec::decompress_with`]), then walks it
/// (protobuf) or bounds it (JSON).
pub fn prepare(
    signal: Signal,
    json: bool,
    encoding: Option<Encoding>,
    body: Bytes,
    limit: usize,
    grow: impl FnMut(usize) -> bool,
) -> Result<Prepared, IntakeError> {
    let raw = match encoding {
        Some(encoding) => Bytes::from(codec::decompress_with(encoding, &body, limit, grow)?),
        None if body.len() > limit => return Err(IntakeError::TooLarge { limit }),
        None => body,
    };
    Ok(if json {
        Prepared::Json {
            signal,
            bound: walk::json_decoded_bound(&raw).saturating_mul(match signal {
                Signal::Profiles => crate::profiles::JSON_DECODE_COPIES,
                _ => 1,
            }),
            raw,
        }
    } else {
        Prepared::Protobuf(Encoded::parse(signal, raw)?)
    })
}
