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
mod tests {
    use super::*;
    use crate::allowance::LOG_LINES_PER_SECOND;
    use tokio::io::AsyncWriteExt;

    fn output(metrics: &Arc<Metrics>) -> Output {
        Output {
            filter: "f".into(),
            signal: Signal::Traces,
            allowance: Arc::default(),
            metrics: metrics.clone(),
        }
    }

    /// The messages `f` logged.
    fn logged(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .without_time()
            .with_ansi(false)
            .with_level(false)
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        // Each event reads `<message> filter="f" stream=... suppressed=0`: keep the message.
        text.lines()
            .map(|l| l.split_once(" filter=").map_or(l, |(m, _)| m).to_string())
            .collect()
    }

    #[test]
    fn a_line_split_across_writes_is_one_line_and_the_last_is_logged_when_the_instance_goes() {
        let metrics = Arc::new(Metrics::new());
        let lines = logged(|| {
            let out = LogStream::new(output(&metrics), false);
            for chunk in b"first line\nsecond line\n\nlast words".chunks(3) {
                out.0.write(chunk);
            }
            drop(out);
        });
        assert_eq!(lines, ["first line", "second line", "last words"]);
    }

    #[test]
    fn a_line_is_cut_at_its_limit_however_it_arrives() {
        let metrics = Arc::new(Metrics::new());
        let lines = logged(|| {
            let out = LogStream::new(output(&metrics), true);
            let long = vec![b'x'; 3 * MAX_LINE];
            out.0.write(&long[..MAX_LINE / 2]);
            out.0.write(&long[MAX_LINE / 2..]);
            out.0.write(b"\nnext\n");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "x".repeat(MAX_LINE));
        assert_eq!(lines[1], "next");
    }

    #[tokio::test]
    async fn every_line_of_a_large_write_is_logged_or_counted() {
        let metrics = Arc::new(Metrics::new());
        let mut out = LogStream::new(output(&metrics), false);
        // 500 lines of 40 bytes: one write of 20,000 bytes, well past one line's cut, then the same
        // again in writes of 7 bytes that split every line.
        let text: String = (0..250).map(|i| format!("{i:>38}\n")).collect();
        out.write_all(text.as_bytes()).await.unwrap();
        for chunk in text.as_bytes().chunks(7) {
            out.write_all(chunk).await.unwrap();
        }
        let suppressed: u64 = metrics
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"weir_filter_log_lines_suppressed_total{signal="traces",filter="f"} "#,
                )
            })
            .expect("the suppressed lines are counted")
            .parse()
            .unwrap();
        // At most two seconds' worth get through (the write may straddle a second).
        assert!(
            (500 - 2 * LOG_LINES_PER_SECOND..=500 - LOG_LINES_PER_SECOND).contains(&suppressed),
            "{suppressed} suppressed"
        );
    }
}
