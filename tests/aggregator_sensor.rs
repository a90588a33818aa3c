//! The real sensor replays a lab capture (masscan, zmap and hping3 into a dark /24) and ships
//! it to the real aggregator, which stores it in ClickHouse: the protocol of both sides
//! together. Every packet of the capture ends up as one row, counted per protocol as the
//! capture's tshark field dump says.

mod aggregator_common;

use aggregator_common::*;
use teiten::clickhouse::Server;

/// The `[aggregator]` timeouts of the lab sensor.
const SENSOR_TIMEOUTS: &str = "timeout_secs = 30\n";

#[test]
fn sensor_replay_reaches_clickhouse_exactly() {
    let pcap = teiten::conformance().join("pcaps/lab/dark_mix.pcap");
    let fields =
        std::fs::read_to_string(teiten::conformance().join("pcaps/lab/dark_mix_fields.csv"))
            .expect("conformance field dump");
    let per_proto = |p: &str| {
        fields
            .lines()
            .filter(|l| l.split(',').nth(1) == Some(p))
            .count() as u64
    };
    let total = fields.lines().count() as u64;

    let ch = Server::start().expect("private ClickHouse starts");
    // The capture was made on an earlier day: a replay of old traffic needs the ingest time
    // window widened (by default a batch older than 30 days or an event a day older than its
    // batch is refused as `clock_skew`).
    let agg = Agg::start(
        &ch,
        "t_sensor",
        "[ingest]\nmax_batch_age_days = 36500\nmax_event_age_secs = 3153600000\n",
    );
    let token = agg.add_sensor("lab-1");
    let dir = tempfile::tempdir().unwrap();
    let config = lab_sensor_config(dir.path(), &agg.url, &token, SENSOR_TIMEOUTS, 5000);
    if let Err(e) = teiten::try_run(
        teiten::configured("teiten-sensor", &config)
            .arg("--read")
            .arg(&pcap),
    ) {
        panic!("sensor: {e}\n{}", agg.log_text());
    }
    assert_eq!(
        scalar(&ch, "SELECT count() FROM t_sensor.scan_events"),
        total
    );
    for proto in ["6", "17", "1"] {
        assert_eq!(
            scalar(
                &ch,
                &format!("SELECT count() FROM t_sensor.scan_events WHERE proto = {proto}")
            ),
            per_proto(proto),
            "protocol {proto}"
        );
    }
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM t_sensor.scan_events WHERE sensor_id != 'lab-1' \
             OR toUInt32(ts) < 1795301956 - 3600 OR toUInt32(ts) > 1795301956 + 86400"
        ),
        0,
        "sensor id and capture times as in the file"
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT countMerge(packets) FROM t_sensor.scan_rollup_5m"
        ),
        total
    );
    eventually(
        &ch,
        "SELECT sum(events) FROM t_sensor.sensor_reports WHERE sensor_id = 'lab-1'",
        total,
    );
}
