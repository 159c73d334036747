//! The bodies of the parser fuzz targets (`fuzz/`), here so that the committed corpora also run as
//! ordinary tests on stable Rust (weir's `tests/fuzz_corpus.rs`). Each function takes arbitrary bytes,
//! feeds them to one parser and checks a property beyond "does not panic" where there is one.

use crate::{Payload, Signal};

/// The signal a fuzz input's first byte picks: profiles with its top bit set, else one of the other
/// three by the byte modulo 3 (the mapping the committed corpora were written with).
fn signal(b: u8) -> Signal {
    if b & 0x80 != 0 {
        Signal::Profiles
    } else {
        Signal::ALL[usize::from(b) % 3]
    }
}

/// OTLP protobuf: the validating walk ([`crate::walk`], what weir runs on forwarded bytes) and prost
/// agree on every input (same verdict, same resource and item counts), except that the walk also
/// refuses trace, span and profile ids of the wrong length, groups (wire type 3) and profiles dictionary indices that
/// point nowhere (judging every occurrence of an index, where decoding keeps a singular field's
/// last), and whatever decodes re-encodes to bytes that decode to the same request.
pub fn otlp_protobuf(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let s = signal(first);
    let walked = crate::walk::walk(s, rest);
    // What the walk refuses and prost takes; a request with bad ids may be refused for another of
    // these first (a group before the id).
    let refused_references = matches!(
        walked,
        Err(crate::walk::WalkError::InvalidId { .. }
            | crate::walk::WalkError::InvalidIndex { .. }
            | crate::walk::WalkError::FirstEntryNotZero { .. }
            | crate::walk::WalkError::Group { .. })
    );
    match Payload::decode_protobuf(s, rest) {
        Ok(p) if !p.ids_are_valid() => assert!(
            refused_references,
            "the walk did not refuse ids or indices that point nowhere: {walked:?}"
        ),
        Ok(_)
            if matches!(
                walked,
                Err(crate::walk::WalkError::InvalidIndex { .. }
                    | crate::walk::WalkError::FirstEntryNotZero { .. }
                    | crate::walk::WalkError::Group { .. })
            ) => {}
        Ok(p) => {
            let counts = walked.expect("the walk refused what prost decodes");
            assert_eq!(counts.items, p.item_count(), "item counts differ");
            assert_eq!(
                counts.resources,
                p.resource_count(),
                "resource counts differ"
            );
            let encoded = p.encode_protobuf();
            let again = Payload::decode_protobuf(s, &encoded).expect("re-encoded request decodes");
            // Compared as bytes: a NaN attribute is not equal to itself as a struct.
            assert_eq!(
                encoded,
                again.encode_protobuf(),
                "protobuf round trip changed the request"
            );
        }
        Err(e) => assert!(
            walked.is_err(),
            "the walk accepted what prost refuses ({e})"
        ),
    }
}

/// The OTLP/JSON mapping: whatever decodes encodes to JSON that decodes again.
pub fn otlp_json(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let s = signal(first);
    if let Ok(p) = Payload::decode_json(s, rest) {
        let json = p.encode_json();
        Payload::decode_json(s, &json).expect("weir's own JSON decodes");
    }
}

/// gzip handling: inflation never yields more than the limit, whatever the input.
pub fn gzip(data: &[u8]) {
    const LIMIT: usize = 64 << 10;
    if let Ok(out) = crate::codec::gunzip(data, LIMIT) {
        assert!(out.len() <= LIMIT, "inflated past the limit");
    }
}

/// zstd handling: inflation never yields more than the limit, whatever the input, and what inflates
/// compresses and inflates back to itself.
pub fn zstd(data: &[u8]) {
    use crate::codec::{Encoding, compress, decompress};
    const LIMIT: usize = 64 << 10;
    if let Ok(out) = decompress(Encoding::Zstd, data, LIMIT) {
        assert!(out.len() <= LIMIT, "inflated past the limit");
        let again = compress(Encoding::Zstd, 1, &[bytes::Bytes::from(out.clone())]);
        assert_eq!(
            decompress(Encoding::Zstd, &again, LIMIT).expect("weir's own zstd inflates"),
            out
        );
    }
}

/// The durable queue's segment reader: reading a damaged or hostile segment stops at the damage, never
/// reads past the data, and every record it accepts is whole.
pub fn queue_segment(data: &[u8]) {
    let mut offset = 0;
    while offset < data.len() {
        match crate::record::parse(&data[offset..]) {
            Ok(Some(p)) => {
                assert!(p.len > 0 && offset + p.len <= data.len());
                assert!(p.body.end <= p.len);
                offset += p.len;
            }
            Ok(None) | Err(_) => break,
        }
    }
}

/// What the memory bound of [`hostile_body`] allows beyond a request's charge: allocator rounding,
/// the decoders' small fixed buffers, serde's scratch space.
pub const HOSTILE_SLACK: usize = 256 << 10;

/// A request body as a hostile client sends it, through what a receiver does before and after
/// admission ([`crate::intake`]): the first byte picks the signal, JSON or protobuf, and the encoding
/// (none, gzip, zstd); the rest is the body, inflated within 256 KiB. Whatever the input: no panic,
/// and the heap it takes at its peak (`peak() - before`, from a counting allocator the caller
/// installs; `reset_peak` starts the measure) stays within the body, what inflating was charged and
/// the request's cost, plus [`HOSTILE_SLACK`]: the charge the memory limit counts is what decoding
/// can really allocate.
pub fn hostile_body(
    data: &[u8],
    current: &dyn Fn() -> usize,
    peak: &dyn Fn() -> usize,
    reset_peak: &dyn Fn(),
) {
    use crate::codec::Encoding;
    const LIMIT: usize = 256 << 10;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let s = signal(first);
    let json = first & 0x04 != 0;
    let encoding = [None, Some(Encoding::Gzip), Some(Encoding::Zstd)][usize::from(first >> 3) % 3];
    let body = bytes::Bytes::copy_from_slice(rest);
    let before = current();
    reset_peak();
    let mut inflating = 0usize;
    let result = crate::intake::prepare(s, json, encoding, body, LIMIT, |n| {
        inflating = inflating.max(n);
        true
    });
    let mut charged = inflating;
    if let Ok(prepared) = result {
        charged = charged.max(usize::try_from(prepared.cost()).unwrap_or(usize::MAX));
        drop(prepared.into_body());
    }
    let used = peak().saturating_sub(before);
    assert!(
        used <= rest.len() + charged + HOSTILE_SLACK,
        "decoding took {used} bytes at its peak, charged {charged} for a body of {}",
        rest.len()
    );
}
