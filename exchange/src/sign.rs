//! OpenPGP signatures of what partners receive, by our CSIRT's key (`exchange.signing_key`),
//! made with rPGP (the `pgp` crate): a detached, ASCII-armoured signature `<file>.asc` beside
//! each daily file and day index, SHA-256 over the file's bytes as written (binary
//! signature), which a partner checks with `gpg --verify <file>.asc <file>`.
//!
//! The key is an armoured secret key as `gpg --export-secret-keys --armor` writes it. Its
//! signing-capable subkey signs when it has one, else the primary key. A protected key is
//! unlocked once, with the passphrase in `exchange.signing_key_passphrase_file`, when it is
//! loaded at start-up, and a test signature proves it before anything is exported. Neither the key nor the passphrase is
//! ever logged: `Debug` shows the fingerprint only.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use pgp::composed::{ArmorOptions, Deserializable, DetachedSignature, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SecretKey, SecretSubkey};
use pgp::types::{KeyDetails, Password};

/// The key that signs partner files.
pub struct Signer {
    /// Unlocked once at load (as gpg-agent caches a passphrase): signing a file costs no key
    /// derivation.
    key: SigningPart,
    /// The fingerprint of the key that signs (the subkey, if one does), upper-case hex.
    fingerprint: String,
    /// The primary key's fingerprint, upper-case hex: what partners pin.
    primary: String,
}

enum SigningPart {
    Primary(SecretKey),
    Subkey(SecretSubkey),
}

/// Why a key cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key or passphrase file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not an armoured OpenPGP secret key.
    #[error("{path} is not an ASCII-armoured OpenPGP secret key ({reason})")]
    NotAKey {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        reason: String,
    },
    /// The key has no part allowed to sign.
    #[error("{path}: key {fingerprint} has no signing-capable key or subkey")]
    NoSigningKey {
        /// The file.
        path: PathBuf,
        /// Its primary fingerprint.
        fingerprint: String,
    },
    /// The passphrase does not unlock the key.
    #[error(
        "cannot unlock key {fingerprint} (exchange.signing_key_passphrase_file: wrong or \
         missing passphrase): {reason}"
    )]
    Unlock {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// The library's reason.
        reason: String,
    },
    /// A signature could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The signature file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Signing failed.
    #[error("signing with key {fingerprint} failed: {reason}")]
    Sign {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// The library's reason.
        reason: String,
    },
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint)
            .field("primary", &self.primary)
            .finish_non_exhaustive()
    }
}

/// The path of a file's detached signature: `<file>.asc`.
pub fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".asc");
    PathBuf::from(name)
}

impl Signer {
    /// Loads the armoured secret key at `key`, unlocked with the first line of `passphrase`
    /// (none: an unprotected key), and proves it signs.
    pub fn load(key: &Path, passphrase: Option<&Path>) -> Result<Signer, SignError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| SignError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let armour = read(key)?;
        let password = match passphrase {
            Some(p) => Password::from(read(p)?.lines().next().unwrap_or("")),
            None => Password::empty(),
        };
        let (secret, _) =
            SignedSecretKey::from_string(&armour).map_err(|e| SignError::NotAKey {
                path: key.to_owned(),
                reason: e.to_string(),
            })?;
        let primary = hex_fingerprint(&secret.primary_key);
        let subkey = secret.secret_subkeys.iter().find(|s| {
            s.signatures
                .iter()
                .any(|sig| sig.key_flags().sign() && !is_expired(sig))
        });
        let primary_signs = secret.details.users.iter().any(|u| {
            u.signatures
                .iter()
                .any(|sig| sig.key_flags().sign() && !is_expired(sig))
        }) || secret
            .details
            .direct_signatures
            .iter()
            .any(|sig| sig.key_flags().sign());
        let mut key_part = match subkey {
            Some(s) => SigningPart::Subkey(s.key.clone()),
            None if primary_signs => SigningPart::Primary(secret.primary_key.clone()),
            None => {
                return Err(SignError::NoSigningKey {
                    path: key.to_owned(),
                    fingerprint: primary,
                })
            }
        };
        let fingerprint = match &key_part {
            SigningPart::Primary(k) => hex_fingerprint(k),
            SigningPart::Subkey(k) => hex_fingerprint(k),
        };
        let unlocked = match &mut key_part {
            SigningPart::Primary(k) => k.remove_password(&password),
            SigningPart::Subkey(k) => k.remove_password(&password),
        };
        unlocked.map_err(|e| SignError::Unlock {
            fingerprint: fingerprint.clone(),
            reason: e.to_string(),
        })?;
        let signer = Signer {
            key: key_part,
            fingerprint,
            primary,
        };
        signer.sign(&b"teiten signing key check"[..])?;
        Ok(signer)
    }

    /// The fingerprint of the key that signs, upper-case hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The primary key's fingerprint, upper-case hex.
    pub fn primary_fingerprint(&self) -> &str {
        &self.primary
    }

    /// An armoured detached signature of everything `data` reads.
    pub fn sign(&self, data: impl Read) -> Result<String, SignError> {
        let rng = rand::thread_rng();
        let sig = match &self.key {
            SigningPart::Primary(k) => DetachedSignature::sign_binary_data(
                rng,
                k,
                &Password::empty(),
                HashAlgorithm::Sha256,
                data,
            ),
            SigningPart::Subkey(k) => DetachedSignature::sign_binary_data(
                rng,
                k,
                &Password::empty(),
                HashAlgorithm::Sha256,
                data,
            ),
        };
        sig.and_then(|s| s.to_armored_string(ArmorOptions::default()))
            .map_err(|e| SignError::Sign {
                fingerprint: self.fingerprint.clone(),
                reason: e.to_string(),
            })
    }

    /// Signs `file` into `<file>.asc` (written atomically) and returns that path.
    pub fn sign_file(&self, file: &Path) -> Result<PathBuf, SignError> {
        let f = std::fs::File::open(file).map_err(|source| SignError::Read {
            path: file.to_owned(),
            source,
        })?;
        let armour = self.sign(std::io::BufReader::new(f))?;
        let asc = signature_path(file);
        crate::export::write_atomic(&asc, armour.as_bytes()).map_err(|source| {
            SignError::Write {
                path: asc.clone(),
                source,
            }
        })?;
        Ok(asc)
    }
}

fn hex_fingerprint(k: &impl KeyDetails) -> String {
    format!("{:X}", k.fingerprint())
}

/// Whether a self-signature's key expiry has passed.
fn is_expired(sig: &pgp::packet::Signature) -> bool {
    let (Some(created), Some(valid_for)) = (sig.created(), sig.key_expiration_time()) else {
        return false;
    };
    let expires = created.as_secs() as i64 + valid_for.as_secs() as i64;
    valid_for.as_secs() > 0 && expires <= teiten_store::time::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_no_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.asc");
        std::fs::write(&p, "hello").unwrap();
        let e = Signer::load(&p, None).unwrap_err().to_string();
        assert!(e.contains("key.asc") && e.contains("secret key"), "{e}");
        let e = Signer::load(&dir.path().join("missing"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read") && e.contains("missing"), "{e}");
    }

    #[test]
    fn signature_paths() {
        assert_eq!(
            signature_path(Path::new("/o/kr/teiten-kr-2025-01-02.xml.gz")),
            Path::new("/o/kr/teiten-kr-2025-01-02.xml.gz.asc")
        );
    }
}
