//! The one gRPC codec weir uses wherever OTLP messages travel as bytes: the receiver reads requests
//! as the bytes they are (a zero-copy split of tonic's buffer) and writes its export response; the
//! test harness and the load generator send pre-encoded bytes and read responses. tonic's own
//! `ProstCodec` would decode every request into structs, which is what weir avoids.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use weir_wire::response::ExportResponse;

/// What the codec carries each way: raw [`Bytes`], or an [`ExportResponse`] (the shape every OTLP
/// signal's response shares).
pub trait GrpcMessage: Send + Sized + 'static {
    /// Writes the message into tonic's buffer.
    fn encode_to(self, dst: &mut EncodeBuf<'_>) -> Result<(), Status>;
    /// Reads the message from tonic's buffer.
    fn decode_from(src: &mut DecodeBuf<'_>) -> Result<Self, Status>;
}

impl GrpcMessage for Bytes {
    fn encode_to(self, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(self.len());
        dst.put(self);
        Ok(())
    }

    fn decode_from(src: &mut DecodeBuf<'_>) -> Result<Self, Status> {
        Ok(src.copy_to_bytes(src.remaining()))
    }
}

impl GrpcMessage for ExportResponse {
    fn encode_to(self, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        self.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }

    fn decode_from(src: &mut DecodeBuf<'_>) -> Result<Self, Status> {
        ExportResponse::decode(src)
            .map_err(|e| Status::internal(format!("decoding the response: {e}")))
    }
}

/// A codec that encodes `E` and decodes `D`, each raw bytes or an export response: a server is
/// `RawCodec<ExportResponse, Bytes>`, a client sending bytes `RawCodec<Bytes, ExportResponse>` (or
/// `RawCodec` to see the response's bytes).
pub struct RawCodec<E = Bytes, D = Bytes>(PhantomData<fn(E) -> D>);

impl<E, D> RawCodec<E, D> {
    /// The codec.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<E, D> Default for RawCodec<E, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, D> Clone for RawCodec<E, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E, D> Copy for RawCodec<E, D> {}

impl<E, D> std::fmt::Debug for RawCodec<E, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawCodec")
    }
}

impl<E: GrpcMessage, D: GrpcMessage> Codec for RawCodec<E, D> {
    type Encode = E;
    type Decode = D;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self {
        *self
    }
}

impl<E: GrpcMessage, D: GrpcMessage> Encoder for RawCodec<E, D> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode_to(dst)
    }
}

impl<E: GrpcMessage, D: GrpcMessage> Decoder for RawCodec<E, D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        D::decode_from(src).map(Some)
    }
}
