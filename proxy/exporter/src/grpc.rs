//! The OTLP/gRPC upstream client: tonic over one lazily connected HTTP/2 channel (`TCP_NODELAY`),
//! sending the pipeline's pre-encoded bytes through a pass-through codec so that nothing is encoded twice.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::ExportRequest;
use weir_core::ExportError;
use weir_core::PartialSuccess;
use weir_core::config::{Compression, OtlpExporterConfig, RetryConfig};
use weir_wire::response::ExportResponse;

/// An OTLP/gRPC exporter.
#[derive(Debug)]
pub struct GrpcExporter {
    client: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    timeout: Duration,
    retry: RetryConfig,
}

impl GrpcExporter {
    /// Builds the client; the connection is made on first use and re-made after failures.
    pub fn new(config: &OtlpExporterConfig) -> Result<Self, String> {
        let uri = config.uri()?;
        let channel = Endpoint::from(uri)
            .tcp_nodelay(true)
            .connect_timeout(config.timeout)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false)
            .connect_lazy();
        let mut client = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(4 << 20);
        if config.compression == Compression::Gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let mut metadata = MetadataMap::new();
        for (k, v) in &config.headers {
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("header name `{k}`"))?;
            let value =
                MetadataValue::try_from(v.as_str()).map_err(|_| format!("header `{k}` value"))?;
            metadata.insert(key, value);
        }
        Ok(Self {
            client,
            metadata,
            timeout: config.timeout,
            retry: config.retry.clone(),
        })
    }

    pub(super) fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// One attempt, bounded by the configured timeout and the time `left`.
    pub(super) async fn attempt(
        &self,
        request: &ExportRequest<'_>,
        left: Duration,
    ) -> Result<PartialSuccess, ExportError> {
        let timeout = self.timeout.min(left);
        let mut client = self.client.clone();
        let mut req = tonic::Request::new(request.body.clone());
        *req.metadata_mut() = self.metadata.clone();
        req.set_timeout(timeout);
        let path = PathAndQuery::from_static(request.signal.grpc_path());
        let call = async {
            client
                .ready()
                .await
                .map_err(|e| ExportError::unavailable(format!("upstream not ready: {e}")))?;
            client
                .unary(req, path, PassThroughCodec)
                .await
                .map_err(|s| ExportError::from_grpc(&s))
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(ExportError::unavailable(format!(
                "no answer within {timeout:?}"
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(resp)) => Ok(resp.into_inner().into()),
        }
    }
}

/// Sends already-encoded protobuf bytes and decodes any OTLP export response.
#[derive(Debug, Clone, Copy, Default)]
struct PassThroughCodec;

impl Codec for PassThroughCodec {
    type Encode = Bytes;
    type Decode = ExportResponse;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self {
        *self
    }
}

impl Encoder for PassThroughCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThroughCodec {
    type Item = ExportResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<ExportResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        prost::Message::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("bad response from upstream: {e}")))
    }
}
