//! Validation: structure (the schema) and semantics (the RFC text), streaming, every problem
//! with its element path and line.

use std::io::BufRead;

use crate::check::{Checker, Ids};
use crate::error::{Diagnostic, Error, Location, Severity};
use crate::read::{Limits, ReadOptions, Version};
use crate::stream::{Raw, RawStream};

/// What to validate against.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Require this version. A v1 document never passes as v2 (they are told apart by the
    /// root namespace, not by the v2 schema, which imports v1 through SCI).
    pub expect: Option<Version>,
    /// Caps on hostile input.
    pub limits: Limits,
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The document's version, when the root element was recognised.
    pub version: Option<Version>,
    /// Incidents seen.
    pub incidents: u64,
    /// Top-level EventData seen (nested EventData are inside them).
    pub event_data: u64,
    /// Every problem: errors (invalid) and warnings, in document order.
    pub diagnostics: Vec<Diagnostic>,
    /// Diagnostics beyond [`Limits::max_diagnostics`], counted only.
    pub dropped: u64,
    /// Errors against the schema (well-formedness, the XSD, the caps), dropped ones included.
    schema_errors: u64,
}

impl Report {
    /// No error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.dropped == 0
            && self
                .diagnostics
                .iter()
                .all(|d| d.severity != Severity::Error)
    }

    /// No error against the schema: the document is well-formed, within the caps and valid per
    /// the XSD; it may still break rules of the RFC text that the schema does not express (a
    /// `Node` with neither Address nor DomainData, an address that does not parse as its
    /// category, ...), which [`Report::is_valid`] counts and this does not.
    pub fn is_schema_valid(&self) -> bool {
        self.schema_errors == 0
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

/// Validate a document in one streaming pass (memory bounded by the largest EventData):
/// required elements and attributes, element order, enumerations, `ext-value` pairing, value
/// formats (xs:dateTime, Portlist, addresses per category, ports 0-65535, `ip-protocol` with
/// ports, Node content), xs:ID uniqueness and IDREF resolution across the document, the
/// version by namespace, and well-formedness and the input caps.
/// Schema problems carry line and column; semantic ones the line of their EventData or
/// Incident. Never fails: a fatal problem (malformed XML, DTD, cap) ends the report.
pub fn validate<R: BufRead>(input: R, opts: &ValidateOptions) -> Report {
    let mut report = Report {
        version: None,
        incidents: 0,
        event_data: 0,
        diagnostics: Vec::new(),
        dropped: 0,
        schema_errors: 0,
    };
    let ropts = ReadOptions {
        lenient: true,
        limits: opts.limits,
    };
    let max = opts.limits.max_diagnostics;
    let keep = |report: &mut Report, d: Diagnostic| {
        if report.diagnostics.len() < max {
            report.diagnostics.push(d);
        } else {
            report.dropped += 1;
        }
    };
    // Everything pushed here but the text checker's own errors is a schema error.
    let push = |report: &mut Report, d: Diagnostic| {
        if d.severity == Severity::Error {
            report.schema_errors += 1;
        }
        keep(report, d);
    };
    let mut raw = match RawStream::new(input, &ropts) {
        Ok(r) => r,
        Err(e) => {
            push(&mut report, fatal(e));
            return report;
        }
    };
    let version = raw.version();
    report.version = Some(version);
    if let Some(want) = opts.expect {
        if want != version {
            push(
                &mut report,
                Diagnostic {
                    severity: Severity::Error,
                    location: Location {
                        path: "/IODEF-Document".into(),
                        line: 1,
                        column: 1,
                    },
                    message: format!(
                        "the document is {version} (namespace {}), expected {want} (namespace {})",
                        version.namespace(),
                        want.namespace()
                    ),
                },
            );
        }
    }
    let mut ids = Ids::default();
    loop {
        let next = raw.next_raw();
        for d in raw.take_diagnostics() {
            push(&mut report, d);
        }
        match next {
            Ok(None) => break,
            Ok(Some((item, line, col))) => {
                let inc = report.incidents as usize;
                let (checker, is_event) = match &item {
                    Raw::V2Event(_) | Raw::V1Event(_) => {
                        let mut c = Checker::new("/IODEF-Document").at(line, col).text_only();
                        c.enter_at("Incident", inc);
                        c.enter_at("EventData", raw.events.saturating_sub(1));
                        (c, true)
                    }
                    _ => {
                        let mut c = Checker::new("/IODEF-Document").at(line, col).text_only();
                        c.enter_at("Incident", inc);
                        (c, false)
                    }
                };
                let mut c = checker;
                c.ids = std::mem::take(&mut ids);
                match &item {
                    Raw::V2Event(e) => e.check(&mut c),
                    Raw::V1Event(e) => e.check(&mut c),
                    Raw::V2End(i) => i.check(&mut c),
                    Raw::V1End(i) => i.check(&mut c),
                    Raw::V2Head(_) | Raw::V1Head(_) => {}
                }
                ids = std::mem::take(&mut c.ids);
                let errors = c
                    .diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count() as u64;
                report.schema_errors += errors - c.text_errors;
                for d in c.diags {
                    keep(&mut report, d);
                }
                if is_event {
                    report.event_data += 1;
                }
                if matches!(item, Raw::V2End(_) | Raw::V1End(_)) {
                    report.incidents += 1;
                }
            }
            Err(e) => {
                push(&mut report, fatal(e));
                break;
            }
        }
    }
    for d in ids.unresolved() {
        push(&mut report, d);
    }
    report.dropped += raw.dropped_diagnostics();
    report.schema_errors += raw.dropped_errors();
    report
}

fn fatal(e: Error) -> Diagnostic {
    e.into_diagnostic()
}
