//! The host side of the `batch` resource and of the kernels, written once for every version of
//! the interface: each version's generated traits have the same methods with its own types, so
//! the methods are macros over a version's generated modules, which each version's module
//! invokes inside its `impl` blocks. A version writes only what it adds (interface 0.3's
//! profiles, say).
//!
//! The macros are invoked in a version's module directly under `host`: their `super::` is
//! `host`, and they expect `StoreState`, the [`Weight`] trait, the resource handle types `H` (a
//! batch) and `P` (a pattern set), `WResult` and `MAX_PATTERN_SETS` imported from it.
//!
//! [`Weight`]: super::Weight

/// The `batch` methods of interface 0.1, which every later version keeps, for the generated `types`
/// module named; invoked inside `impl types::HostBatch for StoreState`.
macro_rules! batch_methods {
    ($types:ident) => {
        fn signal(&mut self, h: H) -> WResult<$types::Signal> {
            $types::Signal::try_from(self.batch(&h)?.signal())
                .map_err(|_| super::profiles_unknown())
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
        fn resource_attributes(
            &mut self,
            h: H,
            res: u32,
        ) -> WResult<Vec<$types::Attribute>> {
            super::write!(self, h, resource_attributes(res) => super::attributes)
        }
        fn resource_attribute(
            &mut self,
            h: H,
            res: u32,
            key: String,
        ) -> WResult<Option<$types::Value>> {
            super::write!(self, h, resource_attribute(res, &key) => super::value)
        }
        fn set_resource_attribute(
            &mut self,
            h: H,
            res: u32,
            key: String,
            value: $types::Value,
        ) -> WResult<()> {
            self.charge(key.weight() + value.weight())?;
            super::write!(self, h, set_resource_attribute(res, &key, value.into()))
        }
        fn remove_resource_attribute(&mut self, h: H, res: u32, key: String) -> WResult<bool> {
            super::write!(self, h, remove_resource_attribute(res, &key))
        }
        fn set_route(&mut self, h: H, res: u32, exporters: Vec<String>) -> WResult<()> {
            self.charge(exporters.weight())?;
            super::write!(self, h, set_route(res, exporters))
        }
        fn set_item_route(&mut self, h: H, item: u32, exporters: Vec<String>) -> WResult<()> {
            self.charge(exporters.weight())?;
            super::write!(self, h, set_item_route(item, exporters))
        }
        fn item_count(&mut self, h: H) -> WResult<u32> {
            Ok(self.batch(&h)?.len() as u32)
        }
        fn item_resource(&mut self, h: H, item: u32) -> WResult<u32> {
            super::read!(self, h, item_resource(item))
        }
        fn scope_name(&mut self, h: H, item: u32) -> WResult<String> {
            super::read!(self, h, scope_name(item))
        }
        fn attributes(&mut self, h: H, item: u32) -> WResult<Vec<$types::Attribute>> {
            super::read!(self, h, attributes(item) => super::attributes)
        }
        fn attribute(
            &mut self,
            h: H,
            item: u32,
            key: String,
        ) -> WResult<Option<$types::Value>> {
            super::read!(self, h, attribute(item, &key) => super::value)
        }
        fn set_attribute(
            &mut self,
            h: H,
            item: u32,
            key: String,
            value: $types::Value,
        ) -> WResult<()> {
            self.charge(key.weight() + value.weight())?;
            super::write!(self, h, set_attribute(item, &key, value.into()))
        }
        fn remove_attribute(&mut self, h: H, item: u32, key: String) -> WResult<bool> {
            super::write!(self, h, remove_attribute(item, &key))
        }
        fn drop_item(&mut self, h: H, item: u32) -> WResult<()> {
            super::write!(self, h, drop_item(item))
        }
        fn is_dropped(&mut self, h: H, item: u32) -> WResult<bool> {
            super::read!(self, h, is_dropped(item))
        }
        fn trace_id(&mut self, h: H, item: u32) -> WResult<$types::TraceId> {
            super::read!(self, h, trace_id(item) => Into::into)
        }
        fn trace_ids(&mut self, h: H) -> WResult<Vec<$types::TraceId>> {
            Ok(self
                .batch(&h)?
                .trace_ids()
                .into_iter()
                .map(Into::into)
                .collect())
        }
        fn span_id(&mut self, h: H, item: u32) -> WResult<u64> {
            super::read!(self, h, span_id(item))
        }
        fn parent_span_id(&mut self, h: H, item: u32) -> WResult<u64> {
            super::read!(self, h, parent_span_id(item))
        }
        fn span_name(&mut self, h: H, item: u32) -> WResult<String> {
            super::read!(self, h, span_name(item))
        }
        fn set_span_name(&mut self, h: H, item: u32, name: String) -> WResult<()> {
            self.charge(name.weight())?;
            super::write!(self, h, set_span_name(item, name))
        }
        fn span_kind(&mut self, h: H, item: u32) -> WResult<u8> {
            super::read!(self, h, span_kind(item))
        }
        fn span_status(&mut self, h: H, item: u32) -> WResult<($types::StatusCode, String)> {
            super::read!(self, h, span_status(item) => |(code, message)| (code.into(), message))
        }
        fn span_times(&mut self, h: H, item: u32) -> WResult<(u64, u64)> {
            super::read!(self, h, span_times(item))
        }
        fn trace_state(&mut self, h: H, item: u32) -> WResult<String> {
            super::read!(self, h, trace_state(item))
        }
        fn set_trace_state(&mut self, h: H, item: u32, value: String) -> WResult<()> {
            self.charge(value.weight())?;
            super::write!(self, h, set_trace_state(item, value))
        }
        fn event_count(&mut self, h: H, item: u32) -> WResult<u32> {
            super::read!(self, h, event_count(item))
        }
        fn event_name(&mut self, h: H, item: u32, event: u32) -> WResult<String> {
            super::read!(self, h, event_name(item, event))
        }
        fn event_attributes(
            &mut self,
            h: H,
            item: u32,
            event: u32,
        ) -> WResult<Vec<$types::Attribute>> {
            super::read!(self, h, event_attributes(item, event) => super::attributes)
        }
        fn set_event_attribute(
            &mut self,
            h: H,
            item: u32,
            event: u32,
            key: String,
            value: $types::Value,
        ) -> WResult<()> {
            self.charge(key.weight() + value.weight())?;
            super::write!(
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
            super::write!(self, h, remove_sub_attribute(item, false, event, &key))
        }
        fn link_count(&mut self, h: H, item: u32) -> WResult<u32> {
            super::read!(self, h, link_count(item))
        }
        fn link_attributes(
            &mut self,
            h: H,
            item: u32,
            link: u32,
        ) -> WResult<Vec<$types::Attribute>> {
            super::read!(self, h, link_attributes(item, link) => super::attributes)
        }
        fn set_link_attribute(
            &mut self,
            h: H,
            item: u32,
            link: u32,
            key: String,
            value: $types::Value,
        ) -> WResult<()> {
            self.charge(key.weight() + value.weight())?;
            super::write!(
                self,
                h,
                set_sub_attribute(item, true, link, &key, value.into())
            )
        }
        fn remove_link_attribute(
            &mut self,
            h: H,
            item: u32,
            link: u32,
            key: String,
        ) -> WResult<bool> {
            super::write!(self, h, remove_sub_attribute(item, true, link, &key))
        }
        fn severity(&mut self, h: H, item: u32) -> WResult<(u8, String)> {
            super::read!(self, h, severity(item))
        }
        fn body(&mut self, h: H, item: u32) -> WResult<Option<$types::Value>> {
            super::read!(self, h, body(item) => super::value)
        }
        fn set_body(&mut self, h: H, item: u32, value: $types::Value) -> WResult<()> {
            self.charge(value.weight())?;
            super::write!(self, h, set_body(item, value.into()))
        }
        fn log_time(&mut self, h: H, item: u32) -> WResult<u64> {
            super::read!(self, h, log_time(item))
        }
        fn metric_name(&mut self, h: H, item: u32) -> WResult<String> {
            super::read!(self, h, metric_name(item))
        }
        fn metric_kind(&mut self, h: H, item: u32) -> WResult<$types::MetricKind> {
            super::read!(self, h, metric_kind(item) => Into::into)
        }
        fn point_count(&mut self, h: H, item: u32) -> WResult<u32> {
            super::read!(self, h, point_count(item))
        }
        fn point_value(&mut self, h: H, item: u32, point: u32) -> WResult<Option<f64>> {
            super::read!(self, h, point_value(item, point))
        }
        fn drop(&mut self, _h: H) -> WResult<()> {
            // Batches are only ever lent (borrowed); weir takes them back itself after the call.
            Ok(())
        }
    };
}

/// What interface 0.2 added to `batch`: scopes, any attribute list by location, bulk reads and
/// edits (0.2.0), and the tenant (0.2.1); invoked beside [`batch_methods!`].
macro_rules! batch_methods_since_0_2 {
    ($types:ident) => {
        fn tenant(&mut self, h: H) -> WResult<Option<String>> {
            Ok(self.batch(&h)?.tenant())
        }

        fn scope_count(&mut self, h: H) -> WResult<u32> {
            Ok(self.batch(&h)?.scope_count())
        }
        fn item_scope(&mut self, h: H, item: u32) -> WResult<u32> {
            super::read!(self, h, item_scope(item))
        }
        fn item_resources(&mut self, h: H) -> WResult<Vec<u32>> {
            Ok(self.batch(&h)?.item_resources())
        }
        fn scope_resource(&mut self, h: H, scope: u32) -> WResult<u32> {
            super::read!(self, h, scope_resource(scope))
        }
        fn scope_info(&mut self, h: H, scope: u32) -> WResult<(String, String)> {
            super::read!(self, h, scope_info(scope))
        }
        fn get(
            &mut self,
            h: H,
            at: $types::Location,
            key: String,
        ) -> WResult<Option<$types::Value>> {
            super::read!(self, h, get(at.into(), &key) => |v| v.as_ref().map(Into::into))
        }
        fn read(
            &mut self,
            h: H,
            lists: $types::Lists,
            key: Option<String>,
        ) -> WResult<$types::AttributeTable> {
            let (data, entries) = self.batch(&h)?.read(lists.into(), key.as_deref());
            Ok($types::AttributeTable { data, entries })
        }
        fn edit(&mut self, h: H, edits: Vec<$types::AttributeEdit>) -> WResult<()> {
            self.charge(edits.weight())?;
            super::write!(self, h, edit(edits.into_iter().map(Into::into)))
        }
        fn drop_items(&mut self, h: H, items: Vec<u32>) -> WResult<()> {
            super::write!(self, h, drop_items(&items))
        }
        fn trace_states(&mut self, h: H) -> WResult<$types::StringList> {
            Ok(self.batch(&h)?.trace_states().into())
        }
        fn set_trace_states(&mut self, h: H, states: Vec<(u32, String)>) -> WResult<()> {
            self.charge(states.weight())?;
            super::write!(self, h, set_trace_states(states))
        }
        fn set_item_routes(
            &mut self,
            h: H,
            items: Vec<u32>,
            exporters: Vec<String>,
        ) -> WResult<()> {
            self.charge(items.weight() + exporters.weight())?;
            super::write!(self, h, set_item_routes(&items, exporters))
        }
    };
}

/// The `kernels` interface of 0.2 on (pattern sets, redaction, SHA-256), with what its types
/// weigh, for the generated `types` and `kernels` modules named; invoked at the top level of a
/// version's module. `pattern_set: { ... }` adds the methods a later version gives `pattern-set`.
macro_rules! kernels_since_0_2 {
    ($types:ident, $kernels:ident $(, pattern_set: { $($pattern_set:tt)* })?) => {
        impl Weight for $types::AttributeEdit {
            fn weight(&self) -> usize {
                let op = match &self.op {
                    $types::EditOp::Set(v) => v.weight(),
                    $types::EditOp::Remove => 0,
                };
                self.key.len() + op + 16
            }
        }

        impl Weight for $kernels::PatternMatch {
            fn weight(&self) -> usize {
                self.key.len() + 32
            }
        }

        impl Weight for $kernels::Rewrite {
            fn weight(&self) -> usize {
                match self {
                    $kernels::Rewrite::Mask(m) => m.len(),
                    $kernels::Rewrite::Hash(salt) => salt.len(),
                    $kernels::Rewrite::Remove => 0,
                }
            }
        }

        impl $kernels::Host for StoreState {
            fn redact(
                &mut self,
                h: H,
                matches: Vec<$kernels::PatternMatch>,
                how: $kernels::Rewrite,
            ) -> WResult<u32> {
                // What the guest hands over is charged like any other call's (the matches name
                // keys, and the rewrite makes new values), and the CPU budget bounds the
                // rewriting from inside.
                self.charge(matches.weight() + how.weight())?;
                let matches: Vec<$crate::batch::bulk::Match> =
                    matches.into_iter().map(Into::into).collect();
                let how = how.into();
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

        impl $kernels::HostPatternSet for StoreState {
            fn compile(&mut self, spec: $kernels::PatternSpec) -> WResult<Result<P, String>> {
                if self.pattern_sets >= MAX_PATTERN_SETS {
                    return Ok(Err(format!(
                        "an instance may hold at most {MAX_PATTERN_SETS} pattern sets"
                    )));
                }
                let spec = spec.into();
                let set = match self.patterns.get(&spec) {
                    Ok(set) => set,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                self.pattern_sets += 1;
                Ok(Ok(self
                    .table
                    .push($crate::kernels::PatternSetHandle { set })?))
            }
            fn scan(
                &mut self,
                p: P,
                h: H,
                lists: $types::Lists,
            ) -> WResult<Vec<$kernels::PatternMatch>> {
                let set = self.table.get(&p)?.set.clone();
                Ok(self.batch(&h)?.scan(&set, lists.into()))
            }
            fn find(&mut self, p: P, text: String) -> WResult<Vec<$kernels::PatternMatch>> {
                let set = self.table.get(&p)?.set.clone();
                Ok($crate::kernels::find(&set, &text))
            }
            fn drop(&mut self, p: P) -> WResult<()> {
                self.table.delete(p)?;
                self.pattern_sets = self.pattern_sets.saturating_sub(1);
                Ok(())
            }
            $($($pattern_set)*)?
        }
    };
}

/// The host functions interface 0.2 added (the state shared by a filter's instances); invoked
/// inside `host_functions!`.
macro_rules! host_functions_since_0_2 {
    () => {
        fn shared_add(&mut self, name: String, delta: i64) -> WResult<i64> {
            let r = self.shared.add(&name, delta);
            self.bad(r)
        }
        fn shared_rate(&mut self, name: String, events: u64, window_ms: u32) -> WResult<f64> {
            let r = self.shared.rate(&name, events, window_ms);
            self.bad(r)
        }
    };
}

pub(crate) use {
    batch_methods, batch_methods_since_0_2, host_functions_since_0_2, kernels_since_0_2,
};
