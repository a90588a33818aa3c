//! The investigation of internal reports with the affected employee, as a corporate CSIRT
//! works a detection: the employee on the affected host is found in the directory
//! ([`directory`]: a file, or an LDAP server with [`ldap`]), mailed a one-time, expiring link to the questionnaire of that kind of
//! detection ([`config`]), reminded and then escalated to their manager and the CSIRT while
//! they do not answer; the answers are triaged by the same rules as the report
//! ([`crate::reports::triage`], whose `answers` conditions hold once answered), and the CSIRT
//! is alerted (mail and webhook) at yellow and above. An analyst can override the colour with
//! a reason.
//!
//! Every step is a row of `report_cases` ([`store`]): the history is the rows, the state
//! their aggregate, so nothing is lost when the aggregator restarts. A link's token is
//! stored only as its SHA-256, before the mail carrying it is sent; a mail is recorded once
//! sent ([`worker`]).

pub mod config;
pub mod directory;
pub mod ldap;
pub mod store;
pub mod trends;
pub mod worker;

pub use config::{
    check_questionnaires, check_rule_answers, default_questionnaires, Cases, CasesConfig, Choice,
    Question, QuestionKind, Questionnaire,
};
pub use directory::{Directory, Employee, EmployeeFile, Found, Person};
pub use ldap::{LdapConfig, LdapDirectory, LookupError};
