//! Replication: a private ZooKeeper and two ClickHouse servers as the two replicas of one shard
//! of cluster `teiten` (`replicated = true`, `{shard}`/`{replica}` macros,
//! `internal_replication`), one aggregator beside each replica, and sensors failing over from
//! the first aggregator to the second as the real sensor does (`aggregator.urls` in order,
//! 503 with Retry-After kept and retried).
//!
//! - Migrations create every table and view on both replicas, as Replicated tables known to
//!   both, and a second run applies nothing.
//! - One replica is SIGKILLed mid-stream: ingest goes on through the other aggregator and
//!   replica; the killed replica restarts and catches up. Afterwards both replicas hold every
//!   event sent exactly once, raw and in every rollup (compared with direct counts over the
//!   raw events), and each aggregator, restarted with nothing in memory, recognises every
//!   batch as a duplicate from its own replica.
//! - ZooKeeper is stopped mid-stream: inserts are refused as transient (503 with Retry-After),
//!   the sensors keep their batches and retry, and when ZooKeeper is back every event arrives
//!   once.
//! - Old days (events of 1, 2, 5 and 70 days ago, through both aggregators): retention run
//!   once as production runs it drops through one replica the raw partitions of 5 and 70 days
//!   ago and the 70-day-old day or month partition of every rollup, and ZooKeeper drops them on
//!   the other; both replicas then hold the same partitions, the same rows in the raw tables,
//!   every rollup (by its keys, merged) and the digests, and a second run (through the other
//!   aggregator) drops nothing. The port digests sealed through the second aggregator are the
//!   same rows on both. The partner file of one day, exported through the first replica and
//!   then through the second alone (the first killed, a config naming only the second), is the
//!   same file byte for byte, with every event of the day that may be published.
//! - With `insert_quorum = 2` a batch is acknowledged once both replicas hold it, and while
//!   one is down inserts are refused as transient; the test prints events/s with and without
//!   the quorum (`TEITEN_QUORUM_BATCHES` batches of 5,000 events from four sensors at once;
//!   docs/clickhouse-cluster.md has the figures).

mod aggregator_common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use aggregator_common::*;
use teiten::clickhouse::Server;
use teiten::zookeeper::ZooKeeper;
use teiten_wire::Batch;

const DB: &str = "t_repl";
const SENSORS: usize = 3;
const EVENTS: usize = 1000;

/// ZooKeeper, the two replicas and an aggregator on each.
struct Replicated {
    zk: ZooKeeper,
    replicas: Vec<Server>,
    aggs: Vec<Agg>,
}

fn start() -> Replicated {
    start_with(DB, "")
}

/// [`start`] with database `db` and more `[clickhouse]` keys.
fn start_with(db: &str, ch_keys: &str) -> Replicated {
    start_with_sections(db, ch_keys, |_| String::new())
}

/// The keys of `[clickhouse]` for cluster `teiten` over `nodes`, replicated, and `ch_keys`.
fn cluster_keys(nodes: &[String], ch_keys: &str) -> String {
    let nodes: Vec<String> = nodes.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        "cluster = \"teiten\"\nnodes = [{}]\nreplicated = true\n{ch_keys}",
        nodes.join(", ")
    )
}

/// [`start_with`], and more config sections for the aggregator beside replica `i`:
/// `sections(i)`.
fn start_with_sections(db: &str, ch_keys: &str, sections: impl Fn(usize) -> String) -> Replicated {
    let zk = ZooKeeper::start().expect("a private ZooKeeper starts");
    let replicas =
        Server::replicas("teiten", 2, &zk).expect("two private ClickHouse replicas start");
    let urls: Vec<String> = replicas.iter().map(Server::url).collect();
    let keys = cluster_keys(&urls, ch_keys);
    let aggs = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            // Short Retry-After so that the test's sensors come back quickly.
            let extra = format!("[ingest]\nretry_after_secs = 1\n{}", sections(i));
            Agg::start_url_with_clickhouse_keys(url, db, &keys, &extra)
        })
        .collect();
    Replicated { zk, replicas, aggs }
}

/// A sensor as the real one ships: its spool (batches not yet acknowledged, oldest first),
/// the aggregator URLs in order of preference.
struct Sensor {
    id: String,
    token: String,
    spool: VecDeque<Batch>,
    next_seq: u64,
    ts_us: i64,
}

/// What the sensors saw while shipping.
#[derive(Debug, Default)]
struct Shipping {
    stored: u64,
    duplicates: u64,
    /// 503 answers, and how many of them carried Retry-After.
    unavailable: u64,
    retry_after: u64,
    /// Transport errors (an aggregator not answering).
    unreachable: u64,
}

impl Sensor {
    /// Seals one more batch into the spool.
    fn seal(&mut self) {
        self.next_seq += 1;
        let ts = self.ts_us + self.next_seq as i64 * 1_000_000;
        self.spool
            .push_back(batch(&self.id, 91, self.next_seq, EVENTS, ts));
    }

    /// Ships the spool's oldest batches until it is empty or no aggregator takes one: each
    /// batch to the first aggregator, then to the next on a 503 or no answer. Returns whether
    /// the spool is empty.
    fn ship(&mut self, urls: &[&str], seen: &mut Shipping) -> bool {
        while let Some(b) = self.spool.front() {
            let mut acked = false;
            for url in urls {
                let r = post(url, &self.token, b);
                match r.status {
                    200 => {
                        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                        match v["status"].as_str() {
                            Some("stored") => {
                                assert_eq!(v["stored"], EVENTS as u64, "{r:?}");
                                seen.stored += 1;
                            }
                            Some("duplicate") => seen.duplicates += 1,
                            _ => panic!("unexpected answer {r:?}"),
                        }
                        acked = true;
                        break;
                    }
                    503 => {
                        seen.unavailable += 1;
                        if r.retry_after.is_some() {
                            seen.retry_after += 1;
                        }
                    }
                    0 => seen.unreachable += 1,
                    _ => panic!("batch refused for good: {r:?}"),
                }
            }
            if !acked {
                return false;
            }
            self.spool.pop_front();
        }
        true
    }
}

/// Registers `n` sensors `<prefix><i>` through `agg`'s CLI; returns their ids and tokens once
/// the aggregators' registries know them (one refresh for all).
fn add_sensors(agg: &Agg, prefix: &str, n: usize) -> Vec<(String, String)> {
    let added = (0..n)
        .map(|i| {
            let id = format!("{prefix}{i}");
            let (ok, out) = agg.cli(&["sensor", "add", &id]);
            assert!(ok, "sensor add failed: {out}");
            let token = out
                .lines()
                .find(|l| l.starts_with("tt_"))
                .unwrap_or_else(|| panic!("no token printed: {out}"))
                .to_owned();
            (id, token)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    added
}

fn sensors(agg: &Agg, prefix: &str) -> Vec<Sensor> {
    let ts_us = now_us() - 3_600_000_000;
    add_sensors(agg, prefix, SENSORS)
        .into_iter()
        .map(|(id, token)| Sensor {
            token,
            id,
            spool: VecDeque::new(),
            next_seq: 0,
            ts_us,
        })
        .collect()
}

/// Ships every spool until all are empty, retrying every 200 ms for at most `secs`.
fn drain(sensors: &mut [Sensor], urls: &[&str], seen: &mut Shipping, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut empty = true;
        for s in sensors.iter_mut() {
            empty &= s.ship(urls, seen);
        }
        if empty {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "spools not shipped within {secs} s: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to `secs` until `sql` answers `expected` on the server.
fn wait_for(ch: &Server, sql: &str, expected: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = ch.query(sql);
        if got.as_deref().is_ok_and(|g| g.trim() == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` on {} answered {got:?}, expected {expected}",
            ch.url()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until both replicas have fetched every part (an empty replication queue, the same
/// events and batch reports: an aggregator sends the reports a replica refused again later)
/// and are writable again.
fn wait_in_sync(r: &Replicated, events: u64) {
    for ch in &r.replicas {
        wait_for(
            ch,
            &format!("SELECT count() FROM {DB}.sensor_reports_local"),
            &(events / EVENTS as u64).to_string(),
            60,
        );
        wait_for(
            ch,
            &format!("SELECT count() FROM {DB}.scan_events_local"),
            &events.to_string(),
            60,
        );
        wait_for(
            ch,
            &format!(
                "SELECT sum(queue_size) + sum(is_readonly) FROM system.replicas \
                 WHERE database = '{DB}'"
            ),
            "0",
            60,
        );
    }
}

/// The aggregate columns of a rollup as merge expressions, and its key columns.
fn rollup_select(columns: &str) -> (Vec<String>, Vec<String>) {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    // Split at the commas outside parentheses.
    let (mut cols, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in columns.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                cols.push(columns[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    cols.push(columns[start..].trim());
    for col in cols {
        let (name, ty) = col.split_once(' ').unwrap();
        if let Some(args) = ty.strip_prefix("AggregateFunction(") {
            let f = args.split([',', ')']).next().unwrap();
            values.push(format!("{f}Merge({name})"));
        } else if name == "packets" {
            values.push(format!("sum({name})"));
        } else {
            keys.push(name.to_owned());
        }
    }
    (keys, values)
}

/// What a replica holds, as text to compare with the other replica: the raw events per batch,
/// every rollup by its keys, the batch reports. Also checks that every event of `batches`
/// batches is there exactly once and that each rollup's packets equal a direct count of the
/// raw events.
fn holdings(ch: &Server, batches: u64) -> String {
    let q = |sql: String| {
        ch.query(&sql)
            .unwrap_or_else(|e| panic!("{}: {e}", ch.url()))
    };
    let raw = format!("{DB}.scan_events_local");
    let events = batches * EVENTS as u64;
    assert_eq!(
        q(format!(
            "SELECT count(), uniqExact(sensor_id, epoch, batch_seq, idx), \
             uniqExact(sensor_id, epoch, batch_seq) FROM {raw}"
        )),
        format!("{events}\t{events}\t{batches}\n"),
        "{}: every event once",
        ch.url()
    );
    let mut out = q(format!(
        "SELECT sensor_id, epoch, batch_seq, count(), min(idx), max(idx) FROM {raw} \
         GROUP BY sensor_id, epoch, batch_seq ORDER BY sensor_id, epoch, batch_seq"
    ));
    out += &rollups(ch);
    for (table, packets) in rollup_packets(ch) {
        assert_eq!(
            packets.to_string(),
            q(format!("SELECT count() FROM {raw}")).trim(),
            "{}: packets in {table} against the raw events",
            ch.url()
        );
    }
    // One rollup by its keys against the raw events directly.
    assert_eq!(
        q(format!(
            "SELECT toStartOfHour(bucket) AS h, proto, dport, country, sensor_id, \
             countMerge(packets) FROM {DB}.scan_rollup_1h_local \
             GROUP BY h, proto, dport, country, sensor_id ORDER BY h, proto, dport, country, sensor_id"
        )),
        q(format!(
            "SELECT toStartOfHour(ts) AS h, proto, dport, country, sensor_id, count() FROM {raw} \
             GROUP BY h, proto, dport, country, sensor_id ORDER BY h, proto, dport, country, sensor_id"
        )),
        "{}: scan_rollup_1h against the raw events",
        ch.url()
    );
    assert_eq!(
        q(format!(
            "SELECT count(), uniqExact(sensor_id, epoch, batch_seq) FROM {DB}.sensor_reports_local"
        )),
        format!("{batches}\t{batches}\n"),
        "{}: one report per batch",
        ch.url()
    );
    out += "-- sensor_reports\n";
    out += &q(format!(
        "SELECT sensor_id, epoch, batch_seq, events, count() FROM {DB}.sensor_reports_local \
         GROUP BY sensor_id, epoch, batch_seq, events ORDER BY sensor_id, epoch, batch_seq"
    ));
    out
}

/// Every rollup of a replica by its keys (the aggregates merged), as text to compare with the
/// other replica.
fn rollups(ch: &Server) -> String {
    let mut out = String::new();
    for r in teiten_store::schema::ROLLUPS {
        let (keys, values) = rollup_select(r.columns);
        let keys = keys.join(", ");
        out += &format!("-- {}\n", r.table);
        out += &ch
            .query(&format!(
                "SELECT {keys}, {} FROM {DB}.{}_local GROUP BY {keys} ORDER BY {keys}",
                values.join(", "),
                r.table
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", ch.url()));
    }
    out
}

/// The packets counted in each rollup that counts them, on one replica.
fn rollup_packets(ch: &Server) -> Vec<(&'static str, u64)> {
    teiten_store::schema::ROLLUPS
        .iter()
        .filter(|r| r.columns.contains("packets"))
        .map(|r| {
            let packets = if r.columns.contains("packets AggregateFunction") {
                "countMerge(packets)"
            } else {
                "sum(packets)"
            };
            let sql = format!("SELECT {packets} FROM {DB}.{}_local", r.table);
            (r.table, scalar(ch, &sql))
        })
        .collect()
}

/// Asserts that two replicas' [`holdings`] are the same, showing the lines that differ.
fn assert_same(first: &str, second: &str) {
    let a: Vec<&str> = first.lines().collect();
    let b: Vec<&str> = second.lines().collect();
    let differ: Vec<String> = (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .take(10)
        .map(|i| format!("line {i}: {:?} / {:?}", a.get(i), b.get(i)))
        .collect();
    assert!(
        differ.is_empty(),
        "the replicas differ:\n{}",
        differ.join("\n")
    );
}

/// Every batch sent again to each aggregator, restarted so that only ClickHouse (its own
/// replica) can recognise it: all duplicates.
fn resend_all(r: &mut Replicated, sensors: &[Sensor]) {
    for agg in r.aggs.iter_mut() {
        agg.kill();
        agg.restart();
        for s in sensors {
            for seq in 1..=s.next_seq {
                let b = batch(&s.id, 91, seq, EVENTS, s.ts_us + seq as i64 * 1_000_000);
                let a = post(&agg.url, &s.token, &b);
                assert_eq!(
                    a.body,
                    format!(r#"{{"seq":{seq},"status":"duplicate","stored":0}}"#),
                    "{} {}",
                    agg.url,
                    s.id
                );
            }
        }
    }
}

#[test]
fn a_replica_lost_mid_stream_loses_nothing_and_catches_up() {
    let mut r = start();
    // Migrations: every table and view on both replicas, the storage tables replicated and
    // known to both; a second run (and the second aggregator's) applies nothing.
    for agg in &r.aggs {
        let (ok, out) = agg.cli(&["migrate"]);
        assert!(ok && out.starts_with("0 step(s) applied"), "{out}");
    }
    for ch in &r.replicas {
        assert_eq!(
            scalar(
                ch,
                &format!("SELECT count() FROM system.tables WHERE database = '{DB}'")
            ),
            65,
            "{}: 25 local and 25 Distributed tables, 15 views",
            ch.url()
        );
        assert_eq!(
            ch.query(&format!(
                "SELECT count(), min(total_replicas), min(active_replicas), max(is_readonly) \
                 FROM system.replicas WHERE database = '{DB}'"
            ))
            .unwrap(),
            "25\t2\t2\t0\n",
            "{}: the storage tables are replicated on both",
            ch.url()
        );
    }

    let mut sensors = sensors(&r.aggs[0], "r");
    let urls = [r.aggs[0].url.clone(), r.aggs[1].url.clone()];
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut seen = Shipping::default();
    const ROUNDS: u64 = 12;
    for round in 1..=ROUNDS {
        if round == 4 {
            // The first aggregator's replica crashes.
            r.replicas[0].kill();
        }
        if round == 9 {
            r.replicas[0]
                .restart()
                .expect("the killed replica starts again");
        }
        for s in sensors.iter_mut() {
            s.seal();
        }
        drain(&mut sensors, &urls, &mut seen, 60);
        if round % 3 == 0 {
            // A lost acknowledgement: the last batch of each sensor comes again.
            for s in sensors.iter_mut() {
                s.next_seq -= 1;
                s.seal();
            }
            let before = seen.duplicates;
            drain(&mut sensors, &urls, &mut seen, 60);
            assert_eq!(seen.duplicates, before + SENSORS as u64, "{seen:?}");
        }
    }
    let batches = ROUNDS * SENSORS as u64;
    eprintln!("shipping with a replica lost: {seen:?}");
    assert_eq!(seen.stored, batches, "{seen:?}");
    assert!(
        seen.unavailable > 0 && seen.retry_after == seen.unavailable,
        "the first aggregator answered 503 with Retry-After while its replica was down: {seen:?}"
    );
    wait_in_sync(&r, batches * EVENTS as u64);
    let first = holdings(&r.replicas[0], batches);
    let second = holdings(&r.replicas[1], batches);
    assert_same(&first, &second);
    resend_all(&mut r, &sensors);
    assert_same(&holdings(&r.replicas[0], batches), &first);
}

#[test]
fn zookeeper_lost_mid_stream_is_transient_and_nothing_is_lost() {
    let mut r = start();
    let mut sensors = sensors(&r.aggs[0], "z");
    let urls = [r.aggs[0].url.clone(), r.aggs[1].url.clone()];
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut seen = Shipping::default();
    const ROUNDS: u64 = 10;
    let mut outage = Shipping::default();
    for round in 1..=ROUNDS {
        for s in sensors.iter_mut() {
            s.seal();
        }
        if round == 4 {
            r.zk.kill();
            // While ZooKeeper is away, the sensors keep sealing batches and retrying.
            let until = Instant::now() + Duration::from_secs(8);
            while Instant::now() < until {
                for s in sensors.iter_mut() {
                    s.ship(&urls, &mut outage);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            for s in sensors.iter_mut() {
                s.seal();
            }
            r.zk.restart().expect("ZooKeeper starts again");
        }
        drain(&mut sensors, &urls, &mut seen, 90);
    }
    let batches = (ROUNDS + 1) * SENSORS as u64;
    eprintln!("shipping while ZooKeeper was away: {outage:?}; the rest: {seen:?}");
    assert!(
        outage.unavailable > 0 && outage.retry_after == outage.unavailable,
        "inserts without ZooKeeper are refused as transient, with Retry-After: {outage:?}"
    );
    assert_eq!(
        outage.stored + seen.stored,
        batches,
        "every batch stored once: {outage:?} {seen:?}"
    );
    wait_in_sync(&r, batches * EVENTS as u64);
    let first = holdings(&r.replicas[0], batches);
    assert_same(&first, &holdings(&r.replicas[1], batches));
    resend_all(&mut r, &sensors);
}

/// Events/s through `agg`: `batches` batches of 5,000 events, from four sensors at once, each
/// retrying a 503 after 100 ms; and how many 503s there were.
fn ingest_rate(agg: &Agg, tokens: &[(String, String)], epoch: u64, batches: u64) -> (f64, u64) {
    const BIG: usize = 5000;
    let ts = now_us() - 3_600_000_000;
    let bodies: Vec<Vec<(String, Vec<u8>)>> = tokens
        .iter()
        .map(|(id, tok)| {
            (1..=batches.div_ceil(4))
                .map(|seq| {
                    let b = batch(id, epoch, seq, BIG, ts + seq as i64 * 1_000_000);
                    (tok.clone(), teiten_wire::encode(&b))
                })
                .collect()
        })
        .collect();
    let sent: u64 = bodies.iter().map(|b| b.len() as u64).sum();
    let t = Instant::now();
    let refused = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for sensor in &bodies {
            let (url, refused) = (agg.url.clone(), &refused);
            scope.spawn(move || {
                for (tok, body) in sensor {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let a = post_raw(&url, Some(tok), teiten_wire::CONTENT_TYPE, body);
                        if a.status == 200 {
                            break;
                        }
                        assert!(a.status == 503 && Instant::now() < deadline, "{a:?}");
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            });
        }
    });
    let rate = (sent * BIG as u64) as f64 / t.elapsed().as_secs_f64();
    (rate, refused.into_inner())
}

#[test]
fn insert_quorum_waits_for_both_replicas() {
    let batches: u64 = std::env::var("TEITEN_QUORUM_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut r = start_with("t_quorum", "insert_quorum = 2\n");
    // 18.16 takes one quorum INSERT per table at a time (a second one, before the first has
    // its quorum, is refused with UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE): the sensors retry.
    let urls = [r.replicas[0].url(), r.replicas[1].url()];
    let plain = Agg::start_url_with_clickhouse_keys(
        &urls[0],
        "t_noquorum",
        &format!(
            "cluster = \"teiten\"\nnodes = [\"{}\", \"{}\"]\nreplicated = true\n",
            urls[0], urls[1]
        ),
        "[ingest]\nretry_after_secs = 1\n",
    );
    // Alternating, twice each (a new epoch each round: new batches of the same sensors).
    let plain_sensors = add_sensors(&plain, "p", 4);
    let quorum_sensors = add_sensors(&r.aggs[0], "q", 4);
    let mut rates = (Vec::new(), Vec::new());
    for epoch in 1..=2 {
        rates
            .0
            .push(ingest_rate(&plain, &plain_sensors, epoch, batches));
        rates
            .1
            .push(ingest_rate(&r.aggs[0], &quorum_sensors, epoch, batches));
    }
    eprintln!(
        "ingest through one aggregator, {batches} batches of 5000 events from 4 sensors: \
         insert_quorum 0: {:?}; insert_quorum 2: {:?} (events/s, 503s retried)",
        rates
            .0
            .iter()
            .map(|x| (x.0 as u64, x.1))
            .collect::<Vec<_>>(),
        rates
            .1
            .iter()
            .map(|x| (x.0 as u64, x.1))
            .collect::<Vec<_>>()
    );
    // Acknowledged means on both replicas: counted on the second at once, without waiting.
    let stored = 2 * 4 * batches.div_ceil(4) * 5000;
    assert_eq!(
        scalar(
            &r.replicas[1],
            "SELECT count() FROM t_quorum.scan_events_local"
        ),
        stored
    );
    // One replica down: without a quorum ingest goes on, with it inserts are refused as
    // transient until the replica is back.
    // (Registering sensors migrates every node first: before the replica goes.)
    let mut sensors = sensors(&r.aggs[0], "k");
    r.replicas[1].kill();
    // Once its ZooKeeper session has expired, the other knows it is down.
    wait_for(
        &r.replicas[0],
        "SELECT min(active_replicas) FROM system.replicas WHERE database = 't_quorum'",
        "1",
        30,
    );
    for s in sensors.iter_mut() {
        s.seal();
    }
    let mut seen = Shipping::default();
    assert!(!sensors[0].ship(&[&r.aggs[0].url], &mut seen), "{seen:?}");
    assert!(
        seen.unavailable == 1 && seen.retry_after == 1,
        "a quorum insert with one replica is refused as transient: {seen:?}"
    );
    r.replicas[1].restart().expect("the replica starts again");
    drain(&mut sensors, &[&r.aggs[0].url], &mut seen, 60);
    assert_eq!(seen.stored, SENSORS as u64, "{seen:?}");
}

const DAY_US: i64 = 86_400_000_000;

/// The sections of the aggregator beside replica `i` for old days: raw events kept 3 days,
/// rollups 10 (the schedules run once at start, before any event, and not again during the
/// test), batches up to 100 days old let in, and the exchange with the partner `world` (every
/// country) and its own outbox `<dir>/outbox-<i>`, its scheduler off (the CLI exports).
fn old_days_sections(dir: &std::path::Path, i: usize) -> String {
    format!(
        "max_batch_age_days = 100\n\n\
         [retention]\nraw_days = 3\nrollup_days = 10\ninterval_secs = 86400\n\
         digest_interval_secs = 86400\n\n\
         [exchange]\ncsirt = \"csirt.teiten.test\"\noutbox = \"{}/outbox-{i}\"\nscheduler = false\n\n\
         [[exchange.partner]]\nid = \"world\"\ncountries = [\"all\"]\n",
        dir.display()
    )
}

/// Each replica's active partitions, table by table (as text, `table<TAB>partition` a line).
fn partitions(ch: &Server) -> String {
    ch.query(&format!(
        "SELECT DISTINCT table, partition FROM system.parts \
         WHERE database = '{DB}' AND active ORDER BY table, partition"
    ))
    .unwrap_or_else(|e| panic!("{}: {e}", ch.url()))
}

/// Rows per table on one replica: the raw events and batch reports, every rollup by its keys,
/// the digests as they read (FINAL), as text.
fn row_counts(ch: &Server) -> String {
    let mut out = String::new();
    for table in teiten_store::schema::RAW_TABLES {
        let n = scalar(ch, &format!("SELECT count() FROM {DB}.{table}_local"));
        out += &format!("{table} {n}\n");
    }
    for r in teiten_store::schema::ROLLUPS {
        let (keys, _) = rollup_select(r.columns);
        let n = scalar(
            ch,
            &format!(
                "SELECT count() FROM (SELECT {} FROM {DB}.{}_local GROUP BY {0})",
                keys.join(", "),
                r.table
            ),
        );
        out += &format!("{} {n}\n", r.table);
    }
    for table in teiten_store::schema::DERIVED_TABLES {
        let n = scalar(ch, &format!("SELECT count() FROM {DB}.{table}_local FINAL"));
        out += &format!("{table} {n}\n");
    }
    out
}

/// Waits until both replicas have an empty replication queue and the same active partitions.
fn wait_same_partitions(r: &Replicated) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let idle = r.replicas.iter().all(|ch| {
            ch.query(&format!(
                "SELECT sum(queue_size) FROM system.replicas WHERE database = '{DB}'"
            ))
            .is_ok_and(|q| q.trim() == "0")
        });
        let (first, second) = (partitions(&r.replicas[0]), partitions(&r.replicas[1]));
        if idle && first == second {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas' partitions differ after 60 s:\n{first}\n--\n{second}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to 60 s until `what` reads the same on both replicas (a replica fetches the parts
/// another took within moments), then asserts it.
fn wait_same(r: &Replicated, what: impl Fn(&Server) -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while what(&r.replicas[0]) != what(&r.replicas[1]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_same(&what(&r.replicas[0]), &what(&r.replicas[1]));
}

/// YYYYMMDD of a time (µs), as ClickHouse names day partitions.
fn day_number(ts_us: i64) -> String {
    teiten_store::time::day_number(ts_us.div_euclid(1_000_000)).to_string()
}

#[test]
fn retention_digests_and_the_daily_export_agree_on_both_replicas() {
    let work = tempfile::tempdir().unwrap();
    let mut r = start_with_sections(DB, "", |i| old_days_sections(work.path(), i));
    let (id, token) = add_sensors(&r.aggs[0], "d", 1).remove(0);
    // Two batches on each of four past UTC days, at 01:00 and 13:00, alternately through either
    // aggregator: 1 and 2 days ago (kept), 5 days ago (raw events expired, rollups kept) and 70
    // days ago (everything expired, month partitions too).
    let today = now_us().div_euclid(DAY_US) * DAY_US;
    let days_ago = [1i64, 2, 5, 70];
    let mut batches = 0u64;
    for d in days_ago {
        for hour in [1, 13] {
            batches += 1;
            let ts = today - d * DAY_US + hour * 3_600_000_000;
            let agg = &r.aggs[batches as usize % 2];
            let a = post_until_ok(&agg.url, &token, &batch(&id, 92, batches, EVENTS, ts));
            assert!(a.status == 200 && a.body.contains("stored"), "{a:?}");
        }
    }
    wait_in_sync(&r, batches * EVENTS as u64);
    assert_same(
        &holdings(&r.replicas[0], batches),
        &holdings(&r.replicas[1], batches),
    );

    // Retention once, as production runs it (every node listed; replicated: one replica of the
    // shard drops, ZooKeeper replicates the drop to the other): the raw partitions of 5 and 70
    // days ago, and the 70-day-old day or month partition of each rollup (no digests yet).
    let (ok, out) = r.aggs[0].cli(&["retention"]);
    assert!(ok, "{out}");
    let dropped = 2 + teiten_store::schema::ROLLUP_TABLES.len();
    assert!(
        out.starts_with(&format!("{dropped} partition(s) dropped")),
        "{out}"
    );
    wait_same_partitions(&r);
    let kept = partitions(&r.replicas[1]);
    let old = day_number(today - 70 * DAY_US);
    for (table, partition) in kept.lines().filter_map(|l| l.split_once('\t')) {
        assert!(
            !old.starts_with(partition),
            "{table} {partition} kept on the second replica:\n{kept}"
        );
    }
    let raw_days: Vec<&str> = kept
        .lines()
        .filter_map(|l| l.strip_prefix("scan_events_local\t"))
        .collect();
    assert_eq!(
        raw_days,
        [day_number(today - 2 * DAY_US), day_number(today - DAY_US)],
        "{kept}"
    );
    // The rollups of 1, 2 and 5 days ago, the same on both; both agree row for row.
    let kept_events = 6 * EVENTS as u64;
    for ch in &r.replicas {
        for (table, packets) in rollup_packets(ch) {
            assert_eq!(packets, kept_events, "{}: {table}", ch.url());
        }
        assert_eq!(
            scalar(ch, &format!("SELECT count() FROM {DB}.scan_events_local")),
            4 * EVENTS as u64,
            "{}",
            ch.url()
        );
    }
    assert_same(&rollups(&r.replicas[0]), &rollups(&r.replicas[1]));
    // A second run, through the other aggregator: nothing left to drop, on either replica.
    let (ok, out) = r.aggs[1].cli(&["retention"]);
    assert!(ok && out.starts_with("0 partition(s) dropped"), "{out}");

    // Port digests, sealed through the second aggregator (its replica): the three days over
    // within the rollups' retention, per sensor and over all sensors; the same rows on both.
    let (ok, out) = r.aggs[1].cli(&["seal-digests"]);
    assert!(
        ok && out.starts_with("port digests of 3 day(s) sealed"),
        "{out}"
    );
    wait_same_partitions(&r);
    let digests = |ch: &Server| {
        ch.query(&format!(
            "SELECT bucket, sensor_id, proto, sealed, total, rest_max, ports, packets \
             FROM {DB}.scan_port_digests_1d_local ORDER BY bucket, sensor_id, proto, sealed"
        ))
        .unwrap()
    };
    wait_same(&r, digests);
    // Per day, the sensor and all sensors (''), TCP and UDP.
    assert_eq!(digests(&r.replicas[0]).lines().count(), 3 * 2 * 2);
    assert_eq!(
        scalar(
            &r.replicas[0],
            &format!(
                "SELECT sum(total) FROM {DB}.scan_port_digests_1d_local FINAL \
                 WHERE sensor_id = ''"
            )
        ),
        kept_events
    );
    wait_same(&r, row_counts);

    // The rollups of yesterday rebuilt from the raw events, twice, once through either
    // aggregator: one replica of the shard rebuilds (ZooKeeper replicates the drops and the
    // inserts), and the second run's inserts, the same blocks as the first's, are not dropped as
    // duplicates. Every event is still counted once, on both replicas alike.
    let yesterday = day_number(today - DAY_US);
    for agg in &r.aggs {
        let (ok, out) = agg.cli(&["rebuild-rollups", &yesterday]);
        assert!(
            ok && out.contains(&format!("rollups of {yesterday} rebuilt")),
            "{out}"
        );
    }
    wait_same(&r, rollups);
    for ch in &r.replicas {
        for (table, packets) in rollup_packets(ch) {
            assert_eq!(
                packets,
                kept_events,
                "{} after the rebuild: {table}",
                ch.url()
            );
        }
    }
    wait_same(&r, row_counts);

    // The daily partner file of 2 days ago: once through the first aggregator's replica, once
    // through the second's alone (the first replica killed, a config naming only the second).
    let day = today - 2 * DAY_US;
    let date = teiten::run_ok(std::process::Command::new("date").args([
        "-u",
        "-d",
        &format!("@{}", day / 1_000_000),
        "+%Y-%m-%d",
    ]));
    let date = date.trim();
    let export = |config: &std::path::Path| {
        let (ok, out) = cli(config, &["export", "--date", date, "--partner", "world"]);
        assert!(ok, "{out}");
    };
    export(&r.aggs[0].config);
    r.replicas[0].kill();
    let alone_dir = work.path().join("alone");
    std::fs::create_dir_all(&alone_dir).unwrap();
    let (alone, _) = write_config_with(
        &alone_dir,
        &r.replicas[1].url(),
        DB,
        &cluster_keys(&[r.replicas[1].url()], ""),
        &format!("[ingest]\n{}", old_days_sections(work.path(), 1)),
    );
    export(&alone);
    let file = |i: usize| {
        let path = work
            .path()
            .join(format!("outbox-{i}/world/teiten-world-{date}.xml"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let (first, second) = (file(0), file(1));
    // Every event of the day but those whose source is in 2001:2::/48 (benchmarking, withheld
    // from partner files): every 7th of the test's batches.
    let published = 2 * (0..EVENTS).filter(|i| i % 7 != 6).count();
    let text = String::from_utf8_lossy(&first);
    assert_eq!(text.matches("</EventData>").count(), published);
    assert!(
        first == second,
        "the partner files differ: {} and {} bytes",
        first.len(),
        second.len()
    );
}
