//! Shared by the intake's end-to-end tests: the real `teiten-intake run` as a child process.
#![allow(dead_code)] // Each test file uses a different part of this module.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use teiten::clickhouse::Server;

/// A `teiten-intake run` with its config; its standard error goes to `log`.
pub struct Intake {
    pub config: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Intake {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(teiten::bin("teiten-intake"))
                .args(["run", "--config"])
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("teiten-intake starts"),
        );
    }

    pub fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The reports of `reporter` in database `db`: (rows, distinct ids).
pub fn reports(ch: &Server, db: &str, reporter: &str) -> (u64, u64) {
    let out = ch
        .query(&format!(
            "SELECT count(), uniqExact(id) FROM {db}.internal_reports WHERE reporter = '{reporter}'"
        ))
        .unwrap();
    let mut it = out.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Waits until `n` reports of `reporter` are stored, then checks that no more come within a
/// moment and that each id is stored once.
pub fn wait_reports(ch: &Server, db: &str, reporter: &str, intake: &Intake, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while reports(ch, db, reporter).0 < n {
        assert!(
            Instant::now() < deadline,
            "{:?} reports, expected {n}; intake log:\n{}",
            reports(ch, db, reporter),
            intake.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        reports(ch, db, reporter),
        (n, n),
        "intake log:\n{}",
        intake.log_text()
    );
}
