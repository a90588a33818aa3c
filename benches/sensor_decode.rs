//! Decode + filter + classify throughput of the sensor's pipeline on one core, over frames
//! held in memory (the I/O-free part of `teiten-sensor --read`). `scripts/bench` runs the
//! same pipeline on a 1 M-packet pcap side by side with tshark and tcpdump.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use teiten::pcapgen::{frame, scan_mix};
use teiten_sensor::{LinkType, Monitored, Processor};

fn pipeline(c: &mut Criterion) {
    let frames: Vec<Vec<u8>> = (0..100_000).map(|i| frame(&scan_mix(i))).collect();
    let monitored = Monitored::new(&["198.18.1.0/24".parse().unwrap()]);
    let mut g = c.benchmark_group("sensor");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("decode_filter_classify_100k", |b| {
        b.iter_batched_ref(
            || Processor::new(LinkType::Ethernet, Some(monitored.clone())),
            |p| {
                let mut n = 0u64;
                for (i, f) in frames.iter().enumerate() {
                    if p.handle(i as i64, f).is_some() {
                        n += 1;
                    }
                }
                assert_eq!(n, frames.len() as u64);
                n
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("wire_encode_20k_events", |b| {
        let mut p = Processor::new(LinkType::Ethernet, None);
        let events: Vec<_> = frames[..20_000]
            .iter()
            .filter_map(|f| p.handle(0, f))
            .collect();
        let batch = teiten_wire::Batch {
            id: teiten_wire::BatchId {
                sensor_id: "bench".into(),
                epoch: 1,
                seq: 1,
            },
            sealed_us: 0,
            stats: Default::default(),
            events,
        };
        b.iter(|| teiten_wire::encode(&batch).len())
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
