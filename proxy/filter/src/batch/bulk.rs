//! What `weir:filter@0.2.0` adds to the batch: scopes, any attribute list by [`Location`], bulk reads
//! into one [`AttributeTable`] (one byte buffer and one entry list, no allocation per value), bulk edits,
//! and the kernels that run over the batch natively: a pattern set's scan and the redaction of what it
//! found.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use weir_kernels::{Found, PatternSet, Rewrite, Rule};

use super::index::point_attrs;
use super::journal::Undo;
use super::{BadIndex, BatchState, R, Target, from_wit, point_count};
use crate::bindings::v0_2::weir::filter::kernels as k2;
use crate::bindings::v0_2::weir::filter::types as t2;
use weir_core::{Payload, Signal};

use t2::{AttributeEdit, AttributeEntry, AttributeTable, EditOp, Lists, Location, Part, ValueKind};

/// A value as text for pattern matching: strings as they are, arrays and maps as OTLP/JSON.
fn value_text(v: &AnyValue) -> Option<Cow<'_, str>> {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Some(Cow::Borrowed(s)),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            Some(Cow::Owned(serde_json::to_string(v).unwrap_or_default()))
        }
        _ => None,
    }
}

impl From<Target> for Location {
    fn from(t: Target) -> Self {
        match t {
            Target::Resource(r) => Location::Resource(r),
            Target::Scope(s) => Location::Scope(s),
            Target::Item(i) => Location::Item(i),
            Target::Point(item, index) => Location::Point(Part { item, index }),
            Target::Event(item, index) => Location::Event(Part { item, index }),
            Target::Link(item, index) => Location::Link(Part { item, index }),
            Target::Body(i) => Location::Body(i),
        }
    }
}

impl BatchState {
    /// The target a location names, checked: a location that does not exist is bad output.
    fn target(&self, at: &Location) -> R<Target> {
        let bad = |what, index| Err(BadIndex { what, index });
        let t = match *at {
            Location::Resource(r) => {
                self.check_resource(r)?;
                Target::Resource(r)
            }
            Location::Scope(s) => {
                if s as usize >= self.scopes.len() {
                    return bad("scope", s);
                }
                Target::Scope(s)
            }
            Location::Item(i) => {
                self.item(i)?;
                Target::Item(i)
            }
            Location::Point(Part { item, index }) => {
                if index >= self.point_count(item)? {
                    return bad("point", index);
                }
                Target::Point(item, index)
            }
            Location::Event(Part { item, index }) => self.sub_target(item, false, index)?,
            Location::Link(Part { item, index }) => self.sub_target(item, true, index)?,
            Location::Body(i) => {
                if self.log(i)?.is_none() {
                    return bad("log record", i);
                }
                Target::Body(i)
            }
        };
        Ok(t)
    }

    /// Calls `f` with every attribute list `lists` selects, in batch order.
    fn visit(&self, lists: Lists, mut f: impl FnMut(Target, &[KeyValue])) {
        if lists.contains(Lists::RESOURCES) {
            for r in 0..self.resource_count() as u32 {
                if let Some(a) = self.attrs(Target::Resource(r)) {
                    f(Target::Resource(r), a);
                }
            }
        }
        if lists.contains(Lists::SCOPES) {
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
                    if lists.contains(Lists::ITEMS) {
                        f(Target::Item(i), &span.attributes);
                    }
                    if lists.contains(Lists::EVENTS) {
                        for (e, ev) in span.events.iter().enumerate() {
                            f(Target::Event(i, e as u32), &ev.attributes);
                        }
                    }
                    if lists.contains(Lists::LINKS) {
                        for (l, link) in span.links.iter().enumerate() {
                            f(Target::Link(i, l as u32), &link.attributes);
                        }
                    }
                }
            }
            Payload::Logs(_) if lists.contains(Lists::ITEMS) => {
                for i in 0..n {
                    if let Ok(Some(l)) = self.log(i) {
                        f(Target::Item(i), &l.attributes);
                    }
                }
            }
            Payload::Metrics(_) if lists.contains(Lists::POINTS) => {
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
    fn visit_bodies(&self, lists: Lists, mut f: impl FnMut(u32, &AnyValue, &str)) {
        if !lists.contains(Lists::BODIES) || self.signal() != Signal::Logs {
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
    pub(crate) fn get(&self, at: &Location, key: &str) -> R<Option<AnyValue>> {
        let t = self.target(at)?;
        if let Target::Body(i) = t {
            return Ok(self.log(i)?.and_then(|l| l.body.clone()));
        }
        Ok(self
            .attrs(t)
            .and_then(|a| a.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.clone()))
    }

    /// Every attribute of the selected lists (only `key`, when given) in one table.
    pub(crate) fn read(&self, lists: Lists, key: Option<&str>) -> AttributeTable {
        let mut data = Vec::new();
        let mut entries = Vec::new();
        let mut push = |at: Target, k: &str, v: Option<&AnyValue>| {
            let key_start = data.len() as u32;
            data.extend_from_slice(k.as_bytes());
            let mut entry = AttributeEntry {
                at: at.into(),
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
            entries.push(entry);
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
        AttributeTable { data, entries }
    }

    /// Sets a value at a checked target: a body, every point of a metric item, or one list.
    fn set_at(&mut self, t: Target, key: &str, value: AnyValue) -> R<()> {
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

    fn remove_at(&mut self, t: Target, key: &str) -> R<bool> {
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
    pub(crate) fn edit(&mut self, edits: Vec<AttributeEdit>) -> R<()> {
        for e in edits {
            let t = self.target(&e.at)?;
            match e.op {
                EditOp::Set(v) => self.set_at(t, &e.key, from_wit(v.into()))?,
                EditOp::Remove => {
                    self.remove_at(t, &e.key)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn drop_items(&mut self, items: &[u32]) -> R<()> {
        items.iter().try_for_each(|i| self.drop_item(*i))
    }

    pub(crate) fn trace_states(&self) -> t2::StringList {
        let mut list = t2::StringList {
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

    /// Every match of `set` in the selected lists, in batch order. Values that match nothing never leave
    /// the host; a key rule covers its whole value.
    pub(crate) fn scan(&self, set: &PatternSet, lists: Lists) -> Vec<k2::PatternMatch> {
        let mut out = Vec::new();
        let mut found: Vec<Found> = Vec::new();
        let key_rules = set.has_key_rules();
        let value_rules = set.has_value_rules();
        self.visit(lists, |at, attrs| {
            for kv in attrs {
                let text = kv.value.as_ref().and_then(value_text);
                if key_rules && let Some(rule) = set.key_rule(&kv.key) {
                    let len = text.as_ref().map_or(0, |t| t.len()) as u32;
                    out.push(pattern_match(at, &kv.key, rule, 0, len));
                    continue;
                }
                if value_rules && let Some(text) = text {
                    found.clear();
                    set.find_values(&text, &mut found);
                    for f in &found {
                        out.push(pattern_match(at, &kv.key, f.rule, f.start, f.end));
                    }
                }
            }
        });
        if value_rules {
            self.visit_bodies(lists, |i, _, body| {
                found.clear();
                set.find_values(body, &mut found);
                for f in &found {
                    out.push(pattern_match(Target::Body(i), "", f.rule, f.start, f.end));
                }
            });
        }
        out
    }

    /// Rewrites what `matches` found; returns how many values changed.
    ///
    /// Linear in the matches: they are grouped by value through a map (a search of the groups per
    /// match made one call quadratic, and a host call cannot be interrupted by the deadline), and
    /// `out_of_time` is asked every few values so that the CPU budget bounds the call as it bounds
    /// the guest's own code.
    pub(crate) fn redact(
        &mut self,
        matches: &[k2::PatternMatch],
        how: &k2::Rewrite,
        out_of_time: &mut dyn FnMut() -> bool,
    ) -> R<Option<u32>> {
        let mut groups: Vec<Group<'_>> = Vec::new();
        let mut index: std::collections::HashMap<(Target, &str), usize> =
            std::collections::HashMap::new();
        for m in matches {
            let t = self.target(&m.at)?;
            let whole = from_rule(m.rule).is_key_rule();
            match index.entry((t, m.key.as_str())) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let g = &mut groups[*e.get()];
                    g.2 |= whole;
                    g.3.push((m.start, m.end));
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(groups.len());
                    groups.push((t, &m.key, whole, vec![(m.start, m.end)]));
                }
            }
        }
        let mask = |m: &str| Rewrite::Mask(m.to_string());
        let mut changed = 0;
        for (n, (t, key, whole, mut ranges)) in groups.into_iter().enumerate() {
            if n % 64 == 63 && out_of_time() {
                return Ok(None);
            }
            let current = match t {
                Target::Body(i) => self.log(i)?.and_then(|l| l.body.clone()),
                t => self
                    .attrs(t)
                    .and_then(|a| a.iter().find(|kv| kv.key == key))
                    .and_then(|kv| kv.value.clone()),
            };
            let Some(current) = current else {
                continue;
            };
            let text = value_text(&current).map(Cow::into_owned);
            let is_json = !matches!(current.value, Some(any_value::Value::StringValue(_)) | None)
                && text.is_some();
            let rewrite = match how {
                k2::Rewrite::Remove if !matches!(t, Target::Body(_)) => {
                    if self.remove_at(t, key)? {
                        changed += 1;
                    }
                    continue;
                }
                k2::Rewrite::Remove => mask("****"),
                k2::Rewrite::Mask(m) => mask(m),
                k2::Rewrite::Hash(salt) => Rewrite::Hash(salt.clone()),
            };
            let original = text.unwrap_or_default();
            let new = if whole {
                match &rewrite {
                    Rewrite::Mask(m) => m.clone(),
                    Rewrite::Hash(salt) => weir_kernels::salted_hash(salt, &original),
                }
            } else {
                weir_kernels::rewrite(&original, &mut ranges, &rewrite)
            };
            if !whole && new == original {
                continue;
            }
            let value = if is_json && !whole {
                from_wit(super::Value::Json(new))
            } else {
                AnyValue {
                    value: Some(any_value::Value::StringValue(new)),
                }
            };
            self.set_at(t, key, value)?;
            changed += 1;
        }
        Ok(Some(changed))
    }
}

/// The matches in one value: where, its key, whether a key rule covers it whole, and the ranges.
type Group<'a> = (Target, &'a str, bool, Vec<(u32, u32)>);

fn pattern_match(at: Target, key: &str, rule: Rule, start: u32, end: u32) -> k2::PatternMatch {
    k2::PatternMatch {
        at: at.into(),
        key: key.to_string(),
        rule: to_rule(rule),
        start,
        end,
    }
}

/// Kernel detector to WIT detector.
pub(crate) fn to_detector(d: weir_kernels::Detector) -> k2::Detector {
    use weir_kernels::Detector as D;
    match d {
        D::Email => k2::Detector::Email,
        D::CreditCard => k2::Detector::CreditCard,
        D::Ipv4 => k2::Detector::Ipv4,
        D::Ipv6 => k2::Detector::Ipv6,
        D::Bearer => k2::Detector::Bearer,
        D::Jwt => k2::Detector::Jwt,
        D::UrlSecret => k2::Detector::UrlSecret,
    }
}

/// WIT detector to kernel detector.
pub(crate) fn from_detector(d: k2::Detector) -> weir_kernels::Detector {
    use weir_kernels::Detector as D;
    match d {
        k2::Detector::Email => D::Email,
        k2::Detector::CreditCard => D::CreditCard,
        k2::Detector::Ipv4 => D::Ipv4,
        k2::Detector::Ipv6 => D::Ipv6,
        k2::Detector::Bearer => D::Bearer,
        k2::Detector::Jwt => D::Jwt,
        k2::Detector::UrlSecret => D::UrlSecret,
    }
}

pub(crate) fn to_rule(r: Rule) -> k2::Rule {
    match r {
        Rule::Detector(d) => k2::Rule::Detector(to_detector(d)),
        Rule::ValuePattern(i) => k2::Rule::ValuePattern(i),
        Rule::KeyName(i) => k2::Rule::KeyName(i),
        Rule::KeyPattern(i) => k2::Rule::KeyPattern(i),
        Rule::NotAllowed => k2::Rule::NotAllowed,
    }
}

fn from_rule(r: k2::Rule) -> Rule {
    match r {
        k2::Rule::Detector(d) => Rule::Detector(from_detector(d)),
        k2::Rule::ValuePattern(i) => Rule::ValuePattern(i),
        k2::Rule::KeyName(i) => Rule::KeyName(i),
        k2::Rule::KeyPattern(i) => Rule::KeyPattern(i),
        k2::Rule::NotAllowed => Rule::NotAllowed,
    }
}
