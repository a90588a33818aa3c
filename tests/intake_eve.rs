//! Suricata's EVE alerts into internal reports, end to end: the real `teiten-intake` follows an
//! EVE file (Suricata's documented records, `tests/eve/`) and files with the real aggregator
//! and ClickHouse while the file grows by partial writes, is rotated while the intake runs and
//! again while it is down, the intake is killed in the middle of a burst, and the aggregator is
//! away for a while. Every alert becomes exactly one report; other records, minor alerts and
//! malformed lines none.

mod aggregator_common;
mod intake_common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aggregator_common::{token_hash, Agg};
use intake_common::Intake;

const REPORTER: &str = "suricata";

fn reports(ch: &Server) -> (u64, u64) {
    intake_common::reports(ch, DB, REPORTER)
}

fn wait_reports(ch: &Server, intake: &Intake, n: u64) {
    intake_common::wait_reports(ch, DB, REPORTER, intake, n)
}
use teiten::clickhouse::Server;

const DB: &str = "t_intake";

/// An alert record as Suricata writes it: flow `flow`, on our host 10.20.0.<flow % 250>.
fn alert(flow: u64, severity: u8) -> String {
    let (classtype, sid) = match flow % 4 {
        0 => ("Detection of a Network Scan", 2_010_935),
        1 => ("A Network Trojan was detected", 2_024_792),
        2 => ("Attempted Administrator Privilege Gain", 2_012_345),
        _ => ("Misc activity", 2_100_498),
    };
    format!(
        "{{\"timestamp\":\"2026-12-01T10:{:02}:{:02}.{:06}+0900\",\"flow_id\":{flow},\"in_iface\":\"eth1\",\
         \"event_type\":\"alert\",\"src_ip\":\"203.0.113.{}\",\"src_port\":{},\"dest_ip\":\"10.20.0.{}\",\
         \"dest_port\":445,\"proto\":\"TCP\",\"alert\":{{\"action\":\"allowed\",\"gid\":1,\
         \"signature_id\":{sid},\"rev\":3,\"signature\":\"ET test rule {sid}\",\"category\":\"{classtype}\",\
         \"severity\":{severity}}},\"flow\":{{\"pkts_toserver\":3,\"pkts_toclient\":1,\"bytes_toserver\":180,\
         \"bytes_toclient\":60,\"start\":\"2026-12-01T10:00:00.000000+0900\"}}}}\n",
        (flow / 60) % 60,
        flow % 60,
        flow % 1_000_000,
        flow % 250,
        40_000 + flow % 20_000,
        flow % 250,
    )
}

/// Alerts for flows `flows`, all reportable.
fn alerts(flows: std::ops::Range<u64>) -> String {
    flows.map(|f| alert(f, 2)).collect()
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

#[test]
fn eve_alerts_become_one_report_each_across_rotation_restarts_and_outages() {
    let ch = Server::start().expect("a private clickhouse-server");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let cfg = format!(
        "[exchange]\ncsirt = \"csirt.teiten.test\"\noutbox = \"{0}/outbox\"\ninbox = \"{0}/inbox\"\n\
         quarantine = \"{0}/quarantine\"\n\n[[exchange.reporter]]\nname = \"suricata\"\n\
         token_sha256 = \"{1}\"\n",
        w.display(),
        token_hash("eve-token"),
    );
    let mut agg = Agg::start(&ch, DB, &cfg);
    let eve = w.join("eve.json");
    std::fs::write(w.join("token"), "eve-token\n").unwrap();
    let config = w.join("intake.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{0}/state\"\npoll_ms = 50\n\n[aggregator]\nurl = \"{1}\"\n\
             token_file = \"{0}/token\"\ntimeout_secs = 5\n\n[[eve]]\npath = \"{2}\"\n\
             max_severity = 3\n",
            w.display(),
            agg.url,
            eve.display()
        ),
    )
    .unwrap();
    let (ok, out) = {
        let o = Command::new(teiten::bin("teiten-intake"))
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert!(ok && out.contains("eve.json (position in "), "{out}");
    let mut intake = Intake {
        config,
        log: w.join("intake.log"),
        child: None,
    };

    // Suricata's documented records (one alert, six other kinds) and 20 alerts of ours, one
    // of them of severity 4 (below max_severity = 3).
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eve/suricata-docs.eve.json"),
    )
    .unwrap();
    append(&eve, &docs);
    append(&eve, &alerts(1..20));
    append(&eve, &alert(20, 4));
    intake.start();
    let mut expected = 1 + 19;
    wait_reports(&ch, &intake, expected);
    let doc = ch
        .query(&format!(
            "SELECT host, addresses, ports, protocol, category, source, tlp, colour, \
             toUnixTimestamp(detected) FROM {DB}.internal_reports WHERE id = \
             'eve-586497171462735-1-2018358-10-2017-04-07T22:24:37.251547+01:00' FORMAT TSV"
        ))
        .unwrap();
    assert_eq!(
        doc, "192.168.2.14\t['209.53.113.5']\t[80]\t6\tabuse\tids\tamber\tgreen\t1491600277\n",
        "the documented alert, as stored"
    );

    // A line written in two parts is read once it is whole.
    let line = alert(21, 1);
    let (a, b) = line.split_at(line.len() / 2);
    append(&eve, a);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(reports(&ch).0, expected, "half a line is not a report");
    append(&eve, b);
    expected += 1;
    wait_reports(&ch, &intake, expected);

    // Rotation while the intake runs: Suricata writes on to the renamed file until it reopens.
    std::fs::rename(&eve, w.join("eve.json.1")).unwrap();
    append(&w.join("eve.json.1"), &alerts(22..27));
    std::thread::sleep(Duration::from_millis(200));
    append(&eve, &alerts(27..32));
    expected += 10;
    wait_reports(&ch, &intake, expected);

    // Killed in the middle of a burst: the lines after the saved position are filed again,
    // and stored once.
    append(&eve, &alerts(100..400));
    let deadline = Instant::now() + Duration::from_secs(60);
    while reports(&ch).0 < expected + 50 {
        assert!(Instant::now() < deadline, "{}", intake.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    intake.kill();
    let before_restart = reports(&ch).0;
    assert!(
        before_restart < expected + 300,
        "killed before the end of the burst"
    );
    expected += 300;
    // While it is down: more lines, a rotation twice over, a malformed line and a line
    // longer than the intake takes.
    append(&eve, &alerts(400..405));
    append(
        &eve,
        "{\"event_type\":\"alert\",\"alert\":{\"signature_id\":1}}\n",
    );
    std::fs::rename(w.join("eve.json.1"), w.join("eve.json.2")).unwrap();
    std::fs::rename(&eve, w.join("eve.json.1")).unwrap();
    append(&eve, &alerts(405..410));
    append(&eve, &format!("{{\"x\":\"{}\"}}\n", "y".repeat(2 << 20)));
    append(&eve, &alerts(410..412));
    expected += 12;
    intake.start();
    wait_reports(&ch, &intake, expected);
    let log = intake.log_text();
    assert!(
        log.contains("Finishing the rotated file first"),
        "the old file found by its inode: {log}"
    );
    assert!(
        log.contains("an alert without `timestamp`") && log.contains("eve.json"),
        "the malformed line named with its file and offset: {log}"
    );
    assert!(log.contains("A line longer than 1 MiB"), "{log}");

    // The aggregator away: the intake waits at the line and files it when it is back.
    agg.kill();
    append(&eve, &alerts(800..805));
    std::thread::sleep(Duration::from_secs(1));
    agg.restart();
    expected += 5;
    wait_reports(&ch, &intake, expected);
    assert!(
        intake.log_text().contains("Aggregator unavailable"),
        "{}",
        intake.log_text()
    );

    // Exactly the alerts' flows, each once.
    let flows = ch
        .query(&format!(
            "SELECT toUInt64(splitByChar('-', id)[2]) AS f FROM {DB}.internal_reports \
             WHERE reporter = 'suricata' ORDER BY f FORMAT TSV"
        ))
        .unwrap();
    let flows: Vec<u64> = flows.lines().map(|l| l.parse().unwrap()).collect();
    let mut want: Vec<u64> = (1..20)
        .chain(21..32)
        .chain(100..412)
        .chain(800..805)
        .collect();
    want.push(586_497_171_462_735);
    want.sort_unstable();
    assert_eq!(flows, want);

    // SIGTERM: a clean stop with what it did.
    let child = intake.child.take().unwrap();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait_with_output().unwrap().status;
    assert!(status.success(), "{status:?}");
    let log = intake.log_text();
    let totals = log
        .lines()
        .find(|l| l.contains("Intake stopped"))
        .unwrap_or_else(|| panic!("{log}"));
    eprintln!("killed at {before_restart} of {expected} reports; after the restart: {totals}");
    // The restarted intake filed the burst's lines after the position again: duplicates.
    assert!(
        !totals.contains("duplicates: 0,"),
        "lines read again after the kill: {totals}"
    );
    assert!(!log.contains("eve-token"), "the token is never logged");
}
