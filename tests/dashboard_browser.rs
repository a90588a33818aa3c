//! The dashboard in a real browser: the `teiten-dashboard` binary over a private ClickHouse
//! 18.16 with generated data, driven by headless Chromium (Debian `chromium`) through the
//! DevTools protocol over a pipe (`--remote-debugging-pipe`, std only). Checks that pages load,
//! charts render (the loaded image's pixels), changing a filter in the form changes the chart,
//! login protects the analyst pages, and public pages contain no sensor address. Screenshots
//! are kept in `target/test-artifacts/`.

use std::process::Command;
use std::time::{Duration, Instant};

use aggregator_common::Agg;
use serde_json::json;
use teiten::browser::{Browser, Guard};
use teiten::clickhouse::{free_port, Server};
use teiten_dashboard::testdata::{sensor_address, Synth};
use teiten_store::schema::{create_sql, Layout};

mod aggregator_common;

const DB: &str = "dash";
const PASSWORD: &str = "browser-test password";
/// The port of the marked probes.
const MARKED: u16 = 47_331;

/// Starts the aggregator the report form files through, with the dashboard's reporter token
/// in `<its dir>/dashboard.token`.
fn start_aggregator(ch: &Server) -> Agg {
    let token = "tt_browser-dashboard";
    let agg = Agg::start(
        ch,
        DB,
        &format!(
            "[[exchange.reporter]]\nname = \"dashboard\"\ntoken_sha256 = \"{}\"\noutbox = true\n",
            aggregator_common::token_hash(token)
        ),
    );
    std::fs::write(agg.dir.path().join("dashboard.token"), format!("{token}\n")).unwrap();
    agg
}

/// Starts the dashboard binary (filing reports through `aggregator`) and waits until
/// `/health` answers.
fn start_dashboard(ch: &Server, dir: &std::path::Path, aggregator: &Agg) -> (Guard, String) {
    let port = free_port().unwrap();
    let hash = teiten_dashboard::auth::hash_password(PASSWORD).unwrap();
    let config = dir.join("dashboard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{DB}\"\n\
             [groups]\nnorth = [\"sapporo-1\", \"osaka-1\"]\n[analyst.users]\nalice = \"{hash}\"\n\
             [reports]\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            ch.url(),
            aggregator.url,
            aggregator.dir.path().join("dashboard.token").display(),
        ),
    )
    .unwrap();
    let bin = teiten::bin("teiten-dashboard");
    teiten::run_ok(
        Command::new(&bin)
            .args(["serve", "--check-config", "--config"])
            .arg(&config),
    );
    let log = std::fs::File::create(dir.join("dashboard.log")).unwrap();
    let child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = Guard(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "dashboard did not start: {}",
            std::fs::read_to_string(dir.join("dashboard.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, url)
}

#[test]
fn dashboard_in_headless_chromium() {
    let ch = Server::start().expect("private clickhouse-server");
    ch.query_all(create_sql(DB, &Layout::Single)).unwrap();
    let now = teiten_dashboard::now();
    let synth = Synth::month(DB, now, 300_000, 11);
    ch.query_all(synth.load_sql()).unwrap();
    // The surge ends at the start of today (UTC): the public pages show the days that are
    // over, analysts the last 24 hours.
    let today = now / 86_400 * 86_400;
    let surge = Synth {
        to: today,
        ..synth.clone()
    };
    ch.query(&surge.surge_sql(8728, 30_000, 3_000, 20)).unwrap();
    // Marked probes (the probe response attack): 7 SYNs to one sensor on a port nothing else
    // uses, yesterday and in the last minutes.
    for t in [today - 5 * 3600, now - 120] {
        ch.query(&format!(
            "INSERT INTO {DB}.scan_events (sensor_id, epoch, batch_seq, idx, ts, usec, proto, src, \
             dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country) \
             SELECT 'tokyo-1', 777 + {t}, 1, toUInt32(number), toDateTime({t}), 0, 6, \
             toFixedString(IPv6StringToNum('::ffff:192.0.2.9'), 16), \
             toFixedString(IPv6StringToNum('::ffff:198.18.0.77'), 16), 40000, {MARKED}, 2, 50, 0, 40, \
             0, 1024, 'scan', 0, toFixedString('AU', 2) FROM numbers(7)"
        ))
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let aggregator = start_aggregator(&ch);
    let (_dash, url) = start_dashboard(&ch, dir.path(), &aggregator);

    let mut b = Browser::start();
    let no_sensor_address = |page: &str, html: &str| {
        for i in 0..synth.sensors.len() {
            let prefix = sensor_address(i, 0);
            let prefix = prefix.trim_end_matches('0');
            assert!(
                !html.contains(prefix),
                "{page} shows a sensor address ({prefix}*)"
            );
        }
    };

    // Front page: trends, the port chart drawn, its table, no sensor address.
    b.goto(&format!("{url}/"));
    let html = b.html();
    assert!(
        html.contains("Rising ports") && html.contains(">8728/tcp<"),
        "{html}"
    );
    assert!(html.contains("class=\"summary\""));
    no_sensor_address("/", &html);
    let (w, h, ink, tcp_hash) = b.chart("#chart-ports");
    assert_eq!((w, h), (1000, 480));
    assert!(
        ink > 10_000,
        "the chart has lines and text ({ink} non-white pixels)"
    );
    b.screenshot("dashboard-front.png");

    // Change the protocol and N in the form: the chart changes.
    b.set("#proto", "udp");
    b.set("#top", "3");
    b.click("#apply");
    let u = b.url();
    assert!(u.contains("proto=udp") && u.contains("top=3"), "{u}");
    let (w2, _, ink2, udp_hash) = b.chart("#chart-ports");
    assert_eq!(w2, 1000);
    assert!(ink2 > 5_000);
    assert_ne!(tcp_hash, udp_hash, "a filter change redraws the chart");
    let html = b.html();
    assert!(html.contains("protocol udp"));
    b.screenshot("dashboard-front-udp-top3.png");

    // Periods: a week and a custom range render too.
    b.set("#period", "1w");
    b.click("#apply");
    let (_, _, ink_week, week_hash) = b.chart("#chart-ports");
    assert!(ink_week > 5_000);
    assert_ne!(week_hash, udp_hash);
    b.screenshot("dashboard-front-week.png");

    // Regions and per port.
    b.goto(&format!("{url}/regions?period=1m&top=5"));
    let (w, _, ink, _) = b.chart("#chart-regions");
    assert!(w == 1000 && ink > 10_000);
    no_sensor_address("/regions", &b.html());
    b.screenshot("dashboard-regions-month.png");
    b.goto(&format!("{url}/port?port=23&top=4"));
    for sel in ["#chart-port-packets", "#chart-port-sources"] {
        let (w, _, ink, _) = b.chart(sel);
        assert!(w == 1000 && ink > 10_000, "{sel}");
    }
    no_sensor_address("/port", &b.html());
    b.screenshot("dashboard-port-23.png");

    // The port of the marked probes is not published; the page says so, as for any port
    // below the threshold.
    b.goto(&format!("{url}/port?port={MARKED}"));
    let html = b.html();
    assert!(
        html.contains("is not published for this period") && html.contains("id=\"public\""),
        "{html}"
    );
    assert!(
        !html.contains("id=\"sensor\""),
        "no sensor filter in public"
    );
    let (w, _, ink, _) = b.chart("#chart-port-packets");
    assert!(w == 1000 && ink > 1_000, "the chart says why it is empty");
    b.screenshot("dashboard-port-unpublished.png");

    // A bad parameter gets a clear message.
    b.goto(&format!("{url}/?top=5000"));
    let body = b.eval("document.body.innerText");
    assert!(
        body.as_str()
            .unwrap()
            .contains("top: \"5000\" is not a number from 1 to 20"),
        "{body}"
    );

    // Analyst pages need a login.
    b.goto(&format!("{url}/analyst"));
    assert!(b.url().ends_with("/login"), "{}", b.url());
    b.set("#user", "alice");
    b.set("#password", "wrong");
    b.click("#submit");
    assert!(b.html().contains("Wrong user name or password"));
    b.set("#user", "alice");
    b.set("#password", PASSWORD);
    b.click("#submit");
    assert!(b.url().ends_with("/analyst"), "{}", b.url());
    let html = b.html();
    assert!(html.contains("id=\"health\"") && html.contains(">naha-1<"));
    assert_eq!(
        b.eval("document.cookie.includes('teiten_session')"),
        json!(false),
        "the session cookie is HttpOnly"
    );
    b.screenshot("dashboard-analyst-sensors.png");
    // The analyst sees the marked probes at once, per sensor, in 5-minute buckets.
    b.goto(&format!(
        "{url}/port?port={MARKED}&sensor=tokyo-1&mode=total"
    ));
    let html = b.html();
    assert!(
        html.contains("id=\"analyst-view\"") && html.contains("300-second buckets"),
        "{html}"
    );
    assert!(!html.contains("is not published"), "{html}");
    let (_, _, ink, _) = b.chart("#chart-port-packets");
    assert!(ink > 10_000);
    b.screenshot("dashboard-port-analyst.png");
    b.goto(&format!("{url}/analyst/events?port=8728&rows=20"));
    let html = b.html();
    assert!(
        html.contains(">8728<") && html.contains("198.18."),
        "analysts see sensors"
    );
    b.screenshot("dashboard-analyst-events.png");
    // The IODEF exchange and the address page, over rows as the aggregator writes them.
    ch.query(&format!(
        "INSERT INTO {DB}.exchange_log VALUES \
         ('kr-cert', toYYYYMMDD(today() - 1), 1, 'teiten-kr-cert.xml', 'ab', 1234, 56, 1, 800000, \
          now(), 'failed', 3, 'https://iodef.kr.example/upload answered 503: busy', \
          toUInt64(toUInt32(now())) * 1000000), \
         ('au-cert', toYYYYMMDD(today() - 1), 2, 'teiten-au-cert.xml', 'cd', 321, 12, 0, 200000, \
          now(), 'delivered', 1, '', toUInt64(toUInt32(now()) - 3600) * 1000000)"
    ))
    .unwrap();
    ch.query(&format!(
        "INSERT INTO {DB}.internal_reports VALUES \
         ('r1', now(), now() - 600, 'ids-1', 'ids', '192.0.2.10', 'intrusion', 'web shell', \
          ['1.0.0.1'], ['AU'], [22], 6, [], [], 'amber', 'red', 'intrusion-is-red'), \
         ('r2', now(), now() - 300, 'av-1', 'antivirus', '192.0.2.20', 'malware', 'trojan', \
          ['1.0.16.10'], ['JP'], [], 6, [], [], 'green', 'yellow', 'malware-or-dos-is-yellow')"
    ))
    .unwrap();
    b.click("header a[href='/analyst/exchange']");
    assert!(b.url().ends_with("/analyst/exchange"), "{}", b.url());
    let html = b.html();
    assert!(
        html.contains("<b>failed</b>") && html.contains("answered 503"),
        "{html}"
    );
    assert!(html.contains("triage-red") && html.contains("triage-yellow"));
    b.screenshot("dashboard-analyst-exchange.png");
    b.click("a[href='/analyst/address?addr=1.0.0.1']");
    let html = b.html();
    assert!(
        html.contains("id=\"report-hits\"") && html.contains(">r1<"),
        "{html}"
    );
    // Its network now, from the location database (Debian's `location lookup 1.0.0.1`:
    // 1.0.0.0/24, AS13335 CLOUDFLARENET, anycast).
    assert!(
        html.contains("<p id=\"network\">In <code>1.0.0.0/24</code>, announced by AS13335 (")
            && html.contains("flags: anycast"),
        "{html}"
    );
    b.screenshot("dashboard-analyst-address.png");
    // A source the sensors saw (the synthetic month's busiest, 1.0.0.0): its AS and country
    // as stored.
    b.goto(&format!("{url}/analyst/address?addr=1.0.0.0"));
    let html = b.html();
    assert!(html.contains("<p id=\"origin\">From AS64496 in "), "{html}");
    b.screenshot("dashboard-analyst-address-seen.png");
    // The source networks, from the menu: the chart and the table with names from as_names.
    ch.query(&format!(
        "INSERT INTO {DB}.as_names VALUES (64496, 'EXAMPLE-NET-A', 1), (64497, 'EXAMPLE-NET-B', 1)"
    ))
    .unwrap();
    b.click("header a[href='/networks']");
    assert!(b.url().ends_with("/networks"), "{}", b.url());
    let (w, _, ink, _) = b.chart("#chart-networks");
    assert!(
        w == 1000 && ink > 10_000,
        "the network chart is drawn ({ink})"
    );
    let html = b.html();
    assert!(
        html.contains("id=\"networks-table\"") && html.contains(">EXAMPLE-NET-A<"),
        "{html}"
    );
    b.screenshot("dashboard-analyst-networks.png");
    // File an internal report with the form: filed through the aggregator's API (as reporter
    // `dashboard`), triaged by its rules.
    b.goto(&format!("{url}/analyst/exchange"));
    b.eval(
        "(() => { const f = document.querySelector('#report-form'); \
         f.detected.value = '2026-11-30T08:15'; f.host.value = '192.0.2.44'; \
         f.category.value = 'intrusion'; f.addresses.value = '203.0.113.7'; \
         f.ports.value = '22'; f.protocol.value = 'tcp'; \
         f.description.value = 'ssh brute force seen by staff'; return true; })()",
    );
    b.screenshot("dashboard-analyst-report-form.png");
    b.click("#report-form button");
    let html = b.html();
    assert!(
        html.contains("id=\"filed\"") && html.contains("triage-red"),
        "{html}"
    );
    b.screenshot("dashboard-analyst-report-filed.png");
    let stored = ch
        .query(&format!(
            "SELECT count() FROM {DB}.internal_reports WHERE reporter = 'dashboard' \
             AND host = '192.0.2.44' AND colour = 'red'"
        ))
        .unwrap();
    assert_eq!(stored.trim(), "1", "stored by the aggregator");
    // Log out: the analyst pages are closed again.
    b.click("header button");
    assert!(b.url().ends_with('/'), "{}", b.url());
    b.goto(&format!("{url}/analyst/events"));
    assert!(b.url().ends_with("/login"));
}
