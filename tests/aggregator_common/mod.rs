//! Shared by the aggregator's end-to-end tests: start the real `teiten-aggregator` binary
//! against a private ClickHouse, register sensors with its CLI, build and post batches the way
//! the sensor does.
#![allow(dead_code)] // Each test file uses a different part of this module.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use teiten::clickhouse::{free_port, Server};
use teiten_wire::{Batch, BatchId, Class, Event, SensorStats, Tags, CONTENT_TYPE, INGEST_PATH};

/// A running aggregator process.
pub struct Agg {
    pub child: Option<Child>,
    pub url: String,
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

/// Writes a config for ClickHouse at `ch_url`, database `db`, plus `extra` TOML sections.
pub fn write_config(dir: &std::path::Path, ch_url: &str, db: &str, extra: &str) -> (PathBuf, u16) {
    write_config_with(dir, ch_url, db, "", extra)
}

/// Same, with more keys in `[clickhouse]` (cluster mode).
pub fn write_config_with(
    dir: &std::path::Path,
    ch_url: &str,
    db: &str,
    ch_keys: &str,
    extra: &str,
) -> (PathBuf, u16) {
    let port = free_port().expect("free port");
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\n\n[clickhouse]\nurl = \"{ch_url}\"\ndatabase = \"{db}\"\n{ch_keys}\n[registry]\nrefresh_secs = 1\n\n{extra}\n"
    );
    let path = dir.join("aggregator.toml");
    std::fs::write(&path, text).unwrap();
    (path, port)
}

/// Runs a `teiten-aggregator` CLI command with the config `config`; returns (success, stdout +
/// stderr).
pub fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(teiten::bin("teiten-aggregator"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

impl Agg {
    /// Starts `teiten-aggregator serve` and waits until `/health` answers 200.
    pub fn start(ch: &Server, db: &str, extra: &str) -> Agg {
        Agg::start_url_with_clickhouse_keys(&ch.url(), db, "", extra)
    }

    /// Same, with an explicit ClickHouse URL, more `[clickhouse]` keys and extra config
    /// (cluster mode).
    pub fn start_url_with_clickhouse_keys(
        ch_url: &str,
        db: &str,
        ch_keys: &str,
        extra: &str,
    ) -> Agg {
        let dir = tempfile::tempdir().unwrap();
        let (config, port) = write_config_with(dir.path(), ch_url, db, ch_keys, extra);
        let mut agg = Agg {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            config,
            log: dir.path().join("aggregator.log"),
            dir,
        };
        agg.restart();
        agg
    }

    /// Starts the process again after [`Agg::kill`] or [`Agg::terminate`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "aggregator already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(teiten::bin("teiten-aggregator"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("TEITEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("teiten-aggregator starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = ureq::get(&format!("{}/health", self.url))
                .timeout(Duration::from_secs(2))
                .call()
            {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("aggregator exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "aggregator not healthy in 60 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("aggregator running");
        let pid = c.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "aggregator did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal by name (e.g. `HUP`).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Runs a CLI command with this config; returns (success, stdout + stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        cli(&self.config, args)
    }

    /// `sensor add ID` and the printed token. Waits for the aggregator's registry refresh
    /// (1 s in test configs) so that the token is known when this returns.
    pub fn add_sensor(&self, id: &str) -> String {
        let (ok, out) = self.cli(&["sensor", "add", id]);
        assert!(ok, "sensor add failed: {out}");
        std::thread::sleep(Duration::from_millis(1500));
        out.lines()
            .find(|l| l.starts_with("tt_"))
            .unwrap_or_else(|| panic!("no token printed: {out}"))
            .to_owned()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        ureq::get(&format!("{}/metrics", self.url))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }
}

impl Drop for Agg {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The answer to a POST: status, Retry-After, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// POSTs raw bytes as the sensor does. Connection errors are status 0.
pub fn post_raw(url: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> Answer {
    let mut req = ureq::post(&format!("{url}{INGEST_PATH}"))
        .timeout(Duration::from_secs(60))
        .set("Content-Type", content_type);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match send(req, body) {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status: 0,
                retry_after: None,
                body: e,
            }
        }
    };
    let status = resp.status();
    let retry_after = resp.header("Retry-After").map(str::to_owned);
    let mut body = String::new();
    let _ = resp.into_reader().read_to_string(&mut body);
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Sends `body`: any HTTP status is an answer; only a transport error is an error (its text).
pub fn send(req: ureq::Request, body: &[u8]) -> Result<ureq::Response, String> {
    match req.send_bytes(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => Ok(r),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends `body` and reads the answer: its status and its body as JSON (a JSON string of the
/// text when it is not JSON). Fails the test on a transport error, naming `what`.
pub fn send_json(req: ureq::Request, body: &[u8], what: &str) -> (u16, serde_json::Value) {
    let resp = send(req, body).unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status();
    let text = resp
        .into_string()
        .unwrap_or_else(|e| panic!("{what}: reading the answer: {e}"));
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// POSTs an encoded batch.
pub fn post(url: &str, token: &str, batch: &Batch) -> Answer {
    post_raw(url, Some(token), CONTENT_TYPE, &teiten_wire::encode(batch))
}

/// POSTs `batch` the way the sensor retries it: again every 200 ms, at most 50 more times,
/// until it is answered 200. Returns the last answer.
pub fn post_until_ok(url: &str, token: &str, batch: &Batch) -> Answer {
    let mut answer = post(url, token, batch);
    for _ in 0..50 {
        if answer.status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        answer = post(url, token, batch);
    }
    answer
}

/// A batch of `n` events. Sources cycle over a few real prefixes (so the geo lookup has work)
/// and IPv6 every 7th event; timestamps start at `ts_us`.
pub fn batch(sensor: &str, epoch: u64, seq: u64, n: usize, ts_us: i64) -> Batch {
    let events = (0..n)
        .map(|i| {
            let v6 = i % 7 == 6;
            let (src, dst) = if v6 {
                (
                    IpAddr::V6(Ipv6Addr::new(
                        0x2001,
                        0x2,
                        0,
                        0,
                        0,
                        0,
                        0,
                        (i % 65536) as u16,
                    )),
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                )
            } else {
                (
                    IpAddr::V4(Ipv4Addr::new(
                        1,
                        (i % 4) as u8,
                        (i / 256 % 256) as u8,
                        (i % 256) as u8,
                    )),
                    IpAddr::V4(Ipv4Addr::new(198, 18, 1, (i % 200) as u8)),
                )
            };
            Event {
                ts_us: ts_us + i as i64 * 10,
                proto: if i.is_multiple_of(5) { 17 } else { 6 },
                src,
                dst,
                sport: 40000 + (i % 1000) as u16,
                dport: [22u16, 23, 80, 443, 3389, 8080][i % 6],
                tcp_flags: 2,
                ttl: 54,
                ip_id: 54321,
                ip_len: 40,
                seq: i as u32,
                window: 1024,
                class: Class::Scan,
                tags: Tags::ZMAP,
            }
        })
        .collect();
    Batch {
        id: BatchId {
            sensor_id: sensor.into(),
            epoch,
            seq,
        },
        sealed_us: ts_us,
        stats: SensorStats {
            packets_captured: seq * 1000,
            kernel_drops: seq,
            events_recorded: seq * n as u64,
            spool_bytes: 4096,
            ..SensorStats::default()
        },
        events,
    }
}

/// What `cmd` writes to its stdout given `input` on its stdin (written from a thread, so a
/// large input cannot dead-lock against the output). Fails the test when `cmd` cannot run.
pub fn pipe(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    writer
        .join()
        .expect("writer thread")
        .unwrap_or_else(|e| panic!("{what}: writing its input: {e}"));
    assert!(out.status.success(), "{what}: {}", out.status);
    out.stdout
}

/// Now, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A single number from a query.
pub fn scalar(ch: &Server, sql: &str) -> u64 {
    let out = ch.query(sql).unwrap();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{sql}` returned `{out}`"))
}

/// Asserts that `table` has `n` rows with `n` distinct values of `column`.
pub fn assert_rows_distinct(ch: &Server, table: &str, column: &str, n: u64) {
    assert_eq!(
        scalar(ch, &format!("SELECT count() FROM {table}")),
        n,
        "{table}"
    );
    assert_eq!(
        scalar(ch, &format!("SELECT uniqExact({column}) FROM {table}")),
        n,
        "{table}: distinct {column}"
    );
}

/// Waits up to 10 s for a query to return `expected`.
pub fn eventually(ch: &Server, sql: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = scalar(ch, sql);
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` returned {got}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The config of a real `teiten-sensor` shipping to `agg_url` as `sensor_id` with `token`
/// (monitoring 198.18.1.0/24), its spool in `spool`, sealing a batch at `max_events` events or
/// after 200 ms. `aggregator` holds the further lines of the `[aggregator]` table (timeouts).
pub fn sensor_toml(
    sensor_id: &str,
    agg_url: &str,
    token: &str,
    aggregator: &str,
    spool: &std::path::Path,
    max_events: usize,
) -> String {
    format!(
        "sensor_id = \"{sensor_id}\"\nmonitored_prefixes = [\"198.18.1.0/24\"]\n\n\
         [aggregator]\nurls = [\"{agg_url}\"]\nallow_insecure = true\ntoken = \"{token}\"\n\
         {aggregator}\n[spool]\ndir = \"{}\"\n\n\
         [batch]\nmax_events = {max_events}\nmax_interval_ms = 200\n",
        spool.display()
    )
}

/// Writes `dir/sensor.toml` for the sensor `lab-1` with its spool in `dir/spool` (see
/// [`sensor_toml`] for the rest) and returns its path.
pub fn lab_sensor_config(
    dir: &std::path::Path,
    agg_url: &str,
    token: &str,
    aggregator: &str,
    max_events: usize,
) -> PathBuf {
    let path = dir.join("sensor.toml");
    let toml = sensor_toml(
        "lab-1",
        agg_url,
        token,
        aggregator,
        &dir.join("spool"),
        max_events,
    );
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// Writes a config for the real `teiten-sensor` shipping to `agg_url` as `sensor_id`
/// (monitoring 198.18.1.0/24) with its spool in `dir/spool`, and returns its path and the
/// sensor's metrics address.
pub fn sensor_config(
    dir: &std::path::Path,
    agg_url: &str,
    sensor_id: &str,
    token: &str,
) -> (PathBuf, String) {
    let metrics = format!("127.0.0.1:{}", free_port().expect("free port"));
    let path = dir.join("sensor.toml");
    let toml = sensor_toml(
        sensor_id,
        agg_url,
        token,
        "timeout_secs = 30\nretry_max_secs = 1\n",
        &dir.join("spool"),
        1000,
    );
    std::fs::write(
        &path,
        format!("{toml}\n[metrics]\nlisten = \"{metrics}\"\n"),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, metrics)
}

/// Writes a pcap of `n` packets of `teiten::pcapgen::scan_mix` (all to 198.18.1.0/24), 10 µs
/// apart from `ts_us`, starting at packet number `first`.
pub fn scan_pcap(path: &std::path::Path, first: u64, n: u64, ts_us: i64) {
    use teiten::pcapgen::{frame, scan_mix, write_pcap};
    write_pcap(
        path,
        (first..first + n).map(|i| (ts_us + (i - first) as i64 * 10, frame(&scan_mix(i)))),
    )
    .unwrap();
}

/// The `.ttb` batch files in a directory (a sensor's spool or its `rejected/`).
pub fn batch_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ttb"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Starts the real sensor on `config`, replaying `pcap`; standard error is appended to
/// `sensor.log` beside the config ([`sensor_log`]).
pub fn start_sensor(config: &std::path::Path, pcap: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sensor_log(config))
        .unwrap();
    Command::new(teiten::bin("teiten-sensor"))
        .arg("--config")
        .arg(config)
        .arg("--read")
        .arg(pcap)
        .env("TEITEN_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("teiten-sensor starts")
}

/// The log of the sensors started with `config`.
pub fn sensor_log(config: &std::path::Path) -> PathBuf {
    config.with_file_name("sensor.log")
}

/// Waits up to `secs` for a sensor to exit and returns its status; kills it and panics
/// with its log if it does not.
pub fn wait_sensor(
    mut child: Child,
    config: &std::path::Path,
    secs: u64,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sensor did not finish within {secs} s:\n{}",
                std::fs::read_to_string(sensor_log(config)).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET` of a plain-HTTP URL's body (a sensor's or aggregator's `/metrics`).
pub fn get_text(url: &str) -> String {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .map(|r| r.into_string().unwrap_or_default())
        .unwrap_or_default()
}

/// The stored form of a token (`teiten-aggregator token-hash`).
pub fn token_hash(token: &str) -> String {
    let mut child = Command::new(teiten::bin("teiten-aggregator"))
        .arg("token-hash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("teiten-aggregator token-hash");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{token}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "token-hash failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
