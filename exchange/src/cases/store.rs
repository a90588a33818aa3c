//! Cases in ClickHouse (`report_cases`): every step a row, written once; the state of a case
//! and its history read back; questionnaire links looked up by the SHA-256 of their token;
//! answers checked, triaged and stored once per case; analyst overrides.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{Cases, QuestionKind, Questionnaire, MAX_TEXT};
use crate::config::{Colour, Exchange};
use crate::reports::{self, Choices, Facts, StoredReport};
use crate::ExchangeError;
use teiten_store::queries;

/// What happened in a case (the `event` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum Step {
    /// Opened: the employee found (or not) and the questionnaire chosen.
    Opened = 0,
    /// A questionnaire link issued (its token's digest and expiry).
    Requested = 1,
    /// A mail or the webhook sent (`note`: request, reminder, escalation, alert or webhook;
    /// `actor`: the recipients).
    Sent = 2,
    /// A mail or the webhook that could not be sent (`note`: which, and why); tried again next
    /// round.
    SendFailed = 3,
    /// The employee answered.
    Answered = 4,
    /// Escalated to the manager and the CSIRT for want of an answer.
    Escalated = 5,
    /// The CSIRT was alerted (mail and webhook).
    Alerted = 6,
    /// An analyst set the colour, with a reason.
    Overridden = 7,
}

/// One row of `report_cases`.
#[derive(Debug, Clone, Default, Row, Serialize)]
pub struct CaseRow {
    reporter: String,
    id: String,
    version: u64,
    at: u32,
    event: i8,
    actor: String,
    colour: i8,
    rules: String,
    pub(super) questionnaire: String,
    pub(super) employee: String,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) department: String,
    pub(super) manager: String,
    pub(super) token_sha256: String,
    pub(super) expires: u32,
    pub(super) answers: String,
    note: String,
}

/// Strictly increasing versions (microseconds) within the process.
fn next_version(now: i64) -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let want = u64::try_from(now).unwrap_or(0) * 1_000_000
        + u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_micros())
                .unwrap_or(0),
        );
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let v = want.max(last + 1);
        match LAST.compare_exchange(last, v, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return v,
            Err(l) => last = l,
        }
    }
}

impl CaseRow {
    /// A step of the case of `reporter`'s report `id` at `now`, with the colour `colour`.
    pub fn new(reporter: &str, id: &str, now: i64, step: Step, colour: Colour) -> CaseRow {
        CaseRow {
            reporter: reporter.into(),
            id: id.into(),
            version: next_version(now),
            at: u32::try_from(now).unwrap_or(0),
            event: step as i8,
            colour: colour as i8,
            actor: "teiten".into(),
            ..CaseRow::default()
        }
    }
    /// Who did it (an analyst, an employee's address, the recipients of a mail).
    pub fn actor(mut self, a: &str) -> Self {
        self.actor = a.into();
        self
    }
    /// The rules that fired.
    pub fn rules(mut self, r: &str) -> Self {
        self.rules = r.into();
        self
    }
    /// A note (which mail, why it failed, an override's reason).
    pub fn note(mut self, n: &str) -> Self {
        self.note = n.into();
        self
    }
}

/// Appends steps.
pub async fn insert(client: &Client, rows: &[CaseRow]) -> Result<(), ExchangeError> {
    let what = || format!("storing {} case step(s)", rows.len());
    let mut ins = client
        .insert::<CaseRow>("report_cases")
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    for r in rows {
        ins.write(r)
            .await
            .map_err(|e| ExchangeError::ch(what(), e))?;
    }
    ins.end().await.map_err(|e| ExchangeError::ch(what(), e))
}

/// The state of an open case ([`queries::cases_open`]).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize, Serialize)]
pub struct OpenCase {
    /// The report's reporter.
    pub reporter: String,
    /// Its id.
    pub id: String,
    /// The questionnaire asked (empty: none).
    pub case_questionnaire: String,
    /// The employee's uid (empty: none found).
    pub case_employee: String,
    /// Their name.
    pub case_name: String,
    /// Their address.
    pub case_email: String,
    /// Their department.
    pub case_department: String,
    /// Their manager's address.
    pub case_manager: String,
    /// The current colour.
    pub case_colour: String,
    /// The rules behind it.
    pub case_rules: String,
    /// When opened.
    pub opened: u32,
    /// Request mails sent.
    pub requests: u64,
    /// When the first request went out.
    pub first_request: u32,
    /// Reminder mails sent.
    pub reminders: u64,
    /// Alert mails sent.
    pub alert_mails: u64,
    /// Alert webhook posts sent.
    pub alert_hooks: u64,
    /// Escalations.
    pub escalations: u64,
    /// Answers.
    pub answered: u64,
    /// Alerts.
    pub alerts: u64,
    /// Overrides.
    pub overrides: u64,
    /// Mails and webhook calls that failed.
    pub failures: u64,
    /// When the last one failed (Unix seconds; 0: never).
    pub last_failure: u32,
    /// When the last mail or webhook call went out (Unix seconds; 0: never).
    pub last_sent: u32,
}

/// One step of a case as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize, Serialize)]
pub struct HistoryStep {
    /// When (Unix seconds).
    pub case_at: u32,
    /// What (`opened`, `requested`, `sent`, ...).
    pub case_event: String,
    /// Who.
    pub actor: String,
    /// The colour then.
    pub case_colour: String,
    /// Rules that fired.
    pub rules: String,
    /// Questionnaire.
    pub questionnaire: String,
    /// Employee uid.
    pub employee: String,
    /// Employee name.
    pub name: String,
    /// Employee address.
    pub email: String,
    /// Department.
    pub department: String,
    /// Manager's address.
    pub manager: String,
    /// A link's expiry (Unix seconds; 0 for other steps).
    pub case_expires: u32,
    /// Answers (JSON), for `answered`.
    pub answers: String,
    /// Note.
    pub note: String,
    /// Version.
    pub version: u64,
}

/// The history of a case, oldest first.
pub async fn history(
    client: &Client,
    db: &str,
    reporter: &str,
    id: &str,
) -> Result<Vec<HistoryStep>, ExchangeError> {
    queries::case_history(db, reporter, id)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch(format!("reading the case of {reporter}/{id}"), e))
}

/// A new questionnaire link's token (32 random bytes, hex) and its digest as stored.
pub fn new_token() -> (String, String) {
    let t: [u8; 32] = rand::random();
    let token = hex::encode(t);
    let digest = token_digest(&token);
    (token, digest)
}

/// The stored form of a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Debug, Clone, Row, Deserialize)]
struct LinkRow {
    reporter: String,
    id: String,
    case_expires: u32,
    questionnaire: String,
}

/// Why a questionnaire link does not open or an answer is not taken.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Not a token we issued (or malformed).
    #[error("This link is not valid: check that it was copied whole from the newest mail.")]
    Unknown,
    /// Its time is up.
    #[error("This link expired at {0} UTC; a newer mail from the CSIRT has a valid one.")]
    Expired(String),
    /// The case was answered already.
    #[error("This questionnaire was answered at {0} UTC. Thank you, there is nothing more to do.")]
    Answered(String),
    /// The answers break the questionnaire (which question, what is wrong).
    #[error("{0}")]
    Invalid(String),
    /// ClickHouse failed.
    #[error(transparent)]
    Store(#[from] ExchangeError),
}

/// What the questionnaire page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkView {
    /// The questionnaire.
    pub questionnaire: Questionnaire,
    /// The employee's name.
    pub name: String,
    /// What was detected, on which host, when (Unix seconds).
    pub description: String,
    /// The host.
    pub host: String,
    /// Detection time.
    pub detected: u32,
    /// When the link expires.
    pub expires: u32,
}

fn utc(t: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(t), 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

struct Opened {
    link: LinkRow,
    report: StoredReport,
    steps: Vec<HistoryStep>,
}

async fn open(client: &Client, db: &str, token: &str, now: i64) -> Result<Opened, LinkError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LinkError::Unknown);
    }
    let digest = token_digest(&token.to_ascii_lowercase());
    let link: Option<LinkRow> = queries::case_by_token(db, &digest)
        .fetch_optional(client)
        .await
        .map_err(|e| ExchangeError::ch("looking up a questionnaire link", e))?;
    let link = link.ok_or(LinkError::Unknown)?;
    let steps = history(client, db, &link.reporter, &link.id).await?;
    if let Some(a) = steps.iter().find(|s| s.case_event == "answered") {
        return Err(LinkError::Answered(utc(a.case_at)));
    }
    if i64::from(link.case_expires) <= now {
        return Err(LinkError::Expired(utc(link.case_expires)));
    }
    let report = reports::by_id(client, db, &link.reporter, &link.id)
        .await?
        .ok_or(LinkError::Unknown)?;
    Ok(Opened {
        link,
        report,
        steps,
    })
}

/// The questionnaire behind a link, for the page.
pub async fn view(
    client: &Client,
    db: &str,
    cases: &Cases,
    token: &str,
    now: i64,
) -> Result<LinkView, LinkError> {
    let o = open(client, db, token, now).await?;
    let questionnaire = cases
        .questionnaire(&o.link.questionnaire)
        .ok_or(LinkError::Unknown)?
        .clone();
    let name = o
        .steps
        .iter()
        .find(|s| s.case_event == "opened")
        .map(|s| s.name.clone())
        .unwrap_or_default();
    Ok(LinkView {
        questionnaire,
        name,
        description: o.report.description,
        host: o.report.host,
        detected: o.report.detected,
        expires: o.link.case_expires,
    })
}

/// Answers as sent: question id to the chosen choice ids, or to one text for a text question.
pub type AnswersInput = BTreeMap<String, Vec<String>>;

/// Checks answers against the questionnaire: every question known, single questions one
/// choice, multiple questions distinct choices, all of them offered, texts at most
/// [`MAX_TEXT`] bytes, required questions answered. The error names the question.
pub fn check_answers(
    q: &Questionnaire,
    a: &AnswersInput,
) -> Result<(Choices, AnswersInput), String> {
    for k in a.keys() {
        if q.question(k).is_none() {
            return Err(format!(
                "there is no question `{}`",
                k.chars().take(64).collect::<String>()
            ));
        }
    }
    let mut choices = Choices::new();
    let mut stored = AnswersInput::new();
    for question in &q.questions {
        let given: Vec<&String> = a
            .get(&question.id)
            .map(|v| v.iter().filter(|s| !s.trim().is_empty()).collect())
            .unwrap_or_default();
        let name = &question.id;
        if given.is_empty() {
            if question.required {
                return Err(format!(
                    "question `{name}` (\"{}\") needs an answer",
                    question.text
                ));
            }
            continue;
        }
        match question.kind {
            QuestionKind::Text => {
                if given.len() > 1 {
                    return Err(format!("question `{name}` takes one text"));
                }
                let t = given[0];
                if t.len() > MAX_TEXT {
                    return Err(format!("question `{name}`: longer than {MAX_TEXT} bytes"));
                }
                if t.chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
                {
                    return Err(format!("question `{name}`: control characters"));
                }
                stored.insert(name.clone(), vec![t.clone()]);
            }
            QuestionKind::Single | QuestionKind::Multiple => {
                if question.kind == QuestionKind::Single && given.len() > 1 {
                    return Err(format!("question `{name}` takes one choice"));
                }
                let mut picked: Vec<String> = Vec::new();
                for g in given {
                    if !question.choices.iter().any(|c| &c.id == g) {
                        return Err(format!(
                            "question `{name}`: `{}` is not one of its choices",
                            g.chars().take(64).collect::<String>()
                        ));
                    }
                    if picked.contains(g) {
                        return Err(format!("question `{name}`: `{g}` chosen twice"));
                    }
                    picked.push(g.clone());
                }
                choices.insert(name.clone(), picked.clone());
                stored.insert(name.clone(), picked);
            }
        }
    }
    Ok((choices, stored))
}

/// The colour after the answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answered {
    /// The colour.
    pub colour: String,
    /// The rules that fired.
    pub rules: Vec<String>,
}

/// Takes the answers of a link: checked, triaged with the report by the exchange's rules, and
/// stored as the case's one answer. Answers to the same case are taken one at a time (so a
/// link answered twice at once counts once).
pub async fn answer(
    client: &Client,
    db: &str,
    x: &Exchange,
    cases: &Cases,
    token: &str,
    input: &AnswersInput,
    now: i64,
) -> Result<Answered, LinkError> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let o = open(client, db, token, now).await?;
    let q = cases
        .questionnaire(&o.link.questionnaire)
        .ok_or(LinkError::Unknown)?;
    let (choices, stored) = check_answers(q, input).map_err(LinkError::Invalid)?;
    let r = &o.report;
    let facts = Facts {
        category: &r.category,
        source: &r.source,
        host_ip: r.host.parse().ok(),
        answers: Some(&choices),
    };
    let (colour, fired) =
        reports::triage_with_counts(client, db, &x.rules, &facts, &r.host, i64::from(r.detected))
            .await?;
    let employee = o
        .steps
        .iter()
        .find(|s| s.case_event == "opened")
        .map(|s| s.email.clone())
        .unwrap_or_default();
    let mut row = CaseRow::new(&r.reporter, &r.id, now, Step::Answered, colour)
        .actor(&employee)
        .rules(&fired.join(","));
    row.questionnaire = q.name.clone();
    row.answers = serde_json::to_string(&stored).expect("answers serialise");
    let ours = row.version;
    insert(client, &[row]).await?;
    // The lock above holds within this process: another aggregator on the same database may
    // have stored an answer at the same time. Every reader keeps the first stored (lowest
    // version), so a later one is refused here as answered already.
    let first = history(client, db, &r.reporter, &r.id)
        .await?
        .into_iter()
        .find(|s| s.case_event == "answered");
    if let Some(f) = first.filter(|f| f.version != ours) {
        tracing::warn!(reporter = %r.reporter, id = %r.id, "Questionnaire answered twice at once; the first answer stands");
        return Err(LinkError::Answered(utc(f.case_at)));
    }
    tracing::info!(reporter = %r.reporter, id = %r.id, colour = colour.name(), rules = %fired.join(","), "Questionnaire answered");
    Ok(Answered {
        colour: colour.name().into(),
        rules: fired,
    })
}

/// An analyst's override of a case's colour.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// `green`, `yellow` or `red`.
    pub colour: String,
    /// Why (required, up to 4 KiB).
    pub reason: String,
}

/// Stores an analyst's override of the colour of `reporter`'s report `id`, with the reason, in
/// the case's history.
pub async fn override_colour(
    client: &Client,
    db: &str,
    reporter: &str,
    id: &str,
    analyst: &str,
    o: &Override,
    now: i64,
) -> Result<(), LinkError> {
    let colour: Colour = o
        .colour
        .parse()
        .map_err(|e: String| LinkError::Invalid(format!("`colour`: {e}")))?;
    let reason = o.reason.trim();
    if reason.is_empty() || reason.len() > MAX_TEXT {
        return Err(LinkError::Invalid(format!(
            "`reason`: 1 to {MAX_TEXT} bytes, why the colour changes"
        )));
    }
    if reports::by_id(client, db, reporter, id).await?.is_none() {
        return Err(LinkError::Unknown);
    }
    let row = CaseRow::new(reporter, id, now, Step::Overridden, colour)
        .actor(analyst)
        .rules("analyst-override")
        .note(reason);
    insert(client, &[row]).await?;
    tracing::info!(%reporter, %id, analyst, colour = colour.name(), "Case colour overridden");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::default_questionnaires;

    fn a(pairs: &[(&str, &[&str])]) -> AnswersInput {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn answers_are_checked_against_the_questionnaire() {
        let q = &default_questionnaires()[0];
        let ok = a(&[
            ("owner", &["company"]),
            ("places", &["office", "home"]),
            ("scanned", &["yes"]),
            ("notes", &["from the trade fair"]),
        ]);
        let (choices, stored) = check_answers(q, &ok).unwrap();
        assert_eq!(choices["places"], ["office", "home"]);
        assert!(
            !choices.contains_key("notes"),
            "texts are not matched by rules"
        );
        assert_eq!(stored["notes"], ["from the trade fair"]);
        let err = |pairs: &[(&str, &[&str])]| check_answers(q, &a(pairs)).unwrap_err();
        assert!(err(&[("owner", &["company"])]).contains("`places`"));
        assert!(err(&[
            ("owner", &["stolen"]),
            ("places", &["home"]),
            ("scanned", &["no"])
        ])
        .contains("`owner`: `stolen` is not one of its choices"));
        assert!(err(&[
            ("owner", &["company", "private"]),
            ("places", &["home"]),
            ("scanned", &["no"])
        ])
        .contains("takes one choice"));
        assert!(err(&[
            ("owner", &["company"]),
            ("places", &["home", "home"]),
            ("scanned", &["no"])
        ])
        .contains("chosen twice"));
        assert!(err(&[("colour", &["green"])]).contains("no question `colour`"));
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(err(&[
            ("owner", &["company"]),
            ("places", &["home"]),
            ("scanned", &["no"]),
            ("notes", &[long.as_str()])
        ])
        .contains("longer than"));
    }

    #[test]
    fn tokens_are_stored_as_digests() {
        let (t, d) = new_token();
        assert_eq!((t.len(), d.len()), (64, 64));
        assert_eq!(token_digest(&t), d);
        assert_ne!(t, d);
        assert_ne!(new_token().0, t);
    }

    #[test]
    fn versions_only_grow() {
        let a = next_version(1_000);
        let b = next_version(1_000);
        let c = next_version(999);
        assert!(a < b && b < c);
    }
}
