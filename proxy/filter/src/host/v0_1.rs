//! `weir:filter@0.1.0`'s imports: the generated traits, implemented by the shared methods (`batch`) and
//! host functions.

use super::batch::batch_methods;
use super::{H, StoreState, WResult, Weight, host_functions};
use crate::bindings::v0_1::weir::filter::{host, types};

super::value_weight!(types::Value);

impl types::Host for StoreState {}

impl types::HostBatch for StoreState {
    batch_methods!(types);
}

host_functions!();
