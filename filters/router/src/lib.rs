//! The router filter: labels each item with the exporters it goes to.
//!
//! Config (JSON): `routes`, a list of rules tried in order, each with `from` (`resource_attribute`,
//! `header`, `attribute`, or `tenant`: the tenant the receiver's `auth` gave the request), `key` (not
//! for `tenant`), one of `exact`, `prefix` or `regex` (none: the key is present) and
//! `exporters`; `default`, the exporters for items no rule matches (absent: the pipeline's `exporters`);
//! `match`, `first` (default) or `all` (the union of every matching rule). Exporter names are checked
//! against weir's configuration at `init`, so a typo refuses the filter instead of losing data.
//!
//! Decisions are made per resource (one `set-route` call per resource) unless a rule looks at item
//! attributes; then per item, with each attribute key read for every item in one call, still labelling
//! a whole resource at once when its items agree (and otherwise one call per exporter set). The
//! counters `weir_filter_counter_total{name="matched"}` and `{name="defaulted"}` count items.
//! The logic is in [`rules`].

pub mod rules;

use std::borrow::Cow;

use rules::{Config, From, Route, Router};
use weir_guest_sdk::{
    Batch, Filter, Lists, Location, Signal, Table, Value, Verdict, export_filter, exporters, host,
    parse_config,
};

/// The filter.
pub struct RouterFilter {
    router: Router,
    /// Each rule's source, and the distinct header, resource and attribute keys: fixed by the rules,
    /// so resolved once at `init`.
    sources: Vec<Source>,
    keys: [Vec<String>; 3],
}

/// An attribute or header value as text, for matching.
fn text(v: Value) -> String {
    match v {
        Value::Str(s) | Value::Json(s) => s,
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
    }
}

/// Where one rule's value comes from: an index into the batch's header values, the current resource's
/// values or the attribute columns. Per item, a lookup is then an index, not a
/// key comparison.
#[derive(Clone, Copy)]
enum Source {
    Header(usize),
    Resource(usize),
    Attribute(usize),
    Tenant,
}

/// The distinct keys of the rules that look at `from`, and each rule's source.
fn sources(router: &Router) -> (Vec<Source>, [Vec<String>; 3]) {
    let mut keys: [Vec<String>; 3] = Default::default();
    let sources = router
        .rules
        .iter()
        .map(|r| {
            let (slot, make): (usize, fn(usize) -> Source) = match r.from {
                From::Header => (0, Source::Header),
                From::ResourceAttribute => (1, Source::Resource),
                From::Attribute => (2, Source::Attribute),
                From::Tenant => return Source::Tenant,
            };
            let list = &mut keys[slot];
            let at = match list.iter().position(|k| *k == r.key) {
                Some(i) => i,
                None => {
                    list.push(r.key.clone());
                    list.len() - 1
                }
            };
            make(at)
        })
        .collect();
    (sources, keys)
}

impl RouterFilter {
    fn route(&mut self, batch: &Batch) {
        let router = &mut self.router;
        let sources = &self.sources;
        let [header_keys, resource_keys, attribute_keys] = &self.keys;
        // Headers are the same for the whole batch: each one the rules name is read once.
        let headers: Vec<Option<String>> = header_keys.iter().map(|k| batch.header(k)).collect();
        // So is the tenant; read only when a rule looks at it.
        let tenant = sources
            .iter()
            .any(|s| matches!(s, Source::Tenant))
            .then(|| batch.tenant())
            .flatten();
        let resource_values = |res: u32| -> Vec<Option<String>> {
            resource_keys
                .iter()
                .map(|k| batch.resource_attribute(res, k).map(text))
                .collect()
        };
        let (mut matched, mut defaulted) = (0u64, 0u64);
        let mut count = |d: Route, n: u64| match d {
            Route::Matched(_) => matched += n,
            Route::Default(_) => defaulted += n,
            Route::Unlabelled => {}
        };
        if !router.per_item {
            let mut items_per_resource = vec![0u64; batch.resource_count() as usize];
            for r in batch.item_resources() {
                if let Some(n) = items_per_resource.get_mut(r as usize) {
                    *n += 1;
                }
            }
            for res in batch.resources() {
                let values = resource_values(res);
                let d = router.decide_by_rule(|i| match sources[i] {
                    Source::Header(h) => headers[h].as_deref(),
                    Source::Resource(r) => values[r].as_deref(),
                    Source::Attribute(_) => None,
                    Source::Tenant => tenant.as_deref(),
                });
                count(d, items_per_resource[res as usize]);
                if let Some(set) = d.set() {
                    batch.set_route(res, &router.sets[set]);
                }
            }
        } else {
            // Every value an attribute rule looks at, read in one call per key (for metrics, the first
            // data point's, as `attribute` gives it); lookups borrow from the tables.
            let n = batch.item_count() as usize;
            let lists = match batch.signal() {
                Signal::Metrics => Lists::POINTS,
                _ => Lists::ITEMS,
            };
            let tables: Vec<Table> = attribute_keys
                .iter()
                .map(|key| batch.column(lists, key))
                .collect();
            let columns: Vec<Vec<Option<Cow<'_, str>>>> = tables
                .iter()
                .map(|table| {
                    let mut column = vec![None; n];
                    for (at, _, v) in table.iter() {
                        let item = match at {
                            Location::Item(i) => i,
                            Location::Point(p) if p.index == 0 => p.item,
                            _ => continue,
                        };
                        if let Some(slot) = column.get_mut(item as usize) {
                            *slot = Some(v.text());
                        }
                    }
                    column
                })
                .collect();
            // Items are numbered resource by resource: decide for a run of one resource, then label the
            // resource at once when the run agrees.
            let n = n as u32;
            let resources = batch.item_resources();
            let resource = |i: u32| resources.get(i as usize).copied().unwrap_or(0);
            let mut per_set: Vec<Vec<u32>> = vec![Vec::new(); router.sets.len()];
            let mut decisions: Vec<Route> = Vec::new();
            let mut start = 0;
            while start < n {
                let res = resource(start);
                let mut end = start + 1;
                while end < n && resource(end) == res {
                    end += 1;
                }
                let values = resource_values(res);
                decisions.clear();
                for item in start..end {
                    decisions.push(router.decide_by_rule(|i| match sources[i] {
                        Source::Header(h) => headers[h].as_deref(),
                        Source::Resource(r) => values[r].as_deref(),
                        Source::Attribute(c) => columns[c][item as usize].as_deref(),
                        Source::Tenant => tenant.as_deref(),
                    }));
                }
                for d in &decisions {
                    count(*d, 1);
                }
                if decisions.iter().all(|d| d.set() == decisions[0].set()) {
                    if let Some(set) = decisions[0].set() {
                        batch.set_route(res, &router.sets[set]);
                    }
                } else {
                    for (item, d) in (start..end).zip(decisions.iter()) {
                        if let Some(set) = d.set() {
                            if per_set.len() <= set {
                                per_set.resize(set + 1, Vec::new());
                            }
                            per_set[set].push(item);
                        }
                    }
                }
                start = end;
            }
            // One call per exporter set for the items labelled one by one.
            for (set, items) in per_set.iter().enumerate() {
                if !items.is_empty() {
                    batch.set_item_routes(items, &router.sets[set]);
                }
            }
        }
        if matched > 0 {
            host::counter_add("matched", matched);
        }
        if defaulted > 0 {
            host::counter_add("defaulted", defaulted);
        }
    }
}

impl Filter for RouterFilter {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            parse_config(config)?
        };
        let router = Router::new(config, &exporters())?;
        let (sources, keys) = sources(&router);
        Ok(Self {
            router,
            sources,
            keys,
        })
    }

    fn traces(&mut self, batch: &Batch) -> Verdict {
        self.route(batch);
        Verdict::Continue
    }

    fn metrics(&mut self, batch: &Batch) -> Verdict {
        self.route(batch);
        Verdict::Continue
    }

    fn logs(&mut self, batch: &Batch) -> Verdict {
        self.route(batch);
        Verdict::Continue
    }

    /// Profiles route by resource attribute, header and tenant; a profile's own attributes are
    /// dictionary indices, so `from: attribute` rules see none and such profiles take the default.
    fn profiles(&mut self, batch: &Batch) -> Verdict {
        self.route(batch);
        Verdict::Continue
    }
}

export_filter!(RouterFilter);
