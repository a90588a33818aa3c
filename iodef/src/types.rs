//! Value types shared by both versions: xs:dateTime, xs:float, Portlist and foreign XML.

use std::fmt;

/// An IODEF enumeration, possibly with an `ext-value` companion.
pub(crate) trait XmlEnum: Sized {
    fn from_xml(s: &str) -> Option<Self>;
    fn set_ext(&mut self, s: String) -> bool;
    fn ext_value(s: String) -> Option<Self>;
    fn as_xml(&self) -> &str;
    fn ext_str(&self) -> Option<&str>;
    fn allowed() -> &'static str;
}

/// An `xs:dateTime`, kept exactly as written (after trimming surrounding whitespace).
///
/// Construction checks the lexical form, so a `DateTime` always writes a schema-valid value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime(String);

impl DateTime {
    /// Parse an `xs:dateTime` (`YYYY-MM-DDThh:mm:ss[.f][Z|(+|-)hh:mm]`); surrounding
    /// whitespace is ignored. Returns `None` if the value is not a valid dateTime.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        valid_datetime(t).then(|| DateTime(t.to_owned()))
    }

    /// A UTC timestamp, written with a `Z` suffix and the fraction only when non-zero.
    pub fn from_utc(t: chrono::DateTime<chrono::Utc>) -> Self {
        use chrono::{Datelike, Timelike};
        let year = t.year();
        if t.timestamp_subsec_nanos() == 0 && (0..=9999).contains(&year) {
            // The common case without chrono's format machinery: the same bytes as
            // "%Y-%m-%dT%H:%M:%SZ" for a four-digit year.
            let mut b = [0u8; 20];
            let put = |b: &mut [u8], mut v: u32| {
                for c in b.iter_mut().rev() {
                    *c = b'0' + (v % 10) as u8;
                    v /= 10;
                }
            };
            put(&mut b[0..4], year as u32);
            b[4] = b'-';
            put(&mut b[5..7], t.month());
            b[7] = b'-';
            put(&mut b[8..10], t.day());
            b[10] = b'T';
            put(&mut b[11..13], t.hour());
            b[13] = b':';
            put(&mut b[14..16], t.minute());
            b[16] = b':';
            put(&mut b[17..19], t.second());
            b[19] = b'Z';
            // All ASCII: one allocation and one copy (the check cannot fail).
            return DateTime(
                std::str::from_utf8(&b)
                    .map(str::to_owned)
                    .unwrap_or_default(),
            );
        }
        let fmt = if t.timestamp_subsec_nanos() == 0 {
            "%Y-%m-%dT%H:%M:%SZ"
        } else {
            "%Y-%m-%dT%H:%M:%S%.fZ"
        };
        DateTime(t.format(fmt).to_string())
    }

    /// Seconds and nanoseconds since the Unix epoch, in UTC. `None` outside chrono's range.
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Self> {
        chrono::DateTime::from_timestamp(secs, nanos).map(Self::from_utc)
    }

    /// The lexical value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The instant in UTC; a value without a timezone is taken as UTC.
    pub fn to_utc(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&self.0) {
            return Some(t.with_timezone(&chrono::Utc));
        }
        chrono::NaiveDateTime::parse_from_str(&self.0, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|n| n.and_utc())
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |a, d| {
        a.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn valid_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let (neg, b) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let Some(ydash) = b.iter().position(|&c| c == b'-') else {
        return false;
    };
    let ybytes = &b[..ydash];
    if ybytes.len() < 4 || (ybytes.len() > 4 && ybytes[0] == b'0') || ybytes.len() > 9 {
        return false;
    }
    let Some(year) = digits(ybytes) else {
        return false;
    };
    if year == 0 {
        return false;
    }
    let r = &b[ydash..];
    // -MM-DDThh:mm:ss
    if r.len() < 15 || r[0] != b'-' || r[3] != b'-' || r[6] != b'T' || r[9] != b':' || r[12] != b':'
    {
        return false;
    }
    let (Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        digits(&r[1..3]),
        digits(&r[4..6]),
        digits(&r[7..9]),
        digits(&r[10..12]),
        digits(&r[13..15]),
    ) else {
        return false;
    };
    if !(1..=12).contains(&mo) || d == 0 || h > 23 || mi > 59 || sec > 59 {
        return false;
    }
    // `is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.80.
    #[allow(clippy::manual_is_multiple_of)]
    let leap = |y: u32| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    // Proleptic Gregorian; negative years: xs:dateTime (XSD 1.0) year -0001 is not a leap year
    // by this rule either way, keep it simple and use the same formula.
    let ylen = if neg { year + 1 } else { year };
    let mdays = match mo {
        2 if leap(ylen) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if d > mdays {
        return false;
    }
    let mut rest = &r[15..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &rest[1 + n..];
    }
    match rest {
        [] | [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2] if *sign == b'+' || *sign == b'-' => {
            match (digits(&[*h1, *h2]), digits(&[*m1, *m2])) {
                (Some(h), Some(m)) => h < 14 && m < 60 || h == 14 && m == 0,
                _ => false,
            }
        }
        _ => false,
    }
}

/// An `xs:float` value. Written in a form every schema validator accepts; equality treats
/// NaN as equal to NaN so that documents compare equal after a round trip.
#[derive(Debug, Clone, Copy, Default)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || (self.0.is_nan() && other.0.is_nan())
    }
}

impl Float {
    /// Parse the `xs:float` lexical space (`1.5`, `-2E3`, `INF`, `-INF`, `NaN`).
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        match t {
            "INF" | "+INF" => return Some(Float(f64::INFINITY)),
            "-INF" => return Some(Float(f64::NEG_INFINITY)),
            "NaN" => return Some(Float(f64::NAN)),
            _ => {}
        }
        let b = t.as_bytes();
        let body = match b.first() {
            Some(b'+' | b'-') => &b[1..],
            _ => b,
        };
        let mantissa_end = body
            .iter()
            .position(|&c| c == b'e' || c == b'E')
            .unwrap_or(body.len());
        let (m, e) = body.split_at(mantissa_end);
        let mut parts = m.splitn(2, |&c| c == b'.');
        let int = parts.next().unwrap_or_default();
        let frac = parts.next();
        let ok_m = int.iter().all(u8::is_ascii_digit)
            && frac.is_none_or(|f| f.iter().all(u8::is_ascii_digit))
            && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
        let ok_e = e.is_empty() || {
            let e = &e[1..];
            let e = match e.first() {
                Some(b'+' | b'-') => &e[1..],
                _ => e,
            };
            !e.is_empty() && e.iter().all(u8::is_ascii_digit)
        };
        if !ok_m || !ok_e {
            return None;
        }
        t.parse::<f64>().ok().map(Float)
    }
}

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "INF" } else { "-INF" })
        } else {
            write!(f, "{v:?}")
        }
    }
}

/// A `Portlist`: comma-separated ports and ranges (`22,80,8000-8080`), ports 0-65535.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Portlist(Vec<(u16, u16)>);

impl Portlist {
    /// Parse `\d+(-\d+)?(,\d+(-\d+)?)*`; every port must be 0-65535 and every range ascending.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        let mut out = Vec::new();
        for part in t.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let a = port_digits(a)?;
            let b = port_digits(b)?;
            if a > b {
                return None;
            }
            out.push((a, b));
        }
        Some(Portlist(out))
    }

    /// A list of ranges; `None` if empty or a range is descending.
    pub fn from_ranges(ranges: Vec<(u16, u16)>) -> Option<Self> {
        (!ranges.is_empty() && ranges.iter().all(|(a, b)| a <= b)).then_some(Portlist(ranges))
    }

    /// The ranges, in document order (single ports are `(p, p)`).
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
}

fn port_digits(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let t = s.trim_start_matches('0');
    if t.len() > 5 {
        return None;
    }
    if t.is_empty() {
        return Some(0);
    }
    t.parse().ok()
}

impl fmt::Display for Portlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

/// An attribute of a foreign element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnyAttribute {
    /// Namespace URI (`None` for an unqualified attribute).
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// An element of any namespace, kept as a tree (extension points: `AdditionalData`,
/// `RecordItem`, `SoftwareReference`, and the SCI / xmldsig / enum elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnyElement {
    /// Namespace URI (`None` for an element in no namespace).
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// Attributes other than namespace declarations.
    pub attributes: Vec<AnyAttribute>,
    /// Text and child elements, in order.
    pub content: Vec<ExtensionContent>,
}

/// A piece of mixed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionContent {
    /// Character data.
    Text(String),
    /// A child element.
    Element(AnyElement),
}

/// Whether `c` may appear in an XML 1.0 document.
pub(crate) fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn name_start(c: char) -> bool {
    matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// Whether `s` is an XML NCName (the lexical space of xs:ID / xs:IDREF).
pub(crate) fn ncname(s: &str) -> bool {
    let mut it = s.chars();
    match it.next() {
        Some(c) if name_start(c) => {}
        _ => return false,
    }
    it.all(|c| {
        name_start(c)
            || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_utc_fast_path_matches_chrono() {
        let mut secs: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
        while secs < 253_402_300_800 {
            // up to 9999-12-31
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let want = t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(DateTime::from_utc(t).as_str(), want);
            secs += 7_777_777;
        }
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap();
        assert_eq!(DateTime::from_utc(t).as_str(), "2023-11-14T22:13:20.005Z");
    }

    #[test]
    fn datetimes() {
        for ok in [
            "2024-02-29T10:00:00Z",
            "2015-07-29T12:48:42+02:00",
            "2001-09-13T23:19:24-14:00",
            "2001-09-13T23:19:24.123",
            " 2006-08-01T00:00:00Z\n",
        ] {
            assert!(DateTime::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "2023-02-29T10:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+15:00",
            "0000-01-01T00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "",
        ] {
            assert!(DateTime::parse(bad).is_none(), "{bad}");
        }
        let t = DateTime::from_unix(1_700_000_000, 0).expect("in range");
        assert_eq!(t.as_str(), "2023-11-14T22:13:20Z");
        assert_eq!(t.to_utc().map(|t| t.timestamp()), Some(1_700_000_000));
    }

    #[test]
    fn floats() {
        assert_eq!(Float::parse("1.5").map(|f| f.0), Some(1.5));
        assert_eq!(Float::parse("-2E3").map(|f| f.0), Some(-2000.0));
        assert!(Float::parse("NaN").is_some_and(|f| f.0.is_nan()));
        assert!(Float::parse("inf").is_none());
        assert!(Float::parse("1.").is_some());
        assert!(Float::parse(".").is_none());
        assert_eq!(Float(f64::NEG_INFINITY).to_string(), "-INF");
        assert_eq!(Float(0.1).to_string(), "0.1");
        assert_eq!(Float(1e21).to_string(), "1e21");
    }

    #[test]
    fn portlists() {
        let p = Portlist::parse("22,80,8000-8080").expect("valid");
        assert_eq!(p.ranges(), &[(22, 22), (80, 80), (8000, 8080)]);
        assert_eq!(p.to_string(), "22,80,8000-8080");
        for bad in ["", "22, 80", "70000", "80-22", "a", "1,", "-1"] {
            assert!(Portlist::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            Portlist::parse("0080").map(|p| p.to_string()),
            Some("80".into())
        );
    }

    #[test]
    fn names() {
        assert!(ncname("a-b.c_1"));
        assert!(!ncname("1a"));
        assert!(!ncname("a:b"));
        assert!(!ncname(""));
    }
}
