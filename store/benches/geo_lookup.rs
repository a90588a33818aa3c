//! Cost of one source lookup (country and AS) per event, for each database the aggregator
//! can read: IPFire's location database (the default), tor-geoipdb, and a MaxMind pair when
//! `TEITEN_BENCH_MMDB` (country) and `TEITEN_BENCH_ASN_MMDB` are set. Two inputs of 100,000
//! events: every source different (random IPv4 across the routed space, the worst case and
//! what forged sources give), and darknet-like traffic (1,000 sources, 100 probes each, as
//! interleaved as several scanners' probes arrive). `<db>_batch` is [`GeoDb::origins`] over
//! the whole input, as the aggregator calls it per batch.
//!
//! Run: `cargo bench -p teiten-store --bench geo_lookup` (a database that is not installed is
//! skipped with a line on standard error).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use teiten_store::{GeoConfig, GeoDb};

const EVENTS: usize = 100_000;

/// A small deterministic generator (SplitMix64): the same addresses in every run.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_v4(state: &mut u64) -> IpAddr {
    // 1.0.0.0 - 223.255.255.255: unicast space, most of it routed.
    let x = splitmix(state) as u32;
    let first = 1 + (x >> 24) % 223;
    IpAddr::V4(Ipv4Addr::from((first << 24) | (x & 0x00ff_ffff)))
}

fn inputs() -> Vec<(&'static str, Vec<IpAddr>)> {
    let mut s = 7;
    let unique: Vec<IpAddr> = (0..EVENTS).map(|_| random_v4(&mut s)).collect();
    let scanners: Vec<IpAddr> = (0..1_000).map(|_| random_v4(&mut s)).collect();
    let repeated: Vec<IpAddr> = (0..EVENTS)
        .map(|_| scanners[(splitmix(&mut s) % 1_000) as usize])
        .collect();
    vec![("unique_sources", unique), ("1000_sources", repeated)]
}

fn databases() -> Vec<(&'static str, GeoDb)> {
    let mut out = Vec::new();
    let mut try_load = |name: &'static str, cfg: GeoConfig| match GeoDb::load(&cfg) {
        Ok(db) => out.push((name, db)),
        Err(e) => eprintln!("geo_lookup: {name} skipped: {e}"),
    };
    try_load(
        "location",
        GeoConfig::location(teiten_store::geo::DEFAULT_LOCATION_DB),
    );
    try_load(
        "tor",
        GeoConfig::tor("/usr/share/tor/geoip", "/usr/share/tor/geoip6"),
    );
    if let Ok(mmdb) = std::env::var("TEITEN_BENCH_MMDB") {
        try_load(
            "mmdb",
            GeoConfig {
                source: Some(teiten_store::GeoSource::Mmdb),
                mmdb: Some(mmdb.into()),
                asn_mmdb: std::env::var("TEITEN_BENCH_ASN_MMDB").ok().map(Into::into),
                ..GeoConfig::default()
            },
        );
    }
    out
}

fn bench(c: &mut Criterion) {
    let dbs = databases();
    let inputs = inputs();
    let mut g = c.benchmark_group("geo_origin");
    g.throughput(Throughput::Elements(EVENTS as u64));
    for (input, addrs) in &inputs {
        for (name, db) in &dbs {
            g.bench_with_input(BenchmarkId::new(*name, input), addrs, |b, addrs| {
                b.iter(|| {
                    let mut known = 0u32;
                    for a in addrs {
                        let o = db.origin(black_box(*a));
                        known += u32::from(o.country.is_some()) + u32::from(o.asn.is_some());
                    }
                    known
                })
            });
            g.bench_with_input(
                BenchmarkId::new(format!("{name}_batch"), input),
                addrs,
                |b, addrs| b.iter(|| db.origins(black_box(addrs.iter().copied())).len()),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
