//! The probe response attack (Bethencourt, Franklin, Vernon, USENIX Security 2005) against the
//! whole chain: a real scanner in the namespace lab sends marked probes to one sensor on a port
//! nothing else uses; the sensor ships them to the aggregator and ClickHouse; the real
//! `teiten-dashboard` binary serves the pages. Every public endpoint (HTML, JSON, CSV, PNG, SVG,
//! trends) is read before, during and after the probes: not one byte changes, nothing names the
//! sensor, while the analyst sees the probes at once. Then the same probes are loaded a day
//! earlier (their day is over: the default delay has passed): a dashboard with the default
//! threshold still shows nothing, one with a threshold of 1 source on 1 sensor shows them for
//! that day only, in hourly buckets over all sensors.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use teiten::chain::{Chain, Options};
use teiten::clickhouse::free_port;

/// The marked port: nothing else in the lab sends to it.
const MARKED: u16 = 47_331;
/// A port never probed.
const NEVER: u16 = 47_332;
/// The probed address (in the sensor's dark prefix).
const TARGET: &str = "198.18.1.77";
const PASSWORD: &str = "probe-response analyst";

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `teiten-dashboard serve` over the chain's ClickHouse with `public` as its `[public]`
/// section, no cache and trends computed when asked (so that every read below is fresh).
fn dashboard(chain: &Chain, dir: &Path, name: &str, public: &str) -> (Guard, String) {
    let dash = teiten::bin("teiten-dashboard");
    let mut hasher = Command::new(&dash)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(hasher.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let hash = String::from_utf8(hasher.wait_with_output().unwrap().stdout).unwrap();
    let port = free_port().unwrap();
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[clickhouse]\nurl = \"{}\"\n[cache]\nttl_secs = 0\n\
             [trends]\nrefresh_secs = 0\n[public]\n{public}\n[analyst]\nsecure_cookies = false\n\
             [analyst.users]\nanalyst = \"{}\"\n",
            chain.clickhouse.url(),
            hash.trim()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(&dash)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        assert!(Instant::now() < deadline, "{name} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Guard(child), url)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).build()
}

/// GET: (status, body), with an optional cookie.
fn get(url: &str, cookie: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = agent().get(url);
    if let Some(c) = cookie {
        req = req.set("cookie", c);
    }
    let res = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = res.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut res.into_reader(), &mut body).unwrap();
    (status, body)
}

fn json(url: &str, cookie: Option<&str>) -> Value {
    let (status, body) = get(url, cookie);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{url}: {text}");
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Logs in as the analyst and returns the session cookie.
fn login(url: &str) -> String {
    teiten::login::login(&agent(), url, "analyst", PASSWORD)
}

/// Every public endpoint that could show the marked port or the sensor.
fn public_uris() -> Vec<String> {
    let day = teiten_dashboard::now() / 86_400 * 86_400;
    [
        "/".to_owned(),
        "/?period=1w&top=20&mode=total".to_owned(),
        "/regions".to_owned(),
        format!("/port?port={MARKED}"),
        "/api/v1/ports.json?top=20".to_owned(),
        "/api/v1/ports.json?top=20&mode=total&proto=tcp".to_owned(),
        "/api/v1/ports.csv?top=20".to_owned(),
        "/api/v1/regions.json?top=20&mode=total".to_owned(),
        "/api/v1/regions.csv".to_owned(),
        format!("/api/v1/port.json?port={MARKED}&mode=total"),
        format!("/api/v1/port.csv?port={MARKED}"),
        format!(
            "/api/v1/port.json?port={MARKED}&period=custom&from={}&to={}",
            day - 86_400,
            day + 86_400
        ),
        "/api/v1/trends.json".to_owned(),
        "/chart/ports.png?top=20".to_owned(),
        "/chart/ports.svg?period=1m".to_owned(),
        "/chart/regions.svg".to_owned(),
        format!("/chart/port-packets.svg?port={MARKED}"),
        format!("/chart/port-packets.png?port={MARKED}&mode=total"),
        format!("/chart/port-sources.svg?port={MARKED}"),
    ]
    .to_vec()
}

fn read_all(url: &str) -> Vec<Vec<u8>> {
    public_uris()
        .iter()
        .map(|u| {
            let (status, body) = get(&format!("{url}{u}"), None);
            assert_eq!(status, 200, "{u}: {}", String::from_utf8_lossy(&body));
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains("lab-1"), "{u} names the sensor");
            assert!(!text.contains("198.18.1."), "{u} shows a sensor address");
            body
        })
        .collect()
}

fn same(what: &str, before: &[Vec<u8>], now: &[Vec<u8>]) {
    for (u, (b, n)) in public_uris().iter().zip(before.iter().zip(now)) {
        assert!(b == n, "{what}: {u} changed");
    }
}

fn total(g: &Value) -> f64 {
    g["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap())
        .sum()
}

#[test]
fn public_views_resist_the_probe_response_attack() {
    for (tool, pkg) in [("nmap", "nmap"), ("hping3", "hping3")] {
        teiten::require_tool(tool, pkg);
    }
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::start(dir.path(), &Options::default());
    // The defaults, and a dashboard that publishes anything seen by 1 source on 1 sensor.
    let (_a, strict) = dashboard(&chain, dir.path(), "strict", "");
    let (_b, loose) = dashboard(
        &chain,
        dir.path(),
        "loose",
        "min_sources = 1\nmin_sensors = 1",
    );
    let before_strict = read_all(&strict);
    let before_loose = read_all(&loose);

    // hping3 sends 7 marked SYNs, one a second, while the public pages are read; nmap one more.
    let mut hping = chain.lab.in_scanner("hping3");
    hping
        .args([
            "-S",
            "-p",
            &MARKED.to_string(),
            "-c",
            "7",
            "-i",
            "1",
            "-q",
            TARGET,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut hping = hping.spawn().unwrap();
    while hping.try_wait().unwrap().is_none() {
        same("during the probes", &before_strict, &read_all(&strict));
        same("during the probes", &before_loose, &read_all(&loose));
    }
    let _ = chain
        .lab
        .nmap(TARGET, &MARKED.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(chain.wait_for_events(8, Duration::from_secs(60)), 8);
    let stored = chain
        .clickhouse
        .query(&format!(
            "SELECT count() FROM teiten.scan_events WHERE dport = {MARKED} AND sensor_id = 'lab-1'"
        ))
        .unwrap();
    assert_eq!(stored.trim(), "8", "the marked probes are stored");
    same("after the probes", &before_strict, &read_all(&strict));
    same("after the probes", &before_loose, &read_all(&loose));

    // The analyst sees them at once, per sensor, in 5-minute buckets.
    let cookie = login(&strict);
    let an = json(
        &format!("{strict}/api/v1/port.json?port={MARKED}&mode=total&sensor=lab-1"),
        Some(&cookie),
    );
    assert_eq!(an["packets"]["step"], 300);
    assert_eq!(total(&an["packets"]), 8.0, "{an}");
    let ports = json(
        &format!("{strict}/api/v1/ports.json?mode=total&sensor=lab-1"),
        Some(&cookie),
    );
    assert_eq!(
        ports["series"][0]["name"],
        MARKED.to_string().as_str(),
        "{ports}"
    );
    // The chain's own dashboard caches (60 s): its analyst answer is never served to the
    // public, nor the other way round.
    let url = &chain.dashboard_url;
    // The chain's analyst has the demo password.
    let chain_cookie = teiten::login::login(
        &agent(),
        url,
        "analyst",
        &Options::default().analyst_password,
    );
    for uri in [
        format!("/api/v1/port.json?port={MARKED}&mode=total"),
        "/api/v1/ports.json?mode=total".to_owned(),
    ] {
        let analyst = json(&format!("{url}{uri}"), Some(&chain_cookie));
        let public = json(&format!("{url}{uri}"), None);
        let analyst_again = json(&format!("{url}{uri}"), Some(&chain_cookie));
        assert_eq!(analyst, analyst_again);
        assert_ne!(analyst, public, "{uri}: the same answer to both");
        // The rules of a graph, or of the per-port answer's graphs.
        let rules = |v: &Value| match v.get("packets") {
            Some(p) => p["public"].clone(),
            None => v["public"].clone(),
        };
        assert!(
            rules(&public).is_object() && rules(&analyst).is_null(),
            "{uri}"
        );
    }
    assert_eq!(
        json(&format!("{url}/api/v1/port.json?port={MARKED}"), None)["published"],
        false
    );
    // A port below the threshold and a port never seen: the same answer, the port aside.
    for path in [
        "/api/v1/port.json",
        "/api/v1/port.csv",
        "/chart/port-packets.svg",
        "/port",
    ] {
        let (sa, a) = get(&format!("{loose}{path}?port={MARKED}"), None);
        let (sb, b) = get(&format!("{loose}{path}?port={NEVER}"), None);
        assert_eq!(sa, sb, "{path}");
        assert_eq!(
            String::from_utf8_lossy(&a).replace(&MARKED.to_string(), "P"),
            String::from_utf8_lossy(&b).replace(&NEVER.to_string(), "P"),
            "{path}"
        );
    }
    // The sensor filter is not public, whatever the sensor.
    for s in ["lab-1", "nowhere"] {
        let (status, body) = get(&format!("{loose}/api/v1/ports.json?sensor={s}"), None);
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("filters are for analysts"));
    }

    // The delay passes: the same probes a day earlier, in a UTC day that is over.
    chain
        .clickhouse
        .query(&format!(
            "INSERT INTO teiten.scan_events (sensor_id, epoch, batch_seq, idx, ts, usec, proto, \
             src, dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, \
             country) SELECT sensor_id, epoch + 1, batch_seq, idx, ts - 86400, usec, proto, src, \
             dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, \
             country FROM teiten.scan_events WHERE dport = {MARKED}"
        ))
        .unwrap();
    // Below the default threshold (one source, one sensor): still nothing, anywhere.
    same(
        "a day later, below the threshold",
        &before_strict,
        &read_all(&strict),
    );
    // Over the loose threshold: shown for yesterday only, in hours, over all sensors.
    let p = json(
        &format!("{loose}/api/v1/port.json?port={MARKED}&mode=total"),
        None,
    );
    assert_eq!(p["published"], true, "{p}");
    assert_eq!(p["packets"]["step"], 3600);
    assert_eq!(p["packets"]["sensors"], "all sensors");
    assert_eq!(total(&p["packets"]), 8.0, "{p}");
    let today = teiten_dashboard::now() / 86_400 * 86_400;
    assert_eq!(p["packets"]["to"].as_i64(), Some(today));
    let top = json(&format!("{loose}/api/v1/ports.json?mode=total"), None);
    assert_eq!(
        top["series"][0]["name"],
        MARKED.to_string().as_str(),
        "{top}"
    );
    assert_eq!(top["series"][0]["total"], 8.0);
    let avg = json(&format!("{loose}/api/v1/ports.json"), None);
    assert_eq!(
        avg["series"][0]["total"], 8.0,
        "one sensor saw a published port"
    );
    let (status, png) = get(
        &format!("{loose}/chart/port-packets.png?port={MARKED}"),
        None,
    );
    assert_eq!((status, &png[1..4]), (200, &b"PNG"[..]));
    for body in read_all(&loose) {
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("lab-1"));
    }
}
