//! # teiten-iodef
//!
//! IODEF v2 (RFC 7970) and v1 (RFC 5070): a typed model generated from the official schemas,
//! a reader with precise diagnostics and a lenient mode, a writer whose output always
//! validates, streaming in constant memory, and a validator.

mod check;
mod convert;
mod document;
mod error;
mod read;
mod scan;
mod stream;
mod types;
mod validate;
mod write;

pub mod v1;
pub mod v2;

pub use crate::convert::{to_v1, to_v2, Conversion};
pub use crate::document::{Document, Loaded};
pub use crate::error::{Diagnostic, Error, Location, Severity};
pub use crate::read::{Limits, ReadOptions, Version};
pub use crate::scan::{ScanEvent, ScanReport, UNDISCLOSED_V4, UNDISCLOSED_V6};
pub use crate::stream::{StreamItem, StreamReader, StreamWriter};
pub use crate::types::{AnyAttribute, AnyElement, DateTime, ExtensionContent, Float, Portlist};
pub use crate::validate::{validate, Report, ValidateOptions};
pub use crate::write::WriteOptions;
