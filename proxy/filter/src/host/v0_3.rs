//! `weir:filter@0.3.1`'s imports (0.3.0 filters link to them too): everything 0.2.1 has, written once
//! by the shared macros (`batch`); what 0.3.0 adds for profiles, a profile's sample count and sample
//! type; and 0.3.1's `pattern-set.scan-and-redact`.

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

kernels_since_0_2!(types, kernels, pattern_set: {
    fn scan_and_redact(
        &mut self,
        p: P,
        h: H,
        lists: types::Lists,
        how: kernels::Rewrite,
        list_touched: bool,
    ) -> WResult<kernels::Redacted> {
        self.charge(how.weight())?;
        let set = self.table.get(&p)?.set.clone();
        let how = how.into();
        let (started, limit) = (self.budget.started, self.budget.limit);
        let mut out_of_time = || super::thread_cpu().saturating_sub(started) >= limit;
        let r = self.batch_mut(&h)?.scan_redact(&set, lists.into(), &how, list_touched, &mut out_of_time);
        let Some(done) = self.bad(r)? else {
            self.budget.used_at_stop = Some(self.budget.used());
            return Err(wasmtime::Error::new(wasmtime::Trap::Interrupt));
        };
        Ok(kernels::Redacted {
            matched: done.matched,
            changed: done.changed,
            touched: done
                .touched
                .into_iter()
                .map(|(at, key)| kernels::Touched { at: at.into(), key })
                .collect(),
        })
    }
});

host_functions! {
    host_functions_since_0_2!();
}
