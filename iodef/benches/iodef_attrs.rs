//! The reader's cost per attribute and per namespace declaration, at N and 10 N on one start
//! tag (caps lifted): linear time shows as the same time per item at both sizes (criterion's
//! `thrpt` in elements/s). Before the hash index these were quadratic: 1,000,000 attributes
//! did not finish in 2 minutes, 300,000 declarations took about a minute.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use iodef::{Document, Limits, ReadOptions};

const ROOT: &str = "<IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// `n` attributes `xsi:aK=""` on the root (each resolved through the `xsi` prefix).
fn attributes(n: usize) -> Vec<u8> {
    let mut x = format!("{ROOT} xmlns:xsi=\"{XSI}\"");
    for i in 0..n {
        x.push_str(&format!(" xsi:a{i}=\"\""));
    }
    x.push_str("><Incident purpose=\"reporting\"/></IODEF-Document>");
    x.into_bytes()
}

/// `n` namespace declarations `xmlns:pK` on the root, each used by one attribute `pK:a` of
/// the Incident.
fn namespaces(n: usize) -> Vec<u8> {
    let mut x = String::from(ROOT);
    for i in 0..n {
        x.push_str(&format!(" xmlns:p{i}=\"{XSI}\""));
    }
    x.push_str("><Incident purpose=\"reporting\"");
    for i in 0..n {
        x.push_str(&format!(" p{i}:a=\"\""));
    }
    x.push_str("/></IODEF-Document>");
    x.into_bytes()
}

fn read(doc: &[u8]) -> usize {
    let opts = ReadOptions {
        lenient: true,
        limits: Limits {
            max_attributes: u32::MAX,
            max_namespaces: u32::MAX,
            ..Limits::default()
        },
    };
    match Document::from_slice(doc, &opts) {
        Ok(l) => l.diagnostics.len(),
        Err(e) => panic!("{e}"),
    }
}

fn benches(c: &mut Criterion) {
    let n: usize = std::env::var("IODEF_ATTRS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for (name, build) in [
        ("attributes", attributes as fn(usize) -> Vec<u8>),
        ("namespaces", namespaces as fn(usize) -> Vec<u8>),
    ] {
        let mut g = c.benchmark_group(format!("iodef_{name}"));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(5));
        for k in [n, 10 * n] {
            let doc = build(k);
            g.throughput(Throughput::Elements(k as u64));
            g.bench_function(BenchmarkId::new(name, k), |b| {
                b.iter(|| black_box(read(black_box(&doc))))
            });
        }
        g.finish();
    }
}

criterion_group!(iodef_attrs, benches);
criterion_main!(iodef_attrs);
