//! `weir validate`: loads a configuration file and every filter it names, without binding any port.

use std::path::Path;
use std::process::ExitCode;

use weir::config::Config;

/// Prints what the file configures; a file that does not load or validate exits with 64 (EX_USAGE).
pub(crate) fn main(config: &Path) -> ExitCode {
    match Config::load(config).and_then(|c| {
        // Filters are loaded too (compiled, `init` run with their config, dry run), so a filter
        // config error (a router naming an unknown exporter) shows here, not at start.
        let filters = weir::app::check_filters(&c)
            .map_err(|e| weir::config::ConfigError::Invalid(e.to_string()))?;
        let warnings = c.warnings();
        Ok((c.resolved(), filters, warnings))
    }) {
        Ok((c, filters, warnings)) => {
            for w in warnings {
                eprintln!("{}: warning: {w}", config.display());
            }
            println!(
                "{}: ok ({} exporter(s): {}; {filters} filter(s) loaded)",
                config.display(),
                c.exporters.len(),
                c.exporters.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            ExitCode::from(64)
        }
    }
}
