//! The counting sink: an OTLP/gRPC `TraceService` that decodes every request,
//! counts its spans and answers success.
//!
//! Two decoders, chosen with `--sink-decode`:
//! * `full` (default): the generated `TraceServiceServer`, decoding the whole
//!   `ExportTraceServiceRequest` into its Rust types, as a real collector would.
//! * `count`: a hand-written service whose prost message keeps only the framing
//!   down to each span (`resource_spans` / `scope_spans` / `spans`, each span
//!   kept as an undecoded byte slice). It still rejects malformed framing but
//!   costs a small fraction of a full decode, which leaves more of a small
//!   machine's CPU to weir.
//!
//! Both accept gzip-compressed requests. The sink runs on its own tokio runtime
//! (threads named `sink-worker`, so their CPU time can be told apart from the
//! client's) and listens on `127.0.0.1:0` with `TCP_NODELAY` set on every
//! accepted connection.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::ValueEnum;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// Thread name of the sink runtime's workers.
pub const THREAD_NAME: &str = "sink-worker";

/// Largest request the sink accepts (tonic's default of 4 MiB is too small for
/// big `--spans-per-request` values).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How the sink decodes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkDecode {
    /// Decode the whole request into the generated Rust types.
    Full,
    /// Decode only the framing down to each span, and count spans.
    Count,
}

impl SinkDecode {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkDecode::Full => "full",
            SinkDecode::Count => "count",
        }
    }
}

/// Counters shared between the sink service and the measuring code.
#[derive(Debug, Default)]
pub struct SinkCounters {
    spans: AtomicU64,
    requests: AtomicU64,
    leaks: AtomicU64,
}

impl SinkCounters {
    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    /// Export requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// String values received so far that still hold a secret the load planted
    /// ([`crate::payload::LEAK_MARKERS`]); counted only when the sink decodes (`full`).
    pub fn leaks(&self) -> u64 {
        self.leaks.load(Ordering::Relaxed)
    }
}

struct CountingService {
    counters: Arc<SinkCounters>,
    delay: Duration,
}

#[tonic::async_trait]
impl TraceService for CountingService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let leaks = crate::payload::leaks(request.get_ref());
        if leaks > 0 {
            self.counters.leaks.fetch_add(leaks, Ordering::Relaxed);
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.counters
            .spans
            .fetch_add(spans as u64, Ordering::Relaxed);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A running sink. Must be dropped (or [`Sink::shutdown`]) outside any tokio runtime.
pub struct Sink {
    addr: SocketAddr,
    counters: Arc<SinkCounters>,
    shutdown: Option<oneshot::Sender<()>>,
    runtime: Option<Runtime>,
}

impl Sink {
    /// Starts the sink on `127.0.0.1:0` with `threads` runtime worker threads, answering each request
    /// after `delay`.
    pub fn start(threads: usize, decode: SinkDecode, delay: Duration) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .context("building the sink runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding the sink on 127.0.0.1:0")?;
        let addr = listener.local_addr().context("sink local address")?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

        let counters = Arc::new(SinkCounters::default());
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let mut server = Server::builder().tcp_nodelay(true);
        let stopped = async {
            let _ = shutdown_rx.await;
        };
        let serve = match decode {
            SinkDecode::Full => {
                let service = TraceServiceServer::new(CountingService {
                    counters: Arc::clone(&counters),
                    delay,
                })
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES);
                let serve = server
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, stopped);
                Box::pin(serve) as BoxFuture<(), tonic::transport::Error>
            }
            SinkDecode::Count => {
                let service = SpanCountingServer {
                    counters: Arc::clone(&counters),
                    delay,
                };
                let serve = server
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, stopped);
                Box::pin(serve)
            }
        };
        runtime.spawn(async move {
            if let Err(e) = serve.await {
                eprintln!("loadgen: sink server failed: {e}");
            }
        });

        Ok(Self {
            addr,
            counters,
            shutdown: Some(shutdown),
            runtime: Some(runtime),
        })
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sink's counters.
    pub fn counters(&self) -> Arc<SinkCounters> {
        Arc::clone(&self.counters)
    }

    /// Stops the server and its runtime (bounded: at most ~2 s).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ExportTraceServiceRequest` reduced to the framing around each span; prost
/// skips every other field.
#[derive(Clone, PartialEq, prost::Message)]
struct SpanCountRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<SpanCountResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SpanCountResourceSpans {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<SpanCountScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SpanCountScopeSpans {
    /// Each span's encoding, not decoded (zero-copy slices of the request).
    #[prost(bytes = "bytes", repeated, tag = "2")]
    spans: Vec<Bytes>,
}

impl SpanCountRequest {
    fn span_count(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    }
}

const SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The `count` sink: a gRPC service answering `TraceService/Export` with
/// [`SpanCountRequest`] as the request type.
#[derive(Clone)]
struct SpanCountingServer {
    counters: Arc<SinkCounters>,
    delay: Duration,
}

impl NamedService for SpanCountingServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl Service<http::Request<Body>> for SpanCountingServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let export = SpanCountingExport {
            counters: Arc::clone(&self.counters),
            delay: self.delay,
        };
        Box::pin(async move {
            if request.uri().path() != EXPORT_PATH {
                return Ok(Status::unimplemented("only TraceService/Export").into_http());
            }
            let codec = ProstCodec::<ExportTraceServiceResponse, SpanCountRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES);
            Ok(grpc.unary(export, request).await)
        })
    }
}

struct SpanCountingExport {
    counters: Arc<SinkCounters>,
    delay: Duration,
}

impl UnaryService<SpanCountRequest> for SpanCountingExport {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<SpanCountRequest>) -> Self::Future {
        let spans = request.get_ref().span_count() as u64;
        let (counters, delay) = (Arc::clone(&self.counters), self.delay);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            counters.spans.fetch_add(spans, Ordering::Relaxed);
            counters.requests.fetch_add(1, Ordering::Relaxed);
            Ok(Response::new(ExportTraceServiceResponse::default()))
        })
    }
}
