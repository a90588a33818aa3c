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

use iodef::{v2, ReadOptions, StreamItem, StreamReader, StreamWriter, WriteOptions};

mod common;

/// An error for what the generator cannot build (out of range: never for the sizes used).
fn out_of_range(what: &str) -> io::Error {
    io::Error::other(format!("cannot generate {what}: out of range"))
}

fn write_doc<W: Write>(out: W, n: u64) -> io::Result<(W, u64)> {
    let incident = common::incident().ok_or_else(|| out_of_range("the incident"))?;
    let mut w = StreamWriter::new(out, &v2::Document::default(), WriteOptions::default())
        .map_err(io::Error::other)?;
    w.begin_incident(&incident).map_err(io::Error::other)?;
    for i in 0..n {
        let e = common::event(i).ok_or_else(|| out_of_range(&format!("event {i}")))?;
        w.write_event_data(&e.event_data())
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

/// `MB/s, events/s, peak RSS` of `bytes` and `events` in `secs` seconds.
fn rates(bytes: u64, events: u64, secs: f64) -> String {
    format!(
        "{:.0} MB/s, {:.0} events/s, peak RSS {} MiB",
        bytes as f64 / secs / 1e6,
        events as f64 / secs,
        peak_rss_kib() / 1024
    )
}

/// The file to read (the second argument, `/tmp/scan.xml` by default): its name, its size and
/// a buffered reader of it.
fn input(args: &[String]) -> io::Result<(String, u64, BufReader<File>)> {
    let path = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "/tmp/scan.xml".into());
    let bytes = std::fs::metadata(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?
        .len();
    let file = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    Ok((path, bytes, BufReader::with_capacity(1 << 16, file)))
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
                "write {n} events: {bytes} bytes in {s:.3} s: {}",
                rates(bytes, n, s)
            );
        }
        Some("read") => {
            let (path, bytes, input) = input(&args)?;
            let start = Instant::now();
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
                "read {path}: {events} events ({ports} port sum) {bytes} bytes in {s:.3} s: {}",
                rates(bytes, events, s)
            );
        }
        Some("bare") => {
            // Reference point: a bare quick-xml namespace-resolving event loop, no model.
            let (_, bytes, input) = input(&args)?;
            let start = Instant::now();
            let mut r = quick_xml::NsReader::from_reader(input);
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
