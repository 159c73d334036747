//! `weir keygen`: makes an ed25519 key pair for signing filter modules.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Exits with 1, saying why, when the pair cannot be made or written.
pub(crate) fn main(prefix: &std::path::Path) -> ExitCode {
    match keygen(prefix) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir keygen: {}", super::report(&e));
            ExitCode::FAILURE
        }
    }
}

/// `weir keygen PREFIX`: writes PREFIX.key (mode 0600) and PREFIX.pub, refusing to overwrite either.
fn keygen(prefix: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let pair = weir::signing::generate()?;
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (private, public) = (with(".key"), with(".pub"));
    for p in [&private, &public] {
        anyhow::ensure!(!p.exists(), "{} exists: not overwriting a key", p.display());
    }
    if let Some(dir) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&private)
        .and_then(|mut f| f.write_all(pair.private_pem.as_bytes()))
        .with_context(|| format!("writing {}", private.display()))?;
    std::fs::write(&public, &pair.public_pem)
        .with_context(|| format!("writing {}", public.display()))?;
    println!(
        "key {}: private {} (keep it secret), public {} (trust it in module_signing.trusted_keys)",
        pair.key_id,
        private.display(),
        public.display()
    );
    Ok(())
}
