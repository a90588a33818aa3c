//! Exactly-once under faults: sensors stream batches (following the sensor's protocol: one
//! batch at a time, retry on 503 or connection errors, resend when the acknowledgement is
//! lost) while the test SIGKILLs the aggregator, kills and restarts ClickHouse, and drops
//! acknowledgements. Afterwards ClickHouse must hold exactly the events sent, once each.

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
    // Two days ago at 20:00 UTC, so that batches cross midnight.
    let base_ts = (now_us() / 86_400_000_000 - 2) * 86_400_000_000 + 20 * 3_600_000_000;
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
    assert_eq!(
        scalar(&ch, "SELECT count() FROM t_repair.scan_events"),
        1000
    );
    assert_eq!(
        scalar(&ch, "SELECT uniqExact(idx) FROM t_repair.scan_events"),
        1000
    );
    let a = post(&agg.url, &tok, &b);
    assert_eq!(a.body, r#"{"seq":1,"status":"duplicate","stored":0}"#);
    assert!(agg
        .metrics()
        .contains("teiten_aggregator_events_repaired_total 400"));
}
