//! The whole system on one machine, for the demo and the end-to-end tests: a private
//! ClickHouse, `teiten-aggregator` on the host end of the lab's management link,
//! `teiten-dashboard` on loopback, and `teiten-sensor` on the dark side of a namespace lab.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clickhouse::{free_port, Server};
use crate::lab::{self, Lab};
use crate::{bin, run_ok};

/// Settings of a chain.
#[derive(Debug, Clone)]
pub struct Options {
    /// The dashboard's port (0 for a free one).
    pub dashboard_port: u16,
    /// The analyst password (user `analyst`).
    pub analyst_password: String,
    /// Batch interval of the sensor in milliseconds.
    pub batch_interval_ms: u64,
    /// Dark prefixes of other (imaginary) sensors, added to the aggregator's
    /// `[sources] monitored` beside the lab's own.
    pub other_monitored: Vec<String>,
    /// More `[[exchange.partner]]` tables (TOML), beside [`PARTNERS`] and `all-v1`.
    pub extra_partners: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dashboard_port: 0,
            analyst_password: "teiten-demo".into(),
            batch_interval_ms: 500,
            other_monitored: Vec::new(),
            extra_partners: String::new(),
        }
    }
}

/// The chain's partner CSIRTs: one per country the tests and the demo forge sources from,
/// and one that receives every country in IODEF v1.
pub const PARTNERS: &[(&str, &str)] = &[
    ("jp-cert", "JP"),
    ("kr-cert", "KR"),
    ("cn-cert", "CN"),
    ("au-cert", "AU"),
    ("de-cert", "DE"),
    ("us-cert", "US"),
];

/// The dashboard's own reporter token: it files the exchange page's internal reports and
/// downloads the daily files through the aggregator's API as `[[exchange.reporter]]`
/// `dashboard` (with `outbox = true`).
pub const DASHBOARD_REPORTER: &str = "dashboard";

/// The stored form of a token, from `teiten-aggregator token-hash`.
fn token_hash(token: &str) -> String {
    let mut child = Command::new(bin("teiten-aggregator"))
        .arg("token-hash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("teiten-aggregator token-hash");
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "token-hash failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn exchange_config(dir: &Path, dashboard_token: &str, extra_partners: &str) -> String {
    let mut s = format!(
        "[exchange]\ncsirt = \"csirt.teiten.test\"\ncsirt_email = \"csirt@teiten.test\"\n\
         outbox = \"{0}/outbox\"\ninbox = \"{0}/inbox\"\nquarantine = \"{0}/quarantine\"\n",
        dir.display()
    );
    for (id, cc) in PARTNERS {
        s.push_str(&format!(
            "\n[[exchange.partner]]\nid = \"{id}\"\ncountries = [\"{cc}\"]\n"
        ));
    }
    s.push_str(
        "\n[[exchange.partner]]\nid = \"all-v1\"\ncountries = [\"all\"]\niodef_version = 1\n\
         tlp = \"green\"\n",
    );
    s.push('\n');
    s.push_str(extra_partners);
    s.push_str(&format!(
        "\n[[exchange.reporter]]\nname = \"{DASHBOARD_REPORTER}\"\ntoken_sha256 = \"{}\"\n\
         outbox = true\n",
        token_hash(dashboard_token)
    ));
    s
}

/// A running chain; every part stops on drop.
pub struct Chain {
    /// ClickHouse.
    pub clickhouse: Server,
    /// The namespace lab.
    pub lab: Lab,
    /// Configs, logs and the sensor's spool.
    pub dir: PathBuf,
    /// The aggregator's base URL (reachable from the sensor namespace and the host).
    pub aggregator_url: String,
    /// The dashboard's base URL.
    pub dashboard_url: String,
    aggregator_cfg: PathBuf,
    aggregator: Option<Child>,
    dashboard: Option<Child>,
    sensor: Option<Child>,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Starts a long-running part in its own process group (Ctrl-C reaches only the caller),
/// logging to `log`.
fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    cmd.process_group(0)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// SIGTERM, then SIGKILL after 20 s.
fn terminate(child: &mut Child) {
    // SAFETY: SIGTERM to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_http(url: &str) {
    let addr = url.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Chain {
    /// Starts every part, with configs and logs in `dir`.
    pub fn start(dir: &Path, opts: &Options) -> Chain {
        std::fs::create_dir_all(dir).expect("chain directory");
        let clickhouse = Server::start().expect("ClickHouse starts");
        let lab = Lab::with_uplink();
        let (_, host_ip, sensor_uplink_ip) = lab.uplink.clone().expect("uplink");

        let agg_port = free_port().unwrap();
        let aggregator_url = format!("http://{host_ip}:{agg_port}");
        let aggregator_cfg = dir.join("aggregator.toml");
        // The dashboard's reporter token, in a file of its own (as deployed).
        let dashboard_token = format!("tt_dashboard_{:016x}", std::process::id());
        let dashboard_token_file = dir.join("dashboard-reporter.token");
        write(&dashboard_token_file, &format!("{dashboard_token}\n"));
        // The dark prefix and the sensor's addresses are withheld; the lab's scanner sends
        // from the benchmarking range, and only its own address there is published.
        let monitored: Vec<String> = [lab::DARK, lab::DARK6]
            .into_iter()
            .map(str::to_owned)
            .chain(opts.other_monitored.iter().cloned())
            .map(|p| format!("\"{p}\""))
            .collect();
        write(
            &aggregator_cfg,
            &format!(
                "listen = \"{host_ip}:{agg_port}\"\n[clickhouse]\nurl = \"{}\"\n\n\
                 [sources]\nmonitored = [{}]\nsensor_addresses = [\"{}\", \"{sensor_uplink_ip}\"]\n\
                 publish_benchmarking = [\"{}/32\"]\n\n[geo]\nnames_interval_secs = 1\n\n{}",
                clickhouse.url(),
                monitored.join(", "),
                lab::SENSOR_IP,
                lab::SCANNER_IP,
                exchange_config(dir, &dashboard_token, &opts.extra_partners)
            ),
        );
        let agg = bin("teiten-aggregator");
        run_ok(
            Command::new(&agg)
                .arg("-c")
                .arg(&aggregator_cfg)
                .arg("migrate"),
        );
        let added = run_ok(
            Command::new(&agg)
                .arg("-c")
                .arg(&aggregator_cfg)
                .args(["sensor", "add", "lab-1"]),
        );
        let token = added
            .split_whitespace()
            .last()
            .expect("sensor add prints the token")
            .to_owned();

        let dash = bin("teiten-dashboard");
        let mut hasher = Command::new(&dash)
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("teiten-dashboard hash-password");
        writeln!(hasher.stdin.take().unwrap(), "{}", opts.analyst_password).unwrap();
        let hash = String::from_utf8(hasher.wait_with_output().unwrap().stdout).unwrap();
        let dash_port = match opts.dashboard_port {
            0 => free_port().unwrap(),
            p => p,
        };
        let dashboard_cfg = dir.join("dashboard.toml");
        write(
            &dashboard_cfg,
            &format!(
                "listen = \"127.0.0.1:{dash_port}\"\n[clickhouse]\nurl = \"{}\"\n\
                 [analyst]\nsecure_cookies = false\n\
                 [analyst.users]\nanalyst = \"{}\"\n\
                 [reports]\nurl = \"{aggregator_url}\"\nallow_insecure = true\ntoken_file = \"{}\"\n",
                clickhouse.url(),
                hash.trim(),
                dashboard_token_file.display()
            ),
        );
        let sensor_cfg = dir.join("sensor.toml");
        write(
            &sensor_cfg,
            &format!(
                "sensor_id = \"lab-1\"\ninterface = \"{}\"\nmonitored_prefixes = [\"{}\", \"{}\"]\n\
                 [aggregator]\nurls = [\"{aggregator_url}\"]\nallow_insecure = true\ntoken = \"{token}\"\n\
                 retry_max_secs = 2\n[spool]\ndir = \"{}\"\n\
                 [batch]\nmax_interval_ms = {}\n[metrics]\nlisten = \"\"\n",
                lab.sensor_if,
                lab::DARK,
                lab::DARK6,
                dir.join("spool").display(),
                opts.batch_interval_ms
            ),
        );
        let mut chain = Chain {
            clickhouse,
            dir: dir.to_owned(),
            aggregator_url,
            dashboard_url: format!("http://127.0.0.1:{dash_port}"),
            aggregator_cfg,
            aggregator: None,
            dashboard: None,
            sensor: None,
            lab,
        };
        chain.start_aggregator();
        chain.dashboard = Some(spawn(
            Command::new(&dash)
                .arg("serve")
                .arg("--config")
                .arg(&dashboard_cfg),
            &dir.join("dashboard.log"),
        ));
        wait_http(&chain.dashboard_url);
        chain.sensor = Some(spawn(
            chain
                .lab
                .in_sensor(bin("teiten-sensor").to_str().unwrap())
                .arg("--config")
                .arg(&sensor_cfg),
            &dir.join("sensor.log"),
        ));
        // The sensor is capturing once it says so.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(dir.join("sensor.log"))
            .unwrap_or_default()
            .contains("Capturing")
        {
            assert!(Instant::now() < deadline, "sensor did not start capturing");
            std::thread::sleep(Duration::from_millis(100));
        }
        chain
    }

    /// Starts (or restarts) the aggregator, appending to its log.
    pub fn start_aggregator(&mut self) {
        let log = self.dir.join("aggregator.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("aggregator log");
        let child = Command::new(bin("teiten-aggregator"))
            .arg("-c")
            .arg(&self.aggregator_cfg)
            .arg("serve")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("aggregator starts");
        self.aggregator = Some(child);
        wait_http(&self.aggregator_url);
    }

    /// SIGKILLs the aggregator (a crash).
    pub fn kill_aggregator(&mut self) {
        if let Some(mut c) = self.aggregator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Cuts (`false`) or restores (`true`) the sensor's link to the aggregator.
    pub fn set_link(&self, up: bool) {
        let (host_if, _, _) = self.lab.uplink.as_ref().expect("uplink");
        run_ok(Command::new("ip").args(["link", "set", host_if, if up { "up" } else { "down" }]));
    }

    /// Runs `teiten-aggregator export` for today (UTC) and returns what it printed; the files
    /// are in [`Chain::outbox`].
    pub fn export_today(&self) -> String {
        let today = run_ok(Command::new("date").args(["-u", "+%Y-%m-%d"]));
        run_ok(
            Command::new(bin("teiten-aggregator"))
                .arg("-c")
                .arg(&self.aggregator_cfg)
                .args(["export", "--date", today.trim()]),
        )
    }

    /// The aggregator's config file.
    pub fn aggregator_config(&self) -> &Path {
        &self.aggregator_cfg
    }

    /// The outbox of a partner.
    pub fn outbox(&self, partner: &str) -> PathBuf {
        self.dir.join("outbox").join(partner)
    }

    /// Events stored in ClickHouse.
    pub fn stored_events(&self) -> u64 {
        self.clickhouse
            .query("SELECT count() FROM teiten.scan_events")
            .map(|s| s.trim().parse().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Waits until ClickHouse holds `n` events (or `limit` passes) and returns the count.
    pub fn wait_for_events(&self, n: u64, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.stored_events();
            if got >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the parts in order: the sensor first (it delivers what it holds), then the
    /// aggregator (it finishes open inserts), then the dashboard.
    pub fn stop(&mut self) {
        for child in [&mut self.sensor, &mut self.aggregator, &mut self.dashboard] {
            if let Some(mut c) = child.take() {
                terminate(&mut c);
            }
        }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.stop();
    }
}
