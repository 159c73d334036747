//! `weir:filter@0.1.0`'s imports: the generated traits, forwarded to [`BatchState`] and the shared host
//! functions.

use wasmtime::component::Resource;

use super::{StoreState, Weight, host_functions, read, write};
use crate::batch::BatchState;
use crate::bindings::v0_1::weir::filter::{host, types};

type H = Resource<BatchState>;
type WResult<T> = wasmtime::Result<T>;

super::value_weight!(types::Value);

impl types::Host for StoreState {}

impl types::HostBatch for StoreState {
    fn signal(&mut self, h: H) -> WResult<types::Signal> {
        types::Signal::try_from(self.batch(&h)?.signal()).map_err(|_| super::profiles_unknown())
    }
    fn header(&mut self, h: H, name: String) -> WResult<Option<String>> {
        Ok(self.batch(&h)?.header(&name))
    }
    fn peer(&mut self, h: H) -> WResult<Option<String>> {
        Ok(self.batch(&h)?.peer())
    }
    fn resource_count(&mut self, h: H) -> WResult<u32> {
        Ok(self.batch(&h)?.resource_count() as u32)
    }
    fn resource_attributes(&mut self, h: H, res: u32) -> WResult<Vec<types::Attribute>> {
        write!(self, h, resource_attributes(res) => super::attributes)
    }
    fn resource_attribute(&mut self, h: H, res: u32, key: String) -> WResult<Option<types::Value>> {
        write!(self, h, resource_attribute(res, &key) => super::value)
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
        read!(self, h, attributes(item) => super::attributes)
    }
    fn attribute(&mut self, h: H, item: u32, key: String) -> WResult<Option<types::Value>> {
        read!(self, h, attribute(item, &key) => super::value)
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
        read!(self, h, trace_id(item) => Into::into)
    }
    fn trace_ids(&mut self, h: H) -> WResult<Vec<types::TraceId>> {
        Ok(self
            .batch(&h)?
            .trace_ids()
            .into_iter()
            .map(Into::into)
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
        read!(self, h, span_status(item) => |(code, message)| (code.into(), message))
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
        read!(self, h, event_attributes(item, event) => super::attributes)
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
        read!(self, h, link_attributes(item, link) => super::attributes)
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
        read!(self, h, body(item) => super::value)
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
        read!(self, h, metric_kind(item) => Into::into)
    }
    fn point_count(&mut self, h: H, item: u32) -> WResult<u32> {
        read!(self, h, point_count(item))
    }
    fn point_value(&mut self, h: H, item: u32, point: u32) -> WResult<Option<f64>> {
        read!(self, h, point_value(item, point))
    }
    fn drop(&mut self, _h: H) -> WResult<()> {
        // Batches are only ever lent (borrowed); weir takes them back itself after the call.
        Ok(())
    }
}

host_functions!();
