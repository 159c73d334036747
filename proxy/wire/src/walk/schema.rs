//! The schema the walk follows: every OTLP request message's known fields, their kinds and how they
//! count, written out from `opentelemetry-proto`'s generated messages (the module docs of
//! [`super`] say why), and the profiles dictionary's tables.

use super::Signal;

/// The profiles dictionary's tables, by their position in [`Kind::Index`] and [`Count::Entry`].
pub const TABLES: [&str; 7] = [
    "mapping_table",
    "location_table",
    "function_table",
    "link_table",
    "string_table",
    "attribute_table",
    "stack_table",
];
pub(super) const MAPPINGS: u8 = 0;
pub(super) const LOCATIONS: u8 = 1;
pub(super) const FUNCTIONS: u8 = 2;
pub(super) const LINKS: u8 = 3;
pub(super) const STRINGS: u8 = 4;
pub(super) const ATTRIBUTES: u8 = 5;
pub(super) const STACKS: u8 = 6;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// int32, int64, uint32, uint64, sint32, bool, enums.
    Varint,
    Fixed32,
    /// fixed64, sfixed64, double.
    Fixed64,
    Bytes,
    /// A singular string: UTF-8 checked (its `String` is part of its message's struct).
    Str,
    /// A repeated string: UTF-8 checked, and each occurrence charged its `String` as well as its bytes.
    RepStr,
    Msg(&'static Msg),
    /// Repeated fixed64 or double, packed or not.
    RepFixed64,
    /// Repeated uint64, packed or not.
    RepVarint,
    /// An id of this many bytes (16 for trace and profile ids, 8 for span ids), or empty; named
    /// for the error.
    Id(IdKind),
    /// An `int32` index into one of the profiles dictionary's tables (see [`TABLES`]).
    Index(u8),
    /// Repeated `int32` indices into one of the profiles dictionary's tables, packed or not.
    RepIndex(u8),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    /// Adds the items counted inside the field's message.
    Inner,
    /// Each occurrence is one item.
    Item,
    /// A variant of a metric's `data` oneof: only the variant decoding keeps counts.
    Variant,
    /// Each occurrence is one entry of a profiles dictionary table (see [`TABLES`]).
    Entry(u8),
}

pub(super) struct Field {
    pub(super) tag: u32,
    pub(super) kind: Kind,
    pub(super) count: Count,
}

/// A message's known fields, found by field number through `index` (every OTLP field number is below
/// [`INDEXED`]; anything above is unknown).
pub(super) struct Msg {
    fields: &'static [Field],
    index: [u8; INDEXED],
    /// The size of its decoded struct.
    pub(super) size: u32,
}

pub(super) const INDEXED: usize = 32;

impl Msg {
    #[inline]
    pub(super) fn field(&self, tag: u32) -> Option<&Field> {
        let i = *self.index.get(tag as usize)?;
        self.fields.get(usize::from(i))
    }
}

/// A message of `fields` with its index, decoded to a struct of `size` bytes.
pub(super) const fn msg(size: usize, fields: &'static [Field]) -> Msg {
    let mut index = [u8::MAX; INDEXED];
    let mut i = 0;
    while i < fields.len() {
        assert!((fields[i].tag as usize) < INDEXED);
        index[fields[i].tag as usize] = i as u8;
        i += 1;
    }
    Msg {
        fields,
        index,
        size: size as u32,
    }
}

pub(super) const fn f(tag: u32, kind: Kind) -> Field {
    Field {
        tag,
        kind,
        count: Count::Inner,
    }
}

pub(super) const fn item(tag: u32, msg: &'static Msg) -> Field {
    Field {
        tag,
        kind: Kind::Msg(msg),
        count: Count::Item,
    }
}

/// Field `tag` of kind `kind`, each occurrence one entry of dictionary table `table`.
pub(super) const fn entry(tag: u32, kind: Kind, table: u8) -> Field {
    Field {
        tag,
        kind,
        count: Count::Entry(table),
    }
}

pub(super) const fn variant(tag: u32, msg: &'static Msg) -> Field {
    Field {
        tag,
        kind: Kind::Msg(msg),
        count: Count::Variant,
    }
}

use Kind::{
    Bytes, Fixed32, Fixed64, Id, Index, Msg as M, RepFixed64, RepIndex, RepStr, RepVarint, Str,
    Varint,
};
use opentelemetry_proto::tonic::{common::v1 as c, logs::v1 as l, metrics::v1 as m};
use opentelemetry_proto::tonic::{resource::v1 as r, trace::v1 as t};
use std::mem::size_of as z;

pub(super) const TRACE_ID: Kind = Id(IdKind::Trace);
pub(super) const SPAN_ID: Kind = Id(IdKind::Span);
pub(super) const PROFILE_ID: Kind = Id(IdKind::Profile);

/// Which id a field holds: one byte, so that a [`Kind`] (and the schema's tables) stays as small as
/// it was before profiles (a length and a name in it made every field a third larger, and the walk
/// measurably slower).
#[derive(Clone, Copy)]
pub(super) enum IdKind {
    Trace,
    Span,
    Profile,
}

impl IdKind {
    /// Its length in bytes.
    pub(super) fn len(self) -> u8 {
        match self {
            IdKind::Trace | IdKind::Profile => 16,
            IdKind::Span => 8,
        }
    }

    /// Its name in errors.
    pub(super) fn name(self) -> &'static str {
        match self {
            IdKind::Trace => "trace id",
            IdKind::Span => "span id",
            IdKind::Profile => "profile id",
        }
    }
}

// opentelemetry.proto.common.v1
pub(super) static ANY_VALUE: Msg = msg(
    z::<c::AnyValue>(),
    &[
        f(1, Str),
        f(2, Varint),
        f(3, Varint),
        f(4, Fixed64),
        f(5, M(&ARRAY_VALUE)),
        f(6, M(&KEY_VALUE_LIST)),
        f(7, Bytes),
        f(8, Varint),
    ],
);
pub(super) static ARRAY_VALUE: Msg = msg(z::<c::ArrayValue>(), &[f(1, M(&ANY_VALUE))]);
pub(super) static KEY_VALUE_LIST: Msg = msg(z::<c::KeyValueList>(), &[f(1, M(&KEY_VALUE))]);
pub(super) static KEY_VALUE: Msg = msg(
    z::<c::KeyValue>(),
    &[f(1, Str), f(2, M(&ANY_VALUE)), f(3, Varint)],
);
pub(super) static SCOPE: Msg = msg(
    z::<c::InstrumentationScope>(),
    &[f(1, Str), f(2, Str), f(3, M(&KEY_VALUE)), f(4, Varint)],
);
pub(super) static ENTITY_REF: Msg = msg(
    z::<c::EntityRef>(),
    &[f(1, Str), f(2, Str), f(3, RepStr), f(4, RepStr)],
);
// opentelemetry.proto.resource.v1
pub(super) static RESOURCE: Msg = msg(
    z::<r::Resource>(),
    &[f(1, M(&KEY_VALUE)), f(2, Varint), f(3, M(&ENTITY_REF))],
);

// opentelemetry.proto.trace.v1
pub(super) static TRACE_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>(),
    &[f(1, M(&RESOURCE_SPANS))],
);
pub(super) static RESOURCE_SPANS: Msg = msg(
    z::<t::ResourceSpans>(),
    &[f(1, M(&RESOURCE)), f(2, M(&SCOPE_SPANS)), f(3, Str)],
);
pub(super) static SCOPE_SPANS: Msg = msg(
    z::<t::ScopeSpans>(),
    &[f(1, M(&SCOPE)), item(2, &SPAN), f(3, Str)],
);
pub(super) static SPAN: Msg = msg(
    z::<t::Span>(),
    &[
        f(1, TRACE_ID),
        f(2, SPAN_ID),
        f(3, Str),
        f(4, SPAN_ID),
        f(16, Fixed32),
        f(5, Str),
        f(6, Varint),
        f(7, Fixed64),
        f(8, Fixed64),
        f(9, M(&KEY_VALUE)),
        f(10, Varint),
        f(11, M(&EVENT)),
        f(12, Varint),
        f(13, M(&LINK)),
        f(14, Varint),
        f(15, M(&STATUS)),
    ],
);
pub(super) static EVENT: Msg = msg(
    z::<t::span::Event>(),
    &[f(1, Fixed64), f(2, Str), f(3, M(&KEY_VALUE)), f(4, Varint)],
);
pub(super) static LINK: Msg = msg(
    z::<t::span::Link>(),
    &[
        f(1, TRACE_ID),
        f(2, SPAN_ID),
        f(3, Str),
        f(4, M(&KEY_VALUE)),
        f(5, Varint),
        f(6, Fixed32),
    ],
);
pub(super) static STATUS: Msg = msg(z::<t::Status>(), &[f(2, Str), f(3, Varint)]);

// opentelemetry.proto.metrics.v1
pub(super) static METRICS_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest>(),
    &[f(1, M(&RESOURCE_METRICS))],
);
pub(super) static RESOURCE_METRICS: Msg = msg(
    z::<m::ResourceMetrics>(),
    &[f(1, M(&RESOURCE)), f(2, M(&SCOPE_METRICS)), f(3, Str)],
);
pub(super) static SCOPE_METRICS: Msg = msg(
    z::<m::ScopeMetrics>(),
    &[f(1, M(&SCOPE)), f(2, M(&METRIC)), f(3, Str)],
);
pub(super) static METRIC: Msg = msg(
    z::<m::Metric>(),
    &[
        f(1, Str),
        f(2, Str),
        f(3, Str),
        f(12, M(&KEY_VALUE)),
        variant(5, &GAUGE),
        variant(7, &SUM),
        variant(9, &HISTOGRAM),
        variant(10, &EXP_HISTOGRAM),
        variant(11, &SUMMARY),
    ],
);
pub(super) static GAUGE: Msg = msg(z::<m::Gauge>(), &[item(1, &NUMBER_POINT)]);
pub(super) static SUM: Msg = msg(
    z::<m::Sum>(),
    &[item(1, &NUMBER_POINT), f(2, Varint), f(3, Varint)],
);
pub(super) static HISTOGRAM: Msg = msg(
    z::<m::Histogram>(),
    &[item(1, &HISTOGRAM_POINT), f(2, Varint)],
);
pub(super) static EXP_HISTOGRAM: Msg = msg(
    z::<m::ExponentialHistogram>(),
    &[item(1, &EXP_HISTOGRAM_POINT), f(2, Varint)],
);
pub(super) static SUMMARY: Msg = msg(z::<m::Summary>(), &[item(1, &SUMMARY_POINT)]);
pub(super) static NUMBER_POINT: Msg = msg(
    z::<m::NumberDataPoint>(),
    &[
        f(7, M(&KEY_VALUE)),
        f(2, Fixed64),
        f(3, Fixed64),
        f(5, M(&EXEMPLAR)),
        f(8, Varint),
        f(4, Fixed64),
        f(6, Fixed64),
    ],
);
pub(super) static HISTOGRAM_POINT: Msg = msg(
    z::<m::HistogramDataPoint>(),
    &[
        f(9, M(&KEY_VALUE)),
        f(2, Fixed64),
        f(3, Fixed64),
        f(4, Fixed64),
        f(5, Fixed64),
        f(6, RepFixed64),
        f(7, RepFixed64),
        f(8, M(&EXEMPLAR)),
        f(10, Varint),
        f(11, Fixed64),
        f(12, Fixed64),
    ],
);
pub(super) static EXP_HISTOGRAM_POINT: Msg = msg(
    z::<m::ExponentialHistogramDataPoint>(),
    &[
        f(1, M(&KEY_VALUE)),
        f(2, Fixed64),
        f(3, Fixed64),
        f(4, Fixed64),
        f(5, Fixed64),
        f(6, Varint),
        f(7, Fixed64),
        f(8, M(&BUCKETS)),
        f(9, M(&BUCKETS)),
        f(10, Varint),
        f(11, M(&EXEMPLAR)),
        f(12, Fixed64),
        f(13, Fixed64),
        f(14, Fixed64),
    ],
);
pub(super) static BUCKETS: Msg = msg(
    z::<m::exponential_histogram_data_point::Buckets>(),
    &[f(1, Varint), f(2, RepVarint)],
);
pub(super) static SUMMARY_POINT: Msg = msg(
    z::<m::SummaryDataPoint>(),
    &[
        f(7, M(&KEY_VALUE)),
        f(2, Fixed64),
        f(3, Fixed64),
        f(4, Fixed64),
        f(5, Fixed64),
        f(6, M(&VALUE_AT_QUANTILE)),
        f(8, Varint),
    ],
);
pub(super) static VALUE_AT_QUANTILE: Msg = msg(
    z::<m::summary_data_point::ValueAtQuantile>(),
    &[f(1, Fixed64), f(2, Fixed64)],
);
pub(super) static EXEMPLAR: Msg = msg(
    z::<m::Exemplar>(),
    &[
        f(7, M(&KEY_VALUE)),
        f(2, Fixed64),
        f(4, SPAN_ID),
        f(5, TRACE_ID),
        f(3, Fixed64),
        f(6, Fixed64),
    ],
);

// opentelemetry.proto.logs.v1
pub(super) static LOGS_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest>(),
    &[f(1, M(&RESOURCE_LOGS))],
);
pub(super) static RESOURCE_LOGS: Msg = msg(
    z::<l::ResourceLogs>(),
    &[f(1, M(&RESOURCE)), f(2, M(&SCOPE_LOGS)), f(3, Str)],
);
pub(super) static SCOPE_LOGS: Msg = msg(
    z::<l::ScopeLogs>(),
    &[f(1, M(&SCOPE)), item(2, &LOG_RECORD), f(3, Str)],
);
pub(super) static LOG_RECORD: Msg = msg(
    z::<l::LogRecord>(),
    &[
        f(1, Fixed64),
        f(11, Fixed64),
        f(2, Varint),
        f(3, Str),
        f(5, M(&ANY_VALUE)),
        f(6, M(&KEY_VALUE)),
        f(7, Varint),
        f(8, Fixed32),
        f(9, TRACE_ID),
        f(10, SPAN_ID),
        f(12, Str),
    ],
);

// opentelemetry.proto.profiles.v1development: items are samples.
use opentelemetry_proto::tonic::profiles::v1development as p;
pub(super) static PROFILES_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest>(),
    &[f(1, M(&RESOURCE_PROFILES)), f(2, M(&DICTIONARY))],
);
pub(super) static DICTIONARY: Msg = msg(
    z::<p::ProfilesDictionary>(),
    &[
        entry(1, M(&MAPPING), MAPPINGS),
        entry(2, M(&LOCATION), LOCATIONS),
        entry(3, M(&FUNCTION), FUNCTIONS),
        entry(4, M(&PROFILE_LINK), LINKS),
        entry(5, RepStr, STRINGS),
        entry(6, M(&KEY_VALUE_AND_UNIT), ATTRIBUTES),
        entry(7, M(&STACK), STACKS),
    ],
);
// In a profiles request an attribute's key and a string value may be indices into the dictionary's
// string table (`KeyValue.key_strindex`, `AnyValue.string_value_strindex`): the common messages again,
// with those two fields as indices, wherever profiles use them.
pub(super) static P_ANY_VALUE: Msg = msg(
    z::<c::AnyValue>(),
    &[
        f(1, Str),
        f(2, Varint),
        f(3, Varint),
        f(4, Fixed64),
        f(5, M(&P_ARRAY_VALUE)),
        f(6, M(&P_KEY_VALUE_LIST)),
        f(7, Bytes),
        f(8, Index(STRINGS)),
    ],
);
pub(super) static P_ARRAY_VALUE: Msg = msg(z::<c::ArrayValue>(), &[f(1, M(&P_ANY_VALUE))]);
pub(super) static P_KEY_VALUE_LIST: Msg = msg(z::<c::KeyValueList>(), &[f(1, M(&P_KEY_VALUE))]);
pub(super) static P_KEY_VALUE: Msg = msg(
    z::<c::KeyValue>(),
    &[f(1, Str), f(2, M(&P_ANY_VALUE)), f(3, Index(STRINGS))],
);
pub(super) static P_SCOPE: Msg = msg(
    z::<c::InstrumentationScope>(),
    &[f(1, Str), f(2, Str), f(3, M(&P_KEY_VALUE)), f(4, Varint)],
);
pub(super) static P_RESOURCE: Msg = msg(
    z::<r::Resource>(),
    &[f(1, M(&P_KEY_VALUE)), f(2, Varint), f(3, M(&ENTITY_REF))],
);
pub(super) static RESOURCE_PROFILES: Msg = msg(
    z::<p::ResourceProfiles>(),
    &[f(1, M(&P_RESOURCE)), f(2, M(&SCOPE_PROFILES)), f(3, Str)],
);
pub(super) static SCOPE_PROFILES: Msg = msg(
    z::<p::ScopeProfiles>(),
    &[f(1, M(&P_SCOPE)), f(2, M(&PROFILE)), f(3, Str)],
);
pub(super) static PROFILE: Msg = msg(
    z::<p::Profile>(),
    &[
        f(1, M(&VALUE_TYPE)),
        item(2, &SAMPLE),
        f(3, Fixed64),
        f(4, Varint),
        f(5, M(&VALUE_TYPE)),
        f(6, Varint),
        f(7, PROFILE_ID),
        f(8, Varint),
        f(9, Str),
        f(10, Bytes),
        f(11, RepIndex(ATTRIBUTES)),
    ],
);
pub(super) static PROFILE_LINK: Msg = msg(z::<p::Link>(), &[f(1, TRACE_ID), f(2, SPAN_ID)]);
pub(super) static VALUE_TYPE: Msg = msg(
    z::<p::ValueType>(),
    &[f(1, Index(STRINGS)), f(2, Index(STRINGS))],
);
pub(super) static SAMPLE: Msg = msg(
    z::<p::Sample>(),
    &[
        f(1, Index(STACKS)),
        f(2, RepIndex(ATTRIBUTES)),
        f(3, Index(LINKS)),
        f(4, RepVarint),
        f(5, RepFixed64),
    ],
);
pub(super) static MAPPING: Msg = msg(
    z::<p::Mapping>(),
    &[
        f(1, Varint),
        f(2, Varint),
        f(3, Varint),
        f(4, Index(STRINGS)),
        f(5, RepIndex(ATTRIBUTES)),
    ],
);
pub(super) static STACK: Msg = msg(z::<p::Stack>(), &[f(1, RepIndex(LOCATIONS))]);
pub(super) static LOCATION: Msg = msg(
    z::<p::Location>(),
    &[
        f(1, Index(MAPPINGS)),
        f(2, Varint),
        f(3, M(&LINE)),
        f(4, RepIndex(ATTRIBUTES)),
    ],
);
pub(super) static LINE: Msg = msg(
    z::<p::Line>(),
    &[f(1, Index(FUNCTIONS)), f(2, Varint), f(3, Varint)],
);
pub(super) static FUNCTION: Msg = msg(
    z::<p::Function>(),
    &[
        f(1, Index(STRINGS)),
        f(2, Index(STRINGS)),
        f(3, Index(STRINGS)),
        f(4, Varint),
    ],
);
pub(super) static KEY_VALUE_AND_UNIT: Msg = msg(
    z::<p::KeyValueAndUnit>(),
    &[
        f(1, Index(STRINGS)),
        f(2, M(&P_ANY_VALUE)),
        f(3, Index(STRINGS)),
    ],
);

/// The request message of `signal`.
pub(super) fn request(signal: Signal) -> &'static Msg {
    match signal {
        Signal::Traces => &TRACE_REQUEST,
        Signal::Metrics => &METRICS_REQUEST,
        Signal::Logs => &LOGS_REQUEST,
        Signal::Profiles => &PROFILES_REQUEST,
    }
}
