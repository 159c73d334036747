//! The four OTLP signals and a decoded request of any of them. Profiles are alpha in OTLP
//! (`v1development`): see [`crate::profiles`].

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    profiles::v1development::ExportProfilesServiceRequest, trace::v1::ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::profiles::v1development::{ResourceProfiles, ScopeProfiles};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

/// An OTLP signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
    /// Profiles, counted by their samples (alpha: OTLP `v1development`).
    Profiles,
}

impl Signal {
    /// All signals, in a fixed order.
    pub const ALL: [Signal; 4] = [
        Signal::Traces,
        Signal::Metrics,
        Signal::Logs,
        Signal::Profiles,
    ];

    /// Its position in [`Signal::ALL`], for tables indexed by signal.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// `traces`, `metrics`, `logs` or `profiles`: the label value and the config's pipeline name.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Profiles => "profiles",
        }
    }

    /// The OTLP/HTTP path of the export call.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
            Signal::Profiles => "/v1development/profiles",
        }
    }

    /// The partial-success field that counts this signal's rejected items, in OTLP/JSON.
    pub fn rejected_field(self) -> &'static str {
        match self {
            Signal::Traces => "rejectedSpans",
            Signal::Metrics => "rejectedDataPoints",
            Signal::Logs => "rejectedLogRecords",
            Signal::Profiles => "rejectedProfiles",
        }
    }

    /// True for a signal that OTLP has not declared stable yet.
    pub fn is_alpha(self) -> bool {
        self == Signal::Profiles
    }

    /// What one item of this signal is called in logs.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
            Signal::Profiles => "samples",
        }
    }

    /// The gRPC method path of the OTLP export call.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Profiles => {
                "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
            }
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded OTLP export request.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `ExportTraceServiceRequest`.
    Traces(ExportTraceServiceRequest),
    /// `ExportMetricsServiceRequest`.
    Metrics(ExportMetricsServiceRequest),
    /// `ExportLogsServiceRequest`.
    Logs(ExportLogsServiceRequest),
    /// `ExportProfilesServiceRequest`.
    Profiles(ExportProfilesServiceRequest),
}

impl Payload {
    /// Which signal this is.
    pub fn signal(&self) -> Signal {
        match self {
            Payload::Traces(_) => Signal::Traces,
            Payload::Metrics(_) => Signal::Metrics,
            Payload::Logs(_) => Signal::Logs,
            Payload::Profiles(_) => Signal::Profiles,
        }
    }

    /// An empty request of `signal`.
    pub fn empty(signal: Signal) -> Self {
        match signal {
            Signal::Traces => Payload::Traces(Default::default()),
            Signal::Metrics => Payload::Metrics(Default::default()),
            Signal::Logs => Payload::Logs(Default::default()),
            Signal::Profiles => Payload::Profiles(Default::default()),
        }
    }

    /// Decodes protobuf bytes as the request type of `signal`.
    pub fn decode_protobuf(signal: Signal, bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Ok(match signal {
            Signal::Traces => Payload::Traces(Message::decode(bytes)?),
            Signal::Metrics => Payload::Metrics(Message::decode(bytes)?),
            Signal::Logs => Payload::Logs(Message::decode(bytes)?),
            Signal::Profiles => Payload::Profiles(Message::decode(bytes)?),
        })
    }

    /// Decodes the OTLP/JSON mapping (hex ids, integer enums, lowerCamelCase, 64-bit integers as
    /// strings or numbers, unknown fields ignored).
    pub fn decode_json(signal: Signal, bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match signal {
            Signal::Traces => Payload::Traces(serde_json::from_slice(bytes)?),
            Signal::Metrics => Payload::Metrics(serde_json::from_slice(bytes)?),
            Signal::Logs => Payload::Logs(serde_json::from_slice(bytes)?),
            Signal::Profiles => Payload::Profiles(crate::profiles::decode_json(bytes)?),
        })
    }

    /// Keeps the items (spans, metrics, log records, profiles, numbered in payload order) for which
    /// `keep` is true, and drops scopes and resources left empty. A profiles request keeps its whole
    /// dictionary.
    pub fn retain_items(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let mut i = 0;
        let mut keep = move || {
            let k = keep(i);
            i += 1;
            k
        };
        match self {
            Payload::Traces(r) => {
                for rs in &mut r.resource_spans {
                    for ss in &mut rs.scope_spans {
                        ss.spans.retain(|_| keep());
                    }
                    rs.scope_spans.retain(|s| !s.spans.is_empty());
                }
                r.resource_spans.retain(|r| !r.scope_spans.is_empty());
            }
            Payload::Metrics(r) => {
                for rm in &mut r.resource_metrics {
                    for sm in &mut rm.scope_metrics {
                        sm.metrics.retain(|_| keep());
                    }
                    rm.scope_metrics.retain(|s| !s.metrics.is_empty());
                }
                r.resource_metrics.retain(|r| !r.scope_metrics.is_empty());
            }
            Payload::Logs(r) => {
                for rl in &mut r.resource_logs {
                    for sl in &mut rl.scope_logs {
                        sl.log_records.retain(|_| keep());
                    }
                    rl.scope_logs.retain(|s| !s.log_records.is_empty());
                }
                r.resource_logs.retain(|r| !r.scope_logs.is_empty());
            }
            Payload::Profiles(r) => {
                for rp in &mut r.resource_profiles {
                    for sp in &mut rp.scope_profiles {
                        sp.profiles.retain(|_| keep());
                    }
                    rp.scope_profiles.retain(|s| !s.profiles.is_empty());
                }
                r.resource_profiles.retain(|r| !r.scope_profiles.is_empty());
            }
        }
    }

    /// A copy of the items `keep` accepts (by index, in order) with their resources and scopes; the
    /// others are not copied. Resources and scopes left without items are dropped.
    pub fn select_items(&self, mut keep: impl FnMut(usize) -> bool) -> Self {
        let mut i = 0;
        let mut keep = move || {
            let k = keep(i);
            i += 1;
            k
        };
        // Explicit struct literals: a field added upstream must be copied here, not silently defaulted.
        match self {
            Payload::Traces(r) => Payload::Traces(ExportTraceServiceRequest {
                resource_spans: r
                    .resource_spans
                    .iter()
                    .filter_map(|rs| {
                        let scope_spans: Vec<_> = rs
                            .scope_spans
                            .iter()
                            .filter_map(|ss| {
                                let spans: Vec<_> =
                                    ss.spans.iter().filter(|_| keep()).cloned().collect();
                                (!spans.is_empty()).then(|| ScopeSpans {
                                    scope: ss.scope.clone(),
                                    spans,
                                    schema_url: ss.schema_url.clone(),
                                })
                            })
                            .collect();
                        (!scope_spans.is_empty()).then(|| ResourceSpans {
                            resource: rs.resource.clone(),
                            scope_spans,
                            schema_url: rs.schema_url.clone(),
                        })
                    })
                    .collect(),
            }),
            Payload::Metrics(r) => Payload::Metrics(ExportMetricsServiceRequest {
                resource_metrics: r
                    .resource_metrics
                    .iter()
                    .filter_map(|rm| {
                        let scope_metrics: Vec<_> = rm
                            .scope_metrics
                            .iter()
                            .filter_map(|sm| {
                                let metrics: Vec<_> =
                                    sm.metrics.iter().filter(|_| keep()).cloned().collect();
                                (!metrics.is_empty()).then(|| ScopeMetrics {
                                    scope: sm.scope.clone(),
                                    metrics,
                                    schema_url: sm.schema_url.clone(),
                                })
                            })
                            .collect();
                        (!scope_metrics.is_empty()).then(|| ResourceMetrics {
                            resource: rm.resource.clone(),
                            scope_metrics,
                            schema_url: rm.schema_url.clone(),
                        })
                    })
                    .collect(),
            }),
            Payload::Logs(r) => Payload::Logs(ExportLogsServiceRequest {
                resource_logs: r
                    .resource_logs
                    .iter()
                    .filter_map(|rl| {
                        let scope_logs: Vec<_> = rl
                            .scope_logs
                            .iter()
                            .filter_map(|sl| {
                                let log_records: Vec<_> =
                                    sl.log_records.iter().filter(|_| keep()).cloned().collect();
                                (!log_records.is_empty()).then(|| ScopeLogs {
                                    scope: sl.scope.clone(),
                                    log_records,
                                    schema_url: sl.schema_url.clone(),
                                })
                            })
                            .collect();
                        (!scope_logs.is_empty()).then(|| ResourceLogs {
                            resource: rl.resource.clone(),
                            scope_logs,
                            schema_url: rl.schema_url.clone(),
                        })
                    })
                    .collect(),
            }),
            Payload::Profiles(r) => Payload::Profiles(ExportProfilesServiceRequest {
                resource_profiles: r
                    .resource_profiles
                    .iter()
                    .filter_map(|rp| {
                        let scope_profiles: Vec<_> = rp
                            .scope_profiles
                            .iter()
                            .filter_map(|sp| {
                                let profiles: Vec<_> =
                                    sp.profiles.iter().filter(|_| keep()).cloned().collect();
                                (!profiles.is_empty()).then(|| ScopeProfiles {
                                    scope: sp.scope.clone(),
                                    profiles,
                                    schema_url: sp.schema_url.clone(),
                                })
                            })
                            .collect();
                        (!scope_profiles.is_empty()).then(|| ResourceProfiles {
                            resource: rp.resource.clone(),
                            scope_profiles,
                            schema_url: rp.schema_url.clone(),
                        })
                    })
                    .collect(),
                dictionary: r.dictionary.clone(),
            }),
        }
    }

    /// Encodes as protobuf.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        match self {
            Payload::Traces(r) => r.encode_to_vec(),
            Payload::Metrics(r) => r.encode_to_vec(),
            Payload::Logs(r) => r.encode_to_vec(),
            Payload::Profiles(r) => r.encode_to_vec(),
        }
    }

    /// The size of the protobuf encoding, without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Payload::Traces(r) => r.encoded_len(),
            Payload::Metrics(r) => r.encoded_len(),
            Payload::Logs(r) => r.encoded_len(),
            Payload::Profiles(r) => r.encoded_len(),
        }
    }

    /// Encodes as OTLP/JSON.
    pub fn encode_json(&self) -> Vec<u8> {
        let r = match self {
            Payload::Traces(r) => serde_json::to_vec(r),
            Payload::Metrics(r) => serde_json::to_vec(r),
            Payload::Logs(r) => serde_json::to_vec(r),
            Payload::Profiles(r) => Ok(crate::profiles::encode_json(r)),
        };
        // Serializing plain data structures into a Vec cannot fail.
        r.unwrap_or_default()
    }

    /// The first trace, span or profile id of another length than the data model's (16, 8 and 16
    /// bytes, or empty), as the walk refuses it in protobuf ([`crate::walk::WalkError::InvalidId`]),
    /// and the first profiles dictionary index that points nowhere
    /// ([`crate::walk::WalkError::InvalidIndex`]); for requests decoded from JSON, whose hex ids can
    /// have any length.
    pub fn check_ids(&self) -> Result<(), crate::walk::WalkError> {
        fn id(what: &'static str, want: u8, v: &[u8]) -> Result<(), crate::walk::WalkError> {
            if v.is_empty() || v.len() == usize::from(want) {
                Ok(())
            } else {
                Err(crate::walk::WalkError::InvalidId {
                    what,
                    want,
                    got: v.len() as u64,
                })
            }
        }
        let trace = |v: &[u8]| id("trace id", 16, v);
        let span = |v: &[u8]| id("span id", 8, v);
        let exemplars = |e: &[opentelemetry_proto::tonic::metrics::v1::Exemplar]| {
            e.iter().try_for_each(|e| {
                trace(&e.trace_id)?;
                span(&e.span_id)
            })
        };
        match self {
            Payload::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .try_for_each(|s| {
                    trace(&s.trace_id)?;
                    span(&s.span_id)?;
                    span(&s.parent_span_id)?;
                    s.links.iter().try_for_each(|l| {
                        trace(&l.trace_id)?;
                        span(&l.span_id)
                    })
                }),
            Payload::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
                .try_for_each(|l| {
                    trace(&l.trace_id)?;
                    span(&l.span_id)
                }),
            Payload::Metrics(r) => {
                use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                r.resource_metrics
                    .iter()
                    .flat_map(|r| &r.scope_metrics)
                    .flat_map(|s| &s.metrics)
                    .try_for_each(|m| match &m.data {
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter()
                            .try_for_each(|p| exemplars(&p.exemplars)),
                        Some(Data::Sum(g)) => g
                            .data_points
                            .iter()
                            .try_for_each(|p| exemplars(&p.exemplars)),
                        Some(Data::Histogram(g)) => g
                            .data_points
                            .iter()
                            .try_for_each(|p| exemplars(&p.exemplars)),
                        Some(Data::ExponentialHistogram(g)) => g
                            .data_points
                            .iter()
                            .try_for_each(|p| exemplars(&p.exemplars)),
                        Some(Data::Summary(_)) | None => Ok(()),
                    })
            }
            // The walk checks a profiles request's ids and dictionary indices: the same walk over
            // this request's encoding.
            Payload::Profiles(r) => {
                crate::walk::walk(Signal::Profiles, &r.encode_to_vec()).map(|_| ())
            }
        }
    }

    /// Whether every trace and span id has the data model's length (see [`Payload::check_ids`]).
    pub fn ids_are_valid(&self) -> bool {
        self.check_ids().is_ok()
    }

    /// Number of items: spans, metric data points, log records or profile samples.
    pub fn item_count(&self) -> usize {
        match self {
            Payload::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum(),
            Payload::Metrics(r) => r
                .resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .map(|m| data_points(m.data.as_ref()))
                .sum(),
            Payload::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .map(|sl| sl.log_records.len())
                .sum(),
            Payload::Profiles(r) => crate::profiles::sample_count(r),
        }
    }

    /// Number of resources in the request.
    pub fn resource_count(&self) -> usize {
        match self {
            Payload::Traces(r) => r.resource_spans.len(),
            Payload::Metrics(r) => r.resource_metrics.len(),
            Payload::Logs(r) => r.resource_logs.len(),
            Payload::Profiles(r) => r.resource_profiles.len(),
        }
    }
}

/// Data points of one metric, as the OTLP partial-success counts them.
pub fn data_points(data: Option<&Data>) -> usize {
    match data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

#[cfg(test)]
mod tests;
