//! The IODEF exchange with partner CSIRTs: daily files out, partner files and internal
//! detection reports in, and the correlation of both with what the sensors saw.
//!
//! - [`config`]: `[exchange]` (our CSIRT, partners, reporters, triage rules).
//! - [`export`]: the files of a partner's day (one per format), streamed from ClickHouse,
//!   deterministic, per packet or aggregated.
//! - [`formats`]: the IntelMQ JSON lines and Shadowserver darknet CSV layouts.
//! - [`sign`]: detached OpenPGP signatures of the files, by our CSIRT's key.
//! - [`mail`]: the day's files by e-mail (SMTP, PGP/MIME signed).
//! - [`deliver`]: outbox and HTTPS delivery with retries; the status of every partner-day.
//! - [`outbox`]: what a partner that fetches its files may list and download.
//! - [`import`]: partner files (v1 and v2), validated, quarantined or stored once.
//! - [`reports`]: internal reports, triaged green / yellow / red.
//! - [`correlate`]: one address across sensors, imports and reports.
//!
//! [`run_once`] is one pass of the scheduler the aggregator runs every
//! `exchange.interval_secs`: export each partner's previous day once it is due, retry failed
//! deliveries, import the inbox.

pub mod cases;
pub mod config;
pub mod correlate;
pub mod deliver;
pub mod export;
pub mod formats;
pub mod import;
pub mod mail;
pub mod outbox;
pub mod reports;
pub mod sign;

use std::sync::Arc;

use chrono::NaiveDate;
use clickhouse::Client;

use self::config::{Exchange, Partner};
use self::deliver::State;
use self::export::{day_window, local_date, Exported};
use teiten_store::time;

/// What went wrong in the exchange, with the partner, file or report concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// A ClickHouse request failed.
    #[error("ClickHouse {what}: {source}")]
    ClickHouse {
        /// What was being done.
        what: String,
        /// The client's error.
        source: clickhouse::error::Error,
    },
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The IODEF library refused or failed.
    #[error("{what}: {source}")]
    Iodef {
        /// What was being done.
        what: String,
        /// The error, with its location.
        source: iodef::Error,
    },
    /// A file could not be signed.
    #[error(transparent)]
    Sign(#[from] sign::SignError),
    /// The request or input is wrong (the message names the field).
    #[error("{0}")]
    Invalid(String),
}

/// Aborts a task when dropped: work given up (a lookup timed out, an export that failed)
/// leaves nothing running.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ExchangeError {
    pub(crate) fn ch(what: impl Into<String>, source: clickhouse::error::Error) -> ExchangeError {
        ExchangeError::ClickHouse {
            what: what.into(),
            source,
        }
    }
}

/// Exports a partner's day (every format it receives), records it and delivers the first
/// file when the day changed (or, with `always`, even when the same bytes were exported
/// before). Returns the files and, when the first was (re)delivered, the delivery state.
pub async fn export_and_deliver(
    client: &Client,
    db: &str,
    x: &Exchange,
    partner: &Partner,
    date: NaiveDate,
    always: bool,
) -> Result<(Vec<Exported>, Option<State>), ExchangeError> {
    let files = export::export_day(client, db, x, partner, date).await?;
    let primary = files
        .first()
        .ok_or_else(|| ExchangeError::Invalid(format!("partner {} has no format", partner.id)))?;
    if !files.iter().any(|f| f.changed) && !always {
        return Ok((files, None));
    }
    let _lock = deliver::DeliveryLock::wait(x, &partner.id).await?;
    deliver::log_state(
        client,
        &primary.manifest,
        time::date_number(date),
        State::Generated,
        0,
        "",
    )
    .await?;
    let state = deliver::deliver(client, x, partner, primary, 0).await?;
    Ok((files, Some(state)))
}

/// What one scheduler pass did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Partner-days exported.
    pub exported: usize,
    /// Deliveries retried.
    pub retried: usize,
    /// Inbox files handled.
    pub imported: usize,
    /// Errors (logged too).
    pub errors: Vec<String>,
}

/// One pass of the scheduler at Unix time `now`.
pub async fn run_once(client: &Client, db: &str, x: &Arc<Exchange>, now: i64) -> RunSummary {
    let mut sum = RunSummary::default();
    let delay = i64::from(x.config.export_delay_minutes) * 60;
    for p in &x.partners {
        let today = local_date(now, p.timezone);
        let Some(yesterday) = today.pred_opt() else {
            continue;
        };
        if now < day_window(today, p.timezone).from + delay {
            continue;
        }
        let day = time::date_number(yesterday);
        let done = match deliver::status(client, db, day, day).await {
            Ok(rows) => rows.iter().any(|r| r.partner == p.id),
            Err(e) => {
                sum.errors.push(e.to_string());
                continue;
            }
        };
        if done {
            continue;
        }
        // No status for the day yet: record and deliver even if a file of the same bytes is
        // there already (a run stopped between writing it and recording it).
        match export_and_deliver(client, db, x, p, yesterday, true).await {
            Ok((files, _)) => {
                sum.exported += 1;
                for e in &files {
                    tracing::info!(partner = %p.id, date = %yesterday, format = %e.manifest.format, events = e.manifest.events, records = e.manifest.record_count, file = %e.path.display(), "Daily file exported");
                }
            }
            Err(e) => {
                tracing::error!(partner = %p.id, date = %yesterday, error = %e, "Daily export failed; will retry");
                sum.errors.push(e.to_string());
            }
        }
    }
    let today = x
        .partners
        .iter()
        .map(|p| time::date_number(local_date(now, p.timezone)))
        .max()
        .unwrap_or_else(|| time::date_number(local_date(now, chrono_tz::Tz::UTC)));
    match deliver::retry_pending(client, db, x, today, 14).await {
        Ok(n) => sum.retried = n,
        Err(e) => {
            tracing::error!(error = %e, "Delivery retries failed");
            sum.errors.push(e.to_string());
        }
    }
    for (file, r) in import::scan_inbox(client, db, x).await {
        sum.imported += 1;
        if let Err(e) = r {
            tracing::error!(%file, error = %e, "Inbox import failed; the file stays for the next run");
            sum.errors.push(format!("{file}: {e}"));
        }
    }
    sum
}
