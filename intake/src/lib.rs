//! teiten's intake of the organisation's own detections from the tools that make them.
//!
//! `teiten-intake run` follows Suricata's EVE JSON files ([`follow`]: each line once, across
//! restarts, log rotation and truncation), turns each alert into an internal report
//! ([`eve`]) and files it with the aggregator's reports API ([`post`]), which triages and
//! stores it. A report's id comes from the alert (flow, rule, time), so a line read again
//! after a crash is stored once. While the aggregator is unavailable, the follower waits at
//! the line it could not file; a report the aggregator refuses as invalid is logged with the
//! file and offset and skipped.
//!
//! ClamAV detections come through clamd's own hook ([`clamav`]): clamd's `VirusEvent` runs
//! `teiten-intake clamav-event`, which spools the detection; `run` files the spool.

pub mod clamav;
pub mod config;
pub mod eve;
pub mod follow;
pub mod post;
mod run;

pub use config::Config;
pub use run::{run, Intake, Totals};
