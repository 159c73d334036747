//! The `debug` exporter: one summary line per upstream request on stdout, and every item with
//! `verbosity: detailed`. It is what `weir run` uses when no upstream is configured.

use std::io::Write;

use super::ExportRequest;
use weir_core::PartialSuccess;
use weir_core::config::Verbosity;

/// Prints batches.
#[derive(Debug)]
pub struct DebugExporter {
    verbosity: Verbosity,
}

impl DebugExporter {
    /// A debug exporter.
    pub fn new(verbosity: Verbosity) -> Self {
        Self { verbosity }
    }

    /// Prints the batch; always succeeds. The bytes are walked (or decoded, for `detailed`) here: the
    /// debug exporter is not on anyone's fast path.
    pub fn export(&self, name: &str, request: &ExportRequest<'_>) -> PartialSuccess {
        let resources: usize = request
            .parts
            .iter()
            .map(|p| weir_wire::walk::walk(p.signal(), p.bytes()).map_or(0, |c| c.resources))
            .sum();
        let mut out = std::io::stdout().lock();
        // A closed stdout must not fail the request: the data was "delivered" to the debug sink.
        let _ = writeln!(
            out,
            "{name}: {signal}: {resources} resource(s), {items} {what}, {bytes} bytes",
            signal = request.signal,
            items = request.items,
            what = request.signal.item_name(),
            bytes = request.len(),
        );
        if self.verbosity == Verbosity::Detailed {
            for part in request.parts {
                if let Ok(p) = part.decode() {
                    let _ = out.write_all(&p.encode_json());
                    let _ = writeln!(out);
                }
            }
        }
        PartialSuccess::default()
    }
}
