//! Rewriting matched ranges of a value: a mask or a salted hash.

use sha2::{Digest, Sha256};

/// How matched ranges are rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Replaced by this text.
    Mask(String),
    /// Replaced by [`salted_hash`] of the matched text with this salt.
    Hash(String),
}

/// `sha256:` and the first 16 hex digits of SHA-256 over `salt` then `text`: equal values stay joinable
/// without being readable.
pub fn salted_hash(salt: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(text.as_bytes());
    let d = h.finalize();
    let mut out = String::with_capacity(7 + 16);
    out.push_str("sha256:");
    for b in d.iter().take(8) {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    out
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `text` with the byte `ranges` rewritten: overlapping and touching ranges are merged first, ranges
/// past the end are clipped, and ranges that do not fall on char boundaries are widened to them.
pub fn rewrite(text: &str, ranges: &mut [(u32, u32)], how: &Rewrite) -> String {
    ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0usize;
    let mut i = 0;
    while i < ranges.len() {
        let mut start = (ranges[i].0 as usize).min(text.len());
        let mut end = (ranges[i].1 as usize).min(text.len());
        i += 1;
        while i < ranges.len() && (ranges[i].0 as usize) <= end {
            end = end.max((ranges[i].1 as usize).min(text.len()));
            i += 1;
        }
        start = start.max(at);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        if end <= start {
            continue;
        }
        out.push_str(&text[at..start]);
        match how {
            Rewrite::Mask(m) => out.push_str(m),
            Rewrite::Hash(salt) => out.push_str(&salted_hash(salt, &text[start..end])),
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}
