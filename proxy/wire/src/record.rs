//! The durable queue's record format (see weir's `exporter::durable` for the log around it).
//!
//! Little-endian: `len: u32` (bytes after this 8-byte header), `crc: u32` (CRC-32, IEEE, of those bytes),
//! then `seq: u64`, `enqueued_unix_ms: u64`, `signal: u8`, `items: u32`, and the OTLP protobuf body.
//! When the signal byte's high bit is set, `tenant_len: u8` and the tenant's bytes (UTF-8) come between
//! `items` and the body: the tenant an exporter with `tenant_header` sends upstream. Records without a
//! tenant are the format weir wrote before tenants existed, so queues written then still replay.

use crate::Signal;

const HEADER: usize = 8;
const META: usize = 8 + 8 + 1 + 4;
/// Bytes a record without a tenant adds to its body.
pub const OVERHEAD: usize = HEADER + META;
/// The signal byte's flag for "a tenant follows `items`".
const TENANT_FLAG: u8 = 0x80;
/// Longest tenant a record holds, in bytes.
pub const MAX_TENANT: usize = u8::MAX as usize;

/// Bytes a record with `tenant` adds to its body.
pub fn overhead(tenant: Option<&str>) -> usize {
    OVERHEAD + tenant.map_or(0, |t| 1 + t.len().min(MAX_TENANT))
}
/// Largest record accepted when reading: anything longer is corruption.
const MAX_RECORD: usize = 1 << 30;

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The data ends inside the 8-byte header.
    #[error("torn record header")]
    TornHeader,
    /// The length field is below the metadata size or above 1 GiB.
    #[error("record length {0} out of range")]
    Length(usize),
    /// The data ends before the record does.
    #[error("torn record")]
    Torn,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// The signal byte is not one weir writes.
    #[error("unknown signal {0}")]
    Signal(u8),
    /// The tenant runs past the record or is not UTF-8.
    #[error("bad tenant")]
    Tenant,
}

fn signal_byte(s: Signal) -> u8 {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
        Signal::Profiles => 3,
    }
}

fn byte_signal(b: u8) -> Option<Signal> {
    Some(match b {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        2 => Signal::Logs,
        3 => Signal::Profiles,
        _ => return None,
    })
}

/// The header and metadata of a record whose body is `body`: write these bytes, then the body.
pub fn header(seq: u64, enqueued_unix_ms: u64, signal: Signal, items: u32, body: &[u8]) -> Vec<u8> {
    header_of_parts(seq, enqueued_unix_ms, signal, None, items, &[body])
}

/// The header of a record whose body is `parts` concatenated (several requests merged into one record),
/// with its tenant (at most [`MAX_TENANT`] bytes; longer is cut at a character boundary): write these
/// bytes, then the parts in order.
pub fn header_of_parts(
    seq: u64,
    enqueued_unix_ms: u64,
    signal: Signal,
    tenant: Option<&str>,
    items: u32,
    parts: &[&[u8]],
) -> Vec<u8> {
    let tenant = tenant.map(|t| {
        let mut end = t.len().min(MAX_TENANT);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        &t[..end]
    });
    let mut h = vec![0u8; overhead(tenant)];
    let body_len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(h.len() - HEADER + body_len).unwrap_or(u32::MAX);
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..24].copy_from_slice(&enqueued_unix_ms.to_le_bytes());
    h[24] = signal_byte(signal);
    h[25..29].copy_from_slice(&items.to_le_bytes());
    if let Some(t) = tenant {
        h[24] |= TENANT_FLAG;
        h[29] = t.len() as u8;
        h[30..].copy_from_slice(t.as_bytes());
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[HEADER..]);
    for p in parts {
        crc.update(p);
    }
    h[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// One whole record, header and body.
pub fn encode(seq: u64, enqueued_unix_ms: u64, signal: Signal, items: u32, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(OVERHEAD + body.len());
    buf.extend_from_slice(&header(seq, enqueued_unix_ms, signal, items, body));
    buf.extend_from_slice(body);
    buf
}

/// What one record's header and metadata say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Sequence number.
    pub seq: u64,
    /// Enqueue time.
    pub enqueued_unix_ms: u64,
    /// Signal.
    pub signal: Signal,
    /// Items.
    pub items: u32,
    /// The tenant, for an exporter that sends it upstream.
    pub tenant: Option<String>,
    /// Body offset and length within the record.
    pub body: std::ops::Range<usize>,
    /// The whole record's length.
    pub len: usize,
}

/// Reads the record at the start of `data`: `Ok(None)` at a clean end, `Err` when it is torn or damaged.
/// No input makes it panic or read past `data` (the `queue_segment` fuzz target checks).
pub fn parse(data: &[u8]) -> Result<Option<Parsed>, RecordError> {
    if data.is_empty() {
        return Ok(None);
    }
    let Some((head, rest)) = data.split_first_chunk::<HEADER>() else {
        return Err(RecordError::TornHeader);
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(META..=MAX_RECORD).contains(&len) {
        return Err(RecordError::Length(len));
    }
    let Some(rest) = rest.get(..len) else {
        return Err(RecordError::Torn);
    };
    if crc32fast::hash(rest) != crc {
        return Err(RecordError::Checksum);
    }
    let u64_at = |i: usize| u64::from_le_bytes(rest[i..i + 8].try_into().unwrap_or_default());
    let signal = byte_signal(rest[16] & !TENANT_FLAG).ok_or(RecordError::Signal(rest[16]))?;
    let (tenant, body_start) = if rest[16] & TENANT_FLAG == 0 {
        (None, META)
    } else {
        let n = *rest.get(META).ok_or(RecordError::Tenant)? as usize;
        let bytes = rest
            .get(META + 1..META + 1 + n)
            .ok_or(RecordError::Tenant)?;
        let tenant = std::str::from_utf8(bytes).map_err(|_| RecordError::Tenant)?;
        (Some(tenant.to_string()), META + 1 + n)
    };
    Ok(Some(Parsed {
        seq: u64_at(0),
        enqueued_unix_ms: u64_at(8),
        signal,
        items: u32::from_le_bytes(rest[17..21].try_into().unwrap_or_default()),
        tenant,
        body: HEADER + body_start..HEADER + len,
        len: HEADER + len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let r = encode(7, 99, Signal::Logs, 3, b"hello");
        assert_eq!(r.len(), OVERHEAD + 5);
        let p = parse(&r).unwrap().unwrap();
        assert_eq!(
            (p.seq, p.enqueued_unix_ms, p.signal, p.items),
            (7, 99, Signal::Logs, 3)
        );
        assert_eq!(&r[p.body.clone()], b"hello");
        assert_eq!(p.len, r.len());
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&r[..3]), Err(RecordError::TornHeader));
        for cut in HEADER..r.len() {
            assert_eq!(parse(&r[..cut]), Err(RecordError::Torn), "torn at {cut}");
        }
        let mut bad = r.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&bad), Err(RecordError::Checksum));
        let mut long = r.clone();
        long[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&long), Err(RecordError::Length(u32::MAX as usize)));
    }

    #[test]
    fn two_records_back_to_back_read_one_at_a_time() {
        let mut data = encode(1, 0, Signal::Traces, 1, b"a");
        data.extend(encode(2, 0, Signal::Metrics, 2, b""));
        let first = parse(&data).unwrap().unwrap();
        let second = parse(&data[first.len..]).unwrap().unwrap();
        assert_eq!(
            (first.seq, second.seq, second.signal),
            (1, 2, Signal::Metrics)
        );
        assert_eq!(first.len + second.len, data.len());
    }

    #[test]
    fn a_record_of_several_parts_is_the_record_of_their_concatenation() {
        let parts: [&[u8]; 3] = [b"ab", b"", b"cde"];
        let mut r = header_of_parts(5, 1, Signal::Traces, None, 9, &parts);
        for p in parts {
            r.extend_from_slice(p);
        }
        assert_eq!(r, encode(5, 1, Signal::Traces, 9, b"abcde"));
        assert_eq!(&r[parse(&r).unwrap().unwrap().body], b"abcde");
    }

    #[test]
    fn a_tenant_rides_between_the_metadata_and_the_body() {
        let mut r = header_of_parts(6, 2, Signal::Metrics, Some("team-a"), 4, &[b"xyz"]);
        assert_eq!(r.len(), overhead(Some("team-a")));
        r.extend_from_slice(b"xyz");
        let p = parse(&r).unwrap().unwrap();
        assert_eq!((p.signal, p.items), (Signal::Metrics, 4));
        assert_eq!(p.tenant.as_deref(), Some("team-a"));
        assert_eq!(&r[p.body.clone()], b"xyz");
        assert_eq!(p.len, r.len());
        // Without a tenant the record is the one weir wrote before tenants existed.
        let plain = parse(&encode(6, 2, Signal::Metrics, 4, b"xyz"))
            .unwrap()
            .unwrap();
        assert_eq!(plain.tenant, None);
        // A tenant length past the record is damage, not a panic.
        let mut bad = header_of_parts(6, 2, Signal::Logs, Some("t"), 1, &[]);
        bad[29] = 200;
        let crc = crc32fast::hash(&bad[HEADER..]);
        bad[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse(&bad), Err(RecordError::Tenant));
        let long = "é".repeat(200);
        let h = header_of_parts(1, 1, Signal::Traces, Some(&long), 1, &[]);
        let cut = parse(&h).unwrap().unwrap().tenant.unwrap();
        assert!(
            cut.len() <= MAX_TENANT && long.starts_with(&cut),
            "cut at a character boundary"
        );
    }
}
