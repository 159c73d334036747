//! The filter chain: the one place where filters act on a batch between receiver and exporters.
//!
//! A [`Chain`] is an immutable, ordered list of loaded filters. A pipeline holds its chain in an
//! `ArcSwap`: a request loads the chain once and finishes on it, while a swap makes new requests see the
//! new one. A batch that arrived as bytes is decoded once, for the first filter, lent to each filter in
//! turn through the WIT `batch` resource, and encoded once after the chain, unless no filter changed it
//! (a sampler that dropped nothing, a router that only labelled): then its original bytes go out.

use std::sync::Arc;

use weir_core::{Batch, Body, ChainError, Fault, FaultClass};

use crate::batch::BatchState;
use crate::instance::CallError;
use crate::{LoadedFilter, Verdict};

/// An ordered, immutable chain of filters for one pipeline.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    filters: Vec<Arc<LoadedFilter>>,
}

impl Chain {
    /// The empty chain: batches pass unchanged, without being indexed.
    pub fn identity() -> Self {
        Self::default()
    }

    /// A chain of `filters`, run in order.
    pub fn new(filters: Vec<Arc<LoadedFilter>>) -> Self {
        Self { filters }
    }

    /// The filters, in order.
    pub fn filters(&self) -> &[Arc<LoadedFilter>] {
        &self.filters
    }

    /// Runs the batch through every filter in order. A filter that fails is handled by its `on_error`
    /// policy: `fail-open` passes the batch on as it was before that filter, `fail-closed` refuses it.
    /// A quarantined filter is not called until its retry is due; meanwhile its policy applies
    /// directly. A call that failed for weir's load (its memory limit) refuses the batch retryably
    /// whatever the policy.
    pub fn apply(&self, mut batch: Batch) -> Result<Batch, ChainError> {
        if self.filters.is_empty() {
            return Ok(batch);
        }
        let signal = batch.body.signal();
        let body = std::mem::replace(
            &mut batch.body,
            Body::from_payload(weir_core::Payload::empty(signal)),
        );
        let (payload, original) = body
            .into_parts()
            .map_err(|e| ChainError::Undecodable(e.to_string()))?;
        let ctx = &batch.context;
        let mut state = BatchState::new(payload, ctx.headers.clone(), ctx.peer)
            .with_tenant(ctx.tenant.clone())
            .with_memory(ctx.memory.clone());
        for filter in &self.filters {
            let result = if filter.skips_calls() {
                Err(CallError::Fault(Fault {
                    class: FaultClass::Trap,
                    message: "quarantined after repeated failures".into(),
                }))
            } else {
                let (s, r) = filter.call(state);
                state = s;
                r
            };
            match result {
                Ok(Verdict::Continue) => {}
                Ok(Verdict::Reject(reason)) => {
                    return Err(ChainError::Rejected {
                        filter: filter.name().to_string(),
                        reason,
                    });
                }
                Err(CallError::Busy { concurrency }) => {
                    return Err(ChainError::Busy {
                        filter: filter.name().to_string(),
                        concurrency,
                    });
                }
                Err(CallError::Overloaded(why)) => {
                    return Err(ChainError::Overloaded {
                        filter: filter.name().to_string(),
                        why,
                    });
                }
                Err(CallError::Fault(_)) if filter.fails_open() => {}
                Err(CallError::Fault(fault)) => {
                    return Err(ChainError::Failed {
                        filter: filter.name().to_string(),
                        fault,
                    });
                }
            }
        }
        let (payload, routing, changed) = state.finish();
        batch.body = match original {
            Some(encoded) if !changed => Body::unchanged(encoded, payload),
            _ => Body::from_payload(payload),
        };
        batch.routing = routing;
        Ok(batch)
    }
}
