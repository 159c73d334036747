//! The module store: uploads (signature checked, compiled, kept in `state_dir/modules` with their
//! signatures), who signed each module, finding a module again for a version, and collecting the
//! modules no version references.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weir_core::Signal;

use super::load::ModuleSource;
use super::persist::write_atomic;
use super::versions::Entry;
use super::{ManageError, Manager};
use crate::signing::{SigningError, signature_path};

/// Uploaded modules that no filter version references and are kept anyway, the most recently
/// uploaded first (an upload is usually followed by the push that uses it); older ones are deleted
/// from memory and from `state_dir/modules`.
pub const KEEP_UNREFERENCED_MODULES: usize = 4;

/// The longest module name accepted.
const MAX_MODULE_NAME: usize = 128;

impl Manager {
    /// Records who signed a module verified elsewhere (the configuration file's, at startup).
    pub fn record_signer(&self, sha256: &str, signer: String) {
        self.lock_signers().insert(sha256.to_string(), signer);
    }

    fn lock_signers(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // Inserts and lookups are single calls: a panic cannot leave the map half-changed.
        self.signers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn signer_of(&self, sha256: &str) -> Option<String> {
        self.lock_signers().get(sha256).cloned()
    }

    /// Checks an uploaded module's signature (a `weir filter sign` line) against the trust list,
    /// compiles and stores it; returns its sha256. With trusted keys configured, a module without a
    /// valid signature by one of them is refused before anything is compiled or stored.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        signature: Option<String>,
    ) -> Result<String, ManageError> {
        let signer = self.trust.verify(&bytes, signature.as_deref())?;
        let runtime = self.runtime.clone();
        let (module, bytes) = tokio::task::spawn_blocking(move || {
            let m = runtime.compile(&bytes);
            // The compiler threads' freed memory goes back to the OS, not into an idle arena.
            weir_receiver::memory::release_free_memory();
            (m, bytes)
        })
        .await
        .map_err(|e| ManageError::State(format!("compile task: {e}")))?;
        let module = module?;
        if let Some(dir) = &self.state_dir {
            let path = modules_dir(dir).join(format!("{}.wasm", module.sha256));
            if !path.exists() {
                write_atomic(&path, &bytes)?;
            }
            // Kept beside the module, so that it is checked again when a restart loads it.
            if let (Some(_), Some(line)) = (&signer, &signature) {
                write_atomic(&signature_path(&path), line.trim().as_bytes())?;
            }
        }
        if let Some(signer) = signer {
            self.record_signer(&module.sha256, signer);
        }
        {
            let mut uploads = self.lock_uploads();
            uploads.retain(|u| *u != module.sha256);
            uploads.push(module.sha256.clone());
        }
        self.collect_modules(&*self.entries.lock().await);
        Ok(module.sha256)
    }

    fn lock_uploads(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // Single calls on a Vec: a panic cannot leave it half-changed.
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the modules no kept version references, beyond the [`KEEP_UNREFERENCED_MODULES`]
    /// uploaded last: the compiled code in memory, the file in `state_dir/modules` and its signature.
    /// Runs after every change, under the lock of `entries`. (wasmtime's own disk cache of compiled
    /// code, `state_dir/cache`, is bounded by wasmtime's cache cleanup.)
    pub(super) fn collect_modules(&self, entries: &BTreeMap<(Signal, String), Entry>) {
        let referenced: std::collections::HashSet<&str> = entries
            .values()
            .flat_map(|e| &e.versions)
            .map(|v| v.filter.module.sha256.as_str())
            .collect();
        // Newest first: uploaded in this process (latest first), then files a previous run left,
        // by modification time.
        let uploads = self.lock_uploads().clone();
        let mut unreferenced: std::collections::HashMap<String, std::time::SystemTime> =
            Default::default();
        for sha in self.runtime.cached_modules() {
            unreferenced.insert(sha, std::time::UNIX_EPOCH);
        }
        if let Some(dir) = &self.state_dir
            && let Ok(files) = std::fs::read_dir(modules_dir(dir))
        {
            for f in files.flatten() {
                let path = f.path();
                if path.extension().is_none_or(|x| x != "wasm") {
                    continue;
                }
                let Some(sha) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let mtime = f.metadata().and_then(|m| m.modified());
                unreferenced.insert(sha.to_string(), mtime.unwrap_or(std::time::UNIX_EPOCH));
            }
        }
        unreferenced.retain(|sha, _| !referenced.contains(sha.as_str()));
        let mut ranked: Vec<_> = unreferenced
            .into_iter()
            .map(|(sha, mtime)| {
                let uploaded = uploads.iter().position(|u| *u == sha).map_or(0, |i| i + 1);
                ((uploaded, mtime), sha)
            })
            .collect();
        ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut collected = 0;
        for (_, sha) in ranked.into_iter().skip(KEEP_UNREFERENCED_MODULES) {
            self.runtime.forget(&sha);
            if let Some(dir) = &self.state_dir {
                let path = modules_dir(dir).join(format!("{sha}.wasm"));
                for p in [signature_path(&path), path] {
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            tracing::warn!(file = %p.display(), error = %e, "cannot delete an unused module")
                        }
                    }
                }
            }
            self.lock_uploads().retain(|u| *u != sha);
            self.lock_signers().remove(&sha);
            tracing::info!(sha256 = %sha, "deleted an uploaded module no filter version uses");
            collected += 1;
        }
        self.metrics
            .filter_modules(self.runtime.cached_modules().len(), collected);
    }

    /// Where module `sha256` loads from: compiled in this process (with who signed it, when trusted
    /// keys require a signer), or its file in `state_dir/modules`, to be checked and compiled.
    pub(super) fn module_source(&self, sha256: &str) -> Result<ModuleSource, ManageError> {
        // The name becomes a file name under `state_dir/modules`: a path must never get that far.
        check_module_name(sha256)?;
        let signer = self.signer_of(sha256);
        if let Some(m) = self.runtime.cached(sha256)
            && (signer.is_some() || !self.trust.is_required())
        {
            return Ok(ModuleSource::Compiled(m, signer));
        }
        let Some(dir) = &self.state_dir else {
            // Compiled here but never verified (trusted keys are required): there is no stored
            // signature to check either.
            if self.runtime.cached(sha256).is_some() {
                return Err(SigningError::Unsigned.into());
            }
            return Err(not_uploaded(sha256));
        };
        Ok(ModuleSource::File(
            modules_dir(dir).join(format!("{sha256}.wasm")),
        ))
    }
}

/// Module `sha256` is neither compiled in this process nor in `state_dir/modules`.
pub(super) fn not_uploaded(sha256: &str) -> ManageError {
    ManageError::NotFound(format!(
        "module {sha256} is not uploaded (POST /v1/modules first)"
    ))
}

/// A module name from a request (the sha256 an upload returned) names a file in
/// `state_dir/modules`: 1 to [`MAX_MODULE_NAME`] of `A-Z a-z 0-9 _ . -`, not starting with a dot (so
/// neither `.` nor `..`). Anything else is refused (400) before it is joined into a path.
fn check_module_name(name: &str) -> Result<(), ManageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_MODULE_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ManageError::BadRequest(format!(
            "module {name:?} is not a module name (1 to {MAX_MODULE_NAME} of A-Z a-z 0-9 _ . -, \
             not starting with a dot; the sha256 an upload returned)"
        )))
    }
}

pub(super) fn modules_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("modules")
}
