//! The top ports of long periods from the port digests (`store/src/digest.rs`), against a
//! real ClickHouse 18.16: every answer equals a direct count over the raw events, with the
//! digests sealed (20 ports each, so that ports are left out), with the daily rollups of sealed
//! days gone (so that only the digests can have answered), after `rebuild-rollups` of those days
//! (which deletes a day from the month partitions and seals it again), and with late events on a
//! sealed day, before and after the digest run seals it again.

mod common;

use common::{get, start, Env, DAY, DB};
use serde_json::Value;
use teiten_store::digest;

/// Ports per digest in this test: fewer than a day's ports, so that digests leave ports out.
const PORTS: u64 = 20;

fn now_us() -> i64 {
    teiten_dashboard::now() * 1_000_000
}

fn config(env: &Env) -> teiten_store::ClickHouseConfig {
    teiten_store::ClickHouseConfig {
        url: env.ch.url(),
        database: DB.into(),
        ..Default::default()
    }
}

async fn seal(env: &Env) -> Vec<u32> {
    let client = teiten_store::client(&config(env));
    digest::seal_due(&client, DB, now_us(), 60, PORTS)
        .await
        .expect("sealing the port digests")
}

fn scalar(env: &Env, sql: &str) -> u64 {
    let out = env.ch.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: {out}"))
}

/// The top `n` ports by a direct count over the raw events: (port, packets).
fn raw_top(env: &Env, from: i64, to: i64, extra: &str, n: usize) -> Vec<(String, u64)> {
    let out = env
        .ch
        .query(&format!(
            "SELECT dport, count() AS c FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
             AND ts < toDateTime({to}){extra} GROUP BY dport ORDER BY c DESC, dport LIMIT {n}"
        ))
        .unwrap();
    out.lines()
        .map(|l| {
            let (p, c) = l.split_once('\t').unwrap();
            (p.to_owned(), c.parse().unwrap())
        })
        .collect()
}

/// The ports graph's series as (port, total).
fn answer(g: &Value) -> Vec<(String, u64)> {
    g["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["total"].as_f64().unwrap() as u64,
            )
        })
        .collect()
}

/// Filters as (query string, the same as SQL over the raw events).
const FILTERS: [(&str, &str); 5] = [
    ("", ""),
    ("&proto=tcp", " AND proto = 6"),
    ("&proto=udp", " AND proto = 17"),
    ("&sensor=osaka-1", " AND sensor_id = 'osaka-1'"),
    ("&group=north", " AND sensor_id IN ('sapporo-1', 'osaka-1')"),
];

/// Requests every period of whole days with every filter and a few N (each phase its own N,
/// so that the dashboard's cache stays out of it) and compares each answer with the raw events.
async fn check_all(env: &Env, periods: &[&str], tops: &[usize]) -> usize {
    // The analyst's answers (every sensor filter; the public ones are in `graphs.rs`).
    let cookie = common::analyst_cookie(env);
    let mut checked = 0;
    for period in periods {
        for (f, extra) in FILTERS {
            for top in tops {
                let uri = format!("/api/v1/ports.json?period={period}&mode=total&top={top}{f}");
                let a = get(&env.app, &uri, Some(&cookie)).await;
                assert_eq!(a.status, 200, "{uri}: {}", a.text());
                let g = a.json();
                let (from, to) = (g["from"].as_i64().unwrap(), g["to"].as_i64().unwrap());
                assert_eq!(
                    answer(&g),
                    raw_top(env, from, to, extra, *top),
                    "{uri} against the raw events"
                );
                checked += 1;
            }
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_ports_from_digests_are_exact() {
    let env = start(400_000);
    let today = teiten_dashboard::now() / DAY * DAY;

    // Sealed: every day before today, per sensor and over all sensors, and ports left out.
    let sealed = seal(&env).await;
    assert!(sealed.len() >= 30, "{sealed:?}");
    assert!(seal(&env).await.is_empty(), "nothing is due right after");
    assert_eq!(
        scalar(
            &env,
            &format!("SELECT count() FROM {DB}.scan_port_digests_1d WHERE sensor_id = ''")
        ),
        scalar(
            &env,
            &format!(
                "SELECT uniqExact(bucket, proto) FROM {DB}.scan_port_totals_1d \
                 WHERE bucket < toDateTime({today})"
            )
        )
    );
    assert!(
        scalar(
            &env,
            &format!("SELECT max(rest_max) FROM {DB}.scan_port_digests_1d")
        ) > 0,
        "some digests leave ports out"
    );
    assert_eq!(check_all(&env, &["1w", "1m", "3m"], &[1, 5, 10]).await, 45);

    // Without the daily rollups of three sealed days only the digests know those days (the
    // hourly series still do): the answers stay exact.
    let days: Vec<u32> = sealed[10..13].to_vec();
    for day in &days {
        for table in ["scan_ports_1d", "scan_port_totals_1d"] {
            env.ch
                .query(&format!("ALTER TABLE {DB}.{table} DROP PARTITION {day}"))
                .unwrap();
        }
    }
    check_all(&env, &["1m"], &[2, 6]).await;

    // rebuild-rollups puts them back from the raw events (deleting the day from the month
    // partitions first) and seals the day again.
    for day in &days {
        teiten_store::rebuild_rollups_all(&config(&env), *day)
            .await
            .expect("rebuild");
        for (table, sum) in [
            ("scan_ports_1d", "sum(packets)"),
            ("scan_ports_1h", "sum(packets)"),
            ("scan_sensor_totals_1d", "sum(packets)"),
        ] {
            assert_eq!(
                scalar(
                    &env,
                    &format!("SELECT {sum} FROM {DB}.{table} WHERE toYYYYMMDD(bucket) = {day}")
                ),
                scalar(
                    &env,
                    &format!("SELECT count() FROM {DB}.scan_events WHERE toYYYYMMDD(ts) = {day}")
                ),
                "{table} of {day} after the rebuild"
            );
        }
    }
    assert!(seal(&env).await.is_empty(), "the rebuild sealed its days");
    check_all(&env, &["1m"], &[3, 7]).await;

    // Late events on a sealed day (a sensor's spool arriving days later), more than any port
    // had: the answer counts them before the day is sealed again, and after.
    let late_day = today - 5 * DAY;
    let late = teiten_dashboard::testdata::Synth {
        to: late_day + 12 * 3600,
        ..env.synth.clone()
    };
    let top = raw_top(&env, today - 30 * DAY, today, "", 1)[0].1;
    env.ch
        .query(&late.surge_sql(31337, top + 5_000, 100, 1))
        .unwrap();
    let g = get(
        &env.app,
        "/api/v1/ports.json?period=1m&mode=total&top=9",
        Some(&common::analyst_cookie(&env)),
    )
    .await
    .json();
    assert_eq!(g["series"][0]["name"], "31337", "{g}");
    let (from, to) = (g["from"].as_i64().unwrap(), g["to"].as_i64().unwrap());
    assert_eq!(answer(&g), raw_top(&env, from, to, "", 9));
    let resealed = seal(&env).await;
    assert_eq!(resealed.len(), 1, "only the late day is due: {resealed:?}");
    check_all(&env, &["1w", "1m"], &[4, 8]).await;
}
