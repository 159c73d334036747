//! Tests of the filter's stdout and stderr: lines into weir's log, within the filter's allowance.

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
            l.strip_prefix(r#"weir_filter_log_lines_suppressed_total{signal="traces",filter="f"} "#)
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
