//! Property: arbitrary documents -> write -> xmllint-valid -> read -> equal. Also through v1.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use iodef::{
    v2, AnyAttribute, AnyElement, DateTime, Document, ExtensionContent, Portlist, ReadOptions,
    Version, WriteOptions,
};
use proptest::prelude::*;

fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::char::range(' ', '~'),
        2 => proptest::char::range('\u{a0}', '\u{d7ff}'),
        1 => proptest::char::range('\u{e000}', '\u{fffd}'),
        1 => proptest::char::range('\u{10000}', '\u{10ffff}'),
        1 => prop_oneof![Just('\t'), Just('\n'), Just('\r'), Just('<'), Just('&'), Just('"'), Just('>')],
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(xml_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn nonempty(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(xml_char(), 1..max)
        .prop_map(|v| v.into_iter().collect::<String>())
        .prop_filter("not blank", |s| !s.trim().is_empty())
}

fn ml() -> impl Strategy<Value = v2::MLString> {
    (
        text(20),
        proptest::option::of(prop_oneof![
            Just("en".to_string()),
            Just("de-CH".to_string())
        ]),
    )
        .prop_map(|(value, lang)| v2::MLString {
            value,
            lang,
            ..Default::default()
        })
}

fn datetime() -> impl Strategy<Value = DateTime> {
    prop_oneof![
        (
            0i64..4_000_000_000,
            prop_oneof![Just(0u32), 0u32..1_000_000_000]
        )
            .prop_map(|(s, n)| DateTime::from_unix(s, n).expect("in range")),
        (
            1970u32..2100,
            1u32..13,
            1u32..29,
            0u32..24,
            0u32..60,
            0u32..60,
            -14i32..15,
            prop_oneof![Just(0u32), Just(30)]
        )
            .prop_map(|(y, mo, d, h, mi, s, oh, om)| {
                let om = if oh.abs() == 14 { 0 } else { om };
                let sign = if oh < 0 { '-' } else { '+' };
                DateTime::parse(&format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{om:02}",
                    oh.abs()
                ))
                .expect("valid")
            }),
    ]
}

fn restriction() -> impl Strategy<Value = v2::Restriction> {
    prop_oneof![
        proptest::sample::select(v2::Restriction::ALL.to_vec()),
        nonempty(10).prop_map(v2::Restriction::Ext),
    ]
}

fn address() -> impl Strategy<Value = v2::Address> {
    use v2::AddressCategory as C;
    prop_oneof![
        any::<u32>().prop_map(|a| (C::Ipv4Addr, Ipv4Addr::from(a).to_string())),
        any::<u128>().prop_map(|a| (C::Ipv6Addr, Ipv6Addr::from(a).to_string())),
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| (C::Ipv4Net, format!("{}/{p}", Ipv4Addr::from(a)))),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| (C::Ipv6Net, format!("{}/{p}", Ipv6Addr::from(a)))),
        any::<u32>().prop_map(|a| (C::Asn, a.to_string())),
        "[a-z0-9.]{1,10}@[a-z0-9.]{1,10}".prop_map(|e| (C::EMail, e)),
        any::<[u8; 6]>().prop_map(|m| (
            C::Mac,
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        )),
        (nonempty(10), nonempty(12)).prop_map(|(e, v)| (C::Ext(e), v)),
    ]
    .prop_map(|(category, value)| v2::Address {
        category,
        value,
        ..Default::default()
    })
}

fn portlist() -> impl Strategy<Value = Portlist> {
    proptest::collection::vec((any::<u16>(), 0u16..100), 1..4).prop_map(|v| {
        Portlist::from_ranges(
            v.into_iter()
                .map(|(a, d)| (a, a.saturating_add(d)))
                .collect(),
        )
        .expect("ascending")
    })
}

fn service() -> impl Strategy<Value = v2::Service> {
    (
        0i64..256,
        proptest::option::of(any::<u16>()),
        proptest::option::of(portlist()),
    )
        .prop_map(|(p, port, portlist)| v2::Service {
            ip_protocol: Some(p),
            port,
            portlist,
            ..Default::default()
        })
}

fn system() -> impl Strategy<Value = v2::System> {
    (
        proptest::option::of(proptest::sample::select(v2::SystemCategory::ALL.to_vec())),
        proptest::collection::vec(address(), 1..3),
        proptest::collection::vec(service(), 0..2),
        proptest::collection::vec(ml(), 0..2),
    )
        .prop_map(|(category, addrs, service, description)| v2::System {
            category,
            node: Some(v2::Node {
                choice: addrs.into_iter().map(v2::NodeChoice::Address).collect(),
                ..Default::default()
            }),
            service,
            description,
            ..Default::default()
        })
}

fn ncname() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_.-]{0,8}"
}

fn any_element(depth: u32) -> BoxedStrategy<AnyElement> {
    let leaf = (
        prop_oneof![
            Just(None),
            Just(Some("urn:example:ext".to_string())),
            Just(Some(v2::NAMESPACE.to_string()))
        ],
        ncname(),
        proptest::option::of((ncname(), text(10))),
        proptest::option::of(nonempty(10)),
    )
        .prop_map(|(namespace, name, attr, t)| AnyElement {
            namespace,
            name,
            attributes: attr
                .map(|(name, value)| AnyAttribute {
                    namespace: None,
                    name,
                    value,
                })
                .into_iter()
                .collect(),
            content: t.map(ExtensionContent::Text).into_iter().collect(),
        });
    if depth == 0 {
        return leaf.boxed();
    }
    (
        leaf,
        proptest::collection::vec(any_element(depth - 1), 0..3),
    )
        .prop_map(|(mut e, kids)| {
            e.content
                .extend(kids.into_iter().map(ExtensionContent::Element));
            e
        })
        .boxed()
}

fn mixed() -> impl Strategy<Value = Vec<ExtensionContent>> {
    proptest::collection::vec((text(8), proptest::option::of(any_element(2))), 0..3).prop_map(|v| {
        let mut out: Vec<ExtensionContent> = Vec::new();
        for (t, e) in v {
            if !t.is_empty() {
                match out.last_mut() {
                    Some(ExtensionContent::Text(prev)) => prev.push_str(&t),
                    _ => out.push(ExtensionContent::Text(t)),
                }
            }
            if let Some(e) = e {
                out.push(ExtensionContent::Element(e));
            }
        }
        out
    })
}

fn additional_data() -> impl Strategy<Value = v2::ExtensionData> {
    (
        proptest::sample::select(v2::Dtype::ALL.to_vec()),
        proptest::option::of(text(8)),
        mixed(),
    )
        .prop_map(|(dtype, meaning, content)| v2::ExtensionData {
            dtype: Some(dtype),
            meaning,
            content,
            ..Default::default()
        })
}

fn event_data(depth: u32) -> BoxedStrategy<v2::EventData> {
    let base = (
        proptest::collection::vec(ml(), 0..2),
        proptest::option::of(datetime()),
        proptest::option::of(datetime()),
        proptest::collection::vec(
            proptest::collection::vec(system(), 1..3).prop_map(|system| v2::Flow { system }),
            0..2,
        ),
        proptest::collection::vec(additional_data(), 0..2),
    )
        .prop_map(
            |(description, detect_time, start_time, flow, additional_data)| v2::EventData {
                description,
                detect_time,
                start_time,
                flow,
                additional_data,
                ..Default::default()
            },
        );
    if depth == 0 {
        return base.boxed();
    }
    (base, proptest::collection::vec(event_data(depth - 1), 0..2))
        .prop_map(|(mut e, kids)| {
            e.event_data = kids;
            e
        })
        .boxed()
}

fn contact() -> impl Strategy<Value = v2::Contact> {
    (
        prop_oneof![
            proptest::sample::select(v2::ContactRole::ALL.to_vec()),
            nonempty(8).prop_map(v2::ContactRole::Ext)
        ],
        proptest::sample::select(v2::ContactType::ALL.to_vec()),
        proptest::collection::vec(ml(), 0..2),
        proptest::option::of("[a-z]{1,8}@[a-z]{1,8}\\.org"),
    )
        .prop_map(|(role, kind, contact_name, email)| v2::Contact {
            role: Some(role),
            kind: Some(kind),
            contact_name,
            email: email
                .map(|e| v2::Email {
                    email_to: Some(e),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        })
}

fn incident() -> impl Strategy<Value = v2::Incident> {
    (
        (
            proptest::sample::select(v2::IncidentPurpose::ALL.to_vec()),
            proptest::option::of(restriction()),
            text(12),
            nonempty(12),
            datetime(),
            proptest::option::of(datetime()),
        ),
        proptest::collection::vec(ml(), 0..2),
        proptest::collection::vec(
            (
                proptest::collection::vec(ml(), 0..2),
                proptest::sample::select(v2::SystemimpactType::ALL.to_vec()),
            ),
            0..2,
        ),
        proptest::collection::vec(contact(), 1..3),
        proptest::collection::vec(event_data(1), 0..4),
        proptest::collection::vec(additional_data(), 0..2),
    )
        .prop_map(
            |(
                (purpose, restriction, id, name, gen, detect),
                description,
                assessment,
                contact,
                event_data,
                additional_data,
            )| {
                v2::Incident {
                    purpose: Some(purpose),
                    restriction,
                    incident_id: Some(v2::IncidentID {
                        name: Some(name),
                        value: id,
                        ..Default::default()
                    }),
                    generation_time: Some(gen),
                    detect_time: detect,
                    description,
                    assessment: assessment
                        .into_iter()
                        .map(|(cat, kind)| v2::Assessment {
                            incident_category: cat,
                            choice: vec![v2::AssessmentChoice::SystemImpact(v2::SystemImpact {
                                kind: Some(kind),
                                ..Default::default()
                            })],
                            ..Default::default()
                        })
                        .collect(),
                    contact,
                    event_data,
                    additional_data,
                    ..Default::default()
                }
            },
        )
}

fn document() -> impl Strategy<Value = v2::Document> {
    (
        proptest::option::of(prop_oneof![Just("en".to_string()), Just("fr".to_string())]),
        proptest::collection::vec(incident(), 1..3),
        proptest::collection::vec(additional_data(), 0..2),
    )
        .prop_map(|(lang, incident, additional_data)| v2::Document {
            lang,
            incident,
            additional_data,
            ..Default::default()
        })
}

fn errors(diagnostics: Vec<iodef::Diagnostic>) -> Vec<iodef::Diagnostic> {
    diagnostics
        .into_iter()
        .filter(|d| d.severity == iodef::Severity::Error)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn write_validate_read_equal(doc in document(), indent in any::<bool>()) {
        let doc = Document::V2(doc);
        // Warnings (say, source and target Portlists of different lengths) are allowed: the
        // schema and the RFC text accept such documents, and so must the round trip.
        let problems = errors(doc.check());
        prop_assert!(problems.is_empty(), "generator made an invalid model: {}", problems[0]);
        let xml = doc.to_xml(WriteOptions { indent, ..WriteOptions::default() }).expect("write");
        if let Err(e) = common::xmllint_bytes(Version::V2, xml.as_bytes()) {
            prop_assert!(false, "xmllint rejected our output: {e}\n{xml}");
        }
        let back = Document::from_slice(xml.as_bytes(), &ReadOptions::strict()).expect("read back");
        prop_assert!(errors(back.diagnostics.clone()).is_empty(), "{:?}", back.diagnostics);
        prop_assert_eq!(&back.document, &doc);

        // The same through the streaming reader.
        let mut r = iodef::StreamReader::new(xml.as_bytes(), &ReadOptions::strict()).expect("open");
        let mut incidents = Vec::new();
        while let Some(i) = r.next_incident().expect("stream") {
            incidents.push(i);
        }
        let Document::V2(d) = &doc else { unreachable!("v2") };
        prop_assert_eq!(&incidents, &d.incident);

        // And down to v1: what converts must validate against the v1 schema.
        let v1 = doc.convert(Version::V1).value;
        let problems = errors(v1.check());
        prop_assert!(problems.is_empty(), "v1 conversion invalid: {}", problems[0]);
        let xml1 = v1.to_xml(WriteOptions::default()).expect("write v1");
        if let Err(e) = common::xmllint_bytes(Version::V1, xml1.as_bytes()) {
            prop_assert!(false, "xmllint rejected v1 output: {e}\n{xml1}");
        }
        let back1 = Document::from_slice(xml1.as_bytes(), &ReadOptions::strict()).expect("read v1");
        prop_assert_eq!(&back1.document, &v1);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Document::from_slice(&bytes, &ReadOptions::strict());
        let _ = Document::from_slice(&bytes, &ReadOptions::lenient());
        let _ = iodef::validate(bytes.as_slice(), &iodef::ValidateOptions::default());
    }

    #[test]
    fn mutated_documents_never_panic(
        doc in document(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut xml = Document::V2(doc).to_xml(WriteOptions::default()).expect("write").into_bytes();
        for (cut, byte) in edits {
            let i = cut.index(xml.len());
            xml[i] = byte;
        }
        for opts in [ReadOptions::strict(), ReadOptions::lenient()] {
            if let Ok(l) = Document::from_slice(&xml, &opts) {
                // Whatever loads can be checked and, if valid, written.
                if l.document.check().is_empty() {
                    let out = l.document.to_xml(WriteOptions::default()).expect("valid model writes");
                    let back = Document::from_slice(out.as_bytes(), &ReadOptions::strict()).expect("reads back");
                    prop_assert_eq!(&back.document, &l.document);
                }
            }
        }
        let _ = iodef::validate(xml.as_slice(), &iodef::ValidateOptions::default());
    }
}
