//! Write [weir](https://example.invalid/weir) filters in Rust.
//!
//! A filter is a type that implements [`Filter`]; [`export_filter!`] turns it into the exports weir calls.
//! weir lends the filter one batch of one signal at a time through a [`Batch`] handle: reading a trace id
//! does not copy attributes, and changes are made in place on weir's side. [`Batch::spans`],
//! [`Batch::log_records`], [`Batch::metric_views`] and [`Batch::profile_views`] give typed views
//! ([`SpanView`], [`LogView`], [`MetricView`], [`ProfileView`]); the index-based methods of [`Batch`] are the same calls without the view, and
//! [`Batch::trace_ids`] reads every trace id in one call.
//!
//! ```ignore
//! use weir_guest_sdk::{export_filter, Batch, Filter, Verdict};
//!
//! /// Tags every span with the deployment it passed through, and drops health checks.
//! #[derive(Default)]
//! struct Tagger {
//!     zone: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     zone: String,
//! }
//!
//! impl Filter for Tagger {
//!     fn init(config: &str) -> Result<Self, String> {
//!         let c: Config = weir_guest_sdk::parse_config(config)?;
//!         Ok(Tagger { zone: c.zone })
//!     }
//!
//!     fn traces(&mut self, batch: &Batch) -> Verdict {
//!         for span in batch.spans() {
//!             if span.name() == "GET /healthz" {
//!                 span.drop_item();
//!                 continue;
//!             }
//!             span.set_attribute("edge.zone", self.zone.as_str());
//!         }
//!         Verdict::Continue
//!     }
//! }
//!
//! export_filter!(Tagger);
//! ```
//!
//! Build it for `wasm32-unknown-unknown` as a `cdylib`; weir accepts the core module
//! and makes it a component when it loads it. `filters/build.sh` in the weir repository builds every
//! filter there.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/0.3.1",
        world: "profiles-filter",
        pub_export_macro: true,
        export_macro_name: "__export_filter_world",
        default_bindings_module: "weir_guest_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

use std::cell::RefCell;

pub use bindings::weir::filter::host;
pub use bindings::weir::filter::types::{
    Attribute, AttributeEdit, AttributeEntry, AttributeTable, Batch, EditOp, Lists, Location,
    MetricKind, Part, Signal, StatusCode, StringList, TraceId, Value, ValueKind, Verdict,
};

/// Work weir does natively: pattern sets (regular expressions and detectors of secrets and personal
/// data) compiled once and run over the batch by the host, redaction of what they found, SHA-256.
///
/// ```ignore
/// use weir_guest_sdk::kernels::{Detector, PatternSet, PatternSpec, Rewrite, redact};
/// use weir_guest_sdk::Lists;
///
/// let set = PatternSet::compile(&PatternSpec {
///     detectors: vec![Detector::Email],
///     value_patterns: vec![],
///     key_names: vec!["password".into()],
///     key_patterns: vec![],
///     allow_keys: None,
/// })?;
/// // In `traces`: only the matches cross into the filter.
/// let found = set.scan(batch, Lists::RESOURCES | Lists::ITEMS);
/// redact(batch, &found, &Rewrite::Mask("****".into()));
/// ```
pub mod kernels {
    pub use super::bindings::weir::filter::kernels::{
        Detector, PatternMatch, PatternSet, PatternSpec, Redacted, Rewrite, Rule, Touched, redact,
        sha256,
    };
}

/// A weir filter. Every method has a default that lets the batch through unchanged.
///
/// One instance of the type lives in each Wasm instance weir creates, and weir reuses instances, so
/// fields can keep state between batches (a rate estimate, a cache). weir may run several instances of a
/// filter at once, each with its own state.
pub trait Filter: Sized + 'static {
    /// Builds the filter from its configuration: the JSON text of the `config` weir was given, or an
    /// empty string. An error refuses the filter (at push time, before it ever sees data).
    fn init(config: &str) -> Result<Self, String>;

    /// A batch of spans.
    fn traces(&mut self, batch: &Batch) -> Verdict {
        let _ = batch;
        Verdict::Continue
    }

    /// A batch of metrics.
    fn metrics(&mut self, batch: &Batch) -> Verdict {
        let _ = batch;
        Verdict::Continue
    }

    /// A batch of log records.
    fn logs(&mut self, batch: &Batch) -> Verdict {
        let _ = batch;
        Verdict::Continue
    }

    /// A batch of profiles (alpha: OTLP `v1development`). Its items are profiles: read their sample
    /// count and type ([`ProfileView`]), set resource and scope attributes, drop or route them.
    fn profiles(&mut self, batch: &Batch) -> Verdict {
        let _ = batch;
        Verdict::Continue
    }
}

/// Parses a JSON configuration into `T`; an empty configuration parses as `{}`.
#[cfg(feature = "config")]
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(text).map_err(|e| format!("invalid filter config: {e}"))
}

impl Batch {
    /// Item indices, `0..item_count()`.
    pub fn items(&self) -> std::ops::Range<u32> {
        0..self.item_count()
    }

    /// Resource indices, `0..resource_count()`.
    pub fn resources(&self) -> std::ops::Range<u32> {
        0..self.resource_count()
    }
}

impl Batch {
    /// Every attribute of the lists selected, in one call and one buffer: iterate it with
    /// [`Table::iter`], which borrows keys and values from the buffer.
    pub fn table(&self, lists: Lists) -> Table {
        Table(self.read(lists, None))
    }

    /// One key across the lists selected (for example every span's `http.route`), in one call.
    pub fn column(&self, lists: Lists, key: &str) -> Table {
        Table(self.read(lists, Some(key)))
    }

    /// Sets one attribute at any location (a scope, a metric data point, an event, ...).
    pub fn set_at(&self, at: Location, key: &str, value: impl Into<Value>) {
        self.edit(&[AttributeEdit {
            at,
            key: key.to_string(),
            op: EditOp::Set(value.into()),
        }]);
    }

    /// Removes one attribute at any location.
    pub fn remove_at(&self, at: Location, key: &str) {
        self.edit(&[AttributeEdit {
            at,
            key: key.to_string(),
            op: EditOp::Remove,
        }]);
    }
}

/// Many attributes in one buffer, as [`Batch::table`] and [`Batch::column`] return them.
pub struct Table(pub AttributeTable);

/// A value borrowed from a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// A string.
    Str(&'a str),
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Bytes.
    Bytes(&'a [u8]),
    /// An array or map, as OTLP/JSON.
    Json(&'a str),
}

impl<'a> ValueRef<'a> {
    /// The value as text, for matching: strings and JSON as they are (borrowed from the table), numbers
    /// and booleans formatted.
    pub fn text(&self) -> std::borrow::Cow<'a, str> {
        match *self {
            ValueRef::Str(s) | ValueRef::Json(s) => std::borrow::Cow::Borrowed(s),
            ValueRef::Boolean(b) => b.to_string().into(),
            ValueRef::Int(i) => i.to_string().into(),
            ValueRef::Double(d) => d.to_string().into(),
            ValueRef::Bytes(b) => String::from_utf8_lossy(b),
        }
    }
}

impl Table {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    /// Each entry's location, key and value, in batch order.
    pub fn iter(&self) -> impl Iterator<Item = (Location, &str, ValueRef<'_>)> {
        let data = &self.0.data[..];
        let text = |start: u32, len: u32| {
            let b = data
                .get(start as usize..(start as usize).saturating_add(len as usize))
                .unwrap_or(&[]);
            std::str::from_utf8(b).unwrap_or("")
        };
        self.0.entries.iter().map(move |e| {
            let value = match e.kind {
                ValueKind::Str => ValueRef::Str(text(e.start, e.len)),
                ValueKind::Json => ValueRef::Json(text(e.start, e.len)),
                ValueKind::Bytes => ValueRef::Bytes(
                    data.get(e.start as usize..(e.start + e.len) as usize)
                        .unwrap_or(&[]),
                ),
                ValueKind::Boolean => ValueRef::Boolean(e.number != 0),
                ValueKind::Int => ValueRef::Int(e.number as i64),
                ValueKind::Double => ValueRef::Double(f64::from_bits(e.number)),
            };
            (e.at, text(e.key_start, e.key_len), value)
        })
    }
}

impl StringList {
    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True without strings.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// String `i`, borrowed from the buffer (empty past the end).
    pub fn get(&self, i: usize) -> &str {
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start as usize..end as usize).unwrap_or("")
    }

    /// Every string, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl Batch {
    /// The spans of a traces batch, as typed views.
    pub fn spans(&self) -> impl Iterator<Item = SpanView<'_>> {
        self.items()
            .map(move |index| SpanView { batch: self, index })
    }

    /// The log records of a logs batch, as typed views.
    pub fn log_records(&self) -> impl Iterator<Item = LogView<'_>> {
        self.items()
            .map(move |index| LogView { batch: self, index })
    }

    /// The metrics of a metrics batch, as typed views.
    pub fn metric_views(&self) -> impl Iterator<Item = MetricView<'_>> {
        self.items()
            .map(move |index| MetricView { batch: self, index })
    }

    /// The profiles of a profiles batch, as typed views.
    pub fn profile_views(&self) -> impl Iterator<Item = ProfileView<'_>> {
        self.items()
            .map(move |index| ProfileView { batch: self, index })
    }
}

/// One profile of a profiles batch. Its own attributes are indices into the request's dictionary and
/// are not offered; its resource's and scope's attributes are (`Batch::resource_attribute`,
/// [`Location::Scope`]).
#[derive(Clone, Copy)]
pub struct ProfileView<'a> {
    batch: &'a Batch,
    index: u32,
}

impl ProfileView<'_> {
    /// The profile's index in the batch.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The index of the profile's resource.
    pub fn resource(&self) -> u32 {
        self.batch.item_resource(self.index)
    }

    /// The index of the profile's scope.
    pub fn scope(&self) -> u32 {
        self.batch.item_scope(self.index)
    }

    /// The number of samples.
    pub fn sample_count(&self) -> u32 {
        self.batch.profile_sample_count(self.index)
    }

    /// The sample type and its unit, such as (`cpu`, `nanoseconds`); empty when not set.
    pub fn sample_type(&self) -> (String, String) {
        self.batch.profile_sample_type(self.index)
    }

    /// Drops the profile: it is not forwarded.
    pub fn drop_item(&self) {
        self.batch.drop_item(self.index);
    }

    /// Routes the profile to these exporters only (replaces earlier labels).
    pub fn route_to(&self, exporters: &[String]) {
        self.batch.set_item_route(self.index, exporters);
    }
}

/// Methods every item view shares: index, attributes, resource, drop.
macro_rules! item_view {
    ($view:ident, $what:literal) => {
        #[doc = concat!("One ", $what, " of a batch. Reads go to weir on demand; writes change weir's copy.")]
        #[derive(Clone, Copy)]
        pub struct $view<'a> {
            batch: &'a Batch,
            index: u32,
        }

        impl<'a> $view<'a> {
            /// The item's index in the batch.
            pub fn index(&self) -> u32 {
                self.index
            }

            /// The index of the item's resource.
            pub fn resource(&self) -> u32 {
                self.batch.item_resource(self.index)
            }

            /// One attribute.
            pub fn attribute(&self, key: &str) -> Option<Value> {
                self.batch.attribute(self.index, key)
            }

            /// Every attribute (copies them; prefer `attribute` for one key).
            pub fn attributes(&self) -> Vec<Attribute> {
                self.batch.attributes(self.index)
            }

            /// Sets (adds or replaces) an attribute.
            pub fn set_attribute(&self, key: &str, value: impl Into<Value>) {
                self.batch.set_attribute(self.index, key, &value.into());
            }

            /// Removes an attribute; true when it existed.
            pub fn remove_attribute(&self, key: &str) -> bool {
                self.batch.remove_attribute(self.index, key)
            }

            /// Drops the item: it is not forwarded.
            pub fn drop_item(&self) {
                self.batch.drop_item(self.index);
            }

            /// Routes the item to these exporters only (replaces earlier labels). Names must be
            /// exporters of weir's configuration: check them in `init` against [`exporters`].
            pub fn route_to(&self, exporters: &[String]) {
                self.batch.set_item_route(self.index, exporters);
            }
        }
    };
}

item_view!(SpanView, "span");
item_view!(LogView, "log record");
item_view!(MetricView, "metric");

impl SpanView<'_> {
    /// The span's name.
    pub fn name(&self) -> String {
        self.batch.span_name(self.index)
    }

    /// Renames the span.
    pub fn set_name(&self, name: &str) {
        self.batch.set_span_name(self.index, name);
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.batch.trace_id(self.index)
    }

    /// The span id.
    pub fn span_id(&self) -> u64 {
        self.batch.span_id(self.index)
    }

    /// The parent span id, 0 for a root span.
    pub fn parent_span_id(&self) -> u64 {
        self.batch.parent_span_id(self.index)
    }

    /// The OTLP span kind (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub fn kind(&self) -> u8 {
        self.batch.span_kind(self.index)
    }

    /// Status code and message.
    pub fn status(&self) -> (StatusCode, String) {
        self.batch.span_status(self.index)
    }

    /// Start and end, nanoseconds since the Unix epoch.
    pub fn times(&self) -> (u64, u64) {
        self.batch.span_times(self.index)
    }

    /// The W3C tracestate.
    pub fn trace_state(&self) -> String {
        self.batch.trace_state(self.index)
    }

    /// Replaces the W3C tracestate.
    pub fn set_trace_state(&self, value: &str) {
        self.batch.set_trace_state(self.index, value);
    }

    /// The span's events.
    pub fn events(&self) -> impl Iterator<Item = SubView<'_>> {
        let n = self.batch.event_count(self.index);
        (0..n).map(move |i| SubView {
            batch: self.batch,
            item: self.index,
            index: i,
            link: false,
        })
    }

    /// The span's links.
    pub fn links(&self) -> impl Iterator<Item = SubView<'_>> {
        let n = self.batch.link_count(self.index);
        (0..n).map(move |i| SubView {
            batch: self.batch,
            item: self.index,
            index: i,
            link: true,
        })
    }
}

/// One event or link of a span: its attributes.
#[derive(Clone, Copy)]
pub struct SubView<'a> {
    batch: &'a Batch,
    item: u32,
    index: u32,
    link: bool,
}

impl SubView<'_> {
    /// True for a link, false for an event.
    pub fn is_link(&self) -> bool {
        self.link
    }

    /// The event's name (empty for a link).
    pub fn name(&self) -> String {
        if self.link {
            String::new()
        } else {
            self.batch.event_name(self.item, self.index)
        }
    }

    /// Every attribute.
    pub fn attributes(&self) -> Vec<Attribute> {
        if self.link {
            self.batch.link_attributes(self.item, self.index)
        } else {
            self.batch.event_attributes(self.item, self.index)
        }
    }

    /// Sets (adds or replaces) an attribute.
    pub fn set_attribute(&self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        if self.link {
            self.batch
                .set_link_attribute(self.item, self.index, key, &value);
        } else {
            self.batch
                .set_event_attribute(self.item, self.index, key, &value);
        }
    }

    /// Removes an attribute; true when it existed.
    pub fn remove_attribute(&self, key: &str) -> bool {
        if self.link {
            self.batch.remove_link_attribute(self.item, self.index, key)
        } else {
            self.batch
                .remove_event_attribute(self.item, self.index, key)
        }
    }
}

impl LogView<'_> {
    /// Severity number (0..24) and text.
    pub fn severity(&self) -> (u8, String) {
        self.batch.severity(self.index)
    }

    /// The body.
    pub fn body(&self) -> Option<Value> {
        self.batch.body(self.index)
    }

    /// Replaces the body.
    pub fn set_body(&self, value: impl Into<Value>) {
        self.batch.set_body(self.index, &value.into());
    }

    /// The trace id (zero when the record has none).
    pub fn trace_id(&self) -> TraceId {
        self.batch.trace_id(self.index)
    }

    /// Event time (or observed time), nanoseconds since the Unix epoch.
    pub fn time(&self) -> u64 {
        self.batch.log_time(self.index)
    }
}

impl MetricView<'_> {
    /// The metric's name.
    pub fn name(&self) -> String {
        self.batch.metric_name(self.index)
    }

    /// Gauge, sum, histogram...
    pub fn kind(&self) -> MetricKind {
        self.batch.metric_kind(self.index)
    }

    /// Number of data points.
    pub fn point_count(&self) -> u32 {
        self.batch.point_count(self.index)
    }

    /// A gauge or sum data point's value.
    pub fn point_value(&self, point: u32) -> Option<f64> {
        self.batch.point_value(self.index, point)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Self {
        v.clone()
    }
}

impl TraceId {
    /// The trace id's 16 bytes.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.high.to_be_bytes());
        b[8..].copy_from_slice(&self.low.to_be_bytes());
        b
    }

    /// True for the all-zero (absent) trace id.
    pub fn is_zero(&self) -> bool {
        self.high == 0 && self.low == 0
    }
}

/// The exporter names weir is configured with: the valid route labels. Empty when weir does not know
/// them (`weir filter test` without a configuration); skip name checks then.
pub fn exporters() -> Vec<String> {
    host::exporters()
}

/// Writes a line into weir's log at info level, tagged with the filter's name.
pub fn log(message: &str) {
    host::log(host::Level::Info, message);
}

#[doc(hidden)]
pub mod __private {
    pub use super::bindings::Guest;
    use super::*;

    thread_local! {
        static STATE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    pub fn init<F: Filter>(config: String) -> Result<(), String> {
        let f = F::init(&config)?;
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(f)));
        Ok(())
    }

    pub fn process<F: Filter>(signal: Signal, batch: &Batch) -> Verdict {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some(f) = s.as_mut().and_then(|f| f.downcast_mut::<F>()) else {
                return Verdict::Reject("filter called before init".into());
            };
            match signal {
                Signal::Traces => f.traces(batch),
                Signal::Metrics => f.metrics(batch),
                Signal::Logs => f.logs(batch),
                Signal::Profiles => f.profiles(batch),
            }
        })
    }
}

/// Exports a [`Filter`] implementation as the filter's Wasm exports. Use it once per filter crate.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        #[doc(hidden)]
        pub struct __WeirFilter;

        impl $crate::__private::Guest for __WeirFilter {
            fn init(config: String) -> Result<(), String> {
                $crate::__private::init::<$filter>(config)
            }
            fn process_traces(batch: &$crate::Batch) -> $crate::Verdict {
                $crate::__private::process::<$filter>($crate::Signal::Traces, batch)
            }
            fn process_metrics(batch: &$crate::Batch) -> $crate::Verdict {
                $crate::__private::process::<$filter>($crate::Signal::Metrics, batch)
            }
            fn process_logs(batch: &$crate::Batch) -> $crate::Verdict {
                $crate::__private::process::<$filter>($crate::Signal::Logs, batch)
            }
            fn process_profiles(batch: &$crate::Batch) -> $crate::Verdict {
                $crate::__private::process::<$filter>($crate::Signal::Profiles, batch)
            }
        }

        $crate::bindings::__export_filter_world!(__WeirFilter with_types_in $crate::bindings);
    };
}
