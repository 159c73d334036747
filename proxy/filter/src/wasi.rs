//! The little WASI (preview 2) that components from other languages need to start: clocks, random, and
//! stdout/stderr, which go into weir's log. No filesystem (no preopened directory), no environment or
//! arguments, no network (TCP, UDP and name lookup refused).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
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
        .stdout(LogStream::new(output.clone(), false))
        .stderr(LogStream::new(output, true))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// The longest line of a filter's stdout or stderr that weir logs, in bytes; the rest of it is cut.
const MAX_LINE: usize = 4096;

/// stdout or stderr of a filter, as log lines. Clones (one per stream handle the guest opens) share one
/// unterminated line, so a line a guest's buffered stdout splits across writes is logged as one line.
#[derive(Clone)]
struct LogStream(Arc<Lines>);

/// One stream's state: where its lines go, and the line not yet ended by a newline.
struct Lines {
    output: Output,
    stderr: bool,
    partial: Mutex<Vec<u8>>,
}

impl LogStream {
    fn new(output: Output, stderr: bool) -> Self {
        Self(Arc::new(Lines {
            output,
            stderr,
            partial: Mutex::new(Vec::new()),
        }))
    }
}

impl Lines {
    /// Logs one line, or counts it as suppressed past the filter's allowance; blank lines are skipped.
    fn emit(&self, line: &[u8]) {
        if line.trim_ascii().is_empty() {
            return;
        }
        let o = &self.output;
        let Some(suppressed) = o.allowance.log_line() else {
            o.metrics.filter_log_suppressed(o.signal, &o.filter);
            return;
        };
        let line = String::from_utf8_lossy(&line[..line.len().min(MAX_LINE)]);
        let line = line.trim_end();
        if self.stderr {
            tracing::warn!(filter = &*o.filter, stream = "stderr", suppressed, "{line}");
        } else {
            tracing::info!(filter = &*o.filter, stream = "stdout", suppressed, "{line}");
        }
    }

    /// Takes one write: every line it ends is logged or counted, however large the write; what follows
    /// its last newline waits for the next write (at most MAX_LINE bytes of it: a line is cut there).
    fn write(&self, buf: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if partial.is_empty() {
                self.emit(&rest[..end]);
            } else {
                let room = MAX_LINE.saturating_sub(partial.len());
                partial.extend_from_slice(&rest[..end.min(room)]);
                self.emit(&partial);
                partial.clear();
            }
            rest = &rest[end + 1..];
        }
        let room = MAX_LINE.saturating_sub(partial.len());
        partial.extend_from_slice(&rest[..rest.len().min(room)]);
    }
}

impl Drop for Lines {
    /// An instance's last words: a line it never ended is logged when the instance goes.
    fn drop(&mut self) {
        let partial = std::mem::take(self.partial.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.emit(&partial);
    }
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
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;
