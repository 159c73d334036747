//! The body of a gRPC export request as tonic reads it, with two jobs that tonic cannot do for weir:
//!
//! - **Charging.** Every byte tonic buffers is charged to the request's memory ([`crate::Reading`])
//!   as it arrives, twice (tonic's buffer grows by doubling); past weir's memory limit the body fails
//!   with UNAVAILABLE and a retry hint. A client cannot drive the charge down: it is what it sent.
//! - **Inflating in weir.** tonic inflates a compressed message whole, up to the message limit, before
//!   any handler sees it: 32 KiB of gzip became 32 MiB nobody had charged. For a request whose
//!   `grpc-encoding` weir supports, [`take_encoding`] removes the header and this body clears the
//!   compressed flag (1) of its frame, noting it ([`ChargedBody::compressed`]), so tonic hands the
//!   compressed bytes on as they are and the handler inflates them with
//!   [`weir_wire::codec::decompress_with`], charging the buffer before it grows. A frame sent
//!   uncompressed under a `grpc-encoding` (flag 0, which the gRPC specification allows) is not
//!   inflated; any other flag is left for tonic to refuse.
//! - **One message.** An `Export` call is unary: a second message is refused (INVALID_ARGUMENT) rather
//!   than read and charged, since tonic would read and drop it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use weir_wire::codec::Encoding;

use crate::Reading;
use weir_core::telemetry::RefuseReason;

/// The request's `grpc-encoding`, taken off the request for weir to apply (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestEncoding(pub Encoding);

/// Removes a supported `grpc-encoding` (gzip, zstd) from `headers` and returns it; an unsupported
/// one is left for tonic to refuse (UNIMPLEMENTED), and `identity` is the same as none.
pub fn take_encoding(headers: &mut http::HeaderMap) -> Option<RequestEncoding> {
    let value = headers.get("grpc-encoding")?.to_str().ok()?;
    let encoding = match value.trim() {
        "identity" => None,
        v => Some(Encoding::parse(v).ok()??),
    };
    headers.remove("grpc-encoding");
    encoding.map(RequestEncoding)
}

/// Where the body is in the gRPC framing: each message is a flag byte, a 4-byte big-endian length,
/// then that many bytes.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// At `at` bytes into a frame's 5-byte prefix, with the length bytes seen so far.
    Prefix { at: u8, len: u32 },
    /// Inside a message, with this many bytes left.
    Message(u64),
}

/// A request body that charges what it yields, allows one message, and, when `clear_flags`, clears
/// the compressed flag of its frame (see the module docs).
pub struct ChargedBody<B> {
    inner: Pin<Box<B>>,
    reading: Reading,
    clear_flags: bool,
    framing: Framing,
    /// Frames begun (a unary call has one).
    frames: u32,
    compressed: Arc<AtomicBool>,
    refused: Option<Refused>,
}

/// How a [`ChargedBody`] refuses: counted once, answered with a status tonic passes on.
pub struct Refused {
    /// Counts the refusal.
    pub count: Box<dyn Fn(RefuseReason) + Send + Sync>,
    /// The retry hint for a memory refusal.
    pub retry_after: std::time::Duration,
}

impl<B> ChargedBody<B> {
    /// `inner`, charged to `reading`; with `clear_flags` (the request's encoding was taken by
    /// [`take_encoding`]) a compressed frame's flag is cleared. `refused` counts and words a refusal.
    pub fn new(inner: B, reading: Reading, clear_flags: bool, refused: Refused) -> Self {
        Self {
            inner: Box::pin(inner),
            reading,
            clear_flags,
            framing: Framing::Prefix { at: 0, len: 0 },
            frames: 0,
            compressed: Arc::new(AtomicBool::new(false)),
            refused: Some(refused),
        }
    }

    /// Set once a frame arrived with its compressed flag: the handler inflates its message.
    pub fn compressed(&self) -> Arc<AtomicBool> {
        self.compressed.clone()
    }

    /// Walks `data` through the framing; returns it with a compressed frame's flag cleared (when
    /// `clear_flags`), or `Err` at the start of a second message.
    fn reframe(&mut self, data: Bytes) -> Result<Bytes, ()> {
        let mut copy: Option<BytesMut> = None;
        let mut i = 0usize;
        while i < data.len() {
            match self.framing {
                Framing::Message(left) => {
                    let n = left.min((data.len() - i) as u64);
                    i += n as usize;
                    self.framing = if n == left {
                        Framing::Prefix { at: 0, len: 0 }
                    } else {
                        Framing::Message(left - n)
                    };
                }
                Framing::Prefix { at, len } => {
                    let b = data[i];
                    if at == 0 {
                        self.frames += 1;
                        if self.frames > 1 {
                            return Err(());
                        }
                        if b == 1 {
                            self.compressed.store(true, Ordering::Relaxed);
                            if self.clear_flags {
                                copy.get_or_insert_with(|| BytesMut::from(&data[..]))[i] = 0;
                            }
                        }
                    }
                    let len = if at == 0 {
                        len
                    } else {
                        (len << 8) | u32::from(b)
                    };
                    i += 1;
                    self.framing = if at == 4 {
                        if len == 0 {
                            Framing::Prefix { at: 0, len: 0 }
                        } else {
                            Framing::Message(u64::from(len))
                        }
                    } else {
                        Framing::Prefix { at: at + 1, len }
                    };
                }
            }
        }
        Ok(copy.map_or(data, BytesMut::freeze))
    }

    /// The status for a refusal, counted the first time only.
    fn refuse(&mut self, reason: RefuseReason) -> Box<dyn std::error::Error + Send + Sync> {
        let retry_after = self
            .refused
            .as_ref()
            .map_or(std::time::Duration::from_secs(1), |r| r.retry_after);
        if let Some(r) = self.refused.take() {
            (r.count)(reason);
        }
        Box::new(match reason {
            RefuseReason::MemoryLimit => {
                unavailable(crate::Busy::MemoryLimit.message(), retry_after)
            }
            _ => tonic::Status::invalid_argument(
                "an Export call carries one message; a second one was sent",
            ),
        })
    }
}

impl<B> Body for ChargedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match self.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(other) => return Poll::Ready(Some(Ok(other))),
        };
        let Ok(data) = self.reframe(data) else {
            return Poll::Ready(Some(Err(self.refuse(RefuseReason::Decode))));
        };
        if !self.reading.add(data.remaining().saturating_mul(2)) {
            return Poll::Ready(Some(Err(self.refuse(RefuseReason::MemoryLimit))));
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// UNAVAILABLE with a retry hint: what a request gets that weir could take later.
pub(crate) fn unavailable(message: &str, retry_after: std::time::Duration) -> tonic::Status {
    use tonic_types::StatusExt;
    tonic::Status::with_error_details(
        tonic::Code::Unavailable,
        message,
        tonic_types::ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, msg: &[u8]) -> Vec<u8> {
        let mut f = vec![flag];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    }

    fn body() -> ChargedBody<http_body_util::Empty<Bytes>> {
        ChargedBody::new(
            http_body_util::Empty::new(),
            Reading { memory: None },
            true,
            Refused {
                count: Box::new(|_| {}),
                retry_after: std::time::Duration::from_secs(1),
            },
        )
    }

    /// `wire` through a fresh body in chunks of `split`: the bytes out, or where it refused.
    fn through(wire: &[u8], split: usize) -> (Result<Vec<u8>, usize>, bool) {
        let mut b = body();
        let mut out = Vec::new();
        for (n, chunk) in wire.chunks(split).enumerate() {
            match b.reframe(Bytes::copy_from_slice(chunk)) {
                Ok(d) => out.extend_from_slice(&d),
                Err(()) => return (Err(n), b.compressed.load(Ordering::Relaxed)),
            }
        }
        (Ok(out), b.compressed.load(Ordering::Relaxed))
    }

    #[test]
    fn a_compressed_frames_flag_is_cleared_however_the_bytes_are_split() {
        // Message bytes that look like flags and prefixes stay as they are.
        let wire = frame(1, &[1, 1, 1, 0, 0, 0, 5, 7]);
        let want = frame(0, &[1, 1, 1, 0, 0, 0, 5, 7]);
        for split in [1, 2, 3, 5, 7, 64, wire.len()] {
            assert_eq!(
                through(&wire, split),
                (Ok(want.clone()), true),
                "split {split}"
            );
        }
        // Sent uncompressed under a grpc-encoding: left alone, and not inflated.
        let plain = frame(0, &[9; 300]);
        assert_eq!(through(&plain, 7), (Ok(plain.clone()), false));
        // Any other flag is tonic's to refuse.
        let odd = frame(2, &[9; 3]);
        assert_eq!(through(&odd, 1), (Ok(odd.clone()), false));
    }

    #[test]
    fn a_second_message_is_refused_where_it_starts() {
        let mut wire = frame(0, &[1; 10]);
        let first = wire.len();
        wire.extend(frame(0, &[2; 10]));
        for split in [1, 4, 64] {
            let (out, _) = through(&wire, split);
            assert_eq!(out, Err(first / split), "split {split}");
        }
        // An empty first message ends where its prefix does.
        let mut wire = frame(0, &[]);
        wire.extend(frame(0, &[]));
        assert_eq!(through(&wire, 1).0, Err(5));
    }

    #[test]
    fn only_supported_encodings_are_taken() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-encoding", "gzip".parse().unwrap());
        assert_eq!(take_encoding(&mut h), Some(RequestEncoding(Encoding::Gzip)));
        assert!(h.get("grpc-encoding").is_none());
        h.insert("grpc-encoding", "identity".parse().unwrap());
        assert_eq!(take_encoding(&mut h), None);
        assert!(h.get("grpc-encoding").is_none());
        h.insert("grpc-encoding", "snappy".parse().unwrap());
        assert_eq!(take_encoding(&mut h), None);
        assert!(h.get("grpc-encoding").is_some(), "left for tonic to refuse");
    }
}
