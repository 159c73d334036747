//! weir's own telemetry: the Prometheus metrics served on the admin listener's `/metrics`, and logging.
//!
//! Every path that refuses or drops data has a counter here, and the call sites name the fact they
//! record (`request_refused`, `items_exported`, ...) so that counting and logging stay together.

mod metrics;

pub use metrics::{
    ConnectionMetrics, ExporterMetrics, FilterControlMetrics, FilterMetrics, FilterRuntimeMetrics,
    GuestMetrics, InFlightGuard, MemoryMetrics, Metrics, QueueMetrics, ReceiverMetrics,
    RefuseReason, Transport, UpstreamMetrics,
};

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber writing to stderr. `RUST_LOG` overrides `level`.
/// Calling it twice is harmless (the second call does nothing), which tests rely on.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(false).try_init(),
    };
}
