//! Streaming writer and reader, scan reports, v1 output; every output checked by xmllint.

mod common;

use std::net::IpAddr;

use iodef::{
    v2, DateTime, Document, Error, ReadOptions, ScanEvent, ScanReport, StreamItem, StreamReader,
    StreamWriter, Version, WriteOptions,
};

fn t(secs: i64) -> DateTime {
    DateTime::from_unix(1_700_000_000 + secs, 0).expect("in range")
}

fn events(n: usize) -> Vec<ScanEvent> {
    (0..n)
        .map(|i| {
            let src: IpAddr = if i % 3 == 0 {
                format!("2001:db8::{:x}", i % 7 + 1).parse().expect("v6")
            } else {
                format!("198.51.100.{}", i % 5 + 1).parse().expect("v4")
            };
            let mut e = ScanEvent::tcp(
                src,
                40000 + i as u16,
                [22, 23, 80, 443, 3389][i % 5],
                t(i as i64),
            );
            if i % 4 == 1 {
                e.protocol = 17;
            }
            e
        })
        .collect()
}

fn report() -> ScanReport {
    ScanReport::new("csirt.example.org", "2024-11-21-partner-a", t(0))
        .csirt_email("csirt@example.org")
        .tlp("amber+strict")
        .expect("known TLP")
        .time_span(t(0), t(86_399))
}

fn write_report(version: Version, evs: &[ScanEvent]) -> (Vec<u8>, Vec<iodef::Diagnostic>) {
    let header = v2::Document {
        lang: Some("en".into()),
        ..Default::default()
    };
    let mut w = StreamWriter::with_version(Vec::new(), &header, version, WriteOptions::default())
        .expect("start");
    w.begin_incident(&report().incident()).expect("incident");
    for e in evs {
        w.write_event_data(&e.event_data()).expect("event");
    }
    w.end_incident().expect("end incident");
    let notes = w.conversion_notes().to_vec();
    (w.finish().expect("finish"), notes)
}

fn flow_facts(e: &v2::EventData) -> (String, Option<u16>, Option<u16>, Option<i64>, String) {
    let f = &e.flow[0];
    let src = &f.system[0];
    let dst = &f.system[1];
    let addr = |s: &v2::System| match &s.node.as_ref().expect("node").choice[0] {
        v2::NodeChoice::Address(a) => a.value.clone(),
        other => panic!("unexpected {other:?}"),
    };
    (
        addr(src),
        src.service[0].port,
        dst.service[0].port,
        dst.service[0].ip_protocol,
        e.detect_time.as_ref().expect("time").to_string(),
    )
}

#[test]
fn scan_report_v2_streams_and_validates() {
    let evs = events(60);
    let (xml, notes) = write_report(Version::V2, &evs);
    assert!(notes.is_empty());
    common::xmllint_bytes(Version::V2, &xml).expect("xmllint accepts the scan report");
    let text = String::from_utf8(xml.clone()).expect("utf-8");
    assert!(text.contains(r#"<Address category="ipv4-net">0.0.0.0/0</Address>"#));
    assert!(text.contains(r#"<Address category="ipv6-net">::/0</Address>"#));
    assert!(text.contains(r#"restriction="ext-value" ext-restriction="amber+strict""#));
    assert!(text.contains(r#"version="2.00""#));

    let mut r = StreamReader::new(xml.as_slice(), &ReadOptions::strict()).expect("open");
    assert_eq!(r.version(), Version::V2);
    let mut items = Vec::new();
    while let Some(i) = r.next_item().expect("item") {
        items.push(i);
    }
    assert!(matches!(items.first(), Some(StreamItem::Incident(_))));
    assert!(matches!(items.last(), Some(StreamItem::IncidentEnd(_))));
    let got: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::EventData(e) => Some(flow_facts(e)),
            _ => None,
        })
        .collect();
    let want: Vec<_> = evs.iter().map(|e| flow_facts(&e.event_data())).collect();
    assert_eq!(got, want);
    if let Some(StreamItem::IncidentEnd(i)) = items.last() {
        let mut expected = report().incident();
        expected.event_data.clear();
        assert_eq!(**i, expected);
    }
    assert!(r.take_diagnostics().is_empty());
}

#[test]
fn scan_report_v1_output_validates_and_reads_back() {
    let evs = events(30);
    let (xml, _notes) = write_report(Version::V1, &evs);
    common::xmllint_bytes(Version::V1, &xml).expect("xmllint accepts the v1 scan report");
    let text = String::from_utf8(xml.clone()).expect("utf-8");
    assert!(text.contains(r#"ip_protocol="6""#));
    assert!(text.contains(r#"<Impact type="recon">"#), "{text}");
    let mut r = StreamReader::new(xml.as_slice(), &ReadOptions::strict()).expect("open");
    assert_eq!(r.version(), Version::V1);
    let inc = r.next_incident().expect("read").expect("one incident");
    assert_eq!(inc.event_data.len(), evs.len());
    for (got, e) in inc.event_data.iter().zip(&evs) {
        assert_eq!(flow_facts(got), flow_facts(&e.event_data()));
    }
    assert_eq!(inc.generation_time, Some(t(0)));
    assert!(r.next_incident().expect("end").is_none());
}

#[test]
fn grouped_by_source_validates() {
    let evs = events(40);
    let sources: std::collections::BTreeSet<IpAddr> = evs.iter().map(|e| e.source).collect();
    let mut w = StreamWriter::new(
        Vec::new(),
        &v2::Document::default(),
        WriteOptions::default(),
    )
    .expect("start");
    w.begin_incident(&report().incident()).expect("incident");
    for s in &sources {
        let ed = ScanEvent::grouped(*s, &evs).expect("has events");
        assert_eq!(
            ed.event_data.len(),
            evs.iter().filter(|e| e.source == *s).count()
        );
        w.write_event_data(&ed).expect("event");
    }
    let xml = w.finish().expect("finish");
    common::xmllint_bytes(Version::V2, &xml).expect("valid");
    let doc = Document::from_slice(&xml, &ReadOptions::strict()).expect("read");
    let Document::V2(d) = doc.document else {
        panic!("v2 expected")
    };
    assert_eq!(d.incident[0].event_data.len(), sources.len());
    assert!(ScanEvent::grouped("192.0.2.250".parse().expect("ip"), &evs).is_none());
}

#[test]
fn writer_refuses_invalid_units_and_stays_valid() {
    let mut w = StreamWriter::new(
        Vec::new(),
        &v2::Document::default(),
        WriteOptions::default(),
    )
    .expect("start");
    let mut bad = report().incident();
    bad.contact.clear();
    match w.begin_incident(&bad) {
        Err(Error::Rejected(d)) => {
            assert!(d[0].message.contains("Contact"), "{}", d[0]);
            assert_eq!(d[0].location.path, "/IODEF-Document/Incident[1]");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(matches!(
        w.write_event_data(&events(1)[0].event_data()),
        Err(Error::Misuse(_))
    ));
    w.begin_incident(&report().incident())
        .expect("valid incident");
    let mut bad_event = events(1)[0].event_data();
    // Node without any address: the text forbids it.
    bad_event.flow[0].system[1].node = Some(v2::Node::default());
    match w.write_event_data(&bad_event) {
        Err(Error::Rejected(d)) => assert!(d[0].message.contains("Node"), "{}", d[0]),
        other => panic!("expected Rejected, got {other:?}"),
    }
    // Ports without ip-protocol.
    let mut bad_event = events(1)[0].event_data();
    bad_event.flow[0].system[0].service[0].ip_protocol = None;
    assert!(matches!(
        w.write_event_data(&bad_event),
        Err(Error::Rejected(_))
    ));
    // ext-value without its companion cannot be expressed by the types except as Ext("").
    let mut inc = report().incident();
    inc.restriction = Some(v2::Restriction::Ext(String::new()));
    w.end_incident().expect("end");
    assert!(matches!(w.begin_incident(&inc), Err(Error::Rejected(_))));
    w.write_event_data(&events(1)[0].event_data()).unwrap_err();
    let xml = w.finish().expect("finish");
    common::xmllint_bytes(Version::V2, &xml).expect("still valid");
}

#[test]
fn empty_document_is_refused() {
    let w = StreamWriter::new(
        Vec::new(),
        &v2::Document::default(),
        WriteOptions::default(),
    )
    .expect("start");
    assert!(matches!(w.finish(), Err(Error::Rejected(_))));
}

#[test]
fn stream_reader_matches_document_reader_on_corpus() {
    let mut compared = 0;
    for path in common::all_examples() {
        let bytes = std::fs::read(&path).expect("read");
        let Ok(loaded) = Document::from_slice(&bytes, &ReadOptions::strict()) else {
            continue;
        };
        let mut r = StreamReader::new(bytes.as_slice(), &ReadOptions::strict()).expect("open");
        let mut incidents = Vec::new();
        while let Some(i) = r.next_incident().expect("stream read") {
            incidents.push(i);
        }
        let expected = match &loaded.document {
            Document::V2(d) => d.incident.clone(),
            Document::V1(_) => match loaded.document.convert(Version::V2).value {
                Document::V2(d) => d.incident,
                Document::V1(_) => unreachable!("converted to v2"),
            },
        };
        assert_eq!(incidents, expected, "{}", path.display());
        compared += 1;
    }
    assert!(compared >= 20);
}

#[test]
fn tlp_labels() {
    for (label, want) in [
        ("TLP:CLEAR", v2::Restriction::Ext("clear".into())),
        ("white", v2::Restriction::White),
        ("green", v2::Restriction::Green),
        ("Amber", v2::Restriction::Amber),
        ("red", v2::Restriction::Red),
    ] {
        let r = report().tlp(label).expect("known").incident();
        assert_eq!(r.restriction, Some(want));
    }
    assert!(report().tlp("purple").is_none());
}

#[test]
fn scan_events_read_back_from_event_data() {
    let evs = events(25);
    for e in &evs {
        assert_eq!(ScanEvent::from_event_data(&e.event_data()), vec![e.clone()]);
    }
    let src = evs[1].source;
    let grouped = ScanEvent::grouped(src, &evs).expect("events");
    let mine: Vec<ScanEvent> = evs.iter().filter(|e| e.source == src).cloned().collect();
    assert_eq!(ScanEvent::from_event_data(&grouped), mine);
    // A partner's report with a target Portlist yields one event per port.
    let mut e = evs[0].event_data();
    e.flow[0].system[1].service[0].port = None;
    e.flow[0].system[1].service[0].portlist = iodef::Portlist::parse("80,8000-8002");
    let got = ScanEvent::from_event_data(&e);
    let ports: Vec<_> = got.iter().map(|g| g.destination_port).collect();
    assert_eq!(ports, vec![Some(80), Some(8000), Some(8001), Some(8002)]);
    // The RFC 5070 reconnaissance example, read through the v1 -> v2 stream.
    let path = common::examples().join("rfc5070/rfc5070-7.2-reconnaissance.xml");
    let bytes = std::fs::read(path).expect("example");
    let mut r = StreamReader::new(bytes.as_slice(), &ReadOptions::strict()).expect("open");
    let inc = r.next_incident().expect("read").expect("incident");
    let scans = ScanEvent::from_incident(&inc);
    // 192.0.2.200 probed 137-139 and 445 (4 ports); 192.0.2.240 probed 445.
    assert_eq!(scans.len(), 5, "{scans:?}");
    assert!(scans.iter().all(|s| s.protocol == 6), "{scans:?}");
    assert_eq!(scans[0].source_port, None);
    assert_eq!(scans[4].destination_port, Some(445));
}

#[test]
fn document_level_additional_data_is_written_last() {
    let mut w = StreamWriter::new(
        Vec::new(),
        &v2::Document::default(),
        WriteOptions::default(),
    )
    .expect("start");
    w.write_incident(&{
        let mut i = report().incident();
        i.event_data = events(2).iter().map(ScanEvent::event_data).collect();
        i
    })
    .expect("incident");
    w.add_document_data(v2::ExtensionData {
        dtype: Some(v2::Dtype::String),
        meaning: Some("sensor-count".into()),
        content: vec![iodef::ExtensionContent::Text("12".into())],
        ..Default::default()
    })
    .expect("valid data");
    assert!(matches!(
        w.add_document_data(v2::ExtensionData::default()),
        Err(Error::Rejected(_))
    ));
    let xml = w.finish().expect("finish");
    common::xmllint_bytes(Version::V2, &xml).expect("valid");
    let mut r = StreamReader::new(xml.as_slice(), &ReadOptions::strict()).expect("open");
    while r.next_item().expect("item").is_some() {}
    assert_eq!(r.header().additional_data.len(), 1);
}

#[test]
fn v1_conversion_notes_stay_bounded_and_aggregates_convert_cleanly() {
    let mut w = StreamWriter::with_version(
        Vec::new(),
        &v2::Document::default(),
        Version::V1,
        WriteOptions::default(),
    )
    .unwrap();
    w.begin_incident(&report().incident()).unwrap();
    let header_notes = w.conversion_notes().len();
    let aggregate = |i: u64| iodef::ScanAggregate {
        source: "192.0.2.7".parse().unwrap(),
        asn: Some(64_496),
        protocol: 6,
        destination_port: Some(22),
        first: t(1_700_000_000),
        last: t(1_700_000_060),
        packets: i + 1,
        destinations: 2,
    };
    for i in 0..1000u64 {
        w.write_event_data(&aggregate(i).event_data()).unwrap();
    }
    // A v1 Counter carries the packet and host counts: nothing to report.
    assert_eq!(
        w.conversion_notes().len(),
        header_notes,
        "{:?}",
        w.conversion_notes()
    );
    // A rate has no place in v1: reported once, however often it is written.
    for i in 0..1000u64 {
        let mut e = aggregate(i).event_data();
        for s in e.flow.iter_mut().flat_map(|f| &mut f.system) {
            for c in &mut s.counter {
                c.kind = Some(v2::CounterType::Rate);
            }
        }
        w.write_event_data(&e).unwrap();
    }
    let notes = w.conversion_notes();
    assert_eq!(notes.len(), header_notes + 1, "{notes:?}");
    assert!(
        notes[header_notes].message.contains("Counter.type=rate"),
        "{notes:?}"
    );
    assert!(
        notes[header_notes]
            .location
            .path
            .ends_with("EventData[1001]"),
        "{notes:?}"
    );
    // Two counters an EventData, 1000 EventData: one kept.
    assert_eq!(w.repeated_conversion_notes(), 1999);
    let xml = w.finish().unwrap();
    common::xmllint_bytes(Version::V1, &xml).unwrap();
}
