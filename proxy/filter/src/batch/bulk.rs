//! What interface 0.2 adds to the batch, on plain types: scopes, any attribute list by [`Target`], bulk
//! reads into one byte buffer and one entry list (no allocation per value), bulk edits, and the kernels
//! that run over the batch natively: a pattern set's scan (the redaction of what it finds is in
//! `redact`).

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use weir_kernels::{Found, PatternSet, Rule};

use super::index::point_attrs;
use super::journal::Undo;
use super::{BatchState, R, Target, point_count};
use weir_core::{Payload, Signal};

/// A value as text for pattern matching: strings as they are, arrays and maps as OTLP/JSON.
pub(super) fn value_text(v: &AnyValue) -> Option<Cow<'_, str>> {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Some(Cow::Borrowed(s)),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            Some(Cow::Owned(serde_json::to_string(v).unwrap_or_default()))
        }
        _ => None,
    }
}

/// A value from its OTLP/JSON text; text that is not an OTLP `AnyValue` is kept as a string.
pub(crate) fn from_json(s: String) -> AnyValue {
    match serde_json::from_str::<AnyValue>(&s) {
        Ok(v) => v,
        Err(_) => AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        },
    }
}

/// Which attribute lists a bulk read or a scan covers (and whether log bodies are read too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    pub(crate) resources: bool,
    pub(crate) scopes: bool,
    pub(crate) items: bool,
    pub(crate) points: bool,
    pub(crate) events: bool,
    pub(crate) links: bool,
    pub(crate) bodies: bool,
}

/// The kind of a value in a bulk read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Str,
    Bytes,
    Boolean,
    Int,
    Double,
    Json,
}

/// One value of a bulk read: where, its key and its value, as ranges of the read's byte buffer (a
/// number's bits in `number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) at: Target,
    pub(crate) key_start: u32,
    pub(crate) key_len: u32,
    pub(crate) kind: ValueKind,
    pub(crate) start: u32,
    pub(crate) len: u32,
    pub(crate) number: u64,
}

/// One change of a bulk edit: set `key` at `at` to `value`, or remove it (`None`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Edit {
    pub(crate) at: Target,
    pub(crate) key: String,
    pub(crate) value: Option<AnyValue>,
}

/// Strings in one buffer, each ending where `ends` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StringList {
    pub(crate) data: String,
    pub(crate) ends: Vec<u32>,
}

/// What a pattern set found: where, under which key (empty for a body), by which rule, and the byte
/// range in the value's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match {
    pub(crate) at: Target,
    pub(crate) key: String,
    pub(crate) rule: Rule,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// How [`BatchState::redact`] rewrites what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redaction {
    /// Attributes go; a body is masked with `****`.
    Remove,
    /// The matched text becomes this.
    Mask(String),
    /// The matched text becomes its salted hash.
    Hash(String),
}

impl BatchState {
    /// Calls `f` with every attribute list `lists` selects, in batch order.
    pub(super) fn visit(&self, lists: Selection, mut f: impl FnMut(Target, &[KeyValue])) {
        if lists.resources {
            for r in 0..self.resource_count() as u32 {
                if let Some(a) = self.attrs(Target::Resource(r)) {
                    f(Target::Resource(r), a);
                }
            }
        }
        if lists.scopes {
            for s in 0..self.scopes.len() as u32 {
                if let Some(a) = self.attrs(Target::Scope(s)) {
                    f(Target::Scope(s), a);
                }
            }
        }
        let n = self.items.len() as u32;
        match &self.payload {
            Payload::Traces(_) => {
                for i in 0..n {
                    let Ok(Some(span)) = self.span(i) else {
                        continue;
                    };
                    if lists.items {
                        f(Target::Item(i), &span.attributes);
                    }
                    if lists.events {
                        for (e, ev) in span.events.iter().enumerate() {
                            f(Target::Event(i, e as u32), &ev.attributes);
                        }
                    }
                    if lists.links {
                        for (l, link) in span.links.iter().enumerate() {
                            f(Target::Link(i, l as u32), &link.attributes);
                        }
                    }
                }
            }
            Payload::Logs(_) if lists.items => {
                for i in 0..n {
                    if let Ok(Some(l)) = self.log(i) {
                        f(Target::Item(i), &l.attributes);
                    }
                }
            }
            Payload::Metrics(_) if lists.points => {
                for i in 0..n {
                    let Ok(Some(m)) = self.metric(i) else {
                        continue;
                    };
                    for p in 0..point_count(m) {
                        if let Some(a) = point_attrs(m, p) {
                            f(Target::Point(i, p as u32), a);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Calls `f` with every string log body, when `lists` selects bodies.
    pub(super) fn visit_bodies(&self, lists: Selection, mut f: impl FnMut(u32, &AnyValue, &str)) {
        if !lists.bodies || self.signal() != Signal::Logs {
            return;
        }
        for i in 0..self.items.len() as u32 {
            if let Ok(Some(l)) = self.log(i)
                && let Some(
                    body @ AnyValue {
                        value: Some(any_value::Value::StringValue(s)),
                    },
                ) = &l.body
            {
                f(i, body, s);
            }
        }
    }

    /// One attribute (or the body) at a location.
    pub(crate) fn get(&self, at: Target, key: &str) -> R<Option<AnyValue>> {
        let t = self.target(at)?;
        if let Target::Body(i) = t {
            return Ok(self.log(i)?.and_then(|l| l.body.clone()));
        }
        Ok(self
            .attrs(t)
            .and_then(|a| a.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.clone()))
    }

    /// Every attribute of the selected lists (only `key`, when given) in one table: the byte buffer,
    /// and an entry for each value, made by `E::from` (the interface's entry type, without a copy).
    pub(crate) fn read<E: From<Entry>>(
        &self,
        lists: Selection,
        key: Option<&str>,
    ) -> (Vec<u8>, Vec<E>) {
        let mut data = Vec::new();
        let mut entries = Vec::new();
        let mut push = |at: Target, k: &str, v: Option<&AnyValue>| {
            let key_start = data.len() as u32;
            data.extend_from_slice(k.as_bytes());
            let mut entry = Entry {
                at,
                key_start,
                key_len: k.len() as u32,
                kind: ValueKind::Str,
                start: data.len() as u32,
                len: 0,
                number: 0,
            };
            let mut bytes = |b: &[u8], kind| {
                entry.kind = kind;
                entry.start = data.len() as u32;
                entry.len = b.len() as u32;
                data.extend_from_slice(b);
            };
            match v.and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => bytes(s.as_bytes(), ValueKind::Str),
                Some(any_value::Value::BytesValue(b)) => bytes(b, ValueKind::Bytes),
                Some(any_value::Value::BoolValue(b)) => {
                    entry.kind = ValueKind::Boolean;
                    entry.number = u64::from(*b);
                }
                Some(any_value::Value::IntValue(i)) => {
                    entry.kind = ValueKind::Int;
                    entry.number = *i as u64;
                }
                Some(any_value::Value::DoubleValue(d)) => {
                    entry.kind = ValueKind::Double;
                    entry.number = d.to_bits();
                }
                Some(_) => {
                    let json = v.map(|v| serde_json::to_string(v).unwrap_or_default());
                    bytes(json.unwrap_or_default().as_bytes(), ValueKind::Json);
                }
                None => {}
            }
            entries.push(E::from(entry));
        };
        self.visit(lists, |at, attrs| {
            for kv in attrs {
                if key.is_none_or(|k| k == kv.key) {
                    push(at, &kv.key, kv.value.as_ref());
                }
            }
        });
        if key.is_none_or(str::is_empty) {
            self.visit_bodies(lists, |i, body, _| push(Target::Body(i), "", Some(body)));
        }
        (data, entries)
    }

    /// Sets a value at a checked target: a body, every point of a metric item, or one list.
    pub(super) fn set_at(&mut self, t: Target, key: &str, value: AnyValue) -> R<()> {
        match t {
            Target::Body(i) => {
                if let Some(l) = self.log_mut(i)? {
                    let old = l.body.replace(value);
                    self.journal.push(Undo::Body(i, old));
                    self.changed = true;
                    self.set_modified(i);
                }
            }
            Target::Item(i) if self.signal() == Signal::Metrics => {
                let n = self.metric(i)?.map_or(0, point_count);
                for p in 0..n {
                    self.set_attr(Target::Point(i, p as u32), key, value.clone());
                }
            }
            t => {
                self.ensure_list(t);
                self.set_attr(t, key, value);
            }
        }
        Ok(())
    }

    pub(super) fn remove_at(&mut self, t: Target, key: &str) -> R<bool> {
        Ok(match t {
            Target::Body(i) => {
                let Some(l) = self.log_mut(i)? else {
                    return Ok(false);
                };
                let Some(old) = l.body.take() else {
                    return Ok(false);
                };
                self.journal.push(Undo::Body(i, Some(old)));
                self.changed = true;
                self.set_modified(i);
                true
            }
            Target::Item(i) if self.signal() == Signal::Metrics => {
                let n = self.metric(i)?.map_or(0, point_count);
                let mut any = false;
                for p in 0..n {
                    any |= self.remove_attr(Target::Point(i, p as u32), key);
                }
                any
            }
            t => self.remove_attr(t, key),
        })
    }

    /// Applies edits in order; the first bad location stops them (bad output).
    pub(crate) fn edit(&mut self, edits: impl IntoIterator<Item = Edit>) -> R<()> {
        for e in edits {
            let t = self.target(e.at)?;
            match e.value {
                Some(v) => self.set_at(t, &e.key, v)?,
                None => {
                    self.remove_at(t, &e.key)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn drop_items(&mut self, items: &[u32]) -> R<()> {
        items.iter().try_for_each(|i| self.drop_item(*i))
    }

    pub(crate) fn trace_states(&self) -> StringList {
        let mut list = StringList {
            data: String::new(),
            ends: Vec::new(),
        };
        if let Payload::Traces(_) = &self.payload {
            list.ends.reserve(self.items.len());
            for i in 0..self.items.len() as u32 {
                if let Ok(Some(s)) = self.span(i) {
                    list.data.push_str(&s.trace_state);
                }
                list.ends.push(list.data.len() as u32);
            }
        }
        list
    }

    pub(crate) fn set_trace_states(&mut self, states: Vec<(u32, String)>) -> R<()> {
        states
            .into_iter()
            .try_for_each(|(i, s)| self.set_trace_state(i, s))
    }

    pub(crate) fn set_item_routes(&mut self, items: &[u32], exporters: Vec<String>) -> R<()> {
        for i in items {
            self.item(*i)?;
        }
        let id = self.route_id(exporters);
        for i in items {
            self.label(*i, id);
        }
        Ok(())
    }

    /// Every match of `set` in the selected lists, in batch order, each made by `M::from` (the
    /// interface's match type). Values that match nothing never leave the host; a key rule covers its
    /// whole value.
    pub(crate) fn scan<M: From<Match>>(&self, set: &PatternSet, lists: Selection) -> Vec<M> {
        let mut out = Vec::new();
        self.each_match(set, lists, &mut || false, |at, _, key, m| match m {
            ValueMatch::Key(rule, len) => out.push(pattern_match(at, key, rule, 0, len)),
            ValueMatch::Ranges(found) => out.extend(
                found
                    .iter()
                    .map(|f| pattern_match(at, key, f.rule, f.start, f.end)),
            ),
        });
        out
    }

    /// Calls `f` with each value of the selected lists that `set` matches, in batch order (attributes,
    /// then log bodies): where, the attribute's index in its list (0 for a body), its key (empty for a
    /// body), and what matched. Asks `out_of_time` every [`CHECK_EVERY`] values and stops when it says
    /// so; false then.
    pub(super) fn each_match(
        &self,
        set: &PatternSet,
        lists: Selection,
        out_of_time: &mut dyn FnMut() -> bool,
        mut f: impl FnMut(Target, usize, &str, ValueMatch<'_>),
    ) -> bool {
        let (key_rules, value_rules) = (set.has_key_rules(), set.has_value_rules());
        let mut found: Vec<Found> = Vec::new();
        let (mut seen, mut stopped) = (0usize, false);
        self.visit(lists, |at, attrs| {
            for (pos, kv) in attrs.iter().enumerate() {
                seen += 1;
                if stopped || (seen % CHECK_EVERY == 0 && out_of_time()) {
                    stopped = true;
                    return;
                }
                let text = kv.value.as_ref().and_then(value_text);
                if key_rules && let Some(rule) = set.key_rule(&kv.key) {
                    let len = text.as_ref().map_or(0, |t| t.len()) as u32;
                    f(at, pos, &kv.key, ValueMatch::Key(rule, len));
                } else if value_rules && let Some(text) = text {
                    found.clear();
                    if set.find_values(&text, &mut found) > 0 {
                        f(at, pos, &kv.key, ValueMatch::Ranges(&found));
                    }
                }
            }
        });
        if value_rules && !stopped {
            self.visit_bodies(lists, |i, _, body| {
                found.clear();
                if set.find_values(body, &mut found) > 0 {
                    f(Target::Body(i), 0, "", ValueMatch::Ranges(&found));
                }
            });
        }
        !stopped
    }
}

/// How often (in values) a long host call asks whether its CPU budget is spent.
pub(super) const CHECK_EVERY: usize = 64;

/// What one value matched, as [`BatchState::each_match`] hands it over.
pub(super) enum ValueMatch<'a> {
    /// A key rule: the whole value, whose text is this many bytes long.
    Key(Rule, u32),
    /// Value rules: these ranges of its text.
    Ranges(&'a [Found]),
}

fn pattern_match<M: From<Match>>(at: Target, key: &str, rule: Rule, start: u32, end: u32) -> M {
    M::from(Match {
        at,
        key: key.to_string(),
        rule,
        start,
        end,
    })
}
