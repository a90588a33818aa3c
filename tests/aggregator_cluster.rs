//! Cluster mode: two ClickHouse servers on this machine as two shards of cluster `teiten`;
//! two aggregators side by side (sharing nothing but ClickHouse) receive the same sensors'
//! batches, including re-sent copies going to the other aggregator. Events spread over both
//! shards, every one stored once, and the totals through the Distributed tables equal those of
//! a single server given the same input.

mod aggregator_common;

use aggregator_common::*;
use teiten::clickhouse::Server;

const SENSORS: u64 = 4;
const BATCHES: u64 = 8;
const EVENTS: usize = 1500;

/// The report queries of the read API, with the answers as text.
fn reports(ch: &Server, db: &str) -> String {
    let mut out = String::new();
    for sql in [
        "SELECT count(), uniqExact(src), uniqExact(sensor_id, epoch, batch_seq, idx) FROM {db}.scan_events",
        "SELECT proto, dport, countMerge(packets) AS p, uniqMerge(sources) FROM {db}.scan_rollup_1h GROUP BY proto, dport ORDER BY proto, dport",
        "SELECT country, countMerge(packets) AS p, uniqMerge(sources) FROM {db}.scan_rollup_5m GROUP BY country ORDER BY country",
        "SELECT sensor_id, count() FROM {db}.sensor_reports GROUP BY sensor_id ORDER BY sensor_id",
    ] {
        out += &ch.query(&sql.replace("{db}", db)).unwrap();
        out += "--\n";
    }
    out
}

#[test]
fn two_shards_two_aggregators_match_a_single_server() {
    let shards = Server::cluster("teiten", 2).expect("two private ClickHouse servers start");
    let nodes = format!("nodes = [\"{}\", \"{}\"]", shards[0].url(), shards[1].url());
    // The [clickhouse] table is opened by the common config; these keys extend it.
    let cluster = |_: usize| format!("cluster = \"teiten\"\n{nodes}\n");
    // The source ASes are named every second.
    let naming = "[geo]\nnames_interval_secs = 1\n";
    let a = Agg::start_url_with_clickhouse_keys(&shards[0].url(), "t_cluster", &cluster(0), naming);
    let b = Agg::start_url_with_clickhouse_keys(&shards[1].url(), "t_cluster", &cluster(1), naming);
    // Sensors registered through one aggregator are known to the other (registry in ClickHouse).
    let tokens: Vec<(String, String)> = (0..SENSORS)
        .map(|i| {
            let id = format!("c{i}");
            (id.clone(), a.add_sensor(&id))
        })
        .collect();

    let single = Server::start().expect("private ClickHouse starts");
    let s = Agg::start(&single, "t_cluster", naming);
    let single_tokens: Vec<String> = tokens.iter().map(|(id, _)| s.add_sensor(id)).collect();

    let ts = now_us() - 3_600_000_000;
    for seq in 1..=BATCHES {
        for (i, (id, tok)) in tokens.iter().enumerate() {
            let batch = batch(id, 77, seq, EVENTS, ts + seq as i64 * 1_000_000);
            // Alternate aggregators; every third batch is re-sent to the other one (a lost
            // acknowledgement followed by a failover) and must be recognised.
            let (first, second) = if (seq + i as u64).is_multiple_of(2) {
                (&a, &b)
            } else {
                (&b, &a)
            };
            let r = post(&first.url, tok, &batch);
            assert_eq!(r.status, 200, "{r:?}");
            if seq.is_multiple_of(3) {
                let r = post(&second.url, tok, &batch);
                assert_eq!(
                    r.body,
                    format!(r#"{{"seq":{seq},"status":"duplicate","stored":0}}"#)
                );
            }
            let r = post(&s.url, &single_tokens[i], &batch);
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
    let total = SENSORS * BATCHES * EVENTS as u64;
    // Spread over both shards.
    let on = |i: usize| {
        scalar(
            &shards[i],
            "SELECT count() FROM t_cluster.scan_events_local",
        )
    };
    let (n0, n1) = (on(0), on(1));
    assert_eq!(n0 + n1, total);
    assert!(
        n0 > total / 5 && n1 > total / 5,
        "uneven spread: {n0} / {n1}"
    );
    // Totals through the Distributed tables, from either node, equal the single server's.
    eventually(
        &single,
        "SELECT count() FROM t_cluster.sensor_reports",
        SENSORS * BATCHES,
    );
    eventually(
        &shards[0],
        "SELECT count() FROM t_cluster.sensor_reports",
        SENSORS * BATCHES,
    );
    let expected = reports(&single, "t_cluster");
    assert!(expected.starts_with(&format!("{total}\t")), "{expected}");
    assert_eq!(reports(&shards[0], "t_cluster"), expected);
    assert_eq!(reports(&shards[1], "t_cluster"), expected);
    // The source ASes are named in as_names, through the Distributed tables too (the
    // aggregators' naming query reads a distributed rollup against a distributed table).
    let ases = scalar(
        &single,
        "SELECT uniqExact(src_asn) FROM t_cluster.scan_events WHERE src_asn != 0",
    );
    assert!(ases > 0, "the test's sources have ASes");
    for node in [&single, &shards[0], &shards[1]] {
        eventually(node, "SELECT uniqExact(asn) FROM t_cluster.as_names", ases);
    }
    // Migrations created the local tables and views on both nodes, and a rerun does nothing.
    let (ok, out) = a.cli(&["migrate"]);
    assert!(ok && out.starts_with("0 step(s) applied"), "{out}");
    for sh in &shards {
        assert_eq!(
            scalar(
                sh,
                "SELECT count() FROM system.tables WHERE database = 't_cluster'"
            ),
            65,
            "25 local and 25 Distributed tables, 15 views"
        );
    }
    // Every query the aggregator and the dashboard run works on the cluster too, through the
    // Distributed tables (18.16 refuses a distributed table inside a distributed query's IN or
    // JOIN: the statements read such sides through subqueries).
    let mut refused = Vec::new();
    for (what, st) in teiten_store::queries::samples("t_cluster") {
        let sql = st.to_sql_literal().unwrap();
        if let Err(e) = shards[0].query(&sql) {
            refused.push(format!("{what}: {e}"));
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}
