//! Constant memory: stream a large generated document through the reader, the writer and the
//! validator, and measure the peak of live heap bytes with a counting allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use iodef::{
    v2, validate, DateTime, ReadOptions, ScanEvent, ScanReport, StreamItem, StreamReader,
    StreamWriter, ValidateOptions, WriteOptions,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A document generated on the fly: header, `n` EventData, footer. Never held in memory.
struct Generated {
    n: usize,
    i: usize,
    stage: u8,
    buf: Vec<u8>,
    pos: usize,
}

impl Generated {
    fn new(n: usize) -> Self {
        let head = r#"<?xml version="1.0" encoding="UTF-8"?>
<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="reporting"><IncidentID name="csirt.example">1</IncidentID>
<GenerationTime>2024-01-01T00:00:00Z</GenerationTime>
<Contact role="creator" type="organization"><ContactName>csirt.example</ContactName></Contact>
"#;
        Generated {
            n,
            i: 0,
            stage: 0,
            buf: head.as_bytes().to_vec(),
            pos: 0,
        }
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        if self.i < self.n {
            let i = self.i;
            self.buf.extend_from_slice(
                format!(
                    "<EventData><DetectTime>2024-01-01T{:02}:{:02}:{:02}Z</DetectTime><Flow>\
<System category=\"source\"><Node><Address category=\"ipv4-addr\">198.51.100.{}</Address></Node>\
<Service ip-protocol=\"6\"><Port>{}</Port></Service></System>\
<System category=\"target\"><Node><Address category=\"ipv4-net\">0.0.0.0/0</Address></Node>\
<Service ip-protocol=\"6\"><Port>{}</Port></Service></System></Flow></EventData>\n",
                    (i / 3600) % 24,
                    (i / 60) % 60,
                    i % 60,
                    i % 250 + 1,
                    1024 + i % 60000,
                    [22, 80, 443][i % 3]
                )
                .as_bytes(),
            );
            self.i += 1;
        } else if self.stage == 0 {
            self.buf
                .extend_from_slice(b"</Incident></IODEF-Document>\n");
            self.stage = 1;
        }
    }
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.buf.len() {
            self.refill();
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

const N: usize = 30_000;
const BUDGET: usize = 4 << 20;

fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

// One test function so the measurements do not overlap with other tests' allocations.
#[test]
fn streaming_memory_is_flat() {
    // Reader: about 25 MB of XML.
    let (count, peak) = measure(|| {
        let input = io::BufReader::with_capacity(1 << 16, Generated::new(N));
        let mut r = StreamReader::new(input, &ReadOptions::strict()).expect("open");
        let mut count = 0;
        while let Some(item) = r.next_item().expect("item") {
            if let StreamItem::EventData(_) = item {
                count += 1;
            }
        }
        count
    });
    assert_eq!(count, N);
    assert!(peak < BUDGET, "reader peak {peak} bytes");
    println!("reader: {N} events, peak heap {} KiB", peak / 1024);

    // Validator.
    let (report, peak) = measure(|| {
        let input = io::BufReader::with_capacity(1 << 16, Generated::new(N));
        validate(input, &ValidateOptions::default())
    });
    assert!(report.is_valid(), "{:?}", report.diagnostics.first());
    assert_eq!(report.event_data, N as u64);
    assert!(peak < BUDGET, "validator peak {peak} bytes");
    println!("validate: peak heap {} KiB", peak / 1024);

    // Writer into a sink.
    let (written, peak) = measure(|| {
        let t = DateTime::from_unix(1_700_000_000, 0).expect("time");
        let mut w = StreamWriter::new(
            io::sink(),
            &v2::Document::default(),
            WriteOptions::default(),
        )
        .expect("start");
        w.begin_incident(&ScanReport::new("csirt.example", "1", t.clone()).incident())
            .expect("incident");
        for i in 0..N {
            let e = ScanEvent::tcp(
                std::net::Ipv4Addr::from(0xC633_6400 + (i as u32 % 250)).into(),
                1024 + (i % 60000) as u16,
                22,
                t.clone(),
            );
            w.write_event_data(&e.event_data()).expect("event");
        }
        w.end_incident().expect("end");
        let written = w.bytes_written();
        w.finish().expect("finish");
        written
    });
    assert!(written > 10 << 20, "{written}");
    assert!(peak < BUDGET, "writer peak {peak} bytes");
    println!(
        "writer: {} MiB written, peak heap {} KiB",
        written >> 20,
        peak / 1024
    );

    // A billion-laughs document is refused before any expansion: bounded memory.
    let x = format!(
        "{}<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\">&lol9;</IODEF-Document>",
        common::billion_laughs_doctype("")
    );
    let (r, peak) = measure(|| iodef::Document::from_slice(x.as_bytes(), &ReadOptions::lenient()));
    assert!(matches!(r, Err(iodef::Error::Forbidden { .. })));
    assert!(peak < 256 << 10, "billion laughs peak {peak}");
}
