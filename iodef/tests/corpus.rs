//! The whole conformance corpus: valid documents load losslessly and write back valid;
//! invalid ones get precise diagnostics and load leniently.

mod common;

use iodef::{Document, ReadOptions, Version, WriteOptions};

/// Which schema (by root namespace) a file is valid against, per EXPECTED-xmllint.tsv.
fn expected_valid(rel: &str, version: Version) -> Option<bool> {
    let schema = common::schema_name(version);
    common::expected()
        .into_iter()
        .find(|(f, s, _)| f == &format!("examples/{rel}") && s == schema)
        .map(|(_, _, v)| v)
}

#[test]
fn corpus() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut valid_seen = 0;
    let mut invalid_seen = 0;
    for (rel, bytes) in common::read_all_examples() {
        let strict = Document::from_slice(&bytes, &ReadOptions::strict());
        if rel.starts_with("rfc6545/") {
            // RID messages (RFC 6545) are not IODEF documents: a clear refusal.
            match strict {
                Err(iodef::Error::NotIodef { location, found }) => {
                    assert!(found.contains("iodef-rid-2.0"), "{rel}: {found}");
                    assert!(location.line >= 1, "{rel}");
                }
                other => failures.push(format!("{rel}: expected NotIodef, got {other:?}")),
            }
            continue;
        }
        let lenient = Document::from_slice(&bytes, &ReadOptions::lenient());
        let version = match (&strict, &lenient) {
            (Ok(l), _) | (_, Ok(l)) => l.document.version(),
            (Err(e), Err(_)) => {
                failures.push(format!("{rel}: neither strict nor lenient load: {e}"));
                continue;
            }
        };
        let Some(schema_valid) = expected_valid(&rel, version) else {
            failures.push(format!("{rel}: not in EXPECTED-xmllint.tsv"));
            continue;
        };
        if schema_valid {
            valid_seen += 1;
            let loaded = match strict {
                Ok(l) => l,
                Err(e) => {
                    failures.push(format!(
                        "{rel}: valid per xmllint but strict read failed: {e}"
                    ));
                    continue;
                }
            };
            let text_errors: Vec<_> = loaded
                .document
                .check()
                .into_iter()
                .filter(|d| d.severity == iodef::Severity::Error)
                .collect();
            let mut opts = WriteOptions::default();
            if !text_errors.is_empty() {
                // Schema-valid but breaking the RFC text: the default writer refuses it, the
                // validator says why; with `text_rules: false` it is re-emitted unchanged.
                report.push(format!(
                    "{rel}: schema-valid, text rules: {}",
                    text_errors[0]
                ));
                assert!(matches!(
                    loaded.document.to_xml(WriteOptions::default()),
                    Err(iodef::Error::Rejected(_))
                ));
                opts.text_rules = false;
            }
            let out = match loaded.document.to_xml(opts) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{rel}: write failed: {e}"));
                    continue;
                }
            };
            if let Err(e) = common::xmllint_bytes(version, out.as_bytes()) {
                failures.push(format!("{rel}: written document fails xmllint: {e}"));
                continue;
            }
            let back = Document::from_slice(out.as_bytes(), &ReadOptions::strict())
                .expect("re-read own output");
            if back.document != loaded.document {
                failures.push(format!("{rel}: round trip changed the document"));
            }
            // Compact output too.
            let compact = loaded
                .document
                .to_xml(WriteOptions {
                    indent: false,
                    ..opts
                })
                .expect("compact write");
            let back2 = Document::from_slice(compact.as_bytes(), &ReadOptions::strict())
                .expect("re-read compact output");
            if back2.document != loaded.document {
                failures.push(format!("{rel}: compact round trip changed the document"));
            }
        } else {
            invalid_seen += 1;
            match strict {
                Ok(_) => failures.push(format!(
                    "{rel}: invalid per xmllint but strict read accepted it"
                )),
                Err(e) => {
                    let loc = e.location().cloned().unwrap_or_default();
                    if loc.line == 0 || loc.path.is_empty() {
                        failures.push(format!("{rel}: diagnostic without location: {e}"));
                    }
                    report.push(format!("{rel}: {e}"));
                }
            }
            match lenient {
                Ok(l) => {
                    if l.diagnostics.is_empty() {
                        failures.push(format!("{rel}: lenient load reported nothing"));
                    }
                }
                Err(e) => failures.push(format!("{rel}: lenient load failed: {e}")),
            }
        }
    }
    for r in &report {
        println!("{r}");
    }
    assert!(
        valid_seen >= 20 && invalid_seen >= 6,
        "{valid_seen} valid, {invalid_seen} invalid"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every valid corpus document converts to the other version, and the result validates.
#[test]
fn corpus_conversion() {
    let mut failures = Vec::new();
    let mut converted = 0;
    for (rel, bytes) in common::read_all_examples() {
        let Ok(loaded) = Document::from_slice(&bytes, &ReadOptions::strict()) else {
            continue;
        };
        let from = loaded.document.version();
        let to = match from {
            Version::V1 => Version::V2,
            Version::V2 => Version::V1,
        };
        let conv = loaded.document.convert(to);
        assert_eq!(conv.value.version(), to);
        let problems: Vec<_> = conv
            .value
            .check()
            .into_iter()
            .filter(|d| d.severity == iodef::Severity::Error)
            .collect();
        if !problems.is_empty() {
            // Only documents that already break the text rules may stay invalid.
            let source_ok = loaded
                .document
                .check()
                .iter()
                .all(|d| d.severity != iodef::Severity::Error);
            if source_ok {
                failures.push(format!(
                    "{rel}: converted document invalid: {}",
                    problems[0]
                ));
            }
            continue;
        }
        let xml = conv.value.to_xml(WriteOptions::default()).expect("write");
        if let Err(e) = common::xmllint_bytes(to, xml.as_bytes()) {
            failures.push(format!("{rel}: converted to {to:?} fails xmllint: {e}"));
            continue;
        }
        converted += 1;
        println!("{rel}: {from:?} -> {to:?}, {} note(s)", conv.notes.len());
        for n in conv.notes.iter().take(3) {
            println!("    {n}");
        }
        // Converting back keeps what both versions share: at least incident IDs and times.
        let back = conv.value.convert(from).value;
        match (&loaded.document, &back) {
            (Document::V1(a), Document::V1(b)) => {
                for (x, y) in a.incident.iter().zip(&b.incident) {
                    assert_eq!(x.incident_id, y.incident_id, "{rel}");
                    assert_eq!(x.report_time, y.report_time, "{rel}");
                }
            }
            (Document::V2(a), Document::V2(b)) => {
                for (x, y) in a.incident.iter().zip(&b.incident) {
                    assert_eq!(x.incident_id, y.incident_id, "{rel}");
                    assert_eq!(x.start_time, y.start_time, "{rel}");
                }
            }
            _ => failures.push(format!("{rel}: converting back changed the version")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(converted >= 20, "only {converted} documents converted");
}
