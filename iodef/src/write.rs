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

/// Bytes the buffer is flushed at (checked at each start tag).
const FLUSH_AT: usize = 1 << 16;
/// Room past [`FLUSH_AT`], so that a start tag and the short values after it are written
/// without growing the buffer.
const HEADROOM: usize = 1 << 12;

pub(crate) struct XmlOut<W: Write> {
    out: W,
    /// Output buffer: `buf[..pos]` is pending output, the rest is room (always initialised,
    /// so that fixed-size windows such as the indentation can be copied without a length
    /// check per byte).
    buf: Vec<u8>,
    pos: usize,
    indent: bool,
    /// Nesting depth of open elements.
    depth: usize,
    /// Whether a start tag is open (`<X a="b"` without `>` yet).
    open: bool,
    /// Bit `d` (of word `d / 64`): whether the open element at depth `d` (1-based depth - 1)
    /// has element children (for closing indentation).
    had_child: Vec<u64>,
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
            buf: vec![0; FLUSH_AT + HEADROOM],
            pos: 0,
            indent: opts.indent,
            depth: 0,
            open: false,
            had_child: vec![0; 4],
            raw: 0,
            default_ns,
            scratch: Vec::new(),
            written: 0,
        }
    }

    /// Append `b` to the buffer, growing it if the room is short.
    #[inline(always)]
    fn put(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => dst.copy_from_slice(b),
            None => self.put_grow(b),
        }
        self.pos = end;
    }

    #[cold]
    #[inline(never)]
    fn put_grow(&mut self, b: &[u8]) {
        self.buf.truncate(self.pos);
        self.buf.extend_from_slice(b);
        let len = self.buf.len();
        self.buf.resize(len + HEADROOM, 0);
    }

    #[inline(always)]
    fn put_byte(&mut self, c: u8) {
        match self.buf.get_mut(self.pos) {
            Some(dst) => *dst = c,
            None => self.put_grow(&[c]),
        }
        self.pos += 1;
    }

    pub(crate) fn declaration(&mut self) -> io::Result<()> {
        self.put(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        if self.indent {
            self.put_byte(b'\n');
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf[..self.pos])?;
        self.written += self.pos as u64;
        self.pos = 0;
        if self.buf.len() > 4 * (FLUSH_AT + HEADROOM) {
            // One huge value grew the buffer: give the memory back.
            self.buf.truncate(FLUSH_AT + HEADROOM);
            self.buf.shrink_to_fit();
        }
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

    #[inline(always)]
    fn close_open(&mut self) {
        if self.open {
            self.put_byte(b'>');
            self.open = false;
        }
    }

    /// Mark the innermost open element (if any) as having, or not having, element children.
    #[inline(always)]
    fn set_had_child(&mut self, v: bool) {
        if let Some(d) = self.depth.checked_sub(1) {
            if let Some(w) = self.had_child.get_mut(d / 64) {
                let bit = 1u64 << (d % 64);
                if v {
                    *w |= bit;
                } else {
                    *w &= !bit;
                }
            }
        }
    }

    #[inline(always)]
    fn newline(&mut self) {
        if self.indent && self.raw == 0 {
            let n = 2 * self.depth + 1;
            if n <= 32 {
                // The newline and the indentation: a fixed 32-byte copy, of which `n` count.
                if let Some(dst) = self.buf.get_mut(self.pos..self.pos + 32) {
                    dst.copy_from_slice(&NL_SPACES[..32]);
                    self.pos += n;
                    return;
                }
            }
            self.newline_long(n);
        }
    }

    #[cold]
    #[inline(never)]
    fn newline_long(&mut self, n: usize) {
        if let Some(nl) = NL_SPACES.get(..n) {
            self.put(nl);
        } else {
            self.put(NL_SPACES);
            let mut n = n - NL_SPACES.len();
            while n > 0 {
                let k = n.min(NL_SPACES.len() - 1);
                self.put(&NL_SPACES[1..=k]);
                n -= k;
            }
        }
    }

    pub(crate) fn start(&mut self, name: &str) -> io::Result<()> {
        self.leaf_open(name)?;
        self.open = true;
        self.depth += 1;
        if self.had_child.len() <= (self.depth - 1) / 64 {
            self.had_child.push(0);
        }
        self.set_had_child(false);
        Ok(())
    }

    #[inline(always)]
    fn had_child(&self) -> bool {
        match self.depth.checked_sub(1) {
            Some(d) => self
                .had_child
                .get(d / 64)
                .is_some_and(|w| w & (1u64 << (d % 64)) != 0),
            None => false,
        }
    }

    pub(crate) fn end(&mut self, name: &str) -> io::Result<()> {
        let had_child = self.had_child();
        self.depth = self.depth.saturating_sub(1);
        if self.open {
            self.put(b"/>");
            self.open = false;
        } else {
            if had_child {
                self.newline();
            }
            self.put(b"</");
            self.put(name.as_bytes());
            self.put_byte(b'>');
        }
        if self.depth == 0 && self.indent {
            self.put_byte(b'\n');
        }
        Ok(())
    }

    pub(crate) fn attr(&mut self, name: &str, value: &str) -> io::Result<()> {
        self.put_byte(b' ');
        self.put(name.as_bytes());
        self.put(b"=\"");
        self.escape(value.as_bytes(), true);
        self.put_byte(b'"');
        Ok(())
    }

    pub(crate) fn attr_display<T: XmlValue + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> io::Result<()> {
        self.put_byte(b' ');
        self.put(name.as_bytes());
        self.put(b"=\"");
        self.value(value, true);
        self.put_byte(b'"');
        Ok(())
    }

    pub(crate) fn text(&mut self, value: &str) -> io::Result<()> {
        self.close_open();
        self.escape(value.as_bytes(), false);
        Ok(())
    }

    pub(crate) fn text_display<T: XmlValue + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        self.close_open();
        self.value(value, false);
        Ok(())
    }

    /// The lexical form of `value`: escaped as an attribute value when `attr`, as it is in
    /// text (numbers and times).
    #[inline]
    fn value<T: XmlValue + ?Sized>(&mut self, value: &T, attr: bool) {
        let mut tmp = [0u8; 24];
        if let Some(v) = value.plain(&mut tmp) {
            self.put(v);
        } else {
            let mut scratch = std::mem::take(&mut self.scratch);
            let lexical = value.lexical(&mut scratch);
            if attr {
                self.escape(lexical, true);
            } else {
                self.put(lexical);
            }
            self.scratch = scratch;
        }
    }

    /// Escape for XML 1.0 text or attribute values so that a reader gets `b` back exactly.
    fn escape(&mut self, b: &[u8], attr: bool) {
        let mask = if attr { 2 } else { 1 };
        // Fast path: nothing to escape (the common case for addresses, ports, times). A
        // lookup and an OR per byte, no early exit: cheaper than testing each byte.
        if b.iter().fold(0u8, |a, &c| a | SPECIAL[usize::from(c)]) & mask == 0 {
            self.put(b);
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
            self.put(&b[last..i]);
            self.put(rep);
            last = i + 1;
        }
        self.put(&b[last..]);
    }

    /// `<name` at the current depth (closing the parent's start tag first): all of what an
    /// element without attributes or children needs; `start` adds the bookkeeping for children.
    fn leaf_open(&mut self, name: &str) -> io::Result<()> {
        if self.pos >= FLUSH_AT {
            self.flush_buf()?;
        }
        self.close_open();
        self.set_had_child(true);
        if self.depth > 0 {
            self.newline();
        }
        self.put_byte(b'<');
        self.put(name.as_bytes());
        Ok(())
    }

    /// `</name>` after [`XmlOut::leaf_open`] and the content: what `end` writes.
    fn leaf_close(&mut self, name: &str) {
        self.put(b"</");
        self.put(name.as_bytes());
        self.put_byte(b'>');
        if self.depth == 0 && self.indent {
            self.put_byte(b'\n');
        }
    }

    /// An element with text only: the same bytes as `start`, `text` (if not empty), `end`.
    pub(crate) fn leaf(&mut self, name: &str, value: &str) -> io::Result<()> {
        self.leaf_open(name)?;
        if value.is_empty() {
            self.put(b"/>");
            if self.depth == 0 && self.indent {
                self.put_byte(b'\n');
            }
        } else {
            self.put_byte(b'>');
            self.escape(value.as_bytes(), false);
            self.leaf_close(name);
        }
        Ok(())
    }

    /// An element with a value only: the same bytes as `start`, `text_display`, `end`.
    pub(crate) fn leaf_display<T: XmlValue + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> io::Result<()> {
        self.leaf_open(name)?;
        self.put_byte(b'>');
        self.value(value, false);
        self.leaf_close(name);
        Ok(())
    }

    /// Mixed content (text and foreign elements), never indented: whitespace is content here.
    pub(crate) fn mixed(&mut self, content: &[ExtensionContent]) -> io::Result<()> {
        self.close_open();
        self.raw += 1;
        let ns = self.default_ns;
        let r = self.mixed_inner(content, ns);
        self.raw -= 1;
        self.set_had_child(false);
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
        self.set_had_child(false);
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

    /// The lexical form built in `tmp` if it never needs escaping (numbers); `None` otherwise.
    fn plain<'a>(&self, tmp: &'a mut [u8; 24]) -> Option<&'a [u8]> {
        let _ = tmp;
        None
    }
}

/// Decimal digits of `n`, with a leading `-` if `neg`, at the end of `tmp`.
fn digits(tmp: &mut [u8; 24], mut n: u64, neg: bool) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        tmp[i] = b'-';
    }
    &tmp[i..]
}

macro_rules! unsigned_value {
    ($($t:ty),*) => {$(
        impl XmlValue for $t {
            fn lexical<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
                scratch.clear();
                let mut tmp = [0u8; 24];
                scratch.extend_from_slice(digits(&mut tmp, u64::from(*self), false));
                scratch
            }

            fn plain<'a>(&self, tmp: &'a mut [u8; 24]) -> Option<&'a [u8]> {
                Some(digits(tmp, u64::from(*self), false))
            }
        }
    )*};
}
unsigned_value!(u8, u16, u32, u64);

impl XmlValue for i64 {
    fn lexical<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        scratch.clear();
        let mut tmp = [0u8; 24];
        scratch.extend_from_slice(digits(&mut tmp, self.unsigned_abs(), *self < 0));
        scratch
    }

    fn plain<'a>(&self, tmp: &'a mut [u8; 24]) -> Option<&'a [u8]> {
        Some(digits(tmp, self.unsigned_abs(), *self < 0))
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

#[cfg(test)]
mod tests {
    use super::{WriteOptions, XmlOut, XmlValue};

    #[test]
    fn integers() {
        let mut s = Vec::new();
        for (v, want) in [
            (0i64, "0"),
            (-1, "-1"),
            (1234567, "1234567"),
            (i64::MIN, "-9223372036854775808"),
            (i64::MAX, "9223372036854775807"),
        ] {
            assert_eq!(v.lexical(&mut s), want.as_bytes());
            let mut tmp = [0u8; 24];
            assert_eq!(v.plain(&mut tmp), Some(want.as_bytes()));
        }
        assert_eq!(65535u16.lexical(&mut s), b"65535");
        assert_eq!(0u16.lexical(&mut s), b"0");
        let mut tmp = [0u8; 24];
        assert_eq!(u64::MAX.plain(&mut tmp), Some(&b"18446744073709551615"[..]));
    }

    #[test]
    fn indentation_table() {
        assert_eq!(super::NL_SPACES.len(), 129);
        assert_eq!(super::NL_SPACES[0], b'\n');
        assert!(super::NL_SPACES[1..].iter().all(|&c| c == b' '));
    }

    #[test]
    fn deep_indentation() {
        // Past the 32-byte fast path, past the 128-space table and past 64 levels (the
        // first word of the had-child bits).
        let mut w = XmlOut::new(Vec::new(), WriteOptions::default(), "");
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
    fn large_values_grow_and_flush() {
        let big = "x<".repeat(100_000);
        let mut w = XmlOut::new(Vec::new(), WriteOptions::compact(), "");
        w.start("r").unwrap();
        for _ in 0..3 {
            w.start("v").unwrap();
            w.attr("a", &big).unwrap();
            w.text(&big).unwrap();
            w.end("v").unwrap();
        }
        w.end("r").unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let esc = "x&lt;".repeat(100_000);
        let one = format!("<v a=\"{esc}\">{esc}</v>");
        assert_eq!(out, format!("<r>{one}{one}{one}</r>"));
    }

    #[test]
    fn leaves_match_start_text_end() {
        for indent in [true, false] {
            let opts = WriteOptions {
                indent,
                ..WriteOptions::default()
            };
            let mut fast = XmlOut::new(Vec::new(), opts, "");
            let mut slow = XmlOut::new(Vec::new(), opts, "");
            for w in [&mut fast, &mut slow] {
                w.start("r").unwrap();
                w.attr("a", "1").unwrap();
            }
            fast.leaf("e", "").unwrap();
            fast.leaf("t", "x<y").unwrap();
            fast.leaf_display("n", &42u16).unwrap();
            fast.leaf_display("d", &-7i64).unwrap();
            slow.start("e").unwrap();
            slow.end("e").unwrap();
            slow.start("t").unwrap();
            slow.text("x<y").unwrap();
            slow.end("t").unwrap();
            slow.start("n").unwrap();
            slow.text_display(&42u16).unwrap();
            slow.end("n").unwrap();
            slow.start("d").unwrap();
            slow.text_display(&-7i64).unwrap();
            slow.end("d").unwrap();
            for w in [&mut fast, &mut slow] {
                w.start("m").unwrap();
                w.leaf("deep", "v").unwrap();
                w.end("m").unwrap();
                w.end("r").unwrap();
                // Leaves at the top level too (a fragment, as the writer never does).
                w.leaf("top", "").unwrap();
                w.leaf("top", "v").unwrap();
            }
            slow.start("x").unwrap();
            slow.end("x").unwrap();
            fast.leaf("x", "").unwrap();
            let (a, b) = (fast.into_inner().unwrap(), slow.into_inner().unwrap());
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
    }

    fn escaped(s: &str, attr: bool) -> Vec<u8> {
        let mut w = XmlOut::new(Vec::new(), WriteOptions::compact(), "");
        w.escape(s.as_bytes(), attr);
        w.into_inner().unwrap()
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escaped("a<b>&\"c\"\r\n\t", true),
            b"a&lt;b&gt;&amp;&quot;c&quot;&#13;&#10;&#9;"
        );
        assert_eq!(escaped("x\"\n\r", false), b"x\"\n&#13;");
        assert_eq!(escaped("plain 1.2.3.4", true), b"plain 1.2.3.4");
    }
}
