//! `weir:filter@0.2.1`'s imports (0.2.0's and `batch.tenant`): the 0.1 accessors with 0.2's types, the
//! bulk accessors, the kernels (pattern sets, redaction, SHA-256) and the shared state, all implemented by
//! the shared methods (`batch`) and host functions.

use super::batch::{
    batch_methods, batch_methods_since_0_2, host_functions_since_0_2, kernels_since_0_2,
};
use super::{H, MAX_PATTERN_SETS, P, StoreState, WResult, Weight, host_functions};
use crate::bindings::v0_2::weir::filter::{host, kernels, types};

super::value_weight!(types::Value);

impl types::Host for StoreState {}

impl types::HostBatch for StoreState {
    batch_methods!(types);
    batch_methods_since_0_2!(types);
}

kernels_since_0_2!(types, kernels);

host_functions! {
    host_functions_since_0_2!();
}
