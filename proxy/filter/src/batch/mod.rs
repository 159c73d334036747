//! The host side of the WIT `batch` resource: a decoded request lent to filters, read and changed in
//! place. This file holds [`BatchState`] and its surface; its parts each have a file:
//!
//! - `index`: how items and scopes are numbered and found in the payload;
//! - `journal`: the undo journal, so that a failing filter's partial changes can be rolled back
//!   (`fail-open` means "the batch passes unchanged");
//! - `convert`: the conversions between these plain types and each interface version's generated ones
//!   (macros, instantiated beside each `bindgen!` site: the batch knows no WIT type);
//! - `bulk`: what interface 0.2 adds (any attribute list by location, bulk reads and edits, the kernels);
//! - `redact`: rewriting what a pattern set matched (0.2's `redact`, 0.3.1's `scan-and-redact`).

use std::net::SocketAddr;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};

use index::ItemRef;
use journal::Undo;
pub use weir_core::Routing;
use weir_core::{Payload, Signal};

/// One attribute list (or a log body) that a read or a change addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Target {
    Resource(u32),
    /// A scope, by its index within the batch.
    Scope(u32),
    Item(u32),
    Point(u32, u32),
    Event(u32, u32),
    Link(u32, u32),
    /// A log record's body: not an attribute list, only a place matches and edits point at.
    Body(u32),
}

/// A trace id as two big-endian halves; zero when the item has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceId {
    pub(crate) high: u64,
    pub(crate) low: u64,
}

/// A span's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusCode {
    Unset,
    Ok,
    Error,
}

/// What kind of data a metric holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricKind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
    /// No data.
    Empty,
}

/// No route label: the item goes to the pipeline's exporters.
const NO_ROUTE: u32 = u32::MAX;

/// A batch lent to filters.
#[derive(Debug)]
pub struct BatchState {
    payload: Payload,
    items: Vec<ItemRef>,
    dropped: Vec<bool>,
    dropped_count: usize,
    modified: Vec<bool>,
    headers: std::sync::Arc<http::HeaderMap>,
    peer: Option<SocketAddr>,
    tenant: Option<std::sync::Arc<str>>,
    /// The request's memory budget, which what filters hand the host is charged to.
    memory: Option<std::sync::Arc<dyn weir_core::MemoryBudget>>,
    /// Per item, an index into `route_sets` or [`NO_ROUTE`].
    routes: Vec<u32>,
    route_sets: Vec<Vec<String>>,
    /// Per resource, the index of its first item (items are numbered resource by resource), plus the end.
    resource_start: Vec<u32>,
    /// Per scope of the batch: its resource and its index within the resource.
    scopes: Vec<(u32, u32)>,
    journal: Vec<Undo>,
    /// Whether any filter changed the payload (not only labelled it): if none did, the bytes it was
    /// decoded from are still what goes out.
    changed: bool,
}

/// A filter addressed something that does not exist: the "bad output" error class.
#[derive(Debug, thiserror::Error)]
#[error("filter passed an invalid {what} index {index}")]
pub struct BadIndex {
    what: &'static str,
    index: u32,
}

pub(crate) type R<T> = Result<T, BadIndex>;

impl BatchState {
    /// The signal.
    pub fn signal(&self) -> Signal {
        self.payload.signal()
    }

    /// Items dropped so far.
    pub fn dropped_count(&self) -> usize {
        self.dropped_count
    }

    /// Items modified so far (attributes, names, bodies).
    pub fn modified_count(&self) -> usize {
        self.modified.iter().filter(|m| **m).count()
    }

    /// Number of resources.
    pub fn resource_count(&self) -> usize {
        self.resource_start.len() - 1
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True without items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The route labels of an item, if a filter set any.
    pub fn route(&self, item: u32) -> Option<&[String]> {
        let id = *self.routes.get(item as usize)?;
        self.route_sets.get(id as usize).map(Vec::as_slice)
    }

    /// Gives the payload back without the dropped items (and without emptied scopes and resources),
    /// with the route labels of the items that are left, if any filter set some, and whether any filter
    /// changed the payload (a change a failing filter made and that was undone still counts).
    pub fn finish(self) -> (Payload, Option<Routing>, bool) {
        let n = self.items.len();
        let routing = (!self.route_sets.is_empty()).then(|| Routing {
            items: (0..n)
                .filter(|i| !self.dropped.get(*i).copied().unwrap_or(false))
                .map(|i| {
                    let r = self.routes.get(i).copied().unwrap_or(NO_ROUTE);
                    (r != NO_ROUTE).then_some(r)
                })
                .collect(),
            sets: self.route_sets,
        });
        let mut payload = self.payload;
        if self.dropped_count > 0 {
            let dropped = self.dropped;
            payload.retain_items(|i| !dropped.get(i).copied().unwrap_or(false));
        }
        (payload, routing, self.changed)
    }
}

pub(super) fn point_count(m: &Metric) -> usize {
    weir_wire::data_points(m.data.as_ref())
}

pub(super) fn first_point_attrs(m: &Metric) -> &[KeyValue] {
    match m.data.as_ref() {
        Some(Data::Gauge(g)) => g.data_points.first().map(|p| &p.attributes[..]),
        Some(Data::Sum(s)) => s.data_points.first().map(|p| &p.attributes[..]),
        Some(Data::Histogram(h)) => h.data_points.first().map(|p| &p.attributes[..]),
        Some(Data::ExponentialHistogram(h)) => h.data_points.first().map(|p| &p.attributes[..]),
        Some(Data::Summary(s)) => s.data_points.first().map(|p| &p.attributes[..]),
        None => None,
    }
    .unwrap_or(&[])
}

/// The attribute named `key`.
fn find<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn trace_id(bytes: &[u8]) -> TraceId {
    if bytes.len() != 16 {
        return TraceId { high: 0, low: 0 };
    }
    let mut h = [0u8; 8];
    let mut l = [0u8; 8];
    h.copy_from_slice(&bytes[..8]);
    l.copy_from_slice(&bytes[8..]);
    TraceId {
        high: u64::from_be_bytes(h),
        low: u64::from_be_bytes(l),
    }
}

fn span_id(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_be_bytes)
}

/// The accessors behind the WIT `batch` resource, on plain Rust and OTLP types so that they are testable
/// without a Wasm guest; the host's implementation of each interface version converts (`convert`).
impl BatchState {
    pub(super) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub(super) fn peer(&self) -> Option<String> {
        self.peer.map(|p| p.to_string())
    }

    /// The request's tenant, as the receiver's `auth` decided it.
    pub fn with_tenant(mut self, tenant: Option<std::sync::Arc<str>>) -> Self {
        self.tenant = tenant;
        self
    }

    /// The request's memory budget (with a memory limit).
    pub fn with_memory(
        mut self,
        memory: Option<std::sync::Arc<dyn weir_core::MemoryBudget>>,
    ) -> Self {
        self.memory = memory;
        self
    }

    pub(crate) fn memory(&self) -> Option<&std::sync::Arc<dyn weir_core::MemoryBudget>> {
        self.memory.as_ref()
    }

    pub(super) fn tenant(&self) -> Option<String> {
        self.tenant.as_deref().map(str::to_string)
    }

    pub(super) fn resource_attributes(&mut self, res: u32) -> R<&[KeyValue]> {
        self.check_resource(res)?;
        Ok(self
            .attrs_mut(Target::Resource(res))
            .map(|a| &a[..])
            .unwrap_or_default())
    }

    pub(super) fn resource_attribute(&mut self, res: u32, key: &str) -> R<Option<&AnyValue>> {
        self.check_resource(res)?;
        Ok(self
            .attrs_mut(Target::Resource(res))
            .and_then(|a| find(a, key)))
    }

    pub(super) fn set_resource_attribute(&mut self, res: u32, key: &str, value: AnyValue) -> R<()> {
        self.check_resource(res)?;
        self.ensure_resource(res);
        self.set_attr(Target::Resource(res), key, value);
        Ok(())
    }

    pub(super) fn remove_resource_attribute(&mut self, res: u32, key: &str) -> R<bool> {
        self.check_resource(res)?;
        Ok(self.remove_attr(Target::Resource(res), key))
    }

    pub(super) fn set_route(&mut self, res: u32, exporters: Vec<String>) -> R<()> {
        self.check_resource(res)?;
        let id = self.route_id(exporters);
        let (start, end) = (
            self.resource_start[res as usize],
            self.resource_start[res as usize + 1],
        );
        for item in start..end {
            self.label(item, id);
        }
        Ok(())
    }

    pub(super) fn set_item_route(&mut self, item: u32, exporters: Vec<String>) -> R<()> {
        self.item(item)?;
        let id = self.route_id(exporters);
        self.label(item, id);
        Ok(())
    }

    /// Interns a label set (sorted, without duplicates): batches have few distinct ones.
    fn route_id(&mut self, mut exporters: Vec<String>) -> u32 {
        exporters.sort_unstable();
        exporters.dedup();
        match self.route_sets.iter().position(|s| *s == exporters) {
            Some(i) => i as u32,
            None => {
                self.route_sets.push(exporters);
                (self.route_sets.len() - 1) as u32
            }
        }
    }

    pub(super) fn attributes(&self, item: u32) -> R<&[KeyValue]> {
        Ok(match self.signal() {
            Signal::Traces => self.span(item)?.map(|s| &s.attributes[..]),
            Signal::Logs => self.log(item)?.map(|l| &l.attributes[..]),
            Signal::Metrics => self.metric(item)?.map(first_point_attrs),
            Signal::Profiles => {
                self.item(item)?;
                None
            }
        }
        .unwrap_or_default())
    }

    pub(super) fn attribute(&self, item: u32, key: &str) -> R<Option<&AnyValue>> {
        Ok(match self.signal() {
            Signal::Traces => self.span(item)?.and_then(|s| find(&s.attributes, key)),
            Signal::Logs => self.log(item)?.and_then(|l| find(&l.attributes, key)),
            Signal::Metrics => self
                .metric(item)?
                .and_then(|m| find(first_point_attrs(m), key)),
            Signal::Profiles => {
                self.item(item)?;
                None
            }
        })
    }

    pub(super) fn set_attribute(&mut self, item: u32, key: &str, value: AnyValue) -> R<()> {
        self.item(item)?;
        if self.signal() == Signal::Metrics {
            let n = self.metric(item)?.map_or(0, point_count);
            for p in 0..n {
                self.set_attr(Target::Point(item, p as u32), key, value.clone());
            }
        } else {
            self.set_attr(Target::Item(item), key, value);
        }
        Ok(())
    }

    pub(super) fn remove_attribute(&mut self, item: u32, key: &str) -> R<bool> {
        self.item(item)?;
        if self.signal() == Signal::Metrics {
            let n = self.metric(item)?.map_or(0, point_count);
            let mut any = false;
            for p in 0..n {
                any |= self.remove_attr(Target::Point(item, p as u32), key);
            }
            Ok(any)
        } else {
            Ok(self.remove_attr(Target::Item(item), key))
        }
    }

    pub(super) fn drop_item(&mut self, item: u32) -> R<()> {
        self.item(item)?;
        if self.dropped.is_empty() {
            // Per-item drop marks exist only once a filter drops.
            self.dropped = vec![false; self.items.len()];
        }
        if !self.dropped[item as usize] {
            self.dropped[item as usize] = true;
            self.dropped_count += 1;
            self.changed = true;
            self.journal.push(Undo::Dropped(item));
        }
        Ok(())
    }

    pub(super) fn is_dropped(&self, item: u32) -> R<bool> {
        self.item(item)?;
        Ok(self.dropped.get(item as usize).copied().unwrap_or(false))
    }

    pub(super) fn trace_id(&self, item: u32) -> R<TraceId> {
        Ok(match self.signal() {
            Signal::Traces => self.span(item)?.map(|s| trace_id(&s.trace_id)),
            Signal::Logs => self.log(item)?.map(|l| trace_id(&l.trace_id)),
            Signal::Metrics | Signal::Profiles => {
                self.item(item)?;
                None
            }
        }
        .unwrap_or(TraceId { high: 0, low: 0 }))
    }

    pub(super) fn trace_ids(&self) -> Vec<TraceId> {
        (0..self.items.len() as u32)
            .map(|i| self.trace_id(i).unwrap_or(TraceId { high: 0, low: 0 }))
            .collect()
    }

    pub(super) fn span_id(&self, item: u32) -> R<u64> {
        Ok(match self.signal() {
            Signal::Traces => self.span(item)?.map(|s| span_id(&s.span_id)),
            Signal::Logs => self.log(item)?.map(|l| span_id(&l.span_id)),
            Signal::Metrics | Signal::Profiles => {
                self.item(item)?;
                None
            }
        }
        .unwrap_or(0))
    }

    pub(super) fn parent_span_id(&self, item: u32) -> R<u64> {
        Ok(self.span(item)?.map_or(0, |s| span_id(&s.parent_span_id)))
    }

    pub(super) fn span_name(&self, item: u32) -> R<String> {
        Ok(self.span(item)?.map(|s| s.name.clone()).unwrap_or_default())
    }

    pub(super) fn set_span_name(&mut self, item: u32, name: String) -> R<()> {
        if let Some(s) = self.span_mut(item)? {
            let old = std::mem::replace(&mut s.name, name);
            self.journal.push(Undo::SpanName(item, old));
            self.changed = true;
            self.set_modified(item);
        }
        Ok(())
    }

    pub(super) fn span_kind(&self, item: u32) -> R<u8> {
        Ok(self
            .span(item)?
            .map_or(0, |s| u8::try_from(s.kind).unwrap_or(0)))
    }

    pub(super) fn span_status(&self, item: u32) -> R<(StatusCode, String)> {
        let status = self.span(item)?.and_then(|s| s.status.as_ref());
        Ok(match status {
            Some(st) => (
                match st.code {
                    1 => StatusCode::Ok,
                    2 => StatusCode::Error,
                    _ => StatusCode::Unset,
                },
                st.message.clone(),
            ),
            None => (StatusCode::Unset, String::new()),
        })
    }

    pub(super) fn span_times(&self, item: u32) -> R<(u64, u64)> {
        Ok(self
            .span(item)?
            .map_or((0, 0), |s| (s.start_time_unix_nano, s.end_time_unix_nano)))
    }

    pub(super) fn trace_state(&self, item: u32) -> R<String> {
        Ok(self
            .span(item)?
            .map(|s| s.trace_state.clone())
            .unwrap_or_default())
    }

    pub(super) fn set_trace_state(&mut self, item: u32, value: String) -> R<()> {
        if let Some(s) = self.span_mut(item)? {
            let old = std::mem::replace(&mut s.trace_state, value);
            self.journal.push(Undo::TraceState(item, old));
            self.changed = true;
            self.set_modified(item);
        }
        Ok(())
    }

    pub(super) fn event_count(&self, item: u32) -> R<u32> {
        Ok(self.span(item)?.map_or(0, |s| s.events.len() as u32))
    }

    pub(super) fn event_name(&self, item: u32, event: u32) -> R<String> {
        Ok(self
            .span(item)?
            .and_then(|s| s.events.get(event as usize))
            .map(|e| e.name.clone())
            .unwrap_or_default())
    }

    pub(super) fn event_attributes(&self, item: u32, event: u32) -> R<&[KeyValue]> {
        Ok(self
            .span(item)?
            .and_then(|s| s.events.get(event as usize))
            .map(|e| &e.attributes[..])
            .unwrap_or_default())
    }

    pub(super) fn link_count(&self, item: u32) -> R<u32> {
        Ok(self.span(item)?.map_or(0, |s| s.links.len() as u32))
    }

    pub(super) fn link_attributes(&self, item: u32, link: u32) -> R<&[KeyValue]> {
        Ok(self
            .span(item)?
            .and_then(|s| s.links.get(link as usize))
            .map(|l| &l.attributes[..])
            .unwrap_or_default())
    }

    /// Sets an event (`link == false`) or link attribute; an index past the end is bad output.
    pub(super) fn set_sub_attribute(
        &mut self,
        item: u32,
        link: bool,
        index: u32,
        key: &str,
        value: AnyValue,
    ) -> R<()> {
        let t = self.sub_target(item, link, index)?;
        self.set_attr(t, key, value);
        Ok(())
    }

    /// Removes an event (`link == false`) or link attribute; true when it existed.
    pub(super) fn remove_sub_attribute(
        &mut self,
        item: u32,
        link: bool,
        index: u32,
        key: &str,
    ) -> R<bool> {
        let t = self.sub_target(item, link, index)?;
        Ok(self.remove_attr(t, key))
    }

    pub(super) fn severity(&self, item: u32) -> R<(u8, String)> {
        Ok(self.log(item)?.map_or((0, String::new()), |l| {
            (
                u8::try_from(l.severity_number).unwrap_or(0),
                l.severity_text.clone(),
            )
        }))
    }

    pub(super) fn body(&self, item: u32) -> R<Option<&AnyValue>> {
        Ok(self.log(item)?.and_then(|l| l.body.as_ref()))
    }

    pub(super) fn set_body(&mut self, item: u32, value: AnyValue) -> R<()> {
        if let Some(l) = self.log_mut(item)? {
            let old = l.body.replace(value);
            self.journal.push(Undo::Body(item, old));
            self.changed = true;
            self.set_modified(item);
        }
        Ok(())
    }

    pub(super) fn log_time(&self, item: u32) -> R<u64> {
        Ok(self.log(item)?.map_or(0, |l| {
            if l.time_unix_nano != 0 {
                l.time_unix_nano
            } else {
                l.observed_time_unix_nano
            }
        }))
    }

    pub(super) fn metric_name(&self, item: u32) -> R<String> {
        Ok(self
            .metric(item)?
            .map(|m| m.name.clone())
            .unwrap_or_default())
    }

    pub(super) fn metric_kind(&self, item: u32) -> R<MetricKind> {
        Ok(match self.metric(item)?.and_then(|m| m.data.as_ref()) {
            Some(Data::Gauge(_)) => MetricKind::Gauge,
            Some(Data::Sum(_)) => MetricKind::Sum,
            Some(Data::Histogram(_)) => MetricKind::Histogram,
            Some(Data::ExponentialHistogram(_)) => MetricKind::ExponentialHistogram,
            Some(Data::Summary(_)) => MetricKind::Summary,
            None => MetricKind::Empty,
        })
    }

    pub(super) fn point_count(&self, item: u32) -> R<u32> {
        Ok(self.metric(item)?.map_or(0, |m| point_count(m) as u32))
    }

    /// Profiles: the number of samples (0 for other signals).
    pub(crate) fn profile_sample_count(&self, item: u32) -> R<u32> {
        Ok(self.profile(item)?.map_or(0, |(p, _)| {
            u32::try_from(p.samples.len()).unwrap_or(u32::MAX)
        }))
    }

    /// Profiles: the sample type and unit, resolved from the dictionary's string table (empty when
    /// not set, or for other signals).
    pub(crate) fn profile_sample_type(&self, item: u32) -> R<(String, String)> {
        Ok(self
            .profile(item)?
            .and_then(|(p, d)| {
                let t = p.sample_type?;
                let s = |i: i32| {
                    d.and_then(|d| d.string_table.get(usize::try_from(i).ok()?))
                        .cloned()
                        .unwrap_or_default()
                };
                Some((s(t.type_strindex), s(t.unit_strindex)))
            })
            .unwrap_or_default())
    }

    pub(super) fn point_value(&self, item: u32, point: u32) -> R<Option<f64>> {
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
        let m = self.metric(item)?;
        let p = match m.and_then(|m| m.data.as_ref()) {
            Some(Data::Gauge(g)) => g.data_points.get(point as usize),
            Some(Data::Sum(s)) => s.data_points.get(point as usize),
            _ => None,
        };
        Ok(p.and_then(|p| p.value).map(|v| match v {
            N::AsDouble(d) => d,
            N::AsInt(i) => i as f64,
        }))
    }
}

pub(crate) mod bulk;
pub(crate) mod convert;
mod index;
mod journal;
pub(crate) mod redact;
#[cfg(test)]
mod tests;
