use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

fn example(name: &str, signal: Signal) -> Payload {
    let path = format!(
        "{}/../../tests/data/otlp-examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Payload::decode_json(signal, &std::fs::read(path).unwrap()).unwrap()
}

fn batch(name: &str, signal: Signal) -> BatchState {
    BatchState::new(example(name, signal), http::HeaderMap::new(), None)
}

/// A string value.
fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}

#[test]
fn reads_span_fields_without_copying_attributes() {
    let b = batch("trace.json", Signal::Traces);
    assert_eq!(b.len(), 1);
    let t = b.trace_id(0).unwrap();
    assert_eq!(t.high, 0x5b8efff798038103);
    assert_eq!(t.low, 0xd269b633813fc60c);
    assert_eq!(b.trace_ids().len(), 1);
    assert_eq!(b.span_id(0).unwrap(), 0xeee19b7ec3c1b174);
    assert_eq!(b.span_name(0).unwrap(), "I'm a server span");
    assert_eq!(b.span_kind(0).unwrap(), 2);
    assert!(b.trace_id(1).is_err(), "index past the end is an error");
}

#[test]
fn set_and_remove_attributes_then_roll_back() {
    let mut b = batch("trace.json", Signal::Traces);
    let before = b.attributes(0).unwrap().to_vec();
    b.begin();
    b.set_attribute(0, "edge.zone", s("eu")).unwrap();
    b.set_attribute(0, "my.span.attr", s("changed")).unwrap();
    assert!(b.remove_attribute(0, "my.span.attr").unwrap());
    assert!(!b.remove_attribute(0, "absent").unwrap());
    b.set_resource_attribute(0, "service.name", s("renamed"))
        .unwrap();
    b.drop_item(0).unwrap();
    assert_eq!(b.attribute(0, "edge.zone").unwrap(), Some(&s("eu")));
    assert_eq!(b.modified_count(), 1);
    b.rollback();
    assert_eq!(b.attributes(0).unwrap(), before);
    assert!(!b.is_dropped(0).unwrap());
    assert_eq!(
        b.resource_attribute(0, "service.name").unwrap(),
        Some(&s("my.service"))
    );
    assert_eq!(b.finish().0, example("trace.json", Signal::Traces));
}

#[test]
fn dropped_items_leave_the_payload_and_empty_containers_go() {
    let mut b = batch("logs.json", Signal::Logs);
    b.drop_item(0).unwrap();
    assert_eq!(b.dropped_count(), 1);
    let p = b.finish().0;
    assert_eq!(p.item_count(), 0);
    assert_eq!(p.resource_count(), 0);
}

#[test]
fn metric_attributes_apply_to_every_point() {
    let mut b = batch("metrics.json", Signal::Metrics);
    assert_eq!(b.len(), 3);
    assert_eq!(b.metric_name(0).unwrap(), "my.counter");
    assert_eq!(b.metric_kind(0).unwrap(), MetricKind::Sum);
    let n = b.point_count(0).unwrap();
    assert!(n >= 1);
    let seven = AnyValue {
        value: Some(any_value::Value::IntValue(7)),
    };
    b.set_attribute(0, "k", seven).unwrap();
    let Payload::Metrics(m) = b.finish().0 else {
        panic!()
    };
    let Some(Data::Sum(sum)) = &m.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!()
    };
    for p in &sum.data_points {
        assert!(p.attributes.iter().any(|kv| kv.key == "k"));
    }
}

#[test]
fn values_round_trip_including_arrays_as_json() {
    let arr = AnyValue {
        value: Some(any_value::Value::ArrayValue(
            opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::IntValue(3)),
                }],
            },
        )),
    };
    use crate::bindings::v0_1::weir::filter::types::Value;
    let w = Value::from(&arr);
    assert!(matches!(&w, Value::Json(j) if j.contains("arrayValue")));
    assert_eq!(AnyValue::from(w), arr);
    assert_eq!(
        AnyValue::from(Value::Json("not json".into())),
        AnyValue {
            value: Some(any_value::Value::StringValue("not json".into()))
        }
    );
}

/// Three resources of two spans each, span names `r{resource}s{span}`.
fn routed_batch() -> BatchState {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let req = ExportTraceServiceRequest {
        resource_spans: (0..3)
            .map(|r| ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..2)
                        .map(|i| Span {
                            name: format!("r{r}s{i}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    BatchState::new(Payload::Traces(req), http::HeaderMap::new(), None)
}

#[test]
fn routes_label_resources_and_items_and_survive_drops() {
    let b = routed_batch();
    assert_eq!(b.resource_count(), 3);
    assert_eq!(b.finish().1, None, "no labels, no routing");

    // Labels alone change nothing in the payload: its bytes can go out as they came in.
    let mut b = routed_batch();
    b.set_route(0, vec!["a".into()]).unwrap();
    let (_, routing, changed) = b.finish();
    assert!(routing.is_some() && !changed);

    let mut b = routed_batch();
    b.set_route(1, vec!["b".into(), "a".into(), "a".into()])
        .unwrap();
    b.set_item_route(4, vec!["c".into()]).unwrap();
    b.set_item_route(5, vec!["a".into(), "b".into()]).unwrap();
    assert_eq!(b.route(2), Some(&["a".to_string(), "b".to_string()][..]));
    assert!(b.set_route(3, vec![]).is_err());
    assert!(b.set_item_route(6, vec![]).is_err());
    b.drop_item(0).unwrap();
    let (p, routing, changed) = b.finish();
    assert!(changed, "a dropped item is a change");
    assert_eq!(p.item_count(), 5);
    let routing = routing.unwrap();
    // Label sets are sorted, deduplicated and shared.
    assert_eq!(routing.sets, vec![vec!["a", "b"], vec!["c"]]);
    assert_eq!(
        routing.items,
        vec![None, Some(0), Some(0), Some(1), Some(0)]
    );
}

#[test]
fn route_labels_roll_back_with_the_filter_call() {
    let mut b = routed_batch();
    b.set_route(0, vec!["a".into()]).unwrap();
    b.begin();
    b.set_route(0, vec!["b".into()]).unwrap();
    b.set_item_route(3, vec!["b".into()]).unwrap();
    b.rollback();
    assert_eq!(b.route(0), Some(&["a".to_string()][..]));
    assert_eq!(b.route(3), None);
}

#[test]
fn event_and_link_attributes_are_read_changed_and_rolled_back() {
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    let mut payload = example("trace.json", Signal::Traces);
    let Payload::Traces(t) = &mut payload else {
        panic!()
    };
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let span = &mut t.resource_spans[0].scope_spans[0].spans[0];
    span.events.push(Event {
        name: "exception".into(),
        attributes: vec![kv("exception.message", "boom")],
        ..Default::default()
    });
    span.links.push(Link {
        attributes: vec![kv("peer", "x")],
        ..Default::default()
    });
    let original = payload.clone();
    let mut b = BatchState::new(payload, http::HeaderMap::new(), None);
    assert_eq!(b.event_count(0).unwrap(), 1);
    assert_eq!(b.link_count(0).unwrap(), 1);
    assert_eq!(b.event_name(0, 0).unwrap(), "exception");
    assert_eq!(
        b.event_attributes(0, 0).unwrap(),
        vec![kv("exception.message", "boom")]
    );
    b.begin();
    b.set_sub_attribute(0, false, 0, "exception.message", s("****"))
        .unwrap();
    assert_eq!(b.event_attributes(0, 0).unwrap()[0].value, Some(s("****")));
    assert!(b.remove_sub_attribute(0, true, 0, "peer").unwrap());
    assert!(b.link_attributes(0, 0).unwrap().is_empty());
    assert!(b.set_sub_attribute(0, false, 1, "k", s("v")).is_err());
    assert!(b.remove_sub_attribute(0, true, 1, "k").is_err());
    assert_eq!(b.modified_count(), 1);
    b.rollback();
    assert_eq!(b.finish().0, original);
}

mod v0_2 {
    //! The accessors `weir:filter@0.2.0` adds.

    //! They are read and written through interface 0.2's types, as its filters do.

    use super::*;
    use crate::batch::bulk::{Edit, Match, Selection};
    use crate::bindings::v0_2::weir::filter::kernels as k2;
    use crate::bindings::v0_2::weir::filter::types as t2;
    use t2::{AttributeEdit, EditOp, Lists, Location, Part, ValueKind};
    use weir_kernels::{Detector, PatternSet, PatternSpec};

    /// A bulk read as the interface returns it.
    fn read(b: &BatchState, lists: Lists, key: Option<&str>) -> t2::AttributeTable {
        let (data, entries) = b.read(lists.into(), key);
        t2::AttributeTable { data, entries }
    }

    /// Redacts what a scan found, as the interface hands it over.
    fn redact(
        b: &mut BatchState,
        found: &[k2::PatternMatch],
        how: k2::Rewrite,
        out_of_time: &mut dyn FnMut() -> bool,
    ) -> R<Option<u32>> {
        let found: Vec<Match> = found.iter().cloned().map(Match::from).collect();
        b.redact(&found, &how.into(), out_of_time)
    }

    fn entries(t: &t2::AttributeTable) -> Vec<(Location, String, ValueKind, String)> {
        t.entries
            .iter()
            .map(|e| {
                let text = |s: u32, l: u32| {
                    String::from_utf8(t.data[s as usize..(s + l) as usize].to_vec()).unwrap()
                };
                (
                    e.at,
                    text(e.key_start, e.key_len),
                    e.kind,
                    text(e.start, e.len),
                )
            })
            .collect()
    }

    #[test]
    fn scopes_are_numbered_across_the_batch() {
        let b = batch("metrics.json", Signal::Metrics);
        assert_eq!(b.scope_count(), 1);
        assert_eq!(b.item_scope(0).unwrap(), 0);
        assert_eq!(b.scope_resource(0).unwrap(), 0);
        assert_eq!(
            b.scope_info(0).unwrap(),
            ("my.library".to_string(), "1.0.0".to_string())
        );
        assert!(b.scope_info(1).is_err());
    }

    #[test]
    fn one_read_returns_every_list_and_one_key_across_items() {
        let b = batch("metrics.json", Signal::Metrics);
        let all = entries(&read(
            &b,
            Lists::RESOURCES | Lists::SCOPES | Lists::POINTS,
            None,
        ));
        assert_eq!(
            all[0],
            (
                Location::Resource(0),
                "service.name".into(),
                ValueKind::Str,
                "my.service".into()
            )
        );
        assert_eq!(all[1].0, Location::Scope(0));
        assert_eq!(all[1].3, "some scope attribute");
        assert!(
            all.iter()
                .any(|e| e.0 == Location::Point(Part { item: 0, index: 0 })
                    && e.1 == "my.counter.attr"),
            "{all:?}"
        );
        // Items of a metrics batch have no attributes of their own: points do.
        assert!(read(&b, Lists::ITEMS, None).entries.is_empty());
        let column = entries(&read(&b, Lists::POINTS, Some("my.counter.attr")));
        assert!(column.iter().all(|e| e.1 == "my.counter.attr"));
        assert!(!column.is_empty());
    }

    #[test]
    fn edits_reach_scopes_and_single_points_and_roll_back() {
        let mut b = batch("metrics.json", Signal::Metrics);
        b.begin();
        let edits = vec![
            AttributeEdit {
                at: Location::Scope(0),
                key: "edge.zone".into(),
                op: EditOp::Set(t2::Value::Str("eu".into())),
            },
            AttributeEdit {
                at: Location::Point(Part { item: 0, index: 0 }),
                key: "my.counter.attr".into(),
                op: EditOp::Remove,
            },
        ];
        b.edit(edits.into_iter().map(Edit::from)).unwrap();
        let scope = b.get(Location::Scope(0).into(), "edge.zone").unwrap();
        assert_eq!(scope, Some(s("eu")));
        assert_eq!(
            b.get(
                Location::Point(Part { item: 0, index: 0 }).into(),
                "my.counter.attr"
            )
            .unwrap(),
            None
        );
        // A location that does not exist is bad output, not a silent no-op.
        let bad = b.edit([Edit::from(AttributeEdit {
            at: Location::Point(Part { item: 0, index: 99 }),
            key: "k".into(),
            op: EditOp::Remove,
        })]);
        assert!(bad.is_err());
        assert!(b.get(Location::Scope(7).into(), "k").is_err());
        b.rollback();
        assert_eq!(b.finish().0, example("metrics.json", Signal::Metrics));
    }

    #[test]
    fn bulk_drops_routes_and_trace_states() {
        let mut b = batch("trace.json", Signal::Traces);
        let states = b.trace_states();
        assert_eq!((states.data.as_str(), states.ends), ("", vec![0]));
        b.set_trace_states(vec![(0, "ot=th:8".into())]).unwrap();
        let states = b.trace_states();
        assert_eq!((states.data.as_str(), states.ends), ("ot=th:8", vec![7]));
        b.set_item_routes(&[0], vec!["b".into(), "a".into()])
            .unwrap();
        assert_eq!(b.route(0), Some(&["a".to_string(), "b".to_string()][..]));
        assert!(b.set_item_routes(&[5], vec!["a".into()]).is_err());
        b.drop_items(&[0]).unwrap();
        assert!(b.is_dropped(0).unwrap());
        assert!(b.drop_items(&[3]).is_err());
    }

    fn logs_with(attrs: Vec<(&str, &str)>, body: &str) -> BatchState {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(s(v)),
            ..Default::default()
        };
        let payload = Payload::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        attributes: vec![kv("scope.owner", "ops@example.com")],
                        ..Default::default()
                    }),
                    log_records: vec![LogRecord {
                        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
                        body: Some(s(body)),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
        BatchState::new(payload, http::HeaderMap::new(), None)
    }

    fn set(spec: PatternSpec) -> PatternSet {
        PatternSet::compile(&spec).unwrap()
    }

    #[test]
    fn scan_returns_only_matches_and_redact_rewrites_them() {
        let mut b = logs_with(
            vec![
                ("password", "hunter2"),
                ("client", "from 10.1.2.3 and 10.1.2.4"),
                ("version", "1.2.3.4.5"),
                ("note", "nothing"),
            ],
            "mail jane@example.com",
        );
        let patterns = set(PatternSpec {
            detectors: Detector::ALL.to_vec(),
            key_names: vec!["password".into()],
            ..Default::default()
        });
        let all = Lists::RESOURCES | Lists::SCOPES | Lists::ITEMS | Lists::BODIES;
        let found: Vec<k2::PatternMatch> = b.scan(&patterns, all.into());
        let keys: Vec<(&Location, &str)> = found.iter().map(|m| (&m.at, m.key.as_str())).collect();
        assert_eq!(
            keys,
            vec![
                (&Location::Scope(0), "scope.owner"),
                (&Location::Item(0), "password"),
                (&Location::Item(0), "client"),
                (&Location::Item(0), "client"),
                (&Location::Body(0), ""),
            ]
        );
        assert_eq!(found[1].rule, k2::Rule::KeyName(0));
        b.begin();
        let changed = redact(
            &mut b,
            &found,
            k2::Rewrite::Mask("****".into()),
            &mut || false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(changed, 4, "four values, five matches");
        let get = |b: &BatchState, at: Location, k: &str| b.get(at.into(), k).unwrap();
        assert_eq!(get(&b, Location::Item(0), "password"), Some(s("****")));
        assert_eq!(
            get(&b, Location::Item(0), "client"),
            Some(s("from **** and ****"))
        );
        assert_eq!(get(&b, Location::Item(0), "version"), Some(s("1.2.3.4.5")));
        assert_eq!(get(&b, Location::Scope(0), "scope.owner"), Some(s("****")));
        assert_eq!(get(&b, Location::Body(0), ""), Some(s("mail ****")));
        b.rollback();
        assert_eq!(
            get(&b, Location::Item(0), "client"),
            Some(s("from 10.1.2.3 and 10.1.2.4"))
        );
        // Removing: attributes go, the body is masked.
        let changed = redact(&mut b, &found, k2::Rewrite::Remove, &mut || false)
            .unwrap()
            .unwrap();
        assert_eq!(changed, 4);
        assert_eq!(get(&b, Location::Item(0), "password"), None);
        assert_eq!(get(&b, Location::Body(0), ""), Some(s("mail ****")));
        // Hashing is salted and keeps equal values equal.
        let mut h = logs_with(vec![("a", "x@y.io"), ("b", "x@y.io")], "");
        let found: Vec<k2::PatternMatch> = h.scan(&patterns, Lists::ITEMS.into());
        redact(
            &mut h,
            &found,
            k2::Rewrite::Hash("pepper".into()),
            &mut || false,
        )
        .unwrap()
        .unwrap();
        let a = get(&h, Location::Item(0), "a");
        assert_eq!(a, get(&h, Location::Item(0), "b"));
        assert_eq!(a, Some(s(&weir_kernels::salted_hash("pepper", "x@y.io"))));
    }

    #[test]
    fn redaction_stops_when_the_call_is_out_of_time_and_its_changes_can_be_undone() {
        // Issue 20: one redact call could run past the CPU deadline, which only interrupts guest code.
        let attrs: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("k{i}"), format!("mail a{i}@example.com")))
            .collect();
        let mut b = logs_with(
            attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            "",
        );
        let patterns = set(PatternSpec {
            detectors: vec![Detector::Email],
            ..Default::default()
        });
        let found: Vec<k2::PatternMatch> = b.scan(&patterns, Lists::ITEMS.into());
        assert_eq!(found.len(), 1000);
        b.begin();
        let mut asked = 0;
        let r = redact(
            &mut b,
            &found,
            k2::Rewrite::Mask("****".into()),
            &mut || {
                asked += 1;
                asked > 2
            },
        )
        .unwrap();
        assert_eq!(r, None, "stopped once out of time");
        assert!(
            (3..=1000 / 64).contains(&asked),
            "asked every 64 values: {asked}"
        );
        b.rollback();
        let v = b.get(Location::Item(0).into(), "k0").unwrap();
        assert_eq!(v, Some(s("mail a0@example.com")));
        // With time, every value changes: matches are grouped by value, one group each.
        let all = redact(
            &mut b,
            &found,
            k2::Rewrite::Mask("****".into()),
            &mut || false,
        )
        .unwrap();
        assert_eq!(all, Some(1000));
    }

    /// 0.3.1's `scan-and-redact`: the same rewrites as `scan` then `redact`, in one call.
    #[test]
    fn scan_and_redact_rewrites_in_one_call_what_scan_and_redact_would() {
        use crate::batch::bulk::Redaction;
        use crate::batch::redact::Redacted;
        let attrs = vec![
            ("password", "hunter2"),
            ("client", "from 10.1.2.3 and 10.1.2.4"),
            ("version", "1.2.3.4.5"),
            ("mail", "a@b.io"),
            ("note", "nothing"),
        ];
        let body = "mail jane@example.com";
        let patterns = set(PatternSpec {
            detectors: Detector::ALL.to_vec(),
            key_names: vec!["password".into()],
            ..Default::default()
        });
        let all: Selection =
            (Lists::RESOURCES | Lists::SCOPES | Lists::ITEMS | Lists::BODIES).into();
        for how in [
            Redaction::Mask("****".into()),
            Redaction::Hash("pepper".into()),
            Redaction::Remove,
        ] {
            // The two-call way.
            let mut two = logs_with(attrs.clone(), body);
            let found: Vec<Match> = two.scan(&patterns, all);
            two.begin();
            let changed = two.redact(&found, &how, &mut || false).unwrap();
            // The one-call way.
            let mut one = logs_with(attrs.clone(), body);
            one.begin();
            let done = one
                .scan_redact(&patterns, all, &how, true, &mut || false)
                .unwrap()
                .unwrap();
            assert_eq!(Some(done.changed), changed, "{how:?}");
            assert_eq!(done.matched, 5, "five values matched, one of them twice");
            assert_eq!(
                done.touched,
                vec![
                    (Target::Scope(0), "scope.owner".to_string()),
                    (Target::Item(0), "password".to_string()),
                    (Target::Item(0), "client".to_string()),
                    (Target::Item(0), "mail".to_string()),
                    (Target::Body(0), String::new()),
                ]
            );
            let after_two = two.finish().0;
            // Three removals from one list, last to first: each went, the rest stayed in order.
            if how == Redaction::Remove {
                let Payload::Logs(l) = &after_two else {
                    panic!()
                };
                let keys: Vec<&str> = l.resource_logs[0].scope_logs[0].log_records[0]
                    .attributes
                    .iter()
                    .map(|kv| kv.key.as_str())
                    .collect();
                assert_eq!(keys, ["version", "note"]);
            }
            // Rolled back, the one-call batch is the original again.
            let mut undone = logs_with(attrs.clone(), body);
            undone.begin();
            undone
                .scan_redact(&patterns, all, &how, false, &mut || false)
                .unwrap()
                .unwrap();
            undone.rollback();
            assert_eq!(undone.finish().0, logs_with(attrs.clone(), body).finish().0);
            assert_eq!(one.finish().0, after_two, "{how:?}");
        }
        // Nothing to find (the scope's address is not looked at): nothing changes.
        let mut clean = logs_with(vec![("note", "nothing")], "fine");
        let items: Selection = (Lists::ITEMS | Lists::BODIES).into();
        let done = clean
            .scan_redact(&patterns, items, &Redaction::Remove, false, &mut || false)
            .unwrap()
            .unwrap();
        assert_eq!(done, Redacted::default());
        assert!(!clean.finish().2);
    }

    #[test]
    fn scan_and_redact_stops_when_out_of_time_and_can_be_undone() {
        use crate::batch::bulk::Redaction;
        let attrs: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("k{i}"), format!("mail a{i}@example.com")))
            .collect();
        let pairs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let patterns = set(PatternSpec {
            detectors: vec![Detector::Email],
            ..Default::default()
        });
        let mask = Redaction::Mask("****".into());
        // A call whose clock says "out of time" from its `asks + 1`th question on.
        let out_after = |asks: usize| {
            let mut b = logs_with(pairs.clone(), "");
            b.begin();
            let mut asked = 0;
            let r = b
                .scan_redact(&patterns, Lists::ITEMS.into(), &mask, false, &mut || {
                    asked += 1;
                    asked > asks
                })
                .unwrap();
            (b, r, asked)
        };
        // Out of time while scanning: nothing was changed yet.
        let (b, r, asked) = out_after(2);
        assert_eq!(r, None);
        assert_eq!(asked, 3, "asked every 64 values");
        assert!(!b.finish().2, "nothing changed");
        // Out of time while rewriting (the scan asks 15 times): what changed is undone.
        let (mut b, r, _) = out_after(1000 / 64 + 2);
        assert_eq!(r, None);
        assert!(
            b.modified_count() > 0,
            "some values were rewritten before the stop"
        );
        b.rollback();
        assert_eq!(b.finish().0, logs_with(pairs.clone(), "").finish().0);
        // With time, every value changes.
        let mut b = logs_with(pairs, "");
        let done = b
            .scan_redact(&patterns, Lists::ITEMS.into(), &mask, false, &mut || false)
            .unwrap()
            .unwrap();
        assert_eq!((done.matched, done.changed), (1000, 1000));
    }

    #[test]
    fn a_clean_batch_yields_no_matches_and_stays_unchanged() {
        let b = logs_with(
            vec![
                ("release", "release 2.10.3.4.1"),
                ("id", "550e8400-e29b-41d4-a716-446655440000"),
                ("ts", "1733097600123456788"),
            ],
            "build 3b18e512dba79e4c8300dd08aeb37f8e728b8dad at 2026-12-02T10:30:00Z",
        );
        let patterns = set(PatternSpec {
            detectors: Detector::ALL.to_vec(),
            ..Default::default()
        });
        assert!(
            b.scan::<k2::PatternMatch>(
                &patterns,
                (Lists::ITEMS | Lists::BODIES | Lists::SCOPES).into()
            )
            .iter()
            .all(|m| m.at == Location::Scope(0)),
            "only the scope's e-mail address matches"
        );
        let (_, _, changed) = b.finish();
        assert!(!changed);
    }
}

#[test]
fn profiles_are_items_with_a_sample_count_and_type_and_resource_attributes() {
    let mut b = batch("profiles.json", Signal::Profiles);
    assert_eq!(b.len(), 1, "one profile, whatever its samples");
    assert_eq!(b.profile_sample_count(0).unwrap(), 3);
    assert_eq!(
        b.profile_sample_type(0).unwrap(),
        ("samples".to_string(), "count".to_string())
    );
    assert!(
        b.profile_sample_count(1).is_err(),
        "index past the end is an error"
    );
    // A profile's own attributes are dictionary indices: none to read.
    assert!(b.attributes(0).unwrap().is_empty());
    // Other signals have no profiles.
    let t = batch("trace.json", Signal::Traces);
    assert_eq!(t.profile_sample_count(0).unwrap(), 0);
    assert_eq!(t.profile_sample_type(0).unwrap(), Default::default());
    // Resource attributes are set, and a dropped profile leaves the batch with its dictionary.
    b.set_resource_attribute(0, "edge.zone", s("lab")).unwrap();
    b.drop_item(0).unwrap();
    let (payload, _, _) = b.finish();
    let Payload::Profiles(r) = payload else {
        panic!("not profiles")
    };
    assert!(
        r.resource_profiles.is_empty(),
        "the only profile was dropped"
    );
    assert!(r.dictionary.is_some());
}
