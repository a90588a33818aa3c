//! Generate, read or write scan-report documents and print throughput and peak memory
//! (used for the benchmark figures; see `benches/iodef_rw.rs`).
//!
//! ```text
//! cargo run --release -p teiten-iodef --example scanfile -- generate 100000 /tmp/scan-100k.xml
//! cargo run --release -p teiten-iodef --example scanfile -- read /tmp/scan-100k.xml
//! cargo run --release -p teiten-iodef --example scanfile -- write 100000
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::time::Instant;

use iodef::{
    v2, DateTime, ReadOptions, ScanEvent, ScanReport, StreamItem, StreamReader, StreamWriter,
    WriteOptions,
};

/// The `i`-th generated scan event: varied sources, ports, protocols and times.
fn event(i: u64) -> ScanEvent {
    let src = std::net::Ipv4Addr::from(
        0xC633_6400_u32 ^ ((i as u32).wrapping_mul(2_654_435_761) & 0x00FF_FFFF),
    );
    let t = DateTime::from_unix(1_700_000_000 + (i / 3) as i64, 0).unwrap_or_else(unreachable_time);
    let mut e = ScanEvent::tcp(
        src.into(),
        1024 + (i % 60_000) as u16,
        [22, 23, 80, 443, 445, 3389, 8080][(i % 7) as usize],
        t,
    );
    if i % 5 == 1 {
        e.protocol = 17;
    }
    e
}

fn unreachable_time() -> DateTime {
    DateTime::parse("2023-11-14T22:13:20Z").unwrap_or_else(|| std::process::exit(3))
}

fn write_doc<W: Write>(out: W, n: u64) -> io::Result<(W, u64)> {
    let t = DateTime::from_unix(1_700_000_000, 0).unwrap_or_else(unreachable_time);
    let report = ScanReport::new("csirt.example.org", "2023-11-14-partner", t)
        .csirt_email("csirt@example.org")
        .tlp("amber")
        .unwrap_or_else(|| std::process::exit(3));
    let mut w = StreamWriter::new(out, &v2::Document::default(), WriteOptions::default())
        .map_err(io::Error::other)?;
    w.begin_incident(&report.incident())
        .map_err(io::Error::other)?;
    for i in 0..n {
        w.write_event_data(&event(i).event_data())
            .map_err(io::Error::other)?;
    }
    w.end_incident().map_err(io::Error::other)?;
    let bytes = w.bytes_written();
    let out = w.finish().map_err(io::Error::other)?;
    Ok((out, bytes))
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            let path = args
                .get(3)
                .cloned()
                .unwrap_or_else(|| "/tmp/scan.xml".into());
            let start = Instant::now();
            let (mut f, bytes) =
                write_doc(BufWriter::with_capacity(1 << 20, File::create(&path)?), n)?;
            f.flush()?;
            let s = start.elapsed().as_secs_f64();
            println!("generate {n} events -> {path}: {bytes} bytes in {s:.2} s ({:.0} MB/s), peak RSS {} MiB", bytes as f64 / s / 1e6, peak_rss_kib() / 1024);
        }
        Some("write") => {
            let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            let start = Instant::now();
            let (_, bytes) = write_doc(io::sink(), n)?;
            let s = start.elapsed().as_secs_f64();
            println!(
                "write {n} events: {bytes} bytes in {s:.3} s: {:.0} MB/s, {:.0} events/s, peak RSS {} MiB",
                bytes as f64 / s / 1e6,
                n as f64 / s,
                peak_rss_kib() / 1024
            );
        }
        Some("read") => {
            let path = args
                .get(2)
                .cloned()
                .unwrap_or_else(|| "/tmp/scan.xml".into());
            let bytes = std::fs::metadata(&path)?.len();
            let start = Instant::now();
            let input = BufReader::with_capacity(1 << 16, File::open(&path)?);
            let mut r =
                StreamReader::new(input, &ReadOptions::strict()).map_err(io::Error::other)?;
            let mut events = 0u64;
            let mut ports = 0u64;
            while let Some(item) = r.next_item().map_err(io::Error::other)? {
                if let StreamItem::EventData(e) = item {
                    events += 1;
                    ports += u64::from(e.flow[0].system[1].service[0].port.unwrap_or(0));
                }
            }
            let s = start.elapsed().as_secs_f64();
            println!(
                "read {path}: {events} events ({ports} port sum) {bytes} bytes in {s:.3} s: {:.0} MB/s, {:.0} events/s, peak RSS {} MiB",
                bytes as f64 / s / 1e6,
                events as f64 / s,
                peak_rss_kib() / 1024
            );
        }
        Some("bare") => {
            // Reference point: a bare quick-xml namespace-resolving event loop, no model.
            let path = args
                .get(2)
                .cloned()
                .unwrap_or_else(|| "/tmp/scan.xml".into());
            let bytes = std::fs::metadata(&path)?.len();
            let start = Instant::now();
            let mut r = quick_xml::NsReader::from_reader(BufReader::with_capacity(
                1 << 16,
                File::open(&path)?,
            ));
            let mut buf = Vec::new();
            let mut starts = 0u64;
            loop {
                match r.read_resolved_event_into(&mut buf) {
                    Ok((_, quick_xml::events::Event::Start(_))) => starts += 1,
                    Ok((_, quick_xml::events::Event::Eof)) => break,
                    Ok(_) => {}
                    Err(e) => return Err(io::Error::other(e)),
                }
                buf.clear();
            }
            let s = start.elapsed().as_secs_f64();
            println!(
                "bare quick-xml loop: {starts} start tags, {bytes} bytes in {s:.3} s: {:.0} MB/s",
                bytes as f64 / s / 1e6
            );
        }
        _ => {
            eprintln!("usage: scanfile generate N FILE | write N | read FILE | bare FILE");
            std::process::exit(2);
        }
    }
    Ok(())
}
