//! A private ZooKeeper for tests: own data directory, loopback, a free port.
//!
//! [`ZooKeeper::start`] writes a standalone config into a fresh temporary directory, starts
//! Debian's ZooKeeper 3.8 (`zookeeperd`: `/usr/share/java/zookeeper.jar` and the jars its
//! manifest names) with `java`, waits until it answers `ruok` with `imok`, and kills it and
//! removes the directory when dropped. [`ZooKeeper::kill`] and [`ZooKeeper::restart`] stop and
//! start the same server (same data, same port) for fault tests. ClickHouse servers use it
//! through [`crate::clickhouse::Server::replicas`].
//!
//! The jar is `$TEITEN_ZOOKEEPER_JAR`, else `/usr/share/java/zookeeper.jar`; Java is
//! `$JAVA_HOME/bin/java` or `java` from `PATH`. A missing one is an error that says so: a
//! test that needs ZooKeeper fails, it never skips.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::clickhouse::{free_port, unique_dir};
use crate::daemon;

/// How long ZooKeeper may take to answer its first `ruok`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// ZooKeeper's tick: sessions may last 2 to 20 ticks (1 to 10 s), so that a ClickHouse
/// server notices a lost session within seconds.
const TICK_MS: u32 = 500;

/// A running private ZooKeeper server (standalone).
#[derive(Debug)]
pub struct ZooKeeper {
    dir: PathBuf,
    java: PathBuf,
    classpath: String,
    port: u16,
    child: Option<Child>,
}

fn find_java() -> io::Result<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let p = PathBuf::from(home).join("bin/java");
        if p.is_file() {
            return Ok(p);
        }
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("java"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "java not found in JAVA_HOME, PATH or /usr/bin (ZooKeeper needs it: \
                 `apt-get install zookeeperd` pulls in a JRE; see scripts/install-deps)",
            )
        })
}

fn find_classpath() -> io::Result<String> {
    let jar = std::env::var_os("TEITEN_ZOOKEEPER_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/zookeeper.jar"));
    if !jar.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} not found (install ZooKeeper with `apt-get install zookeeperd`, see \
                 scripts/install-deps, or set TEITEN_ZOOKEEPER_JAR)",
                jar.display()
            ),
        ));
    }
    // The jar's manifest names its dependencies; a logging backend is optional.
    let mut cp = jar.display().to_string();
    let simple = jar.with_file_name("slf4j-simple.jar");
    if simple.is_file() {
        cp = format!("{cp}:{}", simple.display());
    }
    Ok(cp)
}

impl ZooKeeper {
    /// Starts a standalone server on a free loopback port.
    pub fn start() -> io::Result<ZooKeeper> {
        let java = find_java()?;
        let classpath = find_classpath()?;
        let dir = unique_dir("teiten-zookeeper")?;
        let port = free_port()?;
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(
            dir.join("zoo.cfg"),
            format!(
                "tickTime={TICK_MS}\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n",
                dir.join("data").display()
            ),
        )?;
        let mut zk = ZooKeeper {
            dir,
            java,
            classpath,
            port,
            child: None,
        };
        zk.restart()?;
        Ok(zk)
    }

    /// Starts the server again (same data and port) after [`ZooKeeper::kill`], and waits
    /// until it answers.
    pub fn restart(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut cmd = Command::new(&self.java);
        cmd.args(["-Xmx256m", "-XX:+UseSerialGC", "-cp", &self.classpath])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.join("zoo.cfg"))
            .current_dir(&self.dir);
        let child = daemon::Start {
            what: "ZooKeeper",
            log: &self.dir.join("zookeeper.log"),
            timeout: START_TIMEOUT,
            poll: Duration::from_millis(100),
        }
        .run(
            &mut cmd,
            || self.four_letter("ruok").is_ok_and(|a| a == "imok"),
            || self.log_tail(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the server at once (SIGKILL); [`ZooKeeper::restart`] brings it back.
    pub fn kill(&mut self) {
        daemon::kill(&mut self.child);
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's private directory (data, log, config).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends a four-letter command (`ruok`, `srvr`) and returns the answer.
    pub fn four_letter(&self, cmd: &str) -> io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(cmd.as_bytes())?;
        s.shutdown(Shutdown::Write)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("zookeeper.log")).unwrap_or_default();
        let start = s.len().saturating_sub(2000);
        s.get(start..).unwrap_or("").to_owned()
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.kill();
        daemon::remove_dir("ZooKeeper", &self.dir);
    }
}
