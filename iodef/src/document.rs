//! Whole documents: read into memory, check, write.

use std::io::{BufRead, Write};

use crate::check::Checker;
use crate::error::{Diagnostic, Error, Severity};
use crate::read::{Parser, ReadOptions, Version};
use crate::write::{WriteOptions, XmlOut};
use crate::{v1, v2};

/// An IODEF document of either version.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// IODEF v1 (RFC 5070).
    V1(v1::Document),
    /// IODEF v2 (RFC 7970).
    V2(v2::Document),
}

/// A document read from XML, with the diagnostics collected on the way (warnings, and in
/// lenient mode the errors that were skipped over).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The document.
    pub document: Document,
    /// Problems found while reading, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Document {
    /// Read a whole document into memory. The version is told by the root namespace.
    /// For large files prefer [`crate::StreamReader`].
    pub fn read<R: BufRead>(input: R, opts: &ReadOptions) -> Result<Loaded, Error> {
        let (mut p, version, attrs) = Parser::open(input, opts)?;
        let document = match version {
            Version::V2 => Document::V2(v2::Document::read(&mut p, attrs)?),
            Version::V1 => Document::V1(v1::Document::read(&mut p, attrs)?),
        };
        p.close()?;
        Ok(Loaded {
            document,
            diagnostics: p.take_diagnostics(),
        })
    }

    /// Read from a byte slice.
    pub fn from_slice(input: &[u8], opts: &ReadOptions) -> Result<Loaded, Error> {
        Self::read(input, opts)
    }

    /// The version.
    pub fn version(&self) -> Version {
        match self {
            Document::V1(_) => Version::V1,
            Document::V2(_) => Version::V2,
        }
    }

    /// Check the model against the schema's requirements and the RFC text's stronger rules.
    /// Paths carry 1-based positions; line and column are 0.
    pub fn check(&self) -> Vec<Diagnostic> {
        self.check_with(Checker::new(""))
    }

    fn check_with(&self, mut c: Checker) -> Vec<Diagnostic> {
        c.enter("IODEF-Document");
        match self {
            Document::V1(d) => d.check(&mut c),
            Document::V2(d) => d.check(&mut c),
        }
        let ids = std::mem::take(&mut c.ids);
        let mut diags = c.diags;
        diags.extend(ids.unresolved());
        diags
    }

    /// Write the document. Refuses (with [`Error::Rejected`], before writing anything) a model
    /// that does not pass [`Document::check`], so the output always validates.
    pub fn write<W: Write>(&self, out: W, opts: WriteOptions) -> Result<W, Error> {
        let checker = if opts.text_rules {
            Checker::new("")
        } else {
            Checker::new("").schema_only()
        };
        let errors: Vec<Diagnostic> = self
            .check_with(checker)
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        if !errors.is_empty() {
            return Err(Error::Rejected(errors));
        }
        let ns = self.version().namespace();
        let mut w = XmlOut::new(out, opts, ns);
        w.declaration()?;
        w.start("IODEF-Document")?;
        w.attr("xmlns", ns)?;
        match self {
            Document::V1(d) => {
                d.write_attrs(&mut w)?;
                d.write_children(&mut w, 0, usize::MAX)?;
            }
            Document::V2(d) => {
                d.write_attrs(&mut w)?;
                d.write_children(&mut w, 0, usize::MAX)?;
            }
        }
        w.end("IODEF-Document")?;
        Ok(w.into_inner()?)
    }

    /// Write to a string (see [`Document::write`]).
    pub fn to_xml(&self, opts: WriteOptions) -> Result<String, Error> {
        let v = self.write(Vec::new(), opts)?;
        // The writer only emits UTF-8.
        String::from_utf8(v).map_err(|e| Error::Io(std::io::Error::other(e)))
    }
}
