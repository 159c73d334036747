//! Turns a run's raw counters into figures, prints them for people and as one
//! JSON object for scripts, and decides whether the run passed.

use crate::load::{ErrorCount, LoadOutcome, PhaseStats};
use crate::procstat;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// How the run was set up (echoed in the report).
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `weir`, `rotel`, `otelcol` or `otelcol-tuned` (spawned child; the `weir_*` figures are then that
    /// proxy's), `target` (already running) or `direct` (no proxy).
    pub mode: &'static str,
    /// What the proxy was asked to compress its upstream requests with (`default`, `gzip`, ...).
    pub upstream_compression: &'static str,
    /// Paced request rate, if any (requests/s over all senders).
    pub rate: Option<f64>,
    /// `grpc` or `http`.
    pub protocol: &'static str,
    pub target: SocketAddr,
    pub weir_pid: Option<u32>,
    pub weir_bin: Option<String>,
    pub concurrency: usize,
    pub connections: usize,
    pub spans_per_request: usize,
    pub variants: usize,
    pub mean_body_bytes: f64,
    /// What the spans carry (`plain`, `secrets`).
    pub mix: &'static str,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: u64,
    pub allow_loss: bool,
    pub allow_refusals: bool,
}

/// What was observed after the window closed.
#[derive(Debug, Clone, Default)]
pub struct EndState {
    /// Spans the sink received over the whole run, after waiting for it to catch up.
    pub sink_total_spans: Option<u64>,
    /// Export requests the sink received over the whole run.
    pub sink_total_requests: Option<u64>,
    /// How long we waited for the sink to catch up with the acknowledged spans.
    pub drain_wait: Duration,
    /// weir's CPU time once the sink had caught up (or the wait gave up), in clock ticks.
    pub weir_cpu_ticks_drained: Option<u64>,
    pub weir_peak_rss_kib: Option<u64>,
    pub weir_rss_kib: Option<u64>,
    /// Set if weir had exited before the end of the run.
    pub weir_exited_early: Option<String>,
    /// String values the sink received with a planted secret still in them (`--mix secrets`, a
    /// decoding sink).
    pub sink_leaks: Option<u64>,
}

/// Whether a mix plants secrets, so that leaks are worth a line.
fn info_mix_plants(mix: &str) -> bool {
    mix == "secrets"
}

/// Every figure of a run.
pub struct Report {
    info: RunInfo,
    end: EndState,
    window_s: f64,
    stop_reason: &'static str,
    warmup: PhaseStats,
    measured: PhaseStats,
    latency_us: LatencyFigures,
    sink_window_spans: Option<u64>,
    /// Spans acknowledged before the window that had not reached the sink when it opened: work the
    /// proxy still had to do for the warm-up.
    backlog_spans: Option<u64>,
    weir_cpu_s: Option<f64>,
    /// weir's CPU from the window's end until the sink had caught up.
    weir_cpu_drain_s: Option<f64>,
    loadgen_cpu_s: Option<f64>,
    client_cpu_s: f64,
    sink_cpu_s: f64,
}

struct LatencyFigures {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
}

fn ticks_delta(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) => Some(procstat::ticks_to_duration(a.saturating_sub(b)).as_secs_f64()),
        _ => None,
    }
}

impl Report {
    pub fn new(info: RunInfo, outcome: LoadOutcome, end: EndState) -> Self {
        let h = &outcome.latency;
        let latency_us = LatencyFigures {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        };
        let (before, after) = (outcome.before, outcome.after);
        Self {
            window_s: outcome.window.as_secs_f64(),
            stop_reason: outcome.stop_reason.as_str(),
            latency_us,
            sink_window_spans: match (before.sink_spans, after.sink_spans) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            },
            backlog_spans: before
                .sink_spans
                .map(|sink| outcome.warmup.spans_acked.saturating_sub(sink)),
            weir_cpu_s: ticks_delta(before.weir_cpu_ticks, after.weir_cpu_ticks),
            weir_cpu_drain_s: ticks_delta(after.weir_cpu_ticks, end.weir_cpu_ticks_drained),
            loadgen_cpu_s: ticks_delta(before.self_cpu_ticks, after.self_cpu_ticks),
            client_cpu_s: procstat::ticks_to_duration(
                after
                    .client_cpu_ticks
                    .saturating_sub(before.client_cpu_ticks),
            )
            .as_secs_f64(),
            sink_cpu_s: procstat::ticks_to_duration(
                after.sink_cpu_ticks.saturating_sub(before.sink_cpu_ticks),
            )
            .as_secs_f64(),
            warmup: outcome.warmup,
            measured: outcome.measured,
            info,
            end,
        }
    }

    /// `count / window`.
    fn per_s(&self, count: u64) -> f64 {
        self.per_s_f64(count as f64)
    }

    /// `value / window`, for figures that are not counts.
    fn per_s_f64(&self, value: f64) -> f64 {
        if self.window_s > 0.0 {
            value / self.window_s
        } else {
            0.0
        }
    }

    fn acked_total(&self) -> u64 {
        self.warmup.spans_acked + self.measured.spans_acked
    }

    /// weir's CPU-seconds per million spans, counting all the work for what it acknowledged in the
    /// window: its CPU from the window's start until the sink had received everything acknowledged by
    /// the window's end, over the spans delivered in that time (those acknowledged in the window, and
    /// the warm-up's backlog). For a proxy that answers after delivering, as weir does by default, the
    /// drain and the backlog are nil and this is its CPU in the window per acknowledged span; one that
    /// acknowledges first (a batch processor, a durable queue) may take in faster than it delivers, and
    /// then its window alone would leave part of its work out.
    fn cpu_per_million_delivered(&self) -> Option<f64> {
        let cpu = self.weir_cpu_s? + self.weir_cpu_drain_s?;
        // Only when the sink did catch up: otherwise the work is not all done.
        if self.end.sink_total_spans? < self.acked_total() {
            return None;
        }
        let spans = self.measured.spans_acked + self.backlog_spans?;
        (spans > 0).then(|| cpu / spans as f64 * 1e6)
    }

    fn spans_per_weir_cpu_s(&self) -> Option<f64> {
        self.weir_cpu_s
            .filter(|&s| s > 0.0)
            .map(|s| self.measured.spans_acked as f64 / s)
    }

    /// Reasons the run failed; empty if it passed.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.measured.ok == 0 {
            problems.push("no request succeeded in the measured window".to_owned());
        }
        // With --allow-refusals, retryable refusals are weir doing its job under overload.
        let failed = |p: &PhaseStats| {
            if self.info.allow_refusals {
                p.failed - p.refused
            } else {
                p.failed
            }
        };
        if failed(&self.measured) > 0 {
            problems.push(format!(
                "{} measured requests failed",
                group(failed(&self.measured))
            ));
        }
        if failed(&self.warmup) > 0 {
            problems.push(format!(
                "{} warm-up requests failed",
                group(failed(&self.warmup))
            ));
        }
        if let Some(sink) = self.end.sink_total_spans {
            let acked = self.acked_total();
            if sink < acked && !self.info.allow_loss {
                problems.push(format!(
                    "the sink received {} spans but {} were acknowledged ({} lost)",
                    group(sink),
                    group(acked),
                    group(acked - sink)
                ));
            }
        }
        if let Some(exit) = &self.end.weir_exited_early {
            problems.push(format!("weir exited before the end of the run: {exit}"));
        }
        problems
    }

    /// The human-readable report.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let info = &self.info;
        let m = &self.measured;
        let mode = match info.mode {
            "weir" | "rotel" | "otelcol" | "otelcol-tuned" | "otelcol-redaction" => format!(
                "through {} (pid {}), upstream compression {}",
                info.mode,
                info.weir_pid.map_or("?".to_owned(), |p| p.to_string()),
                info.upstream_compression
            ),
            "target" => match info.weir_pid {
                Some(pid) => format!("through a running weir (pid {pid})"),
                None => "through a running weir (no --pid: no CPU/RSS figures)".to_owned(),
            },
            _ => "direct to the sink, no weir (baseline)".to_owned(),
        };
        let protocol = if info.protocol == "http" {
            "OTLP/HTTP protobuf"
        } else {
            "OTLP/gRPC"
        };
        let _ = writeln!(out, "weir loadgen: {mode}, {protocol} to {}", info.target);
        let connections = if info.protocol == "http" {
            "HTTP/1.1 keep-alive pool".to_owned()
        } else {
            format!("{} connections", info.connections)
        };
        let _ = writeln!(
            out,
            "  load       {} concurrent requests over {connections}, {} spans/request ({} mix), \
             {} variants of {:.1} KiB on average",
            info.concurrency,
            info.spans_per_request,
            info.mix,
            info.variants,
            info.mean_body_bytes / 1024.0
        );
        let _ = writeln!(
            out,
            "  window     {:.2} s after {:.1} s warm-up, ended by {}",
            self.window_s,
            info.warmup.as_secs_f64(),
            self.stop_reason
        );
        let _ = writeln!(
            out,
            "  requests   ok {} ({:.1}/s)   failed {} (of which {} refused, retryable)",
            group(m.ok),
            self.per_s(m.ok),
            group(m.failed),
            group(m.refused)
        );
        let sink = match self.sink_window_spans {
            Some(s) => format!("{} ({}/s)", group(s), group(self.per_s(s).round() as u64)),
            None => "n/a (no sink)".to_owned(),
        };
        let _ = writeln!(
            out,
            "  spans      acked {} ({}/s)   sink {sink}   rejected {}",
            group(m.spans_acked),
            group(self.per_s(m.spans_acked).round() as u64),
            group(m.spans_rejected)
        );
        let mib = m.bytes_sent as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            out,
            "  payload    {mib:.1} MiB ({:.1} MiB/s)",
            self.per_s_f64(mib)
        );
        let l = &self.latency_us;
        let _ = writeln!(
            out,
            "  latency    p50 {}   p90 {}   p99 {}   p99.9 {}   max {}   (mean {})",
            ms(l.p50 as f64),
            ms(l.p90 as f64),
            ms(l.p99 as f64),
            ms(l.p999 as f64),
            ms(l.max as f64),
            ms(l.mean)
        );
        let weir = match self.weir_cpu_s {
            Some(cpu) => {
                let per_cpu = self
                    .spans_per_weir_cpu_s()
                    .map_or("n/a".to_owned(), |v| group(v.round() as u64));
                format!(
                    "cpu {cpu:.2} s ({:.2} cores)   {per_cpu} spans per cpu-second   peak RSS {}   RSS at end {}",
                    self.per_s_f64(cpu),
                    mib_of_kib(self.end.weir_peak_rss_kib),
                    mib_of_kib(self.end.weir_rss_kib)
                )
            }
            None if info.mode == "direct" => "n/a (no weir in --direct mode)".to_owned(),
            None if info.weir_pid.is_none() => "n/a (no --pid)".to_owned(),
            None => "n/a (could not read its /proc entries)".to_owned(),
        };
        let _ = writeln!(out, "  weir       {weir}");
        let _ = writeln!(
            out,
            "  loadgen    cpu {} (client threads {:.2} s, sink threads {:.2} s)",
            self.loadgen_cpu_s
                .map_or("n/a".to_owned(), |s| format!("{s:.2} s")),
            self.client_cpu_s,
            self.sink_cpu_s
        );
        let delivery = match self.end.sink_total_spans {
            Some(sink) => format!(
                "sink total {} spans in {} requests vs acked total {} (warm-up included; waited {:.2} s{})",
                group(sink),
                self.end.sink_total_requests.map_or("?".to_owned(), group),
                group(self.acked_total()),
                self.end.drain_wait.as_secs_f64(),
                match self.weir_cpu_drain_s {
                    Some(cpu) if cpu > 0.0 => format!(", weir using {cpu:.2} s of CPU meanwhile"),
                    _ => String::new(),
                }
            ),
            None => "not checked (no sink)".to_owned(),
        };
        let _ = writeln!(
            out,
            "  warm-up    ok {}   failed {}",
            group(self.warmup.ok),
            group(self.warmup.failed)
        );
        let _ = writeln!(out, "  delivery   {delivery}");
        if let Some(leaks) = self.end.sink_leaks
            && info_mix_plants(self.info.mix)
        {
            let _ = writeln!(
                out,
                "  leaks      {} string values reached the sink with a planted secret in them",
                group(leaks)
            );
        }
        if let (Some(backlog), Some(per_million)) =
            (self.backlog_spans, self.cpu_per_million_delivered())
        {
            let _ = writeln!(
                out,
                "  through    {per_million:.2} CPU-s per million spans from the window's start until the sink \
                 had them all ({} not yet delivered from the warm-up when the window opened)",
                group(backlog)
            );
        }
        write_errors(&mut out, "errors", &m.errors);
        if !self.warmup.errors.is_empty() {
            write_errors(&mut out, "warm-up errors", &self.warmup.errors);
        }
        let problems = self.problems();
        if problems.is_empty() {
            let _ = writeln!(out, "result: PASS");
        } else {
            let _ = writeln!(out, "result: FAIL: {}", problems.join("; "));
        }
        out
    }

    /// All figures as one JSON object.
    pub fn json(&self) -> Value {
        let info = &self.info;
        let m = &self.measured;
        let l = &self.latency_us;
        let errors = |errors: &BTreeMap<String, ErrorCount>| -> Value {
            errors
                .iter()
                .map(|(kind, e)| (kind.clone(), json!(e.count)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let rss_mib = |kib: Option<u64>| kib.map(|k| k as f64 / 1024.0);
        let setup = json!({
            "mode": info.mode,
            "upstream_compression": info.upstream_compression,
            "rate": info.rate,
            "protocol": info.protocol,
            "target": info.target.to_string(),
            "weir_pid": info.weir_pid,
            "weir_bin": info.weir_bin,
            "concurrency": info.concurrency,
            "connections": info.connections,
            "spans_per_request": info.spans_per_request,
            "variants": info.variants,
            "mean_request_bytes": info.mean_body_bytes,
            "mix": info.mix,
            "warmup_s": info.warmup.as_secs_f64(),
            "duration_s": info.duration.as_secs_f64(),
            "max_requests": info.max_requests,
            "window_s": self.window_s,
            "stop_reason": self.stop_reason,
        });
        let throughput = json!({
            "requests_ok": m.ok,
            "requests_failed": m.failed,
            "requests_refused": m.refused,
            "requests_per_s": self.per_s(m.ok),
            "spans_sent": m.spans_sent,
            "spans_acked": m.spans_acked,
            "spans_rejected": m.spans_rejected,
            "acked_spans_per_s": self.per_s(m.spans_acked),
            "sink_spans": self.sink_window_spans,
            "sink_spans_per_s": self.sink_window_spans.map(|s| self.per_s(s)),
            "bytes_sent": m.bytes_sent,
            "bytes_per_s": self.per_s(m.bytes_sent),
            "latency_us": {
                "p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999,
                "max": l.max, "mean": l.mean,
            },
        });
        let resources = json!({
            "weir_cpu_s": self.weir_cpu_s,
            "weir_cpu_drain_s": self.weir_cpu_drain_s,
            "backlog_spans_at_window_start": self.backlog_spans,
            "weir_cpu_per_million_delivered": self.cpu_per_million_delivered(),
            "weir_cpu_cores": self.weir_cpu_s.map(|c| self.per_s_f64(c)),
            "spans_per_weir_cpu_s": self.spans_per_weir_cpu_s(),
            "weir_peak_rss_mib": rss_mib(self.end.weir_peak_rss_kib),
            "weir_rss_mib": rss_mib(self.end.weir_rss_kib),
            "loadgen_cpu_s": self.loadgen_cpu_s,
            "loadgen_client_cpu_s": self.client_cpu_s,
            "loadgen_sink_cpu_s": self.sink_cpu_s,
            "clock_ticks_per_s": procstat::clock_ticks_per_sec(),
        });
        let problems = self.problems();
        let checks = json!({
            "warmup_requests_ok": self.warmup.ok,
            "warmup_requests_failed": self.warmup.failed,
            "acked_spans_total": self.acked_total(),
            "sink_spans_total": self.end.sink_total_spans,
            "sink_requests_total": self.end.sink_total_requests,
            "sink_leaks": self.end.sink_leaks,
            "drain_wait_s": self.end.drain_wait.as_secs_f64(),
            "errors": errors(&m.errors),
            "warmup_errors": errors(&self.warmup.errors),
            "weir_exited_early": self.end.weir_exited_early,
            "passed": problems.is_empty(),
            "problems": problems,
        });
        let mut all = serde_json::Map::new();
        for part in [setup, throughput, resources, checks] {
            if let Value::Object(fields) = part {
                all.extend(fields);
            }
        }
        Value::Object(all)
    }
}

fn write_errors(out: &mut String, title: &str, errors: &BTreeMap<String, ErrorCount>) {
    if errors.is_empty() {
        let _ = writeln!(out, "  {title:<10} none");
        return;
    }
    let _ = writeln!(out, "  {title}:");
    for (kind, e) in errors {
        let _ = writeln!(out, "    {:>10} x {kind}: {}", group(e.count), e.sample);
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms(micros: f64) -> String {
    format!("{:.3} ms", micros / 1000.0)
}

fn mib_of_kib(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_owned(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

/// `1234567` -> `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOutcome, Sample, StopReason};

    fn sample(weir_cpu_s: f64, sink_spans: u64) -> Sample {
        Sample {
            weir_cpu_ticks: Some((weir_cpu_s * procstat::clock_ticks_per_sec() as f64) as u64),
            self_cpu_ticks: Some(0),
            client_cpu_ticks: 0,
            sink_cpu_ticks: 0,
            sink_spans: Some(sink_spans),
        }
    }

    fn phase(ok: u64, spans_acked: u64) -> PhaseStats {
        PhaseStats {
            ok,
            spans_sent: spans_acked,
            spans_acked,
            ..PhaseStats::default()
        }
    }

    /// A proxy that acknowledges before it delivers: 100,000 spans acknowledged in the warm-up, 60,000
    /// of them at the sink when the window opens; 800,000 acknowledged in the window, 500,000 delivered
    /// in it; 8 CPU-s in the window and 2 more until the sink has all 900,000.
    fn report(sink_total: u64) -> Report {
        let outcome = LoadOutcome {
            warmup: phase(100, 100_000),
            measured: phase(800, 800_000),
            latency: hdrhistogram::Histogram::new(3).unwrap(),
            window: Duration::from_secs(10),
            stop_reason: StopReason::Duration,
            before: sample(1.0, 60_000),
            after: sample(9.0, 560_000),
        };
        let end = EndState {
            sink_total_spans: Some(sink_total),
            sink_total_requests: Some(900),
            drain_wait: Duration::from_secs(3),
            weir_cpu_ticks_drained: sample(11.0, 0).weir_cpu_ticks,
            ..EndState::default()
        };
        let info = RunInfo {
            mode: "otelcol",
            upstream_compression: "gzip",
            rate: None,
            protocol: "grpc",
            target: "127.0.0.1:4317".parse().unwrap(),
            weir_pid: Some(1),
            weir_bin: None,
            concurrency: 4,
            connections: 4,
            spans_per_request: 1000,
            variants: 16,
            mean_body_bytes: 530_000.0,
            mix: "plain",
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            max_requests: 10_000_000,
            allow_loss: false,
            allow_refusals: false,
        };
        Report::new(info, outcome, end)
    }

    #[test]
    fn cpu_per_span_counts_the_work_after_the_window_for_what_it_acknowledged() {
        let r = report(900_000);
        let json = r.json();
        assert_eq!(json["weir_cpu_s"], 8.0);
        assert_eq!(json["weir_cpu_drain_s"], 2.0);
        assert_eq!(json["backlog_spans_at_window_start"], 40_000);
        // (8 + 2) CPU-s over the 800,000 spans of the window and the 40,000 the warm-up had left.
        let per_million = json["weir_cpu_per_million_delivered"].as_f64().unwrap();
        assert!(
            (per_million - 10.0 / 840_000.0 * 1e6).abs() < 1e-9,
            "{per_million}"
        );
        assert!(r.human().contains("weir using 2.00 s of CPU meanwhile"));
        // A sink that never caught up: the work is not all done, no such figure (and the run fails).
        let r = report(850_000);
        assert!(r.json()["weir_cpu_per_million_delivered"].is_null());
        assert!(!r.problems().is_empty());
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
