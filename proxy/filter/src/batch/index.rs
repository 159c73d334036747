//! The item index of a batch: how [`BatchState::new`] numbers items and scopes across resources, and how an
//! item, a scope or an attribute list ([`Target`]) is found in the payload from its number.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use opentelemetry_proto::tonic::profiles::v1development::{Profile, ProfilesDictionary};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::net::SocketAddr;

use super::{BadIndex, BatchState, R, Target, first_point_attrs};
use weir_core::{Payload, Signal};

/// Where an item lives in the payload.
#[derive(Debug, Clone, Copy)]
pub(super) struct ItemRef {
    pub(super) resource: u32,
    /// Its scope's index within the resource.
    pub(super) scope: u32,
    pub(super) index: u32,
    /// Its scope's index within the batch (scopes are numbered across resources).
    pub(super) global_scope: u32,
}

impl BatchState {
    /// Indexes `payload` for filters.
    pub fn new(
        payload: Payload,
        headers: impl Into<std::sync::Arc<http::HeaderMap>>,
        peer: Option<SocketAddr>,
    ) -> Self {
        let headers = headers.into();
        let mut items = Vec::new();
        let mut scopes = Vec::new();
        let mut push = |resource: usize, scope: usize, n: usize| {
            let global_scope = scopes.len() as u32;
            scopes.push((resource as u32, scope as u32));
            for index in 0..n {
                items.push(ItemRef {
                    resource: resource as u32,
                    scope: scope as u32,
                    index: index as u32,
                    global_scope,
                });
            }
        };
        match &payload {
            Payload::Traces(r) => {
                for (ri, rs) in r.resource_spans.iter().enumerate() {
                    for (si, ss) in rs.scope_spans.iter().enumerate() {
                        push(ri, si, ss.spans.len());
                    }
                }
            }
            Payload::Metrics(r) => {
                for (ri, rm) in r.resource_metrics.iter().enumerate() {
                    for (si, sm) in rm.scope_metrics.iter().enumerate() {
                        push(ri, si, sm.metrics.len());
                    }
                }
            }
            Payload::Logs(r) => {
                for (ri, rl) in r.resource_logs.iter().enumerate() {
                    for (si, sl) in rl.scope_logs.iter().enumerate() {
                        push(ri, si, sl.log_records.len());
                    }
                }
            }
            Payload::Profiles(r) => {
                for (ri, rp) in r.resource_profiles.iter().enumerate() {
                    for (si, sp) in rp.scope_profiles.iter().enumerate() {
                        push(ri, si, sp.profiles.len());
                    }
                }
            }
        }
        let n = items.len();
        let resources = payload.resource_count();
        let mut resource_start = Vec::with_capacity(resources + 1);
        for (i, it) in items.iter().enumerate() {
            while resource_start.len() <= it.resource as usize {
                resource_start.push(i as u32);
            }
        }
        while resource_start.len() <= resources {
            resource_start.push(n as u32);
        }
        Self {
            payload,
            items,
            dropped: Vec::new(),
            dropped_count: 0,
            modified: Vec::new(),
            headers,
            peer,
            tenant: None,
            memory: None,
            routes: Vec::new(),
            route_sets: Vec::new(),
            resource_start,
            scopes,
            journal: Vec::new(),
            changed: false,
        }
    }

    pub(super) fn item(&self, item: u32) -> R<ItemRef> {
        self.items.get(item as usize).copied().ok_or(BadIndex {
            what: "item",
            index: item,
        })
    }

    pub(super) fn check_resource(&self, res: u32) -> R<()> {
        if (res as usize) < self.payload.resource_count() {
            Ok(())
        } else {
            Err(BadIndex {
                what: "resource",
                index: res,
            })
        }
    }

    pub(super) fn span(&self, item: u32) -> R<Option<&Span>> {
        let r = self.item(item)?;
        Ok(match &self.payload {
            Payload::Traces(t) => Some(
                &t.resource_spans[r.resource as usize].scope_spans[r.scope as usize].spans
                    [r.index as usize],
            ),
            _ => None,
        })
    }

    pub(super) fn span_mut(&mut self, item: u32) -> R<Option<&mut Span>> {
        let r = self.item(item)?;
        Ok(match &mut self.payload {
            Payload::Traces(t) => Some(
                &mut t.resource_spans[r.resource as usize].scope_spans[r.scope as usize].spans
                    [r.index as usize],
            ),
            _ => None,
        })
    }

    pub(super) fn log(&self, item: u32) -> R<Option<&LogRecord>> {
        let r = self.item(item)?;
        Ok(match &self.payload {
            Payload::Logs(l) => Some(
                &l.resource_logs[r.resource as usize].scope_logs[r.scope as usize].log_records
                    [r.index as usize],
            ),
            _ => None,
        })
    }

    pub(super) fn log_mut(&mut self, item: u32) -> R<Option<&mut LogRecord>> {
        let r = self.item(item)?;
        Ok(match &mut self.payload {
            Payload::Logs(l) => Some(
                &mut l.resource_logs[r.resource as usize].scope_logs[r.scope as usize].log_records
                    [r.index as usize],
            ),
            _ => None,
        })
    }

    /// The profile `item` is, in a profiles batch, and the request's dictionary.
    pub(super) fn profile(&self, item: u32) -> R<Option<(&Profile, Option<&ProfilesDictionary>)>> {
        let r = self.item(item)?;
        Ok(match &self.payload {
            Payload::Profiles(p) => Some((
                &p.resource_profiles[r.resource as usize].scope_profiles[r.scope as usize].profiles
                    [r.index as usize],
                p.dictionary.as_ref(),
            )),
            _ => None,
        })
    }

    pub(super) fn metric(&self, item: u32) -> R<Option<&Metric>> {
        let r = self.item(item)?;
        Ok(match &self.payload {
            Payload::Metrics(m) => Some(
                &m.resource_metrics[r.resource as usize].scope_metrics[r.scope as usize].metrics
                    [r.index as usize],
            ),
            _ => None,
        })
    }

    pub(super) fn metric_mut(&mut self, item: u32) -> R<Option<&mut Metric>> {
        let r = self.item(item)?;
        Ok(match &mut self.payload {
            Payload::Metrics(m) => Some(
                &mut m.resource_metrics[r.resource as usize].scope_metrics[r.scope as usize]
                    .metrics[r.index as usize],
            ),
            _ => None,
        })
    }

    /// The attribute list of a target.
    pub(super) fn attrs_mut(&mut self, t: Target) -> Option<&mut Vec<KeyValue>> {
        match t {
            Target::Scope(s) => {
                let (ri, si) = *self.scopes.get(s as usize)?;
                let (ri, si) = (ri as usize, si as usize);
                let scope = match &mut self.payload {
                    Payload::Traces(r) => r.resource_spans[ri].scope_spans[si].scope.as_mut(),
                    Payload::Metrics(r) => r.resource_metrics[ri].scope_metrics[si].scope.as_mut(),
                    Payload::Logs(r) => r.resource_logs[ri].scope_logs[si].scope.as_mut(),
                    Payload::Profiles(r) => {
                        r.resource_profiles[ri].scope_profiles[si].scope.as_mut()
                    }
                };
                scope.map(|s| &mut s.attributes)
            }
            Target::Body(_) => None,
            Target::Resource(res) => {
                let res = res as usize;
                let resource = match &mut self.payload {
                    Payload::Traces(r) => r.resource_spans.get_mut(res)?.resource.as_mut(),
                    Payload::Metrics(r) => r.resource_metrics.get_mut(res)?.resource.as_mut(),
                    Payload::Logs(r) => r.resource_logs.get_mut(res)?.resource.as_mut(),
                    Payload::Profiles(r) => r.resource_profiles.get_mut(res)?.resource.as_mut(),
                };
                resource.map(|r| &mut r.attributes)
            }
            Target::Item(item) => match self.signal() {
                Signal::Traces => self.span_mut(item).ok()?.map(|s| &mut s.attributes),
                Signal::Logs => self.log_mut(item).ok()?.map(|l| &mut l.attributes),
                // A profile's attributes are indices into the request's dictionary.
                Signal::Metrics | Signal::Profiles => None,
            },
            Target::Point(item, point) => {
                let m = self.metric_mut(item).ok()??;
                point_attrs_mut(m, point as usize)
            }
            Target::Event(item, event) => self
                .span_mut(item)
                .ok()??
                .events
                .get_mut(event as usize)
                .map(|e| &mut e.attributes),
            Target::Link(item, link) => self
                .span_mut(item)
                .ok()??
                .links
                .get_mut(link as usize)
                .map(|l| &mut l.attributes),
        }
    }

    pub(super) fn ensure_resource(&mut self, res: u32) {
        let res = res as usize;
        let slot = match &mut self.payload {
            Payload::Traces(r) => &mut r.resource_spans[res].resource,
            Payload::Metrics(r) => &mut r.resource_metrics[res].resource,
            Payload::Logs(r) => &mut r.resource_logs[res].resource,
            Payload::Profiles(r) => &mut r.resource_profiles[res].resource,
        };
        slot.get_or_insert_with(Default::default);
    }

    /// The attribute list of a target, read-only.
    pub(super) fn attrs(&self, t: Target) -> Option<&[KeyValue]> {
        match t {
            Target::Resource(res) => {
                let res = res as usize;
                let resource = match &self.payload {
                    Payload::Traces(r) => r.resource_spans.get(res)?.resource.as_ref(),
                    Payload::Metrics(r) => r.resource_metrics.get(res)?.resource.as_ref(),
                    Payload::Logs(r) => r.resource_logs.get(res)?.resource.as_ref(),
                    Payload::Profiles(r) => r.resource_profiles.get(res)?.resource.as_ref(),
                };
                Some(resource.map_or(&[][..], |r| &r.attributes))
            }
            Target::Scope(s) => {
                let (ri, si) = *self.scopes.get(s as usize)?;
                let (ri, si) = (ri as usize, si as usize);
                let scope = match &self.payload {
                    Payload::Traces(r) => r.resource_spans[ri].scope_spans[si].scope.as_ref(),
                    Payload::Metrics(r) => r.resource_metrics[ri].scope_metrics[si].scope.as_ref(),
                    Payload::Logs(r) => r.resource_logs[ri].scope_logs[si].scope.as_ref(),
                    Payload::Profiles(r) => {
                        r.resource_profiles[ri].scope_profiles[si].scope.as_ref()
                    }
                };
                Some(scope.map_or(&[][..], |s| &s.attributes))
            }
            Target::Item(i) => match self.signal() {
                Signal::Traces => self.span(i).ok()?.map(|s| &s.attributes[..]),
                Signal::Logs => self.log(i).ok()?.map(|l| &l.attributes[..]),
                Signal::Metrics => self.metric(i).ok()?.map(first_point_attrs),
                Signal::Profiles => None,
            },
            Target::Point(i, p) => point_attrs(self.metric(i).ok()??, p as usize),
            Target::Event(i, e) => self
                .span(i)
                .ok()??
                .events
                .get(e as usize)
                .map(|e| &e.attributes[..]),
            Target::Link(i, l) => self
                .span(i)
                .ok()??
                .links
                .get(l as usize)
                .map(|l| &l.attributes[..]),
            Target::Body(_) => None,
        }
    }

    /// Creates the resource or scope a write needs, when the request left it out.
    pub(super) fn ensure_list(&mut self, t: Target) {
        match t {
            Target::Resource(r) => self.ensure_resource(r),
            Target::Scope(s) => {
                let (ri, si) = self.scopes[s as usize];
                let (ri, si) = (ri as usize, si as usize);
                let slot = match &mut self.payload {
                    Payload::Traces(r) => &mut r.resource_spans[ri].scope_spans[si].scope,
                    Payload::Metrics(r) => &mut r.resource_metrics[ri].scope_metrics[si].scope,
                    Payload::Logs(r) => &mut r.resource_logs[ri].scope_logs[si].scope,
                    Payload::Profiles(r) => &mut r.resource_profiles[ri].scope_profiles[si].scope,
                };
                slot.get_or_insert_with(Default::default);
            }
            _ => {}
        }
    }

    pub(crate) fn item_resource(&self, item: u32) -> R<u32> {
        Ok(self.item(item)?.resource)
    }

    pub(crate) fn scope_name(&self, item: u32) -> R<String> {
        let r = self.item(item)?;
        let (ri, si) = (r.resource as usize, r.scope as usize);
        let scope = match &self.payload {
            Payload::Traces(t) => t.resource_spans[ri].scope_spans[si].scope.as_ref(),
            Payload::Metrics(m) => m.resource_metrics[ri].scope_metrics[si].scope.as_ref(),
            Payload::Logs(l) => l.resource_logs[ri].scope_logs[si].scope.as_ref(),
            Payload::Profiles(p) => p.resource_profiles[ri].scope_profiles[si].scope.as_ref(),
        };
        Ok(scope.map(|s| s.name.clone()).unwrap_or_default())
    }

    pub(crate) fn scope_count(&self) -> u32 {
        self.scopes.len() as u32
    }

    pub(crate) fn item_scope(&self, item: u32) -> R<u32> {
        Ok(self.item(item)?.global_scope)
    }

    pub(crate) fn item_resources(&self) -> Vec<u32> {
        self.items.iter().map(|i| i.resource).collect()
    }

    pub(crate) fn scope_resource(&self, scope: u32) -> R<u32> {
        self.scopes
            .get(scope as usize)
            .map(|(r, _)| *r)
            .ok_or(BadIndex {
                what: "scope",
                index: scope,
            })
    }

    pub(crate) fn scope_info(&self, scope: u32) -> R<(String, String)> {
        let &(ri, si) = self.scopes.get(scope as usize).ok_or(BadIndex {
            what: "scope",
            index: scope,
        })?;
        let (ri, si) = (ri as usize, si as usize);
        let s = match &self.payload {
            Payload::Traces(t) => t.resource_spans[ri].scope_spans[si].scope.as_ref(),
            Payload::Metrics(m) => m.resource_metrics[ri].scope_metrics[si].scope.as_ref(),
            Payload::Logs(l) => l.resource_logs[ri].scope_logs[si].scope.as_ref(),
            Payload::Profiles(p) => p.resource_profiles[ri].scope_profiles[si].scope.as_ref(),
        };
        Ok(s.map(|s| (s.name.clone(), s.version.clone()))
            .unwrap_or_default())
    }

    /// The target, checked: one that does not exist is bad output.
    pub(super) fn target(&self, t: Target) -> R<Target> {
        let bad = |what, index| Err(BadIndex { what, index });
        match t {
            Target::Resource(r) => self.check_resource(r)?,
            Target::Scope(s) => {
                if s as usize >= self.scopes.len() {
                    return bad("scope", s);
                }
            }
            Target::Item(i) => {
                self.item(i)?;
            }
            Target::Point(item, index) => {
                if index >= self.point_count(item)? {
                    return bad("point", index);
                }
            }
            Target::Event(item, index) => return self.sub_target(item, false, index),
            Target::Link(item, index) => return self.sub_target(item, true, index),
            Target::Body(i) => {
                if self.log(i)?.is_none() {
                    return bad("log record", i);
                }
            }
        }
        Ok(t)
    }

    pub(super) fn sub_target(&self, item: u32, link: bool, index: u32) -> R<Target> {
        let n = if link {
            self.link_count(item)?
        } else {
            self.event_count(item)?
        };
        if index >= n {
            return Err(BadIndex {
                what: if link { "link" } else { "event" },
                index,
            });
        }
        Ok(if link {
            Target::Link(item, index)
        } else {
            Target::Event(item, index)
        })
    }
}

fn point_attrs_mut(m: &mut Metric, point: usize) -> Option<&mut Vec<KeyValue>> {
    Some(match m.data.as_mut()? {
        Data::Gauge(g) => &mut g.data_points.get_mut(point)?.attributes,
        Data::Sum(s) => &mut s.data_points.get_mut(point)?.attributes,
        Data::Histogram(h) => &mut h.data_points.get_mut(point)?.attributes,
        Data::ExponentialHistogram(h) => &mut h.data_points.get_mut(point)?.attributes,
        Data::Summary(s) => &mut s.data_points.get_mut(point)?.attributes,
    })
}

pub(super) fn point_attrs(m: &Metric, point: usize) -> Option<&[KeyValue]> {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    Some(match m.data.as_ref()? {
        Data::Gauge(g) => &g.data_points.get(point)?.attributes,
        Data::Sum(s) => &s.data_points.get(point)?.attributes,
        Data::Histogram(h) => &h.data_points.get(point)?.attributes,
        Data::ExponentialHistogram(h) => &h.data_points.get(point)?.attributes,
        Data::Summary(s) => &s.data_points.get(point)?.attributes,
    })
}
