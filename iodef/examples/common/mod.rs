//! The generated scan report of `examples/scanfile.rs` and `benches/iodef_rw.rs`: one
//! definition, so the example's figures and the benchmark's measure the same documents.

use iodef::{v2, DateTime, ScanEvent, ScanReport};

/// The `i`-th generated scan event: varied sources, ports, protocols and times. `None` only
/// when its time is out of range (never for `i` below 10^15).
pub(crate) fn event(i: u64) -> Option<ScanEvent> {
    let src = std::net::Ipv4Addr::from(
        0xC633_6400_u32 ^ ((i as u32).wrapping_mul(2_654_435_761) & 0x00FF_FFFF),
    );
    let t = DateTime::from_unix(1_700_000_000 + (i / 3) as i64, 0)?;
    let mut e = ScanEvent::tcp(
        src.into(),
        1024 + (i % 60_000) as u16,
        [22, 23, 80, 443, 445, 3389, 8080][(i % 7) as usize],
        t,
    );
    if i % 5 == 1 {
        e.protocol = 17;
    }
    Some(e)
}

/// The incident the generated events are written in.
pub(crate) fn incident() -> Option<v2::Incident> {
    let t = DateTime::from_unix(1_700_000_000, 0)?;
    let report = ScanReport::new("csirt.example.org", "2023-11-14-partner", t)
        .csirt_email("csirt@example.org")
        .tlp("amber")?;
    Some(report.incident())
}
