//! The seam between the receivers and what processes their requests: receivers hold a
//! `dyn Dispatch` and know nothing of pipelines, filters or exporters.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::OwnedSemaphorePermit;

use crate::{Batch, PartialSuccess, Refusal};

/// Takes a decoded request and answers once it is delivered (or why not).
pub trait Dispatch: Send + Sync + std::fmt::Debug + 'static {
    /// Processes `batch`; `Ok` once every upstream it is routed to has it, a refusal (a timeout) when
    /// that has not happened by `batch.context.deadline`. `admission` (the receiver's
    /// concurrency slot) is given back as soon as the batch is queued, so that requests waiting for a
    /// slow upstream do not hold slots the others need.
    fn dispatch(
        &self,
        batch: Batch,
        admission: Option<OwnedSemaphorePermit>,
    ) -> Pin<Box<dyn Future<Output = Result<PartialSuccess, Refusal>> + Send + '_>>;
}
