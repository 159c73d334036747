//! The little WASI (preview 2) that components from other languages need to start: clocks, random, and
//! stdout/stderr, which go into weir's log. No filesystem (no preopened directory), no environment or
//! arguments, no network (TCP, UDP and name lookup refused).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::allowance::Allowance;
use weir_core::Signal;
use weir_core::telemetry::Metrics;

/// Where a filter's stdout and stderr go: weir's log, within the filter's line allowance.
#[derive(Clone)]
pub struct Output {
    /// The filter's name.
    pub filter: Arc<str>,
    /// Its pipeline.
    pub signal: Signal,
    /// Its log-line allowance, shared with `host.log`.
    pub allowance: Arc<Allowance>,
    /// Where suppressed lines are counted.
    pub metrics: Arc<Metrics>,
}

/// A sandboxed WASI context for one filter instance.
pub fn context(output: Output) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(LogStream {
            output: output.clone(),
            stderr: false,
        })
        .stderr(LogStream {
            output,
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
    output: Output,
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
        let o = &self.output;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some(suppressed) = o.allowance.log_line() else {
                o.metrics.filter_log_suppressed(o.signal, &o.filter);
                continue;
            };
            if self.stderr {
                tracing::warn!(filter = &*o.filter, stream = "stderr", suppressed, "{line}");
            } else {
                tracing::info!(filter = &*o.filter, stream = "stdout", suppressed, "{line}");
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
