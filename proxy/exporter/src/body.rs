//! An upstream request's body as it goes on the wire, prepared once and shared by every attempt.
//!
//! Merged client requests are sent as their parts, one HTTP/2 DATA frame each, not copied into one
//! buffer; compression streams the parts through one encoder into one buffer, once per upstream
//! request, so a retry sends the same bytes without compressing again.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use weir_core::{Encoded, ExportError, Signal};
use weir_wire::codec::{self, Encoding};

/// What an exporter sends for one upstream request: the chunks, in order, and how they are encoded.
#[derive(Debug, Clone)]
pub struct Prepared {
    chunks: Vec<Bytes>,
    len: usize,
    encoding: Option<Encoding>,
}

/// Bodies at least this large are compressed off the async workers (a 1000-span request takes
/// milliseconds), so that the requests sharing a worker are not held up meanwhile.
const COMPRESS_OFF_WORKER: usize = 256 << 10;

impl Prepared {
    /// [`Prepared::new`], with large bodies compressed, and profiles parts merged, on the blocking
    /// pool.
    pub async fn prepare(
        parts: &[Encoded],
        compression: Option<(Encoding, i32)>,
    ) -> Result<Self, ExportError> {
        let len: usize = parts.iter().map(Encoded::len).sum();
        if !decodes_to_merge(parts) && (compression.is_none() || len < COMPRESS_OFF_WORKER) {
            return Self::new(parts, compression);
        }
        let owned = parts.to_vec();
        match tokio::task::spawn_blocking(move || Self::new(&owned, compression)).await {
            Ok(p) => p,
            // The blocking pool is gone (the runtime is shutting down): do it here.
            Err(_) => Self::new(parts, compression),
        }
    }

    /// The parts' protobuf concatenated (merged, for profiles: see [`join`]), compressed with
    /// `compression` (encoding, level) when set.
    pub fn new(
        parts: &[Encoded],
        compression: Option<(Encoding, i32)>,
    ) -> Result<Self, ExportError> {
        let raw = join(parts)?;
        Ok(match compression {
            None => {
                let len = raw.iter().map(Bytes::len).sum();
                Self {
                    chunks: raw,
                    len,
                    encoding: None,
                }
            }
            Some((encoding, level)) => {
                let compressed = codec::compress(encoding, level, &raw);
                Self {
                    len: compressed.len(),
                    chunks: vec![compressed],
                    encoding: Some(encoding),
                }
            }
        })
    }

    /// No body, for a kind that does not send one ([`crate::kind::Export::sends_body`]).
    pub fn none() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            encoding: None,
        }
    }

    /// Bytes on the wire (after compression).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True without any bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoding, `None` when uncompressed.
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }

    /// The body as it is (OTLP/HTTP).
    pub fn body(&self) -> Chunks {
        Chunks::new(self.chunks.iter().cloned())
    }

    /// The body as one gRPC length-prefixed message: the 5-byte prefix (compressed flag, length),
    /// then the chunks.
    pub fn grpc_message(&self) -> Chunks {
        let mut prefix = [0u8; 5];
        prefix[0] = u8::from(self.encoding.is_some());
        prefix[1..].copy_from_slice(&u32::try_from(self.len).unwrap_or(u32::MAX).to_be_bytes());
        Chunks::new(
            std::iter::once(Bytes::copy_from_slice(&prefix)).chain(self.chunks.iter().cloned()),
        )
    }
}

/// The parts of one upstream request as the chunks of one export request of their signal.
///
/// Protobuf merges a repeated field's occurrences by appending, so the requests of the three stable
/// signals become one request by concatenation, without decoding. A profiles request also carries a
/// dictionary that its profiles index into, which concatenation would merge without moving the
/// indices: several profiles parts are decoded and merged by [`weir_wire::profiles::merge`].
pub fn join(parts: &[Encoded]) -> Result<Vec<Bytes>, ExportError> {
    if !decodes_to_merge(parts) {
        return Ok(parts.iter().map(|p| p.bytes().clone()).collect());
    }
    // Every part was walked at intake (or written by weir and checksummed), so it decodes: the walk
    // refuses what prost refuses. Were one not to, sending the parts concatenated would point the
    // later parts' indices at the first's entries: the request fails for good instead (a durable
    // queue keeps it aside as dead letters).
    weir_wire::profiles::merge(parts.iter().map(|p| &p.bytes()[..]))
        .map(|merged| vec![Bytes::from(merged)])
        .map_err(|e| ExportError {
            retryable: false,
            retry_after: None,
            grpc_code: tonic::Code::Internal,
            http_status: http::StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("profiles parts did not decode to be merged: {e}"),
        })
}

/// Whether `parts` are merged by decoding them (several profiles parts) rather than concatenated.
fn decodes_to_merge(parts: &[Encoded]) -> bool {
    parts.len() > 1 && parts[0].signal() == Signal::Profiles
}

/// An HTTP body of chunks already in memory, each sent as its own frame.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    len: u64,
}

impl Chunks {
    /// A body of `chunks`, in order (empty chunks are left out).
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        Self { chunks, len }
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.chunks.pop_front();
        if let Some(c) = &next {
            self.len -= c.len() as u64;
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use weir_core::{Payload, Signal};

    fn part(n: u8) -> Encoded {
        Encoded::trusted(Signal::Traces, Bytes::from(vec![n; 100]), 1)
    }

    #[tokio::test]
    async fn parts_go_out_as_they_are_or_compressed_once() {
        let parts = [part(1), part(2)];
        let plain = Prepared::new(&parts, None).unwrap();
        assert_eq!(plain.len(), 200);
        let bytes = plain.body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..100], &[1; 100][..]);
        assert_eq!(&bytes[100..], &[2; 100][..]);
        let grpc = plain.grpc_message().collect().await.unwrap().to_bytes();
        assert_eq!(&grpc[..5], &[0, 0, 0, 0, 200]);
        for e in [Encoding::Gzip, Encoding::Zstd] {
            let c = Prepared::new(&parts, Some((e, 1))).unwrap();
            assert_eq!(c.encoding(), Some(e));
            let framed = c.grpc_message().collect().await.unwrap().to_bytes();
            assert_eq!(framed[0], 1);
            let len = u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
            assert_eq!(len, framed.len() - 5);
            let inflated = codec::decompress(e, &framed[5..], 1000).unwrap();
            assert_eq!(inflated, bytes.to_vec());
        }
    }

    #[test]
    fn concatenated_requests_are_one_request() {
        let a = Encoded::encode(
            &Payload::decode_json(
                Signal::Logs,
                br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}]}]}]}"#,
            )
            .unwrap(),
        );
        let p = Prepared::new(&[a.clone(), a], None).unwrap();
        let whole: Vec<u8> = p.chunks.iter().flat_map(|c| c.to_vec()).collect();
        let merged = Payload::decode_protobuf(Signal::Logs, &whole).unwrap();
        assert_eq!(merged.item_count(), 2);
        assert_eq!(merged.resource_count(), 2);
    }

    #[test]
    fn profiles_parts_are_merged_with_one_dictionary() {
        // Two requests whose profiles name their sample type by string index 1: "cpu" in one,
        // "alloc" in the other.
        let request = |ty: &str| {
            let json = format!(
                r#"{{"resourceProfiles":[{{"scopeProfiles":[{{"profiles":[{{
                    "sampleType":{{"typeStrindex":1}},"samples":[{{"values":[1]}}]}}]}}]}}],
                    "dictionary":{{"stringTable":["","{ty}"]}}}}"#
            );
            Encoded::encode(&Payload::decode_json(Signal::Profiles, json.as_bytes()).unwrap())
        };
        let p = Prepared::new(&[request("cpu"), request("alloc")], None).unwrap();
        assert_eq!(p.chunks.len(), 1, "one merged request, not two parts");
        let Payload::Profiles(merged) =
            Payload::decode_protobuf(Signal::Profiles, &p.chunks[0]).unwrap()
        else {
            unreachable!()
        };
        let strings = &merged.dictionary.as_ref().unwrap().string_table;
        let types: Vec<&str> = merged
            .resource_profiles
            .iter()
            .flat_map(|r| &r.scope_profiles)
            .flat_map(|s| &s.profiles)
            .map(|p| strings[p.sample_type.unwrap().type_strindex as usize].as_str())
            .collect();
        assert_eq!(types, ["cpu", "alloc"]);
        // One part goes as it is.
        let one = request("cpu");
        assert_eq!(
            Prepared::new(std::slice::from_ref(&one), None)
                .unwrap()
                .chunks,
            [one.bytes().clone()]
        );
    }
}
