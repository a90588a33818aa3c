//! Exactly-once under faults: sensors stream batches (following the sensor's protocol: one
//! batch at a time, retry on 503 or connection errors, resend when the acknowledgement is
//! lost) while the test SIGKILLs the aggregator, kills and restarts ClickHouse, and drops
//! acknowledgements. Afterwards ClickHouse must hold exactly the events sent, once each.
//!
//! ClickHouse errors by class, with the real sensor: a permanent one (a column dropped behind
//! the aggregator's back) refuses the batch once and the sensor sets it aside; a transient
//! one (ClickHouse stopped) is answered 503 + Retry-After and the batch is delivered after
//! the restart, once.

mod aggregator_common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator_common::*;
use teiten::clickhouse::Server;

const SENSORS: usize = 3;
const BATCHES: u64 = 40;
const EVENTS: usize = 2500;

/// One sensor's sending loop. Every 4th acknowledgement is "lost": the batch is sent again and
/// must come back as a duplicate (or, if the first copy's state was unknown, stored once).
fn sensor_loop(
    url: String,
    token: String,
    id: String,
    acked: Arc<AtomicU64>,
    base_ts: i64,
) -> (u64, u64) {
    let epoch = 1000 + id.len() as u64;
    let mut duplicates = 0;
    let mut stored_events = 0;
    for seq in 1..=BATCHES {
        // Spread the batches over two days so that some INSERTs touch two partitions.
        let b = batch(
            &id,
            epoch,
            seq,
            EVENTS,
            base_ts + seq as i64 * 3_600_000_000,
        );
        let mut resend_lost_ack = seq.is_multiple_of(4);
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            assert!(
                Instant::now() < deadline,
                "sensor {id} stuck on batch {seq}"
            );
            let a = post(&url, &token, &b);
            match a.status {
                200 => {
                    if a.body.contains(r#""status":"stored""#) {
                        let n: u64 = a
                            .body
                            .rsplit("\"stored\":")
                            .next()
                            .and_then(|s| s.trim_end_matches('}').parse().ok())
                            .unwrap();
                        stored_events += n;
                    } else {
                        duplicates += 1;
                    }
                    if resend_lost_ack {
                        resend_lost_ack = false;
                        continue;
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                0 | 503 | 502 => std::thread::sleep(Duration::from_millis(150)),
                other => panic!("sensor {id} batch {seq}: unexpected answer {other}: {a:?}"),
            }
        }
    }
    (stored_events, duplicates)
}

#[test]
fn exactly_once_across_aggregator_kills_clickhouse_restarts_and_lost_acks() {
    let mut ch = Server::start().expect("private ClickHouse starts");
    let mut agg = Agg::start(
        &ch,
        "t_faults",
        "[insert]\nperiod_ms = 200\ntimeout_secs = 10\n\n[ingest]\nack_timeout_secs = 15\nretry_after_secs = 1\n",
    );
    let tokens: Vec<(String, String)> = (0..SENSORS)
        .map(|i| {
            let id = format!("sensor-{i}");
            let t = agg.add_sensor(&id);
            (id, t)
        })
        .collect();
    // Three days ago at 20:00 UTC, so that batches cross midnight, and the last one (40 hours
    // later, yesterday at 12:00) is in the past whatever the time of day the test runs.
    let base_ts = (now_us() / 86_400_000_000 - 3) * 86_400_000_000 + 20 * 3_600_000_000;
    let acked = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = tokens
        .iter()
        .map(|(id, tok)| {
            let (url, tok, id, acked) = (agg.url.clone(), tok.clone(), id.clone(), acked.clone());
            std::thread::spawn(move || sensor_loop(url, tok, id, acked, base_ts))
        })
        .collect();
    let total = SENSORS as u64 * BATCHES;
    let wait_for = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(240);
        while acked.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "no progress past {n} batches");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    wait_for(total / 5);
    agg.kill(); // SIGKILL mid-stream
    std::thread::sleep(Duration::from_millis(700));
    agg.restart();

    wait_for(total * 2 / 5);
    ch.kill(); // ClickHouse crashes
    std::thread::sleep(Duration::from_millis(1500));
    ch.restart().unwrap();

    wait_for(total * 3 / 5);
    agg.kill();
    ch.kill(); // both at once
    std::thread::sleep(Duration::from_millis(500));
    ch.restart().unwrap();
    agg.restart();

    wait_for(total * 4 / 5);
    // A graceful restart while the stream goes on: nothing in flight is lost.
    let status = agg.terminate();
    assert!(status.success(), "{status}");
    agg.restart();

    let mut stored = 0;
    let mut duplicates = 0;
    for s in senders {
        let (e, d) = s.join().expect("sensor thread");
        stored += e;
        duplicates += d;
    }
    let expected = total * EVENTS as u64;
    let count = scalar(&ch, "SELECT count() FROM t_faults.scan_events");
    let distinct = scalar(
        &ch,
        "SELECT uniqExact(sensor_id, epoch, batch_seq, idx) FROM t_faults.scan_events",
    );
    assert_eq!(distinct, expected, "events missing");
    assert_eq!(count, expected, "events stored twice");
    // A batch committed just before a crash is acknowledged later as a duplicate, so the
    // "stored" counts of the acknowledgements may fall short, never exceed.
    assert!(stored <= expected, "acknowledged more than sent: {stored}");
    assert!(
        duplicates >= total / 4,
        "every lost ack was absorbed: {duplicates}"
    );
    // Both day partitions were written.
    assert!(
        scalar(
            &ch,
            "SELECT uniqExact(toDate(ts)) FROM t_faults.scan_events"
        ) >= 2
    );
    // The views never count an event twice; a ClickHouse crash between writing a raw part
    // and the views' parts can leave some out, which rebuild-rollups repairs for past days.
    let rollup = |t: &str| {
        scalar(
            &ch,
            &format!("SELECT countMerge(packets) FROM t_faults.{t}"),
        )
    };
    assert!(rollup("scan_rollup_5m") <= expected && rollup("scan_rollup_1h") <= expected);
    let days = ch
        .query("SELECT DISTINCT toYYYYMMDD(ts) FROM t_faults.scan_events ORDER BY 1")
        .unwrap();
    let days: Vec<&str> = days.split_whitespace().collect();
    let mut args = vec!["rebuild-rollups"];
    args.extend(&days);
    let (ok, out) = agg.cli(&args);
    assert!(ok, "{out}");
    assert_eq!(rollup("scan_rollup_5m"), expected, "5-minute rollups");
    assert_eq!(rollup("scan_rollup_1h"), expected, "1-hour rollups");
    assert_eq!(
        scalar(
            &ch,
            "SELECT uniqMerge(sources) FROM t_faults.scan_rollup_1h"
        ),
        scalar(
            &ch,
            "SELECT uniqIf(src, withheld = 0) FROM t_faults.scan_events"
        )
    );
}

#[test]
fn a_partly_stored_batch_is_completed_not_duplicated() {
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(&ch, "t_repair", "");
    let tok = agg.add_sensor("s1");
    let b = batch("s1", 9, 1, 1000, now_us());
    assert_eq!(post(&agg.url, &tok, &b).status, 200);
    // Make the batch partly stored, as an INSERT killed half-way would leave it.
    ch.query("ALTER TABLE t_repair.scan_events DELETE WHERE idx >= 600")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar(&ch, "SELECT count() FROM t_repair.scan_events") != 600 {
        assert!(Instant::now() < deadline, "mutation did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A fresh aggregator (its memory does not know the batch) completes it.
    drop(agg);
    let agg = Agg::start(&ch, "t_repair", "");
    let a = post(&agg.url, &tok, &b);
    assert_eq!(
        a.body, r#"{"seq":1,"status":"stored","stored":400}"#,
        "{a:?}"
    );
    assert_rows_distinct(&ch, "t_repair.scan_events", "idx", 1000);
    let a = post(&agg.url, &tok, &b);
    assert_eq!(a.body, r#"{"seq":1,"status":"duplicate","stored":0}"#);
    assert!(agg
        .metrics()
        .contains("teiten_aggregator_events_repaired_total 400"));
}

/// The value of a metric line that starts with `prefix` (labels included), or 0.
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn a_permanent_error_refuses_the_batch_once_and_the_sensor_sets_it_aside() {
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(&ch, "t_perm", "[ingest]\nretry_after_secs = 1\n");
    let tok = agg.add_sensor("perm-1");
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = sensor_config(dir.path(), &agg.url, "perm-1", &tok);
    let spool = dir.path().join("spool");
    let rejected = spool.join("rejected");

    // The schema changes behind the aggregator's back.
    ch.query("ALTER TABLE t_perm.scan_events DROP COLUMN withheld")
        .unwrap();

    // The answer: 422, no Retry-After, the cause named, nothing about ClickHouse's address.
    let b = batch("perm-1", 77, 1, 50, now_us() - 60_000_000);
    let a = post(&agg.url, &tok, &b);
    assert_eq!(a.status, 422, "{a:?}");
    assert_eq!(a.retry_after, None, "{a:?}");
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["error"], "storage_rejected", "{a:?}");
    // 18.16 names the table as the INSERT does (`scan_events`), 26.x with database and UUID.
    let cause = body["cause"].as_str().unwrap_or_default();
    assert!(
        cause.starts_with("schema: No such column withheld in table ")
            && cause.contains("scan_events"),
        "{a:?}"
    );
    let port = ch.url().rsplit(':').next().unwrap().to_owned();
    assert!(
        !a.body.contains(&port) && !a.body.contains("127.0.0.1"),
        "{a:?}"
    );

    // The real sensor: its batch is refused once, moved to rejected/, and the sensor goes on
    // (a replay ends when the spool is empty).
    let pcap = dir.path().join("first.pcap");
    scan_pcap(&pcap, 0, 600, now_us() - 120_000_000);
    let status = wait_sensor(start_sensor(&config, &pcap), &config, 120);
    let log = std::fs::read_to_string(sensor_log(&config)).unwrap();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        batch_files(&spool).is_empty(),
        "the spool still holds batches"
    );
    let set_aside = batch_files(&rejected);
    assert_eq!(set_aside.len(), 1, "{log}");
    assert!(
        log.contains("ERROR") && log.contains("storage_rejected"),
        "the sensor alerts: {log}"
    );
    assert!(log.contains("batches_rejected=1"), "{log}");
    assert_eq!(log.matches("Delivery failed").count(), 0, "no retry: {log}");

    let m = agg.metrics();
    // Two batches, each refused once: the wire client's and the sensor's.
    assert_eq!(
        metric(
            &m,
            "teiten_aggregator_batches_rejected_total{reason=\"storage_rejected\"} "
        ),
        2,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "teiten_aggregator_clickhouse_errors_total{class=\"permanent\",category=\"schema\",code=\"16\",name=\"NO_SUCH_COLUMN_IN_TABLE\"} "
        ) >= 2,
        "{m}"
    );
    assert!(!m.contains("reason=\"unavailable\""), "{m}");
    // One error line per refused batch, naming the cause and not ClickHouse's address.
    let agg_log = agg.log_text();
    let refused: Vec<&str> = agg_log
        .lines()
        .filter(|l| l.contains("Batch refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{agg_log}");
    for l in &refused {
        assert!(
            l.contains("ERROR") && l.contains("No such column withheld"),
            "{l}"
        );
        assert!(!l.contains(&ch.url()), "{l}");
    }
    assert_eq!(scalar(&ch, "SELECT count() FROM t_perm.scan_events"), 0);

    // The column is put back: new batches are stored, and the batch set aside is delivered
    // once moved back into the spool.
    ch.query("ALTER TABLE t_perm.scan_events ADD COLUMN withheld UInt8")
        .unwrap();
    let back = spool.join(set_aside[0].file_name().unwrap());
    std::fs::rename(&set_aside[0], &back).unwrap();
    let pcap = dir.path().join("second.pcap");
    scan_pcap(&pcap, 600, 1500, now_us() - 60_000_000);
    let status = wait_sensor(start_sensor(&config, &pcap), &config, 120);
    assert!(
        status.success(),
        "{status}\n{}",
        std::fs::read_to_string(sensor_log(&config)).unwrap()
    );
    assert!(batch_files(&spool).is_empty() && batch_files(&rejected).is_empty());
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM t_perm.scan_events WHERE sensor_id = 'perm-1'"
        ),
        2100
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT uniqExact(epoch, batch_seq, idx) FROM t_perm.scan_events"
        ),
        2100
    );
    assert_eq!(post(&agg.url, &tok, &b).status, 200);
    assert_eq!(scalar(&ch, "SELECT count() FROM t_perm.scan_events"), 2150);
}

#[test]
fn a_transient_error_is_retried_and_the_batch_delivered_after_the_restart() {
    let mut ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(
        &ch,
        "t_transient",
        "[insert]\ntimeout_secs = 5\n\n[ingest]\nretry_after_secs = 1\n",
    );
    let tok = agg.add_sensor("tr-1");
    let dir = tempfile::tempdir().unwrap();
    let (config, sensor_metrics) = sensor_config(dir.path(), &agg.url, "tr-1", &tok);
    let spool = dir.path().join("spool");

    ch.kill();
    let b = batch("tr-1", 5, 1, 50, now_us() - 60_000_000);
    let a = post(&agg.url, &tok, &b);
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("1"), "{a:?}");
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["error"], "unavailable", "{a:?}");
    assert_eq!(body["cause"], "network: NETWORK", "{a:?}");

    let pcap = dir.path().join("scan.pcap");
    scan_pcap(&pcap, 0, 2500, now_us() - 120_000_000);
    let sensor = start_sensor(&config, &pcap);
    // The sensor keeps its three batches and retries.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = get_text(&format!("http://{sensor_metrics}/metrics"));
        if metric(&m, "teiten_sensor_send_failures_total ") >= 3
            && metric(&m, "teiten_sensor_spool_batches ") == 3
        {
            assert_eq!(
                metric(&m, "teiten_sensor_batches_rejected_total "),
                0,
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "sensor did not retry: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(batch_files(&spool).len(), 3);
    let m = agg.metrics();
    assert!(
        metric(
            &m,
            "teiten_aggregator_clickhouse_errors_total{class=\"transient\",category=\"network\",code=\"none\",name=\"NETWORK\"} "
        ) >= 3,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "teiten_aggregator_batches_rejected_total{reason=\"storage_rejected\"} "
        ),
        0
    );

    ch.restart().unwrap();
    let status = wait_sensor(sensor, &config, 120);
    let log = std::fs::read_to_string(sensor_log(&config)).unwrap();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("HTTP 503"), "{log}");
    assert!(batch_files(&spool).is_empty());
    assert!(batch_files(&spool.join("rejected")).is_empty(), "{log}");
    assert_eq!(
        scalar(&ch, "SELECT count() FROM t_transient.scan_events"),
        2500,
        "nothing lost or duplicated"
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT uniqExact(epoch, batch_seq, idx) FROM t_transient.scan_events"
        ),
        2500
    );
}

/// A data error (the rows do not parse: the last column, `src_asn`, made a 1,000,000-byte
/// FixedString behind the aggregator's back, so the first row's RowBinary runs past the end of
/// the INSERT's data, whichever batches it holds: always "Cannot read all data", never an
/// allocation that depends on what misaligned bytes say) in an INSERT that carried several batches cannot
/// be pinned on one of them: they are answered 503 `retry_alone`, and sent again each is
/// written alone and refused on its own account. No batch is asked more than twice.
#[test]
fn a_data_error_in_a_shared_insert_is_pinned_on_each_batch_alone() {
    const BATCHES: u64 = 6;
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(
        &ch,
        "t_data",
        "[insert]\nwriters = 1\n\n[ingest]\nretry_after_secs = 1\n",
    );
    let tok = agg.add_sensor("data-1");
    // (18.16 cannot CAST a number to a FixedString: the column is replaced.)
    ch.query("ALTER TABLE t_data.scan_events DROP COLUMN src_asn")
        .unwrap();
    ch.query("ALTER TABLE t_data.scan_events ADD COLUMN src_asn FixedString(1000000)")
        .unwrap();
    // Frozen, ClickHouse holds every request; thawed, the batches reach the single writer
    // together and share an INSERT.
    ch.pause();
    let senders: Vec<_> = (1..=BATCHES)
        .map(|seq| {
            let (url, tok) = (agg.url.clone(), tok.clone());
            std::thread::spawn(move || {
                // 6 x 100 rows of about 100 bytes: far less than one row now needs.
                let b = batch("data-1", 3, seq, 100, now_us() - 60_000_000);
                let mut answers = Vec::new();
                for _ in 0..4 {
                    let a = post(&url, &tok, &b);
                    let done = a.status != 503;
                    answers.push(a);
                    if done {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1100));
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    ch.resume();
    let mut retried = 0;
    for s in senders {
        let answers = s.join().unwrap();
        let last = answers.last().unwrap();
        assert_eq!(last.status, 422, "{answers:?}");
        let body: serde_json::Value = serde_json::from_str(&last.body).unwrap();
        assert_eq!(body["error"], "storage_rejected", "{answers:?}");
        assert!(
            body["cause"].as_str().unwrap_or("").starts_with("data: "),
            "{answers:?}"
        );
        assert!(answers.len() <= 2, "{answers:?}");
        for a in &answers[..answers.len() - 1] {
            assert!(a.body.contains("retry_alone"), "{answers:?}");
            assert_eq!(a.retry_after.as_deref(), Some("1"));
        }
        retried += answers.len() - 1;
    }
    let m = agg.metrics();
    assert_eq!(
        metric(
            &m,
            "teiten_aggregator_batches_rejected_total{reason=\"storage_rejected\"} "
        ),
        BATCHES,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "teiten_aggregator_batches_rejected_total{reason=\"retry_alone\"} "
        ),
        retried as u64,
        "{m}"
    );
    assert!(retried > 0, "no INSERT was shared: {m}");
    assert_eq!(scalar(&ch, "SELECT count() FROM t_data.scan_events"), 0);
}
