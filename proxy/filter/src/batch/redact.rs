//! Redaction in the batch: rewriting what a pattern set matched, either from the matches a filter hands
//! back (`redact`, interface 0.2) or found and rewritten in one call (`pattern-set.scan-and-redact`,
//! 0.3.1), where the matches never leave the host. Both rewrite a value once, with all of its ranges,
//! and both ask `out_of_time` every few values, so that the filter's CPU budget bounds the call as it
//! bounds the guest's own code (a host call cannot be interrupted by the deadline).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Range;

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use weir_kernels::{PatternSet, Rewrite};

use super::bulk::{CHECK_EVERY, Match, Redaction, Selection, ValueMatch, from_json, value_text};
use super::{BatchState, R, Target};
use weir_core::Signal;

/// What [`BatchState::scan_redact`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Redacted {
    /// Values with at least one match.
    pub(crate) matched: u32,
    /// Values rewritten or removed.
    pub(crate) changed: u32,
    /// The matched values, in batch order (when asked for): where, and the key (empty for a body).
    pub(crate) touched: Vec<(Target, String)>,
}

/// The matches in one value, found by [`BatchState::scan_redact`]'s first pass.
struct Hit {
    at: Target,
    /// The attribute's index in its list (0 for a body).
    pos: usize,
    /// A key rule matched: the whole value goes.
    whole: bool,
    /// Its ranges, in the pass's shared list.
    ranges: Range<usize>,
}

/// `current` rewritten: the whole value (`whole`) or the matched `ranges` of its text. `None` when a
/// rewrite of ranges leaves the text as it was.
fn rewritten(
    current: &AnyValue,
    whole: bool,
    ranges: &mut [(u32, u32)],
    rewrite: &Rewrite,
) -> Option<AnyValue> {
    let text = value_text(current);
    let is_json =
        !matches!(current.value, Some(any_value::Value::StringValue(_)) | None) && text.is_some();
    let original = text.as_deref().unwrap_or_default();
    let new = if whole {
        match rewrite {
            Rewrite::Mask(m) => m.clone(),
            Rewrite::Hash(salt) => weir_kernels::salted_hash(salt, original),
        }
    } else {
        let new = weir_kernels::rewrite(original, ranges, rewrite);
        if new == original {
            return None;
        }
        new
    };
    Some(if is_json && !whole {
        from_json(new)
    } else {
        AnyValue {
            value: Some(any_value::Value::StringValue(new)),
        }
    })
}

/// The kernels' rewrite for a redaction that keeps the value (`Remove` masks log bodies).
fn rewrite_of(how: &Redaction) -> Rewrite {
    match how {
        Redaction::Remove => Rewrite::Mask("****".into()),
        Redaction::Mask(m) => Rewrite::Mask(m.clone()),
        Redaction::Hash(salt) => Rewrite::Hash(salt.clone()),
    }
}

impl BatchState {
    /// Rewrites what `matches` found; returns how many values changed, or `None` when the CPU budget
    /// ran out.
    ///
    /// Linear in the matches: they are grouped by value through a map (a search of the groups per
    /// match made one call quadratic).
    pub(crate) fn redact(
        &mut self,
        matches: &[Match],
        how: &Redaction,
        out_of_time: &mut dyn FnMut() -> bool,
    ) -> R<Option<u32>> {
        /// The matches in one value: where, its key, whether a key rule covers it whole, the ranges.
        type Group<'a> = (Target, &'a str, bool, Vec<(u32, u32)>);
        let mut groups: Vec<Group<'_>> = Vec::new();
        let mut index: HashMap<(Target, &str), usize> = HashMap::new();
        for m in matches {
            let t = self.target(m.at)?;
            let whole = m.rule.is_key_rule();
            match index.entry((t, m.key.as_str())) {
                Entry::Occupied(e) => {
                    let g = &mut groups[*e.get()];
                    g.2 |= whole;
                    g.3.push((m.start, m.end));
                }
                Entry::Vacant(e) => {
                    e.insert(groups.len());
                    groups.push((t, &m.key, whole, vec![(m.start, m.end)]));
                }
            }
        }
        let rewrite = rewrite_of(how);
        let mut changed = 0;
        for (n, (t, key, whole, mut ranges)) in groups.into_iter().enumerate() {
            if n % CHECK_EVERY == CHECK_EVERY - 1 && out_of_time() {
                return Ok(None);
            }
            if *how == Redaction::Remove && !matches!(t, Target::Body(_)) {
                if self.remove_at(t, key)? {
                    changed += 1;
                }
                continue;
            }
            let current = match t {
                Target::Body(i) => self.log(i)?.and_then(|l| l.body.as_ref()),
                t => self
                    .attrs(t)
                    .and_then(|a| a.iter().find(|kv| kv.key == key))
                    .and_then(|kv| kv.value.as_ref()),
            };
            let Some(new) = current.and_then(|c| rewritten(c, whole, &mut ranges, &rewrite)) else {
                continue;
            };
            self.set_at(t, key, new)?;
            changed += 1;
        }
        Ok(Some(changed))
    }

    /// Scans the lists `lists` selects with `set` and rewrites what it matched, in one call: the
    /// matches stay here. Attributes are addressed by their index in their list, and rewritten last to
    /// first, so that removing one leaves the indices still to visit as they were. `None` when the
    /// CPU budget ran out (changes made so far stay in the journal, for the caller to roll back).
    pub(crate) fn scan_redact(
        &mut self,
        set: &PatternSet,
        lists: Selection,
        how: &Redaction,
        list_touched: bool,
        out_of_time: &mut dyn FnMut() -> bool,
    ) -> R<Option<Redacted>> {
        let mut hits: Vec<Hit> = Vec::new();
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let mut out = Redacted::default();
        let done = self.each_match(set, lists, out_of_time, |at, pos, key, m| {
            let from = ranges.len();
            if let ValueMatch::Ranges(found) = m {
                ranges.extend(found.iter().map(|f| (f.start, f.end)));
            }
            hits.push(Hit {
                at,
                pos,
                whole: matches!(m, ValueMatch::Key(..)),
                ranges: from..ranges.len(),
            });
            if list_touched {
                out.touched.push((at, key.to_string()));
            }
        });
        if !done {
            return Ok(None);
        }
        out.matched = hits.len() as u32;
        let rewrite = rewrite_of(how);
        for (n, h) in hits.iter().enumerate().rev() {
            if n % CHECK_EVERY == CHECK_EVERY - 1 && out_of_time() {
                return Ok(None);
            }
            // A metric's own item has no list to index (`visit` hands out its points); bodies are not
            // attributes.
            debug_assert!(!matches!(h.at, Target::Item(_)) || self.signal() != Signal::Metrics);
            if *how == Redaction::Remove && !matches!(h.at, Target::Body(_)) {
                if self.remove_attr_at(h.at, h.pos) {
                    out.changed += 1;
                }
                continue;
            }
            let current = match h.at {
                Target::Body(i) => self.log(i)?.and_then(|l| l.body.as_ref()),
                t => self
                    .attrs(t)
                    .and_then(|a| a.get(h.pos))
                    .and_then(|kv| kv.value.as_ref()),
            };
            let ranges = &mut ranges[h.ranges.clone()];
            let Some(new) = current.and_then(|c| rewritten(c, h.whole, ranges, &rewrite)) else {
                continue;
            };
            match h.at {
                Target::Body(_) => self.set_at(h.at, "", new)?,
                t => self.replace_at(t, h.pos, new),
            }
            out.changed += 1;
        }
        Ok(Some(out))
    }
}
