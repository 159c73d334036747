//! Client connections per listener (open, accepted, closed at once at the limit), TLS handshakes
//! that failed, and the certificate, key, CA and token files re-read after they changed (a
//! listener's, an exporter's, the admin token).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::InFlightGuard;
use super::labels::{ListenerLabels, TlsReloadLabels};

/// Connections per listener, failed TLS handshakes, and re-read TLS and token files.
#[derive(Debug)]
pub struct ConnectionMetrics {
    connections_open: Family<ListenerLabels, Gauge>,
    connections_accepted: Family<ListenerLabels, Counter>,
    connections_rejected: Family<ListenerLabels, Counter>,
    tls_handshake_failures: Family<ListenerLabels, Counter>,
    tls_reloads: Family<TlsReloadLabels, Counter>,
}

impl ConnectionMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            connections_open: Family::default(),
            connections_accepted: Family::default(),
            connections_rejected: Family::default(),
            tls_handshake_failures: Family::default(),
            tls_reloads: Family::default(),
        };
        registry.register(
            "connections_open",
            "Client connections open, per listener",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted, per listener",
            m.connections_accepted.clone(),
        );
        registry.register(
            "connections_rejected",
            "Client connections closed at once because the listener had limits.connections.max_per_listener open",
            m.connections_rejected.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out (no certificate, an untrusted one, not TLS at all)",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "tls_reloads",
            "Certificate, key, CA bundle and token files re-read after they changed (result ok or error; on error the previous ones stay)",
            m.tls_reloads.clone(),
        );
        m
    }

    /// A connection was accepted on `listener`: counted, and open until the guard is dropped.
    pub fn opened(&self, listener: &'static str) -> InFlightGuard {
        let labels = ListenerLabels { listener };
        self.connections_accepted.get_or_create(&labels).inc();
        let gauge = self.connections_open.get_or_create(&labels).clone();
        gauge.inc();
        InFlightGuard(gauge)
    }

    /// A connection on `listener` was closed at once: the listener was full.
    pub fn rejected(&self, listener: &'static str) {
        self.connections_rejected
            .get_or_create(&ListenerLabels { listener })
            .inc();
    }

    /// A TLS handshake on `listener` failed.
    pub fn tls_handshake_failed(&self, listener: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&ListenerLabels { listener })
            .inc();
    }

    /// The files behind `name` (a listener's TLS, an exporter's TLS, a token file) were re-read.
    pub fn tls_reloaded(&self, name: &str, ok: bool) {
        self.tls_reloads
            .get_or_create(&TlsReloadLabels {
                name: name.to_string(),
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }
}
