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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use regex::{Regex, RegexSet};
use sha2::{Digest, Sha256};

/// A built-in detector of sensitive values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// `user@example.com`.
    Email,
    /// 13 to 19 digits (single spaces or dashes allowed) with a card-network prefix and a valid Luhn
    /// checksum.
    CreditCard,
    /// Dotted quads with octets up to 255, not part of a longer dotted number.
    Ipv4,
    /// Full and compressed IPv6 addresses.
    Ipv6,
    /// `Bearer <token>`.
    Bearer,
    /// Three base64url parts starting `eyJ`.
    Jwt,
    /// Values of secret-looking query parameters in URLs (`token=`, `password=`, `api_key=`, ...): the
    /// range covers the value, not the parameter name.
    UrlSecret,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Detector; 7] = [
        Detector::Email,
        Detector::CreditCard,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Bearer,
        Detector::Jwt,
        Detector::UrlSecret,
    ];

    /// The name used in summaries and counters.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::CreditCard => "credit_card",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Bearer => "bearer",
            Detector::Jwt => "jwt",
            Detector::UrlSecret => "url_secret",
        }
    }

    /// A cheap test, on the value's [`Profile`], that every value this detector can match passes: most
    /// values fail all of them, and then no regular expression runs at all.
    fn may_match(self, p: &Profile, v: &[u8]) -> bool {
        match self {
            Detector::Email => p.at > 0,
            Detector::CreditCard => p.digits >= 13 && longest_digit_run(v) >= 13,
            Detector::Ipv4 => p.dots >= 3 && p.digits >= 4 && quad_starts(v).next().is_some(),
            Detector::Ipv6 => {
                p.colons >= 7 || (p.colons >= 2 && memchr::memmem::find(v, b"::").is_some())
            }
            Detector::Bearer => p.r >= 2 && contains_ignore_case(v, b"bearer"),
            Detector::Jwt => p.j > 0 && memchr::memmem::find(v, b"eyJ").is_some(),
            Detector::UrlSecret => p.eq > 0,
        }
    }
    /// The regular expression. Digits are ASCII `[0-9]`, not `\d` (which, in Unicode mode, also
    /// takes `٢` and the other decimal digits): the prefilters, [`luhn`] and [`card_number`] count
    /// ASCII digits only, and a pattern wider than its prefilter would match what the prefilter hid.
    fn pattern(self) -> &'static str {
        match self {
            Detector::Email => r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
            Detector::CreditCard => r"(?-u:\b)(?:[0-9][ \-]?){12,18}[0-9](?-u:\b)",
            Detector::Ipv4 => {
                r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)"
            }
            Detector::Ipv6 => {
                r"(?i-u)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?i-u)\b(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?\b|(?-u)::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4}\b"
            }
            Detector::Bearer => r"(?i-u)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*",
            Detector::Jwt => r"(?-u:\b)eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+",
            Detector::UrlSecret => {
                r"(?i)([?&](?:access_token|token|api_key|apikey|key|secret|password|passwd|pwd|sig|signature|auth)=)[^&#\s]+"
            }
        }
    }

    /// Whether a candidate the regular expression found at `start..end` of `text` is the real thing.
    fn accept(self, text: &str, start: usize, end: usize) -> bool {
        let b = text.as_bytes();
        let before = |k: usize| start.checked_sub(k).map(|i| b[i]);
        let after = |k: usize| b.get(end + k - 1).copied();
        let alnum = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
        match self {
            Detector::CreditCard => {
                // Part of a longer run of numbers joined by dots or dashes (a UUID, a version, a date)?
                let joined = |sep: Option<u8>, next: Option<u8>| {
                    matches!(sep, Some(b'-' | b'.' | b'_' | b':' | b'/')) && alnum(next)
                };
                !joined(before(1), before(2))
                    && !joined(after(1), after(2))
                    && card_number(&text[start..end])
            }
            Detector::Ipv4 => {
                // `1.2.3.4.5`, `2.10.3.4.1`: a dotted number longer than four parts is a version.
                // ... and so is one right after a product name (`Chrome/120.0.0.0`) or a `v`.
                let dotted = |sep: Option<u8>, next: Option<u8>| sep == Some(b'.') && digit(next);
                let product = before(1) == Some(b'/') && alnum(before(2));
                let v = matches!(before(1), Some(b'v' | b'V')) && !alnum(before(2));
                !dotted(before(1), before(2)) && !dotted(after(1), after(2)) && !product && !v
            }
            Detector::Ipv6 => {
                let word =
                    |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
                // `Class::add` and `a::b` are paths, not addresses; an address has a digit.
                !word(before(1))
                    && before(1) != Some(b':')
                    && !word(after(1))
                    && b[start..end].iter().any(u8::is_ascii_digit)
            }
            _ => true,
        }
    }
}

/// What one pass over a value learns, for the detectors' prefilters: counts of a few characters,
/// in a loop without branches that the compiler vectorizes (values are often random hex or base64,
/// where a branch per byte would be mispredicted half the time).
#[derive(Debug, Default, Clone, Copy)]
struct Profile {
    digits: u32,
    dots: u32,
    colons: u32,
    at: u32,
    eq: u32,
    /// `r` or `R` (in `bearer`; never in hex).
    r: u32,
    /// `J` (in `eyJ`; never in hex).
    j: u32,
}

impl Profile {
    fn of(v: &[u8]) -> Self {
        let mut p = Profile::default();
        // Byte-wide counters over chunks that cannot overflow them: sixteen lanes per vector.
        for chunk in v.chunks(255) {
            let (mut digits, mut dots, mut colons, mut at, mut eq, mut r, mut j) =
                (0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8);
            for &c in chunk {
                digits += u8::from(c.wrapping_sub(b'0') < 10);
                dots += u8::from(c == b'.');
                colons += u8::from(c == b':');
                at += u8::from(c == b'@');
                eq += u8::from(c == b'=');
                r += u8::from(c | 0x20 == b'r');
                j += u8::from(c == b'J');
            }
            p.digits += u32::from(digits);
            p.dots += u32::from(dots);
            p.colons += u32::from(colons);
            p.at += u32::from(at);
            p.eq += u32::from(eq);
            p.r += u32::from(r);
            p.j += u32::from(j);
        }
        p
    }
}

/// The longest run of digits with single spaces or dashes between them (a card number's shape).
fn longest_digit_run(v: &[u8]) -> u32 {
    // Without branches: values that get here are often random hex, digits and letters alternating.
    let (mut best, mut run, mut sep) = (0u32, 0u32, 0u32);
    for &c in v {
        let d = u32::from(c.is_ascii_digit());
        let s = u32::from(c == b' ' || c == b'-');
        let keep = d | (s & (sep ^ 1) & u32::from(run > 0));
        run = (run + d) & 0u32.wrapping_sub(keep);
        sep = s & keep;
        best = best.max(run);
    }
    best
}

/// Where an IPv4 address can start in `v`: a digit after a non-word character (or at the start),
/// followed by four groups of one to three digits joined by dots. Every match of the IPv4 pattern
/// starts at one of these; most values have none.
fn quad_starts(v: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // An address's first dot is one to three digits after its start: look only around dots.
    let mut last = usize::MAX;
    memchr::memchr_iter(b'.', v).filter_map(move |dot| {
        let mut p = dot;
        while p > 0 && dot - p < 3 && v[p - 1].is_ascii_digit() {
            p -= 1;
        }
        if p == dot || (p > 0 && (word(v[p - 1]) || v[p - 1].is_ascii_digit())) || p == last {
            return None;
        }
        let mut i = p;
        for group in 0..4 {
            let start = i;
            while i < v.len() && i - start < 3 && v[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            if group < 3 {
                if v.get(i) != Some(&b'.') {
                    return None;
                }
                i += 1;
            }
        }
        last = p;
        Some(p)
    })
}

/// Whether `hay` contains `needle` (lower-case ASCII, starting with a letter), ignoring ASCII case.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let first = needle[0];
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), hay).any(|i| {
        hay.get(i..i + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// Luhn checksum of the ASCII digits in `s` (13 to 19 of them).
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A card number: a Luhn-valid number whose prefix and length belong to a card network (Visa,
/// Mastercard, American Express, Discover, JCB, Diners Club, UnionPay, Maestro). Timestamps in seconds,
/// milliseconds or nanoseconds since 1970 start with 1 and are refused here whatever their checksum.
pub fn card_number(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let p = |k: usize| {
        digits
            .get(..k)
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let network = match digits.as_bytes().first() {
        Some(b'4') => matches!(n, 13 | 16 | 19),
        Some(b'2') => (2221..=2720).contains(&p(4)) && n == 16,
        Some(b'5') => ((51..=55).contains(&p(2)) && n == 16) || (n >= 12 && p(2) == 50),
        Some(b'3') => {
            (matches!(p(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&n))
                || (((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39)) && n >= 14)
        }
        Some(b'6') => (16..=19).contains(&n) || (n >= 12 && matches!(p(2), 56..=69)),
        _ => false,
    };
    network && luhn(&digits)
}

/// A pattern set as a filter describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PatternSpec {
    /// Built-in detectors run over string values.
    pub detectors: Vec<Detector>,
    /// Regular expressions run over string values.
    pub value_patterns: Vec<String>,
    /// Keys whose values always match, compared case-insensitively.
    pub key_names: Vec<String>,
    /// Regular expressions over keys whose values always match.
    pub key_patterns: Vec<String>,
    /// When set, the values of every key not in this list match (case-insensitively).
    pub allow_keys: Option<Vec<String>>,
}

/// Which rule of a pattern set matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A built-in detector.
    Detector(Detector),
    /// `value_patterns[i]`.
    ValuePattern(u32),
    /// `key_names[i]`.
    KeyName(u32),
    /// `key_patterns[i]`.
    KeyPattern(u32),
    /// The key is not in `allow_keys`.
    NotAllowed,
}

impl Rule {
    /// True for rules on the key: they cover the whole value, whatever its type.
    pub fn is_key_rule(self) -> bool {
        matches!(
            self,
            Rule::KeyName(_) | Rule::KeyPattern(_) | Rule::NotAllowed
        )
    }
}

/// One match in a value: a rule and a byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The rule.
    pub rule: Rule,
    /// Start byte.
    pub start: u32,
    /// End byte (exclusive).
    pub end: u32,
}

/// A pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A regular expression is invalid.
    #[error("pattern `{pattern}`: {reason}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The set is larger than a filter may ask for.
    #[error("too many patterns: {0} (at most {MAX_PATTERNS})")]
    TooMany(usize),
}

/// The most rules one pattern set may hold.
pub const MAX_PATTERNS: usize = 1024;

/// The largest compiled size of one pattern set's regular expressions, in bytes.
const REGEX_SIZE_LIMIT: usize = 16 << 20;

/// A compiled pattern set.
#[derive(Debug)]
pub struct PatternSet {
    spec: PatternSpec,
    key_names: Vec<String>,
    allow_keys: Option<Vec<String>>,
    key_patterns: Vec<Regex>,
    /// Value rules in order: detectors, then value patterns.
    value_rules: Vec<(Rule, Regex)>,
    /// Every value pattern at once, for one pass that finds which of them match.
    any: Option<RegexSet>,
}

fn compile(p: &str) -> Result<Regex, PatternError> {
    regex::RegexBuilder::new(p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| PatternError::Regex {
            pattern: p.to_string(),
            reason: e.to_string(),
        })
}

impl PatternSet {
    /// Compiles a spec; a bad regular expression is an error naming it.
    pub fn compile(spec: &PatternSpec) -> Result<Self, PatternError> {
        let total = spec.detectors.len()
            + spec.value_patterns.len()
            + spec.key_names.len()
            + spec.key_patterns.len()
            + spec.allow_keys.as_ref().map_or(0, Vec::len);
        if total > MAX_PATTERNS {
            return Err(PatternError::TooMany(total));
        }
        let mut value_rules = Vec::new();
        for d in &spec.detectors {
            value_rules.push((Rule::Detector(*d), compile(d.pattern())?));
        }
        for (i, p) in spec.value_patterns.iter().enumerate() {
            value_rules.push((Rule::ValuePattern(i as u32), compile(p)?));
        }
        let any = if spec.value_patterns.is_empty() {
            None
        } else {
            Some(
                regex::RegexSetBuilder::new(&spec.value_patterns)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| PatternError::Regex {
                        pattern: "(value patterns together)".into(),
                        reason: e.to_string(),
                    })?,
            )
        };
        Ok(Self {
            key_names: spec.key_names.iter().map(|k| k.to_lowercase()).collect(),
            allow_keys: spec
                .allow_keys
                .as_ref()
                .map(|v| v.iter().map(|k| k.to_lowercase()).collect()),
            key_patterns: spec
                .key_patterns
                .iter()
                .map(|p| compile(p))
                .collect::<Result<_, _>>()?,
            value_rules,
            any,
            spec: spec.clone(),
        })
    }

    /// The spec it was compiled from.
    pub fn spec(&self) -> &PatternSpec {
        &self.spec
    }

    /// True when the set has rules on values (detectors or value patterns).
    pub fn has_value_rules(&self) -> bool {
        !self.value_rules.is_empty()
    }

    /// True when the set has rules on keys.
    pub fn has_key_rules(&self) -> bool {
        !self.key_names.is_empty() || !self.key_patterns.is_empty() || self.allow_keys.is_some()
    }

    /// The key rule that `key` matches, if any: then the whole value matches.
    pub fn key_rule(&self, key: &str) -> Option<Rule> {
        // Lists were lower-cased once, so no allocation here for ASCII keys.
        let same = |k: &String| {
            if key.is_ascii() {
                k.eq_ignore_ascii_case(key)
            } else {
                *k == key.to_lowercase()
            }
        };
        if let Some(allow) = &self.allow_keys
            && !allow.iter().any(same)
        {
            return Some(Rule::NotAllowed);
        }
        if let Some(i) = self.key_names.iter().position(same) {
            return Some(Rule::KeyName(i as u32));
        }
        self.key_patterns
            .iter()
            .position(|r| r.is_match(key))
            .map(|i| Rule::KeyPattern(i as u32))
    }

    /// Appends the value rules' matches in `text` to `out`, rule by rule; returns how many it added.
    pub fn find_values(&self, text: &str, out: &mut Vec<Found>) -> usize {
        let before = out.len();
        let detectors = self.spec.detectors.len();
        if detectors > 0 {
            let profile = Profile::of(text.as_bytes());
            for (rule, re) in &self.value_rules[..detectors] {
                match rule {
                    Rule::Detector(Detector::Ipv4) if profile.dots >= 3 && profile.digits >= 4 => {
                        find_ipv4(re, text, out)
                    }
                    Rule::Detector(d) if d.may_match(&profile, text.as_bytes()) => {
                        find_rule(*rule, re, text, out)
                    }
                    _ => {}
                }
            }
        }
        if let Some(any) = &self.any {
            // One pass finds which of the operator's patterns match; only those run again, to find where.
            for i in any.matches(text).iter() {
                let (rule, re) = &self.value_rules[detectors + i];
                find_rule(*rule, re, text, out);
            }
        }
        out.len() - before
    }
}

impl PatternSet {
    /// [`PatternSet::find_values`] without the detectors' prefilters: what they must never change (for
    /// tests and the fuzz target; slow).
    #[doc(hidden)]
    pub fn find_values_unfiltered(&self, text: &str, out: &mut Vec<Found>) {
        for (rule, re) in &self.value_rules {
            find_rule(*rule, re, text, out);
        }
    }
}

/// [`find_rule`] for IPv4 addresses, trying the pattern only where an address can start (the
/// pattern's own search would scan the rest of the value after every refused look-alike).
fn find_ipv4(re: &Regex, text: &str, out: &mut Vec<Found>) {
    let b = text.as_bytes();
    let alnum = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphanumeric());
    let mut covered = 0;
    for p in quad_starts(b) {
        if p < covered {
            continue;
        }
        // What `accept` refuses by the characters before the candidate, refused before the pattern
        // runs: a product version (`Chrome/120.0.0.0`), `v1.2.3.4`, a dotted number.
        let before = |k: usize| p.checked_sub(k).map(|i| b[i]);
        let product = before(1) == Some(b'/') && p >= 2 && alnum(p - 2);
        let v = matches!(before(1), Some(b'v' | b'V')) && !(p >= 2 && alnum(p - 2));
        let dotted = before(1) == Some(b'.') && before(2).is_some_and(|c| c.is_ascii_digit());
        if product || v || dotted {
            continue;
        }
        if let Some(m) = re.find_at(text, p)
            && m.start() == p
            && Detector::Ipv4.accept(text, m.start(), m.end())
        {
            out.push(Found {
                rule: Rule::Detector(Detector::Ipv4),
                start: m.start() as u32,
                end: m.end() as u32,
            });
            covered = m.end();
        }
    }
}

/// Appends the matches of one rule in `text`, each checked against look-alikes.
fn find_rule(rule: Rule, re: &Regex, text: &str, out: &mut Vec<Found>) {
    let mut at = 0;
    while at <= text.len() {
        // Only a URL secret needs its groups; finding without them is several times faster.
        let (m, prefix_end) = if rule == Rule::Detector(Detector::UrlSecret) {
            let Some(c) = re.captures_at(text, at) else {
                break;
            };
            (
                c.get(0).expect("group 0 is the match"),
                c.get(1).map(|p| p.end()),
            )
        } else {
            let Some(m) = re.find_at(text, at) else {
                break;
            };
            (m, None)
        };
        let (start, end) = (m.start(), m.end());
        let ok = match rule {
            Rule::Detector(d) => d.accept(text, start, end),
            _ => true,
        };
        if ok {
            // A URL secret keeps its `?token=`: the range is what follows.
            let start = prefix_end.unwrap_or(start);
            if end > start {
                out.push(Found {
                    rule,
                    start: start as u32,
                    end: end as u32,
                });
            }
            at = if m.is_empty() {
                next_boundary(text, m.end())
            } else {
                m.end()
            };
        } else {
            // A refused candidate may hide a real one that starts inside it.
            at = next_boundary(text, m.start());
        }
    }
}

/// The next char boundary after `i`.
fn next_boundary(text: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < text.len() && !text.is_char_boundary(j) {
        j += 1;
    }
    j
}

/// Compiled pattern sets shared by every instance of every filter that asks for the same spec: a filter
/// compiles its set in `init`, once per instance, and pays for the compilation once.
#[derive(Debug, Default)]
pub struct PatternCache {
    sets: Mutex<HashMap<PatternSpec, Weak<PatternSet>>>,
}

impl PatternCache {
    /// The compiled set for `spec`, compiled now unless a live one exists.
    pub fn get(&self, spec: &PatternSpec) -> Result<Arc<PatternSet>, PatternError> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = sets.get(spec).and_then(Weak::upgrade) {
            return Ok(set);
        }
        let set = Arc::new(PatternSet::compile(spec)?);
        // Forget the sets nobody holds any more, so that the cache does not grow with pushes.
        sets.retain(|_, w| w.strong_count() > 0);
        sets.insert(spec.clone(), Arc::downgrade(&set));
        Ok(set)
    }

    /// Live compiled sets.
    pub fn len(&self) -> usize {
        let sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.values().filter(|w| w.strong_count() > 0).count()
    }

    /// True when no set is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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

#[cfg(test)]
mod quad_tests {
    #[test]
    fn quad_starts_are_where_addresses_can_begin() {
        let starts: Vec<usize> =
            super::quad_starts(b"a 1.2.3.4 x10.0.0.1 (255.255.255.255").collect();
        assert_eq!(starts, vec![2, 21]);
        assert_eq!(super::quad_starts(b"1.2.3 and 1234.5.6.7").count(), 0);
    }
}
