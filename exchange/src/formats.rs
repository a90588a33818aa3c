//! The daily formats besides IODEF: IntelMQ events as JSON lines and Shadowserver's darknet
//! report as CSV. Both are written one [`Record`] at a time (constant memory), and neither ever
//! carries a destination address: the sensor addresses are withheld in every format.
//!
//! # IntelMQ (`intelmq`)
//! One JSON object a line, keys in byte order (so a re-export gives the same bytes), with
//! IntelMQ's harmonized field names: `time.source` (ISO 8601 in UTC, `+00:00`, as Python's
//! `isoformat` writes it), `source.ip`, `source.port`, `source.geolocation.cc` (when the
//! country is known), `destination.port`, `protocol.transport` (`tcp`, `udp`, `icmp`,
//! `ipv6-icmp`), `classification.taxonomy` `information-gathering`, `classification.type`
//! `scanner`, `feed.name`, `feed.provider`; ICMP type and code as `extra.icmp_type` and
//! `extra.icmp_code`; for aggregated records `extra.count` (packets), `extra.first_seen`,
//! `extra.last_seen` and `extra.destinations` (how many distinct sensor addresses were probed;
//! never which), with `time.source` the first time seen. `source.asn` is not written yet (the
//! event store has no ASN).
//!
//! # CSV (`csv`)
//! The columns of Shadowserver's `event4_honeypot_darknet` report in its order ([`CSV_COLUMNS`]),
//! `timestamp` as `YYYY-MM-DD HH:MM:SS` UTC (aggregates: the first time seen), `count` the
//! packets (1 per packet record). Columns the store has nothing for (`src_asn`, region, city,
//! hostname, NAICS, sector, device, tag, ...) are empty, and so are all the `dst_*` columns but
//! `dst_port`. Quoting is the `csv` crate's.

use std::io::Write;
use std::net::IpAddr;

use serde_json::{Map, Value};

/// The columns of Shadowserver's darknet report (`event4_honeypot_darknet`), in order.
pub const CSV_COLUMNS: [&str; 31] = [
    "timestamp",
    "protocol",
    "src_ip",
    "src_port",
    "src_asn",
    "src_geo",
    "src_region",
    "src_city",
    "src_hostname",
    "src_naics",
    "src_sector",
    "device_vendor",
    "device_type",
    "device_model",
    "dst_ip",
    "dst_port",
    "dst_asn",
    "dst_geo",
    "dst_region",
    "dst_city",
    "dst_hostname",
    "dst_naics",
    "dst_sector",
    "public_source",
    "infection",
    "family",
    "tag",
    "application",
    "version",
    "event_id",
    "count",
];

/// The `feed.name` of IntelMQ events.
pub const FEED_NAME: &str = "teiten darknet";

/// Shadowserver's name of the darknet report, as it appears in the file name.
pub const CSV_REPORT: &str = "event4_honeypot_darknet";

/// One record of a daily file: one packet, or one source, protocol and port over the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The scanner.
    pub(crate) source: IpAddr,
    /// IANA protocol number.
    pub(crate) proto: u8,
    /// TCP/UDP source port (per packet only).
    pub(crate) source_port: Option<u16>,
    /// TCP/UDP destination port.
    pub(crate) destination_port: Option<u16>,
    /// ICMP type and code (per packet only).
    pub(crate) icmp: Option<(u16, u16)>,
    /// Source country, alpha-2, when known.
    pub(crate) country: Option<String>,
    /// First (per packet: the) time seen, microseconds since the epoch.
    pub(crate) first_us: i64,
    /// Last time seen, microseconds since the epoch.
    pub(crate) last_us: i64,
    /// Packets.
    pub(crate) packets: u64,
    /// Distinct destinations (aggregated records only).
    pub(crate) destinations: Option<u64>,
}

/// The feed fields of IntelMQ events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Feed<'a> {
    /// `feed.name`.
    pub(crate) name: &'a str,
    /// `feed.provider`.
    pub(crate) provider: &'a str,
}

/// IntelMQ's `protocol.transport` of a protocol number (its harmonization's names).
fn transport(proto: u8) -> Option<&'static str> {
    match proto {
        1 => Some("icmp"),
        6 => Some("tcp"),
        17 => Some("udp"),
        58 => Some("ipv6-icmp"),
        _ => None,
    }
}

/// `2025-11-21T04:40:00.250000+00:00`, or without the fraction when it is zero (Python's
/// `datetime.isoformat`, which IntelMQ's `DateTime` checks against).
pub(crate) fn iso_utc(us: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    if us.rem_euclid(1_000_000) == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// The IntelMQ event of a record.
pub(crate) fn intelmq_event(r: &Record, feed: Feed<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("classification.taxonomy", "information-gathering".into());
    put("classification.type", "scanner".into());
    put("feed.name", feed.name.into());
    put("feed.provider", feed.provider.into());
    put("time.source", iso_utc(r.first_us).into());
    put("source.ip", r.source.to_string().into());
    if let Some(p) = r.source_port {
        put("source.port", p.into());
    }
    if let Some(cc) = &r.country {
        put("source.geolocation.cc", cc.clone().into());
    }
    if let Some(p) = r.destination_port {
        put("destination.port", p.into());
    }
    if let Some(t) = transport(r.proto) {
        put("protocol.transport", t.into());
    } else {
        put("extra.ip_protocol", r.proto.into());
    }
    if let Some((t, c)) = r.icmp {
        put("extra.icmp_type", t.into());
        put("extra.icmp_code", c.into());
    }
    if let Some(d) = r.destinations {
        put("extra.count", r.packets.into());
        put("extra.first_seen", iso_utc(r.first_us).into());
        put("extra.last_seen", iso_utc(r.last_us).into());
        put("extra.destinations", d.into());
    }
    m
}

/// Writes one IntelMQ event line.
pub(crate) fn write_intelmq(
    out: &mut impl Write,
    r: &Record,
    feed: Feed<'_>,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &intelmq_event(r, feed))?;
    out.write_all(b"\n")
}

/// The CSV fields of a record, in [`CSV_COLUMNS`] order.
pub(crate) fn csv_fields(r: &Record) -> [String; 31] {
    let mut f: [String; 31] = Default::default();
    let t = chrono::DateTime::from_timestamp_micros(r.first_us).unwrap_or_default();
    f[0] = t.format("%Y-%m-%d %H:%M:%S").to_string();
    f[1] = teiten_store::proto::proto_name(r.proto);
    f[2] = r.source.to_string();
    f[3] = r.source_port.map(|p| p.to_string()).unwrap_or_default();
    f[5] = r.country.clone().unwrap_or_default();
    // f[14], dst_ip: never the sensor address.
    f[15] = r
        .destination_port
        .map(|p| p.to_string())
        .unwrap_or_default();
    f[30] = r.packets.to_string();
    f
}

/// A CSV writer of the darknet report layout, header written.
pub(crate) fn csv_writer<W: Write>(out: W) -> csv::Result<csv::Writer<W>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: Feed<'static> = Feed {
        name: "teiten darknet",
        provider: "Example CSIRT",
    };

    fn tcp() -> Record {
        Record {
            source: "1.0.0.9".parse().unwrap(),
            proto: 6,
            source_port: Some(40_000),
            destination_port: Some(23),
            icmp: None,
            country: Some("AU".into()),
            first_us: 1_763_700_000_250_000,
            last_us: 1_763_700_000_250_000,
            packets: 1,
            destinations: None,
        }
    }

    #[test]
    fn times_are_written_as_python_isoformat_writes_them() {
        assert_eq!(iso_utc(1_763_700_000_000_000), "2025-11-21T04:40:00+00:00");
        assert_eq!(
            iso_utc(1_763_700_000_000_001),
            "2025-11-21T04:40:00.000001+00:00"
        );
    }

    #[test]
    fn an_intelmq_packet_line_has_the_harmonized_names_in_byte_order() {
        let mut out = Vec::new();
        write_intelmq(&mut out, &tcp(), FEED).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"classification.taxonomy\":\"information-gathering\",\
             \"classification.type\":\"scanner\",\"destination.port\":23,\
             \"feed.name\":\"teiten darknet\",\"feed.provider\":\"Example CSIRT\",\
             \"protocol.transport\":\"tcp\",\"source.geolocation.cc\":\"AU\",\
             \"source.ip\":\"1.0.0.9\",\"source.port\":40000,\
             \"time.source\":\"2025-11-21T04:40:00.250000+00:00\"}\n"
        );
    }

    #[test]
    fn an_intelmq_aggregate_carries_count_first_last_and_destinations() {
        let r = Record {
            source: "2001:db8::9".parse().unwrap(),
            proto: 58,
            source_port: None,
            destination_port: None,
            country: None,
            first_us: 1_763_700_000_000_000,
            last_us: 1_763_700_060_500_000,
            packets: 7,
            destinations: Some(3),
            ..tcp()
        };
        let e = intelmq_event(&r, FEED);
        assert_eq!(e["protocol.transport"], "ipv6-icmp");
        assert_eq!(e["extra.count"], 7);
        assert_eq!(e["extra.destinations"], 3);
        assert_eq!(e["extra.first_seen"], "2025-11-21T04:40:00+00:00");
        assert_eq!(e["extra.last_seen"], "2025-11-21T04:41:00.500000+00:00");
        assert!(!e.contains_key("source.port") && !e.contains_key("source.geolocation.cc"));
        assert!(!e.keys().any(|k| k.starts_with("destination.ip")));
    }

    #[test]
    fn csv_rows_follow_the_shadowserver_layout_without_destination_address() {
        let mut w = csv_writer(Vec::new()).unwrap();
        w.write_record(csv_fields(&tcp())).unwrap();
        let icmp = Record {
            proto: 1,
            source_port: None,
            destination_port: None,
            icmp: Some((8, 0)),
            country: Some("AU".into()),
            packets: 12,
            ..tcp()
        };
        w.write_record(csv_fields(&icmp)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "2025-11-21 04:40:00,tcp,1.0.0.9,40000,,AU,,,,,,,,,,23,,,,,,,,,,,,,,,1"
        );
        assert_eq!(
            lines[2],
            "2025-11-21 04:40:00,icmp,1.0.0.9,,,AU,,,,,,,,,,,,,,,,,,,,,,,,,12"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut w = csv_writer(Vec::new()).unwrap();
        let mut f = csv_fields(&tcp());
        f[26] = "a,\"b\"".into();
        w.write_record(&f).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(text.contains(",\"a,\"\"b\"\"\","), "{text}");
    }
}
