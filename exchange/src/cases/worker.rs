//! One round of the investigation loop: open a case for every new report, mail links,
//! reminders and escalations when due, and alert the CSIRT at yellow and above.
//!
//! Every decision is taken from the stored steps ([`super::store::OpenCase`]), so a round
//! after a restart picks up where the last one stopped. A link's token is stored (as its
//! digest) before the mail carrying it is sent, and the mail is recorded as sent after the
//! server accepted it: a crash in between sends that mail again with a new link, and both
//! links work. A mail or webhook that fails is recorded with the reason and tried again next
//! round. A report whose employee the directory cannot be asked about (the LDAP server down,
//! the bind refused) gets no case yet: it and the round's later reports are opened by a later
//! round that reaches the directory, and the error is in the round's errors.

use std::time::Duration;

use clickhouse::Client;
use serde_json::json;

use super::config::Cases;
use super::directory::Found;
use super::store::{self, new_token, CaseRow, OpenCase, Step};
use super::trends::{self, Month, Period};
use crate::config::{Colour, Exchange};
use crate::mail;
use crate::reports::{self, StoredReport};
use crate::ExchangeError;
use teiten_store::queries;

/// New reports opened per round at most, and open cases looked at.
const PER_ROUND: u32 = 500;
/// The longest `summary_after_secs`.
pub const MAX_SUMMARY_AFTER: u64 = 28 * 86_400;
/// The webhook's timeout.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Cases opened.
    pub opened: u32,
    /// Requests and reminders mailed.
    pub requested: u32,
    /// Escalations mailed.
    pub escalated: u32,
    /// Alerts sent.
    pub alerted: u32,
    /// Monthly summaries mailed.
    pub summaries: u32,
    /// What failed (tried again next round).
    pub errors: Vec<String>,
}

/// What every step of a round works with.
struct Ctx<'a> {
    client: &'a Client,
    db: &'a str,
    x: &'a Exchange,
    cases: &'a Cases,
    now: i64,
}

fn colour_of(s: &str) -> Colour {
    s.parse().unwrap_or(Colour::Green)
}

fn when(t: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(t), 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Runs one round at `now` (Unix seconds).
pub async fn run_round(client: &Client, db: &str, x: &Exchange, cases: &Cases, now: i64) -> Round {
    let mut round = Round::default();
    let since = now - i64::from(cases.config.since_days) * 86_400;
    if let Err(e) = open_new(client, db, cases, since, now, &mut round).await {
        round.errors.push(e.to_string());
    }
    let open: Vec<OpenCase> = match queries::cases_open(db, since, PER_ROUND)
        .fetch_all(client)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            round
                .errors
                .push(ExchangeError::ch("reading the open cases", e).to_string());
            return round;
        }
    };
    let ctx = Ctx {
        client,
        db,
        x,
        cases,
        now,
    };
    for c in &open {
        if let Err(e) = step(&ctx, c, &mut round).await {
            round
                .errors
                .push(format!("case {}/{}: {e}", c.reporter, c.id));
        }
    }
    if !cases.summary_to.is_empty() {
        let month = summary_due(now, cases.config.summary_after_secs);
        match summary_sent(client, db, month).await {
            Ok(true) => {}
            Ok(false) => match send_summary(client, db, x, cases, month, now).await {
                Ok(_) => round.summaries += 1,
                Err(e) => {
                    tracing::warn!(%month, error = %e, "Monthly summary not sent; tried again next round");
                    round.errors.push(format!("the summary of {month}: {e}"));
                }
            },
            Err(e) => round.errors.push(e.to_string()),
        }
    }
    round
}

/// How long a case waits after its `failures`-th failed send: one round, then twice as long
/// each time, at most an hour.
fn retry_after(interval_secs: u64, failures: u64) -> i64 {
    let doubled = interval_secs
        .max(1)
        .saturating_mul(1 << failures.clamp(1, 13).saturating_sub(1));
    doubled.min(3600) as i64
}

/// The month whose summary is due at `now`: the last one that ended `after_secs` (at most 28
/// days) ago or more.
pub fn summary_due(now: i64, after_secs: u64) -> Month {
    let after = after_secs.min(MAX_SUMMARY_AFTER) as i64;
    let mut m = Month::of(now).prev();
    while now.saturating_sub(after) < m.next().start() {
        m = m.prev();
    }
    m
}

/// A month's summary is recorded as a `sent` step of the pseudo-case `("", "summary-YYYY-MM")`
/// (no report has an empty reporter, and the open cases need an `opened` step).
fn summary_case(month: Month) -> String {
    format!("summary-{month}")
}

/// Whether the summary of `month` was sent.
async fn summary_sent(client: &Client, db: &str, month: Month) -> Result<bool, ExchangeError> {
    Ok(store::history(client, db, "", &summary_case(month))
        .await?
        .iter()
        .any(|s| s.case_event == "sent"))
}

/// Mails the summary of `month` to `summary_to` and records it: the recipients, or why not.
pub async fn send_summary(
    client: &Client,
    db: &str,
    x: &Exchange,
    cases: &Cases,
    month: Month,
    now: i64,
) -> Result<String, ExchangeError> {
    let t = trends::monthly(client, db, &cases.questionnaires, Period::month(month)).await?;
    let mut body = t.summary();
    if let Some(base) = cases.config.questionnaire_url.strip_suffix("/q") {
        body.push_str(&format!(
            "\nCharts, tables and CSV: {base}/analyst/trends?from={month}&to={month}\n"
        ));
    }
    let subject = format!(
        "[{}] Internal detections in {month}: {} report(s)",
        x.config.csirt,
        t.reports()
    );
    let smtp = x
        .smtp
        .clone()
        .ok_or_else(|| ExchangeError::Invalid("no [exchange.smtp]".into()))?;
    let m = mail::text(&smtp, &cases.summary_to, &[], &subject, body)
        .map_err(ExchangeError::Invalid)?;
    let to: Vec<String> = m.envelope().to().iter().map(ToString::to_string).collect();
    tokio::task::spawn_blocking(move || mail::send(&smtp, &m))
        .await
        .unwrap_or_else(|e| Err(format!("the mail task failed: {e}")))
        .map_err(ExchangeError::Invalid)?;
    let row = CaseRow::new("", &summary_case(month), now, Step::Sent, Colour::Green)
        .actor(&to.join(", "))
        .note("summary");
    store::insert(client, &[row]).await?;
    tracing::info!(%month, reports = t.reports(), to = %to.join(", "), "Monthly summary mailed");
    Ok(to.join(", "))
}

async fn open_new(
    client: &Client,
    db: &str,
    cases: &Cases,
    since: i64,
    now: i64,
    round: &mut Round,
) -> Result<(), ExchangeError> {
    let new: Vec<StoredReport> = queries::cases_new(db, since, PER_ROUND)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch("reading reports without a case", e))?;
    let mut rows = Vec::with_capacity(new.len());
    // One lookup per host and round: a worm on one machine files many reports, and each LDAP
    // lookup is a connection.
    let mut known: std::collections::HashMap<&str, Found> = std::collections::HashMap::new();
    for r in &new {
        let q = cases.questionnaire_for(&r.source, &r.category, &r.description);
        // The directory could not be asked (the LDAP server is down, the bind refused): this
        // report and the rest wait for the next round, nothing is opened without the
        // employee the directory may well know.
        let looked_up = match known.get(r.host.as_str()) {
            Some(f) => Ok(f.clone()),
            None => cases.directory.lookup(&r.host).await,
        };
        let found = match looked_up {
            Ok(f) => {
                known.insert(&r.host, f.clone());
                f
            }
            Err(e) => {
                let left = new.len() - rows.len();
                tracing::warn!(reporter = %r.reporter, id = %r.id, error = %e, left, "Directory lookup failed; the reports wait for the next round");
                round.errors.push(format!(
                    "report {}/{} and {} more left for the next round: {e}",
                    r.reporter,
                    r.id,
                    left - 1
                ));
                break;
            }
        };
        let mut row = CaseRow::new(&r.reporter, &r.id, now, Step::Opened, colour_of(&r.colour))
            .rules(&r.rules);
        match (&q, &found) {
            (None, _) => row = row.note("no questionnaire for this kind of report"),
            (Some(_), Found::Nobody(why)) => row = row.note(why),
            _ => {}
        }
        if let Some(q) = q {
            row.questionnaire = q.name.clone();
        }
        if let Found::Employee(p) = found {
            row.employee = p.uid;
            row.name = p.name;
            row.email = p.email;
            row.department = p.department;
            row.manager = p.manager_email;
        }
        rows.push(row);
    }
    if !rows.is_empty() {
        store::insert(client, &rows).await?;
        round.opened += rows.len() as u32;
        tracing::info!(cases = rows.len(), "Cases opened");
    }
    Ok(())
}

async fn step(ctx: &Ctx<'_>, c: &OpenCase, round: &mut Round) -> Result<(), ExchangeError> {
    let colour = colour_of(&c.case_colour);
    let asks = !c.case_questionnaire.is_empty() && !c.case_employee.is_empty();
    let cfg = &ctx.cases.config;
    let since_request = ctx.now - i64::from(c.first_request);
    let waiting = asks && c.answered == 0;
    let request = waiting && c.requests == 0;
    let remind = waiting
        && c.requests > 0
        && c.reminders == 0
        && since_request >= cfg.remind_after_secs as i64;
    let escalation = waiting
        && c.requests > 0
        && c.escalations == 0
        && since_request >= cfg.escalate_after_secs as i64;
    let unknown_employee = !c.case_questionnaire.is_empty() && c.case_employee.is_empty();
    let settled = c.case_questionnaire.is_empty() || c.answered > 0;
    let alerting = c.alerts == 0 && (unknown_employee || (settled && colour >= Colour::Yellow));
    if !(request || remind || escalation || alerting) {
        return Ok(());
    }
    // After a failed mail or webhook call, the case waits longer each time (the SMTP server
    // or the webhook is not hammered every round while it is down).
    if c.failures > 0 && c.last_failure >= c.last_sent {
        let wait = retry_after(cfg.interval_secs, c.failures);
        if ctx.now < i64::from(c.last_failure) + wait {
            return Ok(());
        }
    }
    let r = reports::by_id(ctx.client, ctx.db, &c.reporter, &c.id)
        .await?
        .ok_or_else(|| ExchangeError::Invalid(format!("report {}/{} is gone", c.reporter, c.id)))?;
    if (request || remind)
        && send_link(
            ctx,
            c,
            &r,
            colour,
            if request { "request" } else { "reminder" },
            round,
        )
        .await
    {
        round.requested += 1;
    }
    if escalation && escalate(ctx, c, &r, colour, round).await {
        round.escalated += 1;
    }
    if alerting && alert(ctx, c, &r, colour, round).await {
        round.alerted += 1;
    }
    Ok(())
}

/// Sends `message` on the blocking pool; records it as sent (with `note` and the recipients)
/// or failed. True when sent.
async fn send_recorded(
    ctx: &Ctx<'_>,
    c: &OpenCase,
    colour: Colour,
    note: &str,
    message: Result<lettre::Message, String>,
    round: &mut Round,
) -> bool {
    let Some(smtp) = ctx.x.smtp.clone() else {
        round.errors.push("no [exchange.smtp]".into());
        return false;
    };
    let result = match message {
        Ok(m) => {
            let to: Vec<String> = m.envelope().to().iter().map(ToString::to_string).collect();
            tokio::task::spawn_blocking(move || mail::send(&smtp, &m).map(|_| to.join(", ")))
                .await
                .unwrap_or_else(|e| Err(format!("the mail task failed: {e}")))
        }
        Err(e) => Err(e),
    };
    let row = match &result {
        Ok(to) => CaseRow::new(&c.reporter, &c.id, ctx.now, Step::Sent, colour)
            .actor(to)
            .note(note),
        Err(e) => CaseRow::new(&c.reporter, &c.id, ctx.now, Step::SendFailed, colour)
            .note(&format!("{note}: {e}")),
    };
    if let Err(e) = &result {
        tracing::warn!(reporter = %c.reporter, id = %c.id, what = note, error = %e, "Case mail not sent; tried again next round");
        round
            .errors
            .push(format!("{note} for {}/{}: {e}", c.reporter, c.id));
    }
    if let Err(e) = store::insert(ctx.client, &[row]).await {
        round.errors.push(e.to_string());
        return false;
    }
    result.is_ok()
}

async fn send_link(
    ctx: &Ctx<'_>,
    c: &OpenCase,
    r: &StoredReport,
    colour: Colour,
    kind: &str,
    round: &mut Round,
) -> bool {
    let (token, digest) = new_token();
    let expires = ctx.now + ctx.cases.config.link_secs as i64;
    let mut link = CaseRow::new(&c.reporter, &c.id, ctx.now, Step::Requested, colour).note(kind);
    link.token_sha256 = digest;
    link.expires = u32::try_from(expires).unwrap_or(u32::MAX);
    link.questionnaire = c.case_questionnaire.clone();
    if let Err(e) = store::insert(ctx.client, &[link]).await {
        round.errors.push(e.to_string());
        return false;
    }
    let url = format!(
        "{}/{token}",
        ctx.cases.config.questionnaire_url.trim_end_matches('/')
    );
    let title = ctx
        .cases
        .questionnaire(&c.case_questionnaire)
        .map_or("Investigation", |q| q.title.as_str());
    let subject = if kind == "reminder" {
        format!(
            "Reminder: please answer the CSIRT's questions on {}",
            r.host
        )
    } else {
        format!("Please answer the CSIRT's questions on {}", r.host)
    };
    let body = format!(
        "Dear {name},\n\n{lead}\n\n  What:  {what}\n  Host:  {host}\n  When:  {detected}\n\n\
         Please answer a few questions about it here ({title}):\n\n  {url}\n\n\
         The link is for you only, works once, and expires at {expires}. You do not need to \
         log in.\n\nThank you,\n{csirt}\n",
        name = c.case_name,
        lead = if kind == "reminder" {
            "we have not received your answers yet about this detection. This mail has a new link."
        } else {
            "our security tools made a detection on a computer of yours."
        },
        what = r.description,
        host = r.host,
        detected = when(r.detected),
        expires = when(u32::try_from(expires).unwrap_or(u32::MAX)),
        csirt = ctx.x.config.csirt,
    );
    let to = c
        .case_email
        .parse()
        .map_err(|e| format!("the employee's address `{}`: {e}", c.case_email));
    let message = to.and_then(|to| {
        let smtp = ctx.x.smtp.as_ref().ok_or("no [exchange.smtp]")?;
        mail::text(smtp, &[to], &[], &subject, body)
    });
    send_recorded(ctx, c, colour, kind, message, round).await
}

async fn escalate(
    ctx: &Ctx<'_>,
    c: &OpenCase,
    r: &StoredReport,
    colour: Colour,
    round: &mut Round,
) -> bool {
    let manager: Option<lettre::message::Mailbox> = c.case_manager.parse().ok();
    let (to, cc) = match manager {
        Some(m) => (vec![m], ctx.cases.alert_to.clone()),
        None => (ctx.cases.alert_to.clone(), vec![]),
    };
    let subject = format!(
        "Unanswered security investigation: {} ({}, {})",
        r.host, c.case_name, c.case_department
    );
    let body = format!(
        "The CSIRT asked {name} <{email}> ({dept}) on {asked} about a detection on {host} and \
         has had no answer, also after a reminder.\n\n  What:    {what}\n  When:    {detected}\n  \
         Colour:  {colour}\n  Report:  {reporter}/{id}\n\nPlease make sure the questions are \
         answered (the employee has the link in their mail), or contact the CSIRT.\n\n{csirt}\n",
        name = c.case_name,
        email = c.case_email,
        dept = c.case_department,
        asked = when(c.first_request),
        host = r.host,
        what = r.description,
        detected = when(r.detected),
        colour = colour.name(),
        reporter = c.reporter,
        id = c.id,
        csirt = ctx.x.config.csirt,
    );
    let message = ctx
        .x
        .smtp
        .as_ref()
        .ok_or_else(|| "no [exchange.smtp]".to_owned())
        .and_then(|smtp| mail::text(smtp, &to, &cc, &subject, body));
    if !send_recorded(ctx, c, colour, "escalation", message, round).await {
        return false;
    }
    let row = CaseRow::new(&c.reporter, &c.id, ctx.now, Step::Escalated, colour)
        .note("no answer after the reminder");
    match store::insert(ctx.client, &[row]).await {
        Ok(()) => true,
        Err(e) => {
            round.errors.push(e.to_string());
            false
        }
    }
}

/// What the webhook receives and the alert mail shows.
fn alert_json(
    x: &Exchange,
    c: &OpenCase,
    r: &StoredReport,
    colour: Colour,
    answers: serde_json::Value,
) -> serde_json::Value {
    json!({
        "event": "alert",
        "csirt": x.config.csirt,
        "colour": colour.name(),
        "rules": c.case_rules.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        "report": r,
        "employee": {
            "uid": c.case_employee,
            "name": c.case_name,
            "email": c.case_email,
            "department": c.case_department,
            "manager": c.case_manager,
        },
        "questionnaire": c.case_questionnaire,
        "answers": answers,
    })
}

async fn alert(
    ctx: &Ctx<'_>,
    c: &OpenCase,
    r: &StoredReport,
    colour: Colour,
    round: &mut Round,
) -> bool {
    let answers = match store::history(ctx.client, ctx.db, &c.reporter, &c.id).await {
        Ok(h) => h
            .iter()
            .rev()
            .find(|s| s.case_event == "answered")
            .and_then(|s| serde_json::from_str(&s.answers).ok())
            .unwrap_or(serde_json::Value::Null),
        Err(e) => {
            round.errors.push(e.to_string());
            return false;
        }
    };
    let body_json = alert_json(ctx.x, c, r, colour, answers);
    let mut done = true;
    if c.alert_mails == 0 {
        let why = if c.case_employee.is_empty() && !c.case_questionnaire.is_empty() {
            format!("no employee in the directory for host {}", r.host)
        } else if c.answered > 0 {
            "triaged on the employee's answers".to_owned()
        } else {
            "triaged as filed".to_owned()
        };
        let subject = format!(
            "[{}] {} report on {}: {}",
            ctx.x.config.csirt,
            colour.name().to_uppercase(),
            r.host,
            r.category
        );
        let body = format!(
            "{why}.\n\n  Colour:    {colour}\n  Rules:     {rules}\n  What:      {what}\n  Host:      {host}\n  \
             Detected:  {detected}\n  Source:    {source} ({reporter})\n  Report:    {reporter}/{id}\n  \
             Employee:  {name} <{email}> ({dept})\n\nThe report and the answers, as the webhook \
             gets them:\n\n{json}\n",
            colour = colour.name(),
            rules = c.case_rules,
            what = r.description,
            host = r.host,
            detected = when(r.detected),
            source = r.source,
            reporter = c.reporter,
            id = c.id,
            name = c.case_name,
            email = c.case_email,
            dept = c.case_department,
            json = serde_json::to_string_pretty(&body_json).expect("JSON serialises"),
        );
        let message = ctx
            .x
            .smtp
            .as_ref()
            .ok_or_else(|| "no [exchange.smtp]".to_owned())
            .and_then(|smtp| mail::text(smtp, &ctx.cases.alert_to, &[], &subject, body));
        done &= send_recorded(ctx, c, colour, "alert", message, round).await;
    }
    if let (Some(url), 0) = (&ctx.cases.config.webhook_url, c.alert_hooks) {
        let sent = post_webhook(ctx.cases, url, &body_json).await;
        let row = match &sent {
            Ok(()) => CaseRow::new(&c.reporter, &c.id, ctx.now, Step::Sent, colour)
                .actor(url)
                .note("webhook"),
            Err(e) => {
                round
                    .errors
                    .push(format!("webhook for {}/{}: {e}", c.reporter, c.id));
                tracing::warn!(reporter = %c.reporter, id = %c.id, error = %e, "Alert webhook failed; tried again next round");
                CaseRow::new(&c.reporter, &c.id, ctx.now, Step::SendFailed, colour)
                    .note(&format!("webhook: {e}"))
            }
        };
        if let Err(e) = store::insert(ctx.client, &[row]).await {
            round.errors.push(e.to_string());
            return false;
        }
        done &= sent.is_ok();
    }
    if !done {
        return false;
    }
    let row = CaseRow::new(&c.reporter, &c.id, ctx.now, Step::Alerted, colour).rules(&c.case_rules);
    match store::insert(ctx.client, &[row]).await {
        Ok(()) => {
            tracing::info!(reporter = %c.reporter, id = %c.id, colour = colour.name(), "CSIRT alerted");
            true
        }
        Err(e) => {
            round.errors.push(e.to_string());
            false
        }
    }
}

async fn post_webhook(cases: &Cases, url: &str, body: &serde_json::Value) -> Result<(), String> {
    let url = url.to_owned();
    let body = serde_json::to_vec(body).expect("JSON serialises");
    let token = cases.webhook_token.clone();
    let ca = cases.config.webhook_ca_file.clone();
    tokio::task::spawn_blocking(move || {
        let agent = teiten_wire::http_agent(
            ca.as_deref(),
            WEBHOOK_TIMEOUT,
            concat!("teiten/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| format!("webhook_ca_file: {e}"))?;
        let mut req = agent.post(&url).set("Content-Type", "application/json");
        if let Some(t) = &token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.send_bytes(&body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(s, _)) => Err(format!("{url} answered {s}")),
            Err(e) => Err(format!("{url}: {e}")),
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("the webhook task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_sends_back_off_to_an_hour() {
        let w: Vec<i64> = (1..=8).map(|f| retry_after(60, f)).collect();
        assert_eq!(w, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_after(0, 1), 1);
        assert_eq!(retry_after(u64::MAX, u64::MAX), 3600);
    }

    #[test]
    fn the_summary_of_a_month_is_due_after_it_ended_and_the_delay() {
        let dec = Month::parse("2026-12").unwrap();
        let s = dec.start();
        assert_eq!(summary_due(s, 0).to_string(), "2026-11");
        assert_eq!(summary_due(s + 10, 86_400).to_string(), "2026-10");
        assert_eq!(summary_due(s + 86_400, 86_400).to_string(), "2026-11");
        assert_eq!(summary_due(s - 1, 0).to_string(), "2026-10");
        assert_eq!(
            summary_due(s, u64::MAX).to_string(),
            "2026-10",
            "at most 28 days"
        );
    }
}
