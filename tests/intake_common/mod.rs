//! Shared by the intake's end-to-end tests: the real `teiten-intake run` as a child process.
#![allow(dead_code)] // Each test file uses a different part of this module.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

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
