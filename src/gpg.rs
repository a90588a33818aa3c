//! GnuPG (Debian `gnupg`) for tests, on both sides of the exchange: our CSIRT's key made with
//! `gpg --quick-gen-key` and exported as `exchange.signing_key` reads it, and a partner's
//! keyring that holds only our public key and checks signatures with `gpg --verify`, as a
//! partner would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{require_tool, run_ok, try_run};

/// A private `GNUPGHOME`, removed with the value.
pub struct Keyring {
    home: Home,
}

struct Home(PathBuf);

impl Home {
    fn path(&self) -> &Path {
        &self.0
    }
}

/// A key made in a [`Keyring`].
pub struct Key {
    /// The primary key's fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The armoured secret key (`gpg --export-secret-keys --armor`), written to a file.
    pub secret: PathBuf,
    /// The armoured public key.
    pub public: PathBuf,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        require_tool("gpg", "gnupg");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Short: gpg-agent's socket lives inside it (sun_path is 108 bytes).
        let home = std::env::temp_dir().join(format!("tg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("a temporary GNUPGHOME");
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Keyring { home: Home(home) }
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path())
            .args(["--batch", "--no-tty", "--quiet"]);
        c
    }

    /// Makes a key for `uid`: an Ed25519 primary key that certifies, and a signing subkey
    /// (`signing_subkey`) or a primary that signs itself; protected by `passphrase` unless it
    /// is empty. Exports it into the keyring's directory.
    pub fn generate(&self, uid: &str, passphrase: &str, signing_subkey: bool) -> Key {
        let usage = if signing_subkey { "cert" } else { "sign" };
        run_ok(self.gpg().args([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            uid,
            "ed25519",
            usage,
            "never",
        ]));
        let fingerprint = self.fingerprint(uid);
        if signing_subkey {
            run_ok(self.gpg().args([
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
                "--quick-add-key",
                &fingerprint,
                "ed25519",
                "sign",
                "never",
            ]));
        }
        let secret = self.home.path().join(format!("{fingerprint}.secret.asc"));
        let public = self.home.path().join(format!("{fingerprint}.public.asc"));
        let out = run_ok(self.gpg().args([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            passphrase,
            "--armor",
            "--export-secret-keys",
            &fingerprint,
        ]));
        std::fs::write(&secret, out).unwrap();
        std::fs::write(
            &public,
            run_ok(self.gpg().args(["--armor", "--export", &fingerprint])),
        )
        .unwrap();
        Key {
            fingerprint,
            secret,
            public,
        }
    }

    /// The fingerprint of the (one) key of `uid`.
    pub fn fingerprint(&self, uid: &str) -> String {
        self.fingerprints(uid).swap_remove(0)
    }

    /// The fingerprints of the key of `uid` (a user id or fingerprint): the primary key's,
    /// then each subkey's.
    pub fn fingerprints(&self, uid: &str) -> Vec<String> {
        let out = run_ok(self.gpg().args(["--with-colons", "--list-keys", uid]));
        out.lines()
            .filter(|l| l.starts_with("fpr:"))
            .filter_map(|l| l.split(':').nth(9))
            .map(str::to_owned)
            .collect()
    }

    /// Imports an armoured public key.
    pub fn import(&self, public: &Path) {
        run_ok(self.gpg().arg("--import").arg(public));
    }

    /// `gpg --verify signature file`: Ok with gpg's machine-readable status lines when the
    /// signature is good (`GOODSIG`, `VALIDSIG <fingerprint> ...`), Err with gpg's output when
    /// not.
    pub fn verify(&self, signature: &Path, file: &Path) -> Result<String, String> {
        let out = try_run(
            self.gpg()
                .args(["--status-fd", "1", "--verify"])
                .arg(signature)
                .arg(file),
        )?;
        if out.lines().any(|l| l.starts_with("[GNUPG:] GOODSIG")) {
            Ok(out)
        } else {
            Err(out)
        }
    }

    /// The fingerprint of the key whose signature `verify` accepted (from `VALIDSIG`).
    pub fn signed_by(status: &str) -> Option<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned)
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        // The agent gpg started for this home would outlive it.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
        let _ = std::fs::remove_dir_all(self.home.path());
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring::new()
    }
}
