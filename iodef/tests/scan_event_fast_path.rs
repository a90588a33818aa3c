//! Property: `StreamWriter::write_scan_event` (the per-packet hot path, which builds and checks
//! nothing) writes the same bytes as `write_event_data` of the event's EventData, in both
//! versions, indented or compact, with and without ICMP type and code; the result is
//! schema-valid (xmllint) and reads back as the same events.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iodef::{
    v2, DateTime, ReadOptions, ScanEvent, ScanReport, StreamReader, StreamWriter, Version,
    WriteOptions,
};
use proptest::prelude::*;

fn event() -> impl Strategy<Value = (ScanEvent, Option<(u16, u16)>)> {
    let source = prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ];
    let time = (
        0i64..4_000_000_000,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(s, n)| DateTime::from_unix(s, n).expect("in range"));
    (
        source,
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u16>()),
        prop_oneof![Just(6u8), Just(17), Just(1), Just(58), any::<u8>()],
        time,
        proptest::option::of((any::<u16>(), any::<u16>())),
        proptest::option::of(prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()]),
    )
        .prop_map(|(source, sport, dport, protocol, time, icmp, asn)| {
            let ev = ScanEvent {
                source,
                asn,
                source_port: sport,
                destination_port: dport,
                protocol,
                time,
            };
            (ev, icmp)
        })
}

/// A document of `events`, each written by the fast path or as an EventData.
fn document(
    events: &[(ScanEvent, Option<(u16, u16)>)],
    version: Version,
    opts: WriteOptions,
    fast: bool,
) -> (Vec<u8>, usize) {
    let mut w = StreamWriter::with_version(Vec::new(), &v2::Document::default(), version, opts)
        .expect("header");
    let t = DateTime::from_unix(1_700_000_000, 0).unwrap();
    w.begin_incident(&ScanReport::new("csirt.example", "1", t).incident())
        .expect("incident");
    for (ev, icmp) in events {
        if fast {
            w.write_scan_event(ev, *icmp).expect("fast path");
        } else {
            let e = match icmp {
                Some((kind, code)) => ev.icmp_event_data(*kind, *code),
                None => ev.event_data(),
            };
            w.write_event_data(&e).expect("event data");
        }
    }
    let notes = w.conversion_notes().len();
    (w.finish().expect("finish"), notes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn the_fast_path_writes_the_same_bytes(
        events in proptest::collection::vec(event(), 1..12),
        indent in any::<bool>(),
    ) {
        let opts = WriteOptions { indent, ..WriteOptions::default() };
        for version in [Version::V2, Version::V1] {
            let (fast, fast_notes) = document(&events, version, opts, true);
            let (slow, slow_notes) = document(&events, version, opts, false);
            prop_assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(slow).unwrap(),
                "{:?}", version
            );
            prop_assert_eq!(fast_notes, slow_notes);
        }
    }
}

#[test]
fn fast_path_documents_are_valid_and_read_back() {
    let t = |s: i64, n: u32| DateTime::from_unix(s, n).unwrap();
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let events = vec![
        (
            ScanEvent::tcp(v4, 40_000, 22, t(1_700_000_001, 250_000_000)),
            None,
        ),
        (ScanEvent::udp(v6, 53, 161, t(1_700_000_002, 0)), None),
        (
            ScanEvent {
                source: v4,
                asn: Some(13335),
                source_port: None,
                destination_port: None,
                protocol: 1,
                time: t(1_700_000_003, 1),
            },
            Some((8, 0)),
        ),
        (
            ScanEvent {
                source: v6,
                asn: Some(4_200_000_000),
                source_port: None,
                destination_port: None,
                protocol: 58,
                time: t(1_700_000_004, 0),
            },
            Some((128, 0)),
        ),
    ];
    for version in [Version::V2, Version::V1] {
        let (xml, _) = document(&events, version, WriteOptions::default(), true);
        common::xmllint_bytes(version, &xml)
            .unwrap_or_else(|e| panic!("{version:?} is not schema-valid: {e}"));
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(!text.contains("198.18."), "no destination address");
        assert!(text.contains("<ProtoType>128</ProtoType>"), "{text}");
        // The source Node names its AS beside its address; events without one name none.
        let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            compact.contains(
                "<Node> <Address category=\"ipv4-addr\">192.0.2.7</Address> \
                 <Address category=\"asn\">13335</Address> </Node>"
            ),
            "{text}"
        );
        assert!(text.contains("<Address category=\"asn\">4200000000</Address>"));
        assert_eq!(text.matches("category=\"asn\"").count(), 2, "{text}");
        let mut r = StreamReader::new(xml.as_slice(), &ReadOptions::strict()).unwrap();
        let incident = r.next_incident().unwrap().expect("one incident");
        let back = ScanEvent::from_incident(&incident);
        let want: Vec<ScanEvent> = events.iter().map(|(e, _)| e.clone()).collect();
        assert_eq!(back, want, "{version:?}");
    }
}
