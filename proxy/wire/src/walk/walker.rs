//! The walk itself: a cursor over the bytes that follows the [`super::schema`], checks what prost
//! checks, counts items and resources and sums what decoding would allocate.

use super::schema::*;
use super::{Counts, GROWTH, RECURSION_LIMIT, WalkError};

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const START_GROUP: u8 = 3;
pub(super) const FIXED32: u8 = 5;

/// Whether `s` is UTF-8: most OTLP strings are short and ASCII, checked eight bytes at a time here;
/// the rest goes to `simdutf8`.
#[inline(always)]
pub(super) fn utf8(s: &[u8]) -> bool {
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

/// Walks `bytes` as a message of `request`.
pub(super) fn walk(request: &Msg, bytes: &[u8]) -> Result<Counts, WalkError> {
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
            let start = self.pos;
            let inner_items = self.field(field, tag, wire, end, ctx)?;
            match field.count {
                Count::Inner => items += inner_items,
                Count::Item => items += 1,
                Count::Entry(table) => {
                    let n = &mut self.entries[usize::from(table)];
                    // The first entry is what index 0, "not set", points at: it must be the zero
                    // value (an empty message or string, or one whose fields are all zero), or a
                    // merged request would lend one client's first entry to every other client's
                    // unset indices.
                    if *n == 0
                        && self.pos - start > 1
                        && !zero_entry(table, &self.buf[start..self.pos])
                    {
                        return Err(WalkError::FirstEntryNotZero {
                            table: TABLES[usize::from(table)],
                        });
                    }
                    *n += 1;
                }
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
            Kind::Id(id) => {
                let want = id.len();
                expect(LEN)?;
                let n = self.varint(end)?;
                self.take(n, end)?;
                if n != 0 && n != u64::from(want) {
                    return Err(WalkError::InvalidId {
                        what: id.name(),
                        want,
                        got: n,
                    });
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
            Kind::RepStr => {
                expect(LEN)?;
                self.string(end)?;
                self.heap += GROWTH * std::mem::size_of::<String>() as u64;
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
            // prost skips a group as it skips any unknown field, but no OTLP message has one and
            // the OpenTelemetry Collector refuses a request with one: forwarded, merged into other
            // clients' requests, it would have the upstream refuse theirs too.
            START_GROUP => return Err(WalkError::Group { tag }),
            _ => return Err(WalkError::UnexpectedEndGroup),
        }
        Ok(())
    }
}

/// Whether a dictionary entry of `table` (a length prefix and the entry's bytes) is the table's zero
/// value: the entry decodes to its message's default, where an attribute whose value is an empty
/// `AnyValue` counts as one without a value (the OpenTelemetry Collector writes the zero attribute
/// as `{value: {}}`). Decided on the decoded message, so that the verdict is the same for a request
/// and for its re-encoding (a repeated field's one element of 0 is an element, an unset field is not),
/// and run only on a table's first entry when it is not empty.
fn zero_entry(table: u8, mut bytes: &[u8]) -> bool {
    use opentelemetry_proto::tonic::profiles::v1development as p;
    use prost::Message;
    fn default<M: Message + Default + PartialEq>(bytes: &[u8]) -> bool {
        M::decode(bytes).is_ok_and(|m| m == M::default())
    }
    let Ok(len) = prost::encoding::decode_varint(&mut bytes) else {
        return false;
    };
    if usize::try_from(len).ok() != Some(bytes.len()) {
        return false;
    }
    match table {
        MAPPINGS => default::<p::Mapping>(bytes),
        LOCATIONS => default::<p::Location>(bytes),
        FUNCTIONS => default::<p::Function>(bytes),
        LINKS => default::<p::Link>(bytes),
        STACKS => default::<p::Stack>(bytes),
        ATTRIBUTES => p::KeyValueAndUnit::decode(bytes).is_ok_and(|kv| {
            kv.key_strindex == 0
                && kv.unit_strindex == 0
                && kv.value.is_none_or(|v| v.value.is_none())
        }),
        _ => bytes.is_empty(),
    }
}
