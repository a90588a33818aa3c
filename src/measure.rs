//! Measures a child process the way the benchmarks report it: wall time, CPU time and peak
//! resident memory (from `wait4`'s rusage of that one child).

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What one run cost.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Wall-clock time from start to exit.
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Peak resident set size in KiB.
    pub max_rss_kib: u64,
    /// Exit status.
    pub status: ExitStatus,
}

/// Waits for `child` and returns its cost (it must have been started `started` ago).
pub fn wait(child: Child, started: Instant) -> Measured {
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own un-reaped child; status and ru point to live locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    std::mem::forget(child); // already reaped
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
        status: ExitStatus::from_raw(status),
    }
}

/// Runs `cmd` with standard output discarded and returns its cost; panics if it fails.
pub fn run(cmd: &mut Command) -> Measured {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let m = wait(child, started);
    assert!(m.status.success(), "{cmd:?} failed: {}", m.status);
    m
}
