//! The little WASI (preview 2) that components from other languages need to start: clocks, random, and
//! stdout/stderr, which go into weir's log. No filesystem (no preopened directory), no environment or
//! arguments, no network (TCP, UDP and name lookup refused).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// A sandboxed WASI context for one filter instance.
pub fn context(filter: Arc<str>) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(LogStream {
            filter: filter.clone(),
            stderr: false,
        })
        .stderr(LogStream {
            filter,
            stderr: true,
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// stdout or stderr of a filter, as log lines.
#[derive(Clone)]
struct LogStream {
    filter: Arc<str>,
    stderr: bool,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let text = String::from_utf8_lossy(&buf[..buf.len().min(4096)]);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if self.stderr {
                tracing::warn!(filter = &*self.filter, stream = "stderr", "{line}");
            } else {
                tracing::info!(filter = &*self.filter, stream = "stdout", "{line}");
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
