//! The pull parser under the generated readers: namespaces, caps, locations, lenient recovery.
//!
//! No DTD is processed and no entity other than the five predefined ones and character
//! references is expanded: a `<!DOCTYPE` is refused outright, which defeats billion-laughs and
//! XXE documents before any expansion could happen.

use std::collections::HashMap;
use std::io::{self, BufRead};

use quick_xml::events::attributes::Attribute;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, NamespaceError, PrefixDeclaration, QName, ResolveResult};
use quick_xml::Reader;

use crate::error::{Diagnostic, Error, Location, Severity};
use crate::types::{
    AnyAttribute, AnyElement, DateTime, ExtensionContent, Float, Portlist, XmlEnum,
};

/// Caps on hostile input. Every cap is checked while reading, so memory stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input size in bytes (default: unlimited, `u64::MAX`; streaming keeps memory flat).
    pub max_bytes: u64,
    /// Maximum element nesting depth (default 64; real IODEF needs about 15). Values above
    /// 256 are treated as 256: nesting is read recursively and this bounds the stack.
    pub max_depth: u32,
    /// Maximum number of elements in the document (default: unlimited).
    pub max_elements: u64,
    /// Maximum size in bytes of one token (tag, text run, comment) and of one text value
    /// (default 16 MiB). This bounds the reader's buffer.
    pub max_token_bytes: u64,
    /// Maximum number of diagnostics kept (default 10,000); further ones are counted only.
    pub max_diagnostics: usize,
    /// Maximum number of attributes on one element, namespace declarations included
    /// (default 1,024; real IODEF uses a handful).
    pub max_attributes: u32,
    /// Maximum number of namespace declarations in scope at once, i.e. declared on the
    /// elements open at that point (default 1,024). Lookups stay constant-time past a few
    /// declarations, so this bounds memory, not time.
    pub max_namespaces: u32,
    /// Maximum input bytes of one streamed unit (default: unlimited, `u64::MAX`): for
    /// [`StreamReader`](crate::StreamReader) and [`validate`](crate::validate) a top-level
    /// `EventData` with everything inside it, an `Incident` without its top-level
    /// `EventData`, or the document's own children; for a whole-document read, the document.
    /// What a unit holds in memory is bounded by this and `max_unit_elements`. Checked at
    /// every token (a unit may pass it by one token).
    pub max_unit_bytes: u64,
    /// Maximum number of elements in one streamed unit (as for `max_unit_bytes`; default:
    /// unlimited). An element costs up to several hundred bytes in the model however short
    /// it is in the input (`<EventData/>`: 12 bytes, about 630 in memory).
    pub max_unit_elements: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: u64::MAX,
            max_depth: 64,
            max_elements: u64::MAX,
            max_token_bytes: 16 << 20,
            max_diagnostics: 10_000,
            max_attributes: 1024,
            max_namespaces: 1024,
            max_unit_bytes: u64::MAX,
            max_unit_elements: u64::MAX,
        }
    }
}

/// How to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Lenient mode: record schema and semantic problems as diagnostics, skip the offending
    /// element or attribute and go on. Malformed XML and refused constructs still stop reading.
    pub lenient: bool,
    /// Caps on hostile input.
    pub limits: Limits,
}

impl ReadOptions {
    /// Strict reading with default caps.
    pub fn strict() -> Self {
        ReadOptions::default()
    }
    /// Lenient reading with default caps.
    pub fn lenient() -> Self {
        ReadOptions {
            lenient: true,
            ..ReadOptions::default()
        }
    }
}

/// Bytes read from the inner reader at a time.
const CHUNK: usize = 1 << 16;

/// The input as UTF-8: as it is, or transcoded from UTF-16, which XML 1.0 requires every
/// processor to read (section 4.3.3). A UTF-16 document is told by its byte-order mark, or
/// without one by its first characters `<?` (appendix F); it is decoded as it streams
/// (encoding_rs), a lone surrogate becoming U+FFFD. The caps and the columns then count the
/// UTF-8 bytes.
pub(crate) enum Input<R: BufRead> {
    /// UTF-8 (or anything else, refused by the parser).
    Utf8(R),
    /// UTF-16, little- or big-endian.
    Utf16(io::BufReader<encoding_rs_io::DecodeReaderBytes<R, Vec<u8>>>),
}

impl<R: BufRead> Input<R> {
    /// Looks at the first bytes of `inner` (without consuming them) to tell its encoding.
    fn sniff(mut inner: R) -> io::Result<Self> {
        let head = inner.fill_buf()?;
        let encoding = match head {
            [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => None,
            [b'<', 0, b'?', 0, ..] => Some(encoding_rs::UTF_16LE),
            [0, b'<', 0, b'?', ..] => Some(encoding_rs::UTF_16BE),
            _ => return Ok(Input::Utf8(inner)),
        };
        let decoder = encoding_rs_io::DecodeReaderBytesBuilder::new()
            .encoding(encoding)
            .bom_override(true)
            .build(inner);
        Ok(Input::Utf16(io::BufReader::with_capacity(CHUNK, decoder)))
    }

    fn is_utf16(&self) -> bool {
        matches!(self, Input::Utf16(_))
    }
}

impl<R: BufRead> io::Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Utf8(r) => r.read(out),
            Input::Utf16(r) => r.read(out),
        }
    }
}

impl<R: BufRead> BufRead for Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Input::Utf8(r) => r.fill_buf(),
            Input::Utf16(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            Input::Utf8(r) => r.consume(amt),
            Input::Utf16(r) => r.consume(amt),
        }
    }
}

/// A `BufRead` that counts bytes, lines and columns and enforces the byte caps.
///
/// It copies the input chunk by chunk into its own buffer, so that `fill_buf` and `consume`
/// are a few instructions and lines are counted lazily: up to the start of a token when its
/// line and column are asked for ([`Counting::token_line_col`], for start tags), and over
/// the rest of a chunk before it is replaced. Every byte is looked at once.
pub(crate) struct Counting<R> {
    inner: R,
    /// The current chunk; `buf[start..]` is not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// The newlines of `buf[..counted]` are counted in `line` and `line_start`.
    counted: usize,
    /// Input offset of `buf[0]`.
    base: u64,
    /// Input offset of `buf[start]`: bytes consumed so far.
    pos: u64,
    line: u64,
    /// Input offset of the first byte of the line `line`.
    line_start: u64,
    token_start: u64,
    /// Line and column of `token_start`, once known.
    token_at: Option<(u64, u64)>,
    /// The last input offset the caps allow before the next token starts:
    /// `min(token_start + max_token, max_bytes)`.
    limit: u64,
    max_bytes: u64,
    max_token: u64,
    hit: Option<(&'static str, u64)>,
    /// Start-tag positions, counted lazily: the pending child's and the open elements'
    /// (the reader's `marks`), in input order. Those not counted yet all lie in the current
    /// chunk: [`Counting::refill`] counts them before the chunk goes.
    child: Pos,
    marks: Vec<Pos>,
}

/// A start tag's input offset, with its line and column once counted (line 0: not yet).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pos {
    off: u64,
    line: u64,
    col: u64,
}

impl<R: BufRead> Counting<R> {
    fn new(inner: R, max_bytes: u64, max_token: u64) -> Self {
        Counting {
            inner,
            buf: Vec::new(),
            start: 0,
            counted: 0,
            base: 0,
            pos: 0,
            line: 1,
            line_start: 0,
            token_start: 0,
            token_at: None,
            limit: max_token.min(max_bytes),
            max_bytes,
            max_token,
            hit: None,
            child: Pos {
                off: 0,
                line: 1,
                col: 1,
            },
            marks: Vec::new(),
        }
    }

    /// A new token starts at the current position (the token cap counts from here).
    fn begin_token(&mut self) {
        self.token_start = self.pos;
        self.token_at = None;
        self.limit = self.pos.saturating_add(self.max_token).min(self.max_bytes);
    }

    /// The current token starts `n` bytes later (bytes already in the buffer).
    fn skip_in_token(&mut self, n: u64) {
        self.token_start += n;
        self.limit = self
            .token_start
            .saturating_add(self.max_token)
            .min(self.max_bytes);
    }

    /// Line and column of the current token's first byte.
    fn token_line_col(&mut self) -> (u64, u64) {
        if let Some(at) = self.token_at {
            return at;
        }
        // Not known yet, so the token starts in the current chunk, at or after `counted`;
        // the start tags before it are counted first (counting goes forward only).
        self.count_positions();
        let i = usize::try_from(self.token_start - self.base).unwrap_or(usize::MAX);
        self.sync_to(i);
        let at = (self.line, self.token_start - self.line_start + 1);
        self.token_at = Some(at);
        at
    }

    /// The current token is a start tag: it becomes the pending child, counted later.
    fn start_tag(&mut self) {
        self.child = match self.token_at {
            // Started in an earlier chunk, counted then.
            Some((line, col)) => Pos {
                off: self.token_start,
                line,
                col,
            },
            None => Pos {
                off: self.token_start,
                line: 0,
                col: 0,
            },
        };
    }

    /// Count `p` if it is not yet (it is at or after `counted`, in the current chunk).
    fn count_pos(&mut self, p: &mut Pos) {
        if p.line == 0 {
            let i = usize::try_from(p.off.saturating_sub(self.base)).unwrap_or(usize::MAX);
            self.sync_to(i);
            p.line = self.line;
            p.col = p.off.saturating_sub(self.line_start) + 1;
        }
    }

    /// Count every position not counted yet, in input order: the open elements' not yet
    /// counted (the last ones), then the pending child's.
    fn count_positions(&mut self) {
        let first = self
            .marks
            .iter()
            .rposition(|p| p.line != 0)
            .map_or(0, |i| i + 1);
        for k in first..self.marks.len() {
            let mut p = self.marks[k];
            self.count_pos(&mut p);
            self.marks[k] = p;
        }
        let mut c = self.child;
        self.count_pos(&mut c);
        self.child = c;
    }

    /// Line and column of the pending child's start tag.
    fn child_line_col(&mut self) -> (u64, u64) {
        self.count_positions();
        (self.child.line, self.child.col)
    }

    /// Line and column of the innermost open element's start tag (0, 0 for none).
    fn mark_line_col(&mut self) -> (u64, u64) {
        self.count_positions();
        self.marks.last().map_or((0, 0), |p| (p.line, p.col))
    }

    /// Count the lines of `buf[counted..to]`.
    fn sync_to(&mut self, to: usize) {
        if let Some(b) = self.buf.get(self.counted..to) {
            let at = self.base + self.counted as u64;
            count_lines(&mut self.line, &mut self.line_start, b, at);
            self.counted = to;
        }
    }

    /// Line and column of the next unconsumed byte (without recording the count).
    fn line_col(&self) -> (u64, u64) {
        let (mut line, mut line_start) = (self.line, self.line_start);
        if let Some(b) = self.buf.get(self.counted..self.start) {
            count_lines(
                &mut line,
                &mut line_start,
                b,
                self.base + self.counted as u64,
            );
        }
        (line, self.pos - line_start + 1)
    }

    #[cold]
    fn cap_hit(&mut self) -> io::Error {
        if self.pos.saturating_sub(self.token_start) > self.max_token {
            self.hit = Some(("max_token_bytes", self.max_token));
            io::Error::other("token size cap")
        } else {
            self.hit = Some(("max_bytes", self.max_bytes));
            io::Error::other("input size cap")
        }
    }

    /// Start a new chunk once the current one is consumed.
    #[inline(never)]
    fn refill(&mut self) -> io::Result<()> {
        self.count_positions();
        if self.token_at.is_none() && self.token_start >= self.base + self.counted as u64 {
            // The current token started in this chunk: keep its position.
            self.token_line_col();
        }
        self.sync_to(self.buf.len());
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.start = 0;
        self.counted = 0;
        let b = self.inner.fill_buf()?;
        let n = b.len().min(CHUNK);
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CHUNK);
        }
        self.buf.extend_from_slice(&b[..n]);
        self.inner.consume(n);
        Ok(())
    }
}

/// Count the newlines of `b`, which starts at input offset `at`, into `line` and `line_start`.
fn count_lines(line: &mut u64, line_start: &mut u64, b: &[u8], at: u64) {
    if b.len() >= 256 {
        // Long runs (the rest of a chunk, start tags being counted lazily): memchr's
        // vectorised count and reverse search.
        if let Some(i) = memchr::memrchr(b'\n', b) {
            *line += 1 + memchr::memchr_iter(b'\n', &b[..i]).count() as u64;
            *line_start = at + i as u64 + 1;
        }
        return;
    }
    // Eight bytes at a time: runs between start tags are a few dozen bytes.
    let mut words = b.chunks_exact(8);
    let mut off = at;
    for w in &mut words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let z = newline_bytes(v);
        if z != 0 {
            // One high bit per newline byte: their sum, by multiplication.
            *line += (z >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56;
            *line_start = off + u64::from((63 - z.leading_zeros()) / 8) + 1;
        }
        off += 8;
    }
    for (i, &c) in words.remainder().iter().enumerate() {
        if c == b'\n' {
            *line += 1;
            *line_start = off + i as u64 + 1;
        }
    }
}

/// The high bit of each byte of `v` that is a newline, exactly (no false positives from
/// borrows, unlike the shorter has-zero-byte test).
fn newline_bytes(v: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = v ^ 0x0a0a_0a0a_0a0a_0a0a;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

impl<R: BufRead> io::Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let b = self.fill_buf()?;
            let n = b.len().min(out.len());
            out[..n].copy_from_slice(&b[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos > self.limit {
            return Err(self.cap_hit());
        }
        if self.start >= self.buf.len() {
            self.refill()?;
        }
        // Hand out no more than the caps allow (one byte past them), so a reader that buffers
        // a whole token (or a whole in-memory input) comes back here and hits the check above.
        let b = self.buf.get(self.start..).unwrap_or(&[]);
        let allow = self.limit - self.pos;
        let n = if allow < b.len() as u64 {
            allow as usize + 1
        } else {
            b.len()
        };
        Ok(&b[..n])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.buf.len().saturating_sub(self.start));
        self.start += amt;
        self.pos += amt as u64;
    }
}

/// Known namespaces of child elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ns {
    Iodef,
    Sci,
    Enum,
    Ds,
    Other,
    None,
}

/// Hard ceiling on nesting, whatever the configured cap: the readers recurse per level.
const MAX_DEPTH: u32 = 256;

const NS_V1: &[u8] = b"urn:ietf:params:xml:ns:iodef-1.0";
const NS_V2: &[u8] = b"urn:ietf:params:xml:ns:iodef-2.0";
const NS_XML: &[u8] = b"http://www.w3.org/XML/1998/namespace";
const NS_XMLNS: &[u8] = b"http://www.w3.org/2000/xmlns/";

/// Attributes of one start tag, namespace declarations removed; qualified names are
/// `xml:lang` for the XML namespace and `{uri}local` for any other namespace.
#[derive(Debug, Default)]
pub(crate) struct Attrs {
    buf: String,
    items: Vec<(usize, usize, usize)>,
}

impl Attrs {
    fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.items.iter().map(move |&(k, v, end)| {
            let r = (&self.buf[start..k], &self.buf[k..v]);
            start = end.max(v);
            r
        })
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The attribute names of one start tag with their offsets, to find duplicates: a few kept
/// inline and compared one by one, the rest in a hash map (linear time in all).
#[derive(Default)]
struct Keys<'a> {
    inline: [(&'a [u8], usize); 8],
    len: usize,
    more: HashMap<&'a [u8], usize>,
}

impl<'a> Keys<'a> {
    /// Record `key` at offset `at`; the offset of an earlier equal key if there is one.
    fn insert(&mut self, key: &'a [u8], at: usize) -> Option<usize> {
        if let Some(&(_, prev)) = self.inline[..self.len].iter().find(|(k, _)| *k == key) {
            return Some(prev);
        }
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = (key, at);
            self.len += 1;
            return None;
        }
        match self.more.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(at);
                None
            }
        }
    }
}

/// No earlier binding of the same prefix.
const NO_BINDING: u32 = u32::MAX;

/// Bindings in scope past which lookups go through the hash index.
const SMALL_SCOPE: usize = 8;

/// One namespace binding: `buf[start..start + prefix_len]` is the prefix (empty for the
/// default namespace), the URI follows it.
#[derive(Debug, Clone, Copy)]
struct Binding {
    start: usize,
    prefix_len: usize,
    uri_len: usize,
    /// The binding of the same prefix it hides, or [`NO_BINDING`].
    prev: u32,
}

/// The namespace bindings in scope, with quick-xml's `NamespaceResolver` rules and errors
/// (`xml` and `xmlns` reserved; an empty URI unbinds), but linear-time: lookups scan a few
/// bindings from the innermost, and go through a hash index of the innermost binding per
/// prefix once more than [`SMALL_SCOPE`] are in scope.
#[derive(Debug, Default)]
struct Namespaces {
    buf: Vec<u8>,
    bindings: Vec<Binding>,
    /// `bindings.len()` when each open scope began.
    scopes: Vec<usize>,
    /// Innermost binding per prefix; kept while more than [`SMALL_SCOPE`] are in scope.
    index: HashMap<Vec<u8>, u32>,
    indexed: bool,
}

impl Namespaces {
    fn prefix(&self, b: &Binding) -> &[u8] {
        &self.buf[b.start..b.start + b.prefix_len]
    }

    fn uri(&self, b: &Binding) -> &[u8] {
        let s = b.start + b.prefix_len;
        &self.buf[s..s + b.uri_len]
    }

    /// The innermost binding of `prefix`.
    fn find(&self, prefix: &[u8]) -> Option<u32> {
        if self.indexed {
            return self.index.get(prefix).copied();
        }
        self.bindings
            .iter()
            .rposition(|b| self.prefix(b) == prefix)
            .map(|i| i as u32)
    }

    fn push_scope(&mut self) {
        self.scopes.push(self.bindings.len());
    }

    fn pop_scope(&mut self) {
        let Some(from) = self.scopes.pop() else {
            return;
        };
        if self.indexed {
            for i in (from..self.bindings.len()).rev() {
                let b = self.bindings[i];
                let p = b.start..b.start + b.prefix_len;
                if b.prev == NO_BINDING {
                    self.index.remove(&self.buf[p]);
                } else if let Some(slot) = self.index.get_mut(&self.buf[p]) {
                    *slot = b.prev;
                }
            }
        }
        if let Some(b) = self.bindings.get(from) {
            self.buf.truncate(b.start);
        }
        self.bindings.truncate(from);
        if self.indexed && self.bindings.len() <= SMALL_SCOPE {
            self.index.clear();
            self.indexed = false;
        }
    }

    /// Declare a binding in the innermost scope, as `NamespaceResolver::add`.
    fn add(&mut self, prefix: PrefixDeclaration<'_>, uri: &[u8]) -> Result<(), NamespaceError> {
        let p: &[u8] = match prefix {
            PrefixDeclaration::Default => b"",
            PrefixDeclaration::Named(b"xml") => {
                if uri != NS_XML {
                    return Err(NamespaceError::InvalidXmlPrefixBind(uri.to_vec()));
                }
                return Ok(());
            }
            PrefixDeclaration::Named(b"xmlns") => {
                return Err(NamespaceError::InvalidXmlnsPrefixBind(uri.to_vec()));
            }
            PrefixDeclaration::Named(p) => {
                if uri == NS_XML {
                    return Err(NamespaceError::InvalidPrefixForXml(p.to_vec()));
                }
                if uri == NS_XMLNS {
                    return Err(NamespaceError::InvalidPrefixForXmlns(p.to_vec()));
                }
                p
            }
        };
        let prev = self.find(p).unwrap_or(NO_BINDING);
        let start = self.buf.len();
        self.buf.extend_from_slice(p);
        self.buf.extend_from_slice(uri);
        let i = self.bindings.len() as u32;
        self.bindings.push(Binding {
            start,
            prefix_len: p.len(),
            uri_len: uri.len(),
            prev,
        });
        if self.indexed {
            self.index.insert(p.to_vec(), i);
        } else if self.bindings.len() > SMALL_SCOPE {
            for (k, b) in self.bindings.iter().enumerate() {
                self.index.insert(self.prefix(b).to_vec(), k as u32);
            }
            self.indexed = true;
        }
        Ok(())
    }

    /// The default namespace (unprefixed element names).
    fn resolve_default(&self) -> ResolveResult<'_> {
        match self.find(b"") {
            Some(i) => {
                let b = &self.bindings[i as usize];
                if b.uri_len == 0 {
                    ResolveResult::Unbound
                } else {
                    ResolveResult::Bound(Namespace(self.uri(b)))
                }
            }
            None => ResolveResult::Unbound,
        }
    }

    /// The namespace of `prefix` (not empty), as `NamespaceResolver::resolve_prefix`.
    fn resolve_prefixed<'s>(&'s self, prefix: &[u8]) -> ResolveResult<'s> {
        match prefix {
            b"xml" => return ResolveResult::Bound(Namespace(NS_XML)),
            b"xmlns" => return ResolveResult::Bound(Namespace(NS_XMLNS)),
            _ => {}
        }
        match self.find(prefix) {
            Some(i) if self.bindings[i as usize].uri_len != 0 => {
                ResolveResult::Bound(Namespace(self.uri(&self.bindings[i as usize])))
            }
            _ => ResolveResult::Unknown(prefix.to_vec()),
        }
    }

    fn in_scope(&self) -> usize {
        self.bindings.len()
    }
}

enum Ev {
    Start,
    End,
    Text,
    Eof,
}

/// The document's IODEF version, told apart by the root element's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// IODEF 1.00, RFC 5070, `urn:ietf:params:xml:ns:iodef-1.0`.
    V1,
    /// IODEF 2.00, RFC 7970, `urn:ietf:params:xml:ns:iodef-2.0`.
    V2,
}

impl Version {
    /// The namespace URI of this version.
    pub fn namespace(self) -> &'static str {
        match self {
            Version::V1 => crate::v1::NAMESPACE,
            Version::V2 => crate::v2::NAMESPACE,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V1 => "IODEF v1 (RFC 5070)",
            Version::V2 => "IODEF v2 (RFC 7970)",
        })
    }
}

pub(crate) struct Parser<R: BufRead> {
    reader: Reader<Counting<Input<R>>>,
    /// The input was UTF-16 (and is read transcoded): its declaration may say so.
    utf16: bool,
    /// The namespace scopes, kept here rather than by an `NsReader`, so that each start
    /// tag's attributes are scanned once (bindings and attributes in the same pass).
    ns: Namespaces,
    /// The depths of the open elements that declare namespaces: only they have a scope in
    /// `ns` (the others would add an empty one).
    ns_scopes: Vec<u32>,
    /// What unprefixed element names resolve to while the bindings stay as they are: the
    /// `child_ns` and `child_uri` of the last such name (`None`: to be resolved).
    default_ns: Option<Ns>,
    default_uri: Vec<u8>,
    /// Attributes of the current start tag: key and value ranges in the tag.
    attr_spans: Vec<(usize, usize, usize, usize)>,
    buf: Vec<u8>,
    lenient: bool,
    limits: Limits,
    pub(crate) diags: Vec<Diagnostic>,
    dropped_diags: u64,
    dropped_errors: u64,
    iodef_ns: &'static [u8],
    child_ns: Ns,
    child_uri: Vec<u8>,
    child_local: String,
    child_attrs: Attrs,
    /// The last text event was whitespace only (indentation).
    text_ws: bool,
    /// The last event was markup (a tag, comment, reference...), not text: the reader is at
    /// the start of a text run, where [`Parser::skip_whitespace`] may skip ahead.
    after_markup: bool,
    /// Whitespace was skipped up to a `<`: the next token starts after it (see
    /// [`Parser::skip_whitespace`]).
    token_after_lt: bool,
    /// The last text event when it was indentation (then `text` is not used): a slice of a
    /// static string, nothing copied.
    text_static: Option<&'static str>,
    attr_pool: Vec<Attrs>,
    text: String,
    value_buf: String,
    path: String,
    /// Path lengths of the open elements (their positions are in the reader's `marks`).
    marks: Vec<usize>,
    depth: u32,
    elements: u64,
    /// Elements in the current unit (see [`Limits::max_unit_elements`]).
    unit_elements: u64,
    /// Bytes of the current unit before `unit_from`, where its current stretch began.
    unit_done: u64,
    unit_from: u64,
    /// The input offset past which the current unit is over `max_unit_bytes`.
    unit_limit: u64,
}

/// A unit set aside while a nested one is read (see [`Parser::begin_unit`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unit {
    elements: u64,
    bytes: u64,
}

impl<R: BufRead> Parser<R> {
    /// Read the prolog and the root start tag.
    pub(crate) fn open(inner: R, opts: &ReadOptions) -> Result<(Self, Version, Attrs), Error> {
        let input = Input::sniff(inner)?;
        let utf16 = input.is_utf16();
        let counting = Counting::new(input, opts.limits.max_bytes, opts.limits.max_token_bytes);
        let mut reader = Reader::from_reader(counting);
        {
            let c = reader.config_mut();
            c.expand_empty_elements = true;
            c.check_end_names = true;
            c.trim_text_start = false;
            c.trim_text_end = false;
        }
        let mut p = Parser {
            reader,
            utf16,
            ns: Namespaces::default(),
            ns_scopes: Vec::new(),
            default_ns: None,
            default_uri: Vec::new(),
            attr_spans: Vec::new(),
            buf: Vec::with_capacity(4096),
            lenient: opts.lenient,
            limits: opts.limits,
            diags: Vec::new(),
            dropped_diags: 0,
            dropped_errors: 0,
            iodef_ns: NS_V2,
            child_ns: Ns::None,
            child_uri: Vec::new(),
            child_local: String::new(),
            child_attrs: Attrs::default(),
            text_ws: false,
            text_static: None,
            after_markup: false,
            token_after_lt: false,
            attr_pool: Vec::new(),
            text: String::new(),
            value_buf: String::new(),
            path: String::new(),
            marks: Vec::new(),
            depth: 0,
            elements: 0,
            unit_elements: 0,
            unit_done: 0,
            unit_from: 0,
            unit_limit: opts.limits.max_unit_bytes,
        };
        loop {
            match p.next_event()? {
                Ev::Start => break,
                Ev::Text => {
                    if !p.text().trim_matches(is_ws).is_empty() {
                        return Err(p.syntax("text before the root element"));
                    }
                }
                Ev::End => return Err(p.syntax("unexpected end tag")),
                Ev::Eof => return Err(p.syntax("no root element (empty or truncated input)")),
            }
        }
        let version = match (p.child_uri(), p.child_local.as_bytes()) {
            (NS_V2, b"IODEF-Document") => Version::V2,
            (NS_V1, b"IODEF-Document") => Version::V1,
            _ => {
                let found = format!(
                    "{{{}}}{}",
                    String::from_utf8_lossy(p.child_uri()),
                    p.child_local.as_str()
                );
                return Err(Error::NotIodef {
                    location: p.child_location(),
                    found,
                });
            }
        };
        p.iodef_ns = if version == Version::V1 { NS_V1 } else { NS_V2 };
        // Classified against the other version's namespace so far.
        p.default_ns = None;
        p.child_ns = Ns::Iodef;
        let attrs = p.enter();
        Ok((p, version, attrs))
    }

    /// After the root end tag: only comments, PIs and whitespace may follow.
    pub(crate) fn close(&mut self) -> Result<(), Error> {
        self.leave();
        loop {
            match self.next_event()? {
                Ev::Eof => return Ok(()),
                Ev::Text if self.text().trim_matches(is_ws).is_empty() => {}
                _ => return Err(self.syntax("content after the root element")),
            }
        }
    }

    pub(crate) fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.diags)
    }

    /// Start a new unit here (for the unit caps); the current one is set aside and returned,
    /// to be taken up again with [`Parser::resume_unit`].
    ///
    /// Called with the unit's first element pending (its start tag read, not entered): that
    /// element and its start tag belong to the new unit, not to the one set aside.
    pub(crate) fn begin_unit(&mut self) -> Unit {
        let c = self.reader.get_ref();
        let (pos, tag) = (c.pos, c.child.off.min(c.pos));
        let outer = Unit {
            elements: self.unit_elements.saturating_sub(1),
            bytes: self.unit_done + tag.saturating_sub(self.unit_from),
        };
        self.resume_unit(Unit {
            elements: 1,
            bytes: pos - tag,
        });
        outer
    }

    /// End the current unit and go on with `u`.
    pub(crate) fn resume_unit(&mut self, u: Unit) {
        let pos = self.reader.get_ref().pos;
        self.unit_elements = u.elements;
        self.unit_done = u.bytes;
        self.unit_from = pos;
        self.unit_limit = pos.saturating_add(self.limits.max_unit_bytes.saturating_sub(u.bytes));
    }

    #[cold]
    fn unit_cap(&mut self, limit: &'static str, cap: u64) -> Error {
        Error::Limit {
            location: self.location_now(),
            limit,
            cap,
        }
    }

    /// Where a start tag's problem is: the path with the element's (qualified) name.
    #[cold]
    fn tag_location(&self, qname: &str) -> Location {
        let mut l = self.location_now();
        l.path.push('/');
        push_segment(&mut l.path, qname);
        l
    }

    fn location_now(&self) -> Location {
        let (line, column) = self.reader.get_ref().line_col();
        Location {
            path: self.path.clone(),
            line,
            column,
        }
    }

    fn syntax(&self, message: impl Into<String>) -> Error {
        Error::Syntax {
            location: self.location_now(),
            message: message.into(),
        }
    }

    fn child_location(&mut self) -> Location {
        let (line, column) = self.reader.get_mut().child_line_col();
        let mut path = self.path.clone();
        path.push('/');
        path.push_str(&self.child_local);
        Location { path, line, column }
    }

    fn here(&mut self) -> Location {
        let (line, column) = self.reader.get_mut().mark_line_col();
        Location {
            path: self.path.clone(),
            line,
            column,
        }
    }

    fn current_name(&self) -> &str {
        let start = self.path.rfind('/').map_or(0, |i| i + 1);
        &self.path[start..]
    }

    fn map_xml_err(&mut self, e: quick_xml::Error) -> Error {
        if let Some((limit, cap)) = self.reader.get_ref().hit {
            return Error::Limit {
                location: self.location_now(),
                limit,
                cap,
            };
        }
        match e {
            quick_xml::Error::Io(io) => Error::Io(io::Error::new(io.kind(), io.to_string())),
            quick_xml::Error::Encoding(e) => self.syntax(format!("invalid UTF-8: {e}")),
            other => self.syntax(other.to_string()),
        }
    }

    /// Read one event, keep what the callers need, and enforce the caps.
    fn next_event(&mut self) -> Result<Ev, Error> {
        loop {
            self.buf.clear();
            let c = self.reader.get_mut();
            c.begin_token();
            if std::mem::take(&mut self.token_after_lt) {
                c.skip_in_token(1);
            }
            // Only start tags are resolved (end tags must match their start tag, which
            // check_end_names ensures).
            let res = self.reader.read_event_into(&mut self.buf);
            let ev = match res {
                Ok(x) => x,
                Err(e) => return Err(self.map_xml_err(e)),
            };
            if self.reader.get_ref().pos > self.unit_limit {
                let cap = self.limits.max_unit_bytes;
                return Err(self.unit_cap("max_unit_bytes", cap));
            }
            // After a text event the reader is inside markup (its `<` is consumed).
            self.after_markup = !matches!(ev, Event::Text(_));
            match ev {
                Event::Start(e) => {
                    // This tag's namespace bindings, as `NsReader` keeps them: added up to
                    // the first malformed attribute, in a scope of their own (opened only for
                    // a tag that has bindings; see `ns_scopes`). The other attributes are
                    // kept as ranges for the loop below.
                    let tag: &[u8] = &e;
                    let mut spans = std::mem::take(&mut self.attr_spans);
                    spans.clear();
                    let mut attr_err = None;
                    let mut ns_err = None;
                    let mut scoped = false;
                    let max_attrs = self.limits.max_attributes as usize;
                    for a in e.attributes().with_checks(false) {
                        let a = match a {
                            Ok(a) => a,
                            Err(err) => {
                                attr_err = Some(err);
                                break;
                            }
                        };
                        if spans.len() >= max_attrs {
                            self.attr_spans = spans;
                            let name = String::from_utf8_lossy(e.name().into_inner()).into_owned();
                            return Err(Error::Limit {
                                location: self.tag_location(&name),
                                limit: "max_attributes",
                                cap: u64::from(self.limits.max_attributes),
                            });
                        }
                        if let Some(prefix) = a.key.as_namespace_binding() {
                            if !scoped {
                                scoped = true;
                                self.ns.push_scope();
                                self.ns_scopes.push(self.depth + 1);
                            }
                            self.default_ns = None;
                            // The namespace name is the attribute's normalised value
                            // (Namespaces in XML 1.0, section 3): references expanded.
                            let uri = match attr_value(&a) {
                                Ok(u) => u,
                                Err(m) => {
                                    self.attr_spans = spans;
                                    return Err(self.forbidden_or_syntax(m));
                                }
                            };
                            if let Err(err) = self.ns.add(prefix, uri.as_bytes()) {
                                ns_err = Some(err);
                                break;
                            }
                            if self.ns.in_scope() > self.limits.max_namespaces as usize {
                                self.attr_spans = spans;
                                let name =
                                    String::from_utf8_lossy(e.name().into_inner()).into_owned();
                                return Err(Error::Limit {
                                    location: self.tag_location(&name),
                                    limit: "max_namespaces",
                                    cap: u64::from(self.limits.max_namespaces),
                                });
                            }
                        }
                        let ks = (a.key.0.as_ptr() as usize).wrapping_sub(tag.as_ptr() as usize);
                        let v: &[u8] = &a.value;
                        let vs = (v.as_ptr() as usize).wrapping_sub(tag.as_ptr() as usize);
                        spans.push((ks, ks + a.key.0.len(), vs, vs + v.len()));
                    }
                    if let Some(err) = ns_err {
                        self.attr_spans = spans;
                        return Err(self.map_xml_err(quick_xml::Error::Namespace(err)));
                    }
                    // The prefix ends at the first `:` (as `QName::decompose`), found without
                    // memchr's setup: names are short.
                    let qname = e.name().into_inner();
                    let colon = qname.iter().position(|&c| c == b':');
                    // Unprefixed names resolve to the default namespace: its classification is
                    // kept until the bindings change (`default_ns`).
                    let ns = match colon {
                        None if self.default_ns.is_some() => None,
                        None => Some(self.ns.resolve_default()),
                        Some(i) => Some(self.ns.resolve_prefixed(&qname[..i])),
                    };
                    self.depth += 1;
                    self.elements += 1;
                    self.unit_elements += 1;
                    if self.unit_elements > self.limits.max_unit_elements {
                        let cap = self.limits.max_unit_elements;
                        return Err(self.unit_cap("max_unit_elements", cap));
                    }
                    if self.depth > self.limits.max_depth.min(MAX_DEPTH) {
                        let cap = u64::from(self.limits.max_depth.min(MAX_DEPTH));
                        return Err(Error::Limit {
                            location: self.location_now(),
                            limit: "max_depth",
                            cap,
                        });
                    }
                    if self.elements > self.limits.max_elements {
                        return Err(Error::Limit {
                            location: self.location_now(),
                            limit: "max_elements",
                            cap: self.limits.max_elements,
                        });
                    }
                    self.child_uri.clear();
                    match ns {
                        None => {
                            // The default namespace, classified before.
                            let d = self.default_ns.unwrap_or(Ns::None);
                            self.child_ns = d;
                            if d != Ns::Iodef {
                                self.child_uri.extend_from_slice(&self.default_uri);
                            }
                        }
                        Some(ns) => {
                            self.child_ns = match ns {
                                ResolveResult::Bound(n) => {
                                    if n.0 == self.iodef_ns {
                                        // Not copied: `child_uri()` answers `iodef_ns`.
                                        Ns::Iodef
                                    } else {
                                        self.child_uri.extend_from_slice(n.0);
                                        match n.0 {
                                            b"urn:ietf:params:xml:ns:iodef-sci-1.0" => Ns::Sci,
                                            b"urn:ietf:params:xml:ns:iodef-enum-1.0" => Ns::Enum,
                                            b"http://www.w3.org/2000/09/xmldsig#" => Ns::Ds,
                                            _ => Ns::Other,
                                        }
                                    }
                                }
                                ResolveResult::Unbound => Ns::None,
                                ResolveResult::Unknown(p) => {
                                    let p = String::from_utf8_lossy(&p).into_owned();
                                    return Err(
                                        self.syntax(format!("undeclared namespace prefix `{p}`"))
                                    );
                                }
                            };
                            if colon.is_none() {
                                self.default_ns = Some(self.child_ns);
                                self.default_uri.clear();
                                self.default_uri.extend_from_slice(&self.child_uri);
                            }
                        }
                    }
                    // Only start tags keep their position (for paths and diagnostics).
                    // Counted when asked for, or before the chunk goes.
                    self.reader.get_mut().start_tag();
                    self.child_local.clear();
                    // The local part of the name (after the first `:`, as `local_name()`).
                    let local = match colon {
                        Some(i) => &qname[i + 1..],
                        None => qname,
                    };
                    // With attributes, the tag is checked as UTF-8 once, as a whole, and its
                    // names and values are slices of it (see `tag_part`).
                    let tag_str = if spans.is_empty() {
                        None
                    } else {
                        std::str::from_utf8(tag).ok()
                    };
                    match tag_part(tag_str, local) {
                        Ok(l) => self.child_local.push_str(l),
                        Err(_) => return Err(self.syntax("invalid UTF-8 in element name")),
                    }
                    self.child_attrs.clear();
                    // Duplicate attributes are found here rather than by quick-xml's checked
                    // iterator, which allocates a list of keys per start tag; the error is the
                    // same (`AttrError::Duplicated` with the same offsets).
                    let mut keys = Keys::default();
                    for &(ks, ke, vs, ve) in &spans {
                        let (Some(k), Some(raw)) = (tag.get(ks..ke), tag.get(vs..ve)) else {
                            return Err(self.syntax("internal: attribute outside its tag"));
                        };
                        let a = Attribute {
                            key: QName(k),
                            value: raw.into(),
                        };
                        let key = a.key;
                        let at =
                            (key.as_ref().as_ptr() as usize).wrapping_sub(tag.as_ptr() as usize);
                        if let Some(prev) = keys.insert(key.into_inner(), at) {
                            let err =
                                quick_xml::events::attributes::AttrError::Duplicated(at, prev);
                            return Err(self.syntax(err.to_string()));
                        }
                        if key.as_ref() == b"xmlns" || key.as_ref().starts_with(b"xmlns:") {
                            continue;
                        }
                        // Unprefixed attributes are in no namespace: nothing to resolve.
                        let k = key.into_inner();
                        let (rns, local) = if let Some(i) = k.iter().position(|&c| c == b':') {
                            (self.ns.resolve_prefixed(&k[..i]), &k[i + 1..])
                        } else {
                            (ResolveResult::Unbound, key.into_inner())
                        };
                        let qual = match rns {
                            ResolveResult::Unbound => None,
                            ResolveResult::Bound(n) if n.0 == NS_XML => Some(Err(())),
                            ResolveResult::Bound(n) => Some(Ok(n.0.to_vec())),
                            ResolveResult::Unknown(p) => {
                                let p = String::from_utf8_lossy(&p).into_owned();
                                return Err(
                                    self.syntax(format!("undeclared namespace prefix `{p}`"))
                                );
                            }
                        };
                        let Ok(local) = tag_part(tag_str, local) else {
                            return Err(self.syntax("invalid UTF-8 in attribute name"));
                        };
                        let attrs = &mut self.child_attrs;
                        match qual {
                            None => {}
                            Some(Err(())) => attrs.buf.push_str("xml:"),
                            Some(Ok(uri)) => {
                                attrs.buf.push('{');
                                match std::str::from_utf8(&uri) {
                                    Ok(u) => attrs.buf.push_str(u),
                                    Err(_) => return Err(self.syntax("invalid UTF-8 in namespace")),
                                }
                                attrs.buf.push('}');
                            }
                        }
                        attrs.buf.push_str(local);
                        let k = attrs.buf.len();
                        let raw = a.value.as_ref();
                        // One pass over the value classifies it (see ATTR_CLASS).
                        let class = raw.iter().fold(0u8, |a, &c| a | ATTR_CLASS[usize::from(c)]);
                        if let Some(v) = plain_attr(tag_str, raw, class) {
                            self.child_attrs.buf.push_str(v);
                        } else {
                            match attr_value(&a) {
                                Ok(v) => self.child_attrs.buf.push_str(&v),
                                Err(m) => return Err(self.forbidden_or_syntax(m)),
                            }
                        }
                        let v = self.child_attrs.buf.len();
                        self.child_attrs.items.push((k, v, v));
                    }
                    self.attr_spans = spans;
                    if let Some(err) = attr_err {
                        return Err(self.syntax(err.to_string()));
                    }
                    return Ok(Ev::Start);
                }
                Event::End(_) => {
                    // End tags are not resolved: the scope can go at once.
                    if self.ns_scopes.last() == Some(&self.depth) {
                        self.ns_scopes.pop();
                        self.ns.pop_scope();
                        self.default_ns = None;
                    }
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Ev::End);
                }
                Event::Text(t) => {
                    let raw: &[u8] = &t;
                    if let Some(s) = indentation(raw) {
                        // A newline and spaces: a static string, no validation, no copy.
                        self.text_static = Some(s);
                        self.text_ws = true;
                        return Ok(Ev::Text);
                    }
                    self.text_static = None;
                    self.text.clear();
                    if raw.iter().all(|&c| matches!(c, b' ' | b'\t' | b'\n')) {
                        // Other whitespace between elements: ASCII, nothing to normalise.
                        self.text.push_str(std::str::from_utf8(raw).unwrap_or(""));
                        self.text_ws = true;
                        return Ok(Ev::Text);
                    }
                    self.text_ws = false;
                    // Without a carriage return there is no line end to normalise, and
                    // `xml10_content` is a UTF-8 check: done here, short runs without
                    // memchr's setup. Errors are still worded by quick-xml.
                    let has_cr = if raw.len() < 64 {
                        raw.contains(&b'\r')
                    } else {
                        memchr::memchr(b'\r', raw).is_some()
                    };
                    if !has_cr {
                        if let Ok(s) = std::str::from_utf8(raw) {
                            self.text.push_str(s);
                            return Ok(Ev::Text);
                        }
                    }
                    match t.xml10_content() {
                        Ok(s) => self.text.push_str(&s),
                        Err(e) => return Err(self.syntax(format!("invalid UTF-8: {e}"))),
                    }
                    return Ok(Ev::Text);
                }
                Event::CData(t) => {
                    self.text_static = None;
                    self.text.clear();
                    self.text_ws = false;
                    match t.xml10_content() {
                        Ok(s) => self.text.push_str(&s),
                        Err(e) => return Err(self.syntax(format!("invalid UTF-8: {e}"))),
                    }
                    return Ok(Ev::Text);
                }
                Event::GeneralRef(r) => {
                    self.text_static = None;
                    self.text.clear();
                    self.text_ws = false;
                    match r.resolve_char_ref() {
                        Ok(Some(c)) if crate::types::xml_char(c) => {
                            self.text.push(c);
                            return Ok(Ev::Text);
                        }
                        Ok(Some(_)) => {
                            return Err(self.syntax("character reference to a forbidden character"))
                        }
                        Ok(None) => {}
                        Err(e) => return Err(self.syntax(e.to_string())),
                    }
                    let c = match r.as_ref() {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            let name = String::from_utf8_lossy(other).into_owned();
                            return Err(Error::Forbidden {
                                location: self.location_now(),
                                message: format!(
                                    "entity reference `&{name};`: entities are not expanded (no DTD processing)"
                                ),
                            });
                        }
                    };
                    self.text.push(c);
                    return Ok(Ev::Text);
                }
                Event::Decl(d) => {
                    let enc = match d.encoding() {
                        Some(Ok(e)) => Some(e.to_ascii_lowercase()),
                        Some(Err(e)) => {
                            let m = e.to_string();
                            return Err(self.syntax(m));
                        }
                        None => None,
                    };
                    if let Some(enc) = enc {
                        let e = String::from_utf8_lossy(&enc).into_owned();
                        let utf16_name = matches!(e.as_str(), "utf-16" | "utf-16le" | "utf-16be");
                        let utf8_name = matches!(e.as_str(), "utf-8" | "us-ascii" | "utf8");
                        if self.utf16 && !utf16_name {
                            return Err(self.syntax(format!(
                                "the declaration says encoding `{e}` but the document is UTF-16"
                            )));
                        }
                        if !self.utf16 && utf16_name {
                            return Err(self.syntax(format!(
                                "the declaration says encoding `{e}` but the document is not \
                                 UTF-16 (no byte-order mark, and `<?xml` is not two-byte)"
                            )));
                        }
                        if !self.utf16 && !utf8_name {
                            return Err(self.syntax(format!(
                                "unsupported encoding `{e}`: only UTF-8 and UTF-16 are read"
                            )));
                        }
                    }
                }
                Event::DocType(_) => {
                    let (line, column) = self.reader.get_mut().token_line_col();
                    return Err(Error::Forbidden {
                        location: Location {
                            path: self.path.clone(),
                            line,
                            column,
                        },
                        message: "document type declaration (DTD): DTDs and entity declarations are not processed".into(),
                    });
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Empty(_) => return Err(self.syntax("internal: empty element not expanded")),
                Event::Eof => {
                    if self.depth > 0 {
                        return Err(self.syntax(format!(
                            "unexpected end of input inside `{}` (truncated document)",
                            self.current_name()
                        )));
                    }
                    return Ok(Ev::Eof);
                }
            }
        }
    }

    fn forbidden_or_syntax(&mut self, m: String) -> Error {
        if m.starts_with("entity") {
            Error::Forbidden {
                location: self.child_location(),
                message: m,
            }
        } else {
            Error::Syntax {
                location: self.child_location(),
                message: m,
            }
        }
    }

    /// Push the pending child on the path and hand out its attributes.
    fn enter(&mut self) -> Attrs {
        let len = self.path.len();
        self.path.push('/');
        // Checked to be UTF-8 in next_event.
        push_segment(&mut self.path, &self.child_local);
        self.marks.push(len);
        let c = self.reader.get_mut();
        c.marks.push(c.child);
        let fresh = self.attr_pool.pop().unwrap_or_default();
        std::mem::replace(&mut self.child_attrs, fresh)
    }

    /// Enter the pending child by hand (the streaming reader); returns its attributes.
    pub(crate) fn enter_child(&mut self) -> Attrs {
        self.enter()
    }

    pub(crate) fn leave_child(&mut self) {
        self.leave()
    }

    fn leave(&mut self) {
        if let Some(len) = self.marks.pop() {
            self.path.truncate(len);
            self.reader.get_mut().marks.pop();
        }
    }

    pub(crate) fn recycle(&mut self, mut a: Attrs) {
        a.clear();
        if self.attr_pool.len() < 64 {
            self.attr_pool.push(a);
        }
    }

    /// Skip events until the depth is back to `target`.
    fn skip_to(&mut self, target: u32) -> Result<(), Error> {
        while self.depth > target {
            if let Ev::Eof = self.next_event()? {
                return Err(self.syntax("unexpected end of input (truncated document)"));
            }
        }
        Ok(())
    }

    /// Record (lenient) or return (strict) a schema or semantic error.
    fn invalid(&mut self, location: Location, message: String) -> Result<(), Error> {
        let e = Error::Invalid { location, message };
        if self.lenient {
            self.record(e.into_diagnostic());
            Ok(())
        } else {
            Err(e)
        }
    }

    pub(crate) fn warn(&mut self, location: Location, message: String) {
        self.record(Diagnostic {
            severity: Severity::Warning,
            location,
            message,
        });
    }

    /// Keep a diagnostic, up to the cap; count the rest.
    pub(crate) fn record(&mut self, d: Diagnostic) {
        if self.diags.len() < self.limits.max_diagnostics {
            self.diags.push(d);
        } else {
            self.dropped_diags += 1;
            if d.severity == Severity::Error {
                self.dropped_errors += 1;
            }
        }
    }

    /// Diagnostics that were not kept because of the cap.
    pub(crate) fn dropped_diagnostics(&self) -> u64 {
        self.dropped_diags
    }

    /// The errors among [`Self::dropped_diagnostics`].
    pub(crate) fn dropped_errors(&self) -> u64 {
        self.dropped_errors
    }

    /// Read a child element with `f`; in lenient mode a recoverable error drops the child.
    pub(crate) fn child<T>(
        &mut self,
        f: impl FnOnce(&mut Self, Attrs) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        let d = self.depth;
        let attrs = self.enter();
        match f(self, attrs) {
            Ok(v) => {
                self.leave();
                Ok(Some(v))
            }
            Err(e) if self.lenient && e.is_recoverable() => {
                self.record(e.into_diagnostic());
                self.skip_to(d.saturating_sub(1))?;
                self.leave();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Read a child element into a new last item of `list`, in place; in lenient mode a
    /// recoverable error drops the item (as [`Parser::child`] drops the child).
    pub(crate) fn child_push<T: Default>(
        &mut self,
        list: &mut Vec<T>,
        f: impl FnOnce(&mut T, &mut Self, Attrs) -> Result<(), Error>,
    ) -> Result<(), Error> {
        list.push(T::default());
        let r = match list.last_mut() {
            Some(slot) => self.child(|p, a| f(slot, p, a)),
            None => Ok(None),
        };
        match r {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                list.pop();
                Ok(())
            }
            Err(e) => {
                list.pop();
                Err(e)
            }
        }
    }

    /// Read a child element into `slot` (empty), in place; it stays empty when the child
    /// is dropped or fails.
    pub(crate) fn child_opt<T: Default>(
        &mut self,
        slot: &mut Option<T>,
        f: impl FnOnce(&mut T, &mut Self, Attrs) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let r = self.child(|p, a| f(slot.insert(T::default()), p, a));
        match r {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                *slot = None;
                Ok(())
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }

    /// Line and column of the pending child's start tag.
    pub(crate) fn child_start(&mut self) -> (u64, u64) {
        self.reader.get_mut().child_line_col()
    }

    /// The last text event's content.
    fn text(&self) -> &str {
        match self.text_static {
            Some(t) => t,
            None => &self.text,
        }
    }

    /// Namespace URI of the pending child (empty for none).
    fn child_uri(&self) -> &[u8] {
        if self.child_ns == Ns::Iodef {
            self.iodef_ns
        } else {
            &self.child_uri
        }
    }

    pub(crate) fn child_ns(&self) -> Ns {
        self.child_ns
    }

    pub(crate) fn child_local(&self) -> &[u8] {
        self.child_local.as_bytes()
    }

    pub(crate) fn is_child(&self, name: &[u8]) -> bool {
        self.child_ns == Ns::Iodef && self.child_local.as_bytes() == name
    }

    /// Advance to the next child start tag (`true`) or the end of the current element.
    pub(crate) fn next_child(&mut self) -> Result<bool, Error> {
        if self.after_markup {
            // Whitespace is insignificant in element-only content: skipped here, it costs
            // no text event.
            self.skip_whitespace()?;
        }
        loop {
            match self.next_event()? {
                Ev::Start => return Ok(true),
                Ev::End => return Ok(false),
                Ev::Text => {
                    if !self.text_ws && !self.text().trim_matches(is_ws).is_empty() {
                        let msg = format!(
                            "character content is not allowed in `{}` (element-only content)",
                            self.current_name()
                        );
                        let loc = self.here();
                        self.invalid(loc, msg)?;
                    }
                }
                Ev::Eof => return Err(self.syntax("unexpected end of input (truncated document)")),
            }
        }
    }

    /// Consume the whitespace (space, tab, newline, carriage return) at the start of a text
    /// run, as one token: the token cap applies to it as to a whitespace text event.
    ///
    /// A whitespace text event used to end by consuming the `<` of the next tag, so that tag's
    /// position (line, column, token cap) counted from the byte after its `<`; when the skipped
    /// run is followed by `<`, the next token is made to start there too, so diagnostics stay
    /// exactly as they were.
    fn skip_whitespace(&mut self) -> Result<(), Error> {
        let r = {
            let c = self.reader.get_mut();
            c.begin_token();
            let mut skipped = 0usize;
            loop {
                let (n, next) = match c.fill_buf() {
                    Ok(b) => {
                        let n = b
                            .iter()
                            .take_while(|&&x| matches!(x, b' ' | b'\t' | b'\n' | b'\r'))
                            .count();
                        (n, b.get(n).copied())
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e),
                };
                c.consume(n);
                skipped += n;
                if next.is_some() || n == 0 {
                    break Ok(skipped > 0 && next == Some(b'<'));
                }
            }
        };
        match r {
            Ok(lt) => {
                self.token_after_lt = lt;
                Ok(())
            }
            Err(e) => Err(self.map_xml_err(quick_xml::Error::Io(std::sync::Arc::new(e)))),
        }
    }

    /// The pending child is not expected at this position: report it and skip it.
    pub(crate) fn order(
        &mut self,
        pos: &mut usize,
        idx: usize,
        name: &str,
        order: &str,
    ) -> Result<bool, Error> {
        if idx < *pos {
            let msg = format!(
                "element `{name}` is not expected here in `{}` (out of order; expected order: {order})",
                self.current_name()
            );
            let loc = self.child_location();
            self.invalid(loc, msg)?;
            self.skip_to(self.depth.saturating_sub(1))?;
            return Ok(false);
        }
        *pos = idx;
        Ok(true)
    }

    pub(crate) fn unexpected_child(&mut self, order: &str) -> Result<(), Error> {
        let name = self.child_local.clone();
        let what = match self.child_ns {
            Ns::Iodef => format!("element `{name}`"),
            _ => format!(
                "element `{{{}}}{name}`",
                String::from_utf8_lossy(self.child_uri())
            ),
        };
        let expected = if order.is_empty() {
            "no child elements"
        } else {
            order
        };
        let msg = format!(
            "{what} is not allowed in `{}` (expected: {expected})",
            self.current_name()
        );
        let loc = self.child_location();
        self.invalid(loc, msg)?;
        self.skip_to(self.depth.saturating_sub(1))
    }

    pub(crate) fn duplicate(&mut self, name: &str) -> Result<(), Error> {
        let msg = format!(
            "element `{name}` may appear at most once here in `{}`",
            self.current_name()
        );
        let loc = self.here();
        self.invalid(loc, msg)
    }

    pub(crate) fn missing(&mut self, name: &str, order: &str) -> Result<(), Error> {
        let msg = format!(
            "missing required element `{name}` in `{}` (expected: {order})",
            self.current_name()
        );
        let loc = self.here();
        self.invalid(loc, msg)
    }

    pub(crate) fn missing_attr(&mut self, name: &str) -> Result<(), Error> {
        let msg = format!(
            "missing required attribute `{name}` on `{}`",
            self.current_name()
        );
        let loc = self.here();
        self.invalid(loc, msg)
    }

    pub(crate) fn attr_unexpected(&mut self, k: &str) -> Result<(), Error> {
        // xsi:schemaLocation and friends are allowed everywhere and carry no information.
        if k.starts_with("{http://www.w3.org/2001/XMLSchema-instance}") {
            return Ok(());
        }
        let msg = format!(
            "attribute `{k}` is not allowed on `{}`",
            self.current_name()
        );
        let loc = self.here();
        self.invalid(loc, msg)
    }

    pub(crate) fn fixed_attr(&mut self, v: &str, fixed: &str, name: &str) -> Result<(), Error> {
        if v.trim_matches(is_ws) != fixed {
            let msg = format!("attribute `{name}` must be `{fixed}`, found `{v}`");
            let loc = self.here();
            self.invalid(loc, msg)?;
        }
        Ok(())
    }

    fn bad_value(&mut self, v: &str, name: &str, what: &str) -> Result<(), Error> {
        let target = if name == "content" {
            format!("content of `{}`", self.current_name())
        } else if name.chars().next().is_some_and(char::is_uppercase) {
            format!("element `{name}`")
        } else {
            format!("attribute `{name}` of `{}`", self.current_name())
        };
        let msg = format!("invalid value `{}` for {target}: {what}", Shown(v));
        let loc = self.here();
        self.invalid(loc, msg)
    }

    pub(crate) fn enum_value<E: XmlEnum>(
        &mut self,
        v: &str,
        name: &str,
    ) -> Result<Option<E>, Error> {
        match E::from_xml(v.trim_matches(is_ws)) {
            Some(e) => Ok(Some(e)),
            None => {
                let what = format!("expected one of: {}", E::allowed());
                self.bad_value(v, name, &what)?;
                Ok(None)
            }
        }
    }

    pub(crate) fn pair_ext<E: XmlEnum>(
        &mut self,
        slot: &mut Option<E>,
        ext: Option<String>,
        name: &str,
        ext_name: &str,
    ) -> Result<(), Error> {
        match slot {
            Some(e) => self.pair_ext_req(e, ext, name, ext_name),
            None => {
                if ext.is_some() {
                    let msg =
                        format!("attribute `{ext_name}` is ignored: `{name}` is not `ext-value`");
                    let loc = self.here();
                    self.warn(loc, msg);
                }
                Ok(())
            }
        }
    }

    pub(crate) fn pair_ext_req<E: XmlEnum>(
        &mut self,
        slot: &mut E,
        ext: Option<String>,
        name: &str,
        ext_name: &str,
    ) -> Result<(), Error> {
        let is_ext = slot.as_xml() == "ext-value";
        match (is_ext, ext) {
            (true, Some(s)) if !s.is_empty() => {
                slot.set_ext(s);
            }
            (true, _) => {
                let msg = format!(
                    "attribute `{name}`=\"ext-value\" requires a non-empty `{ext_name}` (RFC 7970 section 5.1.1)"
                );
                let loc = self.here();
                self.invalid(loc, msg)?;
            }
            (false, Some(_)) => {
                let msg = format!("attribute `{ext_name}` is ignored: `{name}` is not `ext-value`");
                let loc = self.here();
                self.warn(loc, msg);
            }
            (false, None) => {}
        }
        Ok(())
    }

    pub(crate) fn value_datetime(
        &mut self,
        v: &str,
        name: &str,
    ) -> Result<Option<DateTime>, Error> {
        match DateTime::parse(v) {
            Some(d) => Ok(Some(d)),
            None => {
                self.bad_value(
                    v,
                    name,
                    "expected xs:dateTime (YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm])",
                )?;
                Ok(None)
            }
        }
    }

    pub(crate) fn value_integer(&mut self, v: &str, name: &str) -> Result<Option<i64>, Error> {
        let t = v.trim_matches(is_ws);
        let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            if let Ok(n) = t.parse::<i64>() {
                return Ok(Some(n));
            }
        }
        self.bad_value(v, name, "expected an integer")?;
        Ok(None)
    }

    pub(crate) fn value_port(&mut self, v: &str, name: &str) -> Result<Option<u16>, Error> {
        let t = v.trim_matches(is_ws);
        let digits = t.strip_prefix('+').unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            if let Ok(n) = digits.trim_start_matches('0').parse::<u16>() {
                return Ok(Some(n));
            }
            if digits.bytes().all(|c| c == b'0') {
                return Ok(Some(0));
            }
        }
        self.bad_value(v, name, "expected a port number 0-65535")?;
        Ok(None)
    }

    pub(crate) fn value_float(&mut self, v: &str, name: &str) -> Result<Option<Float>, Error> {
        match Float::parse(v) {
            Some(f) => Ok(Some(f)),
            None => {
                self.bad_value(v, name, "expected xs:float")?;
                Ok(None)
            }
        }
    }

    pub(crate) fn value_positive_float(
        &mut self,
        v: &str,
        name: &str,
    ) -> Result<Option<Float>, Error> {
        match Float::parse(v) {
            Some(f) if f.0 > 0.0 => Ok(Some(f)),
            _ => {
                self.bad_value(v, name, "expected a float greater than 0")?;
                Ok(None)
            }
        }
    }

    pub(crate) fn value_portlist(
        &mut self,
        v: &str,
        name: &str,
    ) -> Result<Option<Portlist>, Error> {
        match Portlist::parse(v) {
            Some(p) => Ok(Some(p)),
            None => {
                self.bad_value(
                    v,
                    name,
                    "expected a Portlist like `22,80,8000-8080` (no spaces, ports 0-65535, ascending ranges)",
                )?;
                Ok(None)
            }
        }
    }

    pub(crate) fn value_timezone(&mut self, v: &str, name: &str) -> Result<Option<String>, Error> {
        let t = v.trim_matches(is_ws);
        let b = t.as_bytes();
        let ok = t == "Z"
            || (b.len() == 6
                && (b[0] == b'+' || b[0] == b'-')
                && b[3] == b':'
                && matches!((b[1], b[2]), (b'0', b'0'..=b'9') | (b'1', b'0'..=b'4'))
                && (b'0'..=b'5').contains(&b[4])
                && b[5].is_ascii_digit());
        if ok {
            Ok(Some(t.to_owned()))
        } else {
            self.bad_value(v, name, "expected a timezone `Z` or `+hh:mm`")?;
            Ok(None)
        }
    }

    pub(crate) fn value_idref(&mut self, v: &str, name: &str) -> Result<Option<String>, Error> {
        self.value_id(v, name)
    }

    pub(crate) fn value_id(&mut self, v: &str, name: &str) -> Result<Option<String>, Error> {
        let t = v.trim_matches(is_ws);
        if crate::types::ncname(t) {
            Ok(Some(t.to_owned()))
        } else {
            self.bad_value(v, name, "expected an XML NCName (xs:ID)")?;
            Ok(None)
        }
    }

    /// Text of the current element; child elements are errors.
    pub(crate) fn read_text(&mut self) -> Result<String, Error> {
        let mut out = String::new();
        self.read_text_into(&mut out)?;
        Ok(out)
    }

    fn read_text_into(&mut self, out: &mut String) -> Result<(), Error> {
        loop {
            match self.next_event()? {
                Ev::Text => {
                    if (out.len() + self.text().len()) as u64 > self.limits.max_token_bytes {
                        return Err(Error::Limit {
                            location: self.here(),
                            limit: "max_token_bytes",
                            cap: self.limits.max_token_bytes,
                        });
                    }
                    if let Some(t) = self.text_static {
                        out.push_str(t);
                    } else {
                        out.push_str(&self.text);
                    }
                }
                Ev::End => return Ok(()),
                Ev::Start => {
                    let msg = format!(
                        "element `{}` is not allowed in `{}` (text-only content)",
                        self.child_local,
                        self.current_name()
                    );
                    let loc = self.child_location();
                    self.invalid(loc, msg)?;
                    self.skip_to(self.depth.saturating_sub(1))?;
                }
                Ev::Eof => return Err(self.syntax("unexpected end of input (truncated document)")),
            }
        }
    }

    /// A text-only child without attributes, handed to `f` from a reused buffer (for values
    /// parsed into numbers, times and enumerations: no allocation per element).
    pub(crate) fn read_text_value<T>(
        &mut self,
        a: Attrs,
        f: impl FnOnce(&mut Self, &str) -> Result<Option<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let mut t = std::mem::take(&mut self.value_buf);
        t.clear();
        let r = self.read_text_only_into(a, &mut t);
        let r = match r {
            Ok(()) => f(self, &t),
            Err(e) => Err(e),
        };
        self.value_buf = t;
        r
    }

    /// A text-only child without attributes.
    pub(crate) fn read_text_only(&mut self, a: Attrs) -> Result<String, Error> {
        let mut out = String::new();
        self.read_text_only_into(a, &mut out)?;
        Ok(out)
    }

    fn read_text_only_into(&mut self, a: Attrs, out: &mut String) -> Result<(), Error> {
        if !a.is_empty() {
            let names: Vec<String> = a.iter().map(|(k, _)| k.to_owned()).collect();
            self.recycle(a);
            let msg = format!(
                "attributes {names:?} are not allowed on `{}`",
                self.current_name()
            );
            let loc = self.here();
            self.invalid(loc, msg)?;
        } else {
            self.recycle(a);
        }
        self.read_text_into(out)
    }

    pub(crate) fn expect_empty(&mut self) -> Result<(), Error> {
        while self.next_child()? {
            self.unexpected_child("")?;
        }
        Ok(())
    }

    /// Mixed content of any namespace.
    pub(crate) fn read_mixed(&mut self) -> Result<Vec<ExtensionContent>, Error> {
        let mut out = Vec::new();
        let mut size = 0u64;
        loop {
            match self.next_event()? {
                Ev::Text => {
                    size += self.text().len() as u64;
                    if size > self.limits.max_token_bytes {
                        return Err(Error::Limit {
                            location: self.here(),
                            limit: "max_token_bytes",
                            cap: self.limits.max_token_bytes,
                        });
                    }
                    if let Some(ExtensionContent::Text(t)) = out.last_mut() {
                        t.push_str(self.text());
                    } else {
                        out.push(ExtensionContent::Text(self.text().to_owned()));
                    }
                }
                Ev::Start => {
                    if let Some(e) = self.child(Self::read_any_element)? {
                        out.push(ExtensionContent::Element(e));
                    }
                }
                Ev::End => return Ok(out),
                Ev::Eof => return Err(self.syntax("unexpected end of input (truncated document)")),
            }
        }
    }

    /// Child elements of any namespace (whitespace between them is dropped).
    pub(crate) fn read_any_children(&mut self) -> Result<Vec<crate::types::AnyElement>, Error> {
        let mut out = Vec::new();
        while self.next_child()? {
            if let Some(e) = self.child(Self::read_any_element)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The current element (just entered) as a generic tree.
    pub(crate) fn read_any_element(&mut self, a: Attrs) -> Result<AnyElement, Error> {
        let namespace = if self.child_uri().is_empty() {
            None
        } else {
            Some(String::from_utf8_lossy(self.child_uri()).into_owned())
        };
        let name = self.current_name().to_owned();
        let attributes = a
            .iter()
            .map(|(k, v)| {
                let (namespace, name) = if let Some(l) = k.strip_prefix("xml:") {
                    (Some(String::from_utf8_lossy(NS_XML).into_owned()), l)
                } else if let Some(rest) = k.strip_prefix('{') {
                    match rest.split_once('}') {
                        Some((ns, l)) => (Some(ns.to_owned()), l),
                        None => (None, k),
                    }
                } else {
                    (None, k)
                };
                AnyAttribute {
                    namespace,
                    name: name.to_owned(),
                    value: v.to_owned(),
                }
            })
            .collect();
        self.recycle(a);
        let content = self.read_mixed()?;
        Ok(AnyElement {
            namespace,
            name,
            attributes,
            content,
        })
    }
}

/// Longest element name kept whole in paths (bytes); longer ones are shortened, so that a
/// hostile name does not make every diagnostic under it large.
const MAX_SEGMENT: usize = 128;

/// Push an element name on a path, shortened past [`MAX_SEGMENT`] bytes.
fn push_segment(path: &mut String, name: &str) {
    if name.len() <= MAX_SEGMENT {
        path.push_str(name);
    } else {
        let mut end = MAX_SEGMENT;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        path.push_str(&name[..end]);
        path.push_str(&format!("...({} bytes)", name.len()));
    }
}

/// A value in a diagnostic: shortened past 100 bytes (with its length), so that the
/// diagnostics of a hostile document stay small.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.len() <= 100 {
            return f.write_str(v);
        }
        let mut end = 100;
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}...({} bytes)", &v[..end], v.len())
    }
}

/// A newline and up to 128 spaces, the indentation of written documents.
const NL_SPACES: &str = "\n                                                                                                                                ";

/// `raw` as a static string when it is a newline and spaces (indentation), so the common
/// case costs neither UTF-8 validation nor per-byte pushes.
fn indentation(raw: &[u8]) -> Option<&'static str> {
    let (&first, rest) = raw.split_first()?;
    (first == b'\n'
        && raw.len() <= NL_SPACES.len()
        && rest.iter().fold(true, |ok, &c| ok & (c == b' ')))
    .then(|| &NL_SPACES[..raw.len()])
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// An attribute value that needs no unescaping and holds only XML characters (the common
/// case), given its [`ATTR_CLASS`] bits; `None` sends it through [`unescape_attr`], which
/// also words the errors.
fn plain_attr<'a>(tag: Option<&'a str>, raw: &'a [u8], class: u8) -> Option<&'a str> {
    if class != 0 {
        return None;
    }
    tag_part(tag, raw).ok()
}

/// `part` (a name or value inside a start tag) as a `str`: a slice of `tag`, the whole tag
/// already checked as UTF-8, when there is one; else checked on its own.
fn tag_part<'a>(tag: Option<&'a str>, part: &'a [u8]) -> Result<&'a str, std::str::Utf8Error> {
    if let Some(t) = tag {
        let off = (part.as_ptr() as usize).wrapping_sub(t.as_ptr() as usize);
        if let Some(s) = t.get(off..off.wrapping_add(part.len())) {
            if s.as_ptr() == part.as_ptr() {
                return Ok(s);
            }
        }
    }
    std::str::from_utf8(part)
}

/// [`ATTR_CLASS`] bit: `&` (a reference to expand) or a byte that can start a character
/// outside XML's Char (C0 controls, and 0xEF for U+FFFE / U+FFFF).
const ATTR_NOT_PLAIN: u8 = 1;
/// [`ATTR_CLASS`] bit: tab, newline or carriage return (attribute-value normalisation).
const ATTR_WS: u8 = 2;

/// The class bits of each byte of an attribute value: one lookup and an OR per byte.
static ATTR_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = if matches!(c as u8, b'\t' | b'\n' | b'\r') {
            ATTR_WS
        } else {
            ATTR_NOT_PLAIN
        };
        c += 1;
    }
    t[b'&' as usize] = ATTR_NOT_PLAIN;
    t[0xEF] = ATTR_NOT_PLAIN;
    t
};

/// An attribute value as XML 1.0 reads it: tab, newline and carriage return normalised to
/// spaces (section 3.3.3), then references expanded and the characters checked.
fn attr_value<'a>(
    a: &'a quick_xml::events::attributes::Attribute<'_>,
) -> Result<std::borrow::Cow<'a, str>, String> {
    let raw = a.value.as_ref();
    let class = raw.iter().fold(0u8, |c, &b| c | ATTR_CLASS[usize::from(b)]);
    if class & ATTR_WS == 0 {
        return unescape_attr(a);
    }
    let mut norm = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                norm.push(b' ');
                i += 1;
            }
            b'\t' | b'\n' | b'\r' => norm.push(b' '),
            c => norm.push(c),
        }
        i += 1;
    }
    let a2 = quick_xml::events::attributes::Attribute {
        key: a.key,
        value: norm.into(),
    };
    unescape_attr(&a2).map(|v| std::borrow::Cow::Owned(v.into_owned()))
}

fn unescape_attr<'a>(
    a: &'a quick_xml::events::attributes::Attribute<'_>,
) -> Result<std::borrow::Cow<'a, str>, String> {
    match a.unescape_value() {
        Ok(v) => {
            // Only C0 controls and U+FFFE / U+FFFF (EF BF BE/BF) can be outside XML's Char.
            let suspicious = v
                .bytes()
                .any(|c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r')) || c == 0xEF);
            if suspicious {
                if let Some(c) = v.chars().find(|&c| !crate::types::xml_char(c)) {
                    return Err(format!(
                        "forbidden character U+{:04X} in attribute value",
                        c as u32
                    ));
                }
            }
            Ok(v)
        }
        Err(quick_xml::Error::Escape(e)) => {
            let s = e.to_string();
            if s.contains("nrecognized") || s.contains("entity") {
                Err(format!(
                    "entity reference in attribute value refused ({s}): entities are not expanded (no DTD processing)"
                ))
            } else {
                Err(s)
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;

    #[test]
    fn duplicate_attributes_worded_as_by_quick_xml() {
        let many: String = (0..12).map(|i| format!(" a{i}=\"{i}\"")).collect();
        for attrs in [
            r#" version="2.00" version="2.00""#.to_string(),
            r#" a="1" b="2" a="3" b="4""#.to_string(),
            format!("{many} a11=\"x\""),
            format!("{many} a3=\"x\""),
            format!(r#" xml:lang="en"{many} xml:lang="de""#),
        ] {
            let content =
                format!("IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"{attrs}");
            let want = quick_xml::events::BytesStart::from_content(content.as_str(), 14)
                .attributes()
                .find_map(Result::err)
                .map(|e| e.to_string());
            let doc = format!("<{content}></IODEF-Document>");
            let got = match super::Parser::open(doc.as_bytes(), &super::ReadOptions::strict()) {
                Err(crate::Error::Syntax { message, .. }) => Some(message),
                _ => None,
            };
            assert!(want.is_some(), "{attrs}");
            assert_eq!(got, want, "{attrs}");
        }
    }

    #[test]
    fn newline_bytes_is_exact() {
        for pos in 0..8 {
            for other in [
                0u8,
                b'\t',
                b'\r',
                b' ',
                b'\n' ^ 0x80,
                0x0b,
                0x09,
                0xff,
                0x8a,
            ] {
                let mut w = [other; 8];
                assert_eq!(super::newline_bytes(u64::from_le_bytes(w)), 0);
                w[pos] = b'\n';
                assert_eq!(
                    super::newline_bytes(u64::from_le_bytes(w)),
                    0x80 << (8 * pos)
                );
                w[7 - pos] = b'\n';
                assert_eq!(
                    super::newline_bytes(u64::from_le_bytes(w)).count_ones(),
                    if pos == 7 - pos { 1 } else { 2 }
                );
            }
        }
    }

    #[test]
    fn counting_matches_naive_lines_and_columns() {
        let mut data = Vec::new();
        let mut x: u32 = 1;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.push(match x >> 28 {
                0..=2 => b'\n',
                3 => b' ',
                _ => b'a' + (x >> 24 & 15) as u8,
            });
        }
        for (cap, every) in [(97, 3), (97, 40), (5000, 7), (1 << 17, 90)] {
            let mut c = super::Counting::new(
                std::io::BufReader::with_capacity(cap, data.as_slice()),
                u64::MAX,
                u64::MAX,
            );
            let naive = |p: usize| {
                let line = 1 + data[..p].iter().filter(|&&b| b == b'\n').count() as u64;
                let start = data[..p]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                (line, p as u64 - start as u64 + 1)
            };
            let mut step = 0usize;
            let mut token = naive(0);
            let mut child = (1, 1);
            let mut opened: Vec<(u64, u64)> = Vec::new();
            loop {
                let n = c.fill_buf().unwrap().len();
                if n == 0 {
                    break;
                }
                step = step % 71 + 1;
                c.consume(n.min(step));
                let p = c.pos as usize;
                assert_eq!(c.line_col(), naive(p), "at {p}");
                if step.is_multiple_of(every) {
                    // The previous token's position, asked for late (maybe chunks later).
                    assert_eq!(c.token_line_col(), token, "token before {p}");
                    // The previous start tag's, and the open elements' (counted lazily,
                    // maybe at a refill).
                    if step.is_multiple_of(3) {
                        assert_eq!(c.child_line_col(), child, "child before {p}");
                    }
                    if let Some(&m) = opened.last() {
                        assert_eq!(c.mark_line_col(), m, "mark before {p}");
                    }
                    if step.is_multiple_of(5) && opened.len() < 4 {
                        c.marks.push(c.child);
                        opened.push(child);
                    } else if step.is_multiple_of(7) {
                        c.marks.pop();
                        opened.pop();
                    }
                    c.begin_token();
                    token = naive(p);
                    c.start_tag();
                    child = token;
                    if step.is_multiple_of(2) {
                        assert_eq!(c.token_line_col(), token, "at {p}");
                    }
                }
            }
            assert_eq!(c.pos as usize, data.len());
        }
    }
}
