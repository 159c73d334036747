//! `weir compile-helper` (hidden): compiles the module on stdin into a compile cache, for a running weir
//! that keeps the compiler out of its own memory (see `weir::filter::Runtime::with_compile_helper`).

use std::path::Path;
use std::process::ExitCode;

/// Exits with 1, saying why, when the module cannot be read or compiled.
pub(crate) fn main(cache_dir: &Path, instances: u32, memory: usize) -> ExitCode {
    let mut bytes = Vec::new();
    let compiled = std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
        .map_err(anyhow::Error::from)
        .and_then(|_| {
            weir::filter::compile_into_cache(
                cache_dir,
                weir::filter::PoolSizing { instances, memory },
                &bytes,
            )
            .map_err(anyhow::Error::from)
        });
    match compiled {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir compile-helper: {}", super::report(&e));
            ExitCode::FAILURE
        }
    }
}
