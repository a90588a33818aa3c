//! The daily formats besides IODEF: IntelMQ events as JSON lines and Shadowserver's darknet
//! report as CSV. Both are written one [`Record`] at a time (constant memory), and neither ever
//! carries a destination address: the sensor addresses are withheld in every format.
//!
//! # IntelMQ (`intelmq`)
//! One JSON object a line, keys in byte order (so a re-export gives the same bytes), with
//! IntelMQ's harmonized field names: `time.source` (ISO 8601 in UTC, `+00:00`, as Python's
//! `isoformat` writes it), `source.ip`, `source.port`, `source.geolocation.cc` (when the
//! country is known), `destination.port`, `protocol.transport` (`tcp`, `udp`, `icmp`,
//! `ipv6-icmp`), `source.asn` (when the AS is known), `classification.taxonomy` `information-gathering`, `classification.type`
//! `scanner`, `feed.name`, `feed.provider`; ICMP type and code as `extra.icmp_type` and
//! `extra.icmp_code`; for aggregated records `extra.count` (packets), `extra.first_seen`,
//! `extra.last_seen` and `extra.destinations` (how many distinct sensor addresses were probed;
//! never which), with `time.source` the first time seen.
//!
//! # CSV (`csv`)
//! The columns of Shadowserver's `event4_honeypot_darknet` report in its order ([`CSV_COLUMNS`]),
//! `timestamp` as `YYYY-MM-DD HH:MM:SS` UTC (aggregates: the first time seen), `count` the
//! packets (1 per packet record), `src_asn` the source's AS where known. Columns the store has
//! nothing for (region, city,
//! hostname, NAICS, sector, device, tag, ...) are empty, and so are all the `dst_*` columns but
//! `dst_port`. Quoting is the `csv` crate's.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;

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

/// A source country as ISO 3166 alpha-2: two ASCII letters, checked where it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cc([u8; 2]);

impl Cc {
    /// The code of two stored bytes; `None` unless both are ASCII letters (the store's
    /// unknown country is not).
    pub(crate) fn new(b: [u8; 2]) -> Option<Cc> {
        b.iter().all(u8::is_ascii_alphabetic).then_some(Cc(b))
    }

    /// The code as text.
    pub(crate) fn as_str(&self) -> &str {
        // Two ASCII letters (checked by `new`): always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

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
    /// Source country, when known.
    pub(crate) country: Option<Cc>,
    /// Source autonomous system, when known.
    pub(crate) asn: Option<u32>,
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

/// Writes `us` (microseconds since the epoch) in UTC as `YYYY-MM-DD<sep>HH:MM:SS`, then
/// `.ffffff` when `fraction` and the microseconds are not zero. chrono does the calendar; the
/// digits are written directly (its `format` parses a pattern per call).
fn write_utc(f: &mut impl std::fmt::Write, us: i64, sep: char, fraction: bool) -> std::fmt::Result {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    write!(
        f,
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )?;
    let micros = us.rem_euclid(1_000_000);
    if fraction && micros != 0 {
        write!(f, ".{micros:06}")?;
    }
    Ok(())
}

/// `2025-11-21T04:40:00.250000+00:00`, or without the fraction when it is zero (Python's
/// `datetime.isoformat`, which IntelMQ's `DateTime` checks against).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IsoUtc(pub(crate) i64);

impl std::fmt::Display for IsoUtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_utc(f, self.0, 'T', true)?;
        f.write_str("+00:00")
    }
}

impl Serialize for IsoUtc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An address as text, serialised without an intermediate `String`.
struct Ip(IpAddr);

impl Serialize for Ip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The IntelMQ event of a record: its fields in byte order of their names (serde writes them
/// in declaration order; a test checks the order), absent ones skipped.
#[derive(Serialize)]
pub(crate) struct IntelmqEvent<'a> {
    #[serde(rename = "classification.taxonomy")]
    taxonomy: &'static str,
    #[serde(rename = "classification.type")]
    kind: &'static str,
    #[serde(rename = "destination.port", skip_serializing_if = "Option::is_none")]
    destination_port: Option<u16>,
    #[serde(rename = "extra.count", skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(rename = "extra.destinations", skip_serializing_if = "Option::is_none")]
    destinations: Option<u64>,
    #[serde(rename = "extra.first_seen", skip_serializing_if = "Option::is_none")]
    first_seen: Option<IsoUtc>,
    #[serde(rename = "extra.icmp_code", skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u16>,
    #[serde(rename = "extra.icmp_type", skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u16>,
    #[serde(rename = "extra.ip_protocol", skip_serializing_if = "Option::is_none")]
    ip_protocol: Option<u8>,
    #[serde(rename = "extra.last_seen", skip_serializing_if = "Option::is_none")]
    last_seen: Option<IsoUtc>,
    #[serde(rename = "feed.name")]
    feed_name: &'a str,
    #[serde(rename = "feed.provider")]
    feed_provider: &'a str,
    #[serde(rename = "protocol.transport", skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    #[serde(rename = "source.asn", skip_serializing_if = "Option::is_none")]
    asn: Option<u32>,
    #[serde(
        rename = "source.geolocation.cc",
        skip_serializing_if = "Option::is_none"
    )]
    cc: Option<&'a str>,
    #[serde(rename = "source.ip")]
    ip: Ip,
    #[serde(rename = "source.port", skip_serializing_if = "Option::is_none")]
    source_port: Option<u16>,
    #[serde(rename = "time.source")]
    time: IsoUtc,
}

/// The IntelMQ event of a record.
pub(crate) fn intelmq_event<'a>(r: &'a Record, feed: Feed<'a>) -> IntelmqEvent<'a> {
    let aggregate = r.destinations.is_some();
    IntelmqEvent {
        taxonomy: "information-gathering",
        kind: "scanner",
        destination_port: r.destination_port,
        count: aggregate.then_some(r.packets),
        destinations: r.destinations,
        first_seen: aggregate.then_some(IsoUtc(r.first_us)),
        icmp_code: r.icmp.map(|(_, c)| c),
        icmp_type: r.icmp.map(|(t, _)| t),
        ip_protocol: transport(r.proto).is_none().then_some(r.proto),
        last_seen: aggregate.then_some(IsoUtc(r.last_us)),
        feed_name: feed.name,
        feed_provider: feed.provider,
        transport: transport(r.proto),
        asn: r.asn,
        cc: r.country.as_ref().map(Cc::as_str),
        ip: Ip(r.source),
        source_port: r.source_port,
        time: IsoUtc(r.first_us),
    }
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

/// One CSV row in [`CSV_COLUMNS`] order, its fields reused from record to record.
#[derive(Debug, Default)]
pub(crate) struct CsvRow {
    fields: [String; 31],
}

impl CsvRow {
    /// The fields of `r`.
    pub(crate) fn fill(&mut self, r: &Record) -> &[String; 31] {
        use std::fmt::Write as _;
        let f = &mut self.fields;
        for i in [0, 1, 2, 3, 4, 5, 15, 30] {
            f[i].clear();
        }
        // Writing into a String cannot fail.
        let _ = write_utc(&mut f[0], r.first_us, ' ', false);
        match teiten_store::proto::Proto::from_number(r.proto) {
            Some(p) => f[1].push_str(p.name()),
            None => {
                let _ = write!(f[1], "{}", r.proto);
            }
        }
        let _ = write!(f[2], "{}", r.source);
        if let Some(p) = r.source_port {
            let _ = write!(f[3], "{p}");
        }
        if let Some(a) = r.asn {
            let _ = write!(f[4], "{a}");
        }
        if let Some(cc) = &r.country {
            f[5].push_str(cc.as_str());
        }
        // f[14], dst_ip: never the sensor address.
        if let Some(p) = r.destination_port {
            let _ = write!(f[15], "{p}");
        }
        let _ = write!(f[30], "{}", r.packets);
        &self.fields
    }
}

/// The CSV fields of a record, in [`CSV_COLUMNS`] order.
#[cfg(test)]
pub(crate) fn csv_fields(r: &Record) -> [String; 31] {
    CsvRow::default().fill(r).clone()
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
            country: Cc::new(*b"AU"),
            asn: Some(13335),
            first_us: 1_763_700_000_250_000,
            last_us: 1_763_700_000_250_000,
            packets: 1,
            destinations: None,
        }
    }

    #[test]
    fn times_are_written_as_python_isoformat_writes_them() {
        assert_eq!(
            IsoUtc(1_763_700_000_000_000).to_string(),
            "2025-11-21T04:40:00+00:00"
        );
        assert_eq!(
            IsoUtc(1_763_700_000_000_001).to_string(),
            "2025-11-21T04:40:00.000001+00:00"
        );
        // The same text as chrono's own formatting, over a spread of times.
        let mut x: u64 = 1;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let us = (x % 4_102_444_800_000_000) as i64;
            let t = chrono::DateTime::from_timestamp_micros(us).unwrap();
            let want = if us % 1_000_000 == 0 {
                t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
            } else {
                t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
            };
            assert_eq!(IsoUtc(us).to_string(), want);
            let mut csv = String::new();
            write_utc(&mut csv, us, ' ', false).unwrap();
            assert_eq!(csv, t.format("%Y-%m-%d %H:%M:%S").to_string());
        }
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
             \"protocol.transport\":\"tcp\",\"source.asn\":13335,\"source.geolocation.cc\":\"AU\",\
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
            asn: None,
            first_us: 1_763_700_000_000_000,
            last_us: 1_763_700_060_500_000,
            packets: 7,
            destinations: Some(3),
            ..tcp()
        };
        let e = serde_json::to_value(intelmq_event(&r, FEED)).unwrap();
        let e = e.as_object().unwrap();
        assert_eq!(e["protocol.transport"], "ipv6-icmp");
        assert_eq!(e["extra.count"], 7);
        assert_eq!(e["extra.destinations"], 3);
        assert_eq!(e["extra.first_seen"], "2025-11-21T04:40:00+00:00");
        assert_eq!(e["extra.last_seen"], "2025-11-21T04:41:00.500000+00:00");
        assert!(!e.contains_key("source.port") && !e.contains_key("source.geolocation.cc"));
        assert!(!e.keys().any(|k| k.starts_with("destination.ip")));
    }

    #[test]
    fn intelmq_fields_are_written_in_byte_order_of_their_names() {
        // Every optional field present at once (no real record has them all), but
        // `protocol.transport`, which `extra.ip_protocol` replaces for an unnamed protocol.
        let r = Record {
            proto: 200,
            icmp: Some((3, 1)),
            destinations: Some(2),
            ..tcp()
        };
        let line = serde_json::to_string(&intelmq_event(&r, FEED)).unwrap();
        let keys: Vec<String> = serde_json::from_str::<serde_json::Value>(&line)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.len(), 17, "{line}");
        let mut positions: Vec<usize> = keys
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        let written = positions.clone();
        positions.sort();
        let mut sorted = keys.clone();
        sorted.sort();
        // `keys` come from a sorted map: written in that order means byte order.
        assert_eq!(sorted, keys);
        assert_eq!(written, positions, "{line}");
        assert!(line.contains("\"extra.ip_protocol\":200"), "{line}");
    }

    #[test]
    fn a_reused_csv_row_keeps_nothing_of_the_previous_record() {
        let mut row = CsvRow::default();
        let first = row.fill(&tcp()).clone();
        let bare = Record {
            source_port: None,
            destination_port: None,
            country: None,
            asn: None,
            proto: 200,
            ..tcp()
        };
        let second = row.fill(&bare).clone();
        assert_eq!(first[3], "40000");
        assert_eq!(
            (second[3].as_str(), second[5].as_str(), second[15].as_str()),
            ("", "", "")
        );
        assert_eq!(second[1], "200");
        assert_eq!(csv_fields(&tcp()), first);
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
            country: Cc::new(*b"AU"),
            asn: Some(13335),
            packets: 12,
            ..tcp()
        };
        w.write_record(csv_fields(&icmp)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "2025-11-21 04:40:00,tcp,1.0.0.9,40000,13335,AU,,,,,,,,,,23,,,,,,,,,,,,,,,1"
        );
        assert_eq!(
            lines[2],
            "2025-11-21 04:40:00,icmp,1.0.0.9,,13335,AU,,,,,,,,,,,,,,,,,,,,,,,,,12"
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
