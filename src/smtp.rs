//! A partner's mail server for tests: `tests/partners/smtp_server.py` (aiosmtpd, from PyPI in
//! `.ci/py`) on a free loopback port, STARTTLS and AUTH required, each accepted message kept
//! as received; and `tests/partners/mail_check.py`, which takes a received message apart as a
//! partner's mail client would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{root, run_ok};

/// The running server; killed on drop.
pub struct SmtpServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where accepted messages go: `<n>.eml` (as received) and `<n>.rcpt`.
    pub maildir: PathBuf,
}

fn python_path() -> String {
    std::env::var("PYTHONPATH").unwrap_or_else(|_| root().join(".ci/py").display().to_string())
}

impl SmtpServer {
    /// Starts the server with the certificate and key of [`crate::tls::certificates`] in
    /// `dir`, accepting AUTH by `user`/`password`; the first `fail` messages are answered
    /// 451. Messages go to `dir/maildir`.
    pub fn start(dir: &Path, user: &str, password: &str, fail: u32) -> SmtpServer {
        let maildir = dir.join("maildir");
        std::fs::create_dir_all(&maildir).unwrap();
        let port = crate::clickhouse::free_port().expect("a free port");
        let mut child = Command::new("python3")
            .arg(root().join("tests/partners/smtp_server.py"))
            .arg(port.to_string())
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .args([user, password])
            .arg(&maildir)
            .arg(fail.to_string())
            .env("PYTHONPATH", python_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP server did not start (is aiosmtpd in .ci/py? scripts/test installs it)"
        );
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<PathBuf> {
        let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(&self.maildir)
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".eml")?
                    .parse()
                    .ok()?;
                Some((n, p))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// Waits up to `timeout` for `n` messages.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<PathBuf> {
        let start = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n || start.elapsed() > timeout {
                return m;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Takes a received message apart into `out` (Python's `email` package): every attachment
/// decoded under its file name, and for a PGP/MIME message the signed part's bytes exactly as
/// sent (`signed.part`, per RFC 3156 and RFC 2046) and the signature (`signature.asc`).
/// Returns the summary it prints (headers, content type, protocol, micalg, attachments).
pub fn take_apart(eml: &Path, out: &Path) -> serde_json::Value {
    std::fs::create_dir_all(out).unwrap();
    let text = run_ok(
        Command::new("python3")
            .arg(root().join("tests/partners/mail_check.py"))
            .arg(eml)
            .arg(out),
    );
    serde_json::from_str(&text).expect("mail_check.py prints JSON")
}
