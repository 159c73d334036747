//! The noop filter: every batch passes unchanged. It measures what the filter boundary itself costs.

use weir_guest_sdk::{Filter, export_filter};

/// Does nothing.
pub struct Noop;

impl Filter for Noop {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Noop)
    }
}

export_filter!(Noop);
