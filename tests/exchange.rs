//! The IODEF exchange end to end, against a private ClickHouse 18.16 and the real
//! `teiten-aggregator` binary: daily files per partner (valid per xmllint, exact counts, right
//! countries, no sensor address, deterministic, revisions after late events), imports of the
//! whole conformance corpus, the upload and report endpoints, triage, correlation, and HTTPS
//! delivery that fails, is retried and succeeds.

mod aggregator_common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator_common::{post, Agg};
use teiten::clickhouse::{scan_day_sql, Server};
use teiten::{require_tool, run_ok};
use teiten_wire::{Batch, BatchId, Class, Event, SensorStats, Tags};

const DAY: i64 = 86_400;

/// The midnight (UTC) two days ago: a whole day that is over, inside the retention window.
fn day_start() -> i64 {
    let now = aggregator_common::now_us() / 1_000_000;
    (now / DAY - 2) * DAY
}

fn date_of(t: i64) -> String {
    let out = run_ok(Command::new("date").args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%d"]));
    out.trim().to_owned()
}

/// An IPv4 address IPFire's location database (the aggregator's default) places in `cc`: the
/// middle of the first IPv4 network (a /16 to /30: wider ones hold more specific networks of
/// other countries) that Debian's `location list-networks-by-cc` lists for it, and that a
/// lookup places there too.
fn address_in(cc: &str) -> Ipv4Addr {
    let out =
        run_ok(Command::new("location").args(["list-networks-by-cc", "--family", "ipv4", cc]));
    let db = teiten_store::GeoDb::load(&teiten_store::GeoConfig::default()).expect("location db");
    for line in out.lines() {
        if let Ok(net) = line.trim().parse::<ipnet::Ipv4Net>() {
            if (16..=30).contains(&net.prefix_len()) {
                let (a, b) = (u32::from(net.network()), u32::from(net.broadcast()));
                let ip = Ipv4Addr::from(a + (b - a) / 2);
                if db.lookup(ip.into()) == Some(cc.as_bytes().try_into().expect("alpha-2")) {
                    return ip;
                }
            }
        }
    }
    panic!("no {cc} network in the location database (apt-get install libloc-database location)")
}

fn event(src: Ipv4Addr, ts: i64, proto: u8, dport: u16, class: Class) -> Event {
    Event {
        ts_us: ts * 1_000_000 + 123_456,
        proto,
        src: IpAddr::V4(src),
        dst: IpAddr::V4(Ipv4Addr::new(198, 18, 7, 42)),
        sport: if proto == 1 { 8 } else { 40_001 },
        dport: if proto == 1 { 0 } else { dport },
        tcp_flags: if proto == 6 { 2 } else { 0 },
        ttl: 50,
        ip_id: 1,
        ip_len: 40,
        seq: 7,
        window: 1024,
        class,
        tags: Tags::empty(),
    }
}

fn batch_of(seq: u64, events: Vec<Event>) -> Batch {
    Batch {
        id: BatchId {
            sensor_id: "tokyo-1".into(),
            epoch: 1,
            seq,
        },
        // Sealed right after its last event, as a sensor does (the aggregator refuses events
        // more than `ingest.max_event_age_secs` before the seal time).
        sealed_us: events
            .iter()
            .map(|e| e.ts_us)
            .max()
            .unwrap_or_else(aggregator_common::now_us),
        stats: SensorStats::default(),
        events,
    }
}

fn schema(version: u8) -> PathBuf {
    teiten::conformance().join(format!("iodef/schemas/iodef-{version}.0.xsd"))
}

/// xmllint's verdict and XPath answers are the oracle for what is in a file.
fn xmllint_valid(version: u8, file: &Path) {
    let out = Command::new("xmllint")
        .args(["--nonet", "--noout", "--schema"])
        .arg(schema(version))
        .arg(file)
        .output()
        .expect("xmllint runs");
    assert!(
        out.status.success(),
        "{} is not valid IODEF v{version}:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn xpath(file: &Path, expr: &str) -> String {
    run_ok(
        Command::new("xmllint")
            .args(["--nonet", "--xpath", expr])
            .arg(file),
    )
}

fn event_count(file: &Path) -> u64 {
    xpath(file, "count(//*[local-name()='EventData'])")
        .trim()
        .parse()
        .unwrap()
}

/// The source IP addresses of an IODEF file (not the sources' `asn` Addresses).
fn source_addresses(file: &Path) -> BTreeSet<String> {
    let out = Command::new("xmllint")
        .args([
            "--nonet",
            "--xpath",
            "//*[local-name()='System'][@category='source']//*[local-name()='Address']\
             [@category!='asn']/text()",
        ])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn exchange_config(dir: &Path, extra_partner: &str) -> String {
    format!(
        // The batches here carry events of several days (late events, day boundaries).
        "[ingest]\nmax_event_age_secs = 864000\n\n[retention]\nraw_days = 30\n\n[exchange]\ncsirt = \"csirt.teiten.test\"\n\
         csirt_email = \"csirt@teiten.test\"\noutbox = \"{0}/outbox\"\ninbox = \"{0}/inbox\"\n\
         quarantine = \"{0}/quarantine\"\ninterval_secs = 1\nexport_delay_minutes = 0\n\
         delivery_attempts = 1\n\n\
         [[exchange.partner]]\nid = \"au-cert\"\ncountries = [\"AU\"]\n\
         upload_token_sha256 = \"{1}\"\n\n\
         [[exchange.partner]]\nid = \"jp-cert\"\ncountries = [\"JP\"]\niodef_version = 1\n\
         timezone = \"Asia/Tokyo\"\n\n\
         [[exchange.partner]]\nid = \"world\"\ncountries = [\"all\"]\ntlp = \"green\"\n\n\
         [[exchange.reporter]]\nname = \"ids-1\"\ntoken_sha256 = \"{2}\"\n\n{extra_partner}",
        dir.display(),
        sha256_hex("au-upload-token"),
        sha256_hex("ids-token"),
    )
}

fn sha256_hex(s: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn file_sha256(p: &Path) -> String {
    run_ok(Command::new("sha256sum").arg(p))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn outbox_file(dir: &Path, partner: &str, date: &str) -> PathBuf {
    dir.join(format!("outbox/{partner}/teiten-{partner}-{date}.xml"))
}

fn manifest(file: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}.manifest.json", file.display())).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An aggregator for `cfg` in database `db` holding the `events` it makes of the day two
/// days ago (its first second, and an address in AU), every one stored; and that day's date.
fn aggregator_with_day(
    ch: &Server,
    db: &str,
    cfg: &str,
    events: impl FnOnce(i64, Ipv4Addr) -> Vec<Event>,
) -> (Agg, String) {
    let agg = Agg::start(ch, db, cfg);
    let token = agg.add_sensor("tokyo-1");
    let d = day_start();
    let events = events(d, address_in("AU"));
    let n = events.len() as u64;
    let answer = post(&agg.url, &token, &batch_of(1, events));
    assert_eq!(answer.status, 200, "{}", answer.body);
    aggregator_common::eventually(ch, &format!("SELECT count() FROM {db}.scan_events"), n);
    (agg, date_of(d))
}

#[test]
fn daily_files_are_exact_valid_per_partner_and_deterministic() {
    require_tool("xmllint", "libxml2-utils");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    // The scheduler must not export on its own here: the CLI does it (delay = one day).
    let cfg = exchange_config(work.path(), "")
        .replace("export_delay_minutes = 0", "export_delay_minutes = 1440");
    let agg = Agg::start(&ch, "ex_daily", &cfg);
    let token = agg.add_sensor("tokyo-1");

    let d = day_start();
    let date = date_of(d);
    let (au, au2, jp, cn) = (
        address_in("AU"),
        Ipv4Addr::from(u32::from(address_in("AU")) + 1),
        address_in("JP"),
        address_in("CN"),
    );
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(event(au, d + 3600 + i, 6, 22 + i as u16, Class::Scan));
    }
    events.push(event(au2, d + 3700, 17, 161, Class::Scan));
    for i in 0..4 {
        events.push(event(jp, d + 2 * 3600 + i, 6, 445, Class::Scan)); // 11:00 JST, day D
    }
    for i in 0..2 {
        events.push(event(jp, d + 20 * 3600 + i, 6, 23, Class::Scan)); // 05:00 JST, day D+1
    }
    for i in 0..3 {
        events.push(event(cn, d + 3 * 3600 + i, 6, 3389, Class::Scan));
    }
    events.push(event(cn, d + 4 * 3600, 1, 0, Class::Scan)); // ICMP echo request
    events.push(event(au, d + 5 * 3600, 6, 80, Class::Backscatter)); // not a scan
    events.push(event(au, d - 1, 6, 22, Class::Scan)); // the day before (UTC)
    events.push(event(jp, d - 8 * 3600, 6, 22, Class::Scan)); // 01:00 JST day D, 16:00 UTC D-1
    let total = events.len() as u64;
    let answer = post(&agg.url, &token, &batch_of(1, events));
    assert_eq!(answer.status, 200, "{}", answer.body);
    aggregator_common::eventually(&ch, "SELECT count() FROM ex_daily.scan_events", total);

    let (ok, out) = agg.cli(&["export", "--date", &date]);
    assert!(ok, "{out}");
    let au_file = outbox_file(work.path(), "au-cert", &date);
    let jp_file = outbox_file(work.path(), "jp-cert", &date);
    let world_file = outbox_file(work.path(), "world", &date);

    xmllint_valid(2, &au_file);
    xmllint_valid(1, &jp_file);
    xmllint_valid(2, &world_file);
    // Each partner gets exactly its country's scans of its own day.
    assert_eq!(event_count(&au_file), 6);
    assert_eq!(
        event_count(&jp_file),
        5,
        "JST day: 4 at 11:00 and 1 at 01:00"
    );
    assert_eq!(event_count(&world_file), 6 + 4 + 2 + 3 + 1);
    assert_eq!(
        source_addresses(&au_file),
        [au.to_string(), au2.to_string()].into_iter().collect()
    );
    assert_eq!(
        source_addresses(&jp_file),
        [jp.to_string()].into_iter().collect()
    );
    assert_eq!(
        source_addresses(&world_file),
        [au, au2, jp, cn].iter().map(|a| a.to_string()).collect()
    );
    for f in [&au_file, &jp_file, &world_file] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("198.18."),
            "a sensor address leaked into {}",
            f.display()
        );
        assert!(text.contains("csirt.teiten.test"));
    }
    let world = std::fs::read_to_string(&world_file).unwrap();
    assert!(world.contains("<ProtoType>8</ProtoType>"), "ICMP type kept");
    assert!(world.contains(r#"restriction="green""#));
    assert!(std::fs::read_to_string(&au_file)
        .unwrap()
        .contains(r#"restriction="amber""#));

    let m = manifest(&au_file);
    assert_eq!(m["events"], 6);
    assert_eq!(m["sources"], 2);
    assert_eq!(m["revision"], 1);
    assert_eq!(m["sha256"], file_sha256(&au_file));
    assert_eq!(manifest(&jp_file)["timezone"], "Asia/Tokyo");
    assert_eq!(manifest(&jp_file)["iodef_version"], 1);

    // The same day again: the same bytes, nothing rewritten.
    let before = std::fs::read(&au_file).unwrap();
    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "au-cert"]);
    assert!(ok && out.contains("unchanged"), "{out}");
    assert_eq!(std::fs::read(&au_file).unwrap(), before);

    // Late events: the file is replaced and says what changed.
    let late = vec![
        event(au, d + 10 * 3600, 6, 8080, Class::Scan),
        event(au, d + 10 * 3600 + 1, 6, 8081, Class::Scan),
    ];
    assert_eq!(post(&agg.url, &token, &batch_of(2, late)).status, 200);
    aggregator_common::eventually(&ch, "SELECT count() FROM ex_daily.scan_events", total + 2);
    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "au-cert"]);
    assert!(ok && out.contains("revision 2 (+2 events"), "{out}");
    xmllint_valid(2, &au_file);
    assert_eq!(event_count(&au_file), 8);
    let m = manifest(&au_file);
    assert_eq!(m["revision"], 2);
    assert_eq!(m["change"]["events_delta"], 2);
    assert_eq!(m["change"]["previous_events"], 6);

    // Outbox-only partners count as delivered; the status lists every partner-day.
    let (ok, out) = agg.cli(&["exchange-status"]);
    assert!(ok, "{out}");
    let day = date.replace('-', "");
    for p in ["au-cert", "jp-cert", "world"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(p) && l.contains(&day))
            .unwrap_or_else(|| panic!("no status for {p}: {out}"));
        assert!(line.contains("delivered"), "{line}");
    }
    assert!(out
        .lines()
        .any(|l| l.starts_with("au-cert") && l.contains(" 2 ") && l.contains("8")));
}

/// The partner formats end to end: one partner receives its day per packet as IODEF v2 and v1,
/// IntelMQ JSON lines and Shadowserver darknet CSV, another the same aggregated (one record
/// per source, protocol and port). Every IODEF file validates with xmllint; IntelMQ's own JSON
/// and Shadowserver parser bots read every line of the others with no error; the records
/// agree with what was sent, format by format; no file names a sensor address; the manifests
/// and the day's index carry each file's SHA-256; a re-export changes nothing.
#[test]
fn research_scanners_are_tagged_at_ingest_and_sent_only_to_partners_that_want_them() {
    require_tool("xmllint", "libxml2-utils");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let au = address_in("AU");
    let research = Ipv4Addr::from(u32::from(au) + 1);
    let cfg = format!(
        "[sources]\nresearch = [\"{research}/32\"]\n\n{}",
        exchange_config(
            work.path(),
            "[[exchange.partner]]\nid = \"no-research\"\ncountries = [\"all\"]\nresearch = false\n"
        )
        .replace("export_delay_minutes = 0", "export_delay_minutes = 1440")
    );
    let (agg, date) = aggregator_with_day(&ch, "ex_research", &cfg, |d, _| {
        let mut events: Vec<Event> = (0..3)
            .map(|i| event(au, d + 60 + i, 6, 22, Class::Scan))
            .collect();
        // A sensor's own research mark counts for nothing: the list decides.
        events[0].tags = Tags::RESEARCH;
        events.extend((0..2).map(|i| event(research, d + 120 + i, 6, 23, Class::Scan)));
        events
    });
    let tagged = ch
        .query("SELECT countIf(bitAnd(tags, 64) != 0) FROM ex_research.scan_events")
        .unwrap();
    assert_eq!(
        tagged.trim(),
        "2",
        "the two events of the listed source are tagged"
    );
    let (ok, out) = agg.cli(&["export", "--date", &date]);
    assert!(ok, "{out}");
    let with = outbox_file(work.path(), "world", &date);
    let without = outbox_file(work.path(), "no-research", &date);
    xmllint_valid(2, &with);
    xmllint_valid(2, &without);
    assert_eq!(
        source_addresses(&with),
        [au.to_string(), research.to_string()].into_iter().collect()
    );
    assert_eq!(event_count(&with), 5);
    assert_eq!(
        source_addresses(&without),
        [au.to_string()].into_iter().collect(),
        "research scanners are left out for a partner that does not want them"
    );
    assert_eq!(event_count(&without), 3);
    assert_eq!(manifest(&without)["sources"], 1);
}

/// Partners defined only by autonomous systems, only by prefixes, and by a union of a country
/// and an AS: each file holds exactly the sources of its constituency, as IPFire's location
/// database places them (checked with Debian's `location lookup`), IPv4 and IPv6; the ASN is
/// stored with every event and written to the IntelMQ and CSV files.
#[test]
fn partners_defined_by_asn_or_prefix_get_their_networks_sources() {
    require_tool("xmllint", "libxml2-utils");
    require_tool("location", "location");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    // The oracle: the AS of each source as Debian's `location` tool reads the same database.
    let asn_of = |ip: &str| -> String {
        let out = run_ok(Command::new("location").args(["lookup", ip]));
        out.lines()
            .find_map(|l| l.split_once("Autonomous System").map(|(_, r)| r.to_owned()))
            .and_then(|r| {
                r.split_whitespace()
                    .nth(1)
                    .map(|a| a.trim_start_matches("AS").to_owned())
            })
            .unwrap_or_else(|| panic!("no AS for {ip}: {out}"))
    };
    // Google (AS15169, IPv4 and IPv6), Cloudflare (AS13335), Akamai (AS20940, in 2.16.6.0/24).
    let (g4, g6, cf, ak) = ("8.8.8.8", "2001:4860:4860::8888", "1.1.1.1", "2.16.6.10");
    for (ip, asn) in [(g4, "15169"), (g6, "15169"), (cf, "13335"), (ak, "20940")] {
        assert_eq!(asn_of(ip), asn, "{ip}");
    }
    let extra = "[[exchange.partner]]\nid = \"isp-asn\"\nasns = [15169]\n\
                 formats = [\"iodef2\", \"intelmq\", \"csv\"]\n\n\
                 [[exchange.partner]]\nid = \"isp-net\"\nprefixes = [\"2.16.6.0/24\"]\n\n\
                 [[exchange.partner]]\nid = \"mixed\"\ncountries = [\"AU\"]\nasns = [20940]\n";
    let cfg = exchange_config(work.path(), extra)
        .replace("export_delay_minutes = 0", "export_delay_minutes = 1440");
    let (agg, date) = aggregator_with_day(&ch, "ex_asn", &cfg, |d, _| {
        let mut ev = Vec::new();
        for (i, ip) in [g4, g6, cf, ak].iter().enumerate() {
            for k in 0..(i as i64 + 1) {
                let mut e = event(
                    Ipv4Addr::UNSPECIFIED,
                    d + 60 + 10 * i as i64 + k,
                    6,
                    23,
                    Class::Scan,
                );
                e.src = ip.parse().unwrap();
                if e.src.is_ipv6() {
                    e.dst = "2001:db8::42".parse().unwrap();
                }
                ev.push(e);
            }
        }
        ev
    });
    let stored = ch
        .query("SELECT src_asn, count() FROM ex_asn.scan_events GROUP BY src_asn ORDER BY src_asn")
        .unwrap();
    assert_eq!(
        stored, "13335\t3\n15169\t3\n20940\t4\n",
        "the AS stored with each event"
    );
    let (ok, out) = agg.cli(&["export", "--date", &date]);
    assert!(ok, "{out}");
    let set = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<String>>()
    };
    let by_asn = outbox_file(work.path(), "isp-asn", &date);
    let by_net = outbox_file(work.path(), "isp-net", &date);
    let mixed = outbox_file(work.path(), "mixed", &date);
    for f in [&by_asn, &by_net, &mixed] {
        xmllint_valid(2, f);
    }
    assert_eq!(source_addresses(&by_asn), set(&[g4, g6]));
    assert_eq!(event_count(&by_asn), 3);
    assert_eq!(source_addresses(&by_net), set(&[ak]));
    assert_eq!(event_count(&by_net), 4);
    assert_eq!(source_addresses(&mixed), set(&[cf, ak]));
    assert_eq!(event_count(&mixed), 7);
    // The AS travels in every format: in IODEF as the source Node's second Address, read back
    // by our reader as each event's AS.
    let asn_addresses = |f: &std::path::Path, asn: &str| {
        let xml = std::fs::read_to_string(f).unwrap();
        xml.matches(&format!("<Address category=\"asn\">{asn}</Address>"))
            .count()
    };
    assert_eq!(asn_addresses(&by_asn, "15169"), 3);
    assert_eq!(asn_addresses(&by_net, "20940"), 4);
    assert_eq!(
        (
            asn_addresses(&mixed, "13335"),
            asn_addresses(&mixed, "20940")
        ),
        (3, 4)
    );
    let file = std::io::BufReader::new(std::fs::File::open(&by_asn).unwrap());
    let loaded = iodef::Document::read(file, &iodef::ReadOptions::strict()).unwrap();
    let iodef::Document::V2(doc) = loaded.document else {
        panic!("an IODEF v2 file")
    };
    let asns: BTreeSet<Option<u32>> = doc
        .incident
        .iter()
        .flat_map(iodef::ScanEvent::from_incident)
        .map(|e| e.asn)
        .collect();
    assert_eq!(asns, BTreeSet::from([Some(15169)]));
    // The AS travels in the formats that have a field for it.
    let dir = work.path().join("outbox/isp-asn");
    let jsonl =
        std::fs::read_to_string(dir.join(format!("teiten-isp-asn-{date}.intelmq.jsonl"))).unwrap();
    assert_eq!(jsonl.lines().count(), 3);
    assert!(
        jsonl.lines().all(|l| l.contains("\"source.asn\":15169")),
        "{jsonl}"
    );
    let csv_name = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with(".csv"))
        .expect("a CSV file");
    let csv = std::fs::read_to_string(dir.join(csv_name)).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.split(',').nth(4) == Some("15169")),
        "{csv}"
    );
}

#[test]
fn partner_formats_load_in_partners_tools_and_aggregates_count_every_packet() {
    use teiten::intelmq::{parse, Parser};
    require_tool("xmllint", "libxml2-utils");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let extra = "[[exchange.partner]]\nid = \"pk\"\ncountries = [\"AU\", \"CN\"]\n\
                 formats = [\"iodef2\", \"intelmq\", \"csv\", \"iodef1\"]\n\n\
                 [[exchange.partner]]\nid = \"agg\"\ncountries = [\"AU\", \"CN\"]\n\
                 formats = [\"csv\", \"intelmq\", \"iodef1\", \"iodef2\"]\nrecords = \"aggregate\"\n";
    let cfg = exchange_config(work.path(), extra)
        .replace("export_delay_minutes = 0", "export_delay_minutes = 1440");
    let agg = Agg::start(&ch, "ex_formats", &cfg);
    let token = agg.add_sensor("tokyo-1");

    let d = day_start();
    let date = date_of(d);
    let (au, cn, jp) = (address_in("AU"), address_in("CN"), address_in("JP"));
    let to = |mut e: Event, dst: u8| {
        e.dst = IpAddr::V4(Ipv4Addr::new(198, 18, 7, dst));
        e
    };
    let mut events = Vec::new();
    // AU: telnet to 3 sensor addresses, 6 packets over two hours; one SSH probe.
    for i in 0..6 {
        events.push(to(
            event(au, d + 3600 + i * 1200, 6, 23, Class::Scan),
            10 + (i % 3) as u8,
        ));
    }
    events.push(to(event(au, d + 7200, 6, 22, Class::Scan), 10));
    // CN: UDP 161 twice to one address, and an ICMP echo request.
    events.push(to(event(cn, d + 100, 17, 161, Class::Scan), 20));
    events.push(to(event(cn, d + 200, 17, 161, Class::Scan), 20));
    events.push(to(event(cn, d + 300, 1, 0, Class::Scan), 21));
    // Neither partner's: JP, backscatter, and AU the day before.
    events.push(event(jp, d + 400, 6, 445, Class::Scan));
    events.push(event(au, d + 500, 6, 80, Class::Backscatter));
    events.push(event(au, d - 10, 6, 23, Class::Scan));
    let total = events.len() as u64;
    let answer = post(&agg.url, &token, &batch_of(1, events));
    assert_eq!(answer.status, 200, "{}", answer.body);
    aggregator_common::eventually(&ch, "SELECT count() FROM ex_formats.scan_events", total);

    for p in ["pk", "agg"] {
        let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", p]);
        assert!(ok, "{out}");
        assert_eq!(out.matches(&format!("{p}: ")).count(), 4, "{out}");
    }
    let dir = |p: &str| work.path().join("outbox").join(p);
    let pk = dir("pk");
    let iodef2 = pk.join(format!("teiten-pk-{date}.xml"));
    let iodef1 = pk.join(format!("teiten-pk-{date}.iodef1.xml"));
    let jsonl = pk.join(format!("teiten-pk-{date}.intelmq.jsonl"));
    let csv = pk.join(format!("{date}-event4_honeypot_darknet-pk-geo.csv"));

    // Per packet: 10 scans of the partner's countries in every format.
    xmllint_valid(2, &iodef2);
    xmllint_valid(1, &iodef1);
    assert_eq!(event_count(&iodef2), 10);
    assert_eq!(event_count(&iodef1), 10);
    let json_events = parse(Parser::Json, &jsonl);
    assert_eq!(json_events.len(), 10);
    let key = |e: &serde_json::Value| {
        format!(
            "{} {} {} {}",
            e["source.ip"].as_str().unwrap(),
            e["protocol.transport"].as_str().unwrap_or("?"),
            e["destination.port"]
                .as_u64()
                .map_or("-".into(), |p| p.to_string()),
            e["time.source"].as_str().unwrap()
        )
    };
    let got: BTreeSet<String> = json_events.iter().map(key).collect();
    let iso = |t: i64| {
        run_ok(Command::new("date").args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%S"]))
            .trim()
            .to_owned()
            + ".123456+00:00"
    };
    let mut want = BTreeSet::new();
    for i in 0..6 {
        want.insert(format!("{au} tcp 23 {}", iso(d + 3600 + i * 1200)));
    }
    want.insert(format!("{au} tcp 22 {}", iso(d + 7200)));
    want.insert(format!("{cn} udp 161 {}", iso(d + 100)));
    want.insert(format!("{cn} udp 161 {}", iso(d + 200)));
    want.insert(format!("{cn} icmp - {}", iso(d + 300)));
    assert_eq!(got, want);
    for e in &json_events {
        assert_eq!(e["classification.taxonomy"], "information-gathering");
        assert_eq!(e["classification.type"], "scanner");
        assert_eq!(e["feed.provider"], "csirt.teiten.test");
        let cc = if e["source.ip"] == au.to_string() {
            "AU"
        } else {
            "CN"
        };
        assert_eq!(e["source.geolocation.cc"], cc, "{e}");
        assert!(e.get("destination.ip").is_none(), "{e}");
    }
    let icmp = json_events
        .iter()
        .find(|e| e["protocol.transport"] == "icmp")
        .unwrap();
    assert_eq!(icmp["extra.icmp_type"], 8, "{icmp}");
    // The same sources and times as the IODEF file of the same day.
    assert_eq!(
        source_addresses(&iodef2),
        [au.to_string(), cn.to_string()].into_iter().collect()
    );
    assert_eq!(
        xpath(&iodef2, "count(//*[local-name()='DetectTime'])").trim(),
        "10"
    );
    let csv_events = parse(Parser::Shadowserver, &csv);
    assert_eq!(csv_events.len(), 10);
    for e in &csv_events {
        assert_eq!(e["extra.count"], 1, "{e}");
        assert!(e.get("destination.ip").is_none(), "{e}");
    }
    let csv_keys: BTreeSet<String> = csv_events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["source.ip"].as_str().unwrap(),
                e["extra.protocol"].as_str().unwrap(),
                e["destination.port"]
                    .as_u64()
                    .map_or("-".into(), |p| p.to_string())
            )
        })
        .collect();
    assert_eq!(
        csv_keys,
        [
            format!("{au} tcp 23"),
            format!("{au} tcp 22"),
            format!("{cn} udp 161"),
            format!("{cn} icmp -")
        ]
        .into_iter()
        .collect()
    );

    // Aggregated: one record per source, protocol and port (4), counting all 10 packets.
    let ag = dir("agg");
    let a_csv = ag.join(format!("{date}-event4_honeypot_darknet-agg-geo.csv"));
    let a_json = ag.join(format!("teiten-agg-{date}.intelmq.jsonl"));
    let a_v1 = ag.join(format!("teiten-agg-{date}.xml"));
    let a_v2 = ag.join(format!("teiten-agg-{date}.iodef2.xml"));
    xmllint_valid(1, &a_v1);
    xmllint_valid(2, &a_v2);
    assert_eq!(event_count(&a_v2), 4);
    assert_eq!(event_count(&a_v1), 4);
    let counters = |f: &Path, unit: &str| -> Vec<f64> {
        xpath(
            f,
            &format!("//*[local-name()='Counter'][@unit='{unit}' or @type='{unit}']/text()"),
        )
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
    };
    for f in [&a_v1, &a_v2] {
        let packets = counters(f, "packet");
        assert_eq!(packets.iter().sum::<f64>(), 10.0, "{}", f.display());
        assert!(packets.contains(&6.0), "{packets:?}");
        let hosts = counters(f, "host");
        assert_eq!(hosts.len(), 4);
        assert!(
            hosts.contains(&3.0),
            "AU telnet reached 3 addresses: {hosts:?}"
        );
    }
    assert!(std::fs::read_to_string(&a_v2)
        .unwrap()
        .contains("<StartTime>"));
    let a_events = parse(Parser::Json, &a_json);
    assert_eq!(a_events.len(), 4);
    let telnet = a_events
        .iter()
        .find(|e| e["destination.port"] == 23)
        .unwrap();
    assert_eq!(telnet["source.ip"], au.to_string());
    assert_eq!(telnet["extra.count"], 6);
    assert_eq!(telnet["extra.destinations"], 3);
    assert_eq!(telnet["time.source"], iso(d + 3600));
    assert_eq!(telnet["extra.first_seen"], iso(d + 3600));
    assert_eq!(telnet["extra.last_seen"], iso(d + 3600 + 5 * 1200));
    assert_eq!(
        a_events
            .iter()
            .map(|e| e["extra.count"].as_u64().unwrap())
            .sum::<u64>(),
        10
    );
    let a_csv_events = parse(Parser::Shadowserver, &a_csv);
    assert_eq!(a_csv_events.len(), 4);
    assert_eq!(
        a_csv_events
            .iter()
            .map(|e| e["extra.count"].as_u64().unwrap())
            .sum::<u64>(),
        10
    );

    // Manifests, the day's index, and no sensor address anywhere.
    for (p, files) in [
        ("pk", [&iodef2, &jsonl, &csv, &iodef1]),
        ("agg", [&a_csv, &a_json, &a_v1, &a_v2]),
    ] {
        let index: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir(p).join(format!("teiten-{p}-{date}.index.json"))).unwrap(),
        )
        .unwrap();
        let listed = index["files"].as_array().unwrap();
        assert_eq!(listed.len(), 4, "{index}");
        for (entry, f) in listed.iter().zip(files) {
            let m = manifest(f);
            assert_eq!(m["sha256"], file_sha256(f), "{}", f.display());
            assert_eq!(entry["sha256"], m["sha256"]);
            assert_eq!(entry["file"], f.file_name().unwrap().to_str().unwrap());
            assert_eq!(m["events"], 10, "{m}");
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                !text.contains("198.18."),
                "a sensor address in {}",
                f.display()
            );
            assert!(!text.contains(&jp.to_string()), "JP in {}", f.display());
        }
        assert_eq!(
            manifest(files[0])["records"],
            if p == "pk" { "packet" } else { "aggregate" }
        );
    }
    assert_eq!(manifest(&a_json)["record_count"], 4);

    // The same day again: every file unchanged.
    let before: Vec<Vec<u8>> = [&iodef2, &jsonl, &csv, &a_csv, &a_v2]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    for p in ["pk", "agg"] {
        let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", p]);
        assert!(ok, "{out}");
        assert_eq!(out.matches("unchanged").count(), 4, "{out}");
    }
    let after: Vec<Vec<u8>> = [&iodef2, &jsonl, &csv, &a_csv, &a_v2]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(before == after);
}

/// Every file a partner receives, and the day's index, carries a detached OpenPGP signature
/// by our CSIRT's key (an Ed25519 signing subkey under a passphrase, made and exported by
/// GnuPG); a partner's GnuPG that holds only our public key verifies each one, and fails on a
/// file changed by one byte. A re-export of the same day keeps the signatures; a wrong
/// passphrase stops `--check-config`, naming the key.
#[test]
fn partner_files_are_signed_and_gpg_verifies_them() {
    use teiten::gpg::Keyring;
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let ours = Keyring::new();
    let key = ours.generate(
        "teiten test CSIRT <csirt@teiten.test>",
        "correct horse",
        true,
    );
    let subkey = ours.fingerprints(&key.fingerprint)[1].clone();
    let pass = work.path().join("passphrase");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let extra = "[[exchange.partner]]\nid = \"sg\"\ncountries = [\"AU\"]\n\
                 formats = [\"iodef2\", \"csv\", \"intelmq\"]\n";
    let signing = format!(
        "[exchange]\nsigning_key = \"{}\"\nsigning_key_passphrase_file = \"{}\"\n",
        key.secret.display(),
        pass.display()
    );
    let cfg = exchange_config(work.path(), extra)
        .replace("export_delay_minutes = 0", "export_delay_minutes = 1440")
        .replacen("[exchange]\n", &signing, 1);
    let (agg, date) = aggregator_with_day(&ch, "ex_signed", &cfg, |d, au| {
        vec![
            event(au, d + 100, 6, 23, Class::Scan),
            event(au, d + 200, 17, 161, Class::Scan),
        ]
    });
    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "sg"]);
    assert!(ok, "{out}");

    let partner = Keyring::new();
    partner.import(&key.public);
    let dir = work.path().join("outbox/sg");
    let index = dir.join(format!("teiten-sg-{date}.index.json"));
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    let mut files: Vec<PathBuf> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| dir.join(e["file"].as_str().unwrap()))
        .collect();
    assert_eq!(files.len(), 3, "{listed}");
    for (f, e) in files.iter().zip(listed["files"].as_array().unwrap()) {
        let m = manifest(f);
        let asc = format!("{}.asc", f.file_name().unwrap().to_str().unwrap());
        assert_eq!(m["signature"], asc.as_str(), "{m}");
        assert_eq!(m["signer"], subkey.as_str(), "{m}");
        assert_eq!(e["signature"], asc.as_str(), "{e}");
    }
    files.push(index.clone());
    let mut signatures = Vec::new();
    for f in &files {
        let asc = PathBuf::from(format!("{}.asc", f.display()));
        let text = std::fs::read_to_string(&asc).unwrap();
        assert!(text.starts_with("-----BEGIN PGP SIGNATURE-----"), "{text}");
        let status = partner
            .verify(&asc, f)
            .unwrap_or_else(|e| panic!("gpg refused {}: {e}", f.display()));
        assert_eq!(
            Keyring::signed_by(&status).as_deref(),
            Some(subkey.as_str())
        );
        assert!(
            status.contains(&key.fingerprint),
            "VALIDSIG names the primary key {}: {status}",
            key.fingerprint
        );
        // One byte changed: the partner's gpg says BADSIG.
        let mut bytes = std::fs::read(f).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        let tampered = work.path().join("tampered");
        std::fs::write(&tampered, &bytes).unwrap();
        let refused = partner.verify(&asc, &tampered).unwrap_err();
        assert!(refused.contains("BAD"), "{refused}");
        signatures.push(text);
    }

    // The same day again: nothing changes, the signatures stay and still verify.
    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "sg"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("unchanged").count(), 3, "{out}");
    for (f, before) in files.iter().zip(&signatures) {
        let asc = PathBuf::from(format!("{}.asc", f.display()));
        assert_eq!(&std::fs::read_to_string(&asc).unwrap(), before);
    }
    // A signature deleted by hand is made again.
    let first = PathBuf::from(format!("{}.asc", files[0].display()));
    std::fs::remove_file(&first).unwrap();
    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "sg"]);
    assert!(ok, "{out}");
    partner.verify(&first, &files[0]).unwrap();

    // A wrong passphrase is refused before anything runs, naming the key setting; the
    // passphrase itself is never printed.
    std::fs::write(&pass, "wrong horse\n").unwrap();
    let (ok, out) = agg.cli(&["--check-config"]);
    assert!(!ok, "{out}");
    assert!(out.contains("exchange.signing_key"), "{out}");
    assert!(!out.contains("wrong horse"), "{out}");
}

/// A response's status, media type and body bytes.
fn get_bytes(url: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = ureq::get(url).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = resp.status();
    let kind = resp.content_type().to_owned();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    (status, kind, body)
}

/// A partner that fetches instead of receiving: with its own download token it lists its days
/// (newest first, within a range) and downloads every file, manifest, index and signature,
/// each byte for byte what the index's SHA-256 says; no token, an unknown one or another
/// partner's upload token is refused 401; another partner's file, a temporary file, the
/// delivery lock, a planted link to /etc/passwd and a path out of the directory are all the
/// same 404; bad parameters are a 400 naming the parameter; no answer carries a sensor address.
#[test]
fn partners_list_and_download_their_own_files() {
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[exchange.partner]]\nid = \"nz\"\ncountries = [\"AU\"]\n\
         formats = [\"iodef2\", \"csv\"]\ndownload_token_sha256 = \"{}\"\n",
        sha256_hex("nz-download-token")
    );
    let cfg = exchange_config(work.path(), &extra)
        .replace("export_delay_minutes = 0", "export_delay_minutes = 1440");
    let (agg, date) = aggregator_with_day(&ch, "ex_download", &cfg, |d, au| {
        vec![
            event(au, d + 100, 6, 23, Class::Scan),
            event(au, d + 200, 17, 161, Class::Scan),
        ]
    });
    for p in ["nz", "au-cert"] {
        let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", p]);
        assert!(ok, "{out}");
    }
    let base = format!("{}/api/v1/partner/files", agg.url);
    let token = Some("nz-download-token");

    let (status, listed) = http("GET", &base, token, b"");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["partner"], "nz");
    assert_eq!(listed["more"], false);
    let days = listed["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{listed}");
    assert_eq!(days[0]["date"], date.as_str());
    let index = days[0]["index"].as_str().unwrap().to_owned();
    assert_eq!(index, format!("teiten-nz-{date}.index.json"));
    let files = days[0]["files"].as_array().unwrap();
    let formats: Vec<&str> = files
        .iter()
        .map(|f| f["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["iodef2", "csv"], "{listed}");
    let outbox = work.path().join("outbox/nz");
    for f in files {
        let name = f["file"].as_str().unwrap();
        let (status, kind, body) = get_bytes(&format!("{base}/{name}"), token);
        assert_eq!(status, 200, "{name}");
        let want = if name.ends_with(".csv") {
            "text/csv"
        } else {
            "application/xml"
        };
        assert_eq!(kind, want, "{name}");
        let got = work.path().join("fetched");
        std::fs::write(&got, &body).unwrap();
        assert_eq!(file_sha256(&got), f["sha256"].as_str().unwrap(), "{name}");
        assert_eq!(body.len() as u64, f["bytes"].as_u64().unwrap());
        assert_eq!(body, std::fs::read(outbox.join(name)).unwrap());
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("198.18."), "a sensor address in {name}");
        let m = f["manifest"].as_str().unwrap();
        assert_eq!(m, format!("{name}.manifest.json"));
        let (status, kind, body) = get_bytes(&format!("{base}/{m}"), token);
        assert_eq!((status, kind.as_str()), (200, "application/json"), "{m}");
        let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(manifest["sha256"], f["sha256"], "{m}");
    }
    let (status, _, body) = get_bytes(&format!("{base}/{index}"), token);
    assert_eq!(status, 200);
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["files"].as_array().unwrap().len(), 2);

    // A range without the day, and one with it.
    let (_, none) = http("GET", &format!("{base}?to=2000-01-01"), token, b"");
    assert_eq!(none["days"].as_array().unwrap().len(), 0, "{none}");
    let (_, one) = http(
        "GET",
        &format!("{base}?from={date}&to={date}&limit=1"),
        token,
        b"",
    );
    assert_eq!(one["days"].as_array().unwrap().len(), 1, "{one}");

    // Who may not.
    for bad in [
        None,
        Some("guess"),
        Some("au-upload-token"),
        Some("ids-token"),
    ] {
        let (status, body) = http("GET", &base, bad, b"");
        assert_eq!(status, 401, "{bad:?}: {body}");
        let (status, _, _) = get_bytes(&format!("{base}/{index}"), bad);
        assert_eq!(status, 401, "{bad:?}");
    }

    // What is not the partner's to fetch: one answer for all of it.
    std::os::unix::fs::symlink("/etc/passwd", outbox.join("passwd.xml")).unwrap();
    std::fs::write(outbox.join(".half.xml.tmp"), "<half").unwrap();
    std::fs::write(outbox.join("half.xml.tmp"), "<half").unwrap();
    let other = format!("teiten-au-cert-{date}.xml");
    assert!(work.path().join("outbox/au-cert").join(&other).exists());
    for name in [
        other.as_str(),
        "passwd.xml",
        ".half.xml.tmp",
        "half.xml.tmp",
        ".deliver.lock",
        "..%2Fau-cert%2F",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "..",
        "missing.xml",
    ] {
        let (status, _, body) = get_bytes(&format!("{base}/{name}"), token);
        let text = String::from_utf8_lossy(&body);
        assert!(status == 404 || status == 400, "{name}: {status} {text}");
        assert!(!text.contains("root:"), "{name}: {text}");
    }
    let (status, _, _) = get_bytes(&format!("{base}/../au-cert/{other}"), token);
    assert!(status == 404 || status == 400, "{status}");

    // Bad parameters name themselves.
    for (query, named) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("limit=0", "limit"),
        ("limit=367", "limit"),
        ("limit=-1", "limit"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = http("GET", &format!("{base}?{query}"), token, b"");
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
    let log = std::fs::read_to_string(&agg.log).unwrap();
    assert!(!log.contains("nz-download-token"), "the token in the log");
}

/// E-mail delivery end to end, against a real SMTP server (aiosmtpd) that requires STARTTLS
/// and AUTH and answers the first two messages 451: the failed attempts are recorded and
/// retried by the scheduler with backoff, exactly one message arrives, to the partner's
/// address, PGP/MIME-signed by our key; the partner's gpg verifies the signed part as sent and
/// refuses it changed; each attachment decompresses to the exact file in the outbox; no
/// sensor address and no SMTP password appear in the message or the logs.
#[test]
fn partner_files_arrive_by_mail_signed_after_retries() {
    use teiten::gpg::Keyring;
    use teiten::smtp::{take_apart, SmtpServer};
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    teiten::tls::certificates(work.path());
    let smtp = SmtpServer::start(work.path(), "teiten", "smtp-secret-pw", 2);
    let ours = Keyring::new();
    let key = ours.generate("teiten test CSIRT <csirt@teiten.test>", "", false);
    let pw = work.path().join("smtp.password");
    std::fs::write(&pw, "smtp-secret-pw\n").unwrap();
    let extra = format!(
        "[exchange.smtp]\nserver = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\n\
         username = \"teiten\"\npassword_file = \"{}\"\ntimeout_secs = 10\n\n\
         [[exchange.partner]]\nid = \"mx\"\nname = \"MX-CERT\"\ncountries = [\"AU\"]\n\
         formats = [\"csv\", \"iodef2\"]\nmail_to = [\"soc@partner.test\"]\n",
        smtp.port,
        work.path().join("ca.pem").display(),
        pw.display()
    );
    let cfg = exchange_config(work.path(), &extra)
        .replace("export_delay_minutes = 0", "export_delay_minutes = 1440")
        .replacen(
            "[exchange]\n",
            &format!("[exchange]\nsigning_key = \"{}\"\n", key.secret.display()),
            1,
        );
    let (agg, date) = aggregator_with_day(&ch, "ex_mail", &cfg, |d, au| {
        vec![
            event(au, d + 100, 6, 23, Class::Scan),
            event(au, d + 200, 6, 23, Class::Scan),
            event(au, d + 300, 17, 161, Class::Scan),
        ]
    });

    // The export's own attempt meets the first 451; the scheduler retries until it is taken.
    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "mx"]);
    assert!(ok, "{out}");
    assert!(out.contains("failed"), "{out}");
    let received = smtp.wait_for(1, Duration::from_secs(60));
    assert_eq!(received.len(), 1, "no message arrived");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (ok, out) = agg.cli(&["exchange-status"]);
        assert!(ok, "{out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("mx"))
            .unwrap_or("")
            .to_owned();
        if line.contains("delivered") || Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let fields: Vec<&str> = status.split_whitespace().collect();
    assert_eq!(fields.get(5), Some(&"delivered"), "{status}");
    let attempts: u32 = fields[6].parse().unwrap();
    assert!(attempts >= 3, "two refused, then taken: {status}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.messages().len(), 1, "delivered once, not again");
    let log = std::fs::read_to_string(&agg.log).unwrap();
    assert!(log.contains("451"), "the temporary failure is logged");
    assert!(
        !log.contains("smtp-secret-pw"),
        "the SMTP password in the log"
    );

    let eml = &received[0];
    let rcpt = std::fs::read_to_string(eml.with_extension("rcpt")).unwrap();
    assert_eq!(rcpt.trim(), "soc@partner.test");
    let raw = std::fs::read(eml).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("198.18."), "a sensor address in the message");
    assert!(!text.contains("smtp-secret-pw"));
    let parts = work.path().join("parts");
    let summary = take_apart(eml, &parts);
    assert_eq!(summary["content_type"], "multipart/signed", "{summary}");
    assert_eq!(summary["protocol"], "application/pgp-signature");
    assert_eq!(summary["micalg"], "pgp-sha256");
    assert_eq!(summary["crlf"], true, "{summary}");
    assert!(summary["subject"]
        .as_str()
        .unwrap()
        .contains(&format!("Daily scan report {date} for MX-CERT")));
    assert!(summary["from"]
        .as_str()
        .unwrap()
        .contains("csirt@teiten.test"));

    // The partner's gpg: good on the part as sent, bad on it changed.
    let partner = Keyring::new();
    partner.import(&key.public);
    let signed = parts.join("signed.part");
    let status = partner
        .verify(&parts.join("signature.asc"), &signed)
        .unwrap_or_else(|e| panic!("gpg refused the message: {e}"));
    assert_eq!(
        Keyring::signed_by(&status).as_deref(),
        Some(key.fingerprint.as_str())
    );
    let mut bytes = std::fs::read(&signed).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(work.path().join("changed.part"), &bytes).unwrap();
    assert!(partner
        .verify(
            &parts.join("signature.asc"),
            &work.path().join("changed.part")
        )
        .is_err());

    // Every file of the day attached, decompressing to the outbox's bytes; the index too.
    let outbox = work.path().join("outbox/mx");
    let names: Vec<&str> = summary["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let csv = format!("{date}-event4_honeypot_darknet-mx-geo.csv");
    let xml = format!("teiten-mx-{date}.xml");
    let index = format!("teiten-mx-{date}.index.json");
    assert_eq!(
        names,
        [
            format!("{csv}.gz"),
            format!("{xml}.gz"),
            index.clone(),
            "signature.asc".to_owned()
        ],
        "{summary}"
    );
    for f in [&csv, &xml] {
        let got = gunzip(&std::fs::read(parts.join(format!("{f}.gz"))).unwrap());
        assert_eq!(got, std::fs::read(outbox.join(f)).unwrap(), "{f}");
        assert!(summary["text"].as_str().unwrap().contains(f.as_str()));
        assert!(summary["text"]
            .as_str()
            .unwrap()
            .contains(&file_sha256(&outbox.join(f))));
    }
    assert_eq!(
        std::fs::read(parts.join(&index)).unwrap(),
        std::fs::read(outbox.join(&index)).unwrap()
    );
    xmllint_valid(2, &outbox.join(&xml));
}

/// Every example of the conformance corpus, imported: valid ones stored, invalid ones
/// quarantined with reasons; re-imports answered as duplicates.
#[test]
fn the_conformance_corpus_imports_and_invalid_files_are_quarantined() {
    require_tool("xmllint", "libxml2-utils");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let agg = Agg::start(&ch, "ex_import", &exchange_config(work.path(), ""));
    let mut files = Vec::new();
    let mut stack = vec![teiten::conformance().join("iodef/examples")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "xml") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    let (mut stored, mut quarantined, mut with_warnings) = (0, 0, 0);
    for f in &files {
        let (_, out) = agg.cli(&["import", "--partner", "au-cert", f.to_str().unwrap()]);
        let xmllint_ok = ["1", "2"].iter().any(|v| {
            Command::new("xmllint")
                .args(["--nonet", "--noout", "--schema"])
                .arg(schema(v.parse().unwrap()))
                .arg(f)
                .output()
                .unwrap()
                .status
                .success()
        });
        let name = f.file_name().unwrap().to_str().unwrap();
        if out.contains(": stored (") {
            stored += 1;
            assert!(xmllint_ok, "{} stored but xmllint rejects it", f.display());
            if name.ends_with("ddos.xml") {
                // Schema-valid, with a Node of neither Address nor DomainData: stored, and
                // the rule it breaks is told, with its place.
                assert!(
                    out.lines().any(|l| l.contains("warning: ")
                        && l.contains("RFC 7970 section 3.18")
                        && l.contains("line ")),
                    "{out}"
                );
                with_warnings += 1;
            }
        } else if out.contains(": quarantined:") {
            quarantined += 1;
            assert!(
                !xmllint_ok,
                "{} is schema-valid but quarantined:\n{out}",
                f.display()
            );
            assert!(
                out.lines()
                    .any(|l| l.contains("error: ") && l.contains("line ")),
                "reasons name a line: {out}"
            );
        } else if out.contains("imported before") {
            // The corpus holds a few byte-identical copies.
        } else {
            panic!("{}: no outcome:\n{out}", f.display());
        }
    }
    assert!(
        stored >= 15 && quarantined >= 5,
        "stored {stored}, quarantined {quarantined}"
    );
    assert_eq!(
        with_warnings, 2,
        "RFC 8274 B.2 and the MILE converter's ddos.xml"
    );
    let warned = aggregator_common::scalar(
        &ch,
        "SELECT count() FROM ex_import.iodef_imports WHERE status = 'stored' AND name LIKE '%ddos.xml' \
         AND position(reason, 'RFC 7970 section 3.18') > 0",
    );
    assert_eq!(warned, 2, "the warnings are recorded with the import");
    let q = std::fs::read_dir(work.path().join("quarantine/au-cert"))
        .unwrap()
        .count();
    assert_eq!(q, 2 * quarantined, "each quarantined file and its reason");
    let imports = aggregator_common::scalar(&ch, "SELECT count() FROM ex_import.iodef_imports");
    assert_eq!(imports, (stored + quarantined) as u64);
    assert!(aggregator_common::scalar(&ch, "SELECT count() FROM ex_import.iodef_indicators") > 0);

    // Importing them all again stores nothing.
    let args: Vec<&str> = ["import", "--partner", "au-cert"]
        .into_iter()
        .chain(files.iter().map(|f| f.to_str().unwrap()))
        .collect();
    let (_, out) = agg.cli(&args);
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("imported before"))
            .count(),
        files.len(),
        "{out}"
    );
    assert_eq!(
        aggregator_common::scalar(&ch, "SELECT count() FROM ex_import.iodef_imports"),
        imports
    );

    // The same document in UTF-16 (with a byte-order mark, as Windows tools write it) is read,
    // not refused as invalid UTF-8; the answer carries the warnings.
    let b2 = teiten::conformance().join("iodef/examples/rfc8274/rfc8274-B.2-ddos.xml");
    let text = std::fs::read_to_string(&b2).unwrap().replacen(
        "encoding=\"UTF-8\"",
        "encoding=\"UTF-16\"",
        1,
    );
    let mut utf16 = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        utf16.extend(u.to_le_bytes());
    }
    let (status, answer) = http(
        "POST",
        &format!("{}/api/v1/iodef", agg.url),
        Some("au-upload-token"),
        &utf16,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "stored", "{answer}");
    let warnings = answer["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .all(|w| w.as_str().unwrap().contains("RFC 7970 section 3.18")),
        "{answer}"
    );
    let utf8_indicators = aggregator_common::scalar(
        &ch,
        "SELECT indicators FROM ex_import.iodef_imports WHERE name = 'rfc8274-B.2-ddos.xml'",
    );
    assert_eq!(
        answer["indicators"].as_u64(),
        Some(utf8_indicators),
        "{answer}"
    );

    // The inbox: the scheduler (every second here) imports what lands in <inbox>/<partner>/ and
    // moves it to done/; an invalid file is quarantined too.
    let inbox = work.path().join("inbox/au-cert");
    std::fs::create_dir_all(&inbox).unwrap();
    let valid = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<IODEF-Document version="2.00" xml:lang="en" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
  <Incident purpose="reporting">
    <IncidentID name="cert.au.test">AU-INBOX-1</IncidentID>
    <GenerationTime>2026-01-02T03:04:05Z</GenerationTime>
    <Contact type="organization" role="creator"><ContactName>AU CERT</ContactName></Contact>
    <EventData><Flow><System category="source"><Node>
      <Address category="ipv4-addr">{}</Address></Node></System></Flow></EventData>
  </Incident>
</IODEF-Document>
"#,
        address_in("AU")
    );
    std::fs::write(inbox.join(".partial.xml"), "<still being written").unwrap();
    std::fs::write(inbox.join("a-valid.xml"), valid).unwrap();
    std::fs::write(
        inbox.join("b-invalid.xml"),
        "<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"/>",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(inbox.join("done/a-valid.xml").exists() && inbox.join("done/b-invalid.xml").exists()) {
        assert!(
            Instant::now() < deadline,
            "inbox not handled:\n{}",
            agg.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        inbox.join(".partial.xml").exists(),
        "hidden files are left alone"
    );
    assert_eq!(
        aggregator_common::scalar(
            &ch,
            "SELECT count() FROM ex_import.iodef_indicators WHERE incident = 'cert.au.test:AU-INBOX-1'"
        ),
        1
    );
    assert_eq!(
        aggregator_common::scalar(
            &ch,
            "SELECT count() FROM ex_import.iodef_imports WHERE name = 'b-invalid.xml' AND status = 'quarantined'"
        ),
        1
    );
}

fn http(method: &str, url: &str, token: Option<&str>, body: &[u8]) -> (u16, serde_json::Value) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[test]
fn uploads_reports_triage_and_correlation() {
    require_tool("xmllint", "libxml2-utils");
    require_tool("location", "location");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let cfg = exchange_config(
        work.path(),
        &format!(
            "[[exchange.reporter]]\nname = \"av-1\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex("av-token")
        ),
    )
    .replace("export_delay_minutes = 0", "export_delay_minutes = 1440");
    let agg = Agg::start(&ch, "ex_api", &cfg);
    let token = agg.add_sensor("tokyo-1");
    let d = day_start();
    let date = date_of(d);
    let au = address_in("AU");
    let events: Vec<Event> = (0..3)
        .map(|i| event(au, d + 100 + i, 6, 22, Class::Scan))
        .collect();
    assert_eq!(post(&agg.url, &token, &batch_of(1, events)).status, 200);

    // Partner uploads.
    let iodef_url = format!("{}/api/v1/iodef", agg.url);
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<IODEF-Document version="2.00" xml:lang="en" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
  <Incident purpose="reporting" restriction="amber">
    <IncidentID name="cert.au.test">AU-77</IncidentID>
    <GenerationTime>{date}T06:00:00Z</GenerationTime>
    <Contact type="organization" role="creator"><ContactName>AU CERT</ContactName></Contact>
    <EventData>
      <DetectTime>{date}T01:00:00Z</DetectTime>
      <Flow><System category="source"><Node><Address category="ipv4-addr">{au}</Address></Node>
        <Service ip-protocol="6"><Port>22</Port></Service></System></Flow>
    </EventData>
  </Incident>
</IODEF-Document>
"#
    )
    .into_bytes();
    assert_eq!(http("POST", &iodef_url, None, &doc).0, 401);
    assert_eq!(http("POST", &iodef_url, Some("wrong"), &doc).0, 401);
    let (s, body) = http("POST", &iodef_url, Some("au-upload-token"), &doc);
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("stored")),
        "{body}"
    );
    let (s, body) = http("POST", &iodef_url, Some("au-upload-token"), &doc);
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("duplicate")),
        "{body}"
    );
    let (s, body) = http(
        "POST",
        &iodef_url,
        Some("au-upload-token"),
        b"<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"><Incident/></IODEF-Document>",
    );
    assert_eq!(
        (s, body["status"].as_str()),
        (422, Some("quarantined")),
        "{body}"
    );
    assert!(
        body["reason"].as_str().unwrap().contains("Incident"),
        "{body}"
    );
    let hostile = b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><IODEF-Document/>";
    let (s, body) = http("POST", &iodef_url, Some("au-upload-token"), hostile);
    assert_eq!(s, 422, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("DTD")
            || body["reason"].as_str().unwrap().contains("DOCTYPE"),
        "{body}"
    );

    // Internal reports.
    let reports_url = format!("{}/api/v1/reports", agg.url);
    let report = |host: &str, category: &str, minute: i64, tlp: &str| {
        serde_json::to_vec(&serde_json::json!({
            "detected": format!("{date}T{:02}:{:02}:00Z", minute / 60, minute % 60),
            "source": "ids",
            "host": host,
            "category": category,
            "description": format!("{category} seen on {host}"),
            "indicators": {"addresses": [au.to_string()], "ports": [22], "hashes": [], "urls": []},
            "tlp": tlp,
        }))
        .unwrap()
    };
    assert_eq!(
        http(
            "POST",
            &reports_url,
            None,
            &report("192.0.2.10", "scan", 60, "green")
        )
        .0,
        401
    );
    let (s, r) = http(
        "POST",
        &reports_url,
        Some("ids-token"),
        &report("192.0.2.10", "intrusion", 60, "amber"),
    );
    assert_eq!((s, r["colour"].as_str()), (201, Some("red")), "{r}");
    assert_eq!(r["rules"][0], "intrusion-is-red");
    let (s, r) = http(
        "POST",
        &reports_url,
        Some("ids-token"),
        &report("192.0.2.20", "scan", 61, "green"),
    );
    assert_eq!((s, r["colour"].as_str()), (201, Some("green")), "{r}");
    let (s, r) = http(
        "POST",
        &reports_url,
        Some("ids-token"),
        &report("192.0.2.20", "scan", 62, "green"),
    );
    assert_eq!((s, r["colour"].as_str()), (201, Some("green")), "{r}");
    let (s, r) = http(
        "POST",
        &reports_url,
        Some("ids-token"),
        &report("192.0.2.20", "scan", 63, "green"),
    );
    assert_eq!(
        (s, r["colour"].as_str()),
        (201, Some("yellow")),
        "third on one host: {r}"
    );
    assert_eq!(r["rules"][0], "repeated-host-escalates");
    let first = report("192.0.2.10", "intrusion", 60, "amber");
    let (s, r) = http("POST", &reports_url, Some("ids-token"), &first);
    assert_eq!((s, r["duplicate"].as_bool()), (200, Some(true)), "{r}");
    let (s, r) = http("POST", &reports_url, Some("ids-token"), b"{\"detected\": 5");
    assert_eq!(s, 400, "{r}");
    assert!(r["detail"].as_str().unwrap().contains("line 1"), "{r}");
    let (s, r) = http(
        "POST",
        &reports_url,
        Some("ids-token"),
        &report("h", "spam", 1, "green"),
    );
    assert_eq!(s, 422, "{r}");
    assert!(r["detail"].as_str().unwrap().contains("`category`"), "{r}");
    assert_eq!(
        aggregator_common::scalar(&ch, "SELECT count() FROM ex_api.internal_reports"),
        4
    );

    // A partner's file carries the reports its TLP allows, without our host.
    let (ok, out) = agg.cli(&["export", "--date", &date]);
    assert!(ok, "{out}");
    let au_file = outbox_file(work.path(), "au-cert", &date);
    let world_file = outbox_file(work.path(), "world", &date);
    xmllint_valid(2, &au_file);
    xmllint_valid(2, &world_file);
    assert_eq!(manifest(&au_file)["reports"], 4, "amber ceiling: all four");
    assert_eq!(
        manifest(&world_file)["reports"],
        3,
        "green ceiling: not the amber one"
    );
    for f in [&au_file, &world_file] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("192.0.2.10") && !text.contains("192.0.2.20"),
            "our hosts stay in"
        );
    }

    // The report as IODEF for our own tools (host included), valid.
    let (ok, list) = agg.cli(&["report", "list"]);
    assert!(ok, "{list}");
    let red: serde_json::Value = list
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["colour"] == "red")
        .unwrap();
    let (ok, doc) = agg.cli(&[
        "report",
        "export",
        red["id"].as_str().unwrap(),
        "--reporter",
        "ids-1",
    ]);
    assert!(ok, "{doc}");
    let f = work.path().join("report.xml");
    std::fs::write(&f, doc).unwrap();
    xmllint_valid(2, &f);
    assert!(std::fs::read_to_string(&f).unwrap().contains("192.0.2.10"));

    // Correlation: sensors, imports and reports about one address.
    let (ok, out) = agg.cli(&["correlate", &au.to_string()]);
    assert!(ok, "{out}");
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["sightings"]["packets"], 3);
    assert_eq!(c["sightings"]["first_seen"], d + 100);
    // Its AS and country as stored, and its network, AS name and flags as Debian's
    // `location` tool reads the same database.
    assert_eq!(c["sightings"]["country"], "AU", "{out}");
    let oracle = run_ok(Command::new("location").args(["lookup", &au.to_string()]));
    let field = |name: &str| {
        oracle.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
        })
    };
    let net = &c["network"];
    assert_eq!(net["prefix"], field("Network").unwrap(), "{out}\n{oracle}");
    assert_eq!(net["country"], "AU");
    match field("Autonomous System") {
        Some(a) => {
            let (num, name) = a.split_once(" - ").unwrap_or((&a, ""));
            let num: u32 = num.trim_start_matches("AS").parse().unwrap();
            assert_eq!(c["sightings"]["asn"], num, "{out}\n{oracle}");
            assert_eq!(net["asn"], num);
            assert_eq!(net["as_name"], name);
        }
        None => assert_eq!(c["sightings"]["asn"], 0, "{out}\n{oracle}"),
    }
    assert_eq!(net["anycast"], field("Anycast").as_deref() == Some("yes"));
    assert_eq!(
        net["anonymous_proxy"],
        field("Anonymous Proxy").as_deref() == Some("yes")
    );
    assert_eq!(c["top_ports"][0]["dport"], 22);
    assert_eq!(c["reports"].as_array().unwrap().len(), 4);
    let imports = c["imports"].as_array().unwrap();
    assert_eq!(imports.len(), 1, "{out}");
    assert_eq!(imports[0]["incident"], "cert.au.test:AU-77");
    assert_eq!(imports[0]["role"], "source");
    assert_eq!(imports[0]["ports"], "22");
    let (ok, out) = agg.cli(&["correlate", "2001:db8::1"]);
    assert!(ok, "{out}");
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["sightings"]["packets"], 0);
    assert!(c["imports"].as_array().unwrap().is_empty());
    assert_eq!(c["sightings"]["withheld"], 0);
    assert_eq!(c["sightings"]["country"], "");
    // The database places even documentation space (in APNIC's 2001:c00::/23, as Debian's
    // tool shows): the network comes from the database, not from our sightings.
    let oracle = run_ok(Command::new("location").args(["lookup", "2001:db8::1"]));
    let prefix = oracle
        .lines()
        .find_map(|l| l.trim().strip_prefix("Network"))
        .map(|v| v.trim().trim_start_matches(':').trim().to_owned());
    assert_eq!(
        c["network"]["prefix"].as_str().map(str::to_owned),
        prefix,
        "{out}"
    );

    // Report ids are per reporter: the same id from two reporters is two reports; neither
    // sees the other's colour through a "duplicate" answer, nor pre-empts it.
    let given = |category: &str, host: &str| {
        serde_json::to_vec(&serde_json::json!({
            "id": "IDS-4711", "detected": format!("{date}T03:00:00Z"), "source": "ids",
            "host": host, "category": category,
        }))
        .unwrap()
    };
    let (s, r) = http(
        "POST",
        &reports_url,
        Some("ids-token"),
        &given("intrusion", "192.0.2.30"),
    );
    assert_eq!(
        (s, r["colour"].as_str(), r["id"].as_str()),
        (201, Some("red"), Some("IDS-4711")),
        "{r}"
    );
    for (token, category, host, expected, why) in [
        (
            "av-token",
            "scan",
            "192.0.2.31",
            (201, "green", false),
            "another reporter's id is not a duplicate",
        ),
        (
            "ids-token",
            "intrusion",
            "192.0.2.30",
            (200, "red", true),
            "ids-1's again",
        ),
        (
            "av-token",
            "intrusion",
            "192.0.2.30",
            (200, "green", true),
            "av-1's own report, not ids-1's",
        ),
    ] {
        let (s, r) = http("POST", &reports_url, Some(token), &given(category, host));
        let (status, colour, duplicate) = expected;
        assert_eq!(
            (s, r["colour"].as_str(), r["duplicate"].as_bool()),
            (status, Some(colour), Some(duplicate)),
            "{why}: {r}"
        );
    }
    assert_eq!(
        aggregator_common::scalar(
            &ch,
            "SELECT count() FROM ex_api.internal_reports WHERE id = 'IDS-4711'"
        ),
        2
    );
    for (reporter, host, other) in [
        ("ids-1", "192.0.2.30", "192.0.2.31"),
        ("av-1", "192.0.2.31", "192.0.2.30"),
    ] {
        let (ok, doc) = agg.cli(&["report", "export", "IDS-4711", "--reporter", reporter]);
        assert!(ok, "{doc}");
        assert!(
            doc.contains(host) && !doc.contains(other),
            "{reporter}: {doc}"
        );
        assert!(
            doc.contains(&format!("report-{reporter}/IDS-4711")),
            "{doc}"
        );
    }
    let (ok, out) = agg.cli(&["report", "export", "IDS-4711", "--reporter", "nobody"]);
    assert!(
        !ok && out.contains("no report IDS-4711 of reporter nobody"),
        "{out}"
    );
}

/// A partner endpoint that answers 503 to the first `fail` requests, then 200, recording what
/// it received.
/// (status answered, body, Authorization header, Content-Encoding header) of each request.
type Requests = Arc<Mutex<Vec<(u16, Vec<u8>, Option<String>, Option<String>)>>>;

struct Partner {
    addr: std::net::SocketAddr,
    got: Requests,
    _thread: std::thread::JoinHandle<()>,
}

fn partner_endpoint(fail: usize) -> Partner {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let thread = std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = Vec::new();
            let _ = req.as_reader().read_to_end(&mut body);
            let header = |name: &'static str| {
                req.headers()
                    .iter()
                    .find(|h| h.field.equiv(name))
                    .map(|h| h.value.to_string())
            };
            let (auth, encoding) = (header("Authorization"), header("Content-Encoding"));
            let mut g = g.lock().unwrap();
            let code = if g.len() < fail { 503 } else { 200 };
            g.push((code, body, auth, encoding));
            let _ = req.respond(tiny_http::Response::from_string("ok").with_status_code(code));
        }
    });
    Partner {
        addr,
        got,
        _thread: thread,
    }
}

#[test]
fn https_delivery_fails_is_retried_and_succeeds() {
    require_tool("openssl", "openssl");
    require_tool("socat", "socat");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    teiten::tls::certificates(work.path());
    let partner = partner_endpoint(2);
    let (port, _socat) = teiten::tls::tls_front(work.path(), partner.addr);
    std::fs::write(work.path().join("kr.token"), "kr-delivery-token\n").unwrap();
    let kr = format!(
        "[[exchange.partner]]\nid = \"kr-cert\"\ncountries = [\"KR\"]\n\
         url = \"https://127.0.0.1:{port}/iodef\"\nca_file = \"{0}/ca.pem\"\n\
         token_file = \"{0}/kr.token\"\n",
        work.path().display()
    );
    // Only kr-cert: the scheduler exports its yesterday at once (delay 0) and retries each second.
    let cfg = exchange_config(work.path(), &kr);
    let cfg = cfg
        .split("[[exchange.partner]]\nid = \"au-cert\"")
        .next()
        .unwrap()
        .to_owned()
        + "[[exchange.reporter]]"
        + cfg.split("[[exchange.reporter]]").nth(1).unwrap();
    // Gzipped files, sent with Content-Encoding: gzip.
    let cfg = cfg.replace("interval_secs = 1\n", "interval_secs = 1\ngzip = true\n");
    let mut agg = Agg::start(&ch, "ex_https", &cfg);
    let token = agg.add_sensor("tokyo-1");
    let kr_src = address_in("KR");
    let now = aggregator_common::now_us() / 1_000_000;
    let yesterday = (now / DAY - 1) * DAY;
    let date = date_of(yesterday);
    // The scheduler may already have exported an empty yesterday; these events make a new
    // revision, exported by the CLI below.
    let events: Vec<Event> = (0..4)
        .map(|i| event(kr_src, yesterday + 600 + i, 6, 23, Class::Scan))
        .collect();
    assert_eq!(post(&agg.url, &token, &batch_of(1, events)).status, 200);
    aggregator_common::eventually(&ch, "SELECT count() FROM ex_https.scan_events", 4);
    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "kr-cert"]);
    assert!(ok, "{out}");
    let file = PathBuf::from(format!(
        "{}.gz",
        outbox_file(work.path(), "kr-cert", &date).display()
    ));
    let sha = file_sha256(&file);
    let plain = work.path().join("kr.xml");
    std::fs::write(&plain, gunzip(&std::fs::read(&file).unwrap())).unwrap();
    xmllint_valid(2, &plain);
    assert_eq!(event_count(&plain), 4);

    // The scheduler retries every second until the partner answers 200.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, status) = agg.cli(&["exchange-status"]);
        assert!(ok, "{status}");
        let day = date.replace('-', "");
        let line = status
            .lines()
            .find(|l| l.starts_with("kr-cert") && l.contains(&day))
            .map(str::to_owned);
        if let Some(l) = &line {
            if l.contains("delivered")
                && partner
                    .got
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|g| g.0 == 200 && file_sha256_bytes(&g.1) == sha)
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not delivered in 60 s: {line:?}\n{}",
            agg.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let got = partner.got.lock().unwrap().clone();
    assert!(
        got.iter().filter(|g| g.0 == 503).count() >= 2,
        "two failures first"
    );
    assert!(got
        .iter()
        .all(|g| g.2.as_deref() == Some("Bearer kr-delivery-token")));
    let log = agg.log_text();
    assert!(log.contains("delivery failed"), "failures are logged");
    assert!(
        !log.contains("kr-delivery-token"),
        "the token is never logged"
    );
    let delivered = got.iter().rev().find(|g| g.0 == 200).unwrap();
    assert_eq!(delivered.3.as_deref(), Some("gzip"));
    let text = String::from_utf8(gunzip(&delivered.1)).unwrap();
    assert!(text.contains(&kr_src.to_string()) && !text.contains("198.18."));
    agg.terminate();
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = b.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "not gzip");
    out.stdout
}

fn file_sha256_bytes(b: &[u8]) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b).unwrap();
    file_sha256(f.path())
}

/// Occurrences of `<EventData` as an element (the writer uses the default namespace).
fn event_elements(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let tag = b"<EventData";
    bytes
        .windows(tag.len() + 1)
        .filter(|w| &w[..tag.len()] == tag && matches!(w[tag.len()], b'>' | b' '))
        .count() as u64
}

/// An export killed (SIGKILL) while it writes a partner's file leaves no file, no manifest and
/// no log row behind (only its hidden temporary file), and the next run writes the whole day,
/// exactly once.
#[test]
fn an_export_killed_midway_leaves_nothing_and_the_rerun_is_complete() {
    require_tool("xmllint", "libxml2-utils");
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let cfg = format!(
        // The batches here carry events of several days (late events, day boundaries).
        "[ingest]\nmax_event_age_secs = 864000\n\n[retention]\nraw_days = 30\n\n[exchange]\ncsirt = \"csirt.teiten.test\"\n\
         outbox = \"{}/outbox\"\nexport_delay_minutes = 1440\n\n\
         [[exchange.partner]]\nid = \"world\"\ncountries = [\"all\"]\n",
        work.path().display()
    );
    let agg = Agg::start(&ch, "ex_kill", &cfg);
    let d = day_start();
    let date = date_of(d);
    // Enough rows that the export is still writing when it is killed.
    let n: u64 = 150_000;
    ch.query(&scan_day_sql("ex_kill.scan_events", "kill-1", d, n))
        .expect("rows");

    let file = outbox_file(work.path(), "world", &date);
    let tmp = file.with_file_name(format!(".teiten-world-{date}.xml.tmp"));
    let manifest_file = PathBuf::from(format!("{}.manifest.json", file.display()));
    let mut export = Command::new(teiten::bin("teiten-aggregator"))
        .arg("--config")
        .arg(&agg.config)
        .args(["export", "--date", &date, "--partner", "world"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&tmp).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(
            export.try_wait().unwrap().is_none(),
            "the export finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    export.kill().unwrap();
    export.wait().unwrap();
    assert!(!file.exists(), "a killed export left a partner file");
    assert!(!manifest_file.exists(), "a killed export left a manifest");
    let logged = |status: &str| {
        aggregator_common::scalar(
            &ch,
            &format!(
                "SELECT count() FROM ex_kill.exchange_log WHERE partner = 'world' \
                 AND status = '{status}'"
            ),
        )
    };
    assert_eq!(logged("generated"), 0, "a killed export was logged");

    let (ok, out) = agg.cli(&["export", "--date", &date, "--partner", "world"]);
    assert!(ok, "{out}");
    assert!(!tmp.exists(), "the temporary file is left behind");
    assert_eq!(event_elements(&file), n, "every event, once");
    assert_eq!(manifest(&file)["events"], n);
    run_ok(
        Command::new("xmllint")
            .args(["--nonet", "--noout", "--stream", "--schema"])
            .arg(schema(2))
            .arg(&file),
    );
    assert_eq!(logged("generated"), 1, "one log row for the day");
}

/// Kills a child process when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A dashboard answer: status and text, whatever the status.
fn page(r: Result<ureq::Response, ureq::Error>) -> (u16, String, Option<String>) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("dashboard: {e}"),
    };
    let disposition = resp.header("content-disposition").map(str::to_owned);
    (resp.status(), resp.into_string().unwrap(), disposition)
}

/// The analyst's side of the exchange against the real aggregator: the dashboard binary files
/// reports through `POST /api/v1/reports` with its own reporter token (stored, triaged,
/// refused with the aggregator's reason, "unavailable" with the form kept when the aggregator
/// is down) and downloads daily files through `GET /api/v1/outbox/{partner}/{day}`, which
/// refuses every other caller.
#[test]
fn the_dashboard_files_reports_and_downloads_through_the_aggregator() {
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let cfg = exchange_config(
        work.path(),
        &format!(
            "[[exchange.reporter]]\nname = \"dashboard\"\ntoken_sha256 = \"{}\"\noutbox = true\n",
            sha256_hex("dashboard-token")
        ),
    )
    .replace("export_delay_minutes = 0", "export_delay_minutes = 1440");
    let mut agg = Agg::start(&ch, "ex_dash", &cfg);

    // Today's daily files as the scheduler logs them: au-cert's is in the outbox, jp-cert's
    // is gone.
    let day = ch.query("SELECT toYYYYMMDD(today())").unwrap();
    let day = day.trim().to_owned();
    ch.query(&format!(
        "INSERT INTO ex_dash.exchange_log VALUES \
         ('au-cert', {day}, 1, 'teiten-au-cert-today.xml', 'ab', 3, 1, 0, 18, now(), 'delivered', 1, '', \
          toUInt64(toUInt32(now())) * 1000000), \
         ('jp-cert', {day}, 1, 'teiten-jp-cert-today.xml', 'cd', 1, 1, 0, 18, now(), 'delivered', 1, '', \
          toUInt64(toUInt32(now())) * 1000000)"
    ))
    .unwrap();
    let outbox = work.path().join("outbox/au-cert");
    std::fs::create_dir_all(&outbox).unwrap();
    let content = b"<IODEF-Document version=\"2.00\"/>\n".repeat(5000);
    std::fs::write(outbox.join("teiten-au-cert-today.xml"), &content).unwrap();

    // The aggregator's route: reporters with `outbox = true` only, checked names.
    let route = |partner: &str, day: &str| format!("{}/api/v1/outbox/{partner}/{day}", agg.url);
    assert_eq!(http("GET", &route("au-cert", &day), None, b"").0, 401);
    assert_eq!(
        http("GET", &route("au-cert", &day), Some("wrong"), b"").0,
        401
    );
    let (s, body) = http("GET", &route("au-cert", &day), Some("ids-token"), b"");
    assert_eq!(s, 403, "a reporter without outbox = true: {body}");
    for (partner, d) in [
        ("..%2F..%2Fetc", day.as_str()),
        ("au-cert%2F..%2Fjp-cert", day.as_str()),
        ("au-cert", "20261399"),
        ("au-cert", "yesterday"),
        ("au-cert", "2026120"),
    ] {
        let (s, body) = http("GET", &route(partner, d), Some("dashboard-token"), b"");
        assert_eq!(s, 400, "{partner} {d}: {body}");
    }
    let (s, body) = http("GET", &route("jp-cert", &day), Some("dashboard-token"), b"");
    assert_eq!(s, 404, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no longer in the outbox"),
        "{body}"
    );
    let (s, body) = http("GET", &route("de-cert", &day), Some("dashboard-token"), b"");
    assert_eq!(s, 404, "{body}");
    let whole = ureq::get(&route("au-cert", &day))
        .set("Authorization", "Bearer dashboard-token")
        .call()
        .unwrap();
    assert_eq!(whole.header("content-type"), Some("application/xml"));
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut whole.into_reader(), &mut got).unwrap();
    assert_eq!(got, content);

    // The dashboard, filing and downloading as reporter `dashboard`.
    let token_file = work.path().join("dashboard.token");
    std::fs::write(&token_file, "dashboard-token\n").unwrap();
    let password = "exchange analyst";
    let hash = teiten_dashboard::auth::hash_password(password).unwrap();
    let port = teiten::clickhouse::free_port().unwrap();
    let dash_cfg = work.path().join("dashboard.toml");
    std::fs::write(
        &dash_cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"ex_dash\"\n\
             [analyst]\nsecure_cookies = false\n[analyst.users]\nalice = \"{hash}\"\n\
             [reports]\nurl = \"{}\"\ntoken_file = \"{}\"\ntimeout_secs = 10\n",
            ch.url(),
            agg.url,
            token_file.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(work.path().join("dashboard.log")).unwrap();
    let _dash = Reaped(
        Command::new(teiten::bin("teiten-dashboard"))
            .args(["serve", "--config"])
            .arg(&dash_cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("teiten-dashboard"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        assert!(Instant::now() < deadline, "the dashboard did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser = ureq::AgentBuilder::new().redirects(0).build();
    let session = teiten::login::login(&browser, &url, "alice", password);
    let get = |path: &str| {
        page(
            browser
                .get(&format!("{url}{path}"))
                .set("cookie", &session)
                .call(),
        )
    };

    let (s, ex, _) = get("/analyst/exchange");
    assert_eq!(s, 200, "{ex}");
    assert!(ex.contains("id=\"report-form\""), "{ex}");
    assert!(
        ex.contains(&format!(
            "/analyst/exchange/file?partner=au-cert&amp;day={day}"
        )),
        "{ex}"
    );
    let i = ex.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = ex[i..].split('"').next().unwrap().to_owned();

    let (s, file, disposition) = get(&format!("/analyst/exchange/file?partner=au-cert&day={day}"));
    assert_eq!(s, 200);
    assert_eq!(file.as_bytes(), content.as_slice());
    assert_eq!(
        disposition.as_deref(),
        Some("attachment; filename=\"teiten-au-cert-today.xml\"")
    );
    let (s, gone, _) = get(&format!("/analyst/exchange/file?partner=jp-cert&day={day}"));
    assert_eq!(s, 404, "{gone}");
    assert!(gone.contains("no longer in the outbox"), "{gone}");

    let file_report = |category: &str| {
        page(teiten::login::file_report(
            &browser,
            &url,
            &session,
            &csrf,
            &[
                ("host", "192.0.2.44"),
                ("category", category),
                ("description", "brute force on <ssh>"),
                ("addresses", "203.0.113.7 198.51.100.1"),
                ("ports", "22, 2222"),
            ],
        ))
    };
    let (s, filed, _) = file_report("intrusion");
    assert_eq!(s, 200, "{filed}");
    assert!(
        filed.contains("id=\"filed\"") && filed.contains("triage-red") && filed.contains("stored"),
        "{filed}"
    );
    assert_eq!(
        aggregator_common::scalar(
            &ch,
            "SELECT count() FROM ex_dash.internal_reports WHERE reporter = 'dashboard' \
             AND source = 'staff' AND host = '192.0.2.44' AND ports = [22, 2222] \
             AND has(addresses, '198.51.100.1') AND colour = 'red' \
             AND detected = toDateTime('2026-11-30 08:15:00')"
        ),
        1
    );
    let (s, again, _) = file_report("intrusion");
    assert_eq!(s, 200, "{again}");
    assert!(again.contains("was filed before"), "{again}");
    let (s, refused, _) = file_report("spam");
    assert_eq!(s, 422, "{refused}");
    assert!(
        refused.contains("The aggregator refused the report") && refused.contains("category"),
        "{refused}"
    );
    assert!(
        refused.contains("id=\"report-form\""),
        "the form is kept: {refused}"
    );
    let (_, listed, _) = get("/analyst/exchange");
    assert!(listed.contains("brute force on &lt;ssh&gt;"), "{listed}");

    // The aggregator down: "unavailable", the form kept as sent.
    agg.kill();
    let (s, down, _) = file_report("intrusion");
    assert_eq!(s, 503, "{down}");
    assert!(down.contains("aggregator unavailable, try again"), "{down}");
    assert!(
        down.contains("value=\"203.0.113.7 198.51.100.1\"")
            && down.contains("value=\"192.0.2.44\""),
        "{down}"
    );
    let (s, _, _) = get(&format!("/analyst/exchange/file?partner=au-cert&day={day}"));
    assert_eq!(s, 503);
}
