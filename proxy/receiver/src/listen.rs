//! Accepting and serving client connections at the edge, with `limits.connections`: a cap on open
//! connections per listener, a deadline for a request's headers and one for its body, HTTP/2 stream and
//! keep-alive limits, and an optional maximum connection age. The OTLP/HTTP receiver and the admin API
//! are served by [`serve_http`]; the OTLP/gRPC receiver by tonic over [`Listener::incoming`] (tonic
//! applies the HTTP/2 limits itself), and request bodies of both are bounded by [`read_deadline`].
//!
//! A connection past the cap is accepted and closed at once, and counted: a client sees its connection
//! close (and retries elsewhere or later) instead of waiting in the kernel's backlog for a slot.
//!
//! With TLS, the handshake runs in the connection's own task (never in the accept loop, so one slow
//! client cannot hold up the next), under the header deadline, with the server configuration current
//! when the client connected: a certificate reloaded meanwhile applies to the next connection, and
//! connections already open are not disturbed. A failed handshake is counted
//! (`weir_tls_handshake_failures_total`). What the client's certificate says ([`ConnInfo`]) goes with
//! every request on the connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use weir_core::config::ConnectionLimits;
use weir_core::telemetry::{InFlightGuard, Metrics};
use weir_tls::rustls::ServerConfig;
use weir_tls::tokio_rustls::{TlsAcceptor, server::TlsStream};
use weir_tls::{ClientIdentity, Reloading};

/// A TCP listener that keeps at most `max_per_listener` connections open, optionally with TLS.
pub struct Listener {
    inner: TcpListener,
    name: &'static str,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    tls: Option<Arc<Reloading<ServerConfig>>>,
    handshake_timeout: Duration,
}

/// A connection accepted within the cap whose TLS handshake (if any) is still to come.
pub struct Pending {
    io: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    open: InFlightGuard,
    tls: Option<Arc<ServerConfig>>,
    /// Accept plus the header deadline: the TLS handshake and the first request's headers by then.
    deadline: tokio::time::Instant,
    name: &'static str,
    metrics: Arc<Metrics>,
}

/// Who is on the other end of a connection: its address and, over mTLS, its certificate's names.
/// Every request on the connection carries it as an extension (tonic's `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The verified client certificate's identity, when the client presented one.
    pub identity: Option<Arc<ClientIdentity>>,
    /// Set by the first request on the connection (see [`Served`]).
    pub served: Served,
}

/// Whether a connection has carried a request yet. Until it has, it lives under the header deadline
/// counted from its accept: TLS handshake, protocol detection, the HTTP/2 handshake and the first
/// request's headers all within `header_read_timeout`, so a socket that sends nothing (or too little)
/// is closed, and cannot hold a place under `max_per_listener` (issue 20: silent sockets outlived the
/// deadline and locked new clients out, the kubelet's probes on the admin port too).
#[derive(Debug, Clone, Default)]
pub struct Served(Arc<std::sync::atomic::AtomicBool>);

impl Served {
    /// A request arrived on the connection.
    pub fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// An established connection: the stream, its slot under the cap and its place in the open gauge, both
/// given back when it is dropped.
pub struct Conn {
    io: Io,
    info: ConnInfo,
    /// Until the first request: the header deadline (see [`Served`]).
    first_request: Option<Pin<Box<tokio::time::Sleep>>>,
    _permit: OwnedSemaphorePermit,
    _open: InFlightGuard,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Listener {
    /// Wraps `inner` (named `name` in the metrics: `otlp-grpc`, `otlp-http`, `admin`).
    pub fn new(
        inner: TcpListener,
        name: &'static str,
        limits: &ConnectionLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner,
            name,
            permits: Arc::new(Semaphore::new(limits.max_per_listener.max(1))),
            metrics,
            tls: None,
            handshake_timeout: limits.header_read_timeout,
        }
    }

    /// Serves TLS with `config`'s current server configuration.
    pub fn with_tls(mut self, config: Arc<Reloading<ServerConfig>>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The next connection within the cap (ones past it are closed and counted).
    pub async fn accept(&self) -> Pending {
        loop {
            let (io, peer) = match self.inner.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine. Back off briefly so that a full descriptor table does
                    // not spin.
                    tracing::debug!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.metrics.connection_rejected(self.name);
                drop(io);
                continue;
            };
            let _ = io.set_nodelay(true);
            let open = self.metrics.connection_opened(self.name);
            return Pending {
                io,
                peer,
                permit,
                open,
                tls: self.tls.as_ref().map(|t| t.current()),
                deadline: tokio::time::Instant::now() + self.handshake_timeout,
                name: self.name,
                metrics: self.metrics.clone(),
            };
        }
    }

    /// The established connections as a stream, for tonic's `serve_with_incoming`: each handshake
    /// runs in a task of its own, and the stream yields connections as they complete.
    pub fn incoming(self) -> impl futures::Stream<Item = io::Result<Conn>> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let pending = tokio::select! {
                    p = self.accept() => p,
                    // tonic stopped serving.
                    () = tx.closed() => return,
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(conn) = pending.establish().await {
                        let _ = tx.send(Ok(conn)).await;
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

impl Pending {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Completes the TLS handshake, if the listener has TLS, within the header deadline; `None` (the
    /// connection closed, the failure counted) when it fails.
    pub async fn establish(self) -> Option<Conn> {
        let info = |identity| ConnInfo {
            peer: self.peer,
            identity,
            served: Served::default(),
        };
        let (io, info) = match self.tls {
            None => (Io::Plain(self.io), info(None)),
            Some(config) => {
                let accept = TlsAcceptor::from(config).accept(self.io);
                match tokio::time::timeout_at(self.deadline, accept).await {
                    Ok(Ok(tls)) => {
                        let identity = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                            .and_then(|leaf| ClientIdentity::from_der(leaf))
                            .map(Arc::new);
                        (Io::Tls(Box::new(tls)), info(identity))
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(listener = self.name, peer = %self.peer, error = %e, "TLS handshake failed");
                        self.metrics.tls_handshake_failed(self.name);
                        return None;
                    }
                    Err(_) => {
                        tracing::debug!(listener = self.name, peer = %self.peer, "TLS handshake timed out");
                        self.metrics.tls_handshake_failed(self.name);
                        return None;
                    }
                }
            }
        };
        Some(Conn {
            io,
            info,
            first_request: Some(Box::pin(tokio::time::sleep_until(self.deadline))),
            _permit: self.permit,
            _open: self.open,
        })
    }
}

impl Conn {
    /// Who is on the other end.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }
}

macro_rules! io_dispatch {
    ($self:expr, $io:ident => $e:expr) => {
        match &mut $self.io {
            Io::Plain($io) => $e,
            Io::Tls($io) => $e,
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // The server reads whenever it waits for the client, so the deadline is polled (and its
        // timer wakes this read) for as long as no request has come.
        if self.first_request.is_some() && self.info.served.is_set() {
            self.first_request = None;
        }
        if let Some(deadline) = &mut self.first_request
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request within the header deadline",
            )));
        }
        io_dispatch!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        io_dispatch!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io_dispatch!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io_dispatch!(self, io => Pin::new(io).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        io_dispatch!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Serves `router` over HTTP/1.1 and h2c on `listener` until `shutdown` completes, then lets the open
/// connections finish what they are doing (HTTP/2 GOAWAY, HTTP/1.1 close after the current request)
/// and returns once they are closed. Each connection has `limits`' header deadline, HTTP/2 limits and
/// maximum age; handlers see the peer as axum's `ConnectInfo<SocketAddr>` and the whole [`ConnInfo`]
/// as an extension.
pub async fn serve_http(
    listener: Listener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout);
    let builder = Arc::new(builder);
    let (close_tx, close_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let pending = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let peer = pending.peer();
        let router = router.clone();
        let (builder, mut close, age) =
            (builder.clone(), close_rx.clone(), limits.max_connection_age);
        connections.spawn(async move {
            let Some(conn) = pending.establish().await else {
                return;
            };
            let info = conn.info().clone();
            let service = hyper::service::service_fn(move |mut req: http::Request<_>| {
                info.served.mark();
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(info.clone());
                router
                    .clone()
                    .oneshot(req.map(axum::body::Body::new::<hyper::body::Incoming>))
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
            tokio::pin!(conn);
            let aged = async {
                match age {
                    Some(age) => tokio::time::sleep(age).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(aged);
            let mut closing = false;
            loop {
                tokio::select! {
                    served = conn.as_mut() => {
                        if let Err(e) = served {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut aged, if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = close.changed(), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        });
        // Reap the connections that are done, so that the set holds only open ones.
        while connections.try_join_next().is_some() {}
    }
    let _ = close_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// The body did not arrive within `limits.connections.body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// `body` with a deadline: once `timeout` has passed since its first poll, it fails with
/// [`BodyTimeout`] (for gRPC, as a DEADLINE_EXCEEDED status tonic hands back as it is) instead of
/// waiting for a client that trickles bytes.
pub fn read_deadline<B>(body: B, timeout: Duration) -> Deadline<B> {
    Deadline {
        body: Box::pin(body),
        timeout,
        sleep: None,
    }
}

/// The start of [`BodyTimeout`]'s message, by which the gRPC receiver recognizes the status.
pub const BODY_TIMEOUT_MESSAGE: &str = "the request body did not arrive within";

/// See [`read_deadline`].
pub struct Deadline<B> {
    body: Pin<Box<B>>,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            let status = tonic::Status::deadline_exceeded(BodyTimeout(timeout).to_string());
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        self.body.as_mut().poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that sends one frame and then nothing, ever: a client trickling its message.
    struct Stalled(bool);

    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                    b"\x0a",
                )))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_at_its_deadline_as_deadline_exceeded() {
        let err = read_deadline(Stalled(false), Duration::from_secs(30))
            .collect()
            .await
            .expect_err("the deadline ends the read");
        let status = err
            .downcast_ref::<tonic::Status>()
            .expect("a status tonic hands back as it is");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().starts_with(BODY_TIMEOUT_MESSAGE));
    }

    #[tokio::test]
    async fn a_body_that_arrives_in_time_is_whole() {
        let body = http_body_util::Full::new(Bytes::from_static(b"all of it"));
        let got = read_deadline(body, Duration::from_secs(30))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&got[..], b"all of it");
    }
}
