//! `[exchange.cases]` and `[[exchange.questionnaire]]`: who is asked what, when reminded and
//! escalated, and who is alerted. Checked with the rest of `[exchange]`; errors name the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use teiten_store::{Error, Result};

use super::directory::Directory;
use super::ldap::LdapConfig;
use crate::config::{CATEGORIES, SOURCES};

/// `[exchange.cases]`. Without it, reports are triaged and stored but nobody is asked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesConfig {
    /// Base URL of the questionnaire pages (the dashboard's `/q`): a request's link is
    /// `<url>/<token>`. Required.
    pub questionnaire_url: String,
    /// The employee directory: a TOML file of `[[employee]]` entries. Default
    /// `/etc/teiten/directory.toml`, unless `[exchange.cases.ldap]` is given (setting both is
    /// an error).
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// The employee directory on an LDAP server (`[exchange.cases.ldap]`), instead of the
    /// file. Default none.
    #[serde(default)]
    pub ldap: Option<LdapConfig>,
    /// How long a questionnaire link is valid, in seconds. Default 7 days.
    #[serde(default = "default_link_secs")]
    pub link_secs: u64,
    /// Without an answer this long after the request, the employee is reminded (with a new
    /// link), in seconds. Default 1 day.
    #[serde(default = "default_remind_secs")]
    pub remind_after_secs: u64,
    /// Without an answer this long after the request, the case is escalated to the employee's
    /// manager and the CSIRT, in seconds. Default 3 days.
    #[serde(default = "default_escalate_secs")]
    pub escalate_after_secs: u64,
    /// Who is alerted at yellow and above. Default `exchange.csirt_email`.
    #[serde(default)]
    pub alert_to: Vec<String>,
    /// A URL that gets every alert as a JSON POST. Default none.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// A file whose first line is the webhook's bearer token. Default none.
    #[serde(default)]
    pub webhook_token_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) for the webhook. Default: the web PKI only.
    #[serde(default)]
    pub webhook_ca_file: Option<PathBuf>,
    /// How often the open cases are looked at, in seconds. Default 60.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Reports received longer ago than this are not opened as cases, and open cases older
    /// than this are no longer chased, in days. Default 60.
    #[serde(default = "default_since_days")]
    pub since_days: u32,
    /// Who gets the monthly summary of the detections (the trends of the month just ended,
    /// as on the analysts' trends page). Default none: no summary mail.
    #[serde(default)]
    pub summary_to: Vec<String>,
    /// How long after a month ends its summary is mailed, in seconds, so that answers to its
    /// last detections count. Default 1 day.
    #[serde(default = "default_summary_after")]
    pub summary_after_secs: u64,
}

/// The directory file used without `directory` and `[exchange.cases.ldap]`.
pub const DEFAULT_DIRECTORY: &str = "/etc/teiten/directory.toml";

fn default_link_secs() -> u64 {
    7 * 86_400
}
fn default_remind_secs() -> u64 {
    86_400
}
fn default_escalate_secs() -> u64 {
    3 * 86_400
}
fn default_interval() -> u64 {
    60
}
fn default_since_days() -> u32 {
    60
}
fn default_summary_after() -> u64 {
    86_400
}

/// `[[exchange.questionnaire]]`: what the employee is asked about one kind of detection.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Questionnaire {
    /// Its name (letters, digits, `-`, `_`), stored with the case. Required.
    pub name: String,
    /// The page's title. Required.
    pub title: String,
    /// A paragraph above the questions. Default none.
    #[serde(default)]
    pub intro: String,
    /// Asked for reports from these sources. Default: any.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Asked for reports of these categories. Default: any.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Asked only when the report's description contains one of these (a path such as
    /// `/media/` for removable media). Default: any description.
    #[serde(default)]
    pub description_contains: Vec<String>,
    /// The questions, in order (`[[exchange.questionnaire.question]]`). Required.
    #[serde(rename = "question")]
    pub questions: Vec<Question>,
}

/// One question.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Its id (letters, digits, `-`, `_`), the key of its answer and of triage rules. Required.
    pub id: String,
    /// The question. Required.
    pub text: String,
    /// `single` (one choice), `multiple` (one or more) or `text` (free text). Required.
    pub kind: QuestionKind,
    /// The choices of `single` and `multiple`.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Must be answered. Default true.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// How a question is answered.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QuestionKind {
    /// One of the choices.
    Single,
    /// One or more of the choices.
    Multiple,
    /// Free text (up to 4 KiB).
    Text,
}

/// A choice.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// Its id, stored as the answer. Required.
    pub id: String,
    /// What the employee reads. Required.
    pub text: String,
}

/// Largest free-text answer.
pub const MAX_TEXT: usize = 4096;

impl Questionnaire {
    /// Whether it is the one asked for a report.
    pub fn applies(&self, source: &str, category: &str, description: &str) -> bool {
        (self.sources.is_empty() || self.sources.iter().any(|s| s == source))
            && (self.categories.is_empty() || self.categories.iter().any(|c| c == category))
            && (self.description_contains.is_empty()
                || self
                    .description_contains
                    .iter()
                    .any(|d| description.contains(d.as_str())))
    }

    /// The question with this id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }
}

/// The questionnaire used when the config has none: OKI-CSIRT's removable medium
/// investigation, asked for every antivirus detection.
pub fn default_questionnaires() -> Vec<Questionnaire> {
    let c = |id: &str, text: &str| Choice {
        id: id.into(),
        text: text.into(),
    };
    vec![Questionnaire {
        name: "usb".into(),
        title: "Investigation of a detection on your computer or USB medium".into(),
        intro: "The antivirus software found malware on a file of your computer or of a \
                medium connected to it. Please answer these questions so the CSIRT can find \
                out how it came in. It takes a minute."
            .into(),
        sources: vec!["antivirus".into()],
        categories: vec![],
        description_contains: vec![],
        questions: vec![
            Question {
                id: "owner".into(),
                text: "Who owns the medium the file was on?".into(),
                kind: QuestionKind::Single,
                choices: vec![
                    c("company", "The company (issued to me or my team)"),
                    c("private", "Me, privately"),
                    c("customer", "A customer or partner"),
                    c("other", "Someone else, or I do not know"),
                ],
                required: true,
            },
            Question {
                id: "places".into(),
                text: "Where has the medium been used? (every place)".into(),
                kind: QuestionKind::Multiple,
                choices: vec![
                    c("office", "In our offices"),
                    c("home", "At home"),
                    c("customer", "At a customer's or partner's site"),
                    c("other", "Elsewhere (hotel, event, shop, ...)"),
                ],
                required: true,
            },
            Question {
                id: "scanned".into(),
                text: "Was it scanned for viruses before it was taken out of the office?".into(),
                kind: QuestionKind::Single,
                choices: vec![
                    c("yes", "Yes"),
                    c("no", "No"),
                    c("unknown", "I do not know"),
                ],
                required: true,
            },
            Question {
                id: "notes".into(),
                text: "Anything else we should know (where the file came from, who else used \
                       the medium)?"
                    .into(),
                kind: QuestionKind::Text,
                choices: vec![],
                required: false,
            },
        ],
    }]
}

/// `[exchange.cases]` after validation, with the directory loaded (or LDAP's settings
/// checked).
#[derive(Clone)]
pub struct Cases {
    /// The config as written.
    pub config: CasesConfig,
    /// The questionnaires, in order (the first that applies is asked).
    pub questionnaires: Vec<Questionnaire>,
    /// The employees: the file's, or the LDAP server to ask.
    pub directory: Directory,
    /// Who is alerted.
    pub alert_to: Vec<lettre::message::Mailbox>,
    /// The webhook's bearer token.
    pub webhook_token: Option<String>,
    /// Who gets the monthly summary (none: nobody).
    pub summary_to: Vec<lettre::message::Mailbox>,
}

impl std::fmt::Debug for Cases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the webhook token.
        f.debug_struct("Cases")
            .field("config", &self.config)
            .field("questionnaires", &self.questionnaires.len())
            .field("directory", &self.directory)
            .field("alert_to", &self.alert_to)
            .finish_non_exhaustive()
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> Error {
    Error::ConfigInvalid {
        field,
        reason: reason.into(),
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks the questionnaires (or gives the default); errors name the questionnaire and the
/// question.
pub fn check_questionnaires(qs: &[Questionnaire]) -> Result<Vec<Questionnaire>> {
    if qs.is_empty() {
        return Ok(default_questionnaires());
    }
    let mut names = Vec::new();
    for q in qs {
        let f = |field, what: String| bad(field, format!("questionnaire `{}`: {what}", q.name));
        if !is_name(&q.name) {
            return Err(f(
                "exchange.questionnaire.name",
                "1 to 64 letters, digits, - or _".into(),
            ));
        }
        if names.contains(&&q.name) {
            return Err(f("exchange.questionnaire.name", "given twice".into()));
        }
        names.push(&q.name);
        if q.title.trim().is_empty() {
            return Err(f("exchange.questionnaire.title", "is empty".into()));
        }
        for s in &q.sources {
            if !SOURCES.contains(&s.as_str()) {
                return Err(f(
                    "exchange.questionnaire.sources",
                    format!("`{s}` is not one of {}", SOURCES.join(", ")),
                ));
            }
        }
        for c in &q.categories {
            if !CATEGORIES.contains(&c.as_str()) {
                return Err(f(
                    "exchange.questionnaire.categories",
                    format!("`{c}` is not one of {}", CATEGORIES.join(", ")),
                ));
            }
        }
        if q.questions.is_empty() {
            return Err(f(
                "exchange.questionnaire.question",
                "has no question".into(),
            ));
        }
        let mut ids = Vec::new();
        for question in &q.questions {
            let fq = |field, what: String| f(field, format!("question `{}`: {what}", question.id));
            if !is_name(&question.id) {
                return Err(fq(
                    "exchange.questionnaire.question.id",
                    "1 to 64 letters, digits, - or _".into(),
                ));
            }
            if ids.contains(&&question.id) {
                return Err(fq(
                    "exchange.questionnaire.question.id",
                    "given twice".into(),
                ));
            }
            ids.push(&question.id);
            if question.text.trim().is_empty() {
                return Err(fq(
                    "exchange.questionnaire.question.text",
                    "is empty".into(),
                ));
            }
            match question.kind {
                QuestionKind::Text if !question.choices.is_empty() => {
                    return Err(fq(
                        "exchange.questionnaire.question.choices",
                        "a text question has no choices".into(),
                    ))
                }
                QuestionKind::Single | QuestionKind::Multiple if question.choices.len() < 2 => {
                    return Err(fq(
                        "exchange.questionnaire.question.choices",
                        "needs at least two choices".into(),
                    ))
                }
                _ => {}
            }
            let mut choice_ids = Vec::new();
            for c in &question.choices {
                if !is_name(&c.id) || choice_ids.contains(&&c.id) {
                    return Err(fq(
                        "exchange.questionnaire.question.choices",
                        format!(
                            "choice `{}`: ids are 1 to 64 letters, digits, - or _, each once",
                            c.id
                        ),
                    ));
                }
                choice_ids.push(&c.id);
            }
        }
    }
    Ok(qs.to_vec())
}

/// Checks that every `answers` condition of the triage rules names a question and choices
/// that some questionnaire has.
pub fn check_rule_answers(
    rule: &str,
    answers: &BTreeMap<String, Vec<String>>,
    qs: &[Questionnaire],
) -> Result<()> {
    for (qid, wanted) in answers {
        let Some(question) = qs.iter().find_map(|q| q.question(qid)) else {
            return Err(bad(
                "exchange.triage.answers",
                format!("rule `{rule}`: no questionnaire has a question `{qid}`"),
            ));
        };
        if wanted.is_empty() {
            return Err(bad(
                "exchange.triage.answers",
                format!("rule `{rule}`: `{qid}` lists no choice"),
            ));
        }
        for w in wanted {
            if !question.choices.iter().any(|c| &c.id == w) {
                return Err(bad(
                    "exchange.triage.answers",
                    format!("rule `{rule}`: question `{qid}` has no choice `{w}`"),
                ));
            }
        }
    }
    Ok(())
}

impl CasesConfig {
    /// Checks the settings and loads the directory file (or checks `[exchange.cases.ldap]`,
    /// connecting to nothing). `csirt_email` is the default alert
    /// recipient; `has_smtp` whether `[exchange.smtp]` is configured (mail needs it).
    pub fn check(
        &self,
        questionnaires: Vec<Questionnaire>,
        csirt_email: Option<&str>,
        has_smtp: bool,
    ) -> Result<Cases> {
        let u = &self.questionnaire_url;
        if !(u.starts_with("https://") || u.starts_with("http://")) || u.contains(['?', '#']) {
            return Err(bad(
                "exchange.cases.questionnaire_url",
                format!("`{u}` is not an http(s) base URL without query"),
            ));
        }
        if !has_smtp {
            return Err(bad(
                "exchange.cases",
                "mails employees and the CSIRT: needs [exchange.smtp]",
            ));
        }
        for (field, v) in [
            ("exchange.cases.link_secs", self.link_secs),
            ("exchange.cases.remind_after_secs", self.remind_after_secs),
            (
                "exchange.cases.escalate_after_secs",
                self.escalate_after_secs,
            ),
            ("exchange.cases.interval_secs", self.interval_secs),
        ] {
            if v == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        if self.escalate_after_secs < self.remind_after_secs {
            return Err(bad(
                "exchange.cases.escalate_after_secs",
                "must not be shorter than remind_after_secs",
            ));
        }
        if self.summary_after_secs > super::worker::MAX_SUMMARY_AFTER {
            return Err(bad(
                "exchange.cases.summary_after_secs",
                "at most 28 days (2419200)",
            ));
        }
        if self.since_days == 0 {
            return Err(bad("exchange.cases.since_days", "must be at least 1"));
        }
        let mut to: Vec<&str> = self.alert_to.iter().map(String::as_str).collect();
        if to.is_empty() {
            to.extend(csirt_email);
        }
        if to.is_empty() {
            return Err(bad(
                "exchange.cases.alert_to",
                "no one to alert: give alert_to or exchange.csirt_email",
            ));
        }
        let mailboxes = |field: &'static str, list: &[&str]| {
            list.iter()
                .map(|a| {
                    a.parse()
                        .map_err(|e| bad(field, format!("`{a}` is not a mailbox: {e}")))
                })
                .collect::<Result<Vec<_>>>()
        };
        let alert_to = mailboxes("exchange.cases.alert_to", &to)?;
        let summary_to = mailboxes(
            "exchange.cases.summary_to",
            &self
                .summary_to
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
        if let Some(w) = &self.webhook_url {
            if !(w.starts_with("https://") || w.starts_with("http://")) {
                return Err(bad(
                    "exchange.cases.webhook_url",
                    format!("`{w}` is not an http(s) URL"),
                ));
            }
        }
        let webhook_token = match &self.webhook_token_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    bad(
                        "exchange.cases.webhook_token_file",
                        format!("{}: {e}", p.display()),
                    )
                })?;
                let t = text.lines().next().unwrap_or("").trim().to_owned();
                if t.is_empty() {
                    return Err(bad(
                        "exchange.cases.webhook_token_file",
                        format!("{}: the first line holds no token", p.display()),
                    ));
                }
                Some(t)
            }
            None => None,
        };
        let directory = match (&self.ldap, &self.directory) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "exchange.cases.directory",
                    "not used with [exchange.cases.ldap]: give one of them",
                ))
            }
            (Some(l), None) => Directory::Ldap(l.check()?),
            (None, file) => {
                Directory::load(file.as_deref().unwrap_or(Path::new(DEFAULT_DIRECTORY)))?
            }
        };
        Ok(Cases {
            config: self.clone(),
            questionnaires,
            directory,
            alert_to,
            webhook_token,
            summary_to,
        })
    }
}

impl Cases {
    /// The questionnaire asked for a report, if any.
    pub fn questionnaire_for(
        &self,
        source: &str,
        category: &str,
        description: &str,
    ) -> Option<&Questionnaire> {
        self.questionnaires
            .iter()
            .find(|q| q.applies(source, category, description))
    }

    /// The questionnaire of this name.
    pub fn questionnaire(&self, name: &str) -> Option<&Questionnaire> {
        self.questionnaires.iter().find(|q| q.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> std::result::Result<Cases, String> {
        let c: CasesConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check(default_questionnaires(), Some("csirt@corp.example"), true)
            .map_err(|e| e.to_string())
    }

    const BASE: &str = "questionnaire_url = \"https://csirt.corp.example/q\"\n";
    const LDAP: &str =
        "[ldap]\nurl = \"ldap://127.0.0.1:3890\"\nbase_dn = \"dc=corp,dc=example\"\n";

    #[test]
    fn the_directory_is_the_file_or_ldap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("directory.toml");
        std::fs::write(
            &file,
            "[[employee]]\nuid = \"a\"\nname = \"A\"\nemail = \"a@corp.example\"\n",
        )
        .unwrap();
        let with_file = format!("{BASE}directory = \"{}\"\n", file.display());
        let c = check(&with_file).unwrap();
        assert_eq!(c.directory.to_string(), "file (1 employee)");
        let c = check(&format!("{BASE}{LDAP}")).unwrap();
        assert!(matches!(c.directory, Directory::Ldap(_)));
        assert_eq!(
            c.directory.to_string(),
            "LDAP ldap://127.0.0.1:3890 (dc=corp,dc=example)"
        );
        let e = check(&format!("{with_file}{LDAP}")).unwrap_err();
        assert!(
            e.starts_with("config field `exchange.cases.directory` is invalid: not used with"),
            "{e}"
        );
        let e = check(&format!("{BASE}{LDAP}timeout_secs = 0\n")).unwrap_err();
        assert!(
            e.starts_with("config field `exchange.cases.ldap.timeout_secs` is invalid"),
            "{e}"
        );
        // Without either, the default file (not on this machine: the error names it).
        if !Path::new(DEFAULT_DIRECTORY).exists() {
            let e = check(BASE).unwrap_err();
            assert!(e.contains(DEFAULT_DIRECTORY), "{e}");
        }
    }
}
