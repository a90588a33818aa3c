//! The daily IODEF export of one partner for days of growing size (default 1 M, 3 M and 10 M
//! scan events; `TEITEN_BENCH_EXPORT=1000000,3000000` to choose): wall time, events/s, MB/s of
//! XML and the exporter's peak resident memory (flat: it streams), side by side with
//! `clickhouse-client` reading the same rows in the same order as TSV (the floor: what reading
//! the day costs without writing any IODEF).
//!
//! Rows are generated inside ClickHouse 18.16 (`INSERT ... SELECT FROM system.numbers`), one
//! day per size. Run: `cargo build --release -p teiten-aggregator && cargo bench --bench
//! exchange_export`.

use std::process::Command;
use std::time::Instant;

use teiten::clickhouse::{scan_day_sql, Server};
use teiten::measure;

const DAY: i64 = 86_400;

fn main() {
    let sizes: Vec<u64> = std::env::var("TEITEN_BENCH_EXPORT")
        .unwrap_or_else(|_| "1000000,3000000,10000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes are numbers"))
        .collect();
    let ch = Server::start().expect("ClickHouse starts");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[clickhouse]\nurl = \"{}\"\ndatabase = \"bench\"\n[retention]\nraw_days = 3650\n\
             [exchange]\noutbox = \"{}/outbox\"\n[[exchange.partner]]\nid = \"bench\"\n\
             countries = [\"all\"]\n",
            ch.url(),
            dir.path().display()
        ),
    )
    .unwrap();
    let agg = teiten::bin("teiten-aggregator");
    measure::run(Command::new(&agg).arg("-c").arg(&config).arg("migrate"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    println!(
        "| events | export wall | events/s | XML MB/s | file MB | peak RSS | clickhouse-client TSV | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, n) in sizes.iter().enumerate() {
        let day = (now / DAY - 10 - i as i64) * DAY;
        let started = Instant::now();
        ch.query(&scan_day_sql("bench.scan_events", "bench-1", day, *n))
            .expect("generating rows");
        eprintln!("{n} rows generated in {:.1?}", started.elapsed());
        let date = String::from_utf8(
            Command::new("date")
                .args(["-u", "-d", &format!("@{day}"), "+%Y-%m-%d"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let date = date.trim();
        let m = measure::run(Command::new(&agg).arg("-c").arg(&config).args([
            "export",
            "--date",
            date,
            "--partner",
            "bench",
        ]));
        let file = dir
            .path()
            .join(format!("outbox/bench/teiten-bench-{date}.xml"));
        let bytes = std::fs::metadata(&file)
            .expect("the file was written")
            .len();
        let peer = measure::run(
            Command::new("clickhouse-client")
                .arg("--port")
                .arg(ch.tcp_port().to_string())
                .arg("--query")
                .arg(format!(
                    "SELECT src, sport, dport, proto, toUInt32(ts) AS t, usec FROM bench.scan_events \
                     WHERE ts >= toDateTime({day}) AND ts < toDateTime({}) AND class = 'scan' \
                     ORDER BY src, t, usec, proto, sport, dport, sensor_id, epoch, batch_seq, idx \
                     FORMAT TSV",
                    day + DAY
                )),
        );
        let secs = m.wall.as_secs_f64();
        println!(
            "| {n} | {secs:.1} s | {:.0} | {:.0} | {:.0} | {:.0} MiB | {:.1} s | {:.1}x |",
            *n as f64 / secs,
            bytes as f64 / 1e6 / secs,
            bytes as f64 / 1e6,
            m.max_rss_kib as f64 / 1024.0,
            peer.wall.as_secs_f64(),
            secs / peer.wall.as_secs_f64()
        );
        let _ = std::fs::remove_file(&file);
    }
}
