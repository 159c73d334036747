//! CPU time and memory figures read from Linux `/proc`.
//!
//! CPU time is `utime + stime` from `/proc/<pid>/stat` (all threads of the
//! process), in clock ticks converted with `sysconf(_SC_CLK_TCK)`. Peak resident
//! memory is `VmHWM` from `/proc/<pid>/status`.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Clock ticks per second used by `/proc/*/stat` (falls back to 100).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Converts clock ticks to a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec() as f64)
}

/// `utime + stime` of process `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    stat_cpu_ticks(&Path::new("/proc").join(pid.to_string()).join("stat"))
}

/// `utime + stime` of this process, in clock ticks.
pub fn self_cpu_ticks() -> Result<u64> {
    stat_cpu_ticks(Path::new("/proc/self/stat"))
}

/// Sum of `utime + stime` over this process's threads whose name starts with
/// `prefix`, in clock ticks. Threads that exited are not counted.
pub fn self_threads_cpu_ticks(prefix: &str) -> u64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            fs::read_to_string(task.path().join("comm"))
                .map(|name| name.trim_end().starts_with(prefix))
                .unwrap_or(false)
        })
        .filter_map(|task| stat_cpu_ticks(&task.path().join("stat")).ok())
        .sum()
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let path = Path::new("/proc").join(pid.to_string()).join("status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let line = text
        .lines()
        .find(|line| line.starts_with(field))
        .with_context(|| format!("no {field} in {}", path.display()))?;
    line[field.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("malformed line {line:?} in {}", path.display()))
}

fn stat_cpu_ticks(path: &Path) -> Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_stat_cpu_ticks(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Parses `utime + stime` (fields 14 and 15) from a `stat` line. The command
/// name (field 2) is in parentheses and may contain spaces, so fields are
/// counted from the last `)`.
fn parse_stat_cpu_ticks(text: &str) -> Result<u64> {
    let Some(close) = text.rfind(')') else {
        bail!("no ')' in stat line");
    };
    // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let get = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("stat line too short or malformed")
    };
    Ok(get(11)? + get(12)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let line = "1234 (weir (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 9 0";
        assert_eq!(parse_stat_cpu_ticks(line).expect("parses"), 290);
    }
}
