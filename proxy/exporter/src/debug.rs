//! The `debug` exporter: one summary line per batch on stdout, and every item with
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

    /// Prints the batch; always succeeds.
    pub fn export(&self, name: &str, request: &ExportRequest<'_>) -> PartialSuccess {
        let mut out = std::io::stdout().lock();
        let p = request.payload;
        // A closed stdout must not fail the request: the data was "delivered" to the debug sink.
        let _ = writeln!(
            out,
            "{name}: {signal}: {resources} resource(s), {items} {what}, {bytes} bytes",
            signal = request.signal,
            resources = p.resource_count(),
            items = request.items,
            what = request.signal.item_name(),
            bytes = request.body.len(),
        );
        if self.verbosity == Verbosity::Detailed {
            let _ = out.write_all(&p.encode_json());
            let _ = writeln!(out);
        }
        PartialSuccess::default()
    }
}
