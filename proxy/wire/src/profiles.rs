//! What the fourth signal needs beyond the other three: its OTLP/JSON mapping, and a merge that keeps
//! the request-wide dictionary right.
//!
//! Profiles are **alpha** in OTLP (`v1development`), and weir pins the version that
//! `opentelemetry-proto` generates ([`PROTO_VERSION`]).
//!
//! - **JSON.** `opentelemetry-proto`'s serde derive for the profiles messages does not follow the
//!   OTLP/JSON mapping (fields without defaults are required, 64-bit integers must be numbers, link ids
//!   are byte arrays), so profiles are mapped through their protobuf descriptors with `prost-reflect`'s
//!   proto3 JSON mapping: lowerCamelCase names, 64-bit integers as strings or numbers, unknown fields
//!   ignored. The one OTLP exception is applied around it: the ids (`profileId`, and a link's
//!   `traceId` and `spanId`) are hex, not base64.
//! - **Merging.** A profiles request carries one `dictionary` whose tables every profile points into
//!   by index. Concatenating two requests' bytes, as weir does to merge the other signals, would merge
//!   the dictionaries field by field (appending the tables) while every index of the second still
//!   points at the first's entries. [`merge`] decodes the parts and appends each part's tables,
//!   shifting its indices past the entries before it; index 0 (the tables' zero value, which the
//!   specification requires at the front of every table) stays 0.

use std::sync::LazyLock;

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::profiles::v1development::{
    Function, KeyValueAndUnit, Location, Mapping, ProfilesDictionary, Stack, ValueType,
};
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use serde::de::Error as _;

/// The OTLP protocol release whose `v1development` profiles messages weir speaks (the one
/// `opentelemetry-proto` 0.33 generates).
pub const PROTO_VERSION: &str = "opentelemetry-proto v1.10.0, profiles v1development";

const REQUEST: &str =
    "opentelemetry.proto.collector.profiles.v1development.ExportProfilesServiceRequest";

/// How many times [`crate::walk::json_decoded_bound`] a profiles JSON body is charged. Decoding holds
/// a JSON value tree (32 bytes a value, with its vectors' growth), the descriptor-driven message
/// (about 56 bytes a value) and then prost's structs and the protobuf between them, where the bound
/// counts 8 bytes a number three times over: a body of numbers (`"values":[1,1,...]`) peaks at about
/// four and a half bounds (the `hostile_body` corpus's `json-profiles-long-values`).
pub const JSON_DECODE_COPIES: usize = 6;

/// JSON keys whose string values are hex ids in OTLP/JSON (and base64 in the proto3 mapping).
const HEX_IDS: [&str; 3] = ["profileId", "traceId", "spanId"];

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    // The descriptors are compiled into opentelemetry-proto from the same .proto files as the
    // messages; failing to decode them is a build defect, caught by every test here.
    DescriptorPool::decode(opentelemetry_proto::DESCRIPTORS)
        .expect("opentelemetry-proto's file descriptors decode")
});

fn descriptor() -> prost_reflect::MessageDescriptor {
    POOL.get_message_by_name(REQUEST)
        .expect("opentelemetry-proto's descriptors hold the profiles request")
}

/// Decodes an OTLP/JSON `ExportProfilesServiceRequest`.
pub fn decode_json(bytes: &[u8]) -> Result<ExportProfilesServiceRequest, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    ids_to_base64(&mut value)?;
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(descriptor(), value, &options)?;
    dynamic
        .transcode_to::<ExportProfilesServiceRequest>()
        .map_err(serde_json::Error::custom)
}

/// Encodes `request` as OTLP/JSON.
pub fn encode_json(request: &ExportProfilesServiceRequest) -> Vec<u8> {
    let mut dynamic = DynamicMessage::new(descriptor());
    // The descriptor and the generated message come from the same .proto files, so the generated
    // message's bytes always merge into it.
    if dynamic.transcode_from(request).is_err() {
        return b"{}".to_vec();
    }
    let options = SerializeOptions::new().skip_default_fields(true);
    let mut value = match dynamic.serialize_with_options(serde_json::value::Serializer, &options) {
        Ok(v) => v,
        Err(_) => return b"{}".to_vec(),
    };
    ids_to_hex(&mut value);
    serde_json::to_vec(&value).unwrap_or_default()
}

fn for_each_id(
    value: &mut serde_json::Value,
    f: &mut dyn FnMut(&mut String) -> Result<(), String>,
) -> Result<(), String> {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if HEX_IDS.contains(&k.as_str()) => f(s)?,
                    _ => for_each_id(v, f)?,
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                for_each_id(v, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn ids_to_base64(value: &mut serde_json::Value) -> Result<(), serde_json::Error> {
    for_each_id(value, &mut |s| {
        let bytes =
            const_hex::decode(s.as_bytes()).map_err(|e| format!("id {s:?} is not hex: {e}"))?;
        *s = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok(())
    })
    .map_err(serde_json::Error::custom)
}

fn ids_to_hex(value: &mut serde_json::Value) {
    let _ = for_each_id(value, &mut |s| {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
            *s = const_hex::encode(bytes);
        }
        Ok(())
    });
}

/// Samples in `request`: the item count of the profiles signal.
pub fn sample_count(request: &ExportProfilesServiceRequest) -> usize {
    request
        .resource_profiles
        .iter()
        .flat_map(|r| &r.scope_profiles)
        .flat_map(|s| &s.profiles)
        .map(|p| p.samples.len())
        .sum()
}

/// One request holding every profile of `parts` (encoded `ExportProfilesServiceRequest`s, in order),
/// with one dictionary whose indices stay right: see the module docs.
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, prost::DecodeError> {
    let mut merged = ExportProfilesServiceRequest::default();
    for part in parts {
        let part = ExportProfilesServiceRequest::decode(part)?;
        append(&mut merged, part);
    }
    Ok(merged.encode_to_vec())
}

/// Where one part's table entries land in the merged table: index 0 stays 0 (the zero value every
/// table starts with), index `i > 0` moves to `i - 1 + base`.
#[derive(Clone, Copy)]
struct Shift(i32);

impl Shift {
    fn of<T: Default>(table: &mut Vec<T>) -> Self {
        if table.is_empty() {
            table.push(T::default());
        }
        Shift(i32::try_from(table.len()).unwrap_or(i32::MAX) - 1)
    }

    fn apply(self, i: i32) -> i32 {
        if i <= 0 { i } else { i.saturating_add(self.0) }
    }

    fn all(self, v: &mut [i32]) {
        for i in v {
            *i = self.apply(*i);
        }
    }
}

struct Shifts {
    mapping: Shift,
    location: Shift,
    function: Shift,
    link: Shift,
    string: Shift,
    attribute: Shift,
    stack: Shift,
}

fn append(merged: &mut ExportProfilesServiceRequest, mut part: ExportProfilesServiceRequest) {
    let Some(mut dict) = part.dictionary.take() else {
        merged.resource_profiles.append(&mut part.resource_profiles);
        return;
    };
    let Some(into) = merged.dictionary.as_mut() else {
        merged.dictionary = Some(dict);
        merged.resource_profiles.append(&mut part.resource_profiles);
        return;
    };
    let s = Shifts {
        mapping: Shift::of(&mut into.mapping_table),
        location: Shift::of(&mut into.location_table),
        function: Shift::of(&mut into.function_table),
        link: Shift::of(&mut into.link_table),
        string: Shift::of(&mut into.string_table),
        attribute: Shift::of(&mut into.attribute_table),
        stack: Shift::of(&mut into.stack_table),
    };
    shift_dictionary(&mut dict, &s);
    append_rest(&mut into.mapping_table, dict.mapping_table);
    append_rest(&mut into.location_table, dict.location_table);
    append_rest(&mut into.function_table, dict.function_table);
    append_rest(&mut into.link_table, dict.link_table);
    append_rest(&mut into.string_table, dict.string_table);
    append_rest(&mut into.attribute_table, dict.attribute_table);
    append_rest(&mut into.stack_table, dict.stack_table);
    for rp in &mut part.resource_profiles {
        if let Some(r) = &mut rp.resource {
            shift_attributes(&mut r.attributes, s.string);
        }
        for sp in &mut rp.scope_profiles {
            if let Some(scope) = &mut sp.scope {
                shift_attributes(&mut scope.attributes, s.string);
            }
            for p in &mut sp.profiles {
                let value_type = |v: &mut Option<ValueType>| {
                    if let Some(v) = v {
                        v.type_strindex = s.string.apply(v.type_strindex);
                        v.unit_strindex = s.string.apply(v.unit_strindex);
                    }
                };
                value_type(&mut p.sample_type);
                value_type(&mut p.period_type);
                s.attribute.all(&mut p.attribute_indices);
                for sample in &mut p.samples {
                    sample.stack_index = s.stack.apply(sample.stack_index);
                    sample.link_index = s.link.apply(sample.link_index);
                    s.attribute.all(&mut sample.attribute_indices);
                }
            }
        }
    }
    merged.resource_profiles.append(&mut part.resource_profiles);
}

/// In a profiles request an attribute's key and a string value may be indices into the string table
/// (`key_strindex`, `string_value_strindex`), in arrays and maps too.
fn shift_attributes(attributes: &mut [KeyValue], strings: Shift) {
    for kv in attributes {
        kv.key_strindex = strings.apply(kv.key_strindex);
        if let Some(v) = &mut kv.value {
            shift_value(v, strings);
        }
    }
}

fn shift_value(v: &mut AnyValue, strings: Shift) {
    match &mut v.value {
        Some(any_value::Value::StringValueStrindex(i)) => *i = strings.apply(*i),
        Some(any_value::Value::ArrayValue(a)) => {
            for v in &mut a.values {
                shift_value(v, strings);
            }
        }
        Some(any_value::Value::KvlistValue(l)) => shift_attributes(&mut l.values, strings),
        _ => {}
    }
}

/// Appends `from`'s entries after its zero value to `into`.
fn append_rest<T>(into: &mut Vec<T>, from: Vec<T>) {
    into.extend(from.into_iter().skip(1));
}

fn shift_dictionary(d: &mut ProfilesDictionary, s: &Shifts) {
    for Mapping {
        filename_strindex,
        attribute_indices,
        ..
    } in &mut d.mapping_table
    {
        *filename_strindex = s.string.apply(*filename_strindex);
        s.attribute.all(attribute_indices);
    }
    for Location {
        mapping_index,
        lines,
        attribute_indices,
        ..
    } in &mut d.location_table
    {
        *mapping_index = s.mapping.apply(*mapping_index);
        for line in lines {
            line.function_index = s.function.apply(line.function_index);
        }
        s.attribute.all(attribute_indices);
    }
    for Function {
        name_strindex,
        system_name_strindex,
        filename_strindex,
        ..
    } in &mut d.function_table
    {
        for i in [name_strindex, system_name_strindex, filename_strindex] {
            *i = s.string.apply(*i);
        }
    }
    for KeyValueAndUnit {
        key_strindex,
        value,
        unit_strindex,
    } in &mut d.attribute_table
    {
        *key_strindex = s.string.apply(*key_strindex);
        *unit_strindex = s.string.apply(*unit_strindex);
        if let Some(v) = value {
            shift_value(v, s.string);
        }
    }
    for Stack { location_indices } in &mut d.stack_table {
        s.location.all(location_indices);
    }
}

#[cfg(test)]
mod tests;
