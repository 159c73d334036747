//! Signed filter modules: ed25519 key pairs (`weir keygen`), signatures over a module's SHA-256 (`weir
//! filter sign`), and the trust list (`module_signing.trusted_keys`) weir checks pushed and configured
//! modules against.
//!
//! A key pair is two PEM files: the private key as PKCS#8 (`NAME.key`, readable by its owner only) and
//! the public key as SubjectPublicKeyInfo (`NAME.pub`), the formats `openssl pkey` reads and writes. A
//! key's id is the first 16 hex digits of the SHA-256 of its 32 public key bytes; a trusted key's signer
//! name is its file's stem (`ops.pub` signs as `ops`).
//!
//! A signature is one line, kept next to the module as `FILE.wasm.sig` and sent to the admin API in the
//! `x-weir-signature` header: `weir-ed25519 KEY_ID SIGNATURE_HEX`, the signature over
//! `weir filter module v1\0` followed by the module's 32-byte SHA-256. The context prefix keeps a
//! signature made for a module from meaning anything elsewhere.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// What every signature covers before the module's digest.
pub const CONTEXT: &[u8] = b"weir filter module v1\0";
/// The admin API header that carries an uploaded module's signature.
pub const SIGNATURE_HEADER: &str = "x-weir-signature";
/// The first word of a signature line.
const SCHEME: &str = "weir-ed25519";

/// A signature could not be made or does not hold.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Trusted keys are configured and the module carries no signature.
    #[error(
        "the module is not signed, and module_signing requires a signature by a trusted key \
         (sign it with `weir filter sign --key KEY FILE`)"
    )]
    Unsigned,
    /// The signature line is not one weir writes.
    #[error("malformed signature: {0} (expected `weir-ed25519 KEY_ID SIGNATURE_HEX`)")]
    Malformed(String),
    /// Signed by a key that is not in the trust list.
    #[error("signed by key {key_id}, which is not in module_signing.trusted_keys")]
    UntrustedKey {
        /// The key's id.
        key_id: String,
    },
    /// The signature does not match the module.
    #[error(
        "the signature by {signer} does not match this module (changed after signing, or signed \
         for another module)"
    )]
    BadSignature {
        /// The trusted key's name.
        signer: String,
    },
    /// A key file could not be read or parsed.
    #[error("key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A new key pair, as PEM text.
#[derive(Debug)]
pub struct KeyPair {
    /// PKCS#8 private key.
    pub private_pem: String,
    /// SubjectPublicKeyInfo public key.
    pub public_pem: String,
    /// The key's id.
    pub key_id: String,
}

/// Generates a key pair from the operating system's random source.
pub fn generate() -> Result<KeyPair, SigningError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SigningError::Key {
        path: "(new key)".into(),
        reason: format!("no randomness: {e}"),
    })?;
    let key = SigningKey::from_bytes(&seed);
    let pem_error = |e: &dyn std::fmt::Display| SigningError::Key {
        path: "(new key)".into(),
        reason: e.to_string(),
    };
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| pem_error(&e))?
        .to_string();
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| pem_error(&e))?;
    Ok(KeyPair {
        private_pem,
        public_pem,
        key_id: key_id(&key.verifying_key()),
    })
}

/// A public key's id: the first 16 hex digits of the SHA-256 of its bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex(&Sha256::digest(key.as_bytes())[..8])
}

fn message(module: &[u8]) -> Vec<u8> {
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(&Sha256::digest(module));
    m
}

/// Signs `module` with the PKCS#8 PEM private key `private_pem`; returns the signature line.
pub fn sign(private_pem: &str, module: &[u8]) -> Result<String, SigningError> {
    let key = SigningKey::from_pkcs8_pem(private_pem).map_err(|e| SigningError::Key {
        path: "(private key)".into(),
        reason: format!("not an ed25519 PKCS#8 PEM private key: {e}"),
    })?;
    let signature = key.sign(&message(module));
    Ok(format!(
        "{SCHEME} {} {}",
        key_id(&key.verifying_key()),
        hex(&signature.to_bytes())
    ))
}

/// Where a module's signature file is: `FILE.sig` next to `FILE`.
pub fn signature_path(module: &Path) -> PathBuf {
    let mut name = module.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

/// The keys a module may be signed by.
#[derive(Debug, Default)]
pub struct Trust {
    keys: Vec<TrustedKey>,
}

#[derive(Debug)]
struct TrustedKey {
    name: String,
    id: String,
    key: VerifyingKey,
}

impl Trust {
    /// Reads the public key files (PEM); each signs as its file's stem.
    pub fn load(paths: &[PathBuf]) -> Result<Self, SigningError> {
        let mut keys = Vec::new();
        for path in paths {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| SigningError::Key {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| SigningError::Key {
                path: shown.clone(),
                reason: format!("not an ed25519 public key in PEM: {e}"),
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or(shown);
            keys.push(TrustedKey {
                name,
                id: key_id(&key),
                key,
            });
        }
        Ok(Self { keys })
    }

    /// True when modules must be signed (some key is trusted).
    pub fn is_required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks `signature` (a signature line) over `module`. Returns the signer's name, or `None` when
    /// no key is trusted (then nothing is required and nothing is checked).
    pub fn verify(
        &self,
        module: &[u8],
        signature: Option<&str>,
    ) -> Result<Option<String>, SigningError> {
        if !self.is_required() {
            return Ok(None);
        }
        let line = signature
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(SigningError::Unsigned)?;
        let mut words = line.split_ascii_whitespace();
        let (Some(scheme), Some(id), Some(sig), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(SigningError::Malformed("not three words".into()));
        };
        if scheme != SCHEME {
            return Err(SigningError::Malformed(format!(
                "unknown scheme `{scheme}`"
            )));
        }
        let bytes: [u8; 64] = unhex(sig)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SigningError::Malformed("the signature is not 128 hex digits".into()))?;
        let trusted = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SigningError::UntrustedKey { key_id: id.into() })?;
        trusted
            .key
            .verify(&message(module), &Signature::from_bytes(&bytes))
            .map_err(|_| SigningError::BadSignature {
                signer: trusted.name.clone(),
            })?;
        Ok(Some(trusted.name.clone()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust_of(pairs: &[(&str, &KeyPair)]) -> (tempfile::TempDir, Trust) {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = pairs
            .iter()
            .map(|(name, k)| {
                let p = dir.path().join(format!("{name}.pub"));
                std::fs::write(&p, &k.public_pem).unwrap();
                p
            })
            .collect();
        let trust = Trust::load(&paths).unwrap();
        (dir, trust)
    }

    #[test]
    fn a_signature_by_a_trusted_key_names_its_signer() {
        let ops = generate().unwrap();
        let (_dir, trust) = trust_of(&[("ops", &ops)]);
        let line = sign(&ops.private_pem, b"module bytes").unwrap();
        assert!(line.starts_with(&format!("weir-ed25519 {} ", ops.key_id)));
        assert_eq!(
            trust.verify(b"module bytes", Some(&line)).unwrap(),
            Some("ops".to_string())
        );
    }

    #[test]
    fn unsigned_tampered_untrusted_and_malformed_are_refused() {
        let (ops, other) = (generate().unwrap(), generate().unwrap());
        let (_dir, trust) = trust_of(&[("ops", &ops)]);
        let line = sign(&ops.private_pem, b"module").unwrap();
        assert!(matches!(
            trust.verify(b"module", None),
            Err(SigningError::Unsigned)
        ));
        assert!(matches!(
            trust.verify(b"module!", Some(&line)),
            Err(SigningError::BadSignature { signer }) if signer == "ops"
        ));
        let by_other = sign(&other.private_pem, b"module").unwrap();
        assert!(matches!(
            trust.verify(b"module", Some(&by_other)),
            Err(SigningError::UntrustedKey { key_id }) if key_id == other.key_id
        ));
        // A trusted key id with another key's signature does not pass either.
        let forged = format!(
            "weir-ed25519 {} {}",
            ops.key_id,
            by_other.rsplit(' ').next().unwrap()
        );
        assert!(matches!(
            trust.verify(b"module", Some(&forged)),
            Err(SigningError::BadSignature { .. })
        ));
        for bad in ["weir-ed25519 abc", "rsa x y", "weir-ed25519 abc zz"] {
            assert!(
                matches!(
                    trust.verify(b"module", Some(bad)),
                    Err(SigningError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn without_trusted_keys_nothing_is_required() {
        let trust = Trust::default();
        assert!(!trust.is_required());
        assert_eq!(trust.verify(b"m", None).unwrap(), None);
    }

    #[test]
    fn a_public_key_that_is_not_one_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pub");
        std::fs::write(&p, "hello").unwrap();
        let e = Trust::load(&[p]).unwrap_err().to_string();
        assert!(
            e.contains("x.pub") && e.contains("not an ed25519 public key"),
            "{e}"
        );
    }
}
