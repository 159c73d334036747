//! The admin token weir makes for itself when the configuration names no credential, so that the quick
//! start needs no set-up and still lets no other local process change filters.
//!
//! The token is 32 random bytes, hex. With a `state_dir` it is kept in `state_dir/admin-token` and reused
//! across restarts (scripts can read it there). Either way it is published for the `weir` CLI in a
//! file named by the admin port, `$XDG_RUNTIME_DIR/weir/admin-PORT.token` (without `XDG_RUNTIME_DIR`,
//! `/tmp/weir-UID/`), in a directory only this user can enter; the CLI reads it when `--token` is not
//! given, and weir removes it at shutdown. Every file is created `0600`. The published file is written
//! so that no other local user can redirect it (see [`publish`]'s notes on links and races).

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    discovery_dir().join(file_name(port))
}

fn file_name(port: u16) -> String {
    format!("admin-{port}.token")
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
///
/// The directory may sit in a place every local user can write (`/tmp`), so nothing on the way
/// follows a link another user could plant or swap in: the directory itself must be a real directory
/// (not a symlink, checked without following one), owned by this user and mode 0700, so that no one
/// else can add, remove or rename anything in it; the token is written to a new file of a random name
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600), made durable, then renamed over the published name (a
/// rename replaces a link there, never writes through it).
pub fn publish(port: u16, token: &str) -> std::io::Result<PathBuf> {
    publish_in(&discovery_dir(), port, token)
}

/// [`publish`] into `dir`.
fn publish_in(dir: &Path, port: u16, token: &str) -> std::io::Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // A link, or a directory someone else made (or made open), is not a place for a credential.
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir()
        || Some(std::os::unix::fs::MetadataExt::uid(&meta)) != uid()
        || meta.permissions().mode() & 0o077 != 0
    {
        return Err(std::io::Error::other(format!(
            "{} is not private to this user (a directory, not a link, owner and mode 0700 expected)",
            dir.display()
        )));
    }
    let path = dir.join(file_name(port));
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{}.{suffix}", file_name(port)));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(token.as_bytes())?;
        file.sync_data()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// The token published for the admin API on `port`, if any (never read through a link).
pub fn discover(port: u16) -> Option<String> {
    let mut t = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(discovery_path(port))
        .ok()?
        .read_to_string(&mut t)
        .ok()?;
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

    /// A directory of this user's, mode 0700, under a fresh temporary directory.
    fn private_dir(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        dir
    }

    #[test]
    fn a_discovery_directory_that_is_a_symlink_is_refused_and_its_target_untouched() {
        let root = tempfile::tempdir().unwrap();
        // Another user's link, swapped in after a check, pointing at a directory that passes one.
        let elsewhere = private_dir(root.path(), "elsewhere");
        let link = root.path().join("weir-link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let result = publish_in(&link, 9901, "secret");
        assert!(result.is_err(), "published through a link: {result:?}");
        let left: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().collect();
        assert!(left.is_empty(), "the link's target was written: {left:?}");
    }

    #[test]
    fn symlinks_planted_in_the_directory_are_replaced_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = private_dir(root.path(), "weir");
        let target = root.path().join("target");
        std::fs::write(&target, "untouched").unwrap();
        // At the token's path and at every name a temporary file had before (`NAME.tmpPID`).
        let token_path = dir.join(file_name(9901));
        std::os::unix::fs::symlink(&target, &token_path).unwrap();
        let tmp = token_path.with_extension(format!("tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&target, &tmp).unwrap();

        let published = publish_in(&dir, 9901, "secret").unwrap();
        assert_eq!(published, token_path);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
        let meta = std::fs::symlink_metadata(&token_path).unwrap();
        assert!(meta.file_type().is_file(), "{meta:?}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&token_path).unwrap(), "secret");
    }
}
