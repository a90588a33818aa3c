//! The troubleshooting output: one JSON object per event on standard output.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;
use teiten_wire::Event;

#[derive(Serialize)]
struct JsonEvent<'a> {
    ts_us: i64,
    sensor: &'a str,
    proto: u8,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    tcp_flags: u16,
    ttl: u8,
    ip_id: u32,
    ip_len: u32,
    seq: u32,
    window: u16,
    class: &'static str,
    tags: Vec<&'static str>,
}

/// Writes each event as one JSON line.
pub(crate) fn write_events(
    out: &mut impl Write,
    sensor: &str,
    events: &[Event],
) -> std::io::Result<()> {
    for e in events {
        let j = JsonEvent {
            ts_us: e.ts_us,
            sensor,
            proto: e.proto,
            src: e.src,
            sport: e.sport,
            dst: e.dst,
            dport: e.dport,
            tcp_flags: e.tcp_flags,
            ttl: e.ttl,
            ip_id: e.ip_id,
            ip_len: e.ip_len,
            seq: e.seq,
            window: e.window,
            class: e.class.as_str(),
            tags: e.tags.names(),
        };
        serde_json::to_writer(&mut *out, &j)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
