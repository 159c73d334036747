//! The `bindgen!` sites: host-side types and traits generated from every released version of the filter
//! interface (`wit/<version>/filter.wit`), each with the conversions between its types and the batch's
//! plain ones (`batch::convert`). Every version maps the `batch` resource onto the same [`BatchState`],
//! so a chain may mix filters built against different versions.
//!
//! [`BatchState`]: super::batch::BatchState

/// `weir:filter@0.1.0`, frozen: filters built against it keep loading.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "filter",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "weir:filter/types.batch": crate::batch::BatchState,
        },
    });

    /// Its types to and from the batch's.
    mod convert {
        use super::weir::filter::types;
        use crate::batch::convert::core_conversions;

        core_conversions!(types; signals: Traces, Metrics, Logs);
    }
}

/// `weir:filter@0.2.1`: bulk access, scopes and points, host kernels, shared state (0.2.0), and the
/// tenant (0.2.1). Filters built against 0.2.0 link to it too: wasmtime matches semver-compatible
/// imports and exports, and 0.2.0's imports are a subset of 0.2.1's.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.1",
        world: "filter",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "weir:filter/types.batch": crate::batch::BatchState,
            "weir:filter/kernels.pattern-set": crate::kernels::PatternSetHandle,
        },
    });

    /// Its types to and from the batch's.
    mod convert {
        use super::weir::filter::{kernels, types};
        use crate::batch::convert::{conversions_since_0_2, core_conversions};

        core_conversions!(types; signals: Traces, Metrics, Logs);
        conversions_since_0_2!(types, kernels);
    }
}

/// `weir:filter@0.3.1`: 0.2.1 and profiles (0.3.0), and `pattern-set.scan-and-redact` (0.3.1). Filters
/// built against 0.3.0 link to it too (semver-compatible imports, a subset). A filter built against
/// world `profiles-filter` exports `process-profiles`; one built against world `filter`
/// ([`v0_3::without_profiles`]) does not, and passes profiles by. Both import the same interfaces,
/// implemented once.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.1",
        world: "profiles-filter",
        imports: { default: trappable },
        additional_derives: [PartialEq],
        with: {
            "weir:filter/types.batch": crate::batch::BatchState,
            "weir:filter/kernels.pattern-set": crate::kernels::PatternSetHandle,
        },
    });

    /// Its types to and from the batch's.
    mod convert {
        use super::weir::filter::{kernels, types};
        use crate::batch::convert::{conversions_since_0_2, core_conversions};

        core_conversions!(types; signals: Traces, Metrics, Logs, Profiles);
        conversions_since_0_2!(types, kernels);
    }

    /// World `filter` of 0.3: the same imports, without `process-profiles`.
    pub mod without_profiles {
        wasmtime::component::bindgen!({
            path: "../../wit/0.3.1",
            world: "filter",
            imports: { default: trappable },
            with: {
                "weir:filter/types": super::weir::filter::types,
                "weir:filter/kernels": super::weir::filter::kernels,
                "weir:filter/host": super::weir::filter::host,
            },
        });
    }
}
