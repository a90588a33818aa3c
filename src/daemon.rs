//! What the harness's private servers (ClickHouse, ZooKeeper) share: waiting for a child that
//! was just started to answer, killing it, and removing its directory afterwards unless a test
//! failed (the logs are kept to look at).

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a private server is started and when it counts as up.
pub(crate) struct Start<'a> {
    /// The server's name in errors ("clickhouse-server", "ZooKeeper").
    pub what: &'a str,
    /// Its stdout and stderr go here, appended (earlier runs' output is kept for the failure
    /// messages and for a look after a failed test).
    pub log: &'a Path,
    /// How long it may take to answer.
    pub timeout: Duration,
    /// How often `ready` is asked.
    pub poll: Duration,
}

impl Start<'_> {
    /// Spawns `cmd` (stdin closed, output to [`Start::log`]) and waits until `ready` answers
    /// true (see [`wait_ready`]).
    pub(crate) fn run(
        &self,
        cmd: &mut Command,
        ready: impl FnMut() -> bool,
        log_tail: impl Fn() -> String,
    ) -> io::Result<Child> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| {
                let program = cmd.get_program().to_string_lossy().into_owned();
                io::Error::new(e.kind(), format!("starting {} ({program}): {e}", self.what))
            })?;
        wait_ready(child, self.what, self.timeout, self.poll, ready, log_tail)
    }
}

/// Polls `ready` every `poll` until it answers true and hands `child` back. Fails with the tail
/// of the log (`log_tail`) when the child exits first, or when `timeout` passes (the child is
/// then killed).
pub(crate) fn wait_ready(
    mut child: Child,
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut ready: impl FnMut() -> bool,
    log_tail: impl Fn() -> String,
) -> io::Result<Child> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "{what} exited with {status} during start-up; log: {}",
                log_tail()
            )));
        }
        if Instant::now() > deadline {
            kill(&mut Some(child));
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{what} did not answer within {timeout:?}; log: {}",
                    log_tail()
                ),
            ));
        }
        std::thread::sleep(poll);
    }
}

/// Kills the child at once (SIGKILL), as a crash would, and reaps it.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// On drop: the server's directory goes, unless the test is failing (then it says where the
/// logs are).
pub(crate) fn remove_dir(what: &str, dir: &Path) {
    if std::thread::panicking() {
        eprintln!("{what}: keeping {} (logs) after the failure", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}
