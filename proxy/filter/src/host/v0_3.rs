//! `weir:filter@0.3.0`'s imports: everything 0.2.1 has, written once by the shared macros (`batch`),
//! and what 0.3 adds for profiles: a profile's sample count and sample type.

use super::batch::{
    batch_methods, batch_methods_since_0_2, host_functions_since_0_2, kernels_since_0_2,
};
use super::{H, MAX_PATTERN_SETS, P, StoreState, WResult, Weight, host_functions};
use crate::bindings::v0_3::weir::filter::{host, kernels, types};

super::value_weight!(types::Value);

impl types::Host for StoreState {}

impl types::HostBatch for StoreState {
    batch_methods!(types);
    batch_methods_since_0_2!(types);

    fn profile_sample_count(&mut self, h: H, item: u32) -> WResult<u32> {
        super::read!(self, h, profile_sample_count(item))
    }

    fn profile_sample_type(&mut self, h: H, item: u32) -> WResult<(String, String)> {
        super::read!(self, h, profile_sample_type(item))
    }
}

kernels_since_0_2!(types, kernels);

host_functions! {
    host_functions_since_0_2!();
}
