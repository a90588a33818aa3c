//! End to end: sensor batches (encoded exactly as the sensor's offline replay ships them) ->
//! the `teiten-aggregator` binary over HTTP -> ClickHouse 18.16, events/s sustained with
//! several sensors sending concurrently (each one batch at a time, as the sensor does), side by
//! side with `clickhouse-client` inserting the same rows (RowBinary, same columns, same table,
//! same materialized views) in the same run. The aggregator's resident memory is sampled
//! between iterations to show it stays flat.
//!
//! Run: `cargo build --release -p teiten-aggregator && cargo bench --bench aggregator_e2e`.
//! `TEITEN_BENCH_GEO=tor` reads tor-geoipdb (country only) instead of the default location
//! database, on both sides: the set-up of releases before the location database.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use teiten::clickhouse::{free_port, Server};
use teiten_store::sources::SourcePolicy;
use teiten_store::{address_bytes, GeoConfig, GeoDb};
use teiten_wire::{Batch, BatchId, Class, Event, SensorStats, Tags, CONTENT_TYPE, INGEST_PATH};

const SENSORS: usize = 4;
const BATCHES_PER_SENSOR: usize = 10;
const EVENTS_PER_BATCH: usize = 50_000;
const EVENTS_PER_ITER: u64 = (SENSORS * BATCHES_PER_SENSOR * EVENTS_PER_BATCH) as u64;

fn events(n: usize, salt: u64, ts_us: i64) -> Vec<Event> {
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let src = IpAddr::V4(((x >> 32) as u32 | 0x0100_0000).into());
            Event {
                ts_us: ts_us + i as i64 * 20,
                proto: if x.is_multiple_of(10) { 17 } else { 6 },
                src,
                dst: IpAddr::V4([198, 18, (x >> 8) as u8, x as u8].into()),
                sport: (x >> 16) as u16,
                dport: [22u16, 23, 80, 443, 445, 3389, 8080, 5555][(x % 8) as usize],
                tcp_flags: 2,
                ttl: 40 + (x % 60) as u8,
                ip_id: (x >> 40) as u32 & 0xffff,
                ip_len: 40,
                seq: (x >> 3) as u32,
                window: 1024,
                class: Class::Scan,
                tags: if x.is_multiple_of(3) {
                    Tags::ZMAP
                } else {
                    Tags::empty()
                },
            }
        })
        .collect()
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The columns [`row_binary`] writes, in order: checked against the table's at start, so a
/// new column fails the bench with a message instead of clickhouse-client's "Cannot read all
/// data" at some row.
const ROW_BINARY_COLUMNS: &str = "sensor_id, epoch, batch_seq, idx, ts, usec, proto, src, dst, \
     sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country, withheld, \
     src_asn";

/// The rows exactly as the aggregator writes them, in RowBinary, for clickhouse-client (its
/// config names no prefixes: `policy` is the same empty one).
fn row_binary(batch: &Batch, geo: &GeoDb, policy: &SourcePolicy, out: &mut Vec<u8>) {
    for (idx, e) in batch.events.iter().enumerate() {
        let s = batch.id.sensor_id.as_bytes();
        out.push(s.len() as u8);
        out.extend_from_slice(s);
        out.extend_from_slice(&batch.id.epoch.to_le_bytes());
        out.extend_from_slice(&batch.id.seq.to_le_bytes());
        out.extend_from_slice(&(idx as u32).to_le_bytes());
        out.extend_from_slice(&(e.ts_us.div_euclid(1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(e.ts_us.rem_euclid(1_000_000) as u32).to_le_bytes());
        out.push(e.proto);
        out.extend_from_slice(&address_bytes(e.src));
        out.extend_from_slice(&address_bytes(e.dst));
        out.extend_from_slice(&e.sport.to_le_bytes());
        out.extend_from_slice(&e.dport.to_le_bytes());
        out.extend_from_slice(&e.tcp_flags.to_le_bytes());
        out.push(e.ttl);
        out.extend_from_slice(&e.ip_id.to_le_bytes());
        out.extend_from_slice(&e.ip_len.to_le_bytes());
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.window.to_le_bytes());
        out.push(e.class as u8);
        out.push(e.tags.bits());
        let o = geo.origin(e.src);
        out.extend_from_slice(&o.country.unwrap_or(teiten_store::UNKNOWN_COUNTRY));
        out.push(policy.of_event(e) as u8);
        out.extend_from_slice(&o.asn.unwrap_or(0).to_le_bytes());
    }
}

struct Agg {
    child: std::process::Child,
    url: String,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Agg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `TEITEN_BENCH_GEO=tor` asks for tor-geoipdb instead of the location database.
fn bench_geo_is_tor() -> bool {
    std::env::var("TEITEN_BENCH_GEO").is_ok_and(|v| v == "tor")
}

fn start_aggregator(ch: &Server) -> Agg {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"bench\"\n\
             [ingest]\nmax_pending_events = 4000000\n[insert]\nmax_rows = 1000000\nperiod_ms = 1000\n\
             [registry]\nrefresh_secs = 1\n{}",
            ch.url(),
            if bench_geo_is_tor() {
                "[geo]\nsource = \"tor\"\n"
            } else {
                ""
            }
        ),
    )
    .unwrap();
    let child = Command::new(teiten::bin("teiten-aggregator"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("TEITEN_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("teiten-aggregator starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        assert!(Instant::now() < deadline, "aggregator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Agg {
        child,
        url,
        config,
        _dir: dir,
    }
}

fn add_sensor(agg: &Agg, id: &str) -> String {
    let out = teiten::run_ok(
        Command::new(teiten::bin("teiten-aggregator"))
            .arg("--config")
            .arg(&agg.config)
            .args(["sensor", "add", id]),
    );
    out.lines()
        .find(|l| l.starts_with("tt_"))
        .unwrap()
        .to_owned()
}

fn bench(c: &mut Criterion) {
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = start_aggregator(&ch);
    let tokens: Vec<(String, String)> = (0..SENSORS)
        .map(|i| {
            let id = format!("bench-{i}");
            let t = add_sensor(&agg, &id);
            (id, t)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // The aggregator's default database (IPFire's location database).
    let geo_config = if bench_geo_is_tor() {
        GeoConfig::tor("/usr/share/tor/geoip", "/usr/share/tor/geoip6")
    } else {
        GeoConfig::default()
    };
    let geo = GeoDb::load(&geo_config).expect("the geo database loads");
    let ts = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64)
        - 3_600_000_000;
    let epoch = AtomicU64::new(1);
    // The same input for both sides of one iteration number.
    let make = |epoch: u64| -> Vec<Vec<Batch>> {
        tokens
            .iter()
            .enumerate()
            .map(|(s, (id, _))| {
                (1..=BATCHES_PER_SENSOR as u64)
                    .map(|seq| Batch {
                        id: BatchId {
                            sensor_id: id.clone(),
                            epoch,
                            seq,
                        },
                        sealed_us: ts,
                        stats: SensorStats::default(),
                        events: events(EVENTS_PER_BATCH, epoch * 1000 + s as u64 * 100 + seq, ts),
                    })
                    .collect()
            })
            .collect()
    };
    let rss = Mutex::new(Vec::new());
    let totals = Mutex::new([(0u64, Duration::ZERO); 2]);

    // One iteration through the aggregator: `SENSORS` threads, each posting its batches one at
    // a time (retrying on 503) as the sensor does. Encoding happens before the clock starts.
    let via_aggregator = |e: u64| -> Duration {
        let bodies: Vec<Vec<Vec<u8>>> = make(e)
            .iter()
            .map(|bs| bs.iter().map(teiten_wire::encode).collect())
            .collect();
        let start = Instant::now();
        std::thread::scope(|s| {
            for (bodies, (_, tok)) in bodies.iter().zip(&tokens) {
                let url = format!("{}{INGEST_PATH}", agg.url);
                s.spawn(move || {
                    for body in bodies {
                        loop {
                            match ureq::post(&url)
                                .set("Authorization", &format!("Bearer {tok}"))
                                .set("Content-Type", CONTENT_TYPE)
                                .send_bytes(body)
                            {
                                Ok(_) => break,
                                Err(ureq::Error::Status(503, _)) => {
                                    std::thread::sleep(Duration::from_millis(20))
                                }
                                Err(e) => panic!("ingest failed: {e}"),
                            }
                        }
                    }
                });
            }
        });
        let d = start.elapsed();
        let mut t = totals.lock().unwrap();
        t[0].0 += EVENTS_PER_ITER;
        t[0].1 += d;
        rss.lock().unwrap().push(vm_rss_kib(agg.child.id()));
        d
    };
    // The same rows through clickhouse-client (RowBinary file prepared before the clock).
    let cols = teiten_store::events::column_names();
    let policy = SourcePolicy::new(&[], &[], &[]);
    assert_eq!(
        cols, ROW_BINARY_COLUMNS,
        "scan_events has other columns than row_binary writes: update row_binary"
    );
    let via_client = |e: u64| -> Duration {
        let mut data = Vec::with_capacity(EVENTS_PER_ITER as usize * 100);
        for bs in make(e) {
            for b in &bs {
                row_binary(b, &geo, &policy, &mut data);
            }
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().write_all(&data).unwrap();
        let start = Instant::now();
        let st = Command::new("clickhouse-client")
            .args([
                "--port",
                &ch.tcp_port().to_string(),
                "--query",
                &format!("INSERT INTO bench.scan_events ({cols}) FORMAT RowBinary"),
            ])
            .stdin(std::fs::File::open(file.path()).unwrap())
            .status()
            .expect("clickhouse-client runs (apt-get install clickhouse-client)");
        assert!(st.success());
        let d = start.elapsed();
        let mut t = totals.lock().unwrap();
        t[1].0 += EVENTS_PER_ITER;
        t[1].1 += d;
        d
    };

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(EVENTS_PER_ITER));
    g.bench_function("aggregator_http", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| via_aggregator(epoch.fetch_add(1, Ordering::Relaxed)))
                .sum()
        })
    });
    g.bench_function("clickhouse_client", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| via_client(epoch.fetch_add(1, Ordering::Relaxed)))
                .sum()
        })
    });
    g.finish();

    // The machine is shared: compare the two in alternation too, so both see the same load.
    let mut alt = [Duration::ZERO; 2];
    for _ in 0..5 {
        alt[0] += via_aggregator(epoch.fetch_add(1, Ordering::Relaxed));
        alt[1] += via_client(epoch.fetch_add(1, Ordering::Relaxed));
    }
    let per_s = |d: Duration| 5.0 * EVENTS_PER_ITER as f64 / d.as_secs_f64();
    println!(
        "\nSUMMARY alternating x5: aggregator {:.0} events/s, clickhouse-client {:.0} events/s, ratio {:.0}%",
        per_s(alt[0]),
        per_s(alt[1]),
        100.0 * alt[1].as_secs_f64() / alt[0].as_secs_f64()
    );

    let t = totals.lock().unwrap();
    let rate = |(n, d): (u64, Duration)| n as f64 / d.as_secs_f64();
    let (a, cc) = (rate(t[0]), rate(t[1]));
    let rss = rss.lock().unwrap();
    let stored: u64 = ch
        .query("SELECT count() FROM bench.scan_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    println!(
        "SUMMARY all runs: aggregator {:.0} events/s over {} events; clickhouse-client: {:.0} events/s over {} events; ratio {:.0}%",
        a,
        t[0].0,
        cc,
        t[1].0,
        100.0 * a / cc
    );
    println!(
        "SUMMARY aggregator RSS (MiB) per iteration: first {:.0}, max {:.0}, last {:.0} ({} samples); rows stored {}",
        rss.first().copied().unwrap_or(0) as f64 / 1024.0,
        rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        rss.last().copied().unwrap_or(0) as f64 / 1024.0,
        rss.len(),
        stored
    );
    assert_eq!(stored, t[0].0 + t[1].0, "every event stored once");
}

criterion_group!(benches, bench);
criterion_main!(benches);
