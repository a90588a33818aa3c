//! The aggregator against a real ClickHouse 18.16 started by the harness: migrations,
//! authentication, rejection of bad batches with the right status and reason, deduplication of
//! re-sent batches, the sensor registry CLI, backpressure when ClickHouse is down, metrics and
//! health, graceful shutdown.

mod aggregator_common;

use aggregator_common::*;
use teiten::clickhouse::Server;
use teiten_wire::CONTENT_TYPE;

#[test]
fn migrations_are_idempotent_and_check_the_version() {
    let ch = Server::start().expect("private ClickHouse starts");
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path(), &ch.url(), "t_migrate", "");
    let run =
        |args: &[&str]| teiten::run_ok(teiten::configured("teiten-aggregator", &config).args(args));
    let first = run(&["migrate"]);
    assert!(first.starts_with("41 step(s) applied"), "{first}");
    let second = run(&["migrate"]);
    assert_eq!(second.trim(), "0 step(s) applied");
    let tables = ch
        .query("SELECT name, engine FROM system.tables WHERE database = 't_migrate' ORDER BY name")
        .unwrap();
    assert_eq!(
        tables,
        "as_names\tReplacingMergeTree\n\
         exchange_log\tMergeTree\n\
         internal_reports\tMergeTree\n\
         iodef_imports\tMergeTree\n\
         iodef_indicators\tMergeTree\n\
         report_cases\tMergeTree\n\
         scan_events\tMergeTree\n\
         scan_networks_1h\tAggregatingMergeTree\n\
         scan_networks_1h_mv\tMaterializedView\n\
         scan_port_digests_1d\tReplacingMergeTree\n\
         scan_port_packets_1h\tSummingMergeTree\n\
         scan_port_packets_1h_mv\tMaterializedView\n\
         scan_port_regions_5m\tAggregatingMergeTree\n\
         scan_port_regions_5m_published_mv\tMaterializedView\n\
         scan_port_sensor_sources_1d\tAggregatingMergeTree\n\
         scan_port_sensor_sources_1d_published_mv\tMaterializedView\n\
         scan_port_sources_1d\tAggregatingMergeTree\n\
         scan_port_sources_1d_published_mv\tMaterializedView\n\
         scan_port_sources_5m\tAggregatingMergeTree\n\
         scan_port_sources_5m_published_mv\tMaterializedView\n\
         scan_port_totals_1d\tSummingMergeTree\n\
         scan_port_totals_1d_mv\tMaterializedView\n\
         scan_ports_1d\tSummingMergeTree\n\
         scan_ports_1d_mv\tMaterializedView\n\
         scan_ports_1h\tSummingMergeTree\n\
         scan_ports_1h_mv\tMaterializedView\n\
         scan_ports_5m\tSummingMergeTree\n\
         scan_ports_5m_mv\tMaterializedView\n\
         scan_regions_1h\tSummingMergeTree\n\
         scan_regions_1h_mv\tMaterializedView\n\
         scan_regions_5m\tSummingMergeTree\n\
         scan_regions_5m_mv\tMaterializedView\n\
         scan_rollup_1h\tAggregatingMergeTree\n\
         scan_rollup_1h_published_mv\tMaterializedView\n\
         scan_rollup_5m\tAggregatingMergeTree\n\
         scan_rollup_5m_published_mv\tMaterializedView\n\
         scan_sensor_totals_1d\tSummingMergeTree\n\
         scan_sensor_totals_1d_mv\tMaterializedView\n\
         sensor_reports\tMergeTree\n\
         sensors\tReplacingMergeTree\n"
    );
    // A dropped view is recreated by the next run, and only it.
    ch.query("DROP TABLE t_migrate.scan_rollup_1h_published_mv")
        .unwrap();
    let third = run(&["migrate"]);
    assert!(third.starts_with("1 step(s) applied"), "{third}");
    assert!(
        third.contains("t_migrate.scan_rollup_1h_published_mv"),
        "{third}"
    );

    // --check-config accepts this config and rejects an unknown field with its name.
    let ok = run(&["--check-config"]);
    assert!(ok.ends_with(": ok\n"), "{ok}");
    std::fs::write(dir.path().join("bad.toml"), "[ingest]\nmax_body = 1\n").unwrap();
    let out = std::process::Command::new(teiten::bin("teiten-aggregator"))
        .args([
            "--config",
            dir.path().join("bad.toml").to_str().unwrap(),
            "--check-config",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `max_body`"), "{err}");
}

#[test]
fn ingest_authenticates_rejects_deduplicates_and_stores_exactly() {
    let ch = Server::start().expect("private ClickHouse starts");
    let mut agg = Agg::start(
        &ch,
        "t_ingest",
        "[ingest]\nmax_body_bytes = 200000\nmax_events = 5000\nmax_pending_events = 20000\n",
    );
    let tok_a = agg.add_sensor("tokyo-1");
    let tok_b = agg.add_sensor("osaka-2");
    // Adding an active sensor again is refused.
    let (ok, out) = agg.cli(&["sensor", "add", "tokyo-1"]);
    assert!(!ok && out.contains("already registered"), "{out}");

    let now = now_us();
    let url = agg.url.clone();
    let mut expected = 0u64;

    // A good batch is stored, and its re-sent copy (lost ack) is acknowledged as a duplicate.
    let b1 = batch("tokyo-1", 11, 1, 1000, now);
    let a = post(&url, &tok_a, &b1);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, r#"{"seq":1,"status":"stored","stored":1000}"#);
    expected += 1000;
    let a = post(&url, &tok_a, &b1);
    assert_eq!(a.body, r#"{"seq":1,"status":"duplicate","stored":0}"#);

    // Unauthenticated: no header, unknown token.
    let b2 = batch("tokyo-1", 11, 2, 10, now);
    let body = teiten_wire::encode(&b2);
    let a = post_raw(&url, None, CONTENT_TYPE, &body);
    assert_eq!(a.status, 401, "{a:?}");
    assert!(a.body.contains(r#""error":"unauthorized""#), "{a:?}");
    let a = post_raw(&url, Some("tt_0000"), CONTENT_TYPE, &body);
    assert_eq!(
        (a.status, a.body.contains("unknown token")),
        (401, true),
        "{a:?}"
    );
    // Another sensor's token: 403.
    let a = post(&url, &tok_b, &b2);
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a
        .body
        .contains("token of sensor osaka-2 used for a batch of sensor tokyo-1"));
    // Wrong content type: 415.
    let a = post_raw(&url, Some(&tok_a), "application/json", &body);
    assert_eq!(a.status, 415, "{a:?}");
    // Oversized body: 413, by Content-Length.
    let a = post_raw(&url, Some(&tok_a), CONTENT_TYPE, &vec![0u8; 300_000]);
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.body.contains("body is larger than 200000 bytes"), "{a:?}");
    // Too many events: 413 with the reason.
    let a = post(&url, &tok_a, &batch("tokyo-1", 11, 2, 5001, now));
    assert_eq!(a.status, 413, "{a:?}");
    assert!(
        a.body.contains("5001 events, more than the limit of 5000"),
        "{a:?}"
    );
    // Malformed: not a batch, truncated compression.
    let a = post_raw(&url, Some(&tok_a), CONTENT_TYPE, b"GET / HTTP/1.1");
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("expected magic TTB1"), "{a:?}");
    let a = post_raw(&url, Some(&tok_a), CONTENT_TYPE, &body[..body.len() / 2]);
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("compression is corrupt"), "{a:?}");
    // Breaks a rule: 422.
    let mut bad = b2.clone();
    bad.id.seq = 0;
    let a = post(&url, &tok_a, &bad);
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.body.contains("seq must start at 1"), "{a:?}");

    // Nothing accepted was lost, and the other sensor was not disturbed.
    let a = post(&url, &tok_a, &b2);
    assert_eq!(a.status, 200, "{a:?}");
    expected += 10;
    let a = post(&url, &tok_b, &batch("osaka-2", 5, 1, 777, now));
    assert_eq!(a.status, 200, "{a:?}");
    expected += 777;

    // Revoked: 401 once the registry refreshed (1 s in this config).
    let (ok, out) = agg.cli(&["sensor", "revoke", "osaka-2"]);
    assert!(ok, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let a = post(&url, &tok_b, &batch("osaka-2", 5, 2, 5, now));
    assert_eq!(a.status, 401, "{a:?}");
    assert!(a.body.contains("sensor is revoked"), "{a:?}");
    assert!(
        agg.log_text().contains("sensor=\"osaka-2\"") || agg.log_text().contains("sensor=osaka-2")
    );
    assert!(
        !agg.log_text().contains(&tok_b[3..]),
        "a token leaked into the log"
    );

    // The stored rows are exactly the accepted events, with the batch identity.
    assert_eq!(
        scalar(&ch, "SELECT count() FROM t_ingest.scan_events"),
        expected
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM (SELECT sensor_id, epoch, batch_seq, idx FROM t_ingest.scan_events \
             GROUP BY sensor_id, epoch, batch_seq, idx HAVING count() > 1)"
        ),
        0
    );
    // Rollups filled by the views match the raw rows.
    assert_eq!(
        scalar(
            &ch,
            "SELECT countMerge(packets) FROM t_ingest.scan_rollup_5m"
        ),
        expected
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT countMerge(packets) FROM t_ingest.scan_rollup_1h"
        ),
        expected
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT uniqMerge(sources) FROM t_ingest.scan_rollup_1h"
        ),
        scalar(
            &ch,
            "SELECT uniqIf(src, withheld = 0) FROM t_ingest.scan_events"
        )
    );
    // Fields round-trip: the first event of b1.
    let row = ch
        .query(
            "SELECT replaceRegexpOne(IPv6NumToString(src), '^::ffff:', ''), \
             IPv6NumToString(dst), proto, dport, toUInt64(ts) * 1000000 + usec, class, tags, ttl \
             FROM t_ingest.scan_events WHERE sensor_id = 'tokyo-1' AND batch_seq = 1 AND idx = 0",
        )
        .unwrap();
    let e = &b1.events[0];
    assert_eq!(
        row,
        format!(
            "{}\t::ffff:{}\t{}\t{}\t{}\tscan\t1\t54\n",
            e.src, e.dst, e.proto, e.dport, e.ts_us
        )
    );

    // The registry: list shows both, with what they reported.
    let (ok, list) = agg.cli(&["sensor", "list"]);
    assert!(ok, "{list}");
    let tokyo = list.lines().find(|l| l.starts_with("tokyo-1")).unwrap();
    assert!(tokyo.contains("active"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("osaka-2") && l.contains("revoked")),
        "{list}"
    );
    // Kernel drops reported by the last batch (seq 2 => 2 in the test batch builder).
    let cols: Vec<&str> = tokyo.split_whitespace().collect();
    assert_eq!(cols[4], "2", "{list}");
    // One report per stored batch.
    eventually(&ch, "SELECT count() FROM t_ingest.sensor_reports", 3);

    // Metrics: counters by reason, duplicates absorbed.
    let m = agg.metrics();
    for needle in [
        "teiten_aggregator_batches_stored_total 3",
        "teiten_aggregator_batches_duplicate_total 1",
        "teiten_aggregator_events_stored_total 1787",
        "teiten_aggregator_batches_rejected_total{reason=\"unauthorized\"} 3",
        "teiten_aggregator_batches_rejected_total{reason=\"forbidden\"} 1",
        "teiten_aggregator_batches_rejected_total{reason=\"too_large\"} 2",
        "teiten_aggregator_batches_rejected_total{reason=\"malformed\"} 2",
        "teiten_aggregator_batches_rejected_total{reason=\"invalid\"} 1",
        "teiten_aggregator_insert_seconds_count",
    ] {
        assert!(m.contains(needle), "metrics lack `{needle}`:\n{m}");
    }

    // Graceful shutdown exits 0.
    let status = agg.terminate();
    assert!(status.success(), "{status}\n{}", agg.log_text());
    assert!(agg.log_text().contains("Open inserts finished; stopped"));
}

#[test]
fn clickhouse_down_means_503_with_retry_after_then_recovery() {
    let mut ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(&ch, "t_backpressure", "[ingest]\nretry_after_secs = 7\n");
    let tok = agg.add_sensor("s1");
    let now = now_us();
    assert_eq!(
        post(&agg.url, &tok, &batch("s1", 1, 1, 100, now)).status,
        200
    );

    ch.kill();
    let b2 = batch("s1", 1, 2, 100, now);
    let a = post(&agg.url, &tok, &b2);
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("7"), "{a:?}");
    assert!(a.body.contains("storage is unavailable"), "{a:?}");
    let h = ureq::get(&format!("{}/health", agg.url)).call();
    assert!(matches!(h, Err(ureq::Error::Status(503, _))), "{h:?}");

    ch.restart().unwrap();
    // The sensor retries after Retry-After; the batch is stored once.
    let answer = post_until_ok(&agg.url, &tok, &b2);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        scalar(&ch, "SELECT count() FROM t_backpressure.scan_events"),
        200
    );
    assert!(agg.metrics().contains("reason=\"unavailable\""));
}

#[test]
fn slow_clickhouse_means_503_busy_with_bounded_requests() {
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(
        &ch,
        "t_slow",
        "[ingest]\nmax_requests = 2\nack_timeout_secs = 3\nretry_after_secs = 2\n",
    );
    let tok = agg.add_sensor("s1");
    let now = now_us();
    ch.pause();
    // Two requests occupy the two slots while ClickHouse does not answer...
    let waiting: Vec<_> = (1..=2u64)
        .map(|seq| {
            let (url, tok) = (agg.url.clone(), tok.clone());
            std::thread::spawn(move || post(&url, &tok, &batch("s1", 1, seq, 100, now)))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // ...so a third is turned away at once, with Retry-After.
    let t = std::time::Instant::now();
    let a = post(&agg.url, &tok, &batch("s1", 1, 3, 100, now));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("2"));
    assert!(a.body.contains(r#""error":"busy""#), "{a:?}");
    // The waiting ones give up after ack_timeout_secs with 503 too.
    for w in waiting {
        let a = w.join().unwrap();
        assert_eq!(a.status, 503, "{a:?}");
        assert!(a.retry_after.is_some());
    }
    ch.resume();
    // Retried, all three are stored once.
    for seq in 1..=3u64 {
        let a = post_until_ok(&agg.url, &tok, &batch("s1", 1, seq, 100, now));
        assert_eq!(a.status, 200, "{a:?}");
    }
    eventually(&ch, "SELECT count() FROM t_slow.scan_events", 300);
}

/// The statements of one `-- <name>` section of `teiten-aggregator schema --print-sql`.
fn print_sql_section(name: &str) -> Vec<String> {
    let out = teiten::run_ok(
        std::process::Command::new(teiten::bin("teiten-aggregator"))
            .args(["schema", "--print-sql"]),
    );
    let mut current = String::new();
    let mut statements = Vec::new();
    for line in out.lines() {
        if let Some(header) = line.strip_prefix("-- ") {
            current = header.split_whitespace().next().unwrap_or("").to_owned();
        } else if current == name && !line.trim().is_empty() {
            statements.push(line.trim_end_matches(';').to_owned());
        }
    }
    assert!(!statements.is_empty(), "no `-- {name}` section");
    statements
}

/// What `migrate` reads of database `db` (the `-- compare` statements), compared with the
/// definition.
fn schema_differences(ch: &Server, db: &str) -> Vec<String> {
    let compare = print_sql_section("compare");
    let rows = |q: &str| -> serde_json::Value {
        ch.query(&format!(
            "{} FORMAT JSONEachRow",
            q.replace('?', &format!("'{db}'"))
        ))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect()
    };
    let tables: Vec<teiten_store::schema_diff::ServerTable> =
        serde_json::from_value(rows(&compare[0])).unwrap();
    let columns: Vec<teiten_store::schema_diff::ServerColumn> =
        serde_json::from_value(rows(&compare[1])).unwrap();
    assert!(tables.len() >= 36, "{db}: {} tables", tables.len());
    teiten_store::schema_diff::differences(
        db,
        &teiten_store::schema::Layout::Single,
        &tables,
        &columns,
    )
}

#[test]
fn migrate_compares_tables_with_their_definition_and_refuses_hand_changes() {
    let ch = Server::start().expect("private ClickHouse starts");
    let legacy = print_sql_section("legacy");
    // A database of the previous release with rows stored by it (the views fill the rollups).
    let create = |db: &str| {
        for sql in &legacy {
            let sql = sql.replace("teiten_v0", db);
            ch.query(&sql).unwrap_or_else(|e| panic!("{sql}\n{e}"));
        }
        ch.query(&format!(
            "INSERT INTO {db}.scan_events (sensor_id, epoch, batch_seq, idx, ts, usec, proto, \
             src, dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, \
             country) VALUES \
             ('old-1', 1, 1, 0, toDateTime(1763700000), 0, 6, \
              toFixedString(IPv6StringToNum('::ffff:1.0.0.1'), 16), \
              toFixedString(IPv6StringToNum('::ffff:198.18.1.1'), 16), 4000, 23, 2, 54, 1, 40, 1, \
              1024, 'scan', 0, 'AU'), \
             ('old-1', 1, 1, 1, toDateTime(1763700000), 0, 6, \
              toFixedString(IPv6StringToNum('::ffff:1.0.0.2'), 16), \
              toFixedString(IPv6StringToNum('::ffff:198.18.1.1'), 16), 4000, 80, 2, 54, 1, 40, 1, \
              1024, 'scan', 0, 'AU')"
        ))
        .unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let aggregator = |db: &str, cmd: &str| {
        let (config, _) = write_config(dir.path(), &ch.url(), db, "");
        let mut child = std::process::Command::new(teiten::bin("teiten-aggregator"))
            .arg("--config")
            .arg(&config)
            .arg(cmd)
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("`teiten-aggregator {cmd}` on {db} still running after 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // As created by the previous release: migrated, then as defined, with its rows.
    create("h_prev");
    // Before migrating, it lacks what the steps add: the column and the renamed views.
    let before = schema_differences(&ch, "h_prev");
    assert!(
        before.contains(
            &"h_prev.scan_events: column withheld: UInt8 in the definition, missing on the \
              server (no migration step of this release adds it)"
                .to_owned()
        ),
        "{before:#?}"
    );
    assert!(
        before.contains(
            &"h_prev.scan_events: column src_asn: UInt32 in the definition, missing on the \
              server (no migration step of this release adds it)"
                .to_owned()
        ),
        "{before:#?}"
    );
    assert_eq!(before.len(), 11, "{before:#?}");
    // The renamed views, and the network rollup, its view and as_names (new since).
    let new_since = ["as_names", "scan_networks_1h", "scan_networks_1h_mv"]
        .map(|t| format!("h_prev.{t}: in the definition, missing on the server"));
    assert!(
        before[2..].iter().all(|d| new_since.contains(d)
            || d.ends_with("_published_mv: in the definition, missing on the server")),
        "{before:#?}"
    );
    assert!(new_since.iter().all(|d| before.contains(d)), "{before:#?}");
    let (ok, out, err) = aggregator("h_prev", "migrate");
    assert!(ok, "{out}\n{err}");
    assert!(out.starts_with("17 step(s) applied"), "{out}");
    assert_eq!(schema_differences(&ch, "h_prev"), Vec::<String>::new());
    assert_eq!(scalar(&ch, "SELECT count() FROM h_prev.scan_events"), 2);
    assert_eq!(
        scalar(&ch, "SELECT sum(packets) FROM h_prev.scan_ports_1d"),
        2
    );
    // A new database compares equal too.
    let (ok, out, err) = aggregator("h_new", "migrate");
    assert!(ok && out.starts_with("41 step(s) applied"), "{out}\n{err}");
    assert_eq!(schema_differences(&ch, "h_new"), Vec::<String>::new());

    // Changed by hand: a column's type, an extra column, another sort key.
    create("h_hand");
    let sql = |q: &str| {
        ch.query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    };
    // (the change, what changes it back)
    let by_hand = [
        (
            "ALTER TABLE h_hand.scan_ports_5m MODIFY COLUMN packets UInt32",
            "ALTER TABLE h_hand.scan_ports_5m MODIFY COLUMN packets UInt64",
        ),
        (
            "ALTER TABLE h_hand.sensors ADD COLUMN note String",
            "ALTER TABLE h_hand.sensors DROP COLUMN note",
        ),
    ];
    for (change, _) in by_hand {
        sql(change);
    }
    let ports_1d = legacy
        .iter()
        .find(|q| q.contains(" teiten_v0.scan_ports_1d ("))
        .unwrap()
        .replace("teiten_v0.scan_ports_1d (", "h_hand.scan_ports_1d_new (")
        .replace(
            "ORDER BY (bucket, sensor_id, proto, dport)",
            "ORDER BY (bucket, dport)",
        );
    assert!(ports_1d.contains("ORDER BY (bucket, dport)"), "{ports_1d}");
    sql(&ports_1d);
    sql("INSERT INTO h_hand.scan_ports_1d_new SELECT * FROM h_hand.scan_ports_1d");
    sql(
        "RENAME TABLE h_hand.scan_ports_1d TO h_hand.scan_ports_1d_old, \
         h_hand.scan_ports_1d_new TO h_hand.scan_ports_1d",
    );
    let tables_before = ch
        .query("SELECT name, engine FROM system.tables WHERE database = 'h_hand' ORDER BY name")
        .unwrap();
    let expected = [
        "h_hand.sensors: column note: not in the definition, String on the server",
        "h_hand.scan_ports_5m: column packets: UInt64 in the definition, UInt32 on the server",
        "h_hand.scan_ports_1d: sort key: (bucket, sensor_id, proto, dport) in the definition, \
         (bucket, dport) on the server",
    ];
    for cmd in ["migrate", "serve"] {
        let (ok, out, err) = aggregator("h_hand", cmd);
        assert!(
            !ok,
            "{cmd} started on a hand-changed database:\n{out}\n{err}"
        );
        assert!(
            err.contains("ClickHouse database h_hand differs from this release's schema")
                && err.contains("nothing was changed")
                && err.contains("If a table was changed by hand, change it back"),
            "{cmd}: {err}"
        );
        for e in expected {
            assert!(
                err.contains(&format!("  - {e}\n")),
                "{cmd}: no `{e}` in\n{err}"
            );
        }
        assert_eq!(
            err.matches("\n  - ").count(),
            expected.len(),
            "{cmd}: {err}"
        );
        assert!(!out.contains("step(s) applied"), "{out}");
    }
    // Nothing was dropped or changed: the old views, the old columns, the rows.
    assert_eq!(
        ch.query("SELECT name, engine FROM system.tables WHERE database = 'h_hand' ORDER BY name")
            .unwrap(),
        tables_before
    );
    assert!(tables_before.contains("scan_rollup_5m_mv\tMaterializedView"));
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM system.columns WHERE database = 'h_hand' \
             AND table = 'scan_events' AND name = 'withheld'"
        ),
        0
    );
    assert_eq!(scalar(&ch, "SELECT count() FROM h_hand.scan_events"), 2);
    assert_eq!(
        scalar(&ch, "SELECT sum(packets) FROM h_hand.scan_ports_1d"),
        2
    );
    assert_eq!(
        scalar(&ch, "SELECT sum(packets) FROM h_hand.scan_ports_5m"),
        2
    );
    // Changed back (the sort key taken again from the definition): it migrates.
    for (_, undo) in by_hand {
        sql(undo);
    }
    sql(
        "RENAME TABLE h_hand.scan_ports_1d TO h_hand.scan_ports_1d_hand, \
         h_hand.scan_ports_1d_old TO h_hand.scan_ports_1d",
    );
    let (ok, out, err) = aggregator("h_hand", "migrate");
    assert!(ok && out.starts_with("17 step(s) applied"), "{out}\n{err}");
    assert_eq!(schema_differences(&ch, "h_hand"), Vec::<String>::new());
}

#[test]
fn a_database_of_the_release_before_withheld_is_upgraded() {
    let ch = Server::start().expect("private ClickHouse starts");
    // The old schema, and rows stored by the old release (no withheld column).
    for sql in print_sql_section("legacy") {
        ch.query(&sql).unwrap_or_else(|e| panic!("{sql}\n{e}"));
    }
    let old_cols = "sensor_id, epoch, batch_seq, idx, ts, usec, proto, src, dst, sport, dport, \
                    tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country";
    ch.query(&format!(
        "INSERT INTO teiten_v0.scan_events ({old_cols}) VALUES \
         ('old-1', 1, 1, 0, toDateTime(1763700000), 0, 6, \
          toFixedString(IPv6StringToNum('::ffff:1.0.0.1'), 16), \
          toFixedString(IPv6StringToNum('::ffff:198.18.1.1'), 16), 4000, 23, 2, 54, 1, 40, 1, 1024, 'scan', 0, 'AU'), \
         ('old-1', 1, 1, 1, toDateTime(1763700000), 0, 6, \
          toFixedString(IPv6StringToNum('::ffff:10.0.0.1'), 16), \
          toFixedString(IPv6StringToNum('::ffff:198.18.1.1'), 16), 4000, 23, 2, 54, 1, 40, 1, 1024, 'scan', 8, '??')"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let migrate = |db: &str| {
        let (config, _) = write_config(dir.path(), &ch.url(), db, "");
        teiten::run_ok(teiten::configured("teiten-aggregator", &config).arg("migrate"))
    };
    let up = migrate("teiten_v0");
    assert!(up.starts_with("17 step(s) applied"), "{up}");
    assert!(
        up.contains("teiten_v0.scan_events.withheld (column added)"),
        "{up}"
    );
    // The network rollup, new since, is filled from the events the old release stored (after
    // their new columns were added; both read as published).
    assert_eq!(
        ch.query("SELECT countMerge(packets), uniqMerge(sources) FROM teiten_v0.scan_networks_1h")
            .unwrap()
            .trim(),
        "2\t2"
    );
    // Every view the schema replaced (the six that counted withheld sources) is dropped and
    // its successor created.
    let replaced: Vec<_> = teiten_store::schema::ROLLUPS
        .iter()
        .filter(|r| !r.replaces.is_empty())
        .collect();
    assert_eq!(replaced.len(), 6, "{replaced:?}");
    for r in replaced {
        let (view, new) = (r.replaces, r.view);
        assert!(
            up.contains(&format!("teiten_v0.{view} (dropped)")),
            "{view}: {up}"
        );
        assert_eq!(new, view.replace("_mv", "_published_mv"));
        assert!(up.contains(&format!("teiten_v0.{new}\n")), "{new}: {up}");
    }
    assert_eq!(migrate("teiten_v0").trim(), "0 step(s) applied");
    // The upgraded database has what a new one has.
    assert!(migrate("t_fresh").starts_with("41 step(s) applied"));
    for (what, sql) in [
        (
            "tables and views",
            "SELECT name, engine FROM system.tables WHERE database = '{db}' ORDER BY name",
        ),
        ("columns", "DESCRIBE TABLE {db}.scan_events"),
    ] {
        let of = |db: &str| {
            let sql = sql.replace("{db}", db);
            ch.query(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        assert_eq!(of("teiten_v0"), of("t_fresh"), "{what}");
    }
    assert_eq!(
        scalar(
            &ch,
            "SELECT countIf(withheld = 0) FROM teiten_v0.scan_events"
        ),
        2,
        "rows stored before the upgrade read as published"
    );

    // New events go through the new views: only published sources are counted.
    let agg = Agg::start(&ch, "teiten_v0", "");
    let tok = agg.add_sensor("s1");
    let now = now_us();
    assert_eq!(
        post(&agg.url, &tok, &batch("s1", 1, 1, 70, now)).status,
        200
    );
    let since = now / 1_000_000 - 3600;
    let published = scalar(
        &ch,
        &format!(
            "SELECT uniqExactIf(src, withheld = 0) FROM teiten_v0.scan_events \
             WHERE ts >= toDateTime({since})"
        ),
    );
    let all = scalar(
        &ch,
        &format!(
            "SELECT uniqExact(src) FROM teiten_v0.scan_events WHERE ts >= toDateTime({since})"
        ),
    );
    assert_eq!(
        (published, all),
        (60, 70),
        "2001:2::/48 sources are withheld"
    );
    for table in [
        "scan_port_sources_5m",
        "scan_rollup_5m",
        "scan_port_regions_5m",
    ] {
        assert_eq!(
            scalar(
                &ch,
                &format!(
                    "SELECT uniqMerge(sources) FROM teiten_v0.{table} \
                     WHERE bucket >= toDateTime({since})"
                )
            ),
            published,
            "{table}"
        );
    }
    // HyperLogLog states: within 2 % of the exact count (60 with the withheld, 70 without).
    for table in ["scan_port_sources_1d", "scan_port_sensor_sources_1d"] {
        let hll = scalar(
            &ch,
            &format!(
                "SELECT uniqHLL12Merge(sources) FROM teiten_v0.{table} \
                     WHERE bucket >= toDateTime({})",
                since - 86_400
            ),
        );
        assert!((58..=62).contains(&hll), "{table}: {hll}");
    }
}

#[test]
fn batches_with_times_outside_the_window_are_refused_and_others_still_stored() {
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(&ch, "t_clock", "");
    let bad_sensor = agg.add_sensor("skewed");
    let bad_token = bad_sensor.clone();
    let good_sensor = agg.add_sensor("steady");
    let now = now_us();
    let day = 86_400_000_000i64;
    // A batch whose events spread over 150 days (150 partitions: an INSERT carrying it would
    // fail, and with it every other sensor's batch in the same INSERT), one sealed an hour in
    // the future, one with an event at the epoch.
    let mut spread = batch("skewed", 1, 1, 150, now);
    for (i, e) in spread.events.iter_mut().enumerate() {
        e.ts_us = now - i as i64 * day;
    }
    let mut future = batch("skewed", 1, 2, 10, now);
    future.sealed_us = now + 3_600_000_000;
    let mut epoch = batch("skewed", 1, 3, 10, now);
    epoch.events[4].ts_us = 0;
    let poisoned = [spread, future, epoch];
    let url = agg.url.clone();
    let bad = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut answers = Vec::new();
            for _ in 0..5 {
                for b in &poisoned {
                    answers.push(post(&url, &bad_sensor, b));
                }
            }
            answers
        }
    });
    let mut stored = 0u64;
    for seq in 1..=20 {
        let a = post(&url, &good_sensor, &batch("steady", 1, seq, 200, now_us()));
        assert_eq!(a.status, 200, "{a:?}");
        stored += 200;
    }
    let answers = bad.join().unwrap();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.status, 422, "{a:?}");
        assert!(a.body.contains(r#""error":"clock_skew""#), "{a:?}");
        let detail = match i % 3 {
            0 => "ingest.max_event_age_secs",
            1 => "ingest.max_clock_skew_secs",
            _ => "event 4's time 1970-01-01T00:00:00Z",
        };
        assert!(a.body.contains(detail), "{detail}: {a:?}");
        assert!(a.body.contains("check the sensor's clock"), "{a:?}");
    }
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM t_clock.scan_events WHERE sensor_id = 'steady'"
        ),
        stored
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM t_clock.scan_events WHERE sensor_id = 'skewed'"
        ),
        0
    );
    assert!(
        agg.metrics()
            .contains("teiten_aggregator_batches_rejected_total{reason=\"clock_skew\"} 15"),
        "{}",
        agg.metrics()
    );
    // A batch from a sensor's spool after a week-long outage is still taken.
    let week = batch("skewed", 1, 4, 10, now - 7 * day);
    let a = post(&url, &bad_token, &week);
    assert_eq!(a.status, 200, "{a:?}");
}
