//! Consistent probability sampling as the OpenTelemetry specification defines it (threshold sampling,
//! the `ot` entry of the W3C tracestate): pure logic, no Wasm, unit-tested natively.
//!
//! Every span carries 56 bits of randomness R: the `rv` sub-key of its `ot` tracestate entry when
//! present, otherwise the low 56 bits of its trace id. A sampler with probability p has the rejection
//! threshold T = (1 - p) * 2^56 and keeps a span when R >= T. Every span of a trace has the same R, so
//! every sampler anywhere with the same p takes the same decision. A kept span records T as `th`
//! (14 hex digits, trailing zeros removed), so that later samplers stay consistent and counts can be
//! extrapolated.

/// 2^56, the size of the randomness and threshold space.
pub const MAX_THRESHOLD: u64 = 1 << 56;

/// The rejection threshold of probability `p` (clamped to [0, 1]).
pub fn threshold(p: f64) -> u64 {
    // Scale p (exact: a power of two), round, then subtract in integers: (1 - p) in floating point
    // would lose the low bits.
    let kept = (p.clamp(0.0, 1.0) * MAX_THRESHOLD as f64).round() as u64;
    MAX_THRESHOLD - kept.min(MAX_THRESHOLD)
}

/// `th` encoding: 14 hex digits with trailing zeros removed, `0` for "always".
pub fn encode_threshold(t: u64) -> String {
    if t == 0 {
        return "0".into();
    }
    let s = format!("{:014x}", t.min(MAX_THRESHOLD - 1));
    s.trim_end_matches('0').to_string()
}

/// Parses a `th` value (1 to 14 hex digits, right-padded with zeros).
pub fn decode_threshold(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 14 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{s:0<14}");
    u64::from_str_radix(&padded, 16).ok()
}

/// The `ot` entry's sub-keys that matter here, and the rest kept as it was.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OtEntry {
    /// Rejection threshold of the sampling the span went through.
    pub th: Option<u64>,
    /// Explicit randomness.
    pub rv: Option<u64>,
    /// Other sub-keys, in order (`key:value`).
    pub other: Vec<String>,
}

/// Splits a W3C tracestate into its `ot` entry and the other members.
pub fn parse_tracestate(ts: &str) -> (OtEntry, Vec<String>) {
    let mut ot = OtEntry::default();
    let mut members = Vec::new();
    for member in ts.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match member.strip_prefix("ot=") {
            Some(value) => {
                for sub in value.split(';').filter(|s| !s.is_empty()) {
                    match sub.split_once(':') {
                        Some(("th", v)) => ot.th = decode_threshold(v),
                        Some(("rv", v)) if v.len() == 14 => ot.rv = u64::from_str_radix(v, 16).ok(),
                        _ => ot.other.push(sub.to_string()),
                    }
                }
            }
            None => members.push(member.to_string()),
        }
    }
    (ot, members)
}

/// Writes a tracestate with `ot` first (a modified member moves to the front, as W3C asks).
pub fn format_tracestate(ot: &OtEntry, members: &[String]) -> String {
    let mut subs = Vec::new();
    if let Some(th) = ot.th {
        subs.push(format!("th:{}", encode_threshold(th)));
    }
    if let Some(rv) = ot.rv {
        subs.push(format!("rv:{rv:014x}"));
    }
    subs.extend(ot.other.iter().cloned());
    let mut out = Vec::with_capacity(members.len() + 1);
    if !subs.is_empty() {
        out.push(format!("ot={}", subs.join(";")));
    }
    out.extend(members.iter().cloned());
    out.join(",")
}

/// The 56 bits of randomness: `rv` when given, else the low 56 bits of the trace id.
pub fn randomness(trace_id_low: u64, rv: Option<u64>) -> u64 {
    rv.unwrap_or(trace_id_low & (MAX_THRESHOLD - 1))
}

/// What to do with one span.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Forward the span.
    pub keep: bool,
    /// The span's new tracestate, when it changes.
    pub tracestate: Option<String>,
}

/// Decides for a span with trace id low half `trace_id_low` and tracestate `ts`, at threshold `t`.
///
/// A span already sampled upstream at a lower probability (a `th` at or above ours) is kept as it is:
/// our sampling is implied by theirs, and lowering its `th` would overstate its weight.
pub fn decide(trace_id_low: u64, ts: &str, t: u64) -> Decision {
    let (mut ot, members) = parse_tracestate(ts);
    let r = randomness(trace_id_low, ot.rv);
    if let Some(th_in) = ot.th
        && th_in >= t
    {
        return Decision {
            keep: r >= th_in,
            tracestate: None,
        };
    }
    if r < t {
        return Decision {
            keep: false,
            tracestate: None,
        };
    }
    if t == 0 && ot.th.is_none() {
        // Probability 1: nothing to record, leave the tracestate alone.
        return Decision {
            keep: true,
            tracestate: None,
        };
    }
    ot.th = Some(t);
    Decision {
        keep: true,
        tracestate: Some(format_tracestate(&ot, &members)),
    }
}

/// FNV-1a, 64 bits: a stable hash for log records without a trace id.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so that ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The ratio that holds a target rate of spans per second, from the input rate of the whole weir.
///
/// The rate comes from `host.shared-rate`, which every instance of the filter feeds and reads, and the
/// ratio is recomputed from it on every batch: no instance keeps a ratio of its own that could go stale
/// while it sits idle in weir's pool, and all of them hold one target together.
#[derive(Debug, Clone)]
pub struct Adaptive {
    target: f64,
    min: f64,
    max: f64,
    interval_ns: u64,
    ratio: f64,
    last_report: Option<u64>,
}

impl Adaptive {
    /// Starts at `max`; `interval_ns` sets the rate's window (five intervals) and how often the ratio
    /// is reported.
    pub fn new(target: f64, min: f64, max: f64, interval_ns: u64) -> Self {
        Self {
            target,
            min,
            max,
            interval_ns: interval_ns.max(1),
            ratio: max,
            last_report: None,
        }
    }

    /// The ratio in force.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The window the input rate is measured over, in milliseconds: five intervals. The ratio is
    /// applied per batch, and batches are densest exactly when a short window's estimate is highest,
    /// so a short window keeps less than the target under a bursty load; a longer one smooths that out.
    pub fn window_ms(&self) -> u32 {
        (self.interval_ns / 1_000_000)
            .saturating_mul(5)
            .clamp(1, u64::from(u32::MAX)) as u32
    }

    /// Sets the ratio for an input `rate` (spans per second over the whole weir) and returns it.
    pub fn ratio_for(&mut self, rate: f64) -> f64 {
        self.ratio = if rate > 0.0 {
            (self.target / rate).clamp(self.min, self.max)
        } else {
            self.max
        };
        self.ratio
    }

    /// True once per interval of the monotonic clock: time to report the ratio (a gauge).
    pub fn report_due(&mut self, now_ns: u64) -> bool {
        match self.last_report {
            Some(t) if now_ns.saturating_sub(t) < self.interval_ns => false,
            _ => {
                self.last_report = Some(now_ns);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_the_specification_examples() {
        // Examples from the OpenTelemetry tracestate-probability-sampling specification.
        assert_eq!(encode_threshold(threshold(1.0)), "0");
        assert_eq!(encode_threshold(threshold(0.5)), "8");
        assert_eq!(encode_threshold(threshold(0.25)), "c");
        assert_eq!(encode_threshold(threshold(0.1)), "e6666666666666");
        assert_eq!(encode_threshold(threshold(0.01)), "fd70a3d70a3d71");
        assert_eq!(decode_threshold("8"), Some(0x80000000000000));
        assert_eq!(decode_threshold("c"), Some(0xc0000000000000));
        assert_eq!(decode_threshold("zz"), None);
        assert_eq!(decode_threshold("123456789012345"), None);
    }

    #[test]
    fn decisions_are_consistent_and_proportional() {
        let t = threshold(0.25);
        let mut kept = 0;
        let n = 100_000u64;
        for i in 0..n {
            let low = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let a = decide(low, "", t);
            let b = decide(low, "vendor=x", t);
            assert_eq!(a.keep, b.keep, "same trace, same decision");
            if a.keep {
                kept += 1;
                assert_eq!(a.tracestate.as_deref(), Some("ot=th:c"));
                assert_eq!(b.tracestate.as_deref(), Some("ot=th:c,vendor=x"));
            }
        }
        let share = kept as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.01, "{share}");
    }

    #[test]
    fn rv_takes_precedence_over_the_trace_id() {
        let t = threshold(0.5);
        let rv_high = "ot=rv:f0000000000000";
        let rv_low = "ot=rv:01000000000000";
        assert!(decide(0, rv_high, t).keep);
        assert!(!decide(u64::MAX, rv_low, t).keep);
        assert_eq!(
            decide(0, rv_high, t).tracestate.as_deref(),
            Some("ot=th:8;rv:f0000000000000")
        );
    }

    #[test]
    fn spans_sampled_at_a_lower_probability_upstream_are_left_alone() {
        let ours = threshold(0.5);
        // Upstream kept it at 1/16 (th:f): it passed a stricter test than ours.
        let d = decide(0x00ff_ffff_ffff_ffff, "ot=th:f", ours);
        assert_eq!(
            d,
            Decision {
                keep: true,
                tracestate: None
            }
        );
        // Upstream at probability 1 (th:0): ours applies and is recorded.
        let d = decide(0x00ff_ffff_ffff_ffff, "ot=th:0", ours);
        assert_eq!(d.tracestate.as_deref(), Some("ot=th:8"));
        let d = decide(0x0000_0000_0000_0001, "ot=th:0", ours);
        assert!(!d.keep);
    }

    #[test]
    fn tracestate_round_trips_other_members_and_subkeys() {
        let (ot, members) = parse_tracestate("a=1, ot=th:8;xx:yy ,b=2");
        assert_eq!(ot.th, Some(0x80000000000000));
        assert_eq!(ot.other, vec!["xx:yy"]);
        assert_eq!(members, vec!["a=1", "b=2"]);
        assert_eq!(format_tracestate(&ot, &members), "ot=th:8;xx:yy,a=1,b=2");
    }

    #[test]
    fn the_ratio_holds_the_target_at_the_measured_rate() {
        let mut a = Adaptive::new(100.0, 0.001, 1.0, 1_000_000_000);
        assert_eq!(a.ratio(), 1.0, "starts keeping everything");
        // 10,000 spans/s offered over the whole weir; the target is 100/s: ratio 0.01.
        assert!((a.ratio_for(10_000.0) - 0.01).abs() < 1e-12);
        // Bounds hold; no input keeps the maximum.
        assert_eq!(a.ratio_for(1e9), 0.001);
        assert_eq!(a.ratio_for(10.0), 1.0);
        assert_eq!(a.ratio_for(0.0), 1.0);
        assert_eq!(a.window_ms(), 5000);
    }

    #[test]
    fn the_ratio_is_reported_once_per_interval() {
        let mut a = Adaptive::new(100.0, 0.001, 1.0, 1_000_000_000);
        let reports = (0..50).filter(|i| a.report_due(i * 100_000_000)).count();
        assert_eq!(reports, 5, "once a second over 5 s");
    }

    #[test]
    fn fnv_separates_parts() {
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_eq!(fnv1a(&[b"x"]), fnv1a(&[b"x"]));
    }
}
