//! The validator: every rule reports its path and line; v1 never passes as v2.

mod common;

use iodef::{validate, Severity, ValidateOptions, Version};

const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="ext-value" restriction="amber">
<IncidentID name="csirt.example">1</IncidentID>
<GenerationTime>2024-02-30T00:00:00Z</GenerationTime>
<Contact role="creator" type="organization"/>
<EventData><Flow>
<System category="source"><Node><Address category="ipv4-addr">999.0.2.1</Address></Node>
<Service><Port>22</Port></Service>
<Service ip-protocol="6"><Port>70000</Port></Service>
<Service ip-protocol="6"><Portlist>1000-1002</Portlist></Service></System>
<System category="target"><Node/><Service ip-protocol="6"><Portlist>22,80</Portlist></Service></System>
</Flow></EventData>
</Incident></IODEF-Document>
"#;

#[test]
fn every_rule_is_reported_with_path_and_line() {
    let r = validate(DOC.as_bytes(), &ValidateOptions::default());
    assert_eq!(r.version, Some(Version::V2));
    assert!(!r.is_valid());
    let all: Vec<String> = r.diagnostics.iter().map(ToString::to_string).collect();
    let text = all.join("\n");
    let expect = [
        (
            "`purpose`=\"ext-value\" requires a non-empty `ext-purpose`",
            3,
        ),
        (
            "invalid value `2024-02-30T00:00:00Z` for element `GenerationTime`",
            5,
        ),
        ("`999.0.2.1` is not valid for category `ipv4-addr`", 7),
        ("requires attribute `ip-protocol`", 7),
        ("invalid value `70000` for element `Port`", 10),
        (
            "`Node` must contain at least one `Address` or `DomainData`",
            7,
        ),
        ("Portlists pair by position but list 3 and 2 ports", 7),
    ];
    for (msg, line) in expect {
        let d = r
            .diagnostics
            .iter()
            .find(|d| d.message.contains(msg))
            .unwrap_or_else(|| panic!("missing `{msg}` in:\n{text}"));
        assert_eq!(d.location.line, line, "{d}");
        assert!(
            d.location.path.starts_with("/IODEF-Document/Incident"),
            "{d}"
        );
    }
    let warnings = r
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    assert_eq!(warnings, 1, "{text}");
    assert_eq!(r.incidents, 1);
    assert_eq!(r.event_data, 1);
}

#[test]
fn versions_are_told_apart_by_namespace() {
    for (rel, version) in [
        ("rfc5070/rfc5070-7.1-worm.xml", Version::V1),
        ("rfc7970/rfc7970-7.1-minimal.xml", Version::V2),
    ] {
        let bytes = std::fs::read(common::examples().join(rel)).expect("example");
        let any = validate(bytes.as_slice(), &ValidateOptions::default());
        assert!(any.is_valid(), "{rel}: {:?}", any.diagnostics.first());
        assert_eq!(any.version, Some(version));
        let same = validate(
            bytes.as_slice(),
            &ValidateOptions {
                expect: Some(version),
                ..ValidateOptions::default()
            },
        );
        assert!(same.is_valid());
        let other = if version == Version::V1 {
            Version::V2
        } else {
            Version::V1
        };
        let wrong = validate(
            bytes.as_slice(),
            &ValidateOptions {
                expect: Some(other),
                ..ValidateOptions::default()
            },
        );
        assert!(!wrong.is_valid(), "{rel} passed as {other:?}");
        // xmllint agrees that the v1 document "validates" against the v2 schema (it imports v1
        // through SCI): only the namespace check catches it.
        if version == Version::V1 {
            common::xmllint(Version::V2, &common::examples().join(rel))
                .expect("the v2 schema accepts a v1 document");
        }
    }
}

#[test]
fn corpus_validation_agrees_with_xmllint() {
    for (file, schema, valid) in common::expected() {
        let version = match schema.as_str() {
            "iodef-2.0.xsd" => Version::V2,
            "iodef-1.0.xsd" => Version::V1,
            _ => continue,
        };
        let path = common::examples().join(file.trim_start_matches("examples/"));
        let bytes = std::fs::read(&path).expect("example");
        let r = validate(
            bytes.as_slice(),
            &ValidateOptions {
                expect: Some(version),
                ..ValidateOptions::default()
            },
        );
        // Namespace mismatches (a v1 document "valid" against iodef-2.0.xsd) are deliberate.
        let root_ns_matches = r.version == Some(version);
        if valid && root_ns_matches {
            assert!(r.is_schema_valid(), "{file}: {:?}", r.errors().next());
        }
        if !valid {
            assert!(
                !r.is_schema_valid(),
                "{file} is invalid per xmllint against {schema}"
            );
        }
    }
}

#[test]
fn ids_are_unique_and_references_resolve() {
    let doc = |a: &str, b: &str, r: &str| {
        format!(
            r#"<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="reporting"><IncidentID name="c">1</IncidentID>
<GenerationTime>2024-01-01T00:00:00Z</GenerationTime>
<Contact role="creator" type="organization"/>
<EventData><Flow><System category="source"><Node><Address category="ipv4-addr" observable-id="{a}">192.0.2.1</Address></Node></System></Flow></EventData>
<EventData><Flow><System category="source"><Node><Address category="ipv4-addr" observable-id="{b}">192.0.2.2</Address></Node></System></Flow></EventData>
<IndicatorData><Indicator><IndicatorID name="c" version="1">ind-1</IndicatorID><ObservableReference uid-ref="{r}"/></Indicator></IndicatorData>
</Incident></IODEF-Document>"#
        )
    };
    let good = doc("addr-1", "addr-2", "addr-2");
    common::xmllint_bytes(Version::V2, good.as_bytes()).expect("xmllint accepts");
    assert!(validate(good.as_bytes(), &ValidateOptions::default()).is_valid());
    let loaded =
        iodef::Document::from_slice(good.as_bytes(), &iodef::ReadOptions::strict()).expect("load");
    assert!(loaded.document.check().is_empty());

    let dup = doc("addr-1", "addr-1", "addr-1");
    assert!(common::xmllint_bytes(Version::V2, dup.as_bytes()).is_err());
    let r = validate(dup.as_bytes(), &ValidateOptions::default());
    assert!(
        r.errors()
            .any(|d| d.message.contains("duplicate ID `addr-1`")),
        "{:?}",
        r.diagnostics
    );
    let loaded = iodef::Document::from_slice(dup.as_bytes(), &iodef::ReadOptions::strict())
        .expect("schema structure is fine");
    assert!(matches!(
        loaded.document.to_xml(iodef::WriteOptions::default()),
        Err(iodef::Error::Rejected(_))
    ));

    let dangling = doc("addr-1", "addr-2", "nowhere");
    // Debian's xmllint does not resolve IDREFs; XML Schema 1.0 requires it (Validation Root
    // Valid (ID/IDREF)), and so does the validator.
    let r = validate(dangling.as_bytes(), &ValidateOptions::default());
    assert!(
        r.errors()
            .any(|d| d.message.contains("`nowhere` does not match any ID")),
        "{:?}",
        r.diagnostics
    );
}

/// A document whose only problems are rules of the RFC text beyond the schema (RFC 8274's own
/// example B.2 has a `Node` with neither Address nor DomainData) is schema-valid but not
/// valid; one that breaks the schema is neither.
#[test]
fn rfc_text_rules_are_told_from_schema_rules() {
    let path = common::examples().join("rfc8274/rfc8274-B.2-ddos.xml");
    let r = validate(
        std::fs::read(path).unwrap().as_slice(),
        &ValidateOptions::default(),
    );
    assert!(r.is_schema_valid(), "{:?}", r.diagnostics);
    assert!(!r.is_valid());
    assert!(
        r.errors()
            .all(|d| d.message.contains("RFC 7970 section 3.18")),
        "{:?}",
        r.diagnostics
    );
    let bad = validate(DOC.as_bytes(), &ValidateOptions::default());
    assert!(!bad.is_schema_valid());
    // A text rule alone, in a document of our own.
    let node_only = DOC
        .replace("2024-02-30T00:00:00Z", "2024-02-28T00:00:00Z")
        .replace("999.0.2.1", "192.0.2.1")
        .replace("<Service><Port>22</Port></Service>\n", "")
        .replace("<Port>70000</Port>", "<Port>7000</Port>")
        .replace(r#"purpose="ext-value""#, r#"purpose="reporting""#);
    let r = validate(node_only.as_bytes(), &ValidateOptions::default());
    assert!(r.is_schema_valid(), "{:?}", r.diagnostics);
    assert!(!r.is_valid(), "{:?}", r.diagnostics);
}

/// Every location is printed once: `error: <path> (line L, column C): refused: ...`.
#[test]
fn a_diagnostic_names_its_location_once() {
    for doc in [
        "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY a \"b\">]><x/>",
        "<?xml version=\"1.0\"?>\n<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"><Incident>",
        "<?xml version=\"1.0\"?>\n<html/>",
    ] {
        let r = validate(doc.as_bytes(), &ValidateOptions::default());
        let text = r.errors().next().expect("an error").to_string();
        assert_eq!(text.matches("(line ").count(), 1, "{text}");
        assert!(text.matches(": ").count() >= 2, "{text}");
        assert!(!text.contains("/ (line 2, column 2): / "), "{text}");
    }
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let units = bom
        .then_some(0xFEFF_u16)
        .into_iter()
        .chain(text.encode_utf16());
    for u in units {
        out.extend(if big_endian {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

/// UTF-16 documents (XML 1.0 section 4.3.3: every processor reads them), with a byte-order
/// mark or told by their first characters, little- and big-endian, validate and read as their
/// UTF-8 original does; a declaration that contradicts the bytes is refused, saying so.
#[test]
fn utf16_documents_are_read_as_their_utf8_original() {
    let path = common::examples().join("rfc8274/rfc8274-B.1-malware-delivery-url.xml");
    let original = std::fs::read_to_string(path).unwrap();
    let declared = original.replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1);
    assert_ne!(declared, original);
    let want = validate(original.as_bytes(), &ValidateOptions::default());
    assert!(want.is_valid(), "{:?}", want.diagnostics);
    let read_all = |bytes: &[u8]| {
        let mut r = iodef::StreamReader::new(bytes, &iodef::ReadOptions::strict()).unwrap();
        let mut ids = Vec::new();
        while let Some(i) = r.next_incident().unwrap() {
            ids.push(i.incident_id.map(|x| x.value));
        }
        ids
    };
    let ids = read_all(original.as_bytes());
    assert!(!ids.is_empty());
    for (big, bom) in [(false, true), (true, true), (false, false), (true, false)] {
        let bytes = utf16(&declared, big, bom);
        let r = validate(bytes.as_slice(), &ValidateOptions::default());
        assert!(
            r.is_valid(),
            "big-endian {big}, BOM {bom}: {:?}",
            r.diagnostics
        );
        assert_eq!(
            (r.incidents, r.event_data),
            (want.incidents, want.event_data)
        );
        assert_eq!(read_all(&bytes), ids, "big-endian {big}, BOM {bom}");
    }
    // With a BOM the declaration may be left out.
    let bare = original.split_once("?>").unwrap().1;
    let r = validate(
        utf16(bare, false, true).as_slice(),
        &ValidateOptions::default(),
    );
    assert!(r.is_valid(), "{:?}", r.diagnostics);
    // Contradictions, and Latin-1, refused by name.
    let latin = original.replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1);
    for (bytes, says) in [
        (declared.into_bytes(), "not UTF-16"),
        (utf16(&original, false, true), "the document is UTF-16"),
        (latin.into_bytes(), "`iso-8859-1`: only UTF-8 and UTF-16"),
    ] {
        let r = validate(bytes.as_slice(), &ValidateOptions::default());
        let e = r.errors().next().expect("refused").to_string();
        assert!(e.contains(says), "{e}");
    }
}
