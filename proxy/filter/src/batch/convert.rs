//! The WIT conversions: between the batch's plain types (OTLP values and attributes, [`Target`],
//! [`Match`] and the rest) and the types `bindgen!` generates for each version of the interface.
//!
//! Every version generates its own types of the same shapes, so the conversions are written once, as
//! macros over a version's generated modules, and instantiated beside each `bindgen!` site
//! (`bindings`): `core_conversions!` for what every version has, `conversions_since_0_2!` for what 0.2
//! added (locations, bulk reads and edits, the kernels). A new version invokes them, and writes
//! conversions only for what it adds. Nothing here names a generated type, so the batch does not
//! depend on the bindings: they depend on it.
//!
//! [`Target`]: super::Target
//! [`Match`]: super::bulk::Match

/// The conversions of the types every interface version has, for the generated `types` module named.
/// `signals` lists the signals the version knows (a batch of any other is never lent to its filters).
macro_rules! core_conversions {
    ($types:ident; signals: $($signal:ident),*) => {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use $crate::batch::{MetricKind, StatusCode, TraceId};

        /// OTLP value to WIT value. Arrays and maps travel as their OTLP/JSON text.
        impl From<&AnyValue> for $types::Value {
            fn from(v: &AnyValue) -> Self {
                match &v.value {
                    Some(any_value::Value::StringValue(s)) => Self::Str(s.clone()),
                    Some(any_value::Value::BoolValue(b)) => Self::Boolean(*b),
                    Some(any_value::Value::IntValue(i)) => Self::Int(*i),
                    Some(any_value::Value::DoubleValue(d)) => Self::Double(*d),
                    Some(any_value::Value::BytesValue(b)) => Self::Bytes(b.clone()),
                    Some(_) => Self::Json(serde_json::to_string(v).unwrap_or_default()),
                    None => Self::Str(String::new()),
                }
            }
        }

        /// WIT value to OTLP value. JSON that is not an OTLP `AnyValue` is kept as a string.
        impl From<$types::Value> for AnyValue {
            fn from(v: $types::Value) -> Self {
                let value = match v {
                    $types::Value::Str(s) => any_value::Value::StringValue(s),
                    $types::Value::Boolean(b) => any_value::Value::BoolValue(b),
                    $types::Value::Int(i) => any_value::Value::IntValue(i),
                    $types::Value::Double(d) => any_value::Value::DoubleValue(d),
                    $types::Value::Bytes(b) => any_value::Value::BytesValue(b),
                    $types::Value::Json(s) => return $crate::batch::bulk::from_json(s),
                };
                AnyValue { value: Some(value) }
            }
        }

        impl From<&KeyValue> for $types::Attribute {
            fn from(kv: &KeyValue) -> Self {
                Self {
                    key: kv.key.clone(),
                    value: kv
                        .value
                        .as_ref()
                        .map(Into::into)
                        .unwrap_or($types::Value::Str(String::new())),
                }
            }
        }

        impl From<TraceId> for $types::TraceId {
            fn from(t: TraceId) -> Self {
                Self {
                    high: t.high,
                    low: t.low,
                }
            }
        }

        impl From<StatusCode> for $types::StatusCode {
            fn from(c: StatusCode) -> Self {
                match c {
                    StatusCode::Unset => Self::Unset,
                    StatusCode::Ok => Self::Ok,
                    StatusCode::Error => Self::Error,
                }
            }
        }

        impl From<MetricKind> for $types::MetricKind {
            fn from(k: MetricKind) -> Self {
                match k {
                    MetricKind::Gauge => Self::Gauge,
                    MetricKind::Sum => Self::Sum,
                    MetricKind::Histogram => Self::Histogram,
                    MetricKind::ExponentialHistogram => Self::ExponentialHistogram,
                    MetricKind::Summary => Self::Summary,
                    MetricKind::Empty => Self::Empty,
                }
            }
        }

        /// The signal as the version names it; a signal it does not know comes back as the error.
        impl TryFrom<weir_core::Signal> for $types::Signal {
            type Error = weir_core::Signal;

            #[allow(unreachable_patterns)]
            fn try_from(s: weir_core::Signal) -> Result<Self, Self::Error> {
                match s {
                    $(weir_core::Signal::$signal => Ok(Self::$signal),)*
                    s => Err(s),
                }
            }
        }
    };
}

/// The conversions of what interface 0.2 added, for the generated `types` and `kernels` modules named.
macro_rules! conversions_since_0_2 {
    ($types:ident, $kernels:ident) => {
        use $crate::batch::Target;
        use $crate::batch::bulk::{
            Edit, Entry, Match, Redaction, Selection, StringList, ValueKind,
        };
        use $types::{Location, Part};

        impl From<Target> for Location {
            fn from(t: Target) -> Self {
                match t {
                    Target::Resource(r) => Location::Resource(r),
                    Target::Scope(s) => Location::Scope(s),
                    Target::Item(i) => Location::Item(i),
                    Target::Point(item, index) => Location::Point(Part { item, index }),
                    Target::Event(item, index) => Location::Event(Part { item, index }),
                    Target::Link(item, index) => Location::Link(Part { item, index }),
                    Target::Body(i) => Location::Body(i),
                }
            }
        }

        /// Not checked: the batch checks a target before it uses one.
        impl From<Location> for Target {
            fn from(l: Location) -> Self {
                match l {
                    Location::Resource(r) => Target::Resource(r),
                    Location::Scope(s) => Target::Scope(s),
                    Location::Item(i) => Target::Item(i),
                    Location::Point(Part { item, index }) => Target::Point(item, index),
                    Location::Event(Part { item, index }) => Target::Event(item, index),
                    Location::Link(Part { item, index }) => Target::Link(item, index),
                    Location::Body(i) => Target::Body(i),
                }
            }
        }

        impl From<$types::Lists> for Selection {
            fn from(l: $types::Lists) -> Self {
                use $types::Lists;
                Self {
                    resources: l.contains(Lists::RESOURCES),
                    scopes: l.contains(Lists::SCOPES),
                    items: l.contains(Lists::ITEMS),
                    points: l.contains(Lists::POINTS),
                    events: l.contains(Lists::EVENTS),
                    links: l.contains(Lists::LINKS),
                    bodies: l.contains(Lists::BODIES),
                }
            }
        }

        impl From<Entry> for $types::AttributeEntry {
            fn from(e: Entry) -> Self {
                Self {
                    at: e.at.into(),
                    key_start: e.key_start,
                    key_len: e.key_len,
                    kind: match e.kind {
                        ValueKind::Str => $types::ValueKind::Str,
                        ValueKind::Bytes => $types::ValueKind::Bytes,
                        ValueKind::Boolean => $types::ValueKind::Boolean,
                        ValueKind::Int => $types::ValueKind::Int,
                        ValueKind::Double => $types::ValueKind::Double,
                        ValueKind::Json => $types::ValueKind::Json,
                    },
                    start: e.start,
                    len: e.len,
                    number: e.number,
                }
            }
        }

        impl From<$types::AttributeEdit> for Edit {
            fn from(e: $types::AttributeEdit) -> Self {
                Self {
                    at: e.at.into(),
                    key: e.key,
                    value: match e.op {
                        $types::EditOp::Set(v) => Some(v.into()),
                        $types::EditOp::Remove => None,
                    },
                }
            }
        }

        impl From<StringList> for $types::StringList {
            fn from(l: StringList) -> Self {
                Self {
                    data: l.data,
                    ends: l.ends,
                }
            }
        }

        impl From<Match> for $kernels::PatternMatch {
            fn from(m: Match) -> Self {
                Self {
                    at: m.at.into(),
                    key: m.key,
                    rule: m.rule.into(),
                    start: m.start,
                    end: m.end,
                }
            }
        }

        impl From<$kernels::PatternMatch> for Match {
            fn from(m: $kernels::PatternMatch) -> Self {
                Self {
                    at: m.at.into(),
                    key: m.key,
                    rule: m.rule.into(),
                    start: m.start,
                    end: m.end,
                }
            }
        }

        impl From<$kernels::Rewrite> for Redaction {
            fn from(r: $kernels::Rewrite) -> Self {
                match r {
                    $kernels::Rewrite::Remove => Redaction::Remove,
                    $kernels::Rewrite::Mask(m) => Redaction::Mask(m),
                    $kernels::Rewrite::Hash(salt) => Redaction::Hash(salt),
                }
            }
        }

        /// Kernel detector to WIT detector.
        impl From<weir_kernels::Detector> for $kernels::Detector {
            fn from(d: weir_kernels::Detector) -> Self {
                use weir_kernels::Detector as D;
                match d {
                    D::Email => Self::Email,
                    D::CreditCard => Self::CreditCard,
                    D::Ipv4 => Self::Ipv4,
                    D::Ipv6 => Self::Ipv6,
                    D::Bearer => Self::Bearer,
                    D::Jwt => Self::Jwt,
                    D::UrlSecret => Self::UrlSecret,
                }
            }
        }

        /// WIT detector to kernel detector.
        impl From<$kernels::Detector> for weir_kernels::Detector {
            fn from(d: $kernels::Detector) -> Self {
                match d {
                    $kernels::Detector::Email => Self::Email,
                    $kernels::Detector::CreditCard => Self::CreditCard,
                    $kernels::Detector::Ipv4 => Self::Ipv4,
                    $kernels::Detector::Ipv6 => Self::Ipv6,
                    $kernels::Detector::Bearer => Self::Bearer,
                    $kernels::Detector::Jwt => Self::Jwt,
                    $kernels::Detector::UrlSecret => Self::UrlSecret,
                }
            }
        }

        impl From<weir_kernels::Rule> for $kernels::Rule {
            fn from(r: weir_kernels::Rule) -> Self {
                use weir_kernels::Rule;
                match r {
                    Rule::Detector(d) => Self::Detector(d.into()),
                    Rule::ValuePattern(i) => Self::ValuePattern(i),
                    Rule::KeyName(i) => Self::KeyName(i),
                    Rule::KeyPattern(i) => Self::KeyPattern(i),
                    Rule::NotAllowed => Self::NotAllowed,
                }
            }
        }

        impl From<$kernels::Rule> for weir_kernels::Rule {
            fn from(r: $kernels::Rule) -> Self {
                match r {
                    $kernels::Rule::Detector(d) => Self::Detector(d.into()),
                    $kernels::Rule::ValuePattern(i) => Self::ValuePattern(i),
                    $kernels::Rule::KeyName(i) => Self::KeyName(i),
                    $kernels::Rule::KeyPattern(i) => Self::KeyPattern(i),
                    $kernels::Rule::NotAllowed => Self::NotAllowed,
                }
            }
        }

        /// A WIT pattern spec as the kernels take it.
        impl From<$kernels::PatternSpec> for weir_kernels::PatternSpec {
            fn from(s: $kernels::PatternSpec) -> Self {
                Self {
                    detectors: s.detectors.into_iter().map(Into::into).collect(),
                    value_patterns: s.value_patterns,
                    key_names: s.key_names,
                    key_patterns: s.key_patterns,
                    allow_keys: s.allow_keys,
                }
            }
        }
    };
}

pub(crate) use {conversions_since_0_2, core_conversions};
