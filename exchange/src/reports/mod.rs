//! The organisation's own detection reports (IDS alerts, antivirus detections, staff reports):
//! checked, triaged green / yellow / red by the configured rules, stored once, exportable as
//! IODEF and shared with partners when their TLP allows.
//!
//! A report arrives as JSON ([`ReportInput`], `POST /api/v1/reports` or `teiten-aggregator
//! report add`). Its id is the one given, or a digest of its content, so the same report filed
//! twice is stored once. Ids are per reporter: a report is found by (reporter, id), so one
//! reporter using another's id neither hits the other's report (as a "duplicate" that would
//! show its colour and rules) nor pre-empts it; both are stored, and their IODEF IncidentIDs
//! differ (`report-<reporter>/<id>`). Triage: the first rule whose conditions all hold sets the colour
//! (green without one), then every matching `escalate` rule raises it one step; the names of
//! the rules that fired are stored with the report.
//!
//! One file per concern: `input` checks what is filed ([`ReportInput`] into [`Checked`]),
//! `triage` colours it ([`triage`]), `store` files, lists and selects reports in ClickHouse
//! ([`file`], [`recent`], [`by_id`], [`for_partner`]) and `incident` writes a
//! [`StoredReport`] as IODEF.

mod incident;
mod input;
mod store;
mod triage;

pub use input::{Checked, Indicators, ReportInput};
pub(crate) use store::triage_with_counts;
pub use store::{by_id, canonical, file, for_partner, recent, Filed, StoredReport};
pub use triage::{triage, Choices, Facts};
