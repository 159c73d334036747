//! `benchmark --redaction`: what the edge chain (sampler, redactor, router: `benches/edge-chain.yaml`)
//! costs on the data a redactor is for, beside weir without filters and beside the OpenTelemetry
//! Collector doing the same redaction with its `redaction` processor (`benches/otelcol-redaction.yaml`).
//!
//! Two span mixes (`payload::Mix`): `secrets`, about 850-byte spans whose ten attributes are seven
//! secrets (e-mail addresses, a card number, a token in a URL, SQL with an e-mail address, client IPv4
//! and IPv6 addresses, a bearer JWT) and three ordinary values; and `plain`, the passthrough benchmark's
//! spans, as the secret-free row. At 10, 100, 1000 and 8,192 spans per request, no upstream compression,
//! the sink decoding every span and counting the planted secrets that reached it unmasked: a redacting
//! setup that lets one through fails the run. The figures go between `<!-- redaction:begin -->` and
//! `<!-- redaction:end -->` in `--out`.

use std::fmt::Write as _;

use anyhow::Result;

use crate::payload::Mix;
use crate::{Cell, Runner, Setup, fmt_opt, median_by, ratio, replace_between, times};

pub const BEGIN: &str = "<!-- redaction:begin -->";
pub const END: &str = "<!-- redaction:end -->";

/// Spans per request of the redaction benchmark (the smoke: 100 only).
const SIZES: [u32; 4] = [10, 100, 1000, 8192];

/// The setups, in the order of the table.
fn setups(collector: bool) -> Vec<Setup> {
    let mut s = vec![Setup::Weir, Setup::Chain];
    if collector {
        s.extend([Setup::Otelcol, Setup::OtelcolRedaction]);
    }
    s
}

/// Whether `setup` redacts (and so must deliver no planted secret).
fn redacts(setup: Setup) -> bool {
    matches!(setup, Setup::Chain | Setup::OtelcolRedaction)
}

/// Runs the plan in `repeat` rounds and writes the report to `out`; `Ok(false)` when a cell failed or
/// a redacting setup leaked.
pub fn run(
    runner: &Runner<'_>,
    collector: bool,
    smoke: bool,
    repeat: usize,
    out: &std::path::Path,
) -> Result<bool> {
    let sizes: &[u32] = if smoke { &[100] } else { &SIZES };
    let mut plan = Vec::new();
    for mix in [Mix::Secrets, Mix::Plain] {
        for &n in sizes {
            for setup in setups(collector) {
                plan.push((mix, setup, n));
            }
        }
    }
    let total = plan.len() * repeat;
    let mut runs: Vec<Vec<Cell>> = vec![Vec::new(); plan.len()];
    let mut failures = Vec::new();
    let mut step = 0;
    for _ in 0..repeat {
        for (i, &(mix, setup, n)) in plan.iter().enumerate() {
            step += 1;
            eprintln!(
                "benchmark: [{step}/{total}] {} at {n} spans/request, {} spans",
                setup.label(None),
                mix.as_str()
            );
            let cells = Runner {
                mix,
                sink_decode: "full",
                ..*runner
            };
            match cells.cell(setup, n, "none", None) {
                Ok(c) => {
                    if !c.passed() {
                        failures.push(format!(
                            "{} {n} {}: {}",
                            setup.label(None),
                            mix.as_str(),
                            c.json["problems"]
                        ));
                    }
                    runs[i].push(c);
                }
                Err(e) => {
                    failures.push(format!("{} {n} {}: {e:#}", setup.label(None), mix.as_str()))
                }
            }
        }
    }
    let cells: Vec<(Mix, Cell)> = plan
        .iter()
        .zip(runs)
        .filter_map(|(&(mix, _, _), r)| median_by(r, Cell::cpu_per_million).map(|c| (mix, c)))
        .collect();
    for (mix, c) in &cells {
        let leaks = c.f("sink_leaks").unwrap_or(0.0);
        if *mix == Mix::Secrets && redacts(c.setup) && leaks > 0.0 {
            failures.push(format!(
                "{} at {} spans: {leaks} planted secrets reached the sink",
                c.setup.label(None),
                c.spans
            ));
        }
    }
    let report = report(&cells, collector, sizes);
    print!("{report}");
    replace_between(out, BEGIN, END, &report)?;
    eprintln!(
        "benchmark: wrote the redaction figures to {}",
        out.display()
    );
    for f in &failures {
        eprintln!("benchmark: FAILED: {f}");
    }
    Ok(failures.is_empty())
}

/// The report: one table per mix, then the targets.
fn report(cells: &[(Mix, Cell)], collector: bool, sizes: &[u32]) -> String {
    let find = |mix: Mix, setup: Setup, n: u32| {
        cells
            .iter()
            .find(|(m, c)| *m == mix && c.setup == setup && c.spans == n)
            .map(|(_, c)| c)
    };
    let cpu = |mix, setup, n| find(mix, setup, n).and_then(Cell::cpu_per_million);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "4 concurrent OTLP/gRPC clients, no upstream compression, the sink decoding every span and \
         counting the planted secrets that reach it unmasked (`leaks`). CPU is the proxy's, per million \
         spans delivered. `chain / weir` is the edge chain's CPU per span over weir's without filters in \
         the same cell (the issue's \"at least 0.5x passthrough\" is a ratio of at most 2.0).\n"
    );
    for mix in [Mix::Secrets, Mix::Plain] {
        let _ = writeln!(
            out,
            "### {} spans\n",
            match mix {
                Mix::Secrets => "Secret-dense",
                Mix::Plain => "Secret-free (the passthrough benchmark's)",
            }
        );
        let _ = writeln!(
            out,
            "| spans/request | setup | spans/s | CPU-s per million spans | chain / weir | peak RSS MiB | leaks | delivered |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        for &n in sizes {
            for setup in setups(collector) {
                let Some(c) = find(mix, setup, n) else {
                    continue;
                };
                let versus = match setup {
                    Setup::Chain => {
                        times(ratio(cpu(mix, Setup::Chain, n), cpu(mix, Setup::Weir, n)))
                    }
                    Setup::OtelcolRedaction => times(ratio(
                        cpu(mix, Setup::OtelcolRedaction, n),
                        cpu(mix, Setup::Otelcol, n),
                    )),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    out,
                    "| {n} | {} | {} | {} | {versus} | {} | {} | {} |",
                    setup.label(None),
                    c.f("acked_spans_per_s")
                        .map_or("-".into(), crate::thousands),
                    fmt_opt(c.cpu_per_million(), 2),
                    fmt_opt(c.f("weir_peak_rss_mib"), 1),
                    if redacts(setup) {
                        fmt_opt(c.f("sink_leaks"), 0)
                    } else {
                        "(passes them)".into()
                    },
                    c.delivered(),
                );
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "### Targets (issue 23)\n");
    let _ = writeln!(out, "| target | measured | |");
    let _ = writeln!(out, "| --- | --- | --- |");
    let mut target = |what: String, measured: Option<f64>, limit: f64| {
        let verdict = match measured {
            Some(v) if v <= limit => "met",
            Some(_) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {what} | {} | {verdict} |", times(measured));
    };
    for &n in sizes.iter().filter(|&&n| n >= 100) {
        target(
            format!(
                "edge chain at most 2.0x weir's passthrough CPU, secret-dense, {n} spans per request"
            ),
            ratio(
                cpu(Mix::Secrets, Setup::Chain, n),
                cpu(Mix::Secrets, Setup::Weir, n),
            ),
            2.0,
        );
        target(
            format!(
                "edge chain at most 1.67x weir's passthrough CPU, secret-free, {n} spans per request"
            ),
            ratio(
                cpu(Mix::Plain, Setup::Chain, n),
                cpu(Mix::Plain, Setup::Weir, n),
            ),
            1.0 / 0.6,
        );
        if collector {
            target(
                format!(
                    "edge chain at most 0.5x the Collector's CPU for the same redaction, secret-dense, {n} spans per request"
                ),
                ratio(
                    cpu(Mix::Secrets, Setup::Chain, n),
                    cpu(Mix::Secrets, Setup::OtelcolRedaction, n),
                ),
                0.5,
            );
        }
    }
    out
}
