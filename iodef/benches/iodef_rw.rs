//! Read and write generated scan-report documents, side by side with `xmllint --stream` on the
//! same bytes. 100 k EventData by default; set `IODEF_BENCH_1M=1` to add the 1 M-event file
//! (about 670 MB, written to a temporary file and read from disk).

use std::hint::black_box;
use std::io::{self, BufReader, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use iodef::{
    v2, validate, ReadOptions, StreamItem, StreamReader, StreamWriter, ValidateOptions,
    WriteOptions,
};

#[path = "../examples/common/mod.rs"]
mod common;

fn event(i: u64) -> v2::EventData {
    common::event(i).expect("time in range").event_data()
}

fn header() -> v2::Incident {
    common::incident().expect("header")
}

fn write_all<W: Write>(out: W, events: &[v2::EventData]) -> W {
    let mut w =
        StreamWriter::new(out, &v2::Document::default(), WriteOptions::default()).expect("start");
    w.begin_incident(&header()).expect("incident");
    for e in events {
        w.write_event_data(e).expect("event");
    }
    w.finish().expect("finish")
}

fn read_all<R: io::BufRead>(input: R) -> u64 {
    let mut r = StreamReader::new(input, &ReadOptions::strict()).expect("open");
    let mut n = 0;
    while let Some(item) = r.next_item().expect("item") {
        if let StreamItem::EventData(e) = item {
            n += u64::from(e.flow.len() as u8);
        }
    }
    n
}

fn xmllint_stream(path: &std::path::Path) -> Duration {
    let start = Instant::now();
    let st = Command::new("xmllint")
        .args(["--stream", "--noout"])
        .arg(path)
        .status()
        .expect("xmllint (libxml2-utils) is needed for the comparison");
    assert!(st.success());
    start.elapsed()
}

fn bench_size(c: &mut Criterion, n: u64) {
    let events: Vec<v2::EventData> = (0..n).map(event).collect();
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    let bytes = {
        let out = write_all(io::BufWriter::new(file.as_file_mut()), &events);
        drop(out);
        file.as_file().metadata().expect("metadata").len()
    };
    let in_memory = n <= 200_000;
    let doc = if in_memory {
        std::fs::read(file.path()).expect("read back")
    } else {
        Vec::new()
    };
    let label = if n >= 1_000_000 { "1M" } else { "100k" };
    let mut g = c.benchmark_group(format!("iodef_{label}"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(if n >= 1_000_000 { 60 } else { 15 }));
    g.throughput(Throughput::Bytes(bytes));

    g.bench_function(BenchmarkId::new("write_typed", label), |b| {
        b.iter(|| black_box(write_all(io::sink(), &events)))
    });
    if in_memory {
        g.bench_function(BenchmarkId::new("read_typed", label), |b| {
            b.iter(|| black_box(read_all(doc.as_slice())))
        });
        g.bench_function(BenchmarkId::new("validate", label), |b| {
            b.iter(|| black_box(validate(doc.as_slice(), &ValidateOptions::default())))
        });
    }
    g.bench_function(BenchmarkId::new("read_typed_file", label), |b| {
        b.iter(|| {
            let f = std::fs::File::open(file.path()).expect("open");
            black_box(read_all(BufReader::with_capacity(1 << 16, f)))
        })
    });
    g.bench_function(BenchmarkId::new("xmllint_stream", label), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| xmllint_stream(file.path())).sum())
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_size(c, 100_000);
    if std::env::var_os("IODEF_BENCH_1M").is_some() {
        bench_size(c, 1_000_000);
    }
}

criterion_group!(iodef_rw, benches);
criterion_main!(iodef_rw);
