//! The receivers' metrics: export requests that arrived over OTLP/gRPC and OTLP/HTTP and the items
//! they held, those refused (by reason), how long each request took, and how many are in flight.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{
    ReceiverLabels, RefuseReason, RefusedLabels, Transport, TransportLabels, receiver_labels,
};
use super::{InFlightGuard, latency_histogram};
use crate::Signal;

/// What the receivers count: requests and their items, refusals, request time, requests in flight.
#[derive(Debug)]
pub struct ReceiverMetrics {
    received_items: Family<ReceiverLabels, Counter>,
    received_requests: Family<ReceiverLabels, Counter>,
    refused_requests: Family<RefusedLabels, Counter>,
    refused_items: Family<RefusedLabels, Counter>,
    request_duration: Family<ReceiverLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<TransportLabels, Gauge>,
}

impl ReceiverMetrics {
    /// Creates the family's metrics and registers them in `registry`, in the order they render.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            received_items: Family::default(),
            received_requests: Family::default(),
            refused_requests: Family::default(),
            refused_items: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
        };
        registry.register(
            "received_items",
            "Items (spans, data points, log records) decoded from clients",
            m.received_items.clone(),
        );
        registry.register(
            "received_requests",
            "Export requests that arrived, decoded or not",
            m.received_requests.clone(),
        );
        registry.register(
            "refused_requests",
            "Requests not acknowledged, by reason",
            m.refused_requests.clone(),
        );
        registry.register(
            "refused_items",
            "Decoded items not acknowledged (the client was told to retry or that they are invalid)",
            m.refused_items.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request headers to response, per signal and transport",
            m.request_duration.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being processed",
            m.in_flight.clone(),
        );
        m
    }

    /// A request arrived.
    pub fn request_received(&self, signal: Signal, transport: Transport) {
        self.received_requests
            .get_or_create(&receiver_labels(signal, transport))
            .inc();
    }

    /// A request decoded into `items` items.
    pub fn items_received(&self, signal: Signal, transport: Transport, items: usize) {
        self.received_items
            .get_or_create(&receiver_labels(signal, transport))
            .inc_by(items as u64);
    }

    /// A request was refused; `items` is 0 when it was refused before decoding.
    pub fn request_refused(
        &self,
        signal: Signal,
        transport: Transport,
        reason: RefuseReason,
        items: usize,
    ) {
        let labels = RefusedLabels {
            signal: signal.as_str(),
            transport: transport.as_str(),
            reason: reason.as_str(),
        };
        self.refused_requests.get_or_create(&labels).inc();
        if items > 0 {
            self.refused_items
                .get_or_create(&labels)
                .inc_by(items as u64);
        }
    }

    /// A request finished after `elapsed`, whatever its outcome.
    pub fn request_finished(&self, signal: Signal, transport: Transport, elapsed: Duration) {
        self.request_duration
            .get_or_create(&receiver_labels(signal, transport))
            .observe(elapsed.as_secs_f64());
    }

    /// The in-flight gauge of `transport`; keep the guard while the request runs.
    pub fn in_flight(&self, transport: Transport) -> InFlightGuard {
        let gauge = self
            .in_flight
            .get_or_create(&TransportLabels {
                transport: transport.as_str(),
            })
            .clone();
        gauge.inc();
        InFlightGuard(gauge)
    }
}
