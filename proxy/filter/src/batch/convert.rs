//! The WIT conversions: OTLP values and attributes to the interface's `value` and `attribute` and back,
//! trace ids, and the signal as the interface names it.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use super::BatchState;
use crate::bindings::v0_1::weir::filter::types::{Attribute, Signal as WitSignal, TraceId, Value};
use weir_core::Signal;

/// OTLP value to WIT value. Arrays and maps travel as their OTLP/JSON text.
pub(crate) fn to_wit(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Boolean(*b),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::Double(*d),
        Some(any_value::Value::BytesValue(b)) => Value::Bytes(b.clone()),
        Some(_) => Value::Json(serde_json::to_string(v).unwrap_or_default()),
        None => Value::Str(String::new()),
    }
}

/// WIT value to OTLP value. JSON that is not an OTLP `AnyValue` is kept as a string.
pub(crate) fn from_wit(v: Value) -> AnyValue {
    let value = match v {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Boolean(b) => any_value::Value::BoolValue(b),
        Value::Int(i) => any_value::Value::IntValue(i),
        Value::Double(d) => any_value::Value::DoubleValue(d),
        Value::Bytes(b) => any_value::Value::BytesValue(b),
        Value::Json(s) => match serde_json::from_str::<AnyValue>(&s) {
            Ok(v) => return v,
            Err(_) => any_value::Value::StringValue(s),
        },
    };
    AnyValue { value: Some(value) }
}

pub(super) fn attributes(kvs: &[KeyValue]) -> Vec<Attribute> {
    kvs.iter()
        .map(|kv| Attribute {
            key: kv.key.clone(),
            value: kv
                .value
                .as_ref()
                .map(to_wit)
                .unwrap_or(Value::Str(String::new())),
        })
        .collect()
}

pub(super) fn find(kvs: &[KeyValue], key: &str) -> Option<Value> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(to_wit)
}

pub(super) fn trace_id(bytes: &[u8]) -> TraceId {
    if bytes.len() != 16 {
        return TraceId { high: 0, low: 0 };
    }
    let mut h = [0u8; 8];
    let mut l = [0u8; 8];
    h.copy_from_slice(&bytes[..8]);
    l.copy_from_slice(&bytes[8..]);
    TraceId {
        high: u64::from_be_bytes(h),
        low: u64::from_be_bytes(l),
    }
}

impl BatchState {
    /// The signal as interfaces 0.1 and 0.2 name it; `None` for profiles, which they do not know
    /// (no such filter is called with a profiles batch).
    pub(crate) fn wit_signal(&self) -> Option<WitSignal> {
        match self.signal() {
            Signal::Traces => Some(WitSignal::Traces),
            Signal::Metrics => Some(WitSignal::Metrics),
            Signal::Logs => Some(WitSignal::Logs),
            Signal::Profiles => None,
        }
    }
}
