use super::walker::{FIXED32, FIXED64, LEN, START_GROUP, VARINT};

/// The end-group wire type, which the walk never reads: it refuses the group before.
const END_GROUP: u8 = 4;
use super::*;
use crate::Payload;
use opentelemetry_proto::tonic::trace::v1 as t;
use std::mem::size_of as z;

const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/otlp-examples"
);

fn examples() -> Vec<(Signal, Vec<u8>)> {
    [
        (Signal::Traces, "trace.json"),
        (Signal::Metrics, "metrics.json"),
        (Signal::Logs, "logs.json"),
    ]
    .into_iter()
    .map(|(s, f)| {
        let json = std::fs::read(format!("{EXAMPLES}/{f}")).unwrap();
        (s, Payload::decode_json(s, &json).unwrap().encode_protobuf())
    })
    .collect()
}

/// The walk and prost agree on `bytes`: same verdict, and on success the same counts.
fn agree(signal: Signal, bytes: &[u8]) -> bool {
    let walked = walk(signal, bytes);
    let decoded = Payload::decode_protobuf(signal, bytes);
    match (&walked, &decoded) {
        (Ok(c), Ok(p)) => {
            assert_eq!(c.items, p.item_count(), "{signal} items of {bytes:02x?}");
            assert_eq!(c.resources, p.resource_count(), "{signal} resources");
            true
        }
        (Err(_), Err(_)) => false,
        // The data model's id lengths, which prost does not check.
        (Err(WalkError::InvalidId { .. }), Ok(p)) if !p.ids_are_valid() => false,
        _ => panic!("walk {walked:?} but prost {decoded:?} on {signal} {bytes:02x?}"),
    }
}

#[test]
fn counts_the_specification_examples_as_prost_does() {
    for (signal, bytes) in examples() {
        assert!(agree(signal, &bytes));
        assert!(walk(signal, &bytes).unwrap().items > 0);
    }
    for s in Signal::ALL {
        assert_eq!(walk(s, b"").unwrap(), Counts::default());
    }
}

#[test]
fn ids_of_the_wrong_length_are_refused_and_empty_ones_allowed() {
    use opentelemetry_proto::tonic::trace::v1::{Span, span::Link};
    let traces = |span: Span| {
        let p = Payload::Traces(
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
                resource_spans: vec![t::ResourceSpans {
                    scope_spans: vec![t::ScopeSpans {
                        spans: vec![span],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
        );
        (walk(Signal::Traces, &p.encode_protobuf()), p.check_ids())
    };
    let good = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        ..Default::default()
    };
    assert!(traces(good.clone()).0.is_ok());
    assert!(traces(Span::default()).0.is_ok(), "empty ids are allowed");
    for bad in [
        Span {
            trace_id: vec![1; 3],
            ..good.clone()
        },
        Span {
            span_id: vec![1; 16],
            ..good.clone()
        },
        Span {
            parent_span_id: vec![1; 7],
            ..good.clone()
        },
        Span {
            links: vec![Link {
                trace_id: vec![1; 15],
                span_id: vec![1; 8],
                ..Default::default()
            }],
            ..good.clone()
        },
    ] {
        let (walked, checked) = traces(bad);
        assert!(
            matches!(walked, Err(WalkError::InvalidId { .. })),
            "{walked:?}"
        );
        assert_eq!(walked.map(|_| ()), checked, "protobuf and JSON agree");
    }
    // A singular field sent twice: decoding keeps the last, and so does the check.
    let mut twice = Payload::Traces(
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: vec![t::ResourceSpans {
                scope_spans: vec![t::ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 3],
                        ..good.clone()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        },
    )
    .encode_protobuf();
    // Append a second trace_id (field 1, 16 bytes) inside the span: the span is the last
    // message, so its bytes end the buffer, and every enclosing length grows by 18.
    let extra = [[0x0a, 16].as_slice(), &[9; 16]].concat();
    assert_eq!(twice[0], 0x0a, "resource_spans");
    twice.extend_from_slice(&extra);
    for at in [1usize, 3, 5] {
        twice[at] += extra.len() as u8;
    }
    let decoded = Payload::decode_protobuf(Signal::Traces, &twice).unwrap();
    assert!(decoded.ids_are_valid(), "prost keeps the last id");
    assert!(agree(Signal::Traces, &twice), "the walk does too");
    let e = traces(Span {
        trace_id: vec![1; 3],
        ..good
    })
    .0
    .unwrap_err();
    assert_eq!(e.to_string(), "invalid trace id: 3 bytes, not 16 (or none)");
}

#[test]
fn the_decoded_size_bound_covers_empty_messages() {
    // Issue 20: `{}` and `12 00` cost a few bytes on the wire and a whole struct decoded.
    // One ResourceSpans holding 1000 empty ScopeSpans.
    let scopes = [0x12u8, 0x00].repeat(1000);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(scopes.len() as u64, &mut body);
    body.extend_from_slice(&scopes);
    let counts = walk(Signal::Traces, &body).unwrap();
    let decoded = Payload::decode_protobuf(Signal::Traces, &body).unwrap();
    let Payload::Traces(r) = &decoded else {
        unreachable!()
    };
    let scopes = &r.resource_spans[0].scope_spans;
    assert_eq!(scopes.len(), 1000);
    let heap = scopes.capacity() * z::<t::ScopeSpans>() + z::<t::ResourceSpans>();
    assert!(
        counts.decoded_bytes >= heap,
        "{} < {heap}",
        counts.decoded_bytes
    );
    assert!(counts.decoded_bytes > 50 * body.len(), "{counts:?}");
    // JSON: an object costs at least the largest struct.
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        vec!["{}"; 1000].join(",")
    );
    assert!(json_decoded_bound(json.as_bytes()) >= 1000 * z::<t::Span>() * 3);
}

/// Every single-byte change and every truncation of the examples: the walk and prost agree.
#[test]
fn agrees_with_prost_on_every_mutation_of_the_examples() {
    let mut refused = 0;
    for (signal, bytes) in examples() {
        for cut in 0..bytes.len() {
            refused += usize::from(!agree(signal, &bytes[..cut]));
        }
        for i in 0..bytes.len() {
            for b in [
                0x00,
                0x01,
                0x02,
                0x07,
                0x0a,
                0x7f,
                0x80,
                0xc0,
                0xff,
                bytes[i] ^ 0x08,
            ] {
                let mut m = bytes.clone();
                m[i] = b;
                refused += usize::from(!agree(signal, &m));
            }
        }
    }
    // The mutations must include invalid inputs, or the test would prove nothing.
    assert!(refused > 1000, "{refused}");
}

fn key(tag: u32, wire: u8) -> Vec<u8> {
    let mut v = Vec::new();
    varint((u64::from(tag) << 3) | u64::from(wire), &mut v);
    v
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn len_field(tag: u32, body: &[u8]) -> Vec<u8> {
    let mut v = key(tag, LEN);
    varint(body.len() as u64, &mut v);
    v.extend_from_slice(body);
    v
}

#[test]
fn agrees_on_hand_made_edge_cases() {
    // A scope with one span whose name is not UTF-8, and the same with a valid name.
    let span = |name: &[u8]| len_field(5, name);
    let req = |span: Vec<u8>| len_field(1, &len_field(2, &len_field(2, &span)));
    assert!(!agree(Signal::Traces, &req(span(&[0xff, 0xfe]))));
    assert!(agree(Signal::Traces, &req(span(b"ok"))));
    // Unknown fields of every wire type but groups are skipped; a stray end group is not.
    let mut unknown = key(99, VARINT);
    unknown.push(5);
    unknown.extend(key(98, FIXED32));
    unknown.extend([1, 2, 3, 4]);
    unknown.extend(key(96, FIXED64));
    unknown.extend([0; 8]);
    unknown.extend(key(95, LEN));
    unknown.extend([2, 7, 7]);
    assert!(agree(Signal::Traces, &req(unknown.clone())));
    let mut stray = unknown.clone();
    stray.extend(key(95, END_GROUP));
    assert!(!agree(Signal::Traces, &req(stray)));
    // A group, even a well-formed one: prost skips it; the walk refuses it, as the OpenTelemetry
    // Collector does (no OTLP message has one).
    let mut group = unknown.clone();
    group.extend(key(97, START_GROUP));
    group.extend(key(96, FIXED64));
    group.extend([0; 8]);
    group.extend(key(97, END_GROUP));
    assert!(Payload::decode_protobuf(Signal::Traces, &req(group.clone())).is_ok());
    assert_eq!(
        walk(Signal::Traces, &req(group)),
        Err(WalkError::Group { tag: 97 })
    );
    // A known field with the wrong wire type.
    let mut wrong = key(5, VARINT);
    wrong.push(1);
    assert!(!agree(Signal::Traces, &req(wrong)));
    // A ten-byte varint whose last byte overflows, and the largest one that does not.
    let mut big = key(10, VARINT);
    big.extend([0xff; 9]);
    let (mut over, mut max) = (big.clone(), big);
    over.push(0x02);
    max.push(0x01);
    assert!(!agree(Signal::Traces, &req(over)));
    assert!(agree(Signal::Traces, &req(max)));
    // Packed and unpacked bucket counts and bounds in a histogram point.
    let mut point = len_field(6, &[0u8; 16]);
    point.extend(key(6, FIXED64));
    point.extend([0u8; 8]);
    point.extend(len_field(7, &[0u8; 8]));
    let hist = |point: Vec<u8>| {
        let metric = len_field(9, &len_field(1, &point));
        len_field(1, &len_field(2, &len_field(2, &metric)))
    };
    assert!(agree(Signal::Metrics, &hist(point)));
    assert!(!agree(Signal::Metrics, &hist(len_field(6, &[0u8; 12]))));
}

#[test]
fn a_metric_counts_the_points_of_the_data_variant_decoding_keeps() {
    let point = len_field(1, &[]);
    let gauge = len_field(5, &[point.clone(), point.clone()].concat());
    let sum = len_field(7, &point);
    let metric = |parts: &[&[u8]]| {
        let m = len_field(2, &len_field(2, &parts.concat()));
        len_field(1, &m)
    };
    // Same variant twice: merged (3 points); another variant after it: replaced (1 point);
    // back to the first: a fresh value (2 points).
    for (parts, points) in [
        (vec![&gauge[..], &gauge[..]], 4),
        (vec![&gauge[..], &sum[..]], 1),
        (vec![&gauge[..], &sum[..], &gauge[..]], 2),
    ] {
        let bytes = metric(&parts);
        assert!(agree(Signal::Metrics, &bytes));
        assert_eq!(walk(Signal::Metrics, &bytes).unwrap().items, points);
    }
}

#[test]
fn nesting_stops_where_prost_stops() {
    // AnyValue inside ArrayValue inside AnyValue ..., in a log record's body: around depth 48 the
    // nesting passes prost's limit of 100 messages.
    let mut verdicts = Vec::new();
    for depth in [40usize, 45, 46, 47, 48, 49, 50, 60] {
        let mut value = len_field(1, b"x");
        for _ in 0..depth {
            value = len_field(5, &len_field(1, &value));
        }
        let record = len_field(5, &value);
        let bytes = len_field(1, &len_field(2, &len_field(2, &record)));
        verdicts.push(agree(Signal::Logs, &bytes));
    }
    assert_eq!(verdicts.first(), Some(&true));
    assert_eq!(verdicts.last(), Some(&false));
}

#[test]
fn a_repeated_string_is_charged_its_string_as_well_as_its_bytes() {
    // A dictionary of 10,000 empty strings: two bytes each on the wire, a `String` each decoded.
    let entries = [0x2a, 0x00].repeat(10_000);
    let mut bytes = vec![0x12];
    varint(entries.len() as u64, &mut bytes);
    bytes.extend_from_slice(&entries);
    let counts = walk(Signal::Profiles, &bytes).unwrap();
    assert!(
        counts.decoded_bytes >= 10_000 * z::<String>(),
        "{} bytes charged",
        counts.decoded_bytes
    );
}

#[test]
fn profiles_attribute_keys_and_values_may_index_the_string_table_and_are_checked() {
    use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::profiles::v1development::{
        ProfilesDictionary, ResourceProfiles,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let request = |key: i32, value: i32| {
        ExportProfilesServiceRequest {
            resource_profiles: vec![ResourceProfiles {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: String::new(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValueStrindex(value)),
                        }),
                        key_strindex: key,
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            dictionary: Some(ProfilesDictionary {
                string_table: vec![String::new(), "k".into(), "v".into()],
                ..Default::default()
            }),
        }
        .encode_to_vec()
    };
    assert!(walk(Signal::Profiles, &request(1, 2)).is_ok());
    assert!(matches!(
        walk(Signal::Profiles, &request(3, 2)),
        Err(WalkError::InvalidIndex {
            table: "string_table",
            index: 3,
            len: 3
        })
    ));
    assert!(matches!(
        walk(Signal::Profiles, &request(1, 7)),
        Err(WalkError::InvalidIndex {
            table: "string_table",
            ..
        })
    ));
}

#[test]
fn the_first_entry_of_a_dictionary_table_must_be_its_zero_value() {
    // string_table ["x"]: its first entry is not "".
    let bytes = [0x12, 0x03, 0x2a, 0x01, b'x'];
    assert!(matches!(
        walk(Signal::Profiles, &bytes),
        Err(WalkError::FirstEntryNotZero {
            table: "string_table"
        })
    ));
    // ["", "x"] is fine.
    assert!(
        walk(
            Signal::Profiles,
            &[0x12, 0x05, 0x2a, 0x00, 0x2a, 0x01, b'x']
        )
        .is_ok()
    );
}

#[test]
fn a_first_entry_whose_fields_are_all_zero_is_the_zero_value() {
    // dictionary { string_table [""], attribute_table [E, {key_strindex: 0}] }.
    let with_first = |entry: &[u8]| {
        let mut dict = vec![0x2a, 0x00];
        dict.push(0x32);
        dict.push(entry.len() as u8);
        dict.extend_from_slice(entry);
        dict.extend_from_slice(&[0x32, 0x00]);
        let mut bytes = vec![0x12, dict.len() as u8];
        bytes.extend_from_slice(&dict);
        walk(Signal::Profiles, &bytes)
    };
    // As the OpenTelemetry Collector writes it: `{value: {}}`, an empty AnyValue present.
    assert!(with_first(&[0x12, 0x00]).is_ok());
    // An explicit zero index and an empty value: still zero.
    assert!(with_first(&[0x08, 0x00, 0x12, 0x00]).is_ok());
    // A location whose one attribute index is 0 has an element in a repeated field: not the zero
    // value, though every number in it is 0 (its re-encoding, packed, says so plainly).
    let dict = [0x12, 0x02, 0x20, 0x00];
    let mut bytes = vec![0x12, dict.len() as u8];
    bytes.extend_from_slice(&dict);
    assert!(matches!(
        walk(Signal::Profiles, &bytes),
        Err(WalkError::FirstEntryNotZero {
            table: "location_table"
        })
    ));
    // A key index, or a value with something in it, is not.
    for entry in [
        &[0x08, 0x01][..],
        &[0x12, 0x02, 0x18, 0x01][..],
        &[0x12, 0x03, 0x0a, 0x01, b'x'][..],
    ] {
        assert!(
            matches!(
                with_first(entry),
                Err(WalkError::FirstEntryNotZero {
                    table: "attribute_table"
                })
            ),
            "{entry:?}"
        );
    }
}
