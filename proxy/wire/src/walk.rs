//! A validating walk over an OTLP export request in protobuf wire format: it decides, without decoding
//! anything into structs and without allocating, whether prost would decode the bytes, and counts the
//! request's resources and items on the way.
//!
//! This is what lets weir forward a request's bytes untouched when no filter needs to look inside:
//! the walk refuses exactly what a prost decode of the same request type refuses (bad varints, keys,
//! wire types, lengths past their message, strings that are not UTF-8, unmatched groups, nesting past
//! prost's recursion limit of 100) and counts items as prost's decoded structs would (a metric's data
//! points counted for the variant of its `data` oneof that decoding would keep). The fuzz target
//! `walk_vs_prost` and the tests below hold it to that.
//!
//! The schema is written out from `opentelemetry-proto`'s generated messages; a field missing here would
//! be skipped as unknown while prost checks it, which the differential fuzzing catches.
//!
//! Beyond prost, the walk refuses what the OTLP data model refuses and strict upstreams (the
//! Collector's pdata) refuse for the whole request: trace ids that are not 16 bytes and span ids that
//! are not 8 bytes (empty ones are allowed: "no parent", "no trace context"), so that one client's
//! malformed ids never ride upstream merged with another client's data ([`WalkError::InvalidId`]).
//!
//! It also bounds what decoding the bytes would allocate ([`Counts::decoded_bytes`]: every message
//! entered at the size of its struct, every string and byte field at its length, every repeated
//! number at 8 bytes, and all of those three times over: while a vector grows it holds its old
//! buffer and the new one, twice as large, at once), so that the receiver charges
//! a request's memory before anything is decoded: two bytes of an empty message decode to a struct of
//! a hundred, and a request of empty messages to a hundred times its size.

use crate::Signal;

/// What the walk counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `resource_spans` / `resource_metrics` / `resource_logs` entries.
    pub resources: usize,
    /// Spans, metric data points or log records.
    pub items: usize,
    /// At most the heap bytes decoding the request into prost's structs allocates (see the module
    /// docs); the bytes themselves are not included.
    pub decoded_bytes: usize,
}

/// Why the bytes are not a valid request (the kinds of prost's `DecodeError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// A varint is longer than 10 bytes, overflows 64 bits, or is cut off.
    #[error("invalid varint")]
    InvalidVarint,
    /// A field key does not fit 32 bits.
    #[error("invalid key value")]
    InvalidKey,
    /// A field key's wire type is not 0 to 5.
    #[error("invalid wire type value")]
    InvalidWireType,
    /// Field number 0.
    #[error("invalid tag value: 0")]
    InvalidTag,
    /// A known field arrived with another wire type than its declared one.
    #[error("invalid wire type for field {tag}")]
    WrongWireType {
        /// The field number.
        tag: u32,
    },
    /// A length or fixed-width value runs past the end of its message.
    #[error("buffer underflow")]
    BufferUnderflow,
    /// A string field is not UTF-8.
    #[error("invalid string value: data is not UTF-8 encoded")]
    NotUtf8,
    /// An end-group key without its start, or with another field number.
    #[error("unexpected end group tag")]
    UnexpectedEndGroup,
    /// Messages nested deeper than the decoder allows.
    #[error("recursion limit reached")]
    RecursionLimit,
    /// A trace, span or profile id of another length than the data model's (16, 8 and 16 bytes, or
    /// empty).
    #[error("invalid {what}: {got} bytes, not {want} (or none)")]
    InvalidId {
        /// `trace id`, `span id` or `profile id`.
        what: &'static str,
        /// Its required length.
        want: u8,
        /// Its length.
        got: u64,
    },
    /// A profile points past the end of one of its dictionary's tables, or at a negative index.
    /// Merging requests shifts indices (see [`crate::profiles::merge`]): one that points nowhere
    /// in its own request would point into another client's entries.
    #[error("invalid {table} index {index}: the dictionary's table has {len} entries")]
    InvalidIndex {
        /// The table's field name.
        table: &'static str,
        /// The index.
        index: i64,
        /// The table's length.
        len: u64,
    },
}

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
const MAPPINGS: u8 = 0;
const LOCATIONS: u8 = 1;
const FUNCTIONS: u8 = 2;
const LINKS: u8 = 3;
const STRINGS: u8 = 4;
const ATTRIBUTES: u8 = 5;
const STACKS: u8 = 6;

/// prost's `RECURSION_LIMIT`.
const RECURSION_LIMIT: u32 = 100;

#[derive(Clone, Copy)]
enum Kind {
    /// int32, int64, uint32, uint64, sint32, bool, enums.
    Varint,
    Fixed32,
    /// fixed64, sfixed64, double.
    Fixed64,
    Bytes,
    /// A string, singular or repeated: UTF-8 checked.
    Str,
    Msg(&'static Msg),
    /// Repeated fixed64 or double, packed or not.
    RepFixed64,
    /// Repeated uint64, packed or not.
    RepVarint,
    /// An id of this many bytes (16 for trace and profile ids, 8 for span ids), or empty; named
    /// for the error.
    Id(u8, &'static str),
    /// An `int32` index into one of the profiles dictionary's tables (see [`TABLES`]).
    Index(u8),
    /// Repeated `int32` indices into one of the profiles dictionary's tables, packed or not.
    RepIndex(u8),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Adds the items counted inside the field's message.
    Inner,
    /// Each occurrence is one item.
    Item,
    /// A variant of a metric's `data` oneof: only the variant decoding keeps counts.
    Variant,
    /// Each occurrence is one entry of a profiles dictionary table (see [`TABLES`]).
    Entry(u8),
}

struct Field {
    tag: u32,
    kind: Kind,
    count: Count,
}

/// A message's known fields, found by field number through `index` (every OTLP field number is below
/// [`INDEXED`]; anything above is unknown).
struct Msg {
    fields: &'static [Field],
    index: [u8; INDEXED],
    /// The size of its decoded struct.
    size: u32,
}

const INDEXED: usize = 32;

impl Msg {
    #[inline]
    fn field(&self, tag: u32) -> Option<&Field> {
        let i = *self.index.get(tag as usize)?;
        self.fields.get(usize::from(i))
    }
}

/// A message of `fields` with its index, decoded to a struct of `size` bytes.
const fn msg(size: usize, fields: &'static [Field]) -> Msg {
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

const fn f(tag: u32, kind: Kind) -> Field {
    Field {
        tag,
        kind,
        count: Count::Inner,
    }
}

const fn item(tag: u32, msg: &'static Msg) -> Field {
    Field {
        tag,
        kind: Kind::Msg(msg),
        count: Count::Item,
    }
}

/// Field `tag` of kind `kind`, each occurrence one entry of dictionary table `table`.
const fn entry(tag: u32, kind: Kind, table: u8) -> Field {
    Field {
        tag,
        kind,
        count: Count::Entry(table),
    }
}

const fn variant(tag: u32, msg: &'static Msg) -> Field {
    Field {
        tag,
        kind: Kind::Msg(msg),
        count: Count::Variant,
    }
}

use Kind::{
    Bytes, Fixed32, Fixed64, Id, Index, Msg as M, RepFixed64, RepIndex, RepVarint, Str, Varint,
};
use opentelemetry_proto::tonic::{common::v1 as c, logs::v1 as l, metrics::v1 as m};
use opentelemetry_proto::tonic::{resource::v1 as r, trace::v1 as t};
use std::mem::size_of as z;

const TRACE_ID: Kind = Id(16, "trace id");
const SPAN_ID: Kind = Id(8, "span id");
const PROFILE_ID: Kind = Id(16, "profile id");

// opentelemetry.proto.common.v1
static ANY_VALUE: Msg = msg(
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
static ARRAY_VALUE: Msg = msg(z::<c::ArrayValue>(), &[f(1, M(&ANY_VALUE))]);
static KEY_VALUE_LIST: Msg = msg(z::<c::KeyValueList>(), &[f(1, M(&KEY_VALUE))]);
static KEY_VALUE: Msg = msg(
    z::<c::KeyValue>(),
    &[f(1, Str), f(2, M(&ANY_VALUE)), f(3, Varint)],
);
static SCOPE: Msg = msg(
    z::<c::InstrumentationScope>(),
    &[f(1, Str), f(2, Str), f(3, M(&KEY_VALUE)), f(4, Varint)],
);
static ENTITY_REF: Msg = msg(
    z::<c::EntityRef>(),
    &[f(1, Str), f(2, Str), f(3, Str), f(4, Str)],
);
// opentelemetry.proto.resource.v1
static RESOURCE: Msg = msg(
    z::<r::Resource>(),
    &[f(1, M(&KEY_VALUE)), f(2, Varint), f(3, M(&ENTITY_REF))],
);

// opentelemetry.proto.trace.v1
static TRACE_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>(),
    &[f(1, M(&RESOURCE_SPANS))],
);
static RESOURCE_SPANS: Msg = msg(
    z::<t::ResourceSpans>(),
    &[f(1, M(&RESOURCE)), f(2, M(&SCOPE_SPANS)), f(3, Str)],
);
static SCOPE_SPANS: Msg = msg(
    z::<t::ScopeSpans>(),
    &[f(1, M(&SCOPE)), item(2, &SPAN), f(3, Str)],
);
static SPAN: Msg = msg(
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
static EVENT: Msg = msg(
    z::<t::span::Event>(),
    &[f(1, Fixed64), f(2, Str), f(3, M(&KEY_VALUE)), f(4, Varint)],
);
static LINK: Msg = msg(
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
static STATUS: Msg = msg(z::<t::Status>(), &[f(2, Str), f(3, Varint)]);

// opentelemetry.proto.metrics.v1
static METRICS_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest>(),
    &[f(1, M(&RESOURCE_METRICS))],
);
static RESOURCE_METRICS: Msg = msg(
    z::<m::ResourceMetrics>(),
    &[f(1, M(&RESOURCE)), f(2, M(&SCOPE_METRICS)), f(3, Str)],
);
static SCOPE_METRICS: Msg = msg(
    z::<m::ScopeMetrics>(),
    &[f(1, M(&SCOPE)), f(2, M(&METRIC)), f(3, Str)],
);
static METRIC: Msg = msg(
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
static GAUGE: Msg = msg(z::<m::Gauge>(), &[item(1, &NUMBER_POINT)]);
static SUM: Msg = msg(
    z::<m::Sum>(),
    &[item(1, &NUMBER_POINT), f(2, Varint), f(3, Varint)],
);
static HISTOGRAM: Msg = msg(
    z::<m::Histogram>(),
    &[item(1, &HISTOGRAM_POINT), f(2, Varint)],
);
static EXP_HISTOGRAM: Msg = msg(
    z::<m::ExponentialHistogram>(),
    &[item(1, &EXP_HISTOGRAM_POINT), f(2, Varint)],
);
static SUMMARY: Msg = msg(z::<m::Summary>(), &[item(1, &SUMMARY_POINT)]);
static NUMBER_POINT: Msg = msg(
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
static HISTOGRAM_POINT: Msg = msg(
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
static EXP_HISTOGRAM_POINT: Msg = msg(
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
static BUCKETS: Msg = msg(
    z::<m::exponential_histogram_data_point::Buckets>(),
    &[f(1, Varint), f(2, RepVarint)],
);
static SUMMARY_POINT: Msg = msg(
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
static VALUE_AT_QUANTILE: Msg = msg(
    z::<m::summary_data_point::ValueAtQuantile>(),
    &[f(1, Fixed64), f(2, Fixed64)],
);
static EXEMPLAR: Msg = msg(
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
static LOGS_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest>(),
    &[f(1, M(&RESOURCE_LOGS))],
);
static RESOURCE_LOGS: Msg = msg(
    z::<l::ResourceLogs>(),
    &[f(1, M(&RESOURCE)), f(2, M(&SCOPE_LOGS)), f(3, Str)],
);
static SCOPE_LOGS: Msg = msg(
    z::<l::ScopeLogs>(),
    &[f(1, M(&SCOPE)), item(2, &LOG_RECORD), f(3, Str)],
);
static LOG_RECORD: Msg = msg(
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
static PROFILES_REQUEST: Msg = msg(
    z::<opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest>(),
    &[f(1, M(&RESOURCE_PROFILES)), f(2, M(&DICTIONARY))],
);
static DICTIONARY: Msg = msg(
    z::<p::ProfilesDictionary>(),
    &[
        entry(1, M(&MAPPING), MAPPINGS),
        entry(2, M(&LOCATION), LOCATIONS),
        entry(3, M(&FUNCTION), FUNCTIONS),
        entry(4, M(&PROFILE_LINK), LINKS),
        entry(5, Str, STRINGS),
        entry(6, M(&KEY_VALUE_AND_UNIT), ATTRIBUTES),
        entry(7, M(&STACK), STACKS),
    ],
);
static RESOURCE_PROFILES: Msg = msg(
    z::<p::ResourceProfiles>(),
    &[f(1, M(&RESOURCE)), f(2, M(&SCOPE_PROFILES)), f(3, Str)],
);
static SCOPE_PROFILES: Msg = msg(
    z::<p::ScopeProfiles>(),
    &[f(1, M(&SCOPE)), f(2, M(&PROFILE)), f(3, Str)],
);
static PROFILE: Msg = msg(
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
static PROFILE_LINK: Msg = msg(z::<p::Link>(), &[f(1, TRACE_ID), f(2, SPAN_ID)]);
static VALUE_TYPE: Msg = msg(
    z::<p::ValueType>(),
    &[f(1, Index(STRINGS)), f(2, Index(STRINGS))],
);
static SAMPLE: Msg = msg(
    z::<p::Sample>(),
    &[
        f(1, Index(STACKS)),
        f(2, RepIndex(ATTRIBUTES)),
        f(3, Index(LINKS)),
        f(4, RepVarint),
        f(5, RepFixed64),
    ],
);
static MAPPING: Msg = msg(
    z::<p::Mapping>(),
    &[
        f(1, Varint),
        f(2, Varint),
        f(3, Varint),
        f(4, Index(STRINGS)),
        f(5, RepIndex(ATTRIBUTES)),
    ],
);
static STACK: Msg = msg(z::<p::Stack>(), &[f(1, RepIndex(LOCATIONS))]);
static LOCATION: Msg = msg(
    z::<p::Location>(),
    &[
        f(1, Index(MAPPINGS)),
        f(2, Varint),
        f(3, M(&LINE)),
        f(4, RepIndex(ATTRIBUTES)),
    ],
);
static LINE: Msg = msg(
    z::<p::Line>(),
    &[f(1, Index(FUNCTIONS)), f(2, Varint), f(3, Varint)],
);
static FUNCTION: Msg = msg(
    z::<p::Function>(),
    &[
        f(1, Index(STRINGS)),
        f(2, Index(STRINGS)),
        f(3, Index(STRINGS)),
        f(4, Varint),
    ],
);
static KEY_VALUE_AND_UNIT: Msg = msg(
    z::<p::KeyValueAndUnit>(),
    &[
        f(1, Index(STRINGS)),
        f(2, M(&ANY_VALUE)),
        f(3, Index(STRINGS)),
    ],
);

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Whether `s` is UTF-8: most OTLP strings are short and ASCII, checked eight bytes at a time here;
/// the rest goes to `simdutf8`.
#[inline(always)]
fn utf8(s: &[u8]) -> bool {
    if s.len() <= 64 {
        let mut words = s.chunks_exact(8);
        let mut high = 0u64;
        for w in &mut words {
            high |= u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        }
        let tail = words.remainder().iter().fold(0u8, |acc, b| acc | b);
        if high & 0x8080_8080_8080_8080 == 0 && tail < 0x80 {
            return true;
        }
    }
    simdutf8::basic::from_utf8(s).is_ok()
}

/// Walks `bytes` as the export request of `signal`.
pub fn walk(signal: Signal, bytes: &[u8]) -> Result<Counts, WalkError> {
    let request = match signal {
        Signal::Traces => &TRACE_REQUEST,
        Signal::Metrics => &METRICS_REQUEST,
        Signal::Logs => &LOGS_REQUEST,
        Signal::Profiles => &PROFILES_REQUEST,
    };
    let mut w = Walker {
        buf: bytes,
        pos: 0,
        structs: 0,
        heap: 0,
        entries: [0; TABLES.len()],
        max_index: [0; TABLES.len()],
    };
    let (items, resources) = w.fields(request, bytes.len(), RECURSION_LIMIT)?;
    w.check_indices()?;
    Ok(Counts {
        resources: resources as usize,
        items: items as usize,
        decoded_bytes: usize::try_from(w.structs.saturating_mul(GROWTH).saturating_add(w.heap))
            .unwrap_or(usize::MAX),
    })
}

/// What a vector's elements can cost at their peak, in multiples of their size: a vector that grows
/// holds its old buffer and the new one, twice as large, at once (found by the `hostile_body` fuzz
/// target: 300,000 empty JSON spans peaked at exactly three times their structs).
const GROWTH: u64 = 3;

/// The largest struct a message decodes to: a bound for a JSON object of unknown type.
pub const MAX_MESSAGE_SIZE: usize = {
    let all = [
        z::<t::Span>(),
        z::<l::LogRecord>(),
        z::<m::Metric>(),
        z::<m::HistogramDataPoint>(),
        z::<m::ExponentialHistogramDataPoint>(),
        z::<m::SummaryDataPoint>(),
        z::<m::NumberDataPoint>(),
        z::<m::Exemplar>(),
        z::<t::ResourceSpans>(),
        z::<m::ResourceMetrics>(),
        z::<l::ResourceLogs>(),
        z::<c::AnyValue>(),
        z::<c::KeyValue>(),
    ];
    let mut max = 0;
    let mut i = 0;
    while i < all.len() {
        if all[i] > max {
            max = all[i];
        }
        i += 1;
    }
    max
};

/// At most the heap bytes decoding an OTLP/JSON body of `json` into prost's structs allocates: every
/// object at [`MAX_MESSAGE_SIZE`] and every comma as an 8-byte number (three times, for vector
/// growth), every byte as a string byte. Counting bytes is all it does: it runs before anything is decoded.
pub fn json_decoded_bound(json: &[u8]) -> usize {
    let (mut objects, mut commas) = (0usize, 0usize);
    for &b in json {
        objects += usize::from(b == b'{');
        commas += usize::from(b == b',');
    }
    objects
        .saturating_mul(GROWTH as usize * MAX_MESSAGE_SIZE)
        .saturating_add(commas.saturating_mul(GROWTH as usize * 8))
        .saturating_add(json.len())
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes of the structs of the messages entered (see [`Counts::decoded_bytes`]).
    structs: u64,
    /// Bytes of strings, byte fields and repeated numbers.
    heap: u64,
    /// Entries of each profiles dictionary table (see [`TABLES`]).
    entries: [u64; TABLES.len()],
    /// The largest index into each table.
    max_index: [u64; TABLES.len()],
}

impl Walker<'_> {
    /// A varint that ends before `end`, with prost's rules (at most 10 bytes, no overflow). Most are
    /// one byte (keys, short lengths): that case is inlined.
    #[inline(always)]
    fn varint(&mut self, end: usize) -> Result<u64, WalkError> {
        if self.pos < end
            && let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_long(end)
    }

    #[inline(never)]
    fn varint_long(&mut self, end: usize) -> Result<u64, WalkError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos).filter(|_| self.pos < end) else {
                return Err(WalkError::InvalidVarint);
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b >= 2 {
                    return Err(WalkError::InvalidVarint);
                }
                return Ok(value);
            }
        }
        Err(WalkError::InvalidVarint)
    }

    fn key(&mut self, end: usize) -> Result<(u32, u8), WalkError> {
        let key = self.varint(end)?;
        if key > u64::from(u32::MAX) {
            return Err(WalkError::InvalidKey);
        }
        let wire = (key & 7) as u8;
        if wire > 5 {
            return Err(WalkError::InvalidWireType);
        }
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return Err(WalkError::InvalidTag);
        }
        Ok((tag, wire))
    }

    /// Advances over `n` bytes that must end before `end`.
    fn take(&mut self, n: u64, end: usize) -> Result<&[u8], WalkError> {
        let left = (end - self.pos) as u64;
        if n > left {
            return Err(WalkError::BufferUnderflow);
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// A length prefix and the end of what it delimits.
    fn delimited(&mut self, end: usize) -> Result<usize, WalkError> {
        let len = self.varint(end)?;
        if len > (end - self.pos) as u64 {
            return Err(WalkError::BufferUnderflow);
        }
        Ok(self.pos + len as usize)
    }

    /// The fields of one message up to `end`, each seeing recursion budget `ctx` (prost's
    /// `DecodeContext`); returns the items counted inside and how many times field 1 occurred (the
    /// resources, for a request).
    fn fields(&mut self, msg: &Msg, end: usize, ctx: u32) -> Result<(u64, u64), WalkError> {
        let mut items = 0u64;
        let mut firsts = 0u64;
        let (mut variant, mut variant_items) = (0u32, 0u64);
        // Ids of the wrong length, by field: decoding keeps a singular field's last occurrence, so
        // only the last one of each is judged, at the end of the message.
        let mut bad_ids: [(u32, Option<WalkError>); 3] = [(0, None); 3];
        while self.pos < end {
            let (tag, wire) = self.key(end)?;
            let Some(field) = msg.field(tag) else {
                self.skip(wire, tag, end, ctx)?;
                continue;
            };
            firsts += u64::from(tag == 1);
            if let Kind::Id(..) = field.kind {
                let verdict = match self.field(field, tag, wire, end, ctx) {
                    Ok(_) => None,
                    Err(e @ WalkError::InvalidId { .. }) => Some(e),
                    Err(e) => return Err(e),
                };
                match bad_ids.iter_mut().find(|(t, _)| *t == tag || *t == 0) {
                    Some(slot) => *slot = (tag, verdict),
                    // Every OTLP message has at most three ids.
                    None => return Err(verdict.unwrap_or(WalkError::InvalidTag)),
                }
                continue;
            }
            let inner_items = self.field(field, tag, wire, end, ctx)?;
            match field.count {
                Count::Inner => items += inner_items,
                Count::Item => items += 1,
                Count::Entry(table) => self.entries[usize::from(table)] += 1,
                Count::Variant => {
                    // Decoding replaces the oneof when another variant arrives, and merges into it
                    // (appending points) when the same one arrives again.
                    if variant != tag {
                        variant = tag;
                        variant_items = 0;
                    }
                    variant_items += inner_items;
                }
            }
        }
        if let Some(e) = bad_ids.iter().find_map(|(_, v)| *v) {
            return Err(e);
        }
        Ok((items + variant_items, firsts))
    }

    /// One known field whose key was read; returns the items counted inside it.
    #[inline(always)]
    fn field(
        &mut self,
        field: &Field,
        tag: u32,
        wire: u8,
        end: usize,
        ctx: u32,
    ) -> Result<u64, WalkError> {
        let expect = |want: u8| {
            if wire == want {
                Ok(())
            } else {
                Err(WalkError::WrongWireType { tag })
            }
        };
        match field.kind {
            Kind::Varint => {
                expect(VARINT)?;
                self.varint(end)?;
            }
            Kind::Fixed32 => {
                expect(FIXED32)?;
                self.take(4, end)?;
            }
            Kind::Fixed64 => {
                expect(FIXED64)?;
                self.take(8, end)?;
            }
            Kind::Bytes => {
                expect(LEN)?;
                let n = self.varint(end)?;
                self.take(n, end)?;
                self.heap += n;
            }
            Kind::Id(want, what) => {
                expect(LEN)?;
                let n = self.varint(end)?;
                self.take(n, end)?;
                if n != 0 && n != u64::from(want) {
                    return Err(WalkError::InvalidId { what, want, got: n });
                }
                self.heap += n;
            }
            Kind::Index(table) => {
                expect(VARINT)?;
                let v = self.varint(end)?;
                self.index(table, v)?;
            }
            Kind::RepIndex(table) => {
                if wire == LEN {
                    let inner = self.delimited(end)?;
                    while self.pos < inner {
                        let v = self.varint(inner)?;
                        self.index(table, v)?;
                        self.heap += GROWTH * 8;
                    }
                } else {
                    expect(VARINT)?;
                    let v = self.varint(end)?;
                    self.index(table, v)?;
                    self.heap += GROWTH * 8;
                }
            }
            Kind::Str => {
                expect(LEN)?;
                self.string(end)?;
            }
            Kind::RepFixed64 => {
                if wire == LEN {
                    let inner = self.delimited(end)?;
                    if !(inner - self.pos).is_multiple_of(8) {
                        return Err(WalkError::BufferUnderflow);
                    }
                    self.heap += GROWTH * (inner - self.pos) as u64;
                    self.pos = inner;
                } else {
                    expect(FIXED64)?;
                    self.take(8, end)?;
                    self.heap += GROWTH * 8;
                }
            }
            Kind::RepVarint => {
                if wire == LEN {
                    let inner = self.delimited(end)?;
                    while self.pos < inner {
                        self.varint(inner)?;
                        self.heap += GROWTH * 8;
                    }
                } else {
                    expect(VARINT)?;
                    self.varint(end)?;
                    self.heap += GROWTH * 8;
                }
            }
            Kind::Msg(inner_msg) => {
                expect(LEN)?;
                if ctx == 0 {
                    return Err(WalkError::RecursionLimit);
                }
                let inner = self.delimited(end)?;
                self.structs += u64::from(inner_msg.size);
                // Attributes are most of OTLP: their two messages have walks of their own, whose
                // branches predict well (they hold no items).
                if std::ptr::eq(inner_msg, &KEY_VALUE) {
                    self.key_value(inner, ctx - 1)?;
                } else if std::ptr::eq(inner_msg, &ANY_VALUE) {
                    self.any_value(inner, ctx - 1)?;
                } else {
                    return Ok(self.fields(inner_msg, inner, ctx - 1)?.0);
                }
            }
        }
        Ok(0)
    }

    /// An index `v` (an `int32` as prost decodes it: the low 32 bits) into dictionary table `table`.
    fn index(&mut self, table: u8, v: u64) -> Result<(), WalkError> {
        let i = v as i32;
        if i < 0 {
            return Err(WalkError::InvalidIndex {
                table: TABLES[usize::from(table)],
                index: i64::from(i),
                len: self.entries[usize::from(table)],
            });
        }
        let max = &mut self.max_index[usize::from(table)];
        *max = (*max).max(i as u64);
        Ok(())
    }

    /// Every index above 0 points into its table (0 is the zero value, "not set").
    fn check_indices(&self) -> Result<(), WalkError> {
        for (t, (&max, &len)) in self.max_index.iter().zip(&self.entries).enumerate() {
            if max > 0 && max >= len {
                return Err(WalkError::InvalidIndex {
                    table: TABLES[t],
                    index: max as i64,
                    len,
                });
            }
        }
        Ok(())
    }

    /// A string field's length and bytes, checked as UTF-8.
    #[inline(always)]
    fn string(&mut self, end: usize) -> Result<(), WalkError> {
        let n = self.varint(end)?;
        self.heap += n;
        if utf8(self.take(n, end)?) {
            Ok(())
        } else {
            Err(WalkError::NotUtf8)
        }
    }

    /// A `KeyValue`: the same walk as [`Walker::fields`] with [`KEY_VALUE`], its two usual keys (`key`
    /// and `value`, one byte each) taken first.
    fn key_value(&mut self, end: usize, ctx: u32) -> Result<(), WalkError> {
        while self.pos < end {
            match self.buf[self.pos] {
                0x0a => {
                    self.pos += 1;
                    self.string(end)?;
                }
                0x12 => {
                    self.pos += 1;
                    if ctx == 0 {
                        return Err(WalkError::RecursionLimit);
                    }
                    let inner = self.delimited(end)?;
                    self.any_value(inner, ctx - 1)?;
                }
                _ => self.other_field(&KEY_VALUE, end, ctx)?,
            }
        }
        Ok(())
    }

    /// An `AnyValue`: the same walk as [`Walker::fields`] with [`ANY_VALUE`], its scalar values
    /// (string, bool, int, double) taken first.
    fn any_value(&mut self, end: usize, ctx: u32) -> Result<(), WalkError> {
        while self.pos < end {
            match self.buf[self.pos] {
                0x0a => {
                    self.pos += 1;
                    self.string(end)?;
                }
                0x10 | 0x18 => {
                    self.pos += 1;
                    self.varint(end)?;
                }
                0x21 => {
                    self.pos += 1;
                    self.take(8, end)?;
                }
                _ => self.other_field(&ANY_VALUE, end, ctx)?,
            }
        }
        Ok(())
    }

    /// One field of `msg` (which counts no items) the generic way.
    #[inline(never)]
    fn other_field(&mut self, msg: &Msg, end: usize, ctx: u32) -> Result<(), WalkError> {
        let (tag, wire) = self.key(end)?;
        match msg.field(tag) {
            None => self.skip(wire, tag, end, ctx),
            Some(field) => self.field(field, tag, wire, end, ctx).map(|_| ()),
        }
    }

    /// Skips an unknown field as prost's `skip_field` does.
    fn skip(&mut self, wire: u8, tag: u32, end: usize, ctx: u32) -> Result<(), WalkError> {
        if ctx == 0 {
            return Err(WalkError::RecursionLimit);
        }
        match wire {
            VARINT => {
                self.varint(end)?;
            }
            FIXED64 => {
                self.take(8, end)?;
            }
            FIXED32 => {
                self.take(4, end)?;
            }
            LEN => {
                let n = self.varint(end)?;
                self.take(n, end)?;
            }
            START_GROUP => loop {
                let (inner_tag, inner_wire) = self.key(end)?;
                if inner_wire == END_GROUP {
                    if inner_tag != tag {
                        return Err(WalkError::UnexpectedEndGroup);
                    }
                    break;
                }
                self.skip(inner_wire, inner_tag, end, ctx - 1)?;
            },
            _ => return Err(WalkError::UnexpectedEndGroup),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payload;

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
        // Unknown fields of every wire type are skipped, groups included; a stray end group is not.
        let mut unknown = key(99, VARINT);
        unknown.push(5);
        unknown.extend(key(98, FIXED32));
        unknown.extend([1, 2, 3, 4]);
        unknown.extend(key(97, START_GROUP));
        unknown.extend(key(96, FIXED64));
        unknown.extend([0; 8]);
        unknown.extend(key(97, END_GROUP));
        assert!(agree(Signal::Traces, &req(unknown.clone())));
        let mut stray = unknown.clone();
        stray.extend(key(95, END_GROUP));
        assert!(!agree(Signal::Traces, &req(stray)));
        let mut wrong_end = key(97, START_GROUP);
        wrong_end.extend(key(94, END_GROUP));
        assert!(!agree(Signal::Traces, &req(wrong_end)));
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
}
