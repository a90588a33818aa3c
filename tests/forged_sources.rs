//! Forged and sensitive sources never reach a partner file or a public unique-source count:
//! the whole chain (namespace lab, real sensor, real aggregator, ClickHouse 18.16, dashboard),
//! hping3 forging IPv4 sources (the sensor's own dark address, another address of its dark
//! prefix, another sensor's prefix, the sensor's management address, 10/8, 127/8, 0/8,
//! multicast, the unpublished benchmarking range, a spoof suspect by TTL) and tcpreplay
//! replaying crafted IPv6 frames (hping3 has no IPv6) from special-purpose sources (unique
//! local, link-local, loopback) into the lab. Then the real `export` writes the partners' daily
//! files, which must hold the genuine scanners and none of the others; the public per-port
//! unique sources count only the genuine ones; the analyst page lists the others with their
//! reasons; the aggregator's metrics count them by reason.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use teiten::chain::{Chain, Options};
use teiten::pcapgen::{frame, write_pcap, Spec, L4};
use teiten::require_tool;

/// Another (imaginary) sensor's dark prefix, a public one: withheld only because it is
/// configured as monitored.
const OTHER_SENSOR_PREFIX: &str = "1.0.64.0/24";
/// Every packet goes to this dark address and port.
const TARGET: &str = "198.18.1.200";
const TARGET6: &str = "2001:db8:1::10";
const PORT: u16 = 23;
/// Packets per source.
const N: u32 = 3;

/// (source, extra hping3 arguments, expected reason); `None` is published.
const V4: &[(&str, &[&str], Option<&str>)] = &[
    ("1.0.16.10", &[], None),
    (TARGET, &[], Some("monitored_prefix")),
    ("198.18.1.7", &[], Some("monitored_prefix")),
    ("1.0.64.9", &[], Some("monitored_prefix")),
    ("198.18.0.2", &[], Some("sensor_address")),
    ("10.1.2.3", &[], Some("special_purpose")),
    ("127.0.0.5", &[], Some("special_purpose")),
    ("0.0.0.9", &[], Some("special_purpose")),
    ("224.0.0.99", &[], Some("special_purpose")),
    ("198.18.2.77", &[], Some("special_purpose")),
    ("1.0.0.77", &["-t", "250"], Some("spoof_suspect")),
];

/// IPv6 sources replayed with tcpreplay.
const V6: &[(&str, Option<&str>)] = &[
    ("2a01:4f8::5", None),
    ("fd00::66", Some("special_purpose")),
    ("fe80::1", Some("special_purpose")),
    ("::1", Some("special_purpose")),
];

fn quiet(mut c: std::process::Command) {
    let _ = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
}

fn reason_name(code: &str) -> &'static str {
    match code.trim() {
        "0" => "published",
        "1" => "spoof_suspect",
        "2" => "special_purpose",
        "3" => "monitored_prefix",
        "4" => "sensor_address",
        other => panic!("unknown withheld code {other}"),
    }
}

/// Logs in as the chain's analyst and returns the session cookie.
fn login(dashboard: &str, password: &str) -> String {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let form = agent.get(&format!("{dashboard}/login")).call().unwrap();
    let csrf_cookie = form
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("teiten_login_csrf="))
        .expect("login CSRF cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = form.into_string().unwrap();
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("CSRF token in the login form")
        .to_owned();
    let resp = agent
        .post(&format!("{dashboard}/login"))
        .set("Cookie", &csrf_cookie)
        .send_form(&[
            ("user", "analyst"),
            ("password", password),
            ("csrf", &token),
        ])
        .unwrap();
    assert_eq!(resp.status(), 303);
    resp.all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("teiten_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The daily files of today (UTC) in every partner's outbox, with their text.
fn todays_files(chain: &Chain) -> Vec<(String, String)> {
    let today = teiten::run_ok(std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]));
    let suffix = format!("-{}.xml", today.trim());
    let mut out = Vec::new();
    let mut partners: Vec<&str> = teiten::chain::PARTNERS.iter().map(|p| p.0).collect();
    partners.push("all-v1");
    for p in partners {
        for e in std::fs::read_dir(chain.outbox(p)).unwrap() {
            let path = e.unwrap().path();
            if path.to_string_lossy().ends_with(&suffix) {
                out.push((p.to_owned(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    assert_eq!(
        out.len(),
        teiten::chain::PARTNERS.len() + 1,
        "one file per partner"
    );
    out
}

#[test]
fn forged_and_special_sources_never_reach_partners_or_public_counts() {
    for (tool, pkg) in [
        ("hping3", "hping3"),
        ("tcpreplay", "tcpreplay"),
        ("xmllint", "libxml2-utils"),
    ] {
        require_tool(tool, pkg);
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        other_monitored: vec![OTHER_SENSOR_PREFIX.into()],
        ..Options::default()
    };
    let chain = Chain::start(dir.path(), &opts);
    let lab = &chain.lab;

    // IPv4: hping3 SYNs, forged with -a; and the lab scanner's own address (published: the
    // chain's config publishes 198.18.0.1 of the benchmarking range, and only it).
    let port = PORT.to_string();
    for (src, extra, _) in V4 {
        let mut args = vec!["-S", "-p", &port, "-a", src];
        args.extend_from_slice(extra);
        args.push(TARGET);
        quiet(lab.hping(N, &args));
    }
    quiet(lab.hping(N, &["-S", "-p", &port, TARGET]));
    // IPv6: crafted SYN frames to the sensor's MAC, replayed on the scanner side's link.
    let mac: Vec<u8> = lab
        .sensor_mac()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let frames: Vec<(i64, Vec<u8>)> = V6
        .iter()
        .flat_map(|(src, _)| (0..N).map(move |i| (src, i)))
        .enumerate()
        .map(|(k, (src, i))| {
            let mut f = frame(&Spec {
                src: src.parse().unwrap(),
                dst: TARGET6.parse().unwrap(),
                ttl: 64,
                ip_id: 0,
                l4: L4::Tcp {
                    sport: 40_000 + i as u16,
                    dport: PORT,
                    seq: 1000 + k as u32,
                    flags: 0x002,
                    window: 1024,
                },
                vlans: 0,
            });
            f[..6].copy_from_slice(&mac);
            (1_700_000_000_000_000 + k as i64 * 1000, f)
        })
        .collect();
    let pcap = dir.path().join("v6.pcap");
    write_pcap(&pcap, frames).unwrap();
    let out = lab
        .in_scanner("tcpreplay")
        .args(["-q", "--topspeed", "-i", &lab.scanner_if])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sent = u64::from(N) * (V4.len() + 1 + V6.len()) as u64;
    assert_eq!(
        chain.wait_for_events(sent, Duration::from_secs(60)),
        sent,
        "every forged packet is stored (the raw table keeps everything)"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(chain.stored_events(), sent);

    // The aggregator decided why, per source.
    let stored = chain
        .clickhouse
        .query(
            "SELECT replaceRegexpOne(IPv6NumToString(src), '^::ffff:', ''), any(withheld), \
             uniqExact(withheld), count() FROM teiten.scan_events GROUP BY src ORDER BY src",
        )
        .unwrap();
    let reasons: std::collections::BTreeMap<String, (String, u64)> = stored
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f[2], "1", "one reason per source: {l}");
            (
                f[0].to_owned(),
                (reason_name(f[1]).to_owned(), f[3].parse().unwrap()),
            )
        })
        .collect();
    let mut expected: Vec<(String, &str)> = V4
        .iter()
        .map(|(s, _, r)| (s.to_string(), r.unwrap_or("published")))
        .chain(
            V6.iter()
                .map(|(s, r)| (s.to_string(), r.unwrap_or("published"))),
        )
        .collect();
    expected.push((teiten::lab::SCANNER_IP.to_owned(), "published"));
    for (src, reason) in &expected {
        let canon = src.parse::<IpAddr>().unwrap().to_string();
        assert_eq!(
            reasons.get(&canon),
            Some(&(reason.to_string(), u64::from(N))),
            "{src} in {reasons:?}"
        );
    }
    assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
    let published: Vec<String> = expected
        .iter()
        .filter(|(_, r)| *r == "published")
        .map(|(s, _)| s.clone())
        .collect();
    let withheld: Vec<(String, &str)> = expected
        .iter()
        .filter(|(_, r)| *r != "published")
        .cloned()
        .collect();

    // Partner files, through the real export: no withheld source, every genuine one (the
    // all-countries partner gets them all, JP's partner its own).
    let printed = chain.export_today();
    let files = todays_files(&chain);
    for (partner, text) in &files {
        for (src, reason) in &withheld {
            let canon = src.parse::<IpAddr>().unwrap().to_string();
            assert!(
                !text.contains(&format!(">{canon}<")),
                "{partner}'s file carries {src} ({reason})"
            );
        }
        assert!(!text.contains(">198.18.1."), "{partner}: a dark address");
    }
    let all = &files.iter().find(|(p, _)| p == "all-v1").unwrap().1;
    for src in &published {
        let canon = src.parse::<IpAddr>().unwrap().to_string();
        assert!(
            all.contains(&format!(">{canon}<")),
            "all-v1 lacks {src}: {printed}"
        );
    }
    let events_in = |text: &str| text.matches("<EventData").count() as u64;
    assert_eq!(
        events_in(all),
        u64::from(N) * published.len() as u64,
        "{printed}"
    );
    let jp = &files.iter().find(|(p, _)| p == "jp-cert").unwrap().1;
    assert!(jp.contains(">1.0.16.10<"), "jp-cert: {printed}");
    assert_eq!(events_in(jp), u64::from(N));

    // Public numbers: the per-port unique sources count the genuine sources only, bucket by
    // bucket, and fewer than all the sources that sent to the port.
    let exact = chain
        .clickhouse
        .query(&format!(
            "SELECT intDiv(toUInt32(ts), 300) * 300 AS t, uniqExactIf(src, withheld = 0), \
             uniqExact(src) FROM teiten.scan_events WHERE dport = {PORT} GROUP BY t ORDER BY t"
        ))
        .unwrap();
    let url = &chain.dashboard_url;
    // Today's data is not public yet (the public views wait for the day to be over): the
    // public answer publishes nothing about the port.
    let public = ureq::get(&format!(
        "{url}/api/v1/port.json?port={PORT}&period=1d&mode=total"
    ))
    .call()
    .unwrap()
    .into_string()
    .unwrap();
    let pv: serde_json::Value = serde_json::from_str(&public).unwrap();
    assert_eq!(pv["published"], false, "{public}");
    // The analysts' all-sensor view reads the same published-only unique-source rollups that
    // the public views read once the day is over.
    let analyst = login(url, &Options::default().analyst_password);
    let body = ureq::get(&format!(
        "{url}/api/v1/port.json?port={PORT}&period=1d&mode=total"
    ))
    .set("Cookie", &analyst)
    .call()
    .unwrap()
    .into_string()
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sources = &v["sources"];
    let times: Vec<i64> = sources["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    let all_regions = sources["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "all regions")
        .unwrap_or_else(|| panic!("no `all regions` series: {body}"));
    let mut withheld_somewhere = false;
    for line in exact.lines() {
        let f: Vec<i64> = line.split('\t').map(|x| x.parse().unwrap()).collect();
        let i = times.iter().position(|t| *t == f[0]).expect("bucket shown");
        assert_eq!(
            all_regions["values"][i].as_f64().unwrap(),
            f[1] as f64,
            "public unique sources at {}: {body}",
            f[0]
        );
        withheld_somewhere |= f[2] > f[1];
    }
    assert!(
        withheld_somewhere,
        "no bucket had a withheld source: {exact}"
    );
    for (src, _) in &withheld {
        assert!(!body.contains(src.as_str()), "{src} in a public answer");
    }

    // The analyst page lists every withheld source with its reason, the genuine ones not.
    let cookie = login(url, &Options::default().analyst_password);
    let page = ureq::get(&format!("{url}/analyst/withheld"))
        .set("Cookie", &cookie)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for (src, reason) in &withheld {
        let canon = src.parse::<IpAddr>().unwrap().to_string();
        let row = page
            .split("<tr>")
            .find(|r| r.contains(&format!(">{canon}</a>")))
            .unwrap_or_else(|| panic!("{src} not on the analyst page: {page}"));
        assert!(row.contains(reason), "{src}: {row}");
        assert!(row.contains(&format!("<td>{N}</td>")), "{src}: {row}");
    }
    for src in &published {
        assert!(
            !page.contains(&format!(">{src}</a>")),
            "{src} listed as withheld"
        );
    }
    let count_row = |reason: &str| {
        page.split("<tr>")
            .find(|r| r.starts_with(&format!("<td class=\"l\">{reason}</td>")))
            .unwrap_or_else(|| panic!("no count row for {reason}: {page}"))
            .to_owned()
    };
    let n = |reason: &str| withheld.iter().filter(|(_, r)| *r == reason).count() as u32;
    for reason in [
        "monitored_prefix",
        "sensor_address",
        "special_purpose",
        "spoof_suspect",
    ] {
        assert!(
            count_row(reason).starts_with(&format!(
                "<td class=\"l\">{reason}</td><td>{}</td><td>{}</td>",
                n(reason) * N,
                n(reason)
            )),
            "{}",
            count_row(reason)
        );
    }
    // Without a session the page is not shown.
    let anon = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .get(&format!("{url}/analyst/withheld"))
        .call()
        .unwrap();
    assert_eq!(anon.status(), 303);

    // The aggregator's metrics count withheld events by reason.
    let metrics = ureq::get(&format!("{}/metrics", chain.aggregator_url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for reason in [
        "monitored_prefix",
        "sensor_address",
        "special_purpose",
        "spoof_suspect",
    ] {
        let line = format!(
            "teiten_aggregator_events_withheld_total{{reason=\"{reason}\"}} {}",
            n(reason) * N
        );
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
}
