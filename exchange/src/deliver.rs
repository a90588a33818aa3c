//! Delivery of daily files and the per-partner, per-day status.
//!
//! Every file lands in the partner's outbox directory when it is generated. A partner with
//! `mail_to` gets the whole day by e-mail ([`crate::mail`]); one with a `url` gets the first
//! file by HTTPS POST (`Content-Type: application/xml`, `Content-Encoding: gzip`
//! for gzipped files, `X-Teiten-Sha256` with the digest, and the bearer token from
//! `token_file`), retried with backoff within a run and again on every scheduler run until a
//! 2xx answer: a failed delivery is never dropped. Each state change (generated, delivered,
//! failed with the reason and the attempt count) is a row of `exchange_log`; the newest row of
//! a partner-day is its status ([`status`]).
//!
//! One delivery of a partner at a time, across processes: the CLI's `export` and the
//! scheduler of a running aggregator share the outbox, and each delivery holds an exclusive
//! lock on `<outbox>/<partner>/.deliver.lock` ([`DeliveryLock`]). The scheduler's retries only
//! try the lock and leave a partner being delivered to its holder, then read the status again
//! under the lock, so a file is never sent twice at once and the attempt count adds up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::config::{Exchange, Partner};
use super::export::{Exported, Manifest};
use super::ExchangeError;
use teiten_store::queries;
use teiten_store::time;

/// The status of one partner-day.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DayStatus {
    /// Partner id.
    pub partner: String,
    /// `YYYYMMDD` in the partner's time zone.
    pub day: u32,
    /// File revision.
    pub revision: u32,
    /// File name in the partner's outbox.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Scan events in it.
    pub events: u64,
    /// Distinct sources.
    pub sources: u64,
    /// Internal reports in it.
    pub reports: u32,
    /// Size.
    pub bytes: u64,
    /// When the revision was generated (Unix seconds).
    pub generated: u32,
    /// `generated`, `delivered` or `failed`.
    pub status: String,
    /// Delivery attempts of this revision.
    pub attempts: u32,
    /// The last delivery error.
    pub error: String,
    /// When the status last changed (Unix seconds).
    pub updated: u32,
}

#[derive(Debug, Row, Serialize)]
struct LogRow<'a> {
    partner: &'a str,
    day: u32,
    revision: u32,
    file: &'a str,
    sha256: &'a str,
    events: u64,
    sources: u64,
    reports: u32,
    bytes: u64,
    generated: u32,
    status: i8,
    attempts: u32,
    error: &'a str,
    version: u64,
}

/// Delivery states as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// In the outbox, waiting for HTTPS delivery.
    Generated = 0,
    /// Delivered (to the outbox only, for partners without a URL).
    Delivered = 1,
    /// The last HTTPS attempt failed.
    Failed = 2,
}

fn version_now() -> u64 {
    u64::try_from(teiten_store::time::now_us()).unwrap_or(0)
}

fn manifest_time(m: &Manifest) -> u32 {
    chrono::DateTime::parse_from_rfc3339(&m.generated)
        .map(|t| t.timestamp() as u32)
        .unwrap_or(0)
}

/// An exclusive lock on a partner's deliveries (`<outbox>/<partner>/.deliver.lock`), held
/// until dropped.
#[derive(Debug)]
pub struct DeliveryLock(#[allow(dead_code)] std::fs::File);

impl DeliveryLock {
    fn open(x: &Exchange, partner: &str) -> Result<std::fs::File, ExchangeError> {
        let dir = x.config.outbox.join(partner);
        let path = dir.join(".deliver.lock");
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
            })
            .map_err(|source| ExchangeError::Io {
                what: format!("cannot open {}", path.display()),
                source,
            })
    }

    /// Waits for the lock.
    pub async fn wait(x: &Exchange, partner: &str) -> Result<Self, ExchangeError> {
        let f = Self::open(x, partner)?;
        let what = format!("locking the deliveries of {partner}");
        tokio::task::spawn_blocking(move || f.lock().map(|()| Self(f)))
            .await
            .map_err(|e| ExchangeError::Invalid(format!("{what}: {e}")))?
            .map_err(|source| ExchangeError::Io { what, source })
    }

    /// The lock if no other delivery of the partner holds it.
    pub fn try_take(x: &Exchange, partner: &str) -> Result<Option<Self>, ExchangeError> {
        let f = Self::open(x, partner)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Self(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(ExchangeError::Io {
                what: format!("locking the deliveries of {partner}"),
                source,
            }),
        }
    }
}

/// Appends a state change of a partner-day.
pub async fn log_state(
    client: &Client,
    m: &Manifest,
    day: u32,
    state: State,
    attempts: u32,
    error: &str,
) -> Result<(), ExchangeError> {
    let what = || format!("recording the status of {} for {}", m.partner, m.date);
    let mut ins = client
        .insert::<LogRow>("exchange_log")
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    ins.write(&LogRow {
        partner: &m.partner,
        day,
        revision: m.revision,
        file: &m.file,
        sha256: &m.sha256,
        events: m.events,
        sources: m.sources,
        reports: m.reports,
        bytes: m.bytes,
        generated: manifest_time(m),
        status: state as i8,
        attempts,
        error,
        version: version_now(),
    })
    .await
    .map_err(|e| ExchangeError::ch(what(), e))?;
    ins.end().await.map_err(|e| ExchangeError::ch(what(), e))
}

/// The status of every partner-day between two days (`YYYYMMDD`, inclusive), newest first.
pub async fn status(
    client: &Client,
    db: &str,
    from_day: u32,
    to_day: u32,
) -> Result<Vec<DayStatus>, ExchangeError> {
    queries::exchange_status(db, from_day, to_day)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch("reading the exchange status", e))
}

/// The HTTPS client of one partner; refuses an `http://` URL unless the partner has
/// `allow_insecure = true`.
fn agent(x: &Exchange, p: &Partner) -> Result<ureq::Agent, String> {
    if p.url.as_deref().is_some_and(|u| u.starts_with("http://")) && !p.allow_insecure {
        return Err(format!(
            "partner `{}`: refusing to deliver over http:// (https only; set \
             exchange.partner.allow_insecure = true to allow it in tests)",
            p.id
        ));
    }
    teiten_wire::http_agent(
        p.ca_file.as_deref(),
        Duration::from_secs(x.config.delivery_timeout_secs),
        concat!("teiten-aggregator/", env!("CARGO_PKG_VERSION")),
    )
}

fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
    let t = text.lines().next().unwrap_or("").trim().to_owned();
    if t.is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    Ok(t)
}

/// One POST of a file; the error says what the partner answered.
fn post_once(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    file: &Path,
    sha256: &str,
) -> Result<u16, String> {
    let f =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut req = agent
        .post(url)
        .set("Content-Type", "application/xml")
        .set("X-Teiten-Sha256", sha256);
    if file.extension().is_some_and(|e| e == "gz") {
        req = req.set("Content-Encoding", "gzip");
    }
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send(f) {
        Ok(resp) => Ok(resp.status()),
        Err(ureq::Error::Status(code, resp)) => {
            let body: String = resp
                .into_string()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            Err(format!("{url} answered {code}: {}", body.trim()))
        }
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// Delivers a generated file to its partner's URL (retrying `delivery_attempts` times with
/// backoff) and records the outcome. `attempts_before` counts earlier runs' attempts.
pub async fn deliver(
    client: &Client,
    x: &Exchange,
    partner: &Partner,
    exported: &Exported,
    attempts_before: u32,
) -> Result<State, ExchangeError> {
    let m = &exported.manifest;
    let day = time::date_number(
        chrono::NaiveDate::parse_from_str(&m.date, "%Y-%m-%d")
            .map_err(|e| ExchangeError::Invalid(format!("manifest date {}: {e}", m.date)))?,
    );
    let tries = x.config.delivery_attempts;
    // One attempt of the partner's channel: its answer, or why it failed.
    let attempt: Box<dyn FnMut() -> Result<String, String> + Send> =
        if let Some(url) = partner.url.clone() {
            let agent = agent(x, partner);
            let token = partner.token_file.as_deref().map(read_token).transpose();
            let file = exported.path.clone();
            let sha = m.sha256.clone();
            Box::new(move || {
                let agent = agent.as_ref().map_err(Clone::clone)?;
                let token = token.as_ref().map_err(Clone::clone)?;
                post_once(agent, &url, token.as_deref(), &file, &sha)
                    .map(|code| format!("{url} answered {code}"))
            })
        } else if x.smtp.is_some() && !partner.mail_to.is_empty() {
            // Composed (files read and gzipped) on the blocking thread, once for all tries.
            let (x, partner, date) = (x.clone(), partner.clone(), m.date.clone());
            let mut message = None;
            Box::new(move || {
                let smtp = x.smtp.as_ref().expect("checked above");
                let message = message.get_or_insert_with(|| compose_day(&x, smtp, &partner, &date));
                super::mail::send(smtp, message.as_ref().map_err(Clone::clone)?)
            })
        } else {
            log_state(client, m, day, State::Delivered, 0, "").await?;
            return Ok(State::Delivered);
        };
    let mut attempt = attempt;
    let (tried, outcome) = tokio::task::spawn_blocking(move || {
        let mut last = Err(String::new());
        for i in 0..tries {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(500 << i.min(6)));
            }
            last = attempt();
            if last.is_ok() {
                return (i + 1, last);
            }
        }
        (tries, last)
    })
    .await
    .expect("the delivery task does not panic");
    let attempts = attempts_before + tried;
    match outcome {
        Ok(answer) => {
            tracing::info!(partner = %partner.id, date = %m.date, %answer, attempts, "Daily file delivered");
            log_state(client, m, day, State::Delivered, attempts, "").await?;
            Ok(State::Delivered)
        }
        Err(e) => {
            tracing::error!(partner = %partner.id, date = %m.date, attempts, error = %e, "Daily file delivery failed; will retry");
            log_state(client, m, day, State::Failed, attempts, &e).await?;
            Ok(State::Failed)
        }
    }
}

/// The message of a partner's day (every file in its day index), or why it cannot be made.
fn compose_day(
    x: &Exchange,
    smtp: &super::config::Smtp,
    partner: &Partner,
    date: &str,
) -> Result<lettre::Message, String> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|e| format!("manifest date {date}: {e}"))?;
    let dir = x.config.outbox.join(&partner.id);
    let index_file = dir.join(super::export::index_name(&partner.id, day));
    let text = std::fs::read_to_string(&index_file)
        .map_err(|e| format!("cannot read {}: {e}", index_file.display()))?;
    let index: super::export::DayIndex = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a day index: {e}", index_file.display()))?;
    super::mail::compose(x, smtp, partner, &dir, &index, &index_file)
}

/// Retries every failed or pending delivery of the last `days` days.
pub async fn retry_pending(
    client: &Client,
    db: &str,
    x: &Arc<Exchange>,
    today: u32,
    days_back: u32,
) -> Result<usize, ExchangeError> {
    let from = chrono::NaiveDate::parse_from_str(&today.to_string(), "%Y%m%d")
        .ok()
        .and_then(|d| d.checked_sub_days(chrono::Days::new(u64::from(days_back))))
        .map_or(0, time::date_number);
    let mut n = 0;
    for s in status(client, db, from, today).await? {
        if s.status == "delivered" {
            continue;
        }
        let Some(p) = x.partner(&s.partner) else {
            continue;
        };
        // Another process delivering this partner now: its outcome is its own to record.
        let Some(_lock) = DeliveryLock::try_take(x, &p.id)? else {
            continue;
        };
        // What that process (or an earlier pass) recorded since the status was read.
        let Some(s) = status(client, db, s.day, s.day)
            .await?
            .into_iter()
            .find(|r| r.partner == s.partner)
        else {
            continue;
        };
        if s.status == "delivered" {
            continue;
        }
        let path = x.config.outbox.join(&p.id).join(&s.file);
        let Some(manifest) = super::export::read_manifest(&path) else {
            tracing::error!(partner = %p.id, file = %path.display(), "Daily file or manifest missing; re-export the day");
            continue;
        };
        let exported = Exported {
            path,
            manifest,
            changed: false,
        };
        deliver(client, x, p, &exported, s.attempts).await?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_rows_have_the_store_columns() {
        // The row type and the store's column list (the sample rows) agree.
        assert_eq!(
            <LogRow<'static> as clickhouse::Row>::COLUMN_NAMES.join(", "),
            teiten_store::queries::EXCHANGE_LOG_INSERT_COLUMNS
        );
    }
}
