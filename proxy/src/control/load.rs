//! Loading one filter, the one path for both callers: startup (a module the configuration file names,
//! `crate::app::load_filter`, for `weir run` and `weir validate`) and the control plane (a version pushed
//! through the admin API or restored from `filters.json`, `Manager::load`). Read the module, check its
//! signature, compile it, instantiate it (`init` run, dry run). What differs between the callers is
//! passed in: where the module comes from, the filter's spec, and where quarantine notices go; each
//! maps [`LoadError`] to its own errors.

use std::path::PathBuf;
use std::sync::Arc;

use weir_core::Signal;
use weir_core::telemetry::Metrics;
use weir_filter::{FilterError, FilterSpec, LoadedFilter, Module, QuarantineSender, Runtime};

use crate::signing::{SigningError, Trust, signature_path};

/// Where the module of a filter comes from.
#[derive(Debug)]
pub(crate) enum ModuleSource {
    /// A `.wasm` file: read, checked against the trust list with its signature beside it
    /// (`FILE.sig`), and compiled.
    File(PathBuf),
    /// A module compiled (and its signature checked) before, with who signed it.
    Compiled(Module, Option<String>),
}

/// Why a filter did not load.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// The module file could not be read.
    Read(std::io::Error),
    /// The module is not signed by a trusted key.
    Signature(SigningError),
    /// The module does not compile, link or initialize with this spec.
    Filter(FilterError),
}

/// Loads one filter from `source` with `spec`, sending its quarantine notices to `quarantine`; returns
/// it and who signed its module. Blocking (compiling and `init` may take a while): call it off the
/// async runtime.
pub(crate) fn load_filter(
    runtime: &Arc<Runtime>,
    trust: &Trust,
    source: ModuleSource,
    spec: FilterSpec,
    signal: Signal,
    metrics: &Arc<Metrics>,
    quarantine: Option<QuarantineSender>,
) -> Result<(Arc<LoadedFilter>, Option<String>), LoadError> {
    let (module, signer) = match source {
        ModuleSource::Compiled(module, signer) => (module, signer),
        ModuleSource::File(path) => {
            let bytes = std::fs::read(&path).map_err(LoadError::Read)?;
            let signature = std::fs::read_to_string(signature_path(&path)).ok();
            let signer = trust
                .verify(&bytes, signature.as_deref())
                .map_err(LoadError::Signature)?;
            let module = runtime.compile(&bytes).map_err(LoadError::Filter)?;
            (module, signer)
        }
    };
    let filter = LoadedFilter::load(
        runtime.clone(),
        spec,
        module,
        signal,
        metrics.clone(),
        quarantine,
    )
    .map_err(LoadError::Filter)?;
    Ok((filter, signer))
}
