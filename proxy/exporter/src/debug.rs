//! The `debug` exporter kind: one summary line per upstream request on stdout, and every item with
//! `verbosity: detailed`. It is what `weir run` uses when no upstream is configured.

use std::io::Write;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use weir_core::{ExportError, PartialSuccess};

use crate::ExportRequest;
use crate::body::Prepared;
use crate::kind::{BuildContext, Export, ExporterKind};

/// The debug exporter.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    /// `basic` (one line per batch, default) or `detailed` (every item too).
    pub verbosity: Verbosity,
}

/// How much the debug exporter prints.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    /// One summary line per batch.
    #[default]
    Basic,
    /// The summary line, then every item as JSON.
    Detailed,
}

impl ExporterKind for DebugExporterConfig {
    fn build(&self, name: &str, _: &BuildContext<'_>) -> Result<Box<dyn Export>, String> {
        Ok(Box::new(DebugExporter::new(name, self.verbosity)))
    }
}

/// Prints batches.
#[derive(Debug)]
pub struct DebugExporter {
    name: String,
    verbosity: Verbosity,
}

impl Export for DebugExporter {
    fn sends_body(&self) -> bool {
        false
    }

    fn attempt<'a>(
        &'a self,
        request: &'a ExportRequest<'a>,
        _: &'a Prepared,
        _: Duration,
    ) -> BoxFuture<'a, Result<PartialSuccess, ExportError>> {
        Box::pin(std::future::ready(Ok(self.print(request))))
    }
}

impl DebugExporter {
    /// A debug exporter that names itself `name`.
    pub fn new(name: &str, verbosity: Verbosity) -> Self {
        Self {
            name: name.to_string(),
            verbosity,
        }
    }

    /// Prints the batch; always succeeds. The bytes are walked (or decoded, for `detailed`) here: the
    /// debug exporter is not on anyone's fast path.
    fn print(&self, request: &ExportRequest<'_>) -> PartialSuccess {
        let name = &self.name;
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
