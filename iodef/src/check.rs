//! Semantic checks over the typed model: what the schema requires plus the RFC text's stronger
//! rules (ext-value pairing, Node content, Service ip-protocol, addresses per category).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{Diagnostic, Location, Severity};
use crate::types::{AnyElement, ExtensionContent, Float};
use crate::{v1, v2};

pub(crate) struct Checker {
    /// Path of the unit's parent (`""` or `/IODEF-Document`).
    root: &'static str,
    /// The elements entered below `root`: name and, for repeated children, the 0-based index.
    /// The path string is only built when a diagnostic needs it.
    segs: Vec<(&'static str, Option<usize>)>,
    line: u64,
    column: u64,
    text_rules: bool,
    schema_rules: bool,
    pub(crate) diags: Vec<Diagnostic>,
    /// How many of the errors in `diags` are the RFC text's rules, not the schema's.
    pub(crate) text_errors: u64,
    /// xs:ID values seen in the document, and xs:IDREF values with where they were used.
    pub(crate) ids: Ids,
}

/// ID bookkeeping, carried from unit to unit when a document is checked piecewise.
#[derive(Default)]
pub(crate) struct Ids {
    seen: HashSet<String>,
    refs: Vec<(String, Location)>,
}

impl Ids {
    /// IDs of `unit` that were already seen.
    pub(crate) fn duplicates(&self, unit: &Ids) -> Vec<Diagnostic> {
        unit.seen
            .iter()
            .filter(|id| self.seen.contains(*id))
            .map(|id| Diagnostic {
                severity: Severity::Error,
                location: Location::default(),
                message: format!("duplicate ID `{id}`: already used earlier in the document"),
            })
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.refs.is_empty()
    }

    pub(crate) fn absorb(&mut self, unit: Ids) {
        self.seen.extend(unit.seen);
        self.refs.extend(unit.refs);
    }

    /// Every IDREF must name an ID of the document.
    pub(crate) fn unresolved(self) -> Vec<Diagnostic> {
        self.refs
            .into_iter()
            .filter(|(r, _)| !self.seen.contains(r))
            .map(|(r, location)| Diagnostic {
                severity: Severity::Error,
                location,
                message: format!("reference `{r}` does not match any ID in the document"),
            })
            .collect()
    }
}

impl Checker {
    pub(crate) fn new(root: &'static str) -> Self {
        Self::with_segments(root, Vec::new())
    }

    /// A checker that reuses `segs` (emptied) for its path stack: a streamed unit checked per
    /// call allocates nothing for its path.
    pub(crate) fn with_segments(
        root: &'static str,
        mut segs: Vec<(&'static str, Option<usize>)>,
    ) -> Self {
        segs.clear();
        if segs.capacity() == 0 {
            // Room for a deep path up front (an EventData's Address is 6 levels down).
            segs.reserve(16);
        }
        Checker {
            root,
            segs,
            line: 0,
            column: 0,
            text_rules: true,
            schema_rules: true,
            diags: Vec::new(),
            text_errors: 0,
            ids: Ids::default(),
        }
    }

    /// Report diagnostics at this line and column (the enclosing unit's start tag).
    pub(crate) fn at(mut self, line: u64, column: u64) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    /// Check only the RFC text's rules (the lenient reader already reported schema problems).
    pub(crate) fn text_only(mut self) -> Self {
        self.schema_rules = false;
        self
    }

    /// Check only what the schema requires, not the RFC text's stronger rules.
    pub(crate) fn schema_only(mut self) -> Self {
        self.text_rules = false;
        self
    }

    pub(crate) fn enter(&mut self, name: &'static str) {
        self.segs.push((name, None));
    }

    pub(crate) fn enter_at(&mut self, name: &'static str, i: usize) {
        self.segs.push((name, Some(i)));
    }

    pub(crate) fn leave(&mut self) {
        self.segs.pop();
    }

    /// The path stack, for reuse by the next checker.
    pub(crate) fn take_segments(&mut self) -> Vec<(&'static str, Option<usize>)> {
        std::mem::take(&mut self.segs)
    }

    /// The current element path, `/IODEF-Document/Incident[1]/EventData[3]/...`.
    fn path(&self) -> String {
        let mut path = String::with_capacity(
            self.root.len() + self.segs.iter().map(|(n, _)| n.len() + 8).sum::<usize>(),
        );
        path.push_str(self.root);
        for &(name, index) in &self.segs {
            path.push('/');
            path.push_str(name);
            if let Some(i) = index {
                path.push('[');
                push_decimal(&mut path, i as u64 + 1);
                path.push(']');
            }
        }
        path
    }

    fn push(&mut self, severity: Severity, message: String) {
        self.diags.push(Diagnostic {
            severity,
            location: Location {
                path: self.path(),
                line: self.line,
                column: self.column,
            },
            message,
        });
    }

    pub(crate) fn error(&mut self, message: String) {
        self.push(Severity::Error, message);
    }

    /// An error against the RFC text's rules beyond the schema (counted apart: a document
    /// with only these is schema-valid).
    fn text_error(&mut self, message: String) {
        self.text_errors += 1;
        self.push(Severity::Error, message);
    }

    pub(crate) fn missing(&mut self, name: &str) {
        if !self.schema_rules {
            return;
        }
        if name == "content" {
            self.error("missing required content".into());
        } else {
            self.error(format!("missing required element `{name}`"));
        }
    }

    pub(crate) fn missing_attr(&mut self, name: &str) {
        if !self.schema_rules {
            return;
        }
        self.error(format!("missing required attribute `{name}`"));
    }

    pub(crate) fn text(&mut self, s: &str, name: &str) {
        if !self.schema_rules {
            return;
        }
        // Fast path: in a `str`, only C0 controls and U+FFFE / U+FFFF (UTF-8 EF BF BE/BF)
        // are outside XML 1.0's Char production.
        if !maybe_non_xml_char(s.as_bytes()) {
            return;
        }
        if let Some(c) = s.chars().find(|&c| !crate::types::xml_char(c)) {
            self.error(format!(
                "{name}: character U+{:04X} cannot be represented in XML 1.0",
                c as u32
            ));
        }
    }

    pub(crate) fn ncname(&mut self, s: &str, name: &str) {
        if !self.schema_rules {
            return;
        }
        if !crate::types::ncname(s) {
            self.error(format!("{name}: `{s}` is not a valid XML NCName (xs:ID)"));
        }
    }

    /// An xs:ID: an NCName, unique in the document (checked in every mode: the lenient
    /// reader does not track IDs).
    pub(crate) fn id(&mut self, s: &str, name: &str) {
        // xs:ID collapses whitespace: surrounding whitespace is not part of the value.
        let s = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        self.ncname(s, name);
        if !self.ids.seen.insert(s.to_owned()) {
            self.error(format!(
                "{name}: duplicate ID `{s}` (xs:ID values must be unique in the document)"
            ));
        }
    }

    /// An xs:IDREF: an NCName that must match an ID somewhere in the document.
    pub(crate) fn idref(&mut self, s: &str, name: &str) {
        let s = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        self.ncname(s, name);
        let location = Location {
            path: self.path(),
            line: self.line,
            column: self.column,
        };
        self.ids.refs.push((s.to_owned(), location));
    }

    pub(crate) fn positive(&mut self, f: &Float, name: &str) {
        if !self.schema_rules {
            return;
        }
        if f.0.is_nan() || f.0 <= 0.0 {
            self.error(format!("{name}: value must be greater than 0"));
        }
        self.float(f, name);
    }

    pub(crate) fn float(&mut self, f: &Float, name: &str) {
        if !self.schema_rules {
            return;
        }
        if f.0.is_finite() && f.0.abs() > f64::from(f32::MAX) {
            self.error(format!("{name}: value out of the xs:float range"));
        }
    }

    pub(crate) fn ext(&mut self, ext: Option<&str>, name: &str) {
        if let Some(e) = ext {
            if e.is_empty() && self.text_rules {
                self.text_error(format!(
                    "attribute `{name}`=\"ext-value\" requires a non-empty `ext-{name}`"
                ));
            }
            self.text(e, name);
        }
    }

    pub(crate) fn any(&mut self, e: &AnyElement, name: &str) {
        if !self.schema_rules {
            return;
        }
        if !crate::types::ncname(&e.name) {
            self.error(format!("{name}: `{}` is not a valid element name", e.name));
        }
        for a in &e.attributes {
            if !crate::types::ncname(&a.name) {
                self.error(format!(
                    "{name}: `{}` is not a valid attribute name",
                    a.name
                ));
            }
            self.text(&a.value, name);
        }
        self.mixed(&e.content);
    }

    pub(crate) fn mixed(&mut self, content: &[ExtensionContent]) {
        for c in content {
            match c {
                ExtensionContent::Text(t) => self.text(t, "content"),
                ExtensionContent::Element(e) => self.any(e, "content"),
            }
        }
    }

    pub(crate) fn hook_v2_node(&mut self, n: &v2::Node) {
        if !self.text_rules {
            return;
        }
        if n.choice.is_empty() {
            self.text_error(
                "`Node` must contain at least one `Address` or `DomainData` (RFC 7970 section 3.18, erratum 4930)"
                    .into(),
            );
        }
    }

    pub(crate) fn hook_v2_address(&mut self, a: &v2::Address) {
        if !self.text_rules {
            return;
        }
        self.address(&a.value, a.category.as_str());
    }

    pub(crate) fn hook_v1_address(&mut self, a: &v1::Address) {
        if !self.text_rules {
            return;
        }
        self.address(&a.value, a.category.as_str());
    }

    /// Checks the text of an `Address` of `category` (as written in XML, the same values in
    /// both versions).
    fn address(&mut self, raw: &str, category: &str) {
        let v = trim(raw);
        let ok = match Kind::of(category) {
            Kind::V4 => v.parse::<Ipv4Addr>().is_ok(),
            Kind::V6 => v.parse::<Ipv6Addr>().is_ok(),
            Kind::V4Net => prefix::<Ipv4Addr>(v, 32),
            Kind::V6Net => prefix::<Ipv6Addr>(v, 128),
            Kind::Asn => !v.is_empty() && v.parse::<u32>().is_ok(),
            Kind::Email => v.contains('@') && !v.starts_with('@') && !v.ends_with('@'),
            Kind::Mac => {
                let parts: Vec<&str> = v.split([':', '-']).collect();
                parts.len() == 6
                    && parts
                        .iter()
                        .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
            }
            Kind::Other => !v.is_empty(),
        };
        if !ok {
            self.text_error(format!(
                "`Address` value `{raw}` is not valid for category `{category}`"
            ));
        }
    }

    /// Source and target Portlists in one Flow pair by position: different lengths are
    /// suspicious (a warning, since neither text nor schema forbids them).
    pub(crate) fn hook_v2_flow(&mut self, f: &v2::Flow) {
        if !self.text_rules {
            return;
        }
        let count = |c: v2::SystemCategory| -> Option<u64> {
            f.system
                .iter()
                .filter(|s| s.category.as_ref() == Some(&c))
                .flat_map(|s| s.service.iter())
                .filter_map(|s| s.portlist.as_ref())
                .map(|p| {
                    p.ranges()
                        .iter()
                        .map(|&(a, b)| u64::from(b - a) + 1)
                        .sum::<u64>()
                })
                .reduce(|a, b| a + b)
        };
        if let (Some(s), Some(t)) = (
            count(v2::SystemCategory::Source),
            count(v2::SystemCategory::Target),
        ) {
            if s != t {
                self.push(
                    Severity::Warning,
                    format!(
                        "source and target Portlists pair by position but list {s} and {t} ports"
                    ),
                );
            }
        }
    }

    pub(crate) fn hook_v2_service(&mut self, s: &v2::Service) {
        if !self.text_rules {
            return;
        }
        let needs = s.port.is_some()
            || s.portlist.is_some()
            || s.proto_type.is_some()
            || s.proto_code.is_some();
        self.service(s.ip_protocol, needs, "ip-protocol");
    }

    pub(crate) fn hook_v1_service(&mut self, s: &v1::Service) {
        if !self.text_rules {
            return;
        }
        let needs = s.choice.is_some() || s.proto_type.is_some() || s.proto_code.is_some();
        self.service(s.ip_protocol, needs, "ip_protocol");
    }

    fn service(&mut self, proto: Option<i64>, needs: bool, name: &str) {
        match proto {
            None if needs => self.text_error(format!(
                "`Service` with Port, Portlist, ProtoType or ProtoCode requires attribute `{name}`"
            )),
            Some(p) if !(0..=255).contains(&p) => {
                self.text_error(format!(
                    "attribute `{name}` must be an IANA protocol number 0-255, found {p}"
                ));
            }
            _ => {}
        }
    }
}

/// Bytes that may start a character outside XML 1.0's Char production: C0 controls other
/// than tab, newline and carriage return, and 0xEF, the lead byte of U+FFFE / U+FFFF (and of
/// many allowed characters, which the caller then looks at).
static SUSPECT: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = !matches!(c as u8, b'\t' | b'\n' | b'\r');
        c += 1;
    }
    t[0xEF] = true;
    t
};

/// Whether `b` may hold a character outside XML 1.0's Char production (see [`SUSPECT`]).
/// A table lookup and an OR per byte, without early exits: cheaper than testing each byte.
fn maybe_non_xml_char(b: &[u8]) -> bool {
    b.iter().fold(false, |a, &c| a | SUSPECT[usize::from(c)])
}

/// Decimal digits of `n` appended to `out` (without the formatting machinery).
fn push_decimal(out: &mut String, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut k = tmp.len();
    loop {
        k -= 1;
        tmp[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(tmp[k..].iter().map(|&c| char::from(c)));
}

enum Kind {
    V4,
    V6,
    V4Net,
    V6Net,
    Asn,
    Email,
    Mac,
    Other,
}

impl Kind {
    /// The kind of an `Address` category value (v1 and v2 share these values).
    fn of(category: &str) -> Kind {
        match category {
            "ipv4-addr" => Kind::V4,
            "ipv4-net" => Kind::V4Net,
            "ipv6-addr" => Kind::V6,
            "ipv6-net" => Kind::V6Net,
            "asn" => Kind::Asn,
            "e-mail" => Kind::Email,
            "mac" => Kind::Mac,
            _ => Kind::Other,
        }
    }
}

fn prefix<T: std::str::FromStr>(v: &str, max: u8) -> bool {
    match v.split_once('/') {
        Some((a, p)) => {
            a.parse::<T>().is_ok()
                && !p.is_empty()
                && p.bytes().all(|c| c.is_ascii_digit())
                && p.parse::<u8>().is_ok_and(|n| n <= max)
        }
        None => false,
    }
}

/// `s.trim()`, without the Unicode tables when both ends are visible ASCII (the common case).
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&b)) if (0x21..0x7f).contains(&a) && (0x21..0x7f).contains(&b) => s,
        _ => s.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::maybe_non_xml_char;

    #[test]
    fn trim_matches_std() {
        for s in [
            "",
            " a ",
            "a",
            "\u{a0}x\u{a0}",
            "x\u{2003}",
            "\tx",
            "ab",
            "é",
            " ",
        ] {
            assert_eq!(super::trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn non_xml_char_prefilter() {
        let mut all_ok = String::new();
        for c in (0x20u8..0x7f)
            .map(char::from)
            .chain(['\t', '\n', '\r', 'é', '→'])
        {
            all_ok.push(c);
        }
        for n in 0..all_ok.len() {
            if let Some(s) = all_ok.get(..n) {
                assert!(!maybe_non_xml_char(s.as_bytes()), "{s:?}");
            }
        }
        for bad in ["\u{0}", "\u{1f}", "\u{fffe}", "\u{ffff}", "\u{b}"] {
            for pad in 0..40 {
                let s = format!("{}{bad}{}", "a".repeat(pad), "b".repeat(pad % 7));
                assert!(maybe_non_xml_char(s.as_bytes()), "{s:?}");
            }
        }
    }
}
