//! Native kernels that filters call through the host (`weir:filter/kernels@0.2.0`), so that the work
//! filters do most runs at native speed and only its results cross into the guest:
//!
//! - [`PatternSet`]: key rules (names, regular expressions, an allow-list) and value rules (regular
//!   expressions and the built-in [`Detector`]s), compiled once and shared by every instance through a
//!   [`PatternCache`]; [`PatternSet::find_values`] reports byte ranges. Detectors check their candidates
//!   against look-alikes (a Luhn check and card-number prefixes, dotted numbers on either side of an
//!   IPv4 address, word characters around an IPv6 one), so version strings, timestamps, UUIDs and
//!   commit hashes pass untouched.
//! - [`rewrite`]: replaces matched ranges of a value by a mask or a salted hash ([`salted_hash`]).
//!
//! Plain Rust on strings, with no wasmtime in sight: the host's glue maps WIT types onto these.
#![forbid(unsafe_code)]

mod anchored;
mod detector;
mod pattern;
mod rewrite;

pub use detector::{Detector, card_number, luhn};
pub use pattern::{Found, MAX_PATTERNS, PatternCache, PatternError, PatternSet, PatternSpec, Rule};
pub use rewrite::{Rewrite, rewrite, salted_hash, sha256};

use detector::Profile;
#[cfg(test)]
mod tests;

pub mod fuzzing;

/// Which detectors' prefilters `text` passes (for benchmarks and profiling).
pub fn prefilter_passes(text: &str) -> Vec<Detector> {
    let p = Profile::of(text.as_bytes());
    Detector::ALL
        .into_iter()
        .filter(|d| d.may_match(&p, text.as_bytes()))
        .collect()
}
