//! The filter-chain seam: the one place where filters act on a batch between receiver and exporters.
//!
//! Today the chain is the identity: no filter kinds exist yet, so a [`Chain`] passes every batch through
//! unchanged and never fails. The Wasm filter runtime replaces the inside of [`Chain::apply`]; receivers
//! and exporters do not change when it does.

use super::Batch;

/// Why the chain refused a batch.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A filter rejected the batch; not retryable.
    #[error("filter {filter} rejected the batch: {reason}")]
    Rejected {
        /// The filter's name.
        filter: String,
        /// Its reason.
        reason: String,
    },
}

impl ChainError {
    /// Whether the client should retry.
    pub fn retryable(&self) -> bool {
        match self {
            ChainError::Rejected { .. } => false,
        }
    }
}

/// An ordered, immutable chain of filters for one pipeline (empty for now).
#[derive(Debug, Clone, Default)]
pub struct Chain {}

impl Chain {
    /// The empty chain: batches pass unchanged.
    pub fn identity() -> Self {
        Self {}
    }

    /// Runs the batch through every filter in order.
    pub fn apply(&self, batch: Batch) -> Result<Batch, ChainError> {
        Ok(batch)
    }
}
