//! OTLP receivers: gRPC ([`grpc`]) and HTTP ([`http`]) decode requests within the configured limits,
//! hand a [`Batch`] to whatever processes them (a [`Dispatch`]: the pipelines) through [`Ingest`], and
//! turn the outcome into the status code the OTLP specification prescribes. [`listen`] accepts and
//! serves their connections (and the admin API's) within `limits.connections`.
// One exception, allowed where it is: `malloc_trim` in `memory`.
#![deny(unsafe_code)]

pub mod auth;
pub mod cgroup;
pub mod decode;
pub mod grpc;
pub mod http;
pub mod listen;
pub mod memory;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// A moving average of recent gRPC message sizes: the provisional charge of a gRPC request,
    /// admitted before tonic reads its message.
    grpc_message_bytes: AtomicU64,
}

/// A request's admission: its concurrency slot and, with a memory limit, its memory charge. The slot is
/// given back once the batch is queued; the charge once the request is answered.
#[derive(Debug)]
pub struct Admitted {
    permit: OwnedSemaphorePermit,
    memory: Option<memory::MemoryCharge>,
}

/// Why a request could not even start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// `limits.max_concurrent_requests` requests are in flight.
    Overloaded,
    /// Resident memory is above `limits.max_memory_bytes` (its high-water mark).
    MemoryLimit,
    /// weir is shutting down.
    ShuttingDown,
}

impl Busy {
    fn reason(self) -> RefuseReason {
        match self {
            Busy::Overloaded => RefuseReason::Overloaded,
            Busy::MemoryLimit => RefuseReason::MemoryLimit,
            Busy::ShuttingDown => RefuseReason::ShuttingDown,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Busy::Overloaded => "weir is at its concurrent request limit; retry later",
            Busy::MemoryLimit => "weir is at its memory limit; retry later",
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
            grpc_message_bytes: AtomicU64::new(64 << 10),
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

    /// Takes a slot for one request, with a memory charge of `expected` bytes (see [`memory::cost`]; 0
    /// when the body size is not known yet), or says why there is none. Never waits: a full weir answers
    /// at once so that the client backs off.
    pub fn admit(
        &self,
        signal: Signal,
        transport: Transport,
        expected: u64,
    ) -> Result<Admitted, Busy> {
        self.metrics.request_received(signal, transport);
        let busy = if self.shutting_down.load(Ordering::Relaxed) {
            Busy::ShuttingDown
        } else {
            let memory = match &self.memory {
                Some(m) => m.charge(expected).map(Some).ok_or(Busy::MemoryLimit),
                None => Ok(None),
            };
            match memory {
                Err(busy) => busy,
                Ok(memory) => match self.admission.clone().try_acquire_owned() {
                    Ok(permit) => return Ok(Admitted { permit, memory }),
                    Err(_) => Busy::Overloaded,
                },
            }
        };
        self.metrics
            .request_refused(signal, transport, busy.reason(), 0);
        Err(busy)
    }

    /// With a memory limit, sets the request's charge to `cost()` once its size is known (the body read
    /// and inflated, or the gRPC message decoded); refuses it (counted) when that does not fit. Without
    /// one, `cost` is not called.
    pub fn charge(
        &self,
        admitted: &mut Admitted,
        signal: Signal,
        transport: Transport,
        cost: impl FnOnce() -> u64,
    ) -> Result<(), Busy> {
        let Some(charge) = &mut admitted.memory else {
            return Ok(());
        };
        if charge.resize(cost()) {
            return Ok(());
        }
        self.metrics
            .request_refused(signal, transport, RefuseReason::MemoryLimit, 0);
        Err(Busy::MemoryLimit)
    }

    /// The provisional memory charge of a gRPC request whose message is not read yet.
    pub fn expected_grpc_cost(&self) -> u64 {
        memory::cost(
            self.grpc_message_bytes.load(Ordering::Relaxed) as usize,
            false,
        )
    }

    /// With a memory limit, charges a decoded gRPC message its real size (see [`Ingest::charge`]), and
    /// folds the size into the average the next provisional charges use.
    pub fn charge_grpc_message(
        &self,
        admitted: &mut Admitted,
        signal: Signal,
        message_bytes: usize,
    ) -> Result<(), Busy> {
        self.charge(admitted, signal, Transport::Grpc, || {
            let size = message_bytes as u64;
            let mean = self.grpc_message_bytes.load(Ordering::Relaxed);
            self.grpc_message_bytes
                .store(mean - mean / 8 + size / 8, Ordering::Relaxed);
            memory::cost(size as usize, false)
        })
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
