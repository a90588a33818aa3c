//! ClamAV detections into internal reports, end to end: Debian's real clamd, with a signature
//! database this test writes (no network), scans files the test plants; its `VirusEvent` runs
//! the real `teiten-intake clamav-event`, and `teiten-intake run` files the spooled detections
//! with the real aggregator and ClickHouse, across an intake restart, an aggregator outage, an
//! event spooled twice and a broken spool file. Every detection becomes exactly one report,
//! with the host, the signature, the file and its SHA-256; clean files none.

mod aggregator_common;
mod intake_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aggregator_common::{token_hash, Agg};
use intake_common::Intake;

const REPORTER: &str = "clamav";

fn reports(ch: &Server) -> (u64, u64) {
    intake_common::reports(ch, DB, REPORTER)
}

fn wait_reports(ch: &Server, intake: &Intake, n: u64) {
    intake_common::wait_reports(ch, DB, REPORTER, intake, n)
}
use teiten::clamd::Clamd;
use teiten::clickhouse::Server;

const DB: &str = "t_intake_clamav";
const HOST: &str = "pc-17.corp.teiten.test";

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn clamav_detections_become_one_report_each() {
    let ch = Server::start().expect("a private clickhouse-server");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let cfg = format!(
        "[exchange]\ncsirt = \"csirt.teiten.test\"\noutbox = \"{0}/outbox\"\ninbox = \"{0}/inbox\"\n\
         quarantine = \"{0}/quarantine\"\n\n[[exchange.reporter]]\nname = \"clamav\"\n\
         token_sha256 = \"{1}\"\n",
        w.display(),
        token_hash("clamav-token"),
    );
    let mut agg = Agg::start(&ch, DB, &cfg);
    let spool = w.join("spool");

    // The signatures: a body signature (.ndb) and a file hash (.hdb), both written here.
    let marker = "teiten planted sample, not a virus 4f1c9a";
    let hashed = "another planted sample, known by its hash";
    let md5 = String::from_utf8(aggregator_common::pipe(
        &mut Command::new("md5sum"),
        hashed.as_bytes(),
    ))
    .unwrap()
    .split_whitespace()
    .next()
    .unwrap()
    .to_owned();
    let ndb = format!("Teiten.Test.Marker:0:*:{}\n", hex(marker.as_bytes()));
    let hdb = format!("{md5}:{}:Teiten.Test.Hashed\n", hashed.len());
    let hook = format!(
        "{} clamav-event --spool {} --host {HOST}",
        teiten::bin("teiten-intake").display(),
        spool.display()
    );
    let clamd =
        Clamd::start(&[("local.ndb", &ndb), ("local.hdb", &hdb)], &hook).expect("a private clamd");

    // Planted: two infected files on a "USB medium", one inside a document, one clean.
    let usb = w.join("media/usb0");
    std::fs::create_dir_all(usb.join("docs")).unwrap();
    std::fs::write(usb.join("setup.exe"), format!("MZ....{marker}....")).unwrap();
    std::fs::write(usb.join("docs/notes.bin"), hashed).unwrap();
    std::fs::write(usb.join("docs/clean.txt"), "minutes of the meeting").unwrap();
    let answer = clamd.scan(&usb).unwrap();
    assert_eq!(answer.matches(" FOUND").count(), 2, "{answer}");
    assert!(answer.contains("setup.exe: Teiten.Test.Marker.UNOFFICIAL FOUND"));
    assert!(answer.contains("notes.bin: Teiten.Test.Hashed.UNOFFICIAL FOUND"));

    // The hook spooled both while no intake ran.
    let deadline = Instant::now() + Duration::from_secs(20);
    while spooled(&spool) < 2 {
        assert!(Instant::now() < deadline, "clamd log:\n{}", clamd.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // An event spooled twice (as after a crash between storing and removing) and a broken file.
    let first = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    std::fs::copy(&first, spool.join("99999999999999999999-1.json")).unwrap();
    std::fs::write(
        spool.join("00000000000000000001-1.json"),
        "{\"not\": \"an event\"",
    )
    .unwrap();

    std::fs::write(w.join("token"), "clamav-token\n").unwrap();
    let config = w.join("intake.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{0}/state\"\npoll_ms = 50\n\n[aggregator]\nurl = \"{1}\"\n\
             token_file = \"{0}/token\"\ntimeout_secs = 5\n\n[clamav]\nspool = \"{2}\"\n",
            w.display(),
            agg.url,
            spool.display()
        ),
    )
    .unwrap();
    let mut intake = Intake {
        config,
        log: w.join("intake.log"),
        child: None,
    };
    intake.start();
    wait_reports(&ch, &intake, 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while spooled(&spool) > 0 {
        assert!(Instant::now() < deadline, "{}", intake.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let rejected: Vec<_> = std::fs::read_dir(spool.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(rejected, ["00000000000000000001-1.json"]);
    let log = intake.log_text();
    assert!(
        log.contains("Skipped a ClamAV event") && log.contains("not a spooled ClamAV event"),
        "{log}"
    );

    let stored = ch
        .query(&format!(
            "SELECT host, source, category, description, hashes, colour FROM {DB}.internal_reports \
             WHERE reporter = 'clamav' ORDER BY description FORMAT TSV"
        ))
        .unwrap();
    let want = format!(
        "{HOST}\tantivirus\tmalware\tClamAV found Teiten.Test.Hashed.UNOFFICIAL in {}\t['{}']\tyellow\n\
         {HOST}\tantivirus\tmalware\tClamAV found Teiten.Test.Marker.UNOFFICIAL in {}\t['{}']\tyellow\n",
        usb.join("docs/notes.bin").display(),
        sha256(&usb.join("docs/notes.bin")),
        usb.join("setup.exe").display(),
        sha256(&usb.join("setup.exe")),
    );
    assert_eq!(stored, want);

    // Restarted intake: detections made while it was down are filed when it is back.
    intake.kill();
    std::fs::write(usb.join("second.exe"), format!("{marker}{marker}")).unwrap();
    assert!(clamd
        .scan(&usb.join("second.exe"))
        .unwrap()
        .contains("FOUND"));
    intake.start();
    wait_reports(&ch, &intake, 3);

    // The aggregator away: the detection waits in the spool and is filed when it is back.
    agg.kill();
    std::fs::write(usb.join("third.exe"), marker).unwrap();
    assert!(clamd
        .scan(&usb.join("third.exe"))
        .unwrap()
        .contains("FOUND"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(spooled(&spool), 1, "kept while the aggregator is away");
    agg.restart();
    wait_reports(&ch, &intake, 4);
    let log = intake.log_text();
    assert!(log.contains("Aggregator unavailable"), "{log}");
    assert!(!log.contains("clamav-token"), "the token is never logged");
    // A clean scan adds nothing.
    assert!(clamd
        .scan(&usb.join("docs/clean.txt"))
        .unwrap()
        .ends_with("OK\n"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reports(&ch), (4, 4));
    assert_eq!(spooled(&spool), 0);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
