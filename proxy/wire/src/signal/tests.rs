use super::*;

const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/otlp-examples"
);

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!("{EXAMPLES}/{name}")).unwrap()
}

#[test]
fn spec_trace_example_decodes_with_hex_ids() {
    let p = Payload::decode_json(Signal::Traces, &example("trace.json")).unwrap();
    let Payload::Traces(r) = &p else { panic!() };
    let span = &r.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        span.trace_id,
        [
            0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
            0xc6, 0x0c
        ]
    );
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, 1544712660000000000);
    assert_eq!(p.item_count(), 1);
}

#[test]
fn spec_examples_round_trip_through_protobuf_and_json() {
    for (signal, file) in [
        (Signal::Traces, "trace.json"),
        (Signal::Metrics, "metrics.json"),
        (Signal::Logs, "logs.json"),
    ] {
        let p = Payload::decode_json(signal, &example(file)).unwrap();
        assert!(p.item_count() > 0, "{file}");
        let pb = Payload::decode_protobuf(signal, &p.encode_protobuf()).unwrap();
        assert_eq!(pb, p, "{file} via protobuf");
        let js = Payload::decode_json(signal, &p.encode_json()).unwrap();
        assert_eq!(js, p, "{file} via json");
    }
}

#[test]
fn json_accepts_numbers_or_strings_and_ignores_unknown_fields() {
    let a = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C",
        "spanId":"EEE19B7EC3C1B174","name":"a","kind":2,"startTimeUnixNano":"1544712660000000000",
        "unknownField":{"x":1}}]}]}],"somethingNew":true}"#;
    let b = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
        "spanId":"eee19b7ec3c1b174","name":"a","kind":2,"startTimeUnixNano":1544712660000000000}]}]}]}"#;
    let a = Payload::decode_json(Signal::Traces, a).unwrap();
    let b = Payload::decode_json(Signal::Traces, b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn empty_requests_decode() {
    for s in Signal::ALL {
        assert_eq!(Payload::decode_json(s, b"{}").unwrap().item_count(), 0);
        assert_eq!(Payload::decode_protobuf(s, b"").unwrap().item_count(), 0);
    }
}

#[test]
fn select_items_equals_clone_then_retain() {
    for (signal, file) in [
        (Signal::Traces, "trace.json"),
        (Signal::Metrics, "metrics.json"),
        (Signal::Logs, "logs.json"),
    ] {
        let p = Payload::decode_json(signal, &example(file)).unwrap();
        // Twice the example's resources, so that a selection can drop whole resources.
        let mut p2 = p.clone();
        match (&mut p2, &p) {
            (Payload::Traces(a), Payload::Traces(b)) => {
                a.resource_spans.extend(b.resource_spans.clone())
            }
            (Payload::Metrics(a), Payload::Metrics(b)) => {
                a.resource_metrics.extend(b.resource_metrics.clone())
            }
            (Payload::Logs(a), Payload::Logs(b)) => a.resource_logs.extend(b.resource_logs.clone()),
            _ => unreachable!(),
        }
        let n = p2.item_count();
        for keep in [
            &(|_: usize| true) as &dyn Fn(usize) -> bool,
            &|_| false,
            &|i| i % 2 == 0,
            &|i| i < n / 2,
        ] {
            let mut retained = p2.clone();
            retained.retain_items(keep);
            assert_eq!(p2.select_items(keep), retained, "{file}");
        }
    }
}

#[test]
fn garbage_is_an_error() {
    assert!(Payload::decode_json(Signal::Logs, b"{\"resourceLogs\": 5}").is_err());
    assert!(Payload::decode_protobuf(Signal::Traces, &[0xff, 0xff, 0xff]).is_err());
}
