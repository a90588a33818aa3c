//! The whole chain end to end: real scanners -> sensor (namespace lab) -> aggregator ->
//! ClickHouse -> dashboard API. Every probe is accounted for, attributed to the right country,
//! and the dashboard's numbers equal ClickHouse's; then the same under faults (aggregator
//! SIGKILLed and restarted mid-scan, ClickHouse restarted, the sensor's link cut for two
//! minutes): nothing lost, nothing duplicated.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use teiten::chain::{Chain, Options};
use teiten::require_tool;

/// Forged sources (the packets stay in the lab) and the countries IPFire's location database
/// (the aggregator's default) gives them.
const SOURCES: &[(&str, &str, u32)] = &[
    ("1.0.16.10", "JP", 7),
    ("1.11.0.10", "KR", 6),
    ("1.0.1.10", "CN", 5),
    ("1.0.0.10", "AU", 4),
    ("2.16.6.10", "DE", 3),
    ("1.32.232.10", "US", 2),
];

fn tools() {
    for (tool, pkg) in [
        ("nmap", "nmap"),
        ("masscan", "masscan"),
        ("zmap", "zmap"),
        ("hping3", "hping3"),
    ] {
        require_tool(tool, pkg);
    }
}

fn run(mut c: std::process::Command) {
    let _ = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
}

/// GET as the chain's analyst (today's traffic is for analysts only; the public pages show the
/// days that are over, see `tests/probe_response.rs`).
fn get_json(url: &str, cookie: &str) -> Value {
    ureq::get(url)
        .set("cookie", cookie)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap()
}

/// Logs in as the chain's analyst through the form and returns the session cookie.
fn login(base: &str) -> String {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    teiten::login::login(
        &agent,
        base,
        "analyst",
        &Options::default().analyst_password,
    )
}

/// Status and text of a dashboard answer, whatever the status.
fn analyst_page(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("dashboard: {e}"),
    };
    (resp.status(), resp.into_string().unwrap())
}

/// Today's daily file in a partner's outbox (the scheduler may have written yesterday's).
fn only_xml(dir: &std::path::Path) -> std::path::PathBuf {
    let today = teiten::run_ok(std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]));
    let suffix = format!("-{}.xml", today.trim());
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(&suffix))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn xmllint(version: u8, file: &std::path::Path) {
    let schema = teiten::conformance().join(format!("iodef/schemas/iodef-{version}.0.xsd"));
    let out = std::process::Command::new("xmllint")
        .args(["--nonet", "--noout", "--schema"])
        .arg(schema)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// EventData in a file, counted by xmllint.
fn event_count(file: &std::path::Path) -> u64 {
    let out = std::process::Command::new("xmllint")
        .args(["--nonet", "--xpath", "count(//*[local-name()='EventData'])"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn totals(graph: &Value) -> BTreeMap<String, f64> {
    graph["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["total"].as_f64()?)))
        .collect()
}

#[test]
fn every_probe_reaches_clickhouse_and_the_dashboard() {
    tools();
    let dir = tempfile::tempdir().unwrap();
    // An ISP's CSIRT by its ASes (the DE and AU sources' networks, wherever the database
    // places them) and one by a prefix (the JP source's /24).
    let geo = teiten_store::GeoDb::load(&teiten_store::GeoConfig::default()).unwrap();
    let asn = |a: &str| geo.origin(a.parse().unwrap()).asn.expect("a known AS");
    let (de_as, au_as, jp_as) = (asn("2.16.6.10"), asn("1.0.0.10"), asn("1.0.16.10"));
    let by_as: Vec<&(&str, &str, u32)> = SOURCES
        .iter()
        .filter(|s| [de_as, au_as].contains(&geo.origin(s.0.parse().unwrap()).asn.unwrap_or(0)))
        .collect();
    let opts = Options {
        extra_partners: format!(
            "[[exchange.partner]]\nid = \"isp-as\"\nasns = [{de_as}, {au_as}]\n\n\
             [[exchange.partner]]\nid = \"isp-net\"\nprefixes = [\"1.0.16.0/24\"]\n"
        ),
        ..Options::default()
    };
    let chain = Chain::start(dir.path(), &opts);
    let lab = &chain.lab;
    run(lab.nmap("198.18.1.10", "1-100"));
    run(lab.masscan("198.18.1.0/28", "1-20", 10_000));
    run(lab.zmap("198.18.1.0/26", 443, 5000, &dir.path().join("blocklist")));
    for (addr, _, n) in SOURCES {
        run(lab.hping(*n, &["-S", "-p", "23", "-a", addr, "198.18.1.200"]));
    }
    let forged: u32 = SOURCES.iter().map(|s| s.2).sum();
    let sent = 100 + 320 + 64 + u64::from(forged);
    assert_eq!(chain.wait_for_events(sent, Duration::from_secs(60)), sent);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(chain.stored_events(), sent, "more events than probes");

    // Countries, from the dashboard's region graph (totals over the day).
    let url = &chain.dashboard_url;
    let analyst = login(url);
    let regions = totals(&get_json(
        &format!("{url}/api/v1/regions.json?period=1d&mode=total&top=20"),
        &analyst,
    ));
    for (_, cc, n) in SOURCES {
        assert_eq!(
            regions.get(*cc),
            Some(&f64::from(*n)),
            "{cc} in {regions:?}"
        );
    }
    assert_eq!(regions.get("unknown"), Some(&484.0), "the lab's own source");
    // Ports: the dashboard's totals equal ClickHouse's raw counts.
    let ports = totals(&get_json(
        &format!("{url}/api/v1/ports.json?period=1d&mode=total&top=20"),
        &analyst,
    ));
    assert_eq!(ports.get("443"), Some(&64.0), "zmap");
    assert_eq!(
        ports.get("23"),
        Some(&(f64::from(forged) + 1.0)),
        "hping3 + nmap"
    );
    for (port, total) in &ports {
        if let Ok(p) = port.parse::<u16>() {
            let raw = chain
                .clickhouse
                .query(&format!(
                    "SELECT count() FROM teiten.scan_events WHERE dport = {p}"
                ))
                .unwrap();
            assert_eq!(raw.trim().parse::<f64>().unwrap(), *total, "port {p}");
        }
    }
    // Partner files: each country's partner gets exactly its forged probes, valid IODEF, and
    // no sensor address; the all-countries partner (IODEF v1) gets every scan.
    let out = chain.export_today();
    for (partner, cc) in teiten::chain::PARTNERS {
        let n = SOURCES.iter().find(|s| s.1 == *cc).unwrap().2;
        let file = only_xml(&chain.outbox(partner));
        xmllint(2, &file);
        assert_eq!(event_count(&file), u64::from(n), "{partner}: {out}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("198.18."),
            "sensor address in {}",
            file.display()
        );
    }
    // The partners by AS and by prefix: exactly their sources' forged probes, each naming its
    // AS, and the AS stored with every event.
    let asn_count = |text: &str, asn: u32| {
        text.matches(&format!("<Address category=\"asn\">{asn}</Address>"))
            .count() as u32
    };
    let isp_as = only_xml(&chain.outbox("isp-as"));
    xmllint(2, &isp_as);
    let text = std::fs::read_to_string(&isp_as).unwrap();
    assert_eq!(
        event_count(&isp_as),
        u64::from(by_as.iter().map(|s| s.2).sum::<u32>()),
        "isp-as: {out}"
    );
    for (addr, _, n) in SOURCES {
        let has = text.contains(&format!(">{addr}</Address>"));
        assert_eq!(has, by_as.iter().any(|s| s.0 == *addr), "isp-as and {addr}");
        let a = geo.origin(addr.parse().unwrap()).asn;
        if let Some(a) = a.filter(|a| [de_as, au_as].contains(a)) {
            let hex: String = teiten_store::address_bytes(addr.parse().unwrap())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            let stored = chain
                .clickhouse
                .query(&format!(
                    "SELECT count() FROM teiten.scan_events WHERE hex(src) = '{hex}' \
                     AND src_asn = {a}"
                ))
                .unwrap();
            assert_eq!(stored.trim(), n.to_string(), "{addr}'s events with AS{a}");
        }
    }
    assert_eq!(
        (asn_count(&text, de_as), asn_count(&text, au_as)),
        (3, 4),
        "the DE and AU probes name their ASes"
    );
    let isp_net = only_xml(&chain.outbox("isp-net"));
    xmllint(2, &isp_net);
    let text = std::fs::read_to_string(&isp_net).unwrap();
    assert_eq!(event_count(&isp_net), 7, "the JP source's probes");
    assert!(text.contains(">1.0.16.10</Address>"));
    assert_eq!(asn_count(&text, jp_as), 7);

    let all = only_xml(&chain.outbox("all-v1"));
    xmllint(1, &all);
    let scans: u64 = chain
        .clickhouse
        .query("SELECT count() FROM teiten.scan_events WHERE class = 'scan'")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(event_count(&all), scans);
    // The lab's scanner itself sends from 198.18.0.0/24 (a real, "unknown" source); the dark
    // prefix 198.18.1.0/24 holds the sensor addresses, which never appear.
    assert!(!std::fs::read_to_string(&all).unwrap().contains("198.18.1."));

    // The analyst's exchange page: a daily file downloaded through the aggregator, and an
    // internal report filed through it (as the dashboard's reporter) stored in ClickHouse.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let today = teiten::run_ok(std::process::Command::new("date").args(["-u", "+%Y%m%d"]));
    let (status, body) = analyst_page(
        agent
            .get(&format!(
                "{url}/analyst/exchange/file?partner=all-v1&day={}",
                today.trim()
            ))
            .set("cookie", &analyst)
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, std::fs::read_to_string(&all).unwrap());
    let (status, page) = analyst_page(
        agent
            .get(&format!("{url}/analyst/exchange"))
            .set("cookie", &analyst)
            .call(),
    );
    assert_eq!(status, 200, "{page}");
    let i = page
        .find("name=\"csrf\" value=\"")
        .expect("the report form")
        + 19;
    let csrf = page[i..].split('"').next().unwrap().to_owned();
    let (status, filed) = analyst_page(teiten::login::file_report(
        &agent,
        url,
        &analyst,
        &csrf,
        &[
            ("host", "198.18.1.7"),
            ("category", "intrusion"),
            ("description", "seen in the chain test"),
            ("addresses", "1.0.16.10"),
            ("ports", "23"),
        ],
    ));
    assert_eq!(status, 200, "{filed}");
    assert!(filed.contains("triage-red"), "{filed}");
    let stored = chain
        .clickhouse
        .query(&format!(
            "SELECT count() FROM teiten.internal_reports WHERE reporter = '{}' \
             AND host = '198.18.1.7' AND colour = 'red'",
            teiten::chain::DASHBOARD_REPORTER
        ))
        .unwrap();
    assert_eq!(stored.trim(), "1", "the report is in ClickHouse");

    // The analyst's network graph: the forged DE and AU sources' ASes, named by the location
    // database (through `as_names`, which the aggregator fills), with exactly their probes;
    // the public gets no network view.
    let names = |a: u32| geo.as_name(a).map(str::to_owned);
    for a in [de_as, au_as] {
        let of_a: Vec<_> = SOURCES
            .iter()
            .filter(|s| geo.origin(s.0.parse().unwrap()).asn == Some(a))
            .collect();
        let probes: u64 = of_a.iter().map(|s| u64::from(s.2)).sum();
        let want = names(a).expect("the location database names the AS");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let named = chain
                .clickhouse
                .query(&format!("SELECT name FROM teiten.as_names WHERE asn = {a}"))
                .unwrap();
            if named.trim() == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "AS{a} not named {want:?} in as_names: {named:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let (status, body) = analyst_page(
            agent
                .get(&format!(
                    "{url}/api/v1/networks.json?period=1d&mode=total&top=20"
                ))
                .set("cookie", &analyst)
                .call(),
        );
        assert_eq!(status, 200, "{body}");
        let g: Value = serde_json::from_str(&body).unwrap();
        let row = g["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["asn"] == a)
            .unwrap_or_else(|| panic!("AS{a} in {body}"));
        assert_eq!(row["name"], want.as_str(), "{body}");
        assert_eq!(row["packets"], probes, "AS{a}: {body}");
        assert_eq!(row["sources"], of_a.len(), "AS{a}: {body}");
        let label = format!("AS{a} {want} (");
        let series = g["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(&label))
            .unwrap_or_else(|| panic!("{label} in {body}"));
        assert_eq!(series["total"], probes as f64, "{body}");
    }
    let public = ureq::get(&format!("{url}/api/v1/networks.json?period=1d")).call();
    assert!(
        matches!(public, Err(ureq::Error::Status(403, _))),
        "the network API is for analysts"
    );

    // The public answers never carry a sensor address, nor today's probes.
    let public: Value = serde_json::from_str(
        &ureq::get(&format!("{url}/api/v1/ports.json?period=1d&mode=total"))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        public["series"],
        serde_json::json!([]),
        "today is not public"
    );
    let body = ureq::get(&format!("{url}/api/v1/ports.json?period=1d"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        !body.contains("198.18.1."),
        "sensor address in a public answer"
    );
}

fn flood(chain: &Chain, n: u32, port: &str) -> Child {
    let mut c = chain.lab.in_scanner("hping3");
    c.args([
        "-S",
        "-p",
        port,
        "-c",
        &n.to_string(),
        "-i",
        "u2000",
        "-q",
        "198.18.1.50",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c.spawn().unwrap()
}

#[test]
fn faults_lose_nothing_and_duplicate_nothing() {
    tools();
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::start(dir.path(), &Options::default());
    let mut sent = 0u64;

    // The aggregator crashes in the middle of a scan and comes back.
    let mut scan = flood(&chain, 3000, "23");
    std::thread::sleep(Duration::from_secs(2));
    chain.kill_aggregator();
    std::thread::sleep(Duration::from_secs(3));
    chain.start_aggregator();
    scan.wait().unwrap();
    sent += 3000;

    // ClickHouse restarts in the middle of another.
    let mut scan = flood(&chain, 3000, "445");
    std::thread::sleep(Duration::from_secs(2));
    chain.clickhouse.restart().expect("ClickHouse restarts");
    scan.wait().unwrap();
    sent += 3000;

    // The sensor's link to the aggregator is cut for two minutes while scanning goes on, at
    // its start and again at its end: the sensor keeps capturing into its spool.
    let before_cut = sent;
    assert_eq!(
        chain.wait_for_events(sent, Duration::from_secs(60)),
        sent,
        "events of the first two faults"
    );
    chain.set_link(false);
    let cut = Instant::now();
    run(chain.lab.masscan("198.18.1.0/24", "1-40", 5000));
    sent += 256 * 40;
    let mut scan = flood(&chain, 2000, "22");
    scan.wait().unwrap();
    sent += 2000;
    std::thread::sleep(Duration::from_secs(115).saturating_sub(cut.elapsed()));
    let mut scan = flood(&chain, 1000, "22");
    scan.wait().unwrap();
    sent += 1000;
    // Nothing of the scans during the cut got through; the earlier ones are all stored.
    assert_eq!(chain.stored_events(), before_cut, "the link was not cut");
    chain.set_link(true);

    let stored = chain.wait_for_events(sent, Duration::from_secs(120));
    assert_eq!(stored, sent, "events lost");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(chain.stored_events(), sent, "events duplicated");
    let distinct = chain
        .clickhouse
        .query("SELECT uniqExact(sensor_id, epoch, batch_seq, idx) FROM teiten.scan_events")
        .unwrap();
    assert_eq!(
        distinct.trim().parse::<u64>().unwrap(),
        sent,
        "duplicate rows"
    );
    // The dashboard's totals match.
    let ports = totals(&get_json(
        &format!(
            "{}/api/v1/ports.json?period=1d&mode=total&top=20",
            chain.dashboard_url
        ),
        &login(&chain.dashboard_url),
    ));
    assert_eq!(ports.get("23"), Some(&(3000.0 + 256.0)));
    assert_eq!(ports.get("445"), Some(&3000.0));
    assert_eq!(ports.get("22"), Some(&(3000.0 + 256.0)));
}
