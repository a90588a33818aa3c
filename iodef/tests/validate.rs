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
        let schema_errors = r
            .errors()
            .any(|d| !d.message.contains("RFC 7970 section 3.18"));
        // Namespace mismatches (a v1 document "valid" against iodef-2.0.xsd) are deliberate.
        let root_ns_matches = r.version == Some(version);
        if valid && root_ns_matches {
            assert!(!schema_errors, "{file}: {:?}", r.errors().next());
        }
        if !valid {
            assert!(
                !r.is_valid(),
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
