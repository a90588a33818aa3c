//! A small, fast XML emitter: escaping, optional indentation, namespaces for foreign content.

use std::io::{self, Write};

use crate::types::{AnyElement, ExtensionContent};

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// How to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Indent nested elements by two spaces (default `true`). Mixed content is never indented.
    pub indent: bool,
    /// Refuse models that break the RFC text's rules beyond the schema (default `true`): a
    /// `Node` without address, ports without `ip-protocol`, an address that does not match its
    /// category, `ext-value` without its `ext-` companion. With `false` only what the schema
    /// requires is enforced (to re-emit schema-valid third-party documents unchanged).
    pub text_rules: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            indent: true,
            text_rules: true,
        }
    }
}

impl WriteOptions {
    /// No indentation (smallest output).
    pub fn compact() -> Self {
        WriteOptions {
            indent: false,
            ..WriteOptions::default()
        }
    }
}

pub(crate) struct XmlOut<W: Write> {
    out: W,
    buf: Vec<u8>,
    indent: bool,
    /// Nesting depth of open elements.
    depth: usize,
    /// Whether a start tag is open (`<X a="b"` without `>` yet).
    open: bool,
    /// Whether the innermost open element has element children (for closing indentation).
    had_child: Vec<bool>,
    /// Inside mixed content, indentation is off.
    raw: usize,
    default_ns: &'static str,
    scratch: Vec<u8>,
    pub(crate) written: u64,
}

impl<W: Write> XmlOut<W> {
    pub(crate) fn new(out: W, opts: WriteOptions, default_ns: &'static str) -> Self {
        XmlOut {
            out,
            buf: Vec::with_capacity(1 << 16),
            indent: opts.indent,
            depth: 0,
            open: false,
            had_child: Vec::new(),
            raw: 0,
            default_ns,
            scratch: Vec::new(),
            written: 0,
        }
    }

    pub(crate) fn declaration(&mut self) -> io::Result<()> {
        self.buf
            .extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        if self.indent {
            self.buf.push(b'\n');
        }
        Ok(())
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        self.out.flush()
    }

    pub(crate) fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn close_open(&mut self) {
        if self.open {
            self.buf.push(b'>');
            self.open = false;
        }
    }

    fn newline(&mut self) {
        if self.indent && self.raw == 0 {
            let n = 2 * self.depth;
            if let Some(nl) = NL_SPACES.get(..n + 1) {
                // The newline and the indentation in one copy.
                self.buf.extend_from_slice(nl);
            } else {
                self.buf.extend_from_slice(NL_SPACES);
                let mut n = n + 1 - NL_SPACES.len();
                while n > 0 {
                    let k = n.min(NL_SPACES.len() - 1);
                    self.buf.extend_from_slice(&NL_SPACES[1..=k]);
                    n -= k;
                }
            }
        }
    }

    pub(crate) fn start(&mut self, name: &str) -> io::Result<()> {
        self.maybe_flush()?;
        self.close_open();
        if let Some(h) = self.had_child.last_mut() {
            *h = true;
        }
        if self.depth > 0 {
            self.newline();
        }
        self.buf.push(b'<');
        self.buf.extend_from_slice(name.as_bytes());
        self.open = true;
        self.depth += 1;
        self.had_child.push(false);
        Ok(())
    }

    pub(crate) fn end(&mut self, name: &str) -> io::Result<()> {
        self.depth -= 1;
        let had_child = self.had_child.pop().unwrap_or(false);
        if self.open {
            self.buf.extend_from_slice(b"/>");
            self.open = false;
        } else {
            if had_child {
                self.newline();
            }
            self.buf.extend_from_slice(b"</");
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(b'>');
        }
        if self.depth == 0 && self.indent {
            self.buf.push(b'\n');
        }
        Ok(())
    }

    pub(crate) fn attr(&mut self, name: &str, value: &str) -> io::Result<()> {
        self.buf.push(b' ');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"=\"");
        escape(&mut self.buf, value, true);
        self.buf.push(b'"');
        Ok(())
    }

    pub(crate) fn attr_display<T: XmlValue + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> io::Result<()> {
        self.buf.push(b' ');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"=\"");
        if !value.put_plain(&mut self.buf) {
            let mut scratch = std::mem::take(&mut self.scratch);
            escape_bytes(&mut self.buf, value.lexical(&mut scratch), true);
            self.scratch = scratch;
        }
        self.buf.push(b'"');
        Ok(())
    }

    pub(crate) fn text(&mut self, value: &str) -> io::Result<()> {
        self.close_open();
        escape(&mut self.buf, value, false);
        Ok(())
    }

    pub(crate) fn text_display<T: XmlValue + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        self.close_open();
        if !value.put_plain(&mut self.buf) {
            let mut scratch = std::mem::take(&mut self.scratch);
            self.buf.extend_from_slice(value.lexical(&mut scratch));
            self.scratch = scratch;
        }
        Ok(())
    }

    pub(crate) fn leaf(&mut self, name: &str, value: &str) -> io::Result<()> {
        self.start(name)?;
        if !value.is_empty() {
            self.text(value)?;
        }
        self.end(name)
    }

    pub(crate) fn leaf_display<T: XmlValue + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> io::Result<()> {
        self.start(name)?;
        self.text_display(value)?;
        self.end(name)
    }

    /// Mixed content (text and foreign elements), never indented: whitespace is content here.
    pub(crate) fn mixed(&mut self, content: &[ExtensionContent]) -> io::Result<()> {
        self.close_open();
        self.raw += 1;
        let ns = self.default_ns;
        let r = self.mixed_inner(content, ns);
        self.raw -= 1;
        if let Some(h) = self.had_child.last_mut() {
            *h = false;
        }
        r
    }

    fn mixed_inner(&mut self, content: &[ExtensionContent], ns: &str) -> io::Result<()> {
        for c in content {
            match c {
                ExtensionContent::Text(t) => self.text(t)?,
                ExtensionContent::Element(e) => self.any_in(e, ns)?,
            }
        }
        Ok(())
    }

    /// A foreign element whose parent is an IODEF element; its content is written verbatim.
    pub(crate) fn any(&mut self, e: &AnyElement) -> io::Result<()> {
        let ns = self.default_ns;
        self.any_in(e, ns)
    }

    fn any_in(&mut self, e: &AnyElement, parent_ns: &str) -> io::Result<()> {
        self.start(&e.name)?;
        self.raw += 1;
        let r = self.any_body(e, parent_ns);
        self.raw -= 1;
        r?;
        if let Some(h) = self.had_child.last_mut() {
            *h = false;
        }
        self.end(&e.name)
    }

    fn any_body(&mut self, e: &AnyElement, parent_ns: &str) -> io::Result<()> {
        let ns = e.namespace.as_deref().unwrap_or("");
        if ns != parent_ns {
            self.attr("xmlns", ns)?;
        }
        for (n, a) in e.attributes.iter().enumerate() {
            match a.namespace.as_deref() {
                None => self.attr(&a.name, &a.value)?,
                Some(XML_NS) => {
                    let q = format!("xml:{}", a.name);
                    self.attr(&q, &a.value)?;
                }
                Some(uri) => {
                    let p = format!("xmlns:a{n}");
                    self.attr(&p, uri)?;
                    let q = format!("a{n}:{}", a.name);
                    self.attr(&q, &a.value)?;
                }
            }
        }
        self.mixed_inner(&e.content, ns)
    }
}

/// A value written through its lexical form (numbers without `fmt`, times as stored).
pub(crate) trait XmlValue {
    /// The lexical form, either borrowed from `self` or built in `scratch`.
    fn lexical<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8];

    /// Append the lexical form to `out` if it never needs escaping (numbers) and say so;
    /// otherwise leave `out` alone and return `false`.
    fn put_plain(&self, out: &mut Vec<u8>) -> bool {
        let _ = out;
        false
    }
}

/// Decimal digits of `n` appended to `out`.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

macro_rules! unsigned_value {
    ($($t:ty),*) => {$(
        impl XmlValue for $t {
            fn lexical<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
                scratch.clear();
                push_u64(scratch, u64::from(*self));
                scratch
            }

            fn put_plain(&self, out: &mut Vec<u8>) -> bool {
                push_u64(out, u64::from(*self));
                true
            }
        }
    )*};
}
unsigned_value!(u8, u16, u32, u64);

impl XmlValue for i64 {
    fn lexical<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        scratch.clear();
        if *self < 0 {
            scratch.push(b'-');
        }
        push_u64(scratch, self.unsigned_abs());
        scratch
    }

    fn put_plain(&self, out: &mut Vec<u8>) -> bool {
        if *self < 0 {
            out.push(b'-');
        }
        push_u64(out, self.unsigned_abs());
        true
    }
}

impl XmlValue for crate::types::DateTime {
    fn lexical<'a>(&'a self, _: &'a mut Vec<u8>) -> &'a [u8] {
        self.as_str().as_bytes()
    }
}

macro_rules! display_value {
    ($($t:ty),*) => {$(
        impl XmlValue for $t {
            fn lexical<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
                scratch.clear();
                // Writing to a Vec cannot fail.
                let _ = write!(scratch, "{self}");
                scratch
            }
        }
    )*};
}
display_value!(crate::types::Float, crate::types::Portlist);

/// A newline and 128 spaces: the indentation of up to 64 levels.
const NL_SPACES: &[u8] = b"\n                                                                                                                                ";

/// Bytes that need escaping: bit 0 in text, bit 1 in attribute values.
static SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'<' as usize] = 3;
    t[b'>' as usize] = 3;
    t[b'&' as usize] = 3;
    t[b'\r' as usize] = 3;
    t[b'"' as usize] = 2;
    t[b'\n' as usize] = 2;
    t[b'\t' as usize] = 2;
    t
};

/// Escape for XML 1.0 text or attribute values so that a reader gets `s` back exactly.
fn escape(buf: &mut Vec<u8>, s: &str, attr: bool) {
    escape_bytes(buf, s.as_bytes(), attr)
}

fn escape_bytes(buf: &mut Vec<u8>, b: &[u8], attr: bool) {
    let mask = if attr { 2 } else { 1 };
    // Fast path: nothing to escape (the common case for addresses, ports, times). A lookup
    // and an OR per byte, no early exit: cheaper than testing each byte.
    if b.iter().fold(0u8, |a, &c| a | SPECIAL[usize::from(c)]) & mask == 0 {
        buf.extend_from_slice(b);
        return;
    }
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'"' if attr => b"&quot;",
            b'\r' => b"&#13;",
            b'\n' if attr => b"&#10;",
            b'\t' if attr => b"&#9;",
            _ => continue,
        };
        buf.extend_from_slice(&b[last..i]);
        buf.extend_from_slice(rep);
        last = i + 1;
    }
    buf.extend_from_slice(&b[last..]);
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn integers() {
        use super::XmlValue;
        let mut s = Vec::new();
        for (v, want) in [
            (0i64, "0"),
            (-1, "-1"),
            (1234567, "1234567"),
            (i64::MIN, "-9223372036854775808"),
            (i64::MAX, "9223372036854775807"),
        ] {
            assert_eq!(v.lexical(&mut s), want.as_bytes());
        }
        assert_eq!(65535u16.lexical(&mut s), b"65535");
        assert_eq!(0u16.lexical(&mut s), b"0");
        for v in [0i64, -1, 7, 1234567, i64::MIN, i64::MAX] {
            let mut out = b"x".to_vec();
            assert!(v.put_plain(&mut out));
            assert_eq!(out[1..], *v.lexical(&mut s));
        }
        let mut out = Vec::new();
        assert!(65535u16.put_plain(&mut out));
        assert_eq!(out, b"65535");
    }

    #[test]
    fn indentation_table() {
        assert_eq!(super::NL_SPACES.len(), 129);
        assert_eq!(super::NL_SPACES[0], b'\n');
        assert!(super::NL_SPACES[1..].iter().all(|&c| c == b' '));
    }

    #[test]
    fn deep_indentation() {
        let mut w = super::XmlOut::new(Vec::new(), super::WriteOptions::default(), "");
        for _ in 0..150 {
            w.start("a").unwrap();
        }
        for _ in 0..150 {
            w.end("a").unwrap();
        }
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        for (depth, line) in out.lines().take(149).enumerate() {
            assert_eq!(line, format!("{}<a>", " ".repeat(2 * depth)));
        }
        assert_eq!(
            out.lines().nth(149),
            Some(format!("{}<a/>", " ".repeat(298)).as_str())
        );
        let closing: Vec<&str> = out.lines().skip(150).collect();
        assert_eq!(closing.len(), 149);
        for (k, line) in closing.iter().enumerate() {
            assert_eq!(*line, format!("{}</a>", " ".repeat(2 * (148 - k))));
        }
    }

    #[test]
    fn escaping() {
        let mut b = Vec::new();
        escape(&mut b, "a<b>&\"c\"\r\n\t", true);
        assert_eq!(b, b"a&lt;b&gt;&amp;&quot;c&quot;&#13;&#10;&#9;");
        b.clear();
        escape(&mut b, "x\"\n\r", false);
        assert_eq!(b, b"x\"\n&#13;");
    }
}
