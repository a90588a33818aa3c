//! Retention: raw day partitions older than `raw_days` and rollup partitions older than
//! `rollup_days` are dropped, by the schedule inside `serve` and by `teiten-aggregator
//! retention`; younger data stays. Month partitions go when the whole month has expired. The
//! port digests of the days that are over are sealed by the schedule too.

mod aggregator_common;

use aggregator_common::*;
use teiten::clickhouse::Server;

const DAY_US: i64 = 86_400_000_000;

#[test]
fn expired_partitions_are_dropped_on_schedule_and_on_demand() {
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(
        &ch,
        "t_ret",
        // Batches up to 70 days old: the ingest window must let them in.
        "[ingest]\nmax_batch_age_days = 100\n\
         [retention]\nraw_days = 3\nrollup_days = 10\ninterval_secs = 1\ndigest_interval_secs = 1\n",
    );
    let tok = agg.add_sensor("r1");
    // A minute ago, or midnight if that was yesterday: today, and never ahead of the clock.
    let today = (now_us() / DAY_US * DAY_US).max(now_us() - 60_000_000);
    // Batches of events from today, 5 days ago (raw expired, rollups kept) and 70 days ago
    // (everything expired, the month partitions of that month too).
    for (seq, days_ago) in [(1u64, 0i64), (2, 5), (3, 70)] {
        let a = post(
            &agg.url,
            &tok,
            &batch("r1", 1, seq, 300, today - days_ago * DAY_US),
        );
        assert_eq!(a.status, 200, "{a:?}");
    }
    // The schedule (every second here) drops what expired.
    eventually(&ch, "SELECT count() FROM t_ret.scan_events", 300);
    eventually(
        &ch,
        "SELECT countMerge(packets) FROM t_ret.scan_rollup_5m",
        600,
    );
    eventually(
        &ch,
        "SELECT countMerge(packets) FROM t_ret.scan_rollup_1h",
        600,
    );
    // The per-graph rollups expire with them.
    for table in [
        "scan_ports_1d",
        "scan_ports_1h",
        "scan_sensor_totals_1d",
        "scan_regions_1h",
        "scan_port_totals_1d",
        "scan_port_packets_1h",
    ] {
        eventually(&ch, &format!("SELECT sum(packets) FROM t_ret.{table}"), 600);
    }
    eventually(
        &ch,
        "SELECT countMerge(packets) FROM t_ret.scan_port_regions_5m",
        600,
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT min(ts) >= toDateTime(today()) FROM t_ret.scan_events"
        ),
        1
    );
    // Two raw partitions (5 and 70 days ago) and the 70-day-old day or month of each rollup.
    let dropped = 2 + teiten_store::schema::ROLLUP_TABLES.len();
    assert!(agg.metrics().contains(&format!(
        "teiten_aggregator_partitions_dropped_total {dropped}"
    )));

    // The digest run (every second here) seals the day that is over and within the rollups'
    // retention (5 days ago), per sensor and over all sensors, once; not today.
    eventually(
        &ch,
        "SELECT uniqExact(bucket, sensor_id) FROM t_ret.scan_port_digests_1d",
        2,
    );
    eventually(
        &ch,
        "SELECT sum(total) FROM t_ret.scan_port_digests_1d FINAL WHERE sensor_id = ''",
        300,
    );
    let (ok, out) = agg.cli(&["seal-digests"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("port digests of 0 day(s) sealed"), "{out}");

    // On demand: nothing left to drop, then old rows inserted directly are dropped.
    let (ok, out) = agg.cli(&["retention"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("0 partition(s) dropped"), "{out}");
    ch.query(
        "INSERT INTO t_ret.sensor_reports (sensor_id, received) VALUES ('r1', now() - 86400 * 30)",
    )
    .unwrap();
    let (ok, out) = agg.cli(&["retention"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("1 partition(s) dropped"), "{out}");
    assert!(out.contains("sensor_reports/"), "{out}");
}
