use super::*;
use crate::walk::{self, WalkError};
use crate::{Payload, Signal};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/otlp-examples/profiles.json"
);

fn example() -> ExportProfilesServiceRequest {
    decode_json(&std::fs::read(EXAMPLE).unwrap()).unwrap()
}

/// Each sample of each profile as what its indices resolve to: (sample type, frames as
/// "function@file:line", link ids, attributes as "key=value"), so that two requests can be compared
/// by meaning whatever their tables' order.
/// A sample resolved: (sample type, frames, link ids, attributes).
type Resolved = (String, Vec<String>, Vec<u8>, Vec<String>);

fn resolved(r: &ExportProfilesServiceRequest) -> Vec<Resolved> {
    let d = r.dictionary.clone().unwrap_or_default();
    let s = |i: i32| d.string_table[i as usize].clone();
    let attr = |i: &i32| {
        let a = &d.attribute_table[*i as usize];
        format!("{}={:?}", s(a.key_strindex), a.value)
    };
    let mut out = Vec::new();
    for p in r
        .resource_profiles
        .iter()
        .flat_map(|r| &r.scope_profiles)
        .flat_map(|s| &s.profiles)
    {
        let ty = p
            .sample_type
            .map(|t| format!("{}/{}", s(t.type_strindex), s(t.unit_strindex)));
        for sample in &p.samples {
            let frames = d.stack_table[sample.stack_index as usize]
                .location_indices
                .iter()
                .flat_map(|l| &d.location_table[*l as usize].lines)
                .map(|line| {
                    let f = &d.function_table[line.function_index as usize];
                    format!(
                        "{}@{}:{}",
                        s(f.name_strindex),
                        s(f.filename_strindex),
                        line.line
                    )
                })
                .collect();
            let link = &d.link_table[sample.link_index as usize];
            let ids = [link.trace_id.clone(), link.span_id.clone()].concat();
            let mut attrs: Vec<String> = sample.attribute_indices.iter().map(attr).collect();
            attrs.extend(p.attribute_indices.iter().map(attr));
            out.push((ty.clone().unwrap_or_default(), frames, ids, attrs));
        }
    }
    out
}

#[test]
fn the_example_decodes_from_otlp_json_with_hex_ids_and_string_integers() {
    let r = example();
    let p = &r.resource_profiles[0].scope_profiles[0].profiles[0];
    assert_eq!(
        p.profile_id,
        [
            0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
            0xc6, 0x0c
        ]
    );
    assert_eq!(p.time_unix_nano, 1544712660000000000);
    assert_eq!(p.period, 10_000_000);
    assert_eq!(p.samples[2].values, [4, 6]);
    assert_eq!(p.samples[1].timestamps_unix_nano.len(), 2);
    let d = r.dictionary.as_ref().unwrap();
    assert_eq!(
        d.link_table[1].span_id,
        [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
    );
    assert_eq!(d.string_table[6], "main");
    assert_eq!(sample_count(&r), 3);
    let walked = walk::walk(Signal::Profiles, &r.encode_to_vec()).unwrap();
    assert_eq!((walked.resources, walked.items), (1, 3));
}

#[test]
fn json_round_trips_through_protobuf_and_json() {
    let r = Payload::Profiles(example());
    let pb = Payload::decode_protobuf(Signal::Profiles, &r.encode_protobuf()).unwrap();
    assert_eq!(pb, r);
    let json = r.encode_json();
    let text = String::from_utf8(json.clone()).unwrap();
    assert!(
        text.contains("\"profileId\":\"5b8efff798038103d269b633813fc60c\""),
        "{text}"
    );
    assert!(text.contains("\"spanId\":\"eee19b7ec3c1b174\""), "{text}");
    assert_eq!(Payload::decode_json(Signal::Profiles, &json).unwrap(), r);
}

#[test]
fn json_ignores_unknown_fields_and_refuses_ids_that_are_not_hex() {
    let r = decode_json(br#"{"resourceProfiles":[{"somethingNew":1,"scopeProfiles":[{"profiles":[{"samples":[{"values":[1]}]}]}]}]}"#)
        .unwrap();
    assert_eq!(sample_count(&r), 1);
    assert!(
        decode_json(
            br#"{"resourceProfiles":[{"scopeProfiles":[{"profiles":[{"profileId":"zz"}]}]}]}"#
        )
        .is_err()
    );
    assert!(decode_json(br#"{"resourceProfiles":5}"#).is_err());
}

#[test]
fn merging_keeps_what_every_index_points_at() {
    let a = example();
    // A second request with other strings and a shorter dictionary, so that its indices mean
    // other entries in it than the same numbers in `a`.
    let mut b = example();
    let d = b.dictionary.as_mut().unwrap();
    d.string_table = d.string_table.iter().map(|s| format!("{s}-b")).collect();
    d.string_table[0] = String::new();
    d.stack_table.swap(1, 2);
    d.location_table.push(Default::default());
    let parts = [
        a.encode_to_vec(),
        b.encode_to_vec(),
        ExportProfilesServiceRequest::default().encode_to_vec(),
    ];
    let merged = merge(parts.iter().map(Vec::as_slice)).unwrap();
    let merged = ExportProfilesServiceRequest::decode(&merged[..]).unwrap();
    let mut want = resolved(&a);
    want.extend(resolved(&b));
    assert_eq!(resolved(&merged), want);
    assert_ne!(
        resolved(&a),
        resolved(&b),
        "the two parts must differ for the test to mean anything"
    );
    // Each table holds one zero value, then both parts' entries.
    let md = merged.dictionary.as_ref().unwrap();
    let ad = a.dictionary.as_ref().unwrap();
    assert_eq!(md.string_table.len(), 2 * ad.string_table.len() - 1);
    assert_eq!(md.string_table[0], "");
    // Plain concatenation, what merging the other signals does, gets it wrong.
    let concatenated =
        ExportProfilesServiceRequest::decode(&[parts[0].clone(), parts[1].clone()].concat()[..])
            .unwrap();
    assert_ne!(resolved(&concatenated)[3..], want[3..]);
    assert!(walk::walk(Signal::Profiles, &merged.encode_to_vec()).is_ok());
}

#[test]
fn the_walk_refuses_indices_that_point_past_their_table_or_below_zero() {
    let mut r = example();
    r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 3;
    assert!(matches!(
        walk::walk(Signal::Profiles, &r.encode_to_vec()),
        Err(WalkError::InvalidIndex {
            table: "stack_table",
            index: 3,
            len: 3
        })
    ));
    assert!(Payload::Profiles(r.clone()).check_ids().is_err());
    let mut r = example();
    r.dictionary.as_mut().unwrap().stack_table[2].location_indices[0] = -1;
    assert!(matches!(
        walk::walk(Signal::Profiles, &r.encode_to_vec()),
        Err(WalkError::InvalidIndex {
            table: "location_table",
            index: -1,
            ..
        })
    ));
    // Without a dictionary, index 0 (not set) is all a profile may use.
    let mut r = example();
    r.dictionary = None;
    assert!(walk::walk(Signal::Profiles, &r.encode_to_vec()).is_err());
    for p in r
        .resource_profiles
        .iter_mut()
        .flat_map(|r| &mut r.scope_profiles)
        .flat_map(|s| &mut s.profiles)
    {
        p.sample_type = None;
        p.period_type = None;
        p.attribute_indices.clear();
        for s in &mut p.samples {
            s.stack_index = 0;
            s.link_index = 0;
            s.attribute_indices.clear();
        }
    }
    assert!(walk::walk(Signal::Profiles, &r.encode_to_vec()).is_ok());
}

#[test]
fn the_walk_refuses_a_profile_id_or_link_id_of_the_wrong_length() {
    let mut r = example();
    r.resource_profiles[0].scope_profiles[0].profiles[0].profile_id = vec![1, 2, 3];
    assert!(matches!(
        walk::walk(Signal::Profiles, &r.encode_to_vec()),
        Err(WalkError::InvalidId {
            what: "profile id",
            want: 16,
            got: 3
        })
    ));
    let mut r = example();
    r.dictionary.as_mut().unwrap().link_table[1].span_id = vec![1; 9];
    assert!(matches!(
        walk::walk(Signal::Profiles, &r.encode_to_vec()),
        Err(WalkError::InvalidId {
            what: "span id",
            want: 8,
            got: 9
        })
    ));
}

#[test]
fn merging_shifts_attribute_keys_and_values_that_index_the_string_table() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
    // A resource attribute whose key and (nested) value are string-table indices, and a
    // dictionary attribute whose value is one.
    let tagged = |key: &str, value: &str| {
        let mut r = example();
        let d = r.dictionary.as_mut().unwrap();
        d.string_table.push(key.into());
        d.string_table.push(value.into());
        let (k, v) = (
            (d.string_table.len() - 2) as i32,
            (d.string_table.len() - 1) as i32,
        );
        d.attribute_table[1].value = Some(AnyValue {
            value: Some(any_value::Value::StringValueStrindex(v)),
        });
        r.resource_profiles[0]
            .resource
            .as_mut()
            .unwrap()
            .attributes
            .push(KeyValue {
                key: String::new(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::StringValueStrindex(v)),
                        }],
                    })),
                }),
                key_strindex: k,
            });
        r
    };
    let resolve = |r: &ExportProfilesServiceRequest| -> Vec<(String, String, String)> {
        let d = r.dictionary.as_ref().unwrap();
        let s = |i: i32| d.string_table[i as usize].clone();
        r.resource_profiles
            .iter()
            .map(|rp| {
                let kv = rp.resource.as_ref().unwrap().attributes.last().unwrap();
                let Some(any_value::Value::ArrayValue(a)) = &kv.value.as_ref().unwrap().value
                else {
                    panic!()
                };
                let Some(any_value::Value::StringValueStrindex(v)) = a.values[0].value else {
                    panic!()
                };
                let attr = rp.scope_profiles[0].profiles[0].attribute_indices[0];
                let Some(any_value::Value::StringValueStrindex(dv)) = d.attribute_table
                    [attr as usize]
                    .value
                    .as_ref()
                    .unwrap()
                    .value
                else {
                    panic!()
                };
                (s(kv.key_strindex), s(v), s(dv))
            })
            .collect()
    };
    let (a, b) = (tagged("team", "alpha"), tagged("owner", "bravo"));
    let merged = merge(
        [a.encode_to_vec(), b.encode_to_vec()]
            .iter()
            .map(Vec::as_slice),
    )
    .unwrap();
    let merged = ExportProfilesServiceRequest::decode(&merged[..]).unwrap();
    assert_eq!(
        resolve(&merged),
        [
            ("team".to_string(), "alpha".to_string(), "alpha".to_string()),
            (
                "owner".to_string(),
                "bravo".to_string(),
                "bravo".to_string()
            )
        ]
    );
    assert!(walk::walk(Signal::Profiles, &merged.encode_to_vec()).is_ok());
}
