//! The crate's error type and the diagnostics reported by the reader and the validator.

use std::fmt;

/// Where a problem is: the element path and, when it comes from a document, line and column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// Element path, e.g. `/IODEF-Document/Incident/EventData/Flow/System/Node`.
    /// Paths from the validator carry 1-based positions: `/IODEF-Document/Incident[2]/Contact[1]`.
    pub path: String,
    /// 1-based line of the element's start tag (0 when the problem is in an in-memory model).
    pub line: u64,
    /// 1-based column, in bytes (0 when the problem is in an in-memory model).
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        if self.line > 0 {
            write!(f, "{path} (line {}, column {})", self.line, self.column)
        } else {
            f.write_str(path)
        }
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Allowed by the standard but dubious, or information that was not carried.
    Warning,
    /// The document breaks the schema or the RFC text.
    Error,
}

/// One problem found in a document, with where it is and what is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Element path, line and column.
    pub location: Location,
    /// What is wrong and what is required.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{s}: {}: {}", self.location, self.message)
    }
}

/// Everything that can go wrong reading, validating or writing IODEF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not well-formed XML (including truncation and invalid UTF-8).
    #[error("{location}: malformed XML: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The input uses a feature this crate refuses for safety: a DTD, an entity declaration or
    /// an external or undefined entity reference.
    #[error("{location}: refused: {message}")]
    Forbidden {
        /// Where the construct starts.
        location: Location,
        /// What was refused.
        message: String,
    },
    /// A configured cap (size, depth, element count, token size) was exceeded.
    #[error("{location}: limit exceeded: {limit} (cap {cap})")]
    Limit {
        /// Where reading stopped.
        location: Location,
        /// Which limit.
        limit: &'static str,
        /// The configured value.
        cap: u64,
    },
    /// The root element is not an IODEF v1 or v2 document.
    #[error("{location}: not an IODEF document: root element {found}")]
    NotIodef {
        /// Location of the root element.
        location: Location,
        /// `{namespace}name` of the root that was found.
        found: String,
    },
    /// The document breaks the schema or the RFC text (strict mode).
    #[error("{location}: {message}")]
    Invalid {
        /// Element path, line and column.
        location: Location,
        /// What is wrong and what is required.
        message: String,
    },
    /// A model handed to the writer does not validate; nothing of the offending unit was written.
    #[error("refusing to write an invalid document: {} problem(s), first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Rejected(Vec<Diagnostic>),
    /// The streaming writer was used out of order (e.g. EventData outside an Incident).
    #[error("stream writer misuse: {0}")]
    Misuse(&'static str),
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the lenient reader can skip the offending element and go on.
    pub(crate) fn is_recoverable(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }

    /// The location of the problem, if it has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Syntax { location, .. }
            | Error::Forbidden { location, .. }
            | Error::Limit { location, .. }
            | Error::NotIodef { location, .. }
            | Error::Invalid { location, .. } => Some(location),
            Error::Rejected(_) | Error::Misuse(_) | Error::Io(_) => None,
        }
    }

    pub(crate) fn into_diagnostic(self) -> Diagnostic {
        // The location once, in the diagnostic's own field, not again in its message.
        let (location, message) = match self {
            Error::Invalid { location, message } => (location, message),
            Error::Limit {
                location,
                limit,
                cap,
            } => (location, format!("limit exceeded: {limit} (cap {cap})")),
            Error::Syntax { location, message } => (location, format!("malformed XML: {message}")),
            Error::Forbidden { location, message } => (location, format!("refused: {message}")),
            Error::NotIodef { location, found } => (
                location,
                format!("not an IODEF document: root element {found}"),
            ),
            other => (Location::default(), other.to_string()),
        };
        Diagnostic {
            severity: Severity::Error,
            location,
            message,
        }
    }
}
