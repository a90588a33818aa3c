//! Hostile IODEF imports against the real `teiten-aggregator` binary and a private ClickHouse
//! 18.16: documents built to blow up the import's memory (a long IncidentID copied into every
//! row, many addresses, millions of tiny nested `<EventData/>`), POSTed to `/api/v1/iodef`
//! (plain and gzipped) and dropped into the inbox. The aggregator's peak RSS (`VmHWM`, reset
//! through `/proc/<pid>/clear_refs` before the imports) stays under the bound stated in the
//! aggregator README, each document gets a clear answer naming the element, sensor ingest keeps
//! answering throughout, a second upload while one runs answers 503, and an inbox file whose
//! import is interrupted twice (the process killed) is quarantined instead of retried forever.

mod aggregator_common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator_common::{assert_rows_distinct, batch, now_us, pipe, post, scalar, send_json, Agg};
use teiten::clickhouse::Server;

/// Batch sequence numbers, one series for the whole test.
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The bound the README states: an import adds at most this much to the process's peak RSS.
const BOUND_KIB: u64 = 64 * 1024;

/// The SHA-256 of `s` in hex, as `upload_token_sha256` wants it.
fn sha256_hex(s: &str) -> String {
    let out = pipe(&mut Command::new("sha256sum"), s.as_bytes());
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .expect("sha256sum prints the hash")
        .to_owned()
}

fn config(dir: &Path) -> String {
    format!(
        "[exchange]\ncsirt = \"csirt.teiten.test\"\noutbox = \"{0}/outbox\"\n\
         inbox = \"{0}/inbox\"\nquarantine = \"{0}/quarantine\"\ninterval_secs = 1\n\
         export_delay_minutes = 1440\nmax_concurrent_imports = 1\n\n\
         [[exchange.partner]]\nid = \"au-cert\"\ncountries = [\"AU\"]\n\
         upload_token_sha256 = \"{1}\"\n",
        dir.display(),
        sha256_hex("au-upload-token"),
    )
}

fn head(incident_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\">\n\
         <Incident purpose=\"reporting\"><IncidentID name=\"cert.au.test\">{incident_id}</IncidentID>\n\
         <GenerationTime>2026-01-01T00:00:00Z</GenerationTime>\n\
         <Contact role=\"creator\" type=\"organization\"><ContactName>AU</ContactName></Contact>\n"
    )
}

const TAIL: &str = "</Incident></IODEF-Document>\n";

/// The issue's shape: one EventData whose Node lists `addresses` Address elements, under an
/// IncidentID of `id_len` bytes.
fn many_addresses(id_len: usize, addresses: usize) -> Vec<u8> {
    many_events(id_len, 1, addresses)
}

/// `events` EventData of `per` addresses each, under an IncidentID of `id_len` bytes.
fn many_events(id_len: usize, events: usize, per: usize) -> Vec<u8> {
    let mut d = head(&"I".repeat(id_len));
    for e in 0..events {
        d.push_str("<EventData><Flow><System category=\"source\"><Node>\n");
        for i in 0..per {
            let k = e * per + i;
            d.push_str(&format!(
                "<Address category=\"ipv4-addr\">10.{}.{}.{}</Address>\n",
                k >> 16 & 255,
                k >> 8 & 255,
                k & 255
            ));
        }
        d.push_str("</Node></System></Flow></EventData>\n");
    }
    d.push_str(TAIL);
    d.into_bytes()
}

/// `n` 12-byte `<EventData/>` nested in one top-level EventData.
fn nested_event_data(n: usize) -> Vec<u8> {
    let mut d = head("NESTED-1");
    d.push_str("<EventData>");
    d.push_str(&"<EventData/>".repeat(n));
    d.push_str("</EventData>\n");
    d.push_str(TAIL);
    d.into_bytes()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    pipe(Command::new("gzip").arg("-c"), b)
}

fn upload(agg: &Agg, body: &[u8], gz: bool) -> (u16, serde_json::Value) {
    let mut req = ureq::post(&format!("{}/api/v1/iodef", agg.url))
        .timeout(Duration::from_secs(300))
        .set("Authorization", "Bearer au-upload-token");
    if gz {
        req = req.set("Content-Encoding", "gzip");
    }
    send_json(req, body, "upload")
}

/// The reason of an upload answered 422 `quarantined`; fails the test on any other answer.
fn quarantined((status, body): (u16, serde_json::Value)) -> String {
    assert_eq!(
        (status, body["status"].as_str()),
        (422, Some("quarantined")),
        "{body}"
    );
    body["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {body}"))
        .to_owned()
}

/// Waits up to `secs` seconds for `path` to exist; fails the test with `what` and the
/// aggregator's log when it does not.
fn wait_for_file(agg: &Agg, path: &Path, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what}:\n{}", agg.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resets the peak RSS of `pid` to its current RSS; returns that.
fn reset_peak(pid: u32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");
    status_kib(pid, "VmHWM:")
}

/// Posts a sensor batch every 200 ms until stopped; every answer must be 200. Returns the
/// number of batches and the slowest answer.
fn ingest_during(
    agg_url: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, Duration)> {
    std::thread::spawn(move || {
        let (mut n, mut slowest) = (0u64, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let t = Instant::now();
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let a = post(&agg_url, &token, &batch("tokyo-1", 1, seq, 50, now_us()));
            slowest = slowest.max(t.elapsed());
            assert_eq!(a.status, 200, "ingest during the import: {a:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
        (n, slowest)
    })
}

/// One hostile import: runs `f` with ingest going on, peak RSS reset before; returns the peak
/// RSS growth (KiB) and what `f` returned.
fn measured<T>(agg: &Agg, token: &str, label: &str, f: impl FnOnce() -> T) -> T {
    let pid = agg.child.as_ref().unwrap().id();
    let base = reset_peak(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let ingest = ingest_during(agg.url.clone(), token.to_owned(), stop.clone());
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (batches, slowest) = ingest.join().expect("ingest kept answering 200");
    let peak = status_kib(pid, "VmHWM:");
    let grew = peak.saturating_sub(base);
    println!(
        "{label}: {:.1} s, peak RSS {:.1} MiB (baseline {:.1} MiB, +{:.1} MiB); \
         {batches} ingest batches answered 200, slowest {slowest:?}",
        took.as_secs_f64(),
        peak as f64 / 1024.0,
        base as f64 / 1024.0,
        grew as f64 / 1024.0
    );
    assert!(batches >= 1, "{label}: no ingest request during the import");
    assert!(
        grew < BOUND_KIB,
        "{label}: peak RSS grew by {grew} KiB, over the {BOUND_KIB} KiB bound"
    );
    out
}

#[test]
fn hostile_imports_stay_within_the_memory_bound_with_clear_errors() {
    let ch = Server::start().expect("ClickHouse starts");
    let work = tempfile::tempdir().unwrap();
    let mut agg = Agg::start(&ch, "ex_hostile", &config(work.path()));
    let token = agg.add_sensor("tokyo-1");
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let a = post(&agg.url, &token, &batch("tokyo-1", 1, seq, 10, now_us()));
    assert_eq!(a.status, 200, "{a:?}");

    // The issue's 1 MB document: a 16 KiB IncidentID and 20,000 addresses in one Node (328 MiB
    // before).
    let issue = many_addresses(16 << 10, 20_000);
    assert!(issue.len() > 900_000, "{}", issue.len());
    // (label, document, gzipped, what the reason names)
    let refused: [(&str, Vec<u8>, bool, &[&str]); 3] = [
        // The EventData is over the unit cap (20,000 elements).
        (
            "1 MB, 16 KiB IncidentID, 20k addresses",
            issue,
            false,
            &[
                "/IODEF-Document/Incident/EventData/Flow/System/Node (line ",
                "limit exceeded: max_unit_elements (cap 20000)",
            ],
        ),
        // Under the unit cap, the IncidentID copied into each row is what is refused.
        (
            "1 MB, 16 KiB IncidentID, 19k addresses",
            many_addresses(16 << 10, 19_000),
            false,
            &[
                "/IODEF-Document/Incident[1]/IncidentID",
                "exchange.import_max_string_bytes (1024)",
            ],
        ),
        // The same shape, larger: 64 KiB IncidentID, 100,000 addresses (4.6 MB), gzipped.
        (
            "4.6 MB (gzip), 64 KiB IncidentID, 100k addresses",
            gzip(&many_addresses(64 << 10, 100_000)),
            true,
            &["max_unit_elements"],
        ),
    ];
    for (label, doc, gz, names) in refused {
        let answer = measured(&agg, &token, label, || upload(&agg, &doc, gz));
        let reason = quarantined(answer);
        for name in names {
            assert!(reason.contains(name), "{label}: {reason}");
        }
    }

    // Within the caps, 300,000 addresses are stored: rows flushed as they are produced.
    let doc = many_events(900, 300, 1000);
    let (s, body) = measured(
        &agg,
        &token,
        "13 MB, 900-byte IncidentID, 300k addresses stored",
        || upload(&agg, &doc, false),
    );
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("stored")),
        "{body}"
    );
    assert_eq!(body["indicators"].as_u64(), Some(300_000), "{body}");
    assert_rows_distinct(&ch, "ex_hostile.iodef_indicators", "n", 300_000);

    // 12-byte `<EventData/>` elements: 2,000,000 of them nested in one EventData (24 MB;
    // about 1.2 GiB in memory unbounded).
    let doc = nested_event_data(2_000_000);
    let gz = gzip(&doc);
    // While it runs, a second upload finds no free slot (max_concurrent_imports = 1).
    let busy = Arc::new(Mutex::new(None));
    let (s, body) = measured(&agg, &token, "24 MB, 2M nested <EventData/>", || {
        std::thread::scope(|sc| {
            let h = sc.spawn(|| upload(&agg, &gz, true));
            let deadline = Instant::now() + Duration::from_secs(60);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(300));
                let (s, b) = upload(&agg, b"<IODEF-Document/>", false);
                if s == 503 {
                    *busy.lock().unwrap() = Some(b);
                    break;
                }
            }
            h.join().unwrap()
        })
    });
    let reason = quarantined((s, body));
    assert!(
        reason.contains("max_unit_elements")
            && reason.contains("/IODEF-Document/Incident/EventData"),
        "{reason}"
    );
    let busy = busy
        .lock()
        .unwrap()
        .take()
        .expect("an upload during an import answered 503");
    assert_eq!(busy["error"].as_str(), Some("busy"), "{busy}");

    // A gzip bomb: 64 MiB of zeros past the 64 MiB cap answers 413, nothing kept.
    let mut bomb = head("BOMB").into_bytes();
    bomb.resize(65 << 20, b' ');
    let gz = gzip(&bomb);
    let (s, body) = measured(&agg, &token, "65 MiB gzip bomb", || upload(&agg, &gz, true));
    assert_eq!(s, 413, "{body}");
    let spool = work.path().join("inbox/.uploads");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool files are removed"
    );

    // The inbox: the 4.6 MB shape is quarantined by the scheduler, naming the element.
    let inbox = work.path().join("inbox/au-cert");
    std::fs::create_dir_all(&inbox).unwrap();
    let doc = many_events(64 << 10, 100, 1000);
    measured(&agg, &token, "inbox: 4.6 MB, 64 KiB IncidentID", || {
        std::fs::write(inbox.join("big-id.xml"), &doc).unwrap();
        wait_for_file(
            &agg,
            &inbox.join("done/big-id.xml"),
            120,
            "inbox not handled",
        );
    });
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM ex_hostile.iodef_imports WHERE name = 'big-id.xml' \
             AND status = 'quarantined' AND position(reason, 'IncidentID') > 0"
        ),
        1
    );

    // An inbox file whose import is interrupted twice (the process killed mid-import) is
    // quarantined on the next start, not retried forever.
    let doc = many_events(100, 400, 1000);
    std::fs::write(inbox.join("killer.xml"), &doc).unwrap();
    let marker = inbox.join(".killer.xml.attempts");
    for round in 1..=2 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = std::fs::read_to_string(&marker)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.parse::<u32>().ok()));
            if n == Some(round) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "attempt {round} not started:\n{}",
                agg.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agg.kill();
        agg.restart();
    }
    wait_for_file(&agg, &inbox.join("done/killer.xml"), 60, "not quarantined");
    assert!(!marker.exists(), "the attempts file goes with the file");
    let reason = std::fs::read_dir(work.path().join("quarantine/au-cert"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("killer.xml.reason.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .expect("a reason beside the quarantined file");
    assert!(
        reason.contains("interrupted 2 times") && reason.contains("stopped or died"),
        "{reason}"
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM ex_hostile.iodef_imports WHERE name = 'killer.xml' AND status = 'quarantined'"
        ),
        1
    );
}
