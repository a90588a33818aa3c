//! Hostile input: DTDs, entities, caps, bad bytes, truncation. Errors, never panics.

mod common;

use iodef::{
    validate, DateTime, Document, Error, Limits, ReadOptions, ScanEvent, ScanReport, StreamReader,
    StreamWriter, ValidateOptions, WriteOptions,
};

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="reporting"><IncidentID name="csirt.example">1</IncidentID>
<GenerationTime>2024-01-01T00:00:00Z</GenerationTime>
<Contact role="creator" type="organization"/>"#;
const TAIL: &str = "</Incident></IODEF-Document>";

fn doc(body: &str) -> String {
    format!("{HEAD}{body}{TAIL}")
}

fn strict(xml: &[u8]) -> Result<iodef::Loaded, Error> {
    Document::from_slice(xml, &ReadOptions::strict())
}

/// Strict reading with these limits.
fn strict_with(limits: Limits) -> ReadOptions {
    ReadOptions {
        lenient: false,
        limits,
    }
}

/// The limit, cap and location of the limit error that stops reading `xml` strictly; fails
/// the test on any other outcome.
fn strict_limit(xml: &str) -> (&'static str, u64, iodef::Location) {
    match strict(xml.as_bytes()) {
        Err(Error::Limit {
            limit,
            cap,
            location,
        }) => (limit, cap, location),
        other => panic!("expected a limit, got {:?}", other.map(|_| ())),
    }
}

/// `depth` nested elements inside an `AdditionalData` of type xml.
fn nested(depth: usize) -> String {
    doc(&format!(
        "<AdditionalData dtype=\"xml\">{}{}</AdditionalData>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    ))
}

/// The error that stops streaming `xml`; fails the test when the stream reads to the end.
fn stream_error(xml: &str, opts: &ReadOptions) -> Error {
    let mut r = StreamReader::new(xml.as_bytes(), opts).expect("open");
    loop {
        match r.next_item() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("read to the end"),
            Err(e) => break e,
        }
    }
}

fn valid_report() -> Vec<u8> {
    let t = |s| DateTime::from_unix(1_700_000_000 + s, 0).expect("time");
    let mut w = StreamWriter::new(
        Vec::new(),
        &iodef::v2::Document::default(),
        WriteOptions::compact(),
    )
    .expect("start");
    w.begin_incident(&ScanReport::new("csirt.example", "1", t(0)).incident())
        .expect("incident");
    for i in 0..3 {
        let e = ScanEvent::tcp(
            "192.0.2.1".parse().expect("ip"),
            1000 + i,
            22,
            t(i64::from(i)),
        );
        w.write_event_data(&e.event_data()).expect("event");
    }
    w.finish().expect("finish")
}

#[test]
fn billion_laughs_is_refused() {
    let x = format!(
        "<?xml version=\"1.0\"?>\n{}<IODEF-Document version=\"2.00\" \
         xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\">&lol9;</IODEF-Document>",
        common::billion_laughs_doctype("\n")
    );
    match strict(x.as_bytes()) {
        Err(Error::Forbidden { location, message }) => {
            assert_eq!(location.line, 2);
            assert!(message.contains("DTD"), "{message}");
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let r = validate(x.as_bytes(), &ValidateOptions::default());
    assert!(!r.is_valid());
    assert!(r.diagnostics[0].message.contains("DTD"));
}

#[test]
fn xxe_is_refused() {
    let x = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n{}",
        doc("<AdditionalData dtype=\"string\">&xxe;</AdditionalData>")
            .split_once('\n')
            .expect("decl")
            .1
    );
    assert!(matches!(strict(x.as_bytes()), Err(Error::Forbidden { .. })));
    // Without a DTD an undefined entity is refused too, in text and in attributes.
    let y = doc("").replace(
        "<IncidentID name=\"csirt.example\">1",
        "<IncidentID name=\"csirt.example\">&xxe;",
    );
    match strict(y.as_bytes()) {
        Err(Error::Forbidden { message, location }) => {
            assert!(message.contains("&xxe;"), "{message}");
            assert!(location.path.ends_with("/IncidentID"), "{location}");
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let z = doc("").replace("name=\"csirt.example\"", "name=\"&xxe;\"");
    assert!(matches!(strict(z.as_bytes()), Err(Error::Forbidden { .. })));
    assert!(matches!(
        Document::from_slice(z.as_bytes(), &ReadOptions::lenient()),
        Err(Error::Forbidden { .. })
    ));
}

#[test]
fn predefined_entities_and_char_refs_are_fine() {
    let x = doc("<AdditionalData dtype=\"string\">a &amp; b &lt;c&gt; &#233;&#x263A; &quot;&apos;</AdditionalData>");
    let l = strict(x.as_bytes()).expect("valid");
    let iodef::Document::V2(d) = l.document else {
        panic!("v2")
    };
    assert_eq!(
        d.incident[0].additional_data[0].content,
        vec![iodef::ExtensionContent::Text(
            "a & b <c> \u{e9}\u{263a} \"'".into()
        )]
    );
    let bad = doc("<AdditionalData dtype=\"string\">&#0;</AdditionalData>");
    assert!(matches!(strict(bad.as_bytes()), Err(Error::Syntax { .. })));
}

/// A namespace name is the declaring attribute's normalised value: references expanded
/// (`&amp;`, `&#46;`), whitespace as spaces. Read raw, `&amp;` would survive as five
/// characters and a written document would not read back to its model (found by
/// `roundtrip_prop::mutated_documents_never_panic`).
#[test]
fn namespace_declarations_are_unescaped_and_normalised() {
    let x = doc(concat!(
        "<AdditionalData dtype=\"xml\">",
        "<e xmlns=\"urn:x?a=1&amp;b=2\"/>",
        "<f xmlns=\"urn:ietf:params:xml:ns:iodef-2&#46;0\"/>",
        "<g xmlns=\"urn:y\tz\"/>",
        "</AdditionalData>"
    ));
    let l = strict(x.as_bytes()).expect("valid");
    let iodef::Document::V2(d) = &l.document else {
        panic!("v2")
    };
    let ns: Vec<Option<String>> = d.incident[0].additional_data[0]
        .content
        .iter()
        .map(|c| match c {
            iodef::ExtensionContent::Element(e) => e.namespace.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ns,
        [
            Some("urn:x?a=1&b=2".to_string()),
            Some("urn:ietf:params:xml:ns:iodef-2.0".to_string()),
            Some("urn:y z".to_string()),
        ]
    );
    // Written and read again, the model is unchanged.
    let out = l.document.to_xml(WriteOptions::default()).expect("writes");
    let back = strict(out.as_bytes()).expect("reads back");
    assert_eq!(back.document, l.document);
    // The root's own declaration is read the same way.
    let root = x.replacen("iodef-2.0\">", "iodef-2&#x2e;0\">", 1);
    assert!(matches!(
        strict(root.as_bytes()).expect("root").document,
        Document::V2(_)
    ));
    let bad = doc("<AdditionalData dtype=\"xml\"><e xmlns=\"urn:&#0;\"/></AdditionalData>");
    assert!(matches!(strict(bad.as_bytes()), Err(Error::Syntax { .. })));
}

#[test]
fn deep_nesting_is_capped() {
    let deep = nested(100_000);
    let (limit, cap, location) = strict_limit(&deep);
    assert_eq!(limit, "max_depth");
    assert_eq!(cap, 64);
    assert!(location.line > 0);
    let opts = strict_with(Limits {
        max_depth: 200_000,
        ..Limits::default()
    });
    // A lifted cap is still bounded by the hard ceiling of 256 levels (the stack).
    match Document::from_slice(deep.as_bytes(), &opts) {
        Err(Error::Limit { cap, .. }) => assert_eq!(cap, 256),
        other => panic!("expected Limit, got {:?}", other.err()),
    }
    for (what, depth) in [("at the ceiling", 250), ("shallow", 50)] {
        let ok = Document::from_slice(nested(depth).as_bytes(), &opts);
        assert!(ok.is_ok(), "{what}: {:?}", ok.err());
    }
}

#[test]
fn size_element_and_token_caps() {
    let report = valid_report();
    let additional = |attrs: &str, text: &str| {
        doc(&format!(
            "<AdditionalData dtype=\"string\"{attrs}>{text}</AdditionalData>"
        ))
        .into_bytes()
    };
    let token_cap = Limits {
        max_token_bytes: 1 << 20,
        ..Limits::default()
    };
    // (what, input, limits, the limit named in the error: `None` for any limit)
    let cases: [(&str, Vec<u8>, Limits, Option<&str>); 5] = [
        (
            "a small byte cap",
            report.clone(),
            Limits {
                max_bytes: 500,
                ..Limits::default()
            },
            Some("max_bytes"),
        ),
        (
            "a small element cap",
            report,
            Limits {
                max_elements: 10,
                ..Limits::default()
            },
            Some("max_elements"),
        ),
        (
            "one long text",
            additional("", &"x".repeat(3 << 20)),
            token_cap,
            Some("max_token_bytes"),
        ),
        // Many entity-separated text pieces add up to the same cap.
        (
            "entity-separated text pieces",
            additional("", &"ab&amp;".repeat(500_000)),
            token_cap,
            Some("max_token_bytes"),
        ),
        (
            "one long start tag",
            additional(&format!(" a=\"{}\"", "y".repeat(3 << 20)), "x"),
            token_cap,
            None,
        ),
    ];
    for (what, input, limits, expected) in cases {
        match Document::from_slice(&input, &strict_with(limits)) {
            Err(Error::Limit { limit, .. }) => {
                if let Some(expected) = expected {
                    assert_eq!(limit, expected, "{what}");
                }
            }
            other => panic!("{what}: expected Limit, got {:?}", other.err()),
        }
    }
}

#[test]
fn invalid_utf8_is_refused() {
    let good = doc("<AdditionalData dtype=\"string\">caf\u{e9}</AdditionalData>");
    let mut bad = good.clone().into_bytes();
    let i = bad.iter().position(|&b| b == 0xC3).expect("e-acute");
    bad[i] = 0xFF;
    match strict(&bad) {
        Err(Error::Syntax { message, location }) => {
            assert!(message.contains("UTF-8"), "{message}");
            assert!(location.line > 0);
        }
        other => panic!("expected Syntax, got {other:?}"),
    }
    // In an attribute value and an element name.
    let attr = doc("").replace("csirt.example", "csirt\u{e9}").into_bytes();
    let mut attr = attr;
    let i = attr.iter().position(|&b| b == 0xC3).expect("e-acute");
    attr[i + 1] = 0x28;
    assert!(matches!(strict(&attr), Err(Error::Syntax { .. })));
    let mut name = doc("<Descr\u{e9}ption>x</Descr\u{e9}ption>").into_bytes();
    for b in name.iter_mut() {
        if *b == 0xC3 {
            *b = 0xFE;
        }
    }
    assert!(strict(&name).is_err());
    // Other declared encodings are refused cleanly; UTF-16 is read (tests/validate.rs), but
    // not under a declaration that says otherwise.
    let latin = doc("").replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"");
    assert!(matches!(
        strict(latin.as_bytes()),
        Err(Error::Syntax { .. })
    ));
    let utf16 = |text: &str| {
        let mut out = vec![0xFF, 0xFE];
        for c in text.encode_utf16() {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    };
    assert!(matches!(
        strict(&utf16(&doc(""))),
        Err(Error::Syntax { .. })
    ));
    let declared = doc("").replace("encoding=\"UTF-8\"", "encoding=\"UTF-16\"");
    assert!(strict(&utf16(&declared)).is_ok());
    // Hostile UTF-16: a lone surrogate, an odd byte count, a BOM and nothing: an answer, no
    // panic; a DTD is refused as in UTF-8.
    let mut lone = utf16(&declared);
    let at = (lone.len() / 2) & !1;
    lone[at] = 0x00;
    lone[at + 1] = 0xD8;
    let _ = strict(&lone);
    let mut odd = utf16(&declared);
    odd.push(b'<');
    assert!(strict(&odd).is_err());
    assert!(strict(&[0xFF, 0xFE]).is_err());
    assert!(strict(&[0xFE, 0xFF, 0x00]).is_err());
    let dtd = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x/>";
    assert!(matches!(strict(&utf16(dtd)), Err(Error::Forbidden { .. })));
}

#[test]
fn every_truncation_is_an_error() {
    let x = valid_report();
    let end = x.iter().rposition(|&b| b == b'>').expect("root end");
    for cut in 0..end {
        for opts in [ReadOptions::strict(), ReadOptions::lenient()] {
            match Document::from_slice(&x[..cut], &opts) {
                Err(Error::Syntax { .. }) => {}
                other => panic!("cut at {cut}: expected Syntax error, got {other:?}"),
            }
        }
    }
    // The streaming reader and the validator agree.
    let cut = &x[..x.len() / 2];
    let mut r = StreamReader::new(cut, &ReadOptions::strict()).expect("prolog is complete");
    let mut err = None;
    loop {
        match r.next_item() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(err, Some(Error::Syntax { .. })), "{err:?}");
    let rep = validate(cut, &ValidateOptions::default());
    assert!(!rep.is_valid());
    assert!(rep
        .diagnostics
        .last()
        .expect("diag")
        .message
        .contains("truncated"));
}

#[test]
fn garbage_and_structure_errors() {
    for input in [
        &b""[..],
        b"   ",
        b"<",
        b"<a",
        b"<?xml version=\"1.0\"?>",
        b"not xml at all",
        b"<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"></IODEF-Document><x/>",
        b"<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"></Incident>",
        b"<p:IODEF-Document version=\"2.00\"/>",
        b"\x00\x01\x02\xff\xfe",
        b"<IODEF-Document version=\"2.00\"></IODEF-Document>",
    ] {
        assert!(
            strict(input).is_err(),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        let r = validate(input, &ValidateOptions::default());
        assert!(!r.is_valid());
        assert!(!r.diagnostics.is_empty());
    }
    // Wrong root.
    match strict(b"<html xmlns=\"http://www.w3.org/1999/xhtml\"/>") {
        Err(Error::NotIodef { found, .. }) => {
            assert_eq!(found, "{http://www.w3.org/1999/xhtml}html")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lenient_mode_loads_what_it_can() {
    // Out-of-order element, unknown element, bad enumeration, bad time, missing Contact.
    let x = r#"<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="reporting" status="bogus"><IncidentID name="c">1</IncidentID>
<GenerationTime> 2024-01-01T00:00:00Z</GenerationTime>
<StartTime>yesterday</StartTime>
<Unknown>x</Unknown>
<EventData><Flow><System category="source"><Node><Address category="ipv4-addr">192.0.2.1</Address></Node>
<Service ip-protocol="6"><Port>99999</Port></Service></System></Flow></EventData>
</Incident></IODEF-Document>"#;
    let e = strict(x.as_bytes()).expect_err("invalid");
    assert_eq!(e.location().expect("located").line, 2, "{e}");
    let l = Document::from_slice(x.as_bytes(), &ReadOptions::lenient()).expect("lenient load");
    let msgs: Vec<String> = l.diagnostics.iter().map(ToString::to_string).collect();
    let all = msgs.join("\n");
    assert!(all.contains("`bogus`"), "{all}");
    assert!(all.contains("StartTime"), "{all}");
    assert!(all.contains("Unknown"), "{all}");
    assert!(all.contains("99999"), "{all}");
    assert!(all.contains("missing required element `Contact`"), "{all}");
    assert!(all.contains("line 4"), "{all}");
    let iodef::Document::V2(d) = l.document else {
        panic!("v2")
    };
    let inc = &d.incident[0];
    // Leading whitespace in xs:dateTime is trimmed when reading.
    assert_eq!(
        inc.generation_time.as_ref().map(|t| t.as_str()),
        Some("2024-01-01T00:00:00Z")
    );
    assert_eq!(inc.event_data.len(), 1);
    assert!(inc.start_time.is_none());
}

/// A root start tag with `n` attributes `a0="" a1="" ...` (12 MB for a million), plus
/// `extra` at its end.
fn many_attributes(n: usize, extra: &str) -> String {
    let mut t = String::from(
        "<IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
    );
    for i in 0..n {
        t.push_str(&format!(" xsi:a{i}=\"\""));
    }
    t.push_str(extra);
    t.push_str("><Incident purpose=\"reporting\"/></IODEF-Document>");
    t
}

fn raised() -> ReadOptions {
    ReadOptions {
        lenient: true,
        limits: Limits {
            max_attributes: u32::MAX,
            max_namespaces: u32::MAX,
            max_token_bytes: 64 << 20,
            ..Limits::default()
        },
    }
}

#[test]
fn a_million_attributes_are_read_in_linear_time_and_capped_by_default() {
    let x = many_attributes(1_000_000, " xsi:a999999=\"dup\"");
    assert!(x.len() > 12_000_000);
    let t = std::time::Instant::now();
    match Document::from_slice(x.as_bytes(), &raised()) {
        Err(Error::Syntax { message, location }) => {
            assert!(message.contains("duplicate"), "{message}");
            assert_eq!(location.line, 1);
        }
        other => panic!("expected the duplicate, got {:?}", other.map(|_| ())),
    }
    // Quadratic, this did not finish in 2 minutes; linear, it is a few seconds even unoptimised.
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    let (limit, cap, location) = strict_limit(&x);
    assert_eq!((limit, cap), ("max_attributes", 1024));
    assert_eq!(location.path, "/IODEF-Document", "names the element");
}

#[test]
fn many_namespace_declarations_resolve_in_linear_time_and_are_capped() {
    // 300,000 prefixes declared on the root, each used by an attribute of the Incident: every
    // lookup goes through the hash index (a scan per lookup took about a minute).
    let n = 300_000;
    let mut x =
        String::from("<IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"");
    for i in 0..n {
        x.push_str(&format!(
            " xmlns:p{i}=\"http://www.w3.org/2001/XMLSchema-instance\""
        ));
    }
    x.push_str("><Incident purpose=\"reporting\"");
    for i in (0..n).step_by(3) {
        x.push_str(&format!(" p{i}:a{i}=\"\""));
    }
    x.push_str(" xml:lang=\"en\"/></IODEF-Document>");
    let t = std::time::Instant::now();
    let r = Document::from_slice(x.as_bytes(), &raised());
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    // Lenient: read to the end (the Incident lacks its children, which is only invalid).
    let loaded = r.expect("read to the end");
    assert!(!loaded.diagnostics.is_empty());
    // Scopes end with their element: a prefix declared on a closed element is unknown again.
    let scoped = "<IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\">\
        <Incident purpose=\"reporting\" xmlns:a=\"u:1\" xmlns:b=\"u:2\" xmlns:c=\"u:3\" \
        xmlns:d=\"u:4\" xmlns:e=\"u:5\" xmlns:f=\"u:6\" xmlns:g=\"u:7\" xmlns:h=\"u:8\" \
        xmlns:i=\"u:9\" xmlns:j=\"u:10\"><a:x/></Incident><Incident purpose=\"reporting\">\
        <a:x/></Incident></IODEF-Document>";
    match Document::from_slice(scoped.as_bytes(), &raised()) {
        Err(Error::Syntax { message, .. }) => {
            assert!(
                message.contains("undeclared namespace prefix `a`"),
                "{message}"
            )
        }
        other => panic!("expected the unknown prefix, got {:?}", other.map(|_| ())),
    }
    let mut x = String::from(
        "<IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\">\
         <Incident purpose=\"reporting\">",
    );
    for i in 0..1100 {
        x.push_str(&format!(
            "<AdditionalData dtype=\"xml\" xmlns:q{i}=\"u:{i}\">"
        ));
    }
    let (limit, cap, _) = strict_limit(&x);
    assert_eq!((limit, cap), ("max_depth", 64), "depth first here");
    let mut x =
        String::from("<IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"");
    for i in 0..600 {
        x.push_str(&format!(" xmlns:p{i}=\"u:{i}\""));
    }
    x.push_str("><Incident purpose=\"reporting\"");
    for i in 0..600 {
        x.push_str(&format!(" xmlns:q{i}=\"u:{i}\""));
    }
    x.push_str("/></IODEF-Document>");
    let (limit, cap, location) = strict_limit(&x);
    assert_eq!((limit, cap), ("max_namespaces", 1024));
    assert_eq!(
        location.path, "/IODEF-Document/Incident",
        "names the element"
    );
}

#[test]
fn unit_caps_bound_one_streamed_event_data() {
    let nested = doc(&format!(
        "<EventData>{}</EventData><EventData/>",
        "<EventData/>".repeat(50_000)
    ));
    let opts = strict_with(Limits {
        max_unit_elements: 10_000,
        ..Limits::default()
    });
    match stream_error(&nested, &opts) {
        Error::Limit {
            limit,
            cap,
            location,
        } => {
            assert_eq!((limit, cap), ("max_unit_elements", 10_000));
            assert_eq!(location.path, "/IODEF-Document/Incident/EventData");
        }
        other => panic!("{other:?}"),
    }
    // Many small units pass: the count starts again with each top-level EventData.
    let many = doc(&"<EventData><Description>x</Description></EventData>".repeat(30_000));
    let mut r = StreamReader::new(many.as_bytes(), &opts).expect("open");
    let mut n = 0;
    while let Some(item) = r.next_item().expect("item") {
        n += matches!(item, iodef::StreamItem::EventData(_)) as u32;
    }
    assert_eq!(n, 30_000);
    // The validator reports the cap as the reason.
    let report = validate(
        nested.as_bytes(),
        &ValidateOptions {
            expect: None,
            limits: opts.limits,
        },
    );
    assert!(!report.is_valid());
    assert!(
        report
            .errors()
            .any(|d| d.message.contains("max_unit_elements")),
        "{:?}",
        report.diagnostics
    );
    // Bytes: one EventData of 200 KB against a 64 KiB cap.
    let big = doc(&format!(
        "<EventData><Description>{}</Description></EventData>",
        "y".repeat(200_000)
    ));
    let opts = strict_with(Limits {
        max_unit_bytes: 64 << 10,
        ..Limits::default()
    });
    let err = stream_error(&big, &opts);
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: "max_unit_bytes",
                cap: 65536,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn long_values_are_shortened_in_diagnostics() {
    let v = "9".repeat(100_000);
    let x = doc(&format!(
        "<EventData><Flow><System category=\"source\"><Service ip-protocol=\"6\"><Port>{v}</Port>\
         </Service></System></Flow></EventData>"
    ));
    let report = validate(x.as_bytes(), &ValidateOptions::default());
    let d = report
        .errors()
        .find(|d| d.message.contains("Port"))
        .expect("the bad port is reported");
    assert!(d.message.len() < 400, "{}", d.message);
    assert!(d.message.contains("...(100000 bytes)"), "{}", d.message);
}
