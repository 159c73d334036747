use super::*;

fn example(name: &str, signal: Signal) -> Payload {
    let path = format!(
        "{}/../tests/data/otlp-examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Payload::decode_json(signal, &std::fs::read(path).unwrap()).unwrap()
}

fn batch(name: &str, signal: Signal) -> BatchState {
    BatchState::new(example(name, signal), http::HeaderMap::new(), None)
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
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
    let before = b.attributes(0).unwrap();
    b.begin();
    b.set_attribute(0, "edge.zone", s("eu")).unwrap();
    b.set_attribute(0, "my.span.attr", s("changed")).unwrap();
    assert!(b.remove_attribute(0, "my.span.attr").unwrap());
    assert!(!b.remove_attribute(0, "absent").unwrap());
    b.set_resource_attribute(0, "service.name", s("renamed"))
        .unwrap();
    b.drop_item(0).unwrap();
    assert_eq!(b.attribute(0, "edge.zone").unwrap(), Some(s("eu")));
    assert_eq!(b.modified_count(), 1);
    b.rollback();
    assert_eq!(b.attributes(0).unwrap(), before);
    assert!(!b.is_dropped(0).unwrap());
    assert_eq!(
        b.resource_attribute(0, "service.name").unwrap(),
        Some(s("my.service"))
    );
    assert_eq!(b.finish(), example("trace.json", Signal::Traces));
}

#[test]
fn dropped_items_leave_the_payload_and_empty_containers_go() {
    let mut b = batch("logs.json", Signal::Logs);
    b.drop_item(0).unwrap();
    assert_eq!(b.dropped_count(), 1);
    let p = b.finish();
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
    b.set_attribute(0, "k", Value::Int(7)).unwrap();
    let Payload::Metrics(m) = b.finish() else {
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
    let w = to_wit(&arr);
    assert!(matches!(&w, Value::Json(j) if j.contains("arrayValue")));
    assert_eq!(from_wit(w), arr);
    assert_eq!(
        from_wit(Value::Json("not json".into())),
        AnyValue {
            value: Some(any_value::Value::StringValue("not json".into()))
        }
    );
}
