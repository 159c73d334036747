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

mod schema;
mod walker;

use crate::Signal;
pub use schema::TABLES;

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
    /// A group (wire type 3), in a field no OTLP message declares: proto3 has no groups, prost skips
    /// them, the OpenTelemetry Collector refuses them, and so does weir, at its edge.
    #[error("field {tag} is a group (wire type 3), which no OTLP message has")]
    Group {
        /// The field number.
        tag: u32,
    },
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
    /// The first entry of a profiles dictionary table is not its zero value (an empty message, or
    /// `""` for the string table), as the specification requires: index 0 means "not set".
    #[error("invalid {table}: its first entry must be the zero value")]
    FirstEntryNotZero {
        /// The table's field name.
        table: &'static str,
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

/// prost's `RECURSION_LIMIT`.
const RECURSION_LIMIT: u32 = 100;

/// Walks `bytes` as the export request of `signal`.
pub fn walk(signal: Signal, bytes: &[u8]) -> Result<Counts, WalkError> {
    walker::walk(schema::request(signal), bytes)
}

/// What a vector's elements can cost at their peak, in multiples of their size: a vector that grows
/// holds its old buffer and the new one, twice as large, at once (found by the `hostile_body` fuzz
/// target: 300,000 empty JSON spans peaked at exactly three times their structs).
const GROWTH: u64 = 3;

/// The largest struct a message decodes to: a bound for a JSON object of unknown type.
pub const MAX_MESSAGE_SIZE: usize = {
    use opentelemetry_proto::tonic::profiles::v1development as p;
    use opentelemetry_proto::tonic::trace::v1 as t;
    use opentelemetry_proto::tonic::{common::v1 as c, logs::v1 as l, metrics::v1 as m};
    use std::mem::size_of as z;
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
        z::<p::ResourceProfiles>(),
        z::<p::Profile>(),
        z::<p::Sample>(),
        z::<p::Mapping>(),
        z::<p::Location>(),
        z::<p::Function>(),
        z::<p::KeyValueAndUnit>(),
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

#[cfg(test)]
mod tests;
