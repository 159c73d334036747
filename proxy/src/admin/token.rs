//! The admin token weir makes for itself when the configuration names no credential, so that the quick
//! start needs no set-up and still lets no other local process change filters.
//!
//! The token is 32 random bytes, hex. With a `state_dir` it is kept in `state_dir/admin-token` and reused
//! across restarts (scripts can read it there). Either way it is published for the `weir` CLI in a
//! file named by the admin port, `$XDG_RUNTIME_DIR/weir/admin-PORT.token` (without `XDG_RUNTIME_DIR`,
//! `/tmp/weir-UID/`), in a directory only this user can enter; the CLI reads it when `--token` is not
//! given, and weir removes it at shutdown. Every file is created `0600`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file name of the kept token under `state_dir`.
pub const STATE_FILE: &str = "admin-token";

/// This process's user id (the owner of `/proc/self`: no `unsafe` needed).
fn uid() -> Option<u32> {
    std::fs::metadata("/proc/self")
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
}

/// The directory the CLI looks in.
pub fn discovery_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("weir"),
        None => std::env::temp_dir().join(match uid() {
            Some(uid) => format!("weir-{uid}"),
            None => "weir".to_string(),
        }),
    }
}

/// The file the CLI reads the token of the weir whose admin API is on `port` from.
pub fn discovery_path(port: u16) -> PathBuf {
    discovery_dir().join(format!("admin-{port}.token"))
}

/// A new random token.
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `text` to `path` (`0600`) durably, through a rename, so that a reader never sees half of it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    weir_core::fs::write_durably(path, text.as_bytes(), 0o600)
}

/// The token kept in `state_dir`, made (and kept) if there is none yet; a fresh one without a
/// `state_dir`.
pub fn load_or_create(state_dir: Option<&Path>) -> std::io::Result<String> {
    let Some(dir) = state_dir else {
        return generate();
    };
    let path = dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    let token = generate()?;
    write_private(&path, &token)?;
    Ok(token)
}

/// Publishes `token` for the CLI of the admin API on `port`; returns the file.
pub fn publish(port: u16, token: &str) -> std::io::Result<PathBuf> {
    let dir = discovery_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    // A directory someone else made (or made open) is not a place for a credential.
    let meta = std::fs::metadata(&dir)?;
    if Some(std::os::unix::fs::MetadataExt::uid(&meta)) != uid()
        || meta.permissions().mode() & 0o077 != 0
    {
        return Err(std::io::Error::other(format!(
            "{} is not private to this user (owner and mode 0700 expected)",
            dir.display()
        )));
    }
    let path = discovery_path(port);
    write_private(&path, token)?;
    Ok(path)
}

/// The token published for the admin API on `port`, if any.
pub fn discover(port: u16) -> Option<String> {
    let t = std::fs::read_to_string(discovery_path(port)).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_token_is_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(Some(dir.path())).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(Some(dir.path())).unwrap(), first);
        let mode = std::fs::metadata(dir.path().join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(
            load_or_create(None).unwrap(),
            first,
            "without a state_dir, a new one"
        );
    }
}
