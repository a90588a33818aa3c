//! A private ClamAV daemon for tests: Debian's `clamd` in the foreground on a Unix socket in
//! its own directory, with only the signatures the test writes (no network, no freshclam) and
//! the test's `VirusEvent` command; files are scanned through clamd's socket protocol, the way
//! clamdscan and on-access scanning ask it.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::daemon;

/// The clamd binary (Debian `clamav-daemon`).
pub const CLAMD: &str = "/usr/sbin/clamd";

/// A running clamd; killed on drop.
pub struct Clamd {
    child: Option<Child>,
    dir: PathBuf,
    /// Its socket.
    pub socket: PathBuf,
}

impl Clamd {
    /// Starts clamd with the signature files `databases` (file name, content: `.ndb` body
    /// signatures, `.hdb` hashes, ...) and `virus_event` as its `VirusEvent` command.
    pub fn start(databases: &[(&str, &str)], virus_event: &str) -> io::Result<Clamd> {
        assert!(
            Path::new(CLAMD).is_file(),
            "{CLAMD} is not installed: `apt-get install clamav-daemon` (scripts/test does this)"
        );
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("teiten-clamd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.as_path();
        let db = d.join("db");
        std::fs::create_dir_all(&db)?;
        for (name, body) in databases {
            std::fs::write(db.join(name), body)?;
        }
        let socket = d.join("clamd.sock");
        let conf = d.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "LocalSocket {}\nDatabaseDirectory {}\nTemporaryDirectory {}\nPidFile {}\n\
                 LogFile {}\nLogTime yes\nForeground yes\nVirusEvent {virus_event}\n",
                socket.display(),
                db.display(),
                d.display(),
                d.join("clamd.pid").display(),
                d.join("clamd.log").display(),
            ),
        )?;
        let log = d.join("stdout.log");
        let tail = || {
            let mut s = std::fs::read_to_string(&log).unwrap_or_default();
            s += &std::fs::read_to_string(d.join("clamd.log")).unwrap_or_default();
            s
        };
        let child = daemon::Start {
            what: "clamd",
            log: &log,
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(50),
        }
        .run(
            Command::new(CLAMD).arg("-c").arg(&conf),
            || ping(&socket).is_ok(),
            tail,
        )?;
        Ok(Clamd {
            child: Some(child),
            dir,
            socket,
        })
    }

    /// Asks clamd to scan `path` (a file or a directory, on this machine, every file even
    /// after a detection: `CONTSCAN`); its answer, one
    /// line per file (`<path>: <signature> FOUND`, `<path>: OK`).
    pub fn scan(&self, path: &Path) -> io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.write_all(format!("nCONTSCAN {}\n", path.display()).as_bytes())?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// clamd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("clamd.log")).unwrap_or_default()
    }
}

fn ping(socket: &Path) -> io::Result<()> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"nPING\n")?;
    let mut a = String::new();
    s.read_to_string(&mut a)?;
    if a.trim() == "PONG" {
        Ok(())
    } else {
        Err(io::Error::other(format!("clamd answered {a:?} to PING")))
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        daemon::kill(&mut self.child);
        daemon::remove_dir("clamd", &self.dir);
    }
}
