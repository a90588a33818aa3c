//! The IODEF v2 information model (RFC 7970), generated from the official schema.
//!
//! Every class is a struct named after the class, every attribute and child a public field
//! named after it in snake case (`IncidentID` is `incident_id`, `xml:lang` is `lang`, `type`
//! is `kind`). Single-valued children and attributes are `Option`s and repeated ones `Vec`s,
//! also where the schema requires them: required parts are enforced when reading (strict mode),
//! by [`crate::validate`] and by the writers, which refuse an invalid model. An enumerated
//! attribute with an `ext-value` companion is one enum with an `Ext(String)` variant that
//! writes both `X="ext-value"` and `ext-X`.
//!
//! Foreign content (`AdditionalData`, `RecordItem`, `SoftwareReference`, SCI / xmldsig
//! elements) is kept as [`crate::AnyElement`] trees, so nothing is lost.

mod model;

pub use model::*;
