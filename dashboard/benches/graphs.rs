//! Graph request latency over a large generated data set in a private ClickHouse 18.16.
//!
//! Loads `TEITEN_BENCH_EVENTS` events (default 100 M) over the last 30 days from 8 sensors with
//! `INSERT ... SELECT ... FROM numbers()` in chunks (the materialized views fill both rollups),
//! reports the load time, merges the parts and seals the port digests of the days that are over
//! (as a running aggregator would have), then times graph requests through the app
//! (`oneshot`, no socket) with the cache off (every request reaches ClickHouse and draws its
//! chart) and on, over the periods 1d, 1w, 1m, 3m and 1y. Prints p50, p95 and max per endpoint
//! and overall; fails if the uncached p95 of a chart is above `TEITEN_BENCH_P95_MS` (default
//! 100).
//!
//! Run: `cargo bench -p teiten-dashboard --bench graphs` (release build). With
//! `TEITEN_BENCH_KEEP=1` the server is left running with its data after the timings (its
//! directory and ports are printed), for working on queries with `clickhouse-client`.
//!
//! With `TEITEN_BENCH_SIZING=1` (what `scripts/sizing` runs) it times no graphs: after the load
//! it also merges the raw tables (`OPTIMIZE ... FINAL`: every table settled), then prints the
//! active parts of every table from `system.parts` (rows, bytes on disk, compressed and
//! uncompressed bytes) and the bytes on disk per event of the raw events, of all rollups and of
//! the digests. `TEITEN_BENCH_DAYS` (default 30) spreads the events over that many days.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use teiten::clickhouse::Server;
use teiten_dashboard::testdata::Synth;
use teiten_dashboard::{app, AppState, Config};
use teiten_store::schema::{create_sql, Layout, DERIVED_TABLES, RAW_TABLES, ROLLUP_TABLES};
use tower::ServiceExt;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let events = env_u64("TEITEN_BENCH_EVENTS", 100_000_000);
    let chunk = env_u64("TEITEN_BENCH_CHUNK", 10_000_000);
    let rounds = env_u64("TEITEN_BENCH_ROUNDS", 5);
    let limit_ms = env_u64("TEITEN_BENCH_P95_MS", 100) as f64;
    let days = env_u64("TEITEN_BENCH_DAYS", 30).max(1) as i64;
    let sizing = std::env::var_os("TEITEN_BENCH_SIZING").is_some();
    let db = "bench";

    let ch =
        Server::start().expect("private clickhouse-server (apt-get install clickhouse-server)");
    for sql in create_sql(db, &Layout::Single) {
        ch.query(&sql).expect("schema");
    }
    let now = teiten_dashboard::now();
    let synth = Synth {
        db: db.into(),
        sensors: (1..=8).map(|i| format!("sensor-{i}")).collect(),
        from: now - days * 86_400,
        to: now,
        events,
        sources: 2_000_000,
        seed: 42,
    };
    ch.query(&synth.sensors_sql()).unwrap();
    ch.query(&synth.reports_sql()).unwrap();
    let t0 = Instant::now();
    let mut done = 0;
    while done < events {
        let n = chunk.min(events - done);
        let t = Instant::now();
        ch.query(&synth.events_sql(done, n)).expect("insert");
        done += n;
        eprintln!(
            "loaded {done} / {events} events ({:.1} s for this chunk, {:.0} k events/s so far)",
            t.elapsed().as_secs_f64(),
            done as f64 / t0.elapsed().as_secs_f64() / 1000.0
        );
    }
    ch.query(&synth.surge_sql(8728, 2_000_000, 50_000, 20))
        .unwrap();
    let load = t0.elapsed();
    let rows = |t: &str| {
        ch.query(&format!("SELECT count() FROM {db}.{t}"))
            .unwrap()
            .trim()
            .to_owned()
    };
    println!(
        "load: {events} events in {:.1} s ({:.0} k events/s); rows: scan_events {}",
        load.as_secs_f64(),
        events as f64 / load.as_secs_f64() / 1000.0,
        rows("scan_events"),
    );
    // Merge as a server that has been running would have (one part per day partition).
    let t = Instant::now();
    for table in ROLLUP_TABLES {
        ch.query(&format!("OPTIMIZE TABLE {db}.{table} FINAL"))
            .expect("optimize");
    }
    println!("merge: {:.1} s", t.elapsed().as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Seal the port digests of the days that are over, as the aggregator does every few minutes.
    let t = Instant::now();
    let sealed = rt
        .block_on(teiten_store::digest::seal_due(
            &teiten_store::client_for(&Default::default(), &ch.url()),
            db,
            now * 1_000_000,
            60,
            teiten_store::digest::DIGEST_PORTS,
        ))
        .expect("sealing the port digests");
    for table in DERIVED_TABLES {
        ch.query(&format!("OPTIMIZE TABLE {db}.{table} FINAL"))
            .expect("optimize");
    }
    println!(
        "digests: {} days sealed in {:.1} s",
        sealed.len(),
        t.elapsed().as_secs_f64()
    );
    for table in ROLLUP_TABLES.iter().chain(DERIVED_TABLES) {
        println!("rows: {table} {}", rows(table));
    }
    if sizing {
        let t = Instant::now();
        for table in RAW_TABLES {
            ch.query(&format!("OPTIMIZE TABLE {db}.{table} FINAL"))
                .expect("optimize");
        }
        println!(
            "merge of the raw tables: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        print_sizes(&ch, db, events, days, load);
        keep(ch);
        return;
    }

    let mut failed = false;
    for ttl in [0u64, 60] {
        let toml = format!(
            "[clickhouse]\nurl = \"{}\"\ndatabase = \"{db}\"\n[cache]\nttl_secs = {ttl}\n\
             [trends]\nrefresh_secs = {ttl}\n\
             [groups]\nhalf = [\"sensor-1\", \"sensor-2\", \"sensor-3\", \"sensor-4\"]\n",
            ch.url()
        );
        let settings = Config::parse(&toml, "bench").unwrap().validate().unwrap();
        teiten_dashboard::chart::load_font(&settings.config.font).unwrap();
        let client = teiten_dashboard::client(&settings);
        let state = Arc::new(AppState::new(settings, client));
        // The analyst's view (every filter, full detail); the public one reads fewer buckets.
        let cookie = format!(
            "{}={}",
            teiten_dashboard::auth::SESSION_COOKIE,
            state.sessions.create("bench")
        );
        let router = app(state);
        let filters = [
            "",
            "&proto=tcp",
            "&proto=udp&mode=total",
            "&sensor=sensor-3",
            "&group=half&top=20",
        ];
        let endpoints = [
            "/chart/ports.png",
            "/chart/regions.png",
            "/chart/port-packets.png?port=23",
            "/chart/port-sources.png?port=445",
            "/chart/port-sources.png?port=23",
            "/api/v1/ports.json",
            "/api/v1/trends.json",
        ];
        let mut all = Vec::new();
        println!(
            "\n{}:",
            if ttl == 0 {
                "cache off (every request reads ClickHouse and draws)"
            } else {
                "cache on, repeated requests (hits)"
            }
        );
        println!(
            "{:<36} {:>6} {:>8} {:>8} {:>8}",
            "endpoint", "n", "p50 ms", "p95 ms", "max ms"
        );
        for e in endpoints {
            let mut times = Vec::new();
            for period in ["1d", "1w", "1m", "3m", "1y"] {
                for f in filters {
                    if e.contains("trends") && (period != "1d" || !f.is_empty()) {
                        continue;
                    }
                    let sep = if e.contains('?') { '&' } else { '?' };
                    let uri = if e.contains("trends") {
                        e.to_owned()
                    } else {
                        format!("{e}{sep}period={period}{f}")
                    };
                    for round in 0..rounds {
                        let t = Instant::now();
                        let res = rt.block_on(async {
                            let res = router
                                .clone()
                                .oneshot(
                                    Request::get(&uri)
                                        .header("cookie", &cookie)
                                        .body(Body::empty())
                                        .unwrap(),
                                )
                                .await
                                .unwrap();
                            let status = res.status();
                            let body = res.into_body().collect().await.unwrap().to_bytes();
                            (status, body.len())
                        });
                        // With the cache on, time the repeats (cache hits) only.
                        if ttl == 0 || round > 0 {
                            times.push(t.elapsed());
                        }
                        assert_eq!(res.0, 200, "{uri}");
                        assert!(res.1 > 100, "{uri}");
                    }
                }
            }
            times.sort();
            if times.is_empty() {
                continue;
            }
            println!(
                "{:<36} {:>6} {:>8} {:>8} {:>8}",
                e,
                times.len(),
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.95)),
                ms(*times.last().unwrap())
            );
            if ttl == 0
                && e.starts_with("/chart/")
                && percentile(&times, 0.95).as_secs_f64() * 1000.0 > limit_ms
            {
                failed = true;
            }
            all.extend(times);
        }
        all.sort();
        if all.is_empty() {
            continue;
        }
        println!(
            "{:<36} {:>6} {:>8} {:>8} {:>8}",
            "all",
            all.len(),
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.95)),
            ms(*all.last().unwrap())
        );
    }
    keep(ch);
    assert!(
        !failed,
        "an uncached chart's p95 is above {limit_ms} ms (TEITEN_BENCH_P95_MS)"
    );
}

/// With `TEITEN_BENCH_KEEP`, leaves the server running with its data.
fn keep(ch: Server) {
    if std::env::var_os("TEITEN_BENCH_KEEP").is_some() {
        println!(
            "kept: clickhouse-server in {} (HTTP {}, native port {}); kill it when done",
            ch.dir().display(),
            ch.url(),
            ch.tcp_port()
        );
        std::mem::forget(ch);
    }
}

/// Prints the active parts of every table of `db` (`system.parts`) and the bytes on disk per
/// event (per row of `scan_events`: the `events` loaded over `days` days and the surge) of the
/// raw events, the rollups and the digests; and the rate of the load (`load`: the time of the
/// INSERTs, every view included).
fn print_sizes(ch: &Server, db: &str, loaded: u64, days: i64, load: Duration) {
    let events: u64 = ch
        .query(&format!("SELECT count() FROM {db}.scan_events"))
        .expect("count")
        .trim()
        .parse()
        .expect("a count");
    let parts = ch
        .query(&format!(
            "SELECT table, count(), sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), \
             sum(data_uncompressed_bytes) FROM system.parts \
             WHERE database = '{db}' AND active GROUP BY table ORDER BY table"
        ))
        .expect("system.parts");
    println!(
        "\nsizes: {events} events ({loaded} over {days} days, {} a day, and the surge), \
         active parts:",
        loaded as i64 / days
    );
    println!(
        "{:<24} {:>6} {:>12} {:>14} {:>14} {:>14} {:>10}",
        "table", "parts", "rows", "bytes_on_disk", "compressed", "uncompressed", "B/event"
    );
    let mut groups = [
        ("raw events (scan_events)", 0u64),
        ("rollups", 0),
        ("digests", 0),
    ];
    for line in parts.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let n = |i: usize| f[i].parse::<u64>().expect("a number from system.parts");
        let (table, on_disk) = (f[0], n(3));
        println!(
            "{table:<24} {:>6} {:>12} {on_disk:>14} {:>14} {:>14} {:>10.2}",
            n(1),
            n(2),
            n(4),
            n(5),
            on_disk as f64 / events as f64
        );
        if table == "scan_events" {
            groups[0].1 += on_disk;
        } else if ROLLUP_TABLES.contains(&table) {
            groups[1].1 += on_disk;
        } else if DERIVED_TABLES.contains(&table) {
            groups[2].1 += on_disk;
        }
    }
    for (what, bytes) in groups {
        println!(
            "SIZING {what}: {bytes} bytes on disk, {:.2} bytes per event",
            bytes as f64 / events as f64
        );
    }
    println!(
        "SIZING rollups and digests together: {:.2} bytes per event",
        (groups[1].1 + groups[2].1) as f64 / events as f64
    );
    println!(
        "SIZING load: {events} events in {:.1} s, {:.0} events/s (INSERT ... SELECT into \
         scan_events and its views, on the cores this ran on)",
        load.as_secs_f64(),
        events as f64 / load.as_secs_f64()
    );
}
