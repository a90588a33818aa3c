//! A private ClickHouse server for tests: own data directory, loopback, a free port.
//!
//! [`Server::start`] writes a config into a fresh temporary directory, starts
//! `clickhouse-server` on free loopback ports (HTTP and native TCP), waits until it answers
//! `/ping`, and kills it and removes the directory when dropped. [`Server::kill`] and
//! [`Server::restart`] stop and start the same server (same data, same ports) for fault tests;
//! [`Server::cluster`] starts several servers that each know all of them as the shards of one
//! cluster, for `Distributed` tables; [`Server::replicas`] starts several servers as the
//! replicas of one shard, with a private [`crate::zookeeper::ZooKeeper`], for
//! `Replicated*MergeTree` tables.
//!
//! Besides `default` (no password), every server has the user [`READER_USER`] (password
//! [`READER_PASSWORD`]) whose profile is `readonly = 2`: it may read and set query settings,
//! not write (the dashboard's `[query] user`).
//!
//! The binary is `$TEITEN_CLICKHOUSE_SERVER`, else `clickhouse-server` from `PATH`, `/usr/sbin`
//! or `/usr/bin` (Debian's package `clickhouse-server`). No binary is an error that says so:
//! a test that needs ClickHouse fails, it never skips.
//!
//! Std only, so that the harness adds no dependency to the crate.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::daemon;

/// How long a server may take to answer its first `/ping`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private ClickHouse server.
#[derive(Debug)]
pub struct Server {
    dir: PathBuf,
    binary: PathBuf,
    http_port: u16,
    tcp_port: u16,
    child: Option<Child>,
}

/// Where the server binary is, with a clear error when it is missing.
fn find_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TEITEN_CLICKHOUSE_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/bin".into());
    dirs.into_iter()
        .map(|d| d.join("clickhouse-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "clickhouse-server not found in PATH, /usr/sbin or /usr/bin (install it with \
                 `apt-get install clickhouse-server`, or set TEITEN_CLICKHOUSE_SERVER)",
            )
        })
}

/// The read-only user of every test server.
pub const READER_USER: &str = "teiten_reader";
/// Its password.
pub const READER_PASSWORD: &str = "reader-pw";

/// A loopback TCP port that was free a moment ago, taken from below the kernel's ephemeral
/// range (`net.ipv4.ip_local_port_range`), so that no client's `connect` can take it between
/// this call and the server's `bind`. (A port from `bind(0)` is an ephemeral one: in CI the
/// abuse tests' 50,000 connections took one before ClickHouse bound it, "Address already in
/// use".) Ports are handed out in turn from a start that differs per process, each checked by
/// binding it, and never twice in one process.
pub fn free_port() -> io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = ephemeral_low().clamp(LOWEST_PORT + 1000, 65_535);
    let span = low - LOWEST_PORT;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = (std::process::id().wrapping_mul(2_654_435_761) ^ nanos) % span;
    let _ = NEXT.compare_exchange(0, seed + 1, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..span {
        let k = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = (LOWEST_PORT + k) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free loopback port in {LOWEST_PORT}..{low}"),
    ))
}

/// The lowest port [`free_port`] hands out.
const LOWEST_PORT: u32 = 20_000;

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

pub(crate) fn unique_dir(prefix: &str) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The `remote_servers` of a test cluster: one shard per slice of `shards`, each replica a
/// native TCP port on 127.0.0.1. With `replicated`, ClickHouse's own replication runs between
/// a shard's replicas (`internal_replication`: a Distributed INSERT writes to one replica,
/// which replicates it).
fn remote_servers_xml<'a>(
    cluster: &str,
    shards: impl IntoIterator<Item = &'a [u16]>,
    replicated: bool,
) -> String {
    let mut xml = format!("<remote_servers><{cluster}>");
    for replicas in shards {
        xml.push_str("<shard>");
        if replicated {
            xml.push_str("<internal_replication>true</internal_replication>");
        }
        for port in replicas {
            let _ = write!(
                xml,
                "<replica><host>127.0.0.1</host><port>{port}</port></replica>"
            );
        }
        xml.push_str("</shard>");
    }
    let _ = write!(xml, "</{cluster}></remote_servers>");
    xml
}

/// How long a replica's ZooKeeper session lasts without an answer: short, so that a lost
/// ZooKeeper (or a killed replica's stale session) is noticed within seconds.
const ZOOKEEPER_SESSION_MS: u32 = 4000;

impl Server {
    /// Starts a single server on free ports.
    /// Should another process take a port first, it tries again on others (three times).
    pub fn start() -> io::Result<Server> {
        let mut tries = 0;
        loop {
            match Server::start_with(free_port()?, free_port()?, "") {
                Err(e) if tries < 2 && e.to_string().contains("Address already in use") => {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    /// Starts `n` servers; each one's config names all of them, in order, as the shards of
    /// `cluster`.
    pub fn cluster(cluster: &str, n: usize) -> io::Result<Vec<Server>> {
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<io::Result<_>>()?;
        let tcp: Vec<u16> = ports.iter().map(|p| p.1).collect();
        let extra = remote_servers_xml(cluster, tcp.chunks(1), false);
        ports
            .into_iter()
            .map(|(http, tcp)| Server::start_with(http, tcp, &extra))
            .collect()
    }

    /// Starts `n` servers as the `n` replicas of shard 1 of `cluster`, coordinated by `zk`:
    /// each has the macros `{shard}` = `1` and `{replica}` = `r<i>` (`r0`, `r1`, ...), its own
    /// interserver port for fetching parts from the others, and all of them in `remote_servers`
    /// with `internal_replication`.
    pub fn replicas(
        cluster: &str,
        n: usize,
        zk: &crate::zookeeper::ZooKeeper,
    ) -> io::Result<Vec<Server>> {
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?, free_port()?)))
            .collect::<io::Result<_>>()?;
        let tcp: Vec<u16> = ports.iter().map(|p| p.1).collect();
        let shard = remote_servers_xml(cluster, [&tcp[..]], true);
        let zk_port = zk.port();
        ports
            .into_iter()
            .enumerate()
            .map(|(i, (http, tcp, interserver))| {
                let extra = format!(
                    "{shard}\n  <interserver_http_port>{interserver}</interserver_http_port>\n  \
                     <interserver_http_host>127.0.0.1</interserver_http_host>\n  \
                     <zookeeper><node><host>127.0.0.1</host><port>{zk_port}</port></node>\
                     <session_timeout_ms>{ZOOKEEPER_SESSION_MS}</session_timeout_ms></zookeeper>\n  \
                     <macros><shard>1</shard><replica>r{i}</replica></macros>"
                );
                Server::start_with(http, tcp, &extra)
            })
            .collect()
    }

    fn start_with(http_port: u16, tcp_port: u16, extra_xml: &str) -> io::Result<Server> {
        let binary = find_binary()?;
        let dir = unique_dir("teiten-clickhouse")?;
        let d = dir.display();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog><console>0</console></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  {extra_xml}
</yandex>
"#
        );
        std::fs::write(dir.join("config.xml"), config)?;
        std::fs::write(
            dir.join("users.xml"),
            r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default><reader><max_memory_usage>4000000000</max_memory_usage><readonly>2</readonly></reader></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default><teiten_reader><password>reader-pw</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>reader</profile><quota>default</quota></teiten_reader></users>
  <quotas><default></default></quotas>
</yandex>
"#,
        )?;
        let mut server = Server {
            dir,
            binary,
            http_port,
            tcp_port,
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// Starts the server again (same data directory and ports) after [`Server::kill`], and
    /// waits until it answers.
    pub fn restart(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut cmd = Command::new(&self.binary);
        cmd.arg(format!(
            "--config-file={}",
            self.dir.join("config.xml").display()
        ))
        .current_dir(&self.dir);
        let ready = || {
            self.http("GET", "/ping", b"")
                .is_ok_and(|(code, body)| code == 200 && body.starts_with(b"Ok."))
        };
        let child = daemon::Start {
            what: "clickhouse-server",
            log: &self.dir.join("stdout.log"),
            timeout: START_TIMEOUT,
            poll: Duration::from_millis(50),
        }
        .run(&mut cmd, ready, || self.log_tail())?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the server at once (SIGKILL), as a crash would; [`Server::restart`] brings it back.
    pub fn kill(&mut self) {
        daemon::kill(&mut self.child);
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, as with an
    /// overloaded server. [`Server::resume`] continues it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status();
        }
    }

    /// The server's HTTP interface, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The native TCP port (for `clickhouse-client --port`).
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// The server's private directory (data, logs, config).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs one statement over HTTP and returns the body (TabSeparated), or the server's error
    /// text as an error.
    pub fn query(&self, sql: &str) -> io::Result<String> {
        let (status, body) = self.http("POST", "/", sql.as_bytes())?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 200 {
            Ok(text)
        } else {
            Err(io::Error::other(format!(
                "ClickHouse answered {status} to `{sql}`: {text}"
            )))
        }
    }

    /// Runs `statements` one after the other (e.g. a schema's `CREATE`s), stopping at the first
    /// the server refuses; its error names the statement.
    pub fn query_all<S: AsRef<str>>(
        &self,
        statements: impl IntoIterator<Item = S>,
    ) -> io::Result<()> {
        for sql in statements {
            self.query(sql.as_ref())?;
        }
        Ok(())
    }

    /// A minimal HTTP/1.0 exchange (the server closes the connection after answering).
    fn http(&self, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        s.write_all(body)?;
        s.shutdown(Shutdown::Write)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let head_end = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| io::Error::other("HTTP answer without a header end"))?;
        let status = std::str::from_utf8(&resp[..head_end])
            .ok()
            .and_then(|h| h.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other("HTTP answer without a status"))?;
        Ok((status, resp[head_end + 4..].to_vec()))
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        for f in ["server.err.log", "stdout.log"] {
            if let Ok(s) = std::fs::read_to_string(self.dir.join(f)) {
                let start = s.len().saturating_sub(2000);
                text.push_str(s.get(start..).unwrap_or(""));
            }
        }
        text
    }
}

/// `INSERT ... SELECT` of `n` scan events from `sensor` spread over the day starting at `day`
/// (Unix seconds) into `table` (a `scan_events` table): TCP (one in ten UDP) from distinct
/// sources all placed in `AU`, to one sensor address, six popular ports. For tests and
/// benchmarks that need a large day fast (generated inside the server). Every row is stored as
/// published (`withheld` 0), as the aggregator is bypassed.
pub fn scan_day_sql(table: &str, sensor: &str, day: i64, n: u64) -> String {
    scan_day_sql_from(table, sensor, day, n, 3_000_000_000)
}

/// [`scan_day_sql`] with the events drawn from `sources` distinct source addresses (each then
/// sends about `n / sources` packets over up to twelve protocol and port pairs), as a day of a
/// real darknet is: what an aggregated export groups.
pub fn scan_day_sql_from(table: &str, sensor: &str, day: i64, n: u64, sources: u64) -> String {
    format!(
        "INSERT INTO {table} SELECT '{sensor}', 1, intDiv(number, 100000), \
         toUInt32(number % 100000), toDateTime({day} + intDiv(number * 86400, {n})), \
         toUInt32(number % 1000000), if(number % 10 = 0, 17, 6), \
         toFixedString(IPv6StringToNum(concat('::ffff:', IPv4NumToString(toUInt32(16777216 + \
         cityHash64(number) % {sources})))), 16), \
         toFixedString(IPv6StringToNum('::ffff:198.18.0.1'), 16), \
         toUInt16(1024 + number % 60000), toUInt16([22, 23, 80, 443, 445, 3389][number % 6 + 1]), \
         2, 50, 1, 40, 7, 1024, 'scan', 0, 'AU', 0, 13335 FROM system.numbers LIMIT {n}"
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        daemon::remove_dir("clickhouse-server", &self.dir);
    }
}
