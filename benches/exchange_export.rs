//! A partner's daily files for days of growing size, each format against `clickhouse-client`
//! reading the same rows, side by side in one run.
//!
//! For every size of `TEITEN_BENCH_EXPORT` (default `1000000,10000000` scan events) one day
//! is generated inside ClickHouse 18.16 (`INSERT ... SELECT FROM system.numbers`, from
//! `n / 100` distinct sources, as a darknet day has fewer sources than packets), then:
//! - **per packet**, each format (`iodef2`, `iodef1`, `intelmq`, `csv`) of a partner that
//!   receives only it: export wall time, events/s, MB/s, file size, the exporter's peak
//!   resident memory, and just before it `clickhouse-client` running exactly the statement the
//!   export runs (`teiten_store::queries::export_events`, values filled in) as TSV into
//!   /dev/null; the ratio is the export's rate over the client's (target: 50% or more);
//! - **aggregated** (`records = "aggregate"`), each format the same way, against the client
//!   reading the day's rows (the per-packet statement): target, less time than the client.
//!
//! `TEITEN_BENCH_EXPORT_AGGREGATE` (default none; `100000000` for the figure) adds
//! days measured aggregated only (a per-packet IODEF file of 100 M events is ~70 GB).
//!
//! Run: `cargo build --release -p teiten-aggregator && cargo bench --bench exchange_export`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use teiten::clickhouse::{scan_day_sql_from, Server};
use teiten::measure::{self, Measured};

const DAY: i64 = 86_400;
const FORMATS: [&str; 4] = ["iodef2", "iodef1", "intelmq", "csv"];

fn sizes(var: &str, default: &str) -> Vec<u64> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("sizes are numbers"))
        .collect()
}

fn partners() -> String {
    let mut s = String::new();
    for records in ["packet", "aggregate"] {
        for f in FORMATS {
            s.push_str(&format!(
                "[[exchange.partner]]\nid = \"{records}-{f}\"\ncountries = [\"all\"]\n\
                 formats = [\"{f}\"]\nrecords = \"{records}\"\n"
            ));
        }
    }
    s
}

/// The one file in a partner's outbox directory that is neither a manifest nor an index.
fn data_file(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("the partner's outbox")
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            !n.starts_with('.') && !n.ends_with(".json") && !n.ends_with(".asc")
        })
        .expect("the file was written")
}

struct Run<'a> {
    ch: &'a Server,
    agg: std::path::PathBuf,
    config: std::path::PathBuf,
    outbox: std::path::PathBuf,
}

impl Run<'_> {
    fn peer(&self, day: i64) -> Measured {
        let sql = teiten_store::queries::export_events("bench", day, day + DAY, None, true)
            .to_sql_literal()
            .expect("the statement is complete");
        measure::run(
            Command::new("clickhouse-client")
                .arg("--port")
                .arg(self.ch.tcp_port().to_string())
                .arg("--query")
                .arg(format!("{sql} FORMAT TSV")),
        )
    }

    /// Exports the partner's day; its cost, the file's size and the records written.
    fn export(&self, partner: &str, date: &str) -> (Measured, u64) {
        let m = measure::run(Command::new(&self.agg).arg("-c").arg(&self.config).args([
            "export",
            "--date",
            date,
            "--partner",
            partner,
        ]));
        let dir = self.outbox.join(partner);
        let file = data_file(&dir);
        let bytes = std::fs::metadata(&file).unwrap().len();
        std::fs::remove_dir_all(&dir).unwrap();
        (m, bytes)
    }
}

fn main() {
    let packet_sizes = sizes("TEITEN_BENCH_EXPORT", "1000000,10000000");
    let aggregate_only = sizes("TEITEN_BENCH_EXPORT_AGGREGATE", "");
    let ch = Server::start().expect("ClickHouse starts");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[clickhouse]\nurl = \"{}\"\ndatabase = \"bench\"\n[retention]\nraw_days = 3650\n\
             [exchange]\noutbox = \"{}/outbox\"\n{}",
            ch.url(),
            dir.path().display(),
            partners()
        ),
    )
    .unwrap();
    let run = Run {
        ch: &ch,
        agg: teiten::bin("teiten-aggregator"),
        config,
        outbox: dir.path().join("outbox"),
    };
    measure::run(
        Command::new(&run.agg)
            .arg("-c")
            .arg(&run.config)
            .arg("migrate"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut packet_rows = Vec::new();
    let mut aggregate_rows = Vec::new();
    let all: Vec<(u64, bool)> = packet_sizes
        .iter()
        .map(|&n| (n, true))
        .chain(aggregate_only.iter().map(|&n| (n, false)))
        .collect();
    for (i, &(n, per_packet)) in all.iter().enumerate() {
        let day = (now / DAY - 10 - i as i64) * DAY;
        let started = Instant::now();
        ch.query(&scan_day_sql_from(
            "bench.scan_events",
            "bench-1",
            day,
            n,
            (n / 100).max(1),
        ))
        .expect("generating rows");
        eprintln!("{n} rows generated in {:.1?}", started.elapsed());
        let date = teiten::run_ok(Command::new("date").args([
            "-u",
            "-d",
            &format!("@{day}"),
            "+%Y-%m-%d",
        ]))
        .trim()
        .to_owned();
        let records = ["aggregate"]
            .into_iter()
            .chain(per_packet.then_some("packet"));
        for records in records {
            for f in FORMATS {
                let peer = run.peer(day);
                let (m, bytes) = run.export(&format!("{records}-{f}"), &date);
                let secs = m.wall.as_secs_f64();
                let peer_secs = peer.wall.as_secs_f64();
                let row = format!(
                    "| {n} | {f} | {secs:.1} s | {:.0} | {:.0} | {:.0} | {:.0} MiB | {peer_secs:.1} s | {:.0}% |",
                    n as f64 / secs,
                    bytes as f64 / 1e6 / secs,
                    bytes as f64 / 1e6,
                    m.max_rss_kib as f64 / 1024.0,
                    100.0 * peer_secs / secs,
                );
                eprintln!("{records} {row}");
                if records == "packet" {
                    packet_rows.push(row);
                } else {
                    aggregate_rows.push(row);
                }
            }
        }
    }
    let head = "| events | format | export wall | events/s | MB/s | file MB | peak RSS | clickhouse-client TSV | export rate / client rate |\n\
                |---:|---|---:|---:|---:|---:|---:|---:|---:|";
    println!("Per packet:\n\n{head}");
    for r in packet_rows {
        println!("{r}");
    }
    println!("\nAggregated (one record per source, protocol and port):\n\n{head}");
    for r in aggregate_rows {
        println!("{r}");
    }
}
