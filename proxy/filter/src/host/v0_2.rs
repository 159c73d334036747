//! `weir:filter@0.2.1`'s imports (0.2.0's and `batch.tenant`): the 0.1 accessors with 0.2's types, the bulk accessors, the kernels
//! (pattern sets, redaction, SHA-256) and the shared state.

use wasmtime::component::Resource;

use super::{MAX_PATTERN_SETS, StoreState, Weight, host_functions, read, write};
use crate::batch::{BatchState, to_wit};
use crate::bindings::v0_1::weir::filter::types as t1;
use crate::bindings::v0_2::weir::filter::{host, kernels, types};
use crate::kernels::PatternSetHandle;

type H = Resource<BatchState>;
type P = Resource<PatternSetHandle>;
type WResult<T> = wasmtime::Result<T>;

impl From<t1::Value> for types::Value {
    fn from(v: t1::Value) -> Self {
        match v {
            t1::Value::Str(s) => Self::Str(s),
            t1::Value::Boolean(b) => Self::Boolean(b),
            t1::Value::Int(i) => Self::Int(i),
            t1::Value::Double(d) => Self::Double(d),
            t1::Value::Bytes(b) => Self::Bytes(b),
            t1::Value::Json(j) => Self::Json(j),
        }
    }
}

impl From<types::Value> for t1::Value {
    fn from(v: types::Value) -> Self {
        match v {
            types::Value::Str(s) => Self::Str(s),
            types::Value::Boolean(b) => Self::Boolean(b),
            types::Value::Int(i) => Self::Int(i),
            types::Value::Double(d) => Self::Double(d),
            types::Value::Bytes(b) => Self::Bytes(b),
            types::Value::Json(j) => Self::Json(j),
        }
    }
}

super::value_weight!(types::Value);

impl Weight for types::AttributeEdit {
    fn weight(&self) -> usize {
        let op = match &self.op {
            types::EditOp::Set(v) => v.weight(),
            types::EditOp::Remove => 0,
        };
        self.key.len() + op + 16
    }
}

impl Weight for kernels::PatternMatch {
    fn weight(&self) -> usize {
        self.key.len() + 32
    }
}

impl Weight for kernels::Rewrite {
    fn weight(&self) -> usize {
        match self {
            kernels::Rewrite::Mask(m) => m.len(),
            kernels::Rewrite::Hash(salt) => salt.len(),
            kernels::Rewrite::Remove => 0,
        }
    }
}

fn attrs(v: Vec<t1::Attribute>) -> Vec<types::Attribute> {
    v.into_iter()
        .map(|a| types::Attribute {
            key: a.key,
            value: a.value.into(),
        })
        .collect()
}

fn trace_id(t: t1::TraceId) -> types::TraceId {
    types::TraceId {
        high: t.high,
        low: t.low,
    }
}

impl types::Host for StoreState {}

impl types::HostBatch for StoreState {
    fn signal(&mut self, h: H) -> WResult<types::Signal> {
        Ok(match self.batch(&h)?.signal() {
            weir_core::Signal::Traces => types::Signal::Traces,
            weir_core::Signal::Metrics => types::Signal::Metrics,
            weir_core::Signal::Logs => types::Signal::Logs,
            weir_core::Signal::Profiles => return Err(super::profiles_unknown()),
        })
    }
    fn header(&mut self, h: H, name: String) -> WResult<Option<String>> {
        Ok(self.batch(&h)?.header(&name))
    }
    fn peer(&mut self, h: H) -> WResult<Option<String>> {
        Ok(self.batch(&h)?.peer())
    }
    fn tenant(&mut self, h: H) -> WResult<Option<String>> {
        Ok(self.batch(&h)?.tenant())
    }
    fn resource_count(&mut self, h: H) -> WResult<u32> {
        Ok(self.batch(&h)?.resource_count() as u32)
    }
    fn resource_attributes(&mut self, h: H, res: u32) -> WResult<Vec<types::Attribute>> {
        write!(self, h, resource_attributes(res)).map(attrs)
    }
    fn resource_attribute(&mut self, h: H, res: u32, key: String) -> WResult<Option<types::Value>> {
        write!(self, h, resource_attribute(res, &key)).map(|v| v.map(Into::into))
    }
    fn set_resource_attribute(
        &mut self,
        h: H,
        res: u32,
        key: String,
        value: types::Value,
    ) -> WResult<()> {
        self.charge(key.weight() + value.weight())?;
        write!(self, h, set_resource_attribute(res, &key, value.into()))
    }
    fn remove_resource_attribute(&mut self, h: H, res: u32, key: String) -> WResult<bool> {
        write!(self, h, remove_resource_attribute(res, &key))
    }
    fn set_route(&mut self, h: H, res: u32, exporters: Vec<String>) -> WResult<()> {
        self.charge(exporters.weight())?;
        write!(self, h, set_route(res, exporters))
    }
    fn set_item_route(&mut self, h: H, item: u32, exporters: Vec<String>) -> WResult<()> {
        self.charge(exporters.weight())?;
        write!(self, h, set_item_route(item, exporters))
    }
    fn item_count(&mut self, h: H) -> WResult<u32> {
        Ok(self.batch(&h)?.len() as u32)
    }
    fn item_resource(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, item_resource(item))
    }
    fn scope_name(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, scope_name(item))
    }
    fn attributes(&mut self, h: H, item: u32) -> WResult<Vec<types::Attribute>> {
        read!(self, h, attributes(item)).map(attrs)
    }
    fn attribute(&mut self, h: H, item: u32, key: String) -> WResult<Option<types::Value>> {
        read!(self, h, attribute(item, &key)).map(|v| v.map(Into::into))
    }
    fn set_attribute(&mut self, h: H, item: u32, key: String, value: types::Value) -> WResult<()> {
        self.charge(key.weight() + value.weight())?;
        write!(self, h, set_attribute(item, &key, value.into()))
    }
    fn remove_attribute(&mut self, h: H, item: u32, key: String) -> WResult<bool> {
        write!(self, h, remove_attribute(item, &key))
    }
    fn drop_item(&mut self, h: H, item: u32) -> WResult<()> {
        write!(self, h, drop_item(item))
    }
    fn is_dropped(&mut self, h: H, item: u32) -> WResult<bool> {
        read!(self, h, is_dropped(item))
    }
    fn trace_id(&mut self, h: H, item: u32) -> WResult<types::TraceId> {
        read!(self, h, trace_id(item)).map(trace_id)
    }
    fn trace_ids(&mut self, h: H) -> WResult<Vec<types::TraceId>> {
        Ok(self
            .batch(&h)?
            .trace_ids()
            .into_iter()
            .map(trace_id)
            .collect())
    }
    fn span_id(&mut self, h: H, item: u32) -> WResult<u64> {
        read!(self, h, span_id(item))
    }
    fn parent_span_id(&mut self, h: H, item: u32) -> WResult<u64> {
        read!(self, h, parent_span_id(item))
    }
    fn span_name(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, span_name(item))
    }
    fn set_span_name(&mut self, h: H, item: u32, name: String) -> WResult<()> {
        self.charge(name.weight())?;
        write!(self, h, set_span_name(item, name))
    }
    fn span_kind(&mut self, h: H, item: u32) -> WResult<u8> {
        read!(self, h, span_kind(item))
    }
    fn span_status(&mut self, h: H, item: u32) -> WResult<(types::StatusCode, String)> {
        read!(self, h, span_status(item)).map(|(code, message)| {
            let code = match code {
                t1::StatusCode::Unset => types::StatusCode::Unset,
                t1::StatusCode::Ok => types::StatusCode::Ok,
                t1::StatusCode::Error => types::StatusCode::Error,
            };
            (code, message)
        })
    }
    fn span_times(&mut self, h: H, item: u32) -> WResult<(u64, u64)> {
        read!(self, h, span_times(item))
    }
    fn trace_state(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, trace_state(item))
    }
    fn set_trace_state(&mut self, h: H, item: u32, value: String) -> WResult<()> {
        self.charge(value.weight())?;
        write!(self, h, set_trace_state(item, value))
    }
    fn event_count(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, event_count(item))
    }
    fn event_name(&mut self, h: H, item: u32, event: u32) -> WResult<String> {
        read!(self, h, event_name(item, event))
    }
    fn event_attributes(&mut self, h: H, item: u32, event: u32) -> WResult<Vec<types::Attribute>> {
        read!(self, h, event_attributes(item, event)).map(attrs)
    }
    fn set_event_attribute(
        &mut self,
        h: H,
        item: u32,
        event: u32,
        key: String,
        value: types::Value,
    ) -> WResult<()> {
        self.charge(key.weight() + value.weight())?;
        write!(
            self,
            h,
            set_sub_attribute(item, false, event, &key, value.into())
        )
    }
    fn remove_event_attribute(
        &mut self,
        h: H,
        item: u32,
        event: u32,
        key: String,
    ) -> WResult<bool> {
        write!(self, h, remove_sub_attribute(item, false, event, &key))
    }
    fn link_count(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, link_count(item))
    }
    fn link_attributes(&mut self, h: H, item: u32, link: u32) -> WResult<Vec<types::Attribute>> {
        read!(self, h, link_attributes(item, link)).map(attrs)
    }
    fn set_link_attribute(
        &mut self,
        h: H,
        item: u32,
        link: u32,
        key: String,
        value: types::Value,
    ) -> WResult<()> {
        self.charge(key.weight() + value.weight())?;
        write!(
            self,
            h,
            set_sub_attribute(item, true, link, &key, value.into())
        )
    }
    fn remove_link_attribute(&mut self, h: H, item: u32, link: u32, key: String) -> WResult<bool> {
        write!(self, h, remove_sub_attribute(item, true, link, &key))
    }
    fn severity(&mut self, h: H, item: u32) -> WResult<(u8, String)> {
        read!(self, h, severity(item))
    }
    fn body(&mut self, h: H, item: u32) -> WResult<Option<types::Value>> {
        read!(self, h, body(item)).map(|v| v.map(Into::into))
    }
    fn set_body(&mut self, h: H, item: u32, value: types::Value) -> WResult<()> {
        self.charge(value.weight())?;
        write!(self, h, set_body(item, value.into()))
    }
    fn log_time(&mut self, h: H, item: u32) -> WResult<u64> {
        read!(self, h, log_time(item))
    }
    fn metric_name(&mut self, h: H, item: u32) -> WResult<String> {
        read!(self, h, metric_name(item))
    }
    fn metric_kind(&mut self, h: H, item: u32) -> WResult<types::MetricKind> {
        read!(self, h, metric_kind(item)).map(|k| match k {
            t1::MetricKind::Gauge => types::MetricKind::Gauge,
            t1::MetricKind::Sum => types::MetricKind::Sum,
            t1::MetricKind::Histogram => types::MetricKind::Histogram,
            t1::MetricKind::ExponentialHistogram => types::MetricKind::ExponentialHistogram,
            t1::MetricKind::Summary => types::MetricKind::Summary,
            t1::MetricKind::Empty => types::MetricKind::Empty,
        })
    }
    fn point_count(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, point_count(item))
    }
    fn point_value(&mut self, h: H, item: u32, point: u32) -> WResult<Option<f64>> {
        read!(self, h, point_value(item, point))
    }

    fn scope_count(&mut self, h: H) -> WResult<u32> {
        Ok(self.batch(&h)?.scope_count())
    }
    fn item_scope(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, item_scope(item))
    }
    fn item_resources(&mut self, h: H) -> WResult<Vec<u32>> {
        Ok(self.batch(&h)?.item_resources())
    }
    fn scope_resource(&mut self, h: H, scope: u32) -> WResult<u32> {
        read!(self, h, scope_resource(scope))
    }
    fn scope_info(&mut self, h: H, scope: u32) -> WResult<(String, String)> {
        read!(self, h, scope_info(scope))
    }
    fn get(&mut self, h: H, at: types::Location, key: String) -> WResult<Option<types::Value>> {
        read!(self, h, get(&at, &key)).map(|v| v.as_ref().map(|v| to_wit(v).into()))
    }
    fn read(
        &mut self,
        h: H,
        lists: types::Lists,
        key: Option<String>,
    ) -> WResult<types::AttributeTable> {
        Ok(self.batch(&h)?.read(lists, key.as_deref()))
    }
    fn edit(&mut self, h: H, edits: Vec<types::AttributeEdit>) -> WResult<()> {
        self.charge(edits.weight())?;
        write!(self, h, edit(edits))
    }
    fn drop_items(&mut self, h: H, items: Vec<u32>) -> WResult<()> {
        write!(self, h, drop_items(&items))
    }
    fn trace_states(&mut self, h: H) -> WResult<types::StringList> {
        Ok(self.batch(&h)?.trace_states())
    }
    fn set_trace_states(&mut self, h: H, states: Vec<(u32, String)>) -> WResult<()> {
        self.charge(states.weight())?;
        write!(self, h, set_trace_states(states))
    }
    fn set_item_routes(&mut self, h: H, items: Vec<u32>, exporters: Vec<String>) -> WResult<()> {
        self.charge(items.weight() + exporters.weight())?;
        write!(self, h, set_item_routes(&items, exporters))
    }
    fn drop(&mut self, _h: H) -> WResult<()> {
        // Batches are only ever lent (borrowed); weir takes them back itself after the call.
        Ok(())
    }
}

impl kernels::Host for StoreState {
    fn redact(
        &mut self,
        h: H,
        matches: Vec<kernels::PatternMatch>,
        how: kernels::Rewrite,
    ) -> WResult<u32> {
        // What the guest hands over is charged like any other call's (the matches name keys, and
        // the rewrite makes new values), and the CPU budget bounds the rewriting from inside.
        self.charge(matches.weight() + how.weight())?;
        let (started, limit) = (self.budget.started, self.budget.limit);
        let mut out_of_time = || super::thread_cpu().saturating_sub(started) >= limit;
        let r = self.batch_mut(&h)?.redact(&matches, &how, &mut out_of_time);
        match self.bad(r)? {
            Some(changed) => Ok(changed),
            None => {
                self.budget.used_at_stop = Some(self.budget.used());
                Err(wasmtime::Error::new(wasmtime::Trap::Interrupt))
            }
        }
    }
    fn sha256(&mut self, data: Vec<u8>) -> WResult<Vec<u8>> {
        Ok(weir_kernels::sha256(&data).to_vec())
    }
}

impl kernels::HostPatternSet for StoreState {
    fn compile(&mut self, spec: kernels::PatternSpec) -> WResult<Result<P, String>> {
        if self.pattern_sets >= MAX_PATTERN_SETS {
            return Ok(Err(format!(
                "an instance may hold at most {MAX_PATTERN_SETS} pattern sets"
            )));
        }
        let spec = crate::kernels::spec(spec);
        let set = match self.patterns.get(&spec) {
            Ok(set) => set,
            Err(e) => return Ok(Err(e.to_string())),
        };
        self.pattern_sets += 1;
        Ok(Ok(self.table.push(PatternSetHandle { set })?))
    }
    fn scan(
        &mut self,
        p: Resource<PatternSetHandle>,
        h: H,
        lists: types::Lists,
    ) -> WResult<Vec<kernels::PatternMatch>> {
        let set = self.table.get(&p)?.set.clone();
        Ok(self.batch(&h)?.scan(&set, lists))
    }
    fn find(&mut self, p: P, text: String) -> WResult<Vec<kernels::PatternMatch>> {
        let set = self.table.get(&p)?.set.clone();
        Ok(crate::kernels::find(&set, &text))
    }
    fn drop(&mut self, p: P) -> WResult<()> {
        self.table.delete(p)?;
        self.pattern_sets = self.pattern_sets.saturating_sub(1);
        Ok(())
    }
}

host_functions! {
    fn shared_add(&mut self, name: String, delta: i64) -> WResult<i64> {
        let r = self.shared.add(&name, delta);
        self.bad(r)
    }
    fn shared_rate(&mut self, name: String, events: u64, window_ms: u32) -> WResult<f64> {
        let r = self.shared.rate(&name, events, window_ms);
        self.bad(r)
    }
}
