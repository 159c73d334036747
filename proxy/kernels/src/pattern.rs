//! Pattern sets: key rules and value rules (regular expressions and [`Detector`]s) compiled once,
//! found in values as byte ranges, and shared by every instance through a [`PatternCache`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use regex::{Regex, RegexSet};

use crate::anchored::next_boundary;
use crate::detector::{Detector, Profile, quad_starts};

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
pub(crate) const REGEX_SIZE_LIMIT: usize = 16 << 20;

/// A compiled pattern set.
#[derive(Debug)]
pub struct PatternSet {
    spec: PatternSpec,
    key_names: Vec<String>,
    allow_keys: Option<Vec<String>>,
    key_patterns: Vec<Regex>,
    /// Value rules in order: detectors, then value patterns.
    value_rules: Vec<(Rule, Regex)>,
    /// The detectors' patterns again, for anchored searches where a match can start (`anchored`).
    detectors: Vec<(Detector, regex_automata::meta::Regex)>,
    /// Every value pattern at once, for one pass that finds which of them match.
    any: Option<RegexSet>,
}

pub(crate) fn compile(p: &str) -> Result<Regex, PatternError> {
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
        let mut detectors = Vec::new();
        for d in &spec.detectors {
            value_rules.push((Rule::Detector(*d), compile(d.pattern())?));
            let anchored = crate::anchored::compile(*d, REGEX_SIZE_LIMIT).map_err(|e| {
                PatternError::Regex {
                    pattern: d.pattern().to_string(),
                    reason: e.to_string(),
                }
            })?;
            detectors.push((*d, anchored));
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
            detectors,
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
        let detectors = self.detectors.len();
        if detectors > 0 {
            let profile = Profile::of(text.as_bytes());
            for (d, re) in &self.detectors {
                match d {
                    Detector::Ipv4 if profile.dots >= 3 && profile.digits >= 4 => {
                        find_ipv4(re, text, out)
                    }
                    d if d.may_match(&profile, text.as_bytes()) => {
                        crate::anchored::find_detector(*d, re, text, |start, end| {
                            out.push(Found {
                                rule: Rule::Detector(*d),
                                start,
                                end,
                            })
                        })
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
pub(crate) fn find_ipv4(re: &regex_automata::meta::Regex, text: &str, out: &mut Vec<Found>) {
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
        if let Some(end) = crate::anchored::match_at(re, text, p)
            && Detector::Ipv4.accept(text, p, end)
        {
            out.push(Found {
                rule: Rule::Detector(Detector::Ipv4),
                start: p as u32,
                end: end as u32,
            });
            covered = end;
        }
    }
}

/// Appends the matches of one rule in `text`, each checked against look-alikes.
pub(crate) fn find_rule(rule: Rule, re: &Regex, text: &str, out: &mut Vec<Found>) {
    let mut at = 0;
    while at <= text.len() {
        let Some(m) = re.find_at(text, at) else {
            break;
        };
        // A URL secret's range is what follows its `?name=`: the match's first `=` ends that prefix
        // (no parameter name the pattern knows has one), found without asking the regex for its
        // groups, which takes a slower engine and cost three times the search.
        let prefix_end = (rule == Rule::Detector(Detector::UrlSecret))
            .then(|| memchr::memchr(b'=', m.as_str().as_bytes()).map(|i| m.start() + i + 1))
            .flatten();
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
