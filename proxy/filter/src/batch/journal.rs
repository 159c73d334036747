//! The undo journal: every change a filter makes to a batch is recorded as how to undo it, so that a
//! failing filter's partial changes can be rolled back (`fail-open` means "the batch passes unchanged").
//! The changes that journal themselves (attributes set or removed, route labels) are here too.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

use super::{BatchState, NO_ROUTE, Target};

/// How to undo one change.
#[derive(Debug)]
pub(super) enum Undo {
    /// The attribute at `pos` was replaced; it was `old`.
    Replaced(Target, usize, Option<AnyValue>),
    /// An attribute was appended.
    Appended(Target),
    /// The attribute at `pos` was removed.
    Removed(Target, usize, KeyValue),
    Dropped(u32),
    SpanName(u32, String),
    TraceState(u32, String),
    Body(u32, Option<AnyValue>),
    Route(u32, u32),
}

impl BatchState {
    /// Starts a filter call: changes from here on can be undone.
    pub fn begin(&mut self) {
        self.journal.clear();
    }

    /// Undoes every change since [`BatchState::begin`].
    pub fn rollback(&mut self) {
        while let Some(u) = self.journal.pop() {
            self.undo(u);
        }
    }

    pub(super) fn set_attr(&mut self, t: Target, key: &str, value: AnyValue) {
        let Some(attrs) = self.attrs_mut(t) else {
            return;
        };
        match attrs.iter().position(|kv| kv.key == key) {
            Some(pos) => self.replace_at(t, pos, value),
            None => {
                attrs.push(KeyValue {
                    key: key.to_string(),
                    value: Some(value),
                    ..Default::default()
                });
                self.journal.push(Undo::Appended(t));
                self.changed = true;
                self.mark_modified(t);
            }
        }
    }

    /// Replaces the value of the attribute at `pos` of `t`'s list (nothing when there is none).
    pub(super) fn replace_at(&mut self, t: Target, pos: usize, value: AnyValue) {
        let Some(kv) = self.attrs_mut(t).and_then(|a| a.get_mut(pos)) else {
            return;
        };
        let old = kv.value.replace(value);
        self.journal.push(Undo::Replaced(t, pos, old));
        self.changed = true;
        self.mark_modified(t);
    }

    pub(super) fn remove_attr(&mut self, t: Target, key: &str) -> bool {
        let Some(pos) = self
            .attrs_mut(t)
            .and_then(|a| a.iter().position(|kv| kv.key == key))
        else {
            return false;
        };
        self.remove_attr_at(t, pos)
    }

    /// Removes the attribute at `pos` of `t`'s list; false when there is none.
    pub(super) fn remove_attr_at(&mut self, t: Target, pos: usize) -> bool {
        let Some(attrs) = self.attrs_mut(t).filter(|a| pos < a.len()) else {
            return false;
        };
        let kv = attrs.remove(pos);
        self.journal.push(Undo::Removed(t, pos, kv));
        self.changed = true;
        self.mark_modified(t);
        true
    }

    /// Marks an item changed; the per-item marks exist only once a filter changes something.
    pub(super) fn set_modified(&mut self, item: u32) {
        if self.modified.is_empty() {
            self.modified = vec![false; self.items.len()];
        }
        if let Some(m) = self.modified.get_mut(item as usize) {
            *m = true;
        }
    }

    pub(super) fn mark_modified(&mut self, t: Target) {
        match t {
            Target::Item(i)
            | Target::Point(i, _)
            | Target::Event(i, _)
            | Target::Link(i, _)
            | Target::Body(i) => {
                self.set_modified(i);
            }
            Target::Resource(_) | Target::Scope(_) => {}
        }
    }

    pub(super) fn label(&mut self, item: u32, id: u32) {
        if self.routes.is_empty() {
            // Per-item labels exist only once a filter routes.
            self.routes = vec![NO_ROUTE; self.items.len()];
        }
        let old = std::mem::replace(&mut self.routes[item as usize], id);
        if old != id {
            self.journal.push(Undo::Route(item, old));
        }
    }

    pub(super) fn undo(&mut self, u: Undo) {
        match u {
            Undo::Replaced(t, pos, old) => {
                if let Some(kv) = self.attrs_mut(t).and_then(|a| a.get_mut(pos)) {
                    kv.value = old;
                }
            }
            Undo::Appended(t) => {
                if let Some(a) = self.attrs_mut(t) {
                    a.pop();
                }
            }
            Undo::Removed(t, pos, kv) => {
                if let Some(a) = self.attrs_mut(t) {
                    a.insert(pos.min(a.len()), kv);
                }
            }
            Undo::Dropped(i) => {
                self.dropped[i as usize] = false;
                self.dropped_count -= 1;
            }
            Undo::SpanName(i, old) => {
                if let Ok(Some(s)) = self.span_mut(i) {
                    s.name = old;
                }
            }
            Undo::TraceState(i, old) => {
                if let Ok(Some(s)) = self.span_mut(i) {
                    s.trace_state = old;
                }
            }
            Undo::Body(i, old) => {
                if let Ok(Some(l)) = self.log_mut(i) {
                    l.body = old;
                }
            }
            Undo::Route(i, old) => self.routes[i as usize] = old,
        }
    }
}
