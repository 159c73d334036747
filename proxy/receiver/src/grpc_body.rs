//! The body of a gRPC export request as tonic reads it, with two jobs that tonic cannot do for weir:
//!
//! - **Charging.** Every byte tonic buffers is charged to the request's memory ([`crate::Reading`])
//!   as it arrives, twice (tonic's buffer grows by doubling); past weir's memory limit the body fails
//!   with UNAVAILABLE and a retry hint. A client cannot drive the charge down: it is what it sent.
//! - **Inflating in weir.** tonic inflates a compressed message whole, up to the message limit, before
//!   any handler sees it: 32 KiB of gzip became 32 MiB nobody had charged. For a request whose
//!   `grpc-encoding` weir supports, [`take_encoding`] removes the header and this body clears each
//!   frame's compressed flag, so tonic hands the compressed bytes on as they are, and the handler
//!   inflates them with [`weir_wire::codec::decompress_with`], charging the buffer before it grows.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use weir_wire::codec::Encoding;

use crate::Reading;

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

/// A request body that charges what it yields and, when `clear_flags`, clears the compressed flag of
/// every frame (see the module docs).
pub struct ChargedBody<B> {
    inner: Pin<Box<B>>,
    reading: Reading,
    clear_flags: bool,
    framing: Framing,
    retry_after: std::time::Duration,
}

impl<B> ChargedBody<B> {
    /// `inner`, charged to `reading`; with `clear_flags` (the request's encoding was taken by
    /// [`take_encoding`]) each frame's compressed flag is cleared.
    pub fn new(
        inner: B,
        reading: Reading,
        clear_flags: bool,
        retry_after: std::time::Duration,
    ) -> Self {
        Self {
            inner: Box::pin(inner),
            reading,
            clear_flags,
            framing: Framing::Prefix { at: 0, len: 0 },
            retry_after,
        }
    }

    /// Walks `data` through the framing; returns it with every frame's flag cleared.
    fn reframe(&mut self, data: Bytes) -> Bytes {
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
                    if at == 0 && b != 0 {
                        copy.get_or_insert_with(|| BytesMut::from(&data[..]))[i] = 0;
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
        copy.map_or(data, BytesMut::freeze)
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
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(other) => return Poll::Ready(Some(Ok(other))),
        };
        if !self.reading.add(data.remaining().saturating_mul(2)) {
            let status =
                crate::grpc::unavailable(crate::Busy::MemoryLimit.message(), self.retry_after);
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        if self.clear_flags {
            data = self.reframe(data);
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
            std::time::Duration::from_secs(1),
        )
    }

    #[test]
    fn every_frames_flag_is_cleared_however_the_bytes_are_split() {
        // Message bytes that look like flags must stay as they are.
        let mut wire = frame(1, &[1, 1, 1]);
        wire.extend(frame(1, &[]));
        wire.extend(frame(1, &[7; 300]));
        let mut want = frame(0, &[1, 1, 1]);
        want.extend(frame(0, &[]));
        want.extend(frame(0, &[7; 300]));
        for split in [1, 2, 3, 5, 7, 64, wire.len()] {
            let mut b = body();
            let mut out = Vec::new();
            for chunk in wire.chunks(split) {
                out.extend_from_slice(&b.reframe(Bytes::copy_from_slice(chunk)));
            }
            assert_eq!(out, want, "split every {split} bytes");
        }
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
