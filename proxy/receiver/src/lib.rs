//! Receivers: one seam for every kind ([`kind`]: `otlp`, named in [`registry`]). The `otlp` kind's
//! gRPC ([`grpc`]) and HTTP ([`http`]) servers decode requests within the configured limits, hand a
//! [`Batch`] to whatever processes them (a [`Dispatch`]: the pipelines) through [`Ingest`], and turn
//! the outcome into the status code the OTLP specification prescribes. [`listen`] accepts and serves
//! their connections (and the admin API's) within `limits.connections`; [`serving`] binds them with
//! their TLS and credentials.
// One exception, allowed where it is: `malloc_trim` in `memory`.
#![deny(unsafe_code)]

pub mod auth;
pub mod cgroup;
pub mod decode;
pub mod grpc;
pub mod grpc_body;
pub mod http;
pub mod kind;
pub mod listen;
pub mod memory;
pub mod otlp;
pub mod registry;
pub mod serving;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use weir_core::config::LimitsConfig;
use weir_core::telemetry::{Metrics, RefuseReason, Transport};
use weir_core::{Batch, Body, Dispatch, PartialSuccess, Refusal, RequestContext, Signal};

/// What both receivers share: the pipelines, the admission limit and the metrics.
#[derive(Debug)]
pub struct Ingest {
    pipelines: Arc<dyn Dispatch>,
    admission: Arc<Semaphore>,
    limits: LimitsConfig,
    metrics: Arc<Metrics>,
    shutting_down: AtomicBool,
    memory: Option<Arc<memory::MemoryGuard>>,
}

/// A request whose body is being read and inflated: counted as received, and, with a memory limit,
/// charged for what it has read and inflated so far (`add`, `grow_to`), but holding no admission slot.
/// A client that trickles its body, or never finishes it, costs the others nothing but its connection;
/// the bytes in flight are bounded by the memory limit and `max_request_bytes`, not by slots. Clones
/// share the charge (a gRPC body charges as tonic reads it, the handler afterwards).
#[derive(Debug, Clone)]
pub struct Reading {
    memory: Option<Arc<memory::MemoryCharge>>,
}

impl Reading {
    /// Charges `bytes` more (just read); `false` when weir's memory limit has no room for them.
    pub fn add(&self, bytes: usize) -> bool {
        self.memory.as_ref().is_none_or(|c| c.add(bytes as u64))
    }

    /// Raises the charge to at least `bytes` (a buffer about to grow to that size); `false` when it
    /// does not fit.
    pub fn grow_to(&self, bytes: usize) -> bool {
        self.memory
            .as_ref()
            .is_none_or(|c| c.bytes() >= bytes as u64 || c.resize(bytes as u64))
    }
}

/// A request's admission: its concurrency slot and, with a memory limit, its memory charge. The slot is
/// given back once the batch is queued; the charge once the request is answered.
#[derive(Debug)]
pub struct Admitted {
    permit: OwnedSemaphorePermit,
    memory: Option<Arc<memory::MemoryCharge>>,
}

/// Why a request could not even start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// `limits.max_concurrent_requests` requests are in flight.
    Overloaded,
    /// Resident memory is above `limits.max_memory_bytes` (its high-water mark).
    MemoryLimit,
    /// The request alone needs more memory than the limit allows: retrying cannot help (413 /
    /// RESOURCE_EXHAUSTED, not retryable).
    TooLarge,
    /// weir is shutting down.
    ShuttingDown,
}

impl Busy {
    fn reason(self) -> RefuseReason {
        match self {
            Busy::Overloaded => RefuseReason::Overloaded,
            Busy::MemoryLimit => RefuseReason::MemoryLimit,
            Busy::TooLarge => RefuseReason::TooLarge,
            Busy::ShuttingDown => RefuseReason::ShuttingDown,
        }
    }

    /// Whether the client may retry (all but [`Busy::TooLarge`]).
    pub fn retryable(self) -> bool {
        self != Busy::TooLarge
    }

    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Busy::Overloaded => "weir is at its concurrent request limit; retry later",
            Busy::MemoryLimit => "weir is at its memory limit; retry later",
            Busy::TooLarge => {
                "the request would need more memory to decode than weir's memory limit allows: send smaller requests"
            }
            Busy::ShuttingDown => "weir is shutting down; retry later",
        }
    }
}

impl Ingest {
    /// The shared receiver state.
    /// The shared receiver state. With `limits.max_memory_bytes`, starts the memory sampler (needs a
    /// tokio runtime).
    /// Without `limits.max_memory_bytes` and with `memory_from_cgroup`, the limit is the cgroup's, if
    /// it has one.
    pub fn new(
        pipelines: Arc<dyn Dispatch>,
        mut limits: LimitsConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        // The cgroup is watched only when its limit is the one in force: a configured limit is about
        // weir's own memory, and the cgroup may hold other processes.
        let cgroup = match limits.max_memory_bytes {
            Some(_) => None,
            None if limits.memory_from_cgroup => cgroup::Cgroup::detect().and_then(|c| {
                let limit = c.limit()?;
                tracing::info!(
                    limit, version = ?c.version(),
                    "memory limit taken from the cgroup (limits.max_memory_bytes overrides it)"
                );
                limits.max_memory_bytes = Some(usize::try_from(limit).unwrap_or(usize::MAX));
                Some(c)
            }),
            None => None,
        };
        let memory = limits.max_memory_bytes.map(|limit| {
            metrics.memory_limit(limit as u64);
            let g = Arc::new(memory::MemoryGuard::new(limit as u64));
            g.spawn_sampler(metrics.clone(), cgroup);
            g
        });
        Self {
            memory,
            pipelines,
            admission: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            limits,
            metrics,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// From now on, new requests are refused with a retryable status.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Starts a request: counts it, and refuses it at once while weir shuts down or is over its
    /// memory limit. Its body is read and inflated under the returned [`Reading`]'s charge; no
    /// admission slot is taken until [`Ingest::admit`]. Never waits.
    pub fn start(&self, signal: Signal, transport: Transport) -> Result<Reading, Busy> {
        self.metrics.request_received(signal, transport);
        let busy = if self.shutting_down.load(Ordering::Relaxed) {
            Busy::ShuttingDown
        } else {
            match &self.memory {
                None => return Ok(Reading { memory: None }),
                Some(m) => match m.charge(0) {
                    Some(c) => {
                        return Ok(Reading {
                            memory: Some(Arc::new(c)),
                        });
                    }
                    None => Busy::MemoryLimit,
                },
            }
        };
        self.metrics
            .request_refused(signal, transport, busy.reason(), 0);
        Err(busy)
    }

    /// Admits a request whose body is in: its memory charge becomes `cost` (see [`memory::cost`]: the
    /// body and the bound on what decoding it allocates, known before anything is decoded), then it
    /// takes a slot of `limits.max_concurrent_requests`. Refused (counted) when the charge does not
    /// fit now ([`Busy::MemoryLimit`]), can never fit ([`Busy::TooLarge`]), or no slot is free. Never
    /// waits: a full weir answers at once so that the client backs off.
    pub fn admit(
        &self,
        reading: Reading,
        signal: Signal,
        transport: Transport,
        cost: u64,
    ) -> Result<Admitted, Busy> {
        let busy = match &reading.memory {
            Some(c) if !c.could_ever_fit(cost) => Some(Busy::TooLarge),
            Some(c) if !c.resize(cost) => Some(Busy::MemoryLimit),
            _ => None,
        };
        let busy = match busy {
            Some(b) => b,
            None if self.shutting_down.load(Ordering::Relaxed) => Busy::ShuttingDown,
            None => match self.admission.clone().try_acquire_owned() {
                Ok(permit) => {
                    return Ok(Admitted {
                        permit,
                        memory: reading.memory,
                    });
                }
                Err(_) => Busy::Overloaded,
            },
        };
        self.metrics
            .request_refused(signal, transport, busy.reason(), 0);
        Err(busy)
    }

    /// Counts a request refused before it decoded.
    pub fn refused_early(&self, signal: Signal, transport: Transport, reason: RefuseReason) {
        self.metrics.request_refused(signal, transport, reason, 0);
    }

    /// Sends a decoded request through its pipeline; `Ok` once every upstream accepted it. The
    /// admission slot is given back once the batch is queued to its exporters.
    pub async fn process(
        &self,
        admitted: Admitted,
        body: Body,
        transport: Transport,
        origin: Origin,
        client_timeout: Option<Duration>,
    ) -> Result<PartialSuccess, Refusal> {
        let Origin {
            peer,
            headers,
            tenant,
        } = origin;
        let signal = body.signal();
        let items = body.items();
        self.metrics.items_received(signal, transport, items);
        let timeout = client_timeout.map_or(self.limits.request_timeout, |t| {
            t.min(self.limits.request_timeout)
        });
        let deadline = Instant::now() + timeout;
        let batch = Batch {
            body,
            context: RequestContext {
                peer,
                headers: std::sync::Arc::new(headers),
                tenant,
                deadline,
                memory: self.memory.as_ref().map(|g| {
                    std::sync::Arc::new(memory::Growth::new(g.clone()))
                        as std::sync::Arc<dyn weir_core::MemoryBudget>
                }),
            },
            routing: None,
        };
        // The dispatcher answers by the batch's deadline (one timer per request, the pipeline's).
        let result = self.pipelines.dispatch(batch, Some(admitted.permit)).await;
        // The request's memory is free once it is answered.
        drop(admitted.memory);
        if let Err(refusal) = &result {
            self.metrics
                .request_refused(signal, transport, refusal.reason(), items);
        }
        result
    }

    /// The delay a client should wait before retrying after `refusal`.
    pub fn retry_after(&self, refusal: Option<&Refusal>) -> Duration {
        match refusal {
            Some(Refusal::Export { source, .. }) => {
                source.retry_after.unwrap_or(self.limits.retry_after)
            }
            _ => self.limits.retry_after,
        }
    }
}

/// Where a request came from: what filters may see of it beside its payload.
#[derive(Debug, Default)]
pub struct Origin {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The request's headers (gRPC metadata).
    pub headers: ::http::HeaderMap,
    /// The tenant the receiver's `auth` put it in.
    pub tenant: Option<std::sync::Arc<str>>,
}

impl Origin {
    /// The origin of a request from `peer` with `headers`, in `tenant` when the receiver's `auth` let
    /// it in. Then its `Authorization` header is gone: weir consumed the credential, and filters (whose
    /// output may reach logs and upstreams) never see a tenant's token.
    pub fn new(
        peer: Option<SocketAddr>,
        mut headers: ::http::HeaderMap,
        tenant: Option<std::sync::Arc<str>>,
    ) -> Self {
        if tenant.is_some() {
            headers.remove(::http::header::AUTHORIZATION);
        }
        Self {
            peer,
            headers,
            tenant,
        }
    }
}
