//! weir between real OpenTelemetry Collectors (`otelcol-weir`, built by `tests/peers/build.sh`): what
//! an SDK sends through Collector → weir → Collector arrives equal, over both of weir's transports in
//! and out, gzip and none, every signal; weir forwards to a Collector over TLS; the Collector's error
//! statuses reach weir's clients as what they mean; and what weir accepts, the Collector's strict
//! decoding accepts too. A Collector that is not built here skips these tests (`peers::peer`).

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use weir::{Payload, Signal};

use crate::harness::*;
use crate::peers::{COLLECTOR_TELEMETRY, Collector, free_port};
use crate::sdk::{Via, emit_with_sdk};

/// The Collector's name for each signal's pipeline.
fn pipeline(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "traces",
        Signal::Metrics => "metrics",
        Signal::Logs => "logs",
        Signal::Profiles => "profiles",
    }
}

/// Every request a Collector's file exporter wrote to `path` (one OTLP/JSON object per line), by
/// the signal its top-level key names.
fn written(path: &Path) -> Vec<Payload> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let signal = if line.contains("\"resourceSpans\"") {
                Signal::Traces
            } else if line.contains("\"resourceMetrics\"") {
                Signal::Metrics
            } else if line.contains("\"resourceLogs\"") {
                Signal::Logs
            } else {
                Signal::Profiles
            };
            Payload::decode_json(signal, line.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()))
        })
        .collect()
}

/// Each item of `payloads` as its own request, encoded: equal items encode equally, whichever
/// requests they came in (weir merges requests towards an upstream; a Collector splits none). A
/// profiles request stays whole: its items index a dictionary it shares.
fn items(payloads: &[Payload]) -> Vec<(Signal, Vec<u8>)> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    let mut out = Vec::new();
    for p in payloads {
        match p {
            Payload::Traces(r) => {
                for rs in &r.resource_spans {
                    for ss in &rs.scope_spans {
                        for span in &ss.spans {
                            let mut span = span.clone();
                            // The Collector writes an unset status as an empty one (`"status":{}`):
                            // the same span.
                            if span.status == Some(Default::default()) {
                                span.status = None;
                            }
                            let one = ExportTraceServiceRequest {
                                resource_spans: vec![ResourceSpans {
                                    scope_spans: vec![ScopeSpans {
                                        spans: vec![span],
                                        ..ss.clone()
                                    }],
                                    ..rs.clone()
                                }],
                            };
                            out.push((Signal::Traces, one.encode_to_vec()));
                        }
                    }
                }
            }
            Payload::Metrics(r) => {
                for rm in &r.resource_metrics {
                    for sm in &rm.scope_metrics {
                        for metric in &sm.metrics {
                            let one = ExportMetricsServiceRequest {
                                resource_metrics: vec![ResourceMetrics {
                                    scope_metrics: vec![ScopeMetrics {
                                        metrics: vec![metric.clone()],
                                        ..sm.clone()
                                    }],
                                    ..rm.clone()
                                }],
                            };
                            out.push((Signal::Metrics, one.encode_to_vec()));
                        }
                    }
                }
            }
            Payload::Logs(r) => {
                for rl in &r.resource_logs {
                    for sl in &rl.scope_logs {
                        for record in &sl.log_records {
                            let one = ExportLogsServiceRequest {
                                resource_logs: vec![ResourceLogs {
                                    scope_logs: vec![ScopeLogs {
                                        log_records: vec![record.clone()],
                                        ..sl.clone()
                                    }],
                                    ..rl.clone()
                                }],
                            };
                            out.push((Signal::Logs, one.encode_to_vec()));
                        }
                    }
                }
            }
            Payload::Profiles(r) => out.push((Signal::Profiles, r.encode_to_vec())),
        }
    }
    out.sort();
    out
}

/// `items` repeated `n` times, sorted.
fn times(items: &[(Signal, Vec<u8>)], n: usize) -> Vec<(Signal, Vec<u8>)> {
    let mut all: Vec<_> = (0..n).flat_map(|_| items.iter().cloned()).collect();
    all.sort();
    all
}

/// Waits (bounded) until the items in `path` number `want`, and returns them.
async fn wait_for_written(path: &Path, want: usize) -> Vec<(Signal, Vec<u8>)> {
    wait_for_written_until(path, |got| got.len() >= want).await
}

/// Waits (bounded) until the items in `path` satisfy `done`, and returns them.
async fn wait_for_written_until(
    path: &Path,
    done: impl Fn(&[(Signal, Vec<u8>)]) -> bool,
) -> Vec<(Signal, Vec<u8>)> {
    poll(|| items(&written(path)), |got| done(got)).await
}

/// Reads `probe` until `done` holds for what it read, or 60 s have passed; returns the last reading.
/// (A file exporter's output has no event to wait on but its content.)
async fn poll<T>(mut probe: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = probe();
        if done(&got) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Collector with one `otlp/NAME` receiver per `(name, protocol, port)` and, for each, a pipeline
/// per signal into the file `NAME.json`.
fn collector_into_files(receivers: &[(&str, &str, u16)], tls: Option<(&Path, &Path)>) -> String {
    let tls = match tls {
        Some((cert, key)) => format!(
            ", tls: {{ cert_file: \"{}\", key_file: \"{}\" }}",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    };
    let mut yaml = String::from("receivers:\n");
    for (name, protocol, port) in receivers {
        yaml += &format!(
            "  otlp/{name}: {{ protocols: {{ {protocol}: {{ endpoint: \"127.0.0.1:{port}\"{tls} }} }} }}\n"
        );
    }
    yaml += "exporters:\n";
    for (name, _, _) in receivers {
        yaml +=
            &format!("  file/{name}: {{ path: \"@DIR@/{name}.json\", flush_interval: 50ms }}\n");
    }
    yaml += &format!("service:\n  {COLLECTOR_TELEMETRY}\n  pipelines:\n");
    for (name, _, _) in receivers {
        for s in Signal::ALL {
            let p = pipeline(s);
            yaml += &format!(
                "    {p}/{name}: {{ receivers: [otlp/{name}], exporters: [file/{name}] }}\n"
            );
        }
    }
    yaml
}

/// One arrangement of the chain: how the first Collector sends to weir, and how weir sends on.
struct Arrangement {
    sdk: Via,
    /// The first Collector's exporters to weir: (gRPC compression, HTTP compression).
    into_weir: (&'static str, &'static str),
    /// weir's exporters to the second Collector: (gRPC compression, HTTP compression).
    out_of_weir: (&'static str, &'static str),
}

async fn sdk_collector_weir_collector(arrangement: Arrangement) {
    // The second Collector: one receiver per transport, each writing its own file.
    let (b_grpc, b_http) = (free_port(), free_port());
    let Some(last) = Collector::start(|dir| {
        collector_into_files(&[("grpc", "grpc", b_grpc), ("http", "http", b_http)], None)
            .replace("@DIR@", &dir.display().to_string())
    }) else {
        return;
    };
    let (grpc_out, http_out) = arrangement.out_of_weir;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  grpc-out: {{ otlp: {{ endpoint: "http://127.0.0.1:{b_grpc}", protocol: grpc, compression: {grpc_out} }} }}
  http-out: {{ otlp: {{ endpoint: "http://127.0.0.1:{b_http}", protocol: http, compression: {http_out} }} }}
pipelines:
  traces: {{ exporters: [grpc-out, http-out] }}
  metrics: {{ exporters: [grpc-out, http-out] }}
  logs: {{ exporters: [grpc-out, http-out] }}
  profiles: {{ exporters: [grpc-out, http-out] }}
"#
    ));
    // The first Collector: what it received goes to its own file, and to weir over both transports.
    let (a_grpc, a_http) = (free_port(), free_port());
    let (grpc_in, http_in) = arrangement.into_weir;
    let first = Collector::start(|dir| {
        let mut yaml = format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:{a_grpc}" }}, http: {{ endpoint: "127.0.0.1:{a_http}" }} }} }}
exporters:
  file/sent: {{ path: "{dir}/sent.json", flush_interval: 50ms }}
  otlp_grpc/weir:
    endpoint: "{weir_grpc}"
    tls: {{ insecure: true }}
    compression: {grpc_in}
    sending_queue: {{ enabled: false }}
  otlp_http/weir:
    endpoint: "http://{weir_http}"
    compression: {http_in}
    sending_queue: {{ enabled: false }}
service:
  {COLLECTOR_TELEMETRY}
  pipelines:
"#,
            dir = dir.display(),
            weir_grpc = weir.grpc,
            weir_http = weir.http,
        );
        for s in Signal::ALL {
            yaml += &format!(
                "    {}: {{ receivers: [otlp], exporters: [file/sent, otlp_grpc/weir, otlp_http/weir] }}\n",
                pipeline(s)
            );
        }
        yaml
    })
    .expect("the first Collector starts where the second did");

    // Traces, metrics and logs from the OpenTelemetry SDK; profiles (which the SDK does not make)
    // from the profiles example, as protobuf over OTLP/HTTP.
    let (g, h) = (
        format!("http://127.0.0.1:{a_grpc}"),
        format!("http://127.0.0.1:{a_http}"),
    );
    let sdk = arrangement.sdk;
    let ids = tokio::task::spawn_blocking(move || emit_with_sdk(sdk, g, h))
        .await
        .unwrap();
    let profile = Payload::decode_json(Signal::Profiles, &example("profiles.json")).unwrap();
    let (status, _, body) = post(
        &format!("http://127.0.0.1:{a_http}{}", Signal::Profiles.http_path()),
        &[("content-type", "application/x-protobuf")],
        profile.encode_protobuf(),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");

    // 3 spans, at least 1 data point, 2 log records, 1 profiles request.
    let count =
        |items: &[(Signal, Vec<u8>)], s: Signal| items.iter().filter(|(x, _)| *x == s).count();
    let sent = wait_for_written_until(&first.file("sent.json"), |got| {
        count(got, Signal::Traces) >= 3
            && count(got, Signal::Logs) >= 2
            && count(got, Signal::Profiles) >= 1
            && count(got, Signal::Metrics) >= 1
    })
    .await;
    let signals = |s: Signal| count(&sent, s);
    assert_eq!(signals(Signal::Traces), 3, "{}", first.process.output());
    assert_eq!(signals(Signal::Logs), 2);
    assert_eq!(signals(Signal::Profiles), 1);
    assert!(signals(Signal::Metrics) >= 1);
    // The SDK's spans are in what the first Collector sent, by id.
    let Payload::Traces(first_spans) = &written(&first.file("sent.json"))
        .into_iter()
        .find(|p| p.signal() == Signal::Traces)
        .unwrap()
    else {
        unreachable!()
    };
    let span_ids: Vec<_> = first_spans
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.clone())
        .collect();
    assert!(
        ids.iter()
            .any(|(_, span)| span_ids.contains(&span.to_vec()))
    );

    // Each item went to weir twice (over gRPC and over HTTP) and weir sent each copy out twice (to
    // the gRPC and the HTTP receiver): each file of the second Collector has every item twice.
    // (What the first Collector wrote is read again each time: a last metric export may land in
    // its file after the counts above were reached.)
    for file in ["grpc.json", "http.json"] {
        let (got, sent) = poll(
            || {
                let sent = items(&written(&first.file("sent.json")));
                (items(&written(&last.file(file))), sent)
            },
            |(got, sent)| *got == times(sent, 2),
        )
        .await;
        assert!(
            got == times(&sent, 2),
            "{file}: {} items, {} expected; weir: {:?}; the last Collector: {}",
            got.len(),
            2 * sent.len(),
            weir.logs
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take(20)
                .collect::<Vec<_>>(),
            last.process.output()
        );
    }
    assert_eq!(
        weir.metric(r#"weir_export_failed_items_total{signal="traces",exporter="grpc-out",retryable="true"}"#)
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_through_collector_weir_collector_arrives_equal_grpc_gzip_in_http_gzip_out() {
    sdk_collector_weir_collector(Arrangement {
        sdk: Via::Grpc,
        into_weir: ("gzip", "none"),
        out_of_weir: ("none", "gzip"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_through_collector_weir_collector_arrives_equal_http_gzip_in_grpc_gzip_out() {
    sdk_collector_weir_collector(Arrangement {
        sdk: Via::Http,
        into_weir: ("none", "gzip"),
        out_of_weir: ("gzip", "none"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weir_forwards_to_a_collector_over_tls_with_a_ca_the_test_made() {
    use weir_tls::test_pki::Ca;
    let ca = Ca::new("interop CA");
    let pki = tempfile::tempdir().unwrap();
    let ca_path = pki.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let (cert, key) = ca
        .leaf(&["collector.weir.test"], &[], "collector")
        .write(pki.path(), "collector");
    let (grpc, http) = (free_port(), free_port());
    let Some(collector) = Collector::start(|dir| {
        collector_into_files(
            &[("grpc", "grpc", grpc), ("http", "http", http)],
            Some((&cert, &key)),
        )
        .replace("@DIR@", &dir.display().to_string())
    }) else {
        return;
    };
    let tls = format!(
        r#"{{ ca: "{}", server_name: collector.weir.test }}"#,
        ca_path.display()
    );
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  over-grpc: {{ otlp: {{ endpoint: "https://127.0.0.1:{grpc}", protocol: grpc, tls: {tls} }} }}
  over-http: {{ otlp: {{ endpoint: "https://127.0.0.1:{http}", protocol: http, tls: {tls} }} }}
"#
    ));
    let payload = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    let (status, _, body) = post(
        &weir.http_url(Signal::Traces),
        &[("content-type", "application/x-protobuf")],
        payload.encode_protobuf(),
    )
    .await;
    assert_eq!(
        status, 200,
        "both Collector receivers acknowledged over TLS: {body:?}"
    );
    let want = items(std::slice::from_ref(&payload));
    for file in ["grpc.json", "http.json"] {
        assert_eq!(
            wait_for_written(&collector.file(file), want.len()).await,
            want,
            "{file}"
        );
    }
}

/// A Collector whose `otlp` receiver hands everything to an `otlp_grpc` exporter towards `upstream`
/// without a queue or retries, so that what the upstream answers is what the Collector answers.
fn collector_in_front_of(upstream: &str, grpc: u16, http: u16) -> String {
    let endpoint = upstream
        .trim_start_matches("grpc://")
        .trim_start_matches("http://");
    let mut yaml = format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:{grpc}" }}, http: {{ endpoint: "127.0.0.1:{http}" }} }} }}
exporters:
  otlp_grpc/up:
    endpoint: "{endpoint}"
    tls: {{ insecure: true }}
    sending_queue: {{ enabled: false }}
    retry_on_failure: {{ enabled: false }}
service:
  {COLLECTOR_TELEMETRY}
  pipelines:
"#
    );
    for s in Signal::ALL {
        yaml += &format!(
            "    {}: {{ receivers: [otlp], exporters: [otlp_grpc/up] }}\n",
            pipeline(s)
        );
    }
    yaml
}

#[tokio::test(flavor = "multi_thread")]
async fn the_collectors_answers_reach_weirs_clients_as_what_they_mean() {
    let (upstream, url) = Recorder::grpc().await;
    let (grpc, http) = (free_port(), free_port());
    let Some(collector) = Collector::start(|_| collector_in_front_of(&url, grpc, http)) else {
        return;
    };
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ request_timeout: 2s }}
exporters:
  collector:
    otlp: {{ endpoint: "http://127.0.0.1:{grpc}", protocol: grpc }}
    retry: {{ initial_interval: 20ms, max_interval: 100ms }}
"#
    ));
    let payload = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    let send = || grpc_raw(&weir, Signal::Traces, payload.encode_protobuf(), false);

    // A permanent refusal behind the Collector: the Collector says INVALID_ARGUMENT (its permanent
    // error), weir does not retry it and tells its client the same.
    upstream.always(Some(Answer::Status(
        tonic::Code::InvalidArgument,
        "span name too long",
    )));
    let err = send().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("span name too long"), "{err:?}");
    let calls = upstream.calls();
    assert_eq!(calls, 1, "a permanent error is not retried");

    // A retryable one: the Collector says UNAVAILABLE, weir retries within the client's deadline
    // and then answers UNAVAILABLE, never a success.
    upstream.always(Some(Answer::Status(
        tonic::Code::Unavailable,
        "backend down",
    )));
    let err = send().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        upstream.calls() > calls + 1,
        "retried: {}",
        upstream.calls()
    );

    // Back up: the data arrives, once, as sent.
    upstream.always(None);
    send().await.expect("accepted once the backend is back");
    let got = upstream.wait_for_items(payload.item_count()).await;
    assert_eq!(items(&got), items(std::slice::from_ref(&payload)));

    // A partial success behind the Collector: the Collector's exporter logs the backend's rejection
    // and reports a full success to its own client (weir), so weir's client sees a success with no
    // rejected items (what the Collector gave weir, relayed as it was).
    upstream.always(Some(Answer::Partial(1, "one span dropped")));
    let body = send().await.expect("a partial success is a success");
    let response =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(body)
            .unwrap();
    assert_eq!(
        response
            .partial_success
            .map(|p| p.rejected_spans)
            .unwrap_or(0),
        0
    );
    drop(collector);
}

/// A protobuf length-delimited field.
fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// A traces request of one span whose encoding is `span` (hand-made, so that it can hold what prost
/// would not write: a field no version of OTLP has, a name that is not UTF-8).
fn traces_of_span_bytes(span: &[u8]) -> Vec<u8> {
    let scope_spans = field(2, span);
    let resource_spans = field(2, &scope_spans);
    field(1, &resource_spans)
}

/// One valid span, encoded.
fn span_bytes(trace_id: Vec<u8>, span_id: Vec<u8>, name: &str) -> Vec<u8> {
    opentelemetry_proto::tonic::trace::v1::Span {
        trace_id,
        span_id,
        name: name.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn what_weir_accepts_the_collectors_strict_decoding_accepts_and_weir_refuses_the_rest_at_the_edge()
 {
    let (grpc, http) = (free_port(), free_port());
    let Some(collector) = Collector::start(|dir| {
        collector_into_files(&[("in", "grpc", grpc), ("http", "http", http)], None)
            .replace("@DIR@", &dir.display().to_string())
    }) else {
        return;
    };
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  collector: {{ otlp: {{ endpoint: "http://127.0.0.1:{grpc}", protocol: grpc }} }}
"#
    ));
    let (trace, span) = (vec![7u8; 16], vec![9u8; 8]);
    let mut bad_utf8 = span_bytes(trace.clone(), span.clone(), "@@@@");
    let at = bad_utf8.windows(4).position(|w| w == b"@@@@").unwrap();
    bad_utf8[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    let mut unknown_field = span_bytes(trace.clone(), span.clone(), "from a newer OTLP");
    // Field 100, a varint: what a newer version of OTLP could add to a span.
    unknown_field.extend_from_slice(&[0xa0, 0x06, 0x01]);
    let mut big_kind = span_bytes(trace.clone(), span.clone(), "kind 99");
    big_kind.extend_from_slice(&[0x30, 99]);
    // (case, body, weir's status, the Collector's own status for the same body). What weir accepts
    // must reach the Collector and be taken by its decoding; what the Collector's decoding refuses,
    // weir refuses at its edge (400), so that it is never merged into another client's request and
    // refused upstream with it. One case where weir is stricter, by decision (ARCHITECTURE.md):
    // a string that is not UTF-8, which proto3 forbids and which prost, Java and Python refuse,
    // while the Collector takes it.
    let cases: Vec<(&str, Vec<u8>, u16, u16)> = vec![
        (
            "a 3-byte trace id",
            traces_of_span_bytes(&span_bytes(vec![1, 2, 3], span.clone(), "short trace id")),
            400,
            400,
        ),
        (
            "a 9-byte span id",
            traces_of_span_bytes(&span_bytes(trace.clone(), vec![1; 9], "long span id")),
            400,
            400,
        ),
        (
            "a name that is not UTF-8",
            traces_of_span_bytes(&bad_utf8),
            400,
            200,
        ),
        (
            "an unknown field",
            traces_of_span_bytes(&unknown_field),
            200,
            200,
        ),
        (
            "a span kind past the enum",
            traces_of_span_bytes(&big_kind),
            200,
            200,
        ),
        (
            "empty ids",
            traces_of_span_bytes(&span_bytes(Vec::new(), Vec::new(), "no ids")),
            200,
            200,
        ),
    ];
    let ct = [("content-type", "application/x-protobuf")];
    let mut accepted = 0;
    for (case, body, weir_status, collector_status) in &cases {
        let (status, _, resp) = post(&weir.http_url(Signal::Traces), &ct, body.clone()).await;
        assert_eq!(status, *weir_status, "{case}: weir answered {resp:?}");
        let (direct, _, resp) = post(
            &format!("http://127.0.0.1:{http}{}", Signal::Traces.http_path()),
            &ct,
            body.clone(),
        )
        .await;
        assert_eq!(
            direct, *collector_status,
            "{case}: the Collector answered {resp:?}"
        );
        if status == 200 {
            accepted += 1;
        }
    }
    // Every case weir accepted arrived through the Collector's gRPC receiver, decoded.
    let got = wait_for_written(&collector.file("in.json"), accepted).await;
    assert_eq!(got.len(), accepted, "{}", collector.process.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn weirs_traces_cross_a_kafka_broker_through_the_collectors_kafka_exporter_and_receiver() {
    let Some(kafka) = crate::peers::Kafka::start() else {
        return;
    };
    let brokers = kafka.bootstrap;
    let grpc = free_port();
    let Some(collector) = Collector::start(|dir| {
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:{grpc}" }} }} }}
  kafka:
    brokers: ["{brokers}"]
    traces: {{ topics: [weir_spans] }}
    initial_offset: earliest
    group_id: weir-interop
exporters:
  kafka:
    brokers: ["{brokers}"]
    traces: {{ topic: weir_spans }}
  file/out: {{ path: "{dir}/out.json", flush_interval: 50ms }}
service:
  {COLLECTOR_TELEMETRY}
  pipelines:
    traces/in: {{ receivers: [otlp], exporters: [kafka] }}
    traces/out: {{ receivers: [kafka], exporters: [file/out] }}
"#,
            dir = dir.display()
        )
    }) else {
        return;
    };
    let weir = Weir::with_config(&format!(
        "exporters:\n  collector: {{ otlp: {{ endpoint: \"http://127.0.0.1:{grpc}\", protocol: grpc }} }}\n"
    ));
    let payload = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    grpc_raw(&weir, Signal::Traces, payload.encode_protobuf(), true)
        .await
        .expect("acknowledged by the Collector once Kafka has it");
    let want = items(std::slice::from_ref(&payload));
    let got = wait_for_written(&collector.file("out.json"), want.len()).await;
    assert_eq!(
        got,
        want,
        "the Collector: {}\nKafka: {}",
        collector.process.output(),
        kafka.process.output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nats_peer_starts_with_jetstream_on_loopback() {
    let Some(nats) = crate::peers::Nats::start() else {
        return;
    };
    let (status, _, body) = get(&format!("http://{}/jsz", nats.monitor)).await;
    assert_eq!(status, 200);
    let jsz: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(jsz["config"]["store_dir"].is_string(), "{jsz}");
    let client =
        std::net::TcpStream::connect(nats.addr).expect("its client port takes connections");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(client), &mut line).unwrap();
    assert!(line.starts_with("INFO "), "{line}");
    assert!(line.contains("\"jetstream\":true"), "{line}");
    assert!(
        nats.process.output().contains("Starting JetStream"),
        "{}",
        nats.process.output()
    );
}

/// Every input of the protobuf fuzz corpus (`fuzz/corpus/otlp_protobuf`: its first byte picks the
/// signal, the rest is the request) that weir's walk accepts, which is what weir forwards as it came,
/// the Collector's decoding accepts too.
#[tokio::test(flavor = "multi_thread")]
async fn every_fuzz_corpus_request_weir_accepts_the_collector_accepts() {
    let http = free_port();
    let Some(collector) = Collector::start(|dir| {
        collector_into_files(&[("http", "http", http)], None)
            .replace("@DIR@", &dir.display().to_string())
    }) else {
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/otlp_protobuf");
    let mut inputs: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    let (mut accepted, mut refused) = (0, Vec::new());
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        let Some((&first, body)) = data.split_first() else {
            continue;
        };
        let signal = if first & 0x80 != 0 {
            Signal::Profiles
        } else {
            Signal::ALL[usize::from(first) % 3]
        };
        if weir_wire::walk::walk(signal, body).is_err() {
            continue;
        }
        accepted += 1;
        let (status, _, text) = post(
            &format!("http://127.0.0.1:{http}{}", signal.http_path()),
            &[("content-type", "application/x-protobuf")],
            body.to_vec(),
        )
        .await;
        if status != 200 {
            let text = String::from_utf8_lossy(&text);
            refused.push(format!(
                "{} ({signal}): {status} {text}",
                path.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        accepted > 100,
        "only {accepted} accepted inputs in the corpus"
    );
    assert!(
        refused.is_empty(),
        "{} of {accepted} requests weir accepts the Collector refuses:\n{}\n{}",
        refused.len(),
        refused.join("\n"),
        collector.process.output()
    );
}
