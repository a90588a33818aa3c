//! Helpers shared by the integration tests: the conformance corpus and xmllint.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `../shared/conformance` relative to the workspace root.
pub(crate) fn conformance() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ))
}

pub(crate) fn examples() -> PathBuf {
    conformance().join("iodef/examples")
}

/// The file name of the schema of `version`, as EXPECTED-xmllint.tsv names it.
pub(crate) fn schema_name(version: iodef::Version) -> &'static str {
    match version {
        iodef::Version::V1 => "iodef-1.0.xsd",
        iodef::Version::V2 => "iodef-2.0.xsd",
    }
}

pub(crate) fn schema(version: iodef::Version) -> PathBuf {
    conformance()
        .join("iodef/schemas")
        .join(schema_name(version))
}

/// Run `xmllint --nonet --noout --schema SCHEMA FILE`; `Err(stderr)` when invalid.
/// Panics (fails the test) when xmllint cannot be run: the tests never pass silently.
pub(crate) fn xmllint(version: iodef::Version, file: &Path) -> Result<(), String> {
    let out = Command::new("xmllint")
        .arg("--nonet")
        .arg("--noout")
        .arg("--schema")
        .arg(schema(version))
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("xmllint is required for these tests (Debian package libxml2-utils): {e}")
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Validate bytes with xmllint (through a temporary file).
pub(crate) fn xmllint_bytes(version: iodef::Version, xml: &[u8]) -> Result<(), String> {
    let mut f = tempfile::Builder::new()
        .suffix(".xml")
        .tempfile()
        .expect("temp file");
    std::io::Write::write_all(&mut f, xml).expect("write temp file");
    xmllint(version, f.path())
}

/// Rows of EXPECTED-xmllint.tsv: (example path relative to iodef/, schema file, valid).
pub(crate) fn expected() -> Vec<(String, String, bool)> {
    let text = std::fs::read_to_string(examples().join("EXPECTED-xmllint.tsv"))
        .expect("EXPECTED-xmllint.tsv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next()?.to_owned();
            let schema = cols.next()?.to_owned();
            let valid = cols.next()? == "VALID";
            Some((file, schema, valid))
        })
        .collect()
}

/// Every example document.
pub(crate) fn all_examples() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![examples()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("examples dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "xml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The document type declaration of a billion-laughs document: `lol1` to `lol9`, each ten
/// references to the one before, so `&lol9;` would expand to 10^9 `lol`s. `sep` stands after
/// each declaration (a newline puts each on its own line, `""` makes it one line).
pub(crate) fn billion_laughs_doctype(sep: &str) -> String {
    let mut x = format!("<!DOCTYPE lolz [{sep}<!ENTITY lol \"lol\">{sep}");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        x.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">{sep}",
            format!("&{prev};").repeat(10)
        ));
    }
    x.push_str("]>");
    x.push_str(sep);
    x
}

/// Every example document with its path relative to the examples directory and its bytes.
pub(crate) fn read_all_examples() -> Vec<(String, Vec<u8>)> {
    all_examples()
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(examples())
                .expect("under examples")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("read example {}: {e}", path.display()));
            (rel, bytes)
        })
        .collect()
}
