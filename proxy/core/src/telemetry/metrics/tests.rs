//! The metrics' tests: what one recording renders, and the whole exposition against
//! `exposition.txt`.

use super::*;

#[test]
fn renders_what_was_counted() {
    let m = Metrics::new();
    m.items_received(Signal::Traces, Transport::Grpc, 7);
    m.request_refused(Signal::Logs, Transport::Http, RefuseReason::TooLarge, 0);
    m.items_exported(Signal::Traces, "backend", 7, 2, Duration::from_millis(3));
    let g = m.in_flight(Transport::Http);
    let text = m.render();
    assert!(
        text.contains(r#"weir_received_items_total{signal="traces",transport="grpc"} 7"#),
        "{text}"
    );
    assert!(text.contains(
        r#"weir_refused_requests_total{signal="logs",transport="http",reason="too_large"} 1"#
    ));
    assert!(text.contains(r#"weir_exported_items_total{signal="traces",exporter="backend"} 5"#));
    assert!(
        text.contains(
            r#"weir_upstream_rejected_items_total{signal="traces",exporter="backend"} 2"#
        )
    );
    assert!(text.contains(r#"weir_requests_in_flight{transport="http"} 1"#));
    drop(g);
    assert!(
        m.render()
            .contains(r#"weir_requests_in_flight{transport="http"} 0"#)
    );
}

/// Where the expected exposition lives; `WEIR_BLESS_EXPOSITION=1` rewrites it from what renders.
const EXPOSITION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/telemetry/metrics/exposition.txt"
);

/// One value through every recording method, so that every family has a series; the guards hold
/// the in-flight and open-connection gauges at 1. Each family gets one label set only: a family
/// renders its series in hash order, which differs from run to run. Methods that count one at a time
/// are called a different number of times each, so that one recording in the place of another shows.
fn record_one_of_everything(m: &Metrics) -> (InFlightGuard, InFlightGuard) {
    let times = |n: usize, record: &dyn Fn()| (0..n).for_each(|_| record());
    m.request_received(Signal::Traces, Transport::Grpc);
    m.items_received(Signal::Traces, Transport::Grpc, 7);
    m.request_refused(Signal::Logs, Transport::Http, RefuseReason::TooLarge, 3);
    m.request_finished(Signal::Metrics, Transport::Http, Duration::from_millis(5));
    let in_flight = m.in_flight(Transport::Http);
    let connection = m.connection_opened("otlp-grpc");
    times(2, &|| m.tls_handshake_failed("otlp-http"));
    m.tls_reloaded("admin", false);
    times(3, &|| m.connection_rejected("admin"));
    m.items_exported(Signal::Traces, "backend", 7, 2, Duration::from_millis(3));
    m.export_failed(Signal::Logs, "backend", 4, true);
    m.queue_changed("backend", 1, 7, 300);
    m.export_abandoned(Signal::Traces, "backend", 2);
    m.queue_io_error("disk", "sync");
    times(2, &|| m.queue_corrupt_segment("disk"));
    m.queue_replayed("disk", 11);
    m.queue_oldest("disk", Duration::from_millis(1500));
    m.memory_limit(1 << 30);
    m.memory_cgroup_working_set(1 << 20);
    m.memory_rss(1 << 25);
    m.queue_dropped(Signal::Metrics, "disk", 5);
    m.dead_lettered(Signal::Metrics, "disk", 6);
    m.exporter_held("disk", true);
    m.upstream_down("backend", true);
    m.route_unknown(Signal::Traces, "nowhere", 8);
    times(1, &|| m.filter_series_refused(Signal::Traces, "sampler"));
    times(2, &|| m.filter_log_suppressed(Signal::Traces, "sampler"));
    m.export_coalesced(Signal::Traces, "backend", 3);
    m.export_sent_bytes("backend", 1000, 400);
    m.refused_delivered(Signal::Logs, "backend", 9);
    times(3, &|| m.export_retried(Signal::Traces, "backend"));
    m.filter_metrics(Signal::Traces, "sampler")
        .called(10, 2, 3, Duration::from_micros(40));
    m.filter_called(
        Signal::Traces,
        "sampler",
        10,
        4,
        1,
        Duration::from_micros(20),
        None,
    );
    m.filter_called(
        Signal::Traces,
        "sampler",
        5,
        0,
        0,
        Duration::from_micros(900),
        Some("trap"),
    );
    m.filter_items_out(Signal::Traces, "sampler", 5);
    times(4, &|| m.filter_quarantined(Signal::Traces, "sampler"));
    m.filter_quarantine_state(Signal::Traces, "sampler", true);
    times(5, &|| m.filter_rolled_back(Signal::Traces, "sampler"));
    m.filter_modules(3, 1);
    times(6, &|| m.filter_restore_failed(Signal::Metrics, "zone"));
    times(7, &|| m.filter_swapped(Signal::Traces, "sampler"));
    m.filter_counter(Signal::Traces, "sampler", "kept", 12);
    m.filter_gauge(Signal::Traces, "sampler", "rate", 0.25);
    (in_flight, connection)
}

/// The whole exposition, byte for byte: names, help texts, types, labels, the order of the
/// families and the histograms' buckets. A change here is a change every scraper sees.
#[test]
fn exposition_is_unchanged() {
    let m = Metrics::new();
    let _guards = record_one_of_everything(&m);
    let text = m.render();
    if std::env::var_os("WEIR_BLESS_EXPOSITION").is_some() {
        std::fs::write(EXPOSITION, &text).unwrap();
    }
    let expected = std::fs::read_to_string(EXPOSITION).unwrap();
    for (i, (got, want)) in text.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "line {} of the exposition", i + 1);
    }
    assert_eq!(text, expected);
}
