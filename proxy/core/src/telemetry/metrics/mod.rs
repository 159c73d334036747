//! Prometheus metrics (`prometheus-client`), one family per fact, labelled by signal, transport and
//! exporter. Names follow `weir_<thing>_<unit>_total`.
//!
//! [`Metrics`] is one struct per component, each in its own file registering its own metrics: the
//! receivers, client connections, exporters, their queues, memory, filters at run time, the queues'
//! answers to a failing upstream, the filter control plane, and the series filters keep themselves.
//! The order they register in is the order of the exposition, which `tests.rs` holds to
//! `exposition.txt` byte for byte; that order predates the split, and it is why dead letters, held
//! deliveries and upstreams down (`upstream`), and the control plane's and the guests' filter
//! metrics (`filter_control`, `guest`), are structs of their own: they render between and after the
//! filters' run-time metrics. Callers record through the methods on [`Metrics`]
//! (`metrics.export_retried(..)`), which delegate to the component
//! (`metrics.exporter.retried(..)`).
//!
//! Those are the families every receiver, exporter and filter has. A component kind's own family
//! (the `otlp` exporter's upstream answers by status) lives beside the kind's code and is registered
//! through [`Metrics::kind_family`] when the first component of that kind is built; it renders after
//! the shared families.

use std::any::Any;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Signal;

mod connection;
mod exporter;
mod filter;
mod filter_control;
mod guest;
mod labels;
mod memory;
mod queue;
mod receiver;
mod upstream;

pub use connection::ConnectionMetrics;
pub use exporter::ExporterMetrics;
pub use filter::{FilterMetrics, FilterRuntimeMetrics};
pub use filter_control::FilterControlMetrics;
pub use guest::GuestMetrics;
pub use labels::{RefuseReason, Transport};
pub use memory::MemoryMetrics;
pub use queue::QueueMetrics;
pub use receiver::ReceiverMetrics;
pub use upstream::UpstreamMetrics;

/// All of weir's metrics, one family per component, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    /// Requests and items the receivers took or refused.
    pub receiver: ReceiverMetrics,
    /// Client connections and TLS.
    pub connection: ConnectionMetrics,
    /// Deliveries upstream.
    pub exporter: ExporterMetrics,
    /// The exporters' queues.
    pub queue: QueueMetrics,
    /// Resident memory and its limit.
    pub memory: MemoryMetrics,
    /// Filters at run time.
    pub filter: FilterRuntimeMetrics,
    /// Dead letters, held deliveries, upstreams down.
    pub upstream: UpstreamMetrics,
    /// The filter control plane.
    pub filter_control: FilterControlMetrics,
    /// The counters and gauges filters keep.
    pub guest: GuestMetrics,
    /// Component kinds' own families, in the order they were first asked for.
    kinds: Mutex<Vec<KindFamily>>,
}

/// One component kind's own families: its registry, and the handle its components share.
struct KindFamily {
    kind: &'static str,
    registry: Registry,
    handle: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weir");
        // The order of registration is the order of the exposition (`exposition.txt`).
        let receiver = ReceiverMetrics::register(&mut registry);
        let connection = ConnectionMetrics::register(&mut registry);
        let exporter = ExporterMetrics::register(&mut registry);
        let queue = QueueMetrics::register(&mut registry);
        let memory = MemoryMetrics::register(&mut registry);
        let filter = FilterRuntimeMetrics::register(&mut registry);
        let upstream = UpstreamMetrics::register(&mut registry);
        let filter_control = FilterControlMetrics::register(&mut registry);
        let guest = GuestMetrics::register(&mut registry);
        Self {
            registry,
            receiver,
            connection,
            exporter,
            queue,
            memory,
            filter,
            upstream,
            filter_control,
            guest,
            kinds: Mutex::new(Vec::new()),
        }
    }

    /// Component kind `kind`'s own families: registered by `register` (into a registry with weir's
    /// prefix) the first time a component of that kind asks, and the same handle (`T`, cheap to
    /// clone: families share their series) for every later one. A kind always asks with the same
    /// `T`; another type for the same kind is a programming error and panics.
    pub fn kind_family<T: Clone + Send + Sync + 'static>(
        &self,
        kind: &'static str,
        register: impl FnOnce(&mut Registry) -> T,
    ) -> T {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kinds.iter().find(|k| k.kind == kind) {
            return k
                .handle
                .downcast_ref::<T>()
                .unwrap_or_else(|| panic!("kind `{kind}` asked for its metrics as another type"))
                .clone();
        }
        let mut registry = Registry::with_prefix("weir");
        let handle = register(&mut registry);
        kinds.push(KindFamily {
            kind,
            registry,
            handle: Box::new(handle.clone()),
        });
        handle
    }

    /// The registry, to render or to register more families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        for k in self.kinds.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = encode_registry(&mut out, &k.registry);
        }
        let _ = encode_eof(&mut out);
        out
    }
}

/// Methods on [`Metrics`] that record through one family's method, so that callers keep saying
/// `metrics.export_retried(..)`: `family: Type { fn name(args) -> Ret => method; }`.
macro_rules! delegate {
    ($($family:ident: $ty:ident {
        $(
            $(#[$attr:meta])*
            fn $name:ident($($arg:ident: $argty:ty),*) $(-> $ret:ty)? => $method:ident;
        )*
    })*) => {
        impl Metrics {
            $($(
                #[doc = concat!("Records through [`", stringify!($ty), "::", stringify!($method), "`].")]
                $(#[$attr])*
                #[inline]
                pub fn $name(&self, $($arg: $argty),*) $(-> $ret)? {
                    self.$family.$method($($arg),*)
                }
            )*)*
        }
    };
}

delegate! {
    receiver: ReceiverMetrics {
        fn request_received(signal: Signal, transport: Transport) => request_received;
        fn items_received(signal: Signal, transport: Transport, items: usize) => items_received;
        fn request_refused(signal: Signal, transport: Transport, reason: RefuseReason, items: usize)
            => request_refused;
        fn request_finished(signal: Signal, transport: Transport, elapsed: Duration)
            => request_finished;
        fn in_flight(transport: Transport) -> InFlightGuard => in_flight;
    }
    connection: ConnectionMetrics {
        fn connection_opened(listener: &'static str) -> InFlightGuard => opened;
        fn connection_rejected(listener: &'static str) => rejected;
        fn tls_handshake_failed(listener: &'static str) => tls_handshake_failed;
        fn tls_reloaded(name: &str, ok: bool) => tls_reloaded;
    }
    exporter: ExporterMetrics {
        fn items_exported(
            signal: Signal,
            exporter: &str,
            items: usize,
            rejected: u64,
            elapsed: Duration
        ) => exported;
        fn export_failed(signal: Signal, exporter: &str, items: usize, retryable: bool) => failed;
        fn export_retried(signal: Signal, exporter: &str) => retried;
        fn export_coalesced(signal: Signal, exporter: &str, n: usize) => coalesced;
        fn export_sent_bytes(exporter: &str, encoded: usize, sent: usize) => sent_bytes;
        fn refused_delivered(signal: Signal, exporter: &str, items: usize) => refused_delivered;
    }
    queue: QueueMetrics {
        fn queue_changed(exporter: &str, batches: i64, items: i64, bytes: i64) => changed;
        fn export_abandoned(signal: Signal, exporter: &str, items: usize) => abandoned;
        fn queue_io_error(exporter: &str, op: &'static str) => io_error;
        fn queue_corrupt_segment(exporter: &str) => corrupt_segment;
        fn queue_replayed(exporter: &str, items: usize) => replayed;
        fn queue_oldest(exporter: &str, age: Duration) => oldest;
        fn queue_dropped(signal: Signal, exporter: &str, items: usize) => dropped;
    }
    memory: MemoryMetrics {
        fn memory_rss(bytes: u64) => rss;
        fn memory_limit(bytes: u64) => limit;
        fn memory_cgroup_working_set(bytes: u64) => cgroup_working_set;
    }
    filter: FilterRuntimeMetrics {
        fn route_unknown(signal: Signal, exporter: &str, items: usize) => route_unknown;
        fn filter_series_refused(signal: Signal, filter: &str) => series_refused;
        fn filter_log_suppressed(signal: Signal, filter: &str) => log_suppressed;
        fn filter_metrics(signal: Signal, filter: &str) -> FilterMetrics => call_metrics;
        #[allow(clippy::too_many_arguments)]
        fn filter_called(
            signal: Signal,
            filter: &str,
            items: usize,
            dropped: usize,
            modified: usize,
            elapsed: Duration,
            fault: Option<&'static str>
        ) => called;
        fn filter_items_out(signal: Signal, filter: &str, items: usize) => items_out;
        fn filter_quarantined(signal: Signal, filter: &str) => quarantined;
        fn filter_quarantine_state(signal: Signal, filter: &str, quarantined: bool)
            => quarantine_state;
        fn filter_rolled_back(signal: Signal, filter: &str) => rolled_back;
    }
    upstream: UpstreamMetrics {
        fn dead_lettered(signal: Signal, exporter: &str, items: usize) => dead_lettered;
        fn exporter_held(exporter: &str, held: bool) => held;
        fn upstream_down(exporter: &str, down: bool) => down;
    }
    filter_control: FilterControlMetrics {
        fn filter_restore_failed(signal: Signal, filter: &str) => restore_failed;
        fn filter_swapped(signal: Signal, filter: &str) => swapped;
        fn filter_modules(held: usize, collected: usize) => modules;
    }
    guest: GuestMetrics {
        fn filter_counter(signal: Signal, filter: &str, name: &str, delta: u64) => counter;
        fn filter_gauge(signal: Signal, filter: &str, name: &str, value: f64) => gauge;
    }
}

fn latency_histogram() -> Histogram {
    // 250 µs .. ~65 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlightGuard(Gauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests;
