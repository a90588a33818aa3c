//! `[exchange]`: our CSIRT, the partners, the reporters of internal detections and the triage
//! rules, parsed with serde and checked by [`ExchangeConfig::validate`] before any I/O.

use std::path::PathBuf;
use std::str::FromStr;

use chrono_tz::Tz;
use ipnet::IpNet;
use serde::Deserialize;

use teiten_store::{Error, Result};

/// `[exchange]`. Every field has a default, so a config without the section is valid (no
/// partners: nothing is exported).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeConfig {
    /// Our CSIRT's name, written as the Contact of every file and as the IncidentID namespace.
    /// Default `csirt.example.org` (change it).
    #[serde(default = "default_csirt")]
    pub csirt: String,
    /// Our CSIRT's e-mail address, written in the Contact. Default none.
    #[serde(default)]
    pub csirt_email: Option<String>,
    /// Directory of outgoing daily files, one subdirectory per partner.
    /// Default `/var/lib/teiten/outbox`.
    #[serde(default = "default_outbox")]
    pub outbox: PathBuf,
    /// Directory of incoming partner files, one subdirectory per partner id; imported files
    /// move to `<inbox>/<partner>/done/`. Default `/var/lib/teiten/inbox`.
    #[serde(default = "default_inbox")]
    pub inbox: PathBuf,
    /// Where invalid imports go, with a `.reason.txt` beside each.
    /// Default `/var/lib/teiten/quarantine`.
    #[serde(default = "default_quarantine")]
    pub quarantine: PathBuf,
    /// Write daily files gzipped (`.xml.gz`). Default false.
    #[serde(default)]
    pub gzip: bool,
    /// Minutes after a partner's midnight before the previous day is exported, so that events
    /// still in sensor spools arrive first. Default 60.
    #[serde(default = "default_delay")]
    pub export_delay_minutes: u32,
    /// Run the scheduler (daily exports, delivery retries, the inbox) in `serve`. When several
    /// aggregators run side by side, keep it on in exactly one of them, or partners get each
    /// file once per aggregator. Default true.
    #[serde(default = "default_true")]
    pub scheduler: bool,
    /// Seconds between two runs of the scheduler (exports due, delivery retries, inbox).
    /// Default 300.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Largest IODEF file imported, in bytes, after gzip decoding: an upload above is
    /// answered 413, an inbox file above is quarantined. Uploads are spooled to
    /// `<inbox>/.uploads/`, not held in memory. Default 64 MiB; at least 1 KiB.
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: usize,
    /// Imports (uploads and inbox files) running at once; an upload beyond answers 503 with
    /// `Retry-After`, the inbox waits for a free slot. The memory bound of the imports is this
    /// times the bound of one (aggregator README, "Exchange"). Default 2; 1 to 64.
    #[serde(default = "default_concurrent_imports")]
    pub max_concurrent_imports: usize,
    /// Longest string stored with an indicator, in bytes: the IncidentID (`name:value`), the
    /// restriction, the category list, an Address, the ports. A document with a longer one is
    /// quarantined, naming the element. Default 1024; 64 to 65536.
    #[serde(default = "default_import_string")]
    pub import_max_string_bytes: usize,
    /// Indicator rows (addresses) per imported document; a document with more is quarantined.
    /// Default 1,000,000; 1 to 100,000,000.
    #[serde(default = "default_import_rows")]
    pub import_max_indicators: u32,
    /// Bytes of one streamed unit of an imported document: a top-level `EventData` with
    /// everything inside it, or an `Incident` without its `EventData`. A document with a larger
    /// unit is quarantined. With `import_max_unit_elements` this bounds the memory of one
    /// import. Default 4 MiB; 4 KiB to 64 MiB.
    #[serde(default = "default_unit_bytes")]
    pub import_max_unit_bytes: u64,
    /// Elements in one streamed unit (as above); each costs up to about 700 bytes in memory,
    /// however small in the file. Default 20,000; 100 to 1,000,000.
    #[serde(default = "default_unit_elements")]
    pub import_max_unit_elements: u64,
    /// Attempts at an inbox file whose import failed (other than ClickHouse being unavailable)
    /// or was interrupted (the aggregator stopped or died during it) before the file is
    /// quarantined with the last reason instead of being tried again. Default 2; 1 to 100.
    #[serde(default = "default_import_attempts")]
    pub import_attempts: u32,
    /// Delivery attempts within one scheduler run before waiting for the next. Default 3.
    #[serde(default = "default_attempts")]
    pub delivery_attempts: u32,
    /// Timeout of one HTTPS delivery, in seconds. Default 60.
    #[serde(default = "default_delivery_timeout")]
    pub delivery_timeout_secs: u64,
    /// Our CSIRT's OpenPGP secret key, ASCII-armoured (`gpg --export-secret-keys --armor
    /// <fingerprint>`): every daily file and day index gets a detached signature
    /// `<file>.asc` by it ([`crate::sign`]). Loaded and tried at start-up, so a bad key or
    /// passphrase stops the aggregator (and `--check-config`). Default none: files unsigned.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// File whose first line is the signing key's passphrase (for a protected key; with
    /// systemd, a credential). Default none: the key is not protected.
    #[serde(default)]
    pub signing_key_passphrase_file: Option<PathBuf>,
    /// The mail server daily files are sent through to partners with `mail_to`
    /// (`[exchange.smtp]`). Default none.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Partner CSIRTs (`[[exchange.partner]]`).
    #[serde(default, rename = "partner")]
    pub partners: Vec<PartnerConfig>,
    /// Systems allowed to file internal detection reports (`[[exchange.reporter]]`).
    #[serde(default, rename = "reporter")]
    pub reporters: Vec<ReporterConfig>,
    /// Triage rules, in order (`[[exchange.triage]]`); without any, [`default_rules`] apply.
    #[serde(default, rename = "triage")]
    pub triage: Vec<TriageRule>,
    /// The investigation of reports with the affected employee (`[exchange.cases]`): the
    /// questionnaire mail, reminders, escalation and alerts. Default none.
    #[serde(default)]
    pub cases: Option<crate::cases::CasesConfig>,
    /// Questionnaires per kind of detection (`[[exchange.questionnaire]]`); without any,
    /// [`crate::cases::default_questionnaires`] (removable media, for antivirus detections).
    #[serde(default, rename = "questionnaire")]
    pub questionnaires: Vec<crate::cases::Questionnaire>,
}

/// `[exchange.smtp]`: the submission server that mails partners their daily files
/// ([`crate::mail`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name (or address) of the server; the TLS certificate must name it. Required.
    pub server: String,
    /// Port. Default 587 (submission, STARTTLS); 465 with `security = "tls"`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (required: the message never goes out in clear text), `tls` (implicit TLS,
    /// port 465), or `none` (clear text: only with `allow_insecure`, for a relay on
    /// loopback). Default `starttls`.
    #[serde(default = "default_security")]
    pub security: String,
    /// Allow `security = "none"`. Default false.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Extra CA certificates (PEM) trusted for the server. Default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// User name for SMTP AUTH (only ever sent over TLS). Default none (no AUTH).
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the SMTP password (a systemd credential in production).
    /// Required with `username`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The From address. Default `exchange.csirt_email`.
    #[serde(default)]
    pub from: Option<String>,
    /// Largest message, in bytes: files whose gzipped size would take the message over it
    /// are listed in the message, not attached (they stay in the outbox for download).
    /// Default 20 MiB; 64 KiB to 128 MiB (a message is composed and signed in memory, and
    /// mail servers refuse far smaller ones).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: u64,
    /// Timeout of one SMTP conversation step, in seconds. Default 60.
    #[serde(default = "default_delivery_timeout")]
    pub timeout_secs: u64,
}

fn default_security() -> String {
    "starttls".into()
}

fn default_max_message() -> u64 {
    20 << 20
}

/// `[exchange.smtp]` after validation.
#[derive(Debug, Clone)]
pub struct Smtp {
    /// The server.
    pub server: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// Extra CAs.
    pub ca_file: Option<PathBuf>,
    /// AUTH user and the file of its password.
    pub login: Option<(String, PathBuf)>,
    /// The From mailbox.
    pub from: lettre::message::Mailbox,
    /// Largest message.
    pub max_message_bytes: u64,
    /// Per-step timeout.
    pub timeout: std::time::Duration,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte.
    Tls,
    /// None (tests on loopback).
    None,
}

/// `[[exchange.partner]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// Short id: letters, digits, `-`, `_` (file and directory names). Required.
    pub id: String,
    /// Display name. Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Contact e-mail address of the partner. Default none.
    #[serde(default)]
    pub contact: Option<String>,
    /// Source countries this partner receives, ISO 3166 alpha-2 (`["KR", "CN"]`), or `["all"]`.
    /// A partner names countries, `asns`, `prefixes`, or any of them (it receives the union).
    #[serde(default)]
    pub countries: Vec<String>,
    /// Source autonomous systems this partner receives (`[64496, 64511]`): an ISP's CSIRT gets
    /// the scans from its own networks wherever the database places them. Default none.
    #[serde(default)]
    pub asns: Vec<u32>,
    /// Source networks this partner receives (`["192.0.2.0/24", "2001:db8::/32"]`). Default
    /// none.
    #[serde(default)]
    pub prefixes: Vec<ipnet::IpNet>,
    /// IODEF version of its files: 2 (RFC 7970) or 1 (RFC 5070). Default 2.
    #[serde(default = "default_version")]
    pub iodef_version: u8,
    /// Formats of its daily files, each its own file with its own manifest: any of `iodef2`
    /// (RFC 7970), `iodef1` (RFC 5070), `intelmq` (JSON lines with IntelMQ's harmonized field
    /// names) and `csv` (Shadowserver's `event4_honeypot_darknet` layout). The first is the
    /// one delivered to `url`; the others stay in the outbox. Default: the IODEF of
    /// `iodef_version` alone.
    #[serde(default)]
    pub formats: Option<Vec<String>>,
    /// One record per packet (`packet`) or one per source address, protocol and destination
    /// port of the day with its packet count, first and last seen and number of destinations
    /// (`aggregate`). Default `packet`.
    #[serde(default)]
    pub records: Option<String>,
    /// Whether its files include known research scanners' sources (tagged `research` at
    /// ingest from the aggregator's `[sources] research`). Default `true`.
    #[serde(default = "default_true")]
    pub research: bool,
    /// The highest TLP the partner may receive and the restriction written on its files:
    /// `clear`, `white`, `green`, `amber`, `amber+strict`, `red`. Default `amber`.
    #[serde(default = "default_tlp")]
    pub tlp: String,
    /// Time zone that bounds the partner's day: an IANA name (`Asia/Tokyo`) or `UTC`.
    /// Default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// HTTPS endpoint the daily file is POSTed to (besides the outbox). Default none.
    #[serde(default)]
    pub url: Option<String>,
    /// Allow an `http://` `url` (the file and the token then cross the network in clear
    /// text): only for tests on loopback. Default false (`http://` is refused).
    #[serde(default)]
    pub allow_insecure: bool,
    /// Extra CA certificates (PEM) trusted for `url`. Default: the web PKI roots only.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// File whose first line is the bearer token sent to `url`. Default none (no header).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Addresses the day's files are mailed to, through `[exchange.smtp]`, instead of a POST
    /// to `url` (a partner has one or the other): one signed message a day with every file
    /// gzipped and attached, as Shadowserver mails its reports. Default none.
    #[serde(default)]
    pub mail_to: Vec<String>,
    /// SHA-256 (hex) of the token the partner uses to upload its IODEF files to us
    /// (`POST /api/v1/iodef`). Default none (no uploads from this partner).
    #[serde(default)]
    pub upload_token_sha256: Option<String>,
    /// SHA-256 (hex) of the token with which the partner fetches its own daily files, their
    /// manifests, signatures and day indexes (`GET /api/v1/partner/files`), instead of or
    /// besides a delivery. It may be the same token as `upload_token_sha256`. Default none (no
    /// downloads).
    #[serde(default)]
    pub download_token_sha256: Option<String>,
}

/// `[[exchange.reporter]]`: an internal system (IDS, antivirus console, staff portal).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterConfig {
    /// Name stored with each report it files. Required.
    pub name: String,
    /// SHA-256 (hex) of its bearer token (`teiten-aggregator token-hash` prints one).
    /// Required.
    pub token_sha256: String,
    /// May also fetch the daily partner files from the outbox
    /// (`GET /api/v1/outbox/{partner}/{day}`): the dashboard's reporter, whose exchange page
    /// offers them for download. Default false.
    #[serde(default)]
    pub outbox: bool,
    /// May also serve the questionnaires of `[exchange.cases]`, read case histories and set
    /// a case's colour for an analyst (`/api/v1/questionnaire/{token}`,
    /// `/api/v1/cases/...`): the dashboard's reporter. Default false.
    #[serde(default)]
    pub cases: bool,
}

/// `[[exchange.triage]]`: when a report matches every condition given, its colour becomes
/// `colour` (the first such rule wins); rules with `escalate = true` then raise the colour one
/// step (green -> yellow -> red) when they match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageRule {
    /// Name stored with the reports it fires on. Required.
    pub name: String,
    /// Matches reports of any of these categories. Default: any.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Matches reports from any of these sources (`ids`, `antivirus`, `staff`, `other`).
    /// Default: any.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Matches reports whose affected host lies in any of these networks (customer-facing
    /// assets, for example). Default: any.
    #[serde(default)]
    pub hosts: Vec<IpNet>,
    /// Matches when the affected host had at least this many reports (this one included)
    /// within `window_hours`. Default: no condition.
    #[serde(default)]
    pub repeated: Option<u32>,
    /// The window of `repeated`, in hours. Default 24.
    #[serde(default = "default_window")]
    pub window_hours: u32,
    /// Matches once the employee answered the questionnaire, when every question named got
    /// one of the choices listed (`answers = { owner = ["private", "other"] }`). Default: no
    /// condition (also before an answer).
    #[serde(default)]
    pub answers: std::collections::BTreeMap<String, Vec<String>>,
    /// The colour given: `green`, `yellow` or `red`. Required unless `escalate`.
    #[serde(default)]
    pub colour: Option<String>,
    /// Raise the colour one step instead of setting it. Default false.
    #[serde(default)]
    pub escalate: bool,
}

fn default_csirt() -> String {
    "csirt.example.org".into()
}
fn default_outbox() -> PathBuf {
    "/var/lib/teiten/outbox".into()
}
fn default_inbox() -> PathBuf {
    "/var/lib/teiten/inbox".into()
}
fn default_quarantine() -> PathBuf {
    "/var/lib/teiten/quarantine".into()
}
fn default_true() -> bool {
    true
}
fn default_delay() -> u32 {
    60
}
fn default_interval() -> u64 {
    300
}
fn default_max_upload() -> usize {
    64 << 20
}
fn default_concurrent_imports() -> usize {
    2
}
fn default_import_string() -> usize {
    1024
}
fn default_import_rows() -> u32 {
    1_000_000
}
fn default_unit_bytes() -> u64 {
    4 << 20
}
fn default_unit_elements() -> u64 {
    20_000
}
fn default_import_attempts() -> u32 {
    2
}
fn default_attempts() -> u32 {
    3
}
fn default_delivery_timeout() -> u64 {
    60
}
fn default_version() -> u8 {
    2
}
fn default_tlp() -> String {
    "amber".into()
}
fn default_tz() -> String {
    "UTC".into()
}
fn default_window() -> u32 {
    24
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

/// TLP levels in order of restriction; a partner receives what is at or below its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tlp {
    /// TLP:CLEAR (2.0) or TLP:WHITE (1.0).
    Clear,
    /// TLP:GREEN.
    Green,
    /// TLP:AMBER.
    Amber,
    /// TLP:AMBER+STRICT.
    AmberStrict,
    /// TLP:RED.
    Red,
}

impl Tlp {
    /// Parses a label (`clear`, `white`, `green`, `amber`, `amber+strict`, `red`,
    /// case-insensitive, `TLP:` prefix allowed).
    pub fn parse(label: &str) -> Option<Tlp> {
        let l = label.trim().to_ascii_lowercase();
        Some(match l.strip_prefix("tlp:").unwrap_or(&l) {
            "clear" | "white" => Tlp::Clear,
            "green" => Tlp::Green,
            "amber" => Tlp::Amber,
            "amber+strict" => Tlp::AmberStrict,
            "red" => Tlp::Red,
            _ => return None,
        })
    }

    /// The label written in files (TLP 2.0 names).
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }
}

/// Triage colours, in order of urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Colour {
    /// Routine.
    Green,
    /// Look at it today.
    Yellow,
    /// Act now.
    Red,
}

impl Colour {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
        }
    }

    /// One step more urgent (red stays red).
    pub fn escalated(self) -> Colour {
        match self {
            Colour::Green => Colour::Yellow,
            _ => Colour::Red,
        }
    }
}

impl FromStr for Colour {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Colour, String> {
        match s {
            "green" => Ok(Colour::Green),
            "yellow" => Ok(Colour::Yellow),
            "red" => Ok(Colour::Red),
            _ => Err(format!("`{s}` is not a colour (green, yellow, red)")),
        }
    }
}

/// Categories of internal reports.
pub const CATEGORIES: &[&str] = &[
    "scan",
    "abuse",
    "forged",
    "intrusion",
    "dos",
    "malware",
    "other",
];
/// Sources of internal reports.
pub const SOURCES: &[&str] = &["ids", "antivirus", "staff", "other"];

/// Which countries a partner receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Countries {
    /// Every source country (unknown included).
    All,
    /// These alpha-2 codes, upper case, sorted.
    Only(Vec<String>),
}

impl Countries {
    /// Whether a country code is included.
    pub fn includes(&self, cc: &str) -> bool {
        match self {
            Countries::All => true,
            Countries::Only(list) => list.iter().any(|c| c == cc),
        }
    }
}

/// A format of the daily partner file (`exchange.partner.formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// IODEF v2 (RFC 7970).
    Iodef2,
    /// IODEF v1 (RFC 5070).
    Iodef1,
    /// IntelMQ events, one JSON object a line.
    Intelmq,
    /// Shadowserver's darknet report CSV (`event4_honeypot_darknet`).
    Csv,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::Iodef2, Format::Iodef1, Format::Intelmq, Format::Csv];

    /// The name in the configuration and the manifest.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Iodef2 => "iodef2",
            Format::Iodef1 => "iodef1",
            Format::Intelmq => "intelmq",
            Format::Csv => "csv",
        }
    }

    /// The format of a configured name.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The IODEF version, for the IODEF formats.
    pub const fn iodef(self) -> Option<iodef::Version> {
        match self {
            Format::Iodef2 => Some(iodef::Version::V2),
            Format::Iodef1 => Some(iodef::Version::V1),
            Format::Intelmq | Format::Csv => None,
        }
    }
}

/// What one record of a daily file stands for (`exchange.partner.records`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// One scan event (packet).
    Packet,
    /// One source address, protocol and destination port over the day.
    Aggregate,
}

impl Records {
    /// The name in the configuration and the manifest.
    pub const fn name(self) -> &'static str {
        match self {
            Records::Packet => "packet",
            Records::Aggregate => "aggregate",
        }
    }
}

/// A partner after validation.
#[derive(Debug, Clone)]
pub struct Partner {
    /// The id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Contact e-mail.
    pub contact: Option<String>,
    /// Source countries.
    pub countries: Countries,
    /// Source autonomous systems (sorted, no repeats).
    pub asns: Vec<u32>,
    /// Source networks (host bits cleared, sorted, no repeats).
    pub prefixes: Vec<ipnet::IpNet>,
    /// IODEF version of its files.
    pub version: iodef::Version,
    /// Formats of its daily files, at least one, no repeats; the first is delivered.
    pub formats: Vec<Format>,
    /// Per packet or aggregated records.
    pub records: Records,
    /// Whether research scanners' sources are included.
    pub research: bool,
    /// Restriction ceiling and label of its files.
    pub tlp: Tlp,
    /// Day boundaries.
    pub timezone: Tz,
    /// HTTPS delivery endpoint.
    pub url: Option<String>,
    /// `url` may be `http://`.
    pub allow_insecure: bool,
    /// Extra CAs for `url`.
    pub ca_file: Option<PathBuf>,
    /// Bearer token file for `url`.
    pub token_file: Option<PathBuf>,
    /// Mail recipients (`mail_to`), checked.
    pub mail_to: Vec<lettre::message::Mailbox>,
    /// SHA-256 of its upload token, decoded.
    pub upload_token_sha256: Option<[u8; 32]>,
    /// SHA-256 of its download token, decoded.
    pub download_token_sha256: Option<[u8; 32]>,
}

impl Partner {
    /// Whose scans the partner receives, for the export statements; `None`: every source.
    pub fn constituency(&self) -> Option<teiten_store::queries::Constituency> {
        match &self.countries {
            Countries::All => None,
            Countries::Only(list) => Some(teiten_store::queries::Constituency {
                countries: list.clone(),
                asns: self.asns.clone(),
                prefixes: self.prefixes.clone(),
            }),
        }
    }

    /// The constituency in words (`KR, CN, AS64496, 192.0.2.0/24`, or `all countries`).
    pub fn constituency_words(&self) -> String {
        match &self.countries {
            Countries::All => "all countries".to_owned(),
            Countries::Only(c) => c
                .iter()
                .cloned()
                .chain(self.asns.iter().map(|a| format!("AS{a}")))
                .chain(self.prefixes.iter().map(|n| n.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Whether an address is inside one of the partner's prefixes.
    pub fn covers_address(&self, ip: std::net::IpAddr) -> bool {
        self.prefixes.iter().any(|n| n.contains(&ip))
    }
}

/// A triage rule after validation.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Categories matched (empty: any).
    pub categories: Vec<String>,
    /// Sources matched (empty: any).
    pub sources: Vec<String>,
    /// Host networks matched (empty: any).
    pub hosts: Vec<IpNet>,
    /// Repetition condition: (count, window in seconds).
    pub repeated: Option<(u32, u32)>,
    /// Answer conditions: question id, the choices any of which matches.
    pub answers: std::collections::BTreeMap<String, Vec<String>>,
    /// What it does.
    pub action: Action,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set this colour (first setting rule wins).
    Set(Colour),
    /// Raise the colour one step.
    Escalate,
}

/// The rules used when the config has none. Once the employee answered the default USB
/// questionnaire: a company medium scanned before it left the office is green, any other
/// answer yellow, and a medium used at a customer's site escalates. Before an answer (and for
/// reports nobody is asked about): intrusions are red, malware and DoS yellow. A host
/// reported three times within 24 hours escalates.
pub fn default_rules() -> Vec<Rule> {
    let set = |name: &str, cats: &[&str], c| Rule {
        name: name.into(),
        categories: cats.iter().map(|s| (*s).to_owned()).collect(),
        sources: vec![],
        hosts: vec![],
        repeated: None,
        answers: Default::default(),
        action: Action::Set(c),
    };
    let answered = |name: &str, answers: &[(&str, &[&str])], action| Rule {
        name: name.into(),
        categories: vec![],
        sources: vec![],
        hosts: vec![],
        repeated: None,
        answers: answers
            .iter()
            .map(|(q, cs)| {
                (
                    (*q).to_owned(),
                    cs.iter().map(|c| (*c).to_owned()).collect(),
                )
            })
            .collect(),
        action,
    };
    let any_owner: &[&str] = &["company", "private", "customer", "other"];
    vec![
        answered(
            "usb-company-medium-scanned-is-green",
            &[("owner", &["company"]), ("scanned", &["yes"])],
            Action::Set(Colour::Green),
        ),
        answered(
            "usb-other-answers-are-yellow",
            &[("owner", any_owner)],
            Action::Set(Colour::Yellow),
        ),
        answered(
            "usb-used-at-customer-escalates",
            &[("places", &["customer"])],
            Action::Escalate,
        ),
        set("intrusion-is-red", &["intrusion"], Colour::Red),
        set(
            "malware-or-dos-is-yellow",
            &["malware", "dos"],
            Colour::Yellow,
        ),
        Rule {
            name: "repeated-host-escalates".into(),
            categories: vec![],
            sources: vec![],
            hosts: vec![],
            repeated: Some((3, 24 * 3600)),
            answers: Default::default(),
            action: Action::Escalate,
        },
    ]
}

/// A `[[exchange.reporter]]` after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// Name stored with each report it files.
    pub name: String,
    /// SHA-256 of its bearer token.
    pub token_sha256: [u8; 32],
    /// May fetch the daily partner files (`outbox = true`).
    pub outbox: bool,
    /// May serve questionnaires and work cases (`cases = true`).
    pub cases: bool,
}

/// `[exchange]` after validation.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The config as written.
    pub config: ExchangeConfig,
    /// Partners, checked.
    pub partners: Vec<Partner>,
    /// Reporters, checked.
    pub reporters: Vec<Reporter>,
    /// Triage rules in order.
    pub rules: Vec<Rule>,
    /// Free import slots (`max_concurrent_imports`), shared by uploads and the inbox.
    pub imports: std::sync::Arc<tokio::sync::Semaphore>,
    /// The key that signs partner files (`signing_key`), loaded and proved.
    pub signer: Option<std::sync::Arc<crate::sign::Signer>>,
    /// The mail server (`[exchange.smtp]`), checked.
    pub smtp: Option<Smtp>,
    /// The questionnaires, checked (the default when none are configured).
    pub questionnaires: Vec<crate::cases::Questionnaire>,
    /// The investigation loop (`[exchange.cases]`), checked, its directory loaded.
    pub cases: Option<std::sync::Arc<crate::cases::Cases>>,
}

impl Exchange {
    /// The partner with this id.
    pub fn partner(&self, id: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.id == id)
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> Error {
    Error::ConfigInvalid {
        field,
        reason: reason.into(),
    }
}

/// A hex SHA-256 digest.
fn sha256_hex(field: &'static str, owner: &str, s: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| {
        bad(
            field,
            format!("`{owner}`: must be 64 hex digits (a SHA-256 digest), not a token"),
        )
    })?;
    Ok(out)
}

/// Refuses a token digest given to two owners of the same role.
fn distinct_tokens<'a>(
    field: &'static str,
    owners: impl Iterator<Item = (&'a str, Option<[u8; 32]>)>,
) -> Result<()> {
    let mut seen: Vec<(&str, [u8; 32])> = Vec::new();
    for (owner, hash) in owners {
        let Some(hash) = hash else { continue };
        if let Some((first, _)) = seen.iter().find(|(_, h)| *h == hash) {
            return Err(bad(
                field,
                format!("`{first}` and `{owner}` have the same token; each needs its own"),
            ));
        }
        seen.push((owner, hash));
    }
    Ok(())
}

/// A partner or file id: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SmtpConfig {
    fn check(&self, csirt_email: Option<&str>) -> Result<Smtp> {
        if self.server.trim().is_empty() {
            return Err(bad("exchange.smtp.server", "must not be empty"));
        }
        let security = match self.security.as_str() {
            "starttls" => Security::StartTls,
            "tls" => Security::Tls,
            "none" if self.allow_insecure => Security::None,
            "none" => {
                return Err(bad(
                    "exchange.smtp.security",
                    "\"none\" sends files and password in clear text: set \
                     exchange.smtp.allow_insecure = true to allow it (tests on loopback)",
                ))
            }
            other => {
                return Err(bad(
                    "exchange.smtp.security",
                    format!("`{other}`: expected starttls, tls or none"),
                ))
            }
        };
        let port = self.port.unwrap_or(match security {
            Security::Tls => 465,
            _ => 587,
        });
        if port == 0 {
            return Err(bad("exchange.smtp.port", "must not be 0"));
        }
        let login = match (&self.username, &self.password_file) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad(
                    "exchange.smtp.password_file",
                    "required with exchange.smtp.username",
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "exchange.smtp.username",
                    "required with exchange.smtp.password_file",
                ))
            }
        };
        if login.is_some() && security == Security::None {
            return Err(bad(
                "exchange.smtp.username",
                "AUTH is only sent over TLS (security = \"starttls\" or \"tls\")",
            ));
        }
        let from = match self.from.as_deref().or(csirt_email) {
            Some(a) => a.parse().map_err(|e| {
                bad(
                    "exchange.smtp.from",
                    format!("`{a}` is not an e-mail address ({e})"),
                )
            })?,
            None => {
                return Err(bad(
                    "exchange.smtp.from",
                    "required (or set exchange.csirt_email)",
                ))
            }
        };
        if !(64 << 10..=128 << 20).contains(&self.max_message_bytes) {
            return Err(bad(
                "exchange.smtp.max_message_bytes",
                format!(
                    "{} is not between 65536 and 134217728",
                    self.max_message_bytes
                ),
            ));
        }
        if self.timeout_secs == 0 {
            return Err(bad("exchange.smtp.timeout_secs", "must be at least 1"));
        }
        Ok(Smtp {
            server: self.server.clone(),
            port,
            security,
            ca_file: self.ca_file.clone(),
            login,
            from,
            max_message_bytes: self.max_message_bytes,
            timeout: std::time::Duration::from_secs(self.timeout_secs),
        })
    }
}

impl ExchangeConfig {
    /// Checks every rule, and loads and tries the signing key (the only file it reads).
    pub fn validate(self) -> Result<Exchange> {
        if self.csirt.trim().is_empty() {
            return Err(bad("exchange.csirt", "must not be empty"));
        }
        if self.interval_secs == 0 {
            return Err(bad("exchange.interval_secs", "must be at least 1"));
        }
        if self.delivery_attempts == 0 {
            return Err(bad("exchange.delivery_attempts", "must be at least 1"));
        }
        if self.delivery_timeout_secs == 0 {
            return Err(bad("exchange.delivery_timeout_secs", "must be at least 1"));
        }
        if self.export_delay_minutes > 24 * 60 {
            return Err(bad(
                "exchange.export_delay_minutes",
                "must be at most 1440 (one day)",
            ));
        }
        let ranges: [(&'static str, u64, u64, u64); 6] = [
            (
                "exchange.max_upload_bytes",
                self.max_upload_bytes as u64,
                1024,
                u64::MAX,
            ),
            (
                "exchange.max_concurrent_imports",
                self.max_concurrent_imports as u64,
                1,
                64,
            ),
            (
                "exchange.import_max_string_bytes",
                self.import_max_string_bytes as u64,
                64,
                65_536,
            ),
            (
                "exchange.import_max_indicators",
                u64::from(self.import_max_indicators),
                1,
                100_000_000,
            ),
            (
                "exchange.import_max_unit_bytes",
                self.import_max_unit_bytes,
                4096,
                64 << 20,
            ),
            (
                "exchange.import_max_unit_elements",
                self.import_max_unit_elements,
                100,
                1_000_000,
            ),
        ];
        for (field, v, lo, hi) in ranges {
            if v < lo || v > hi {
                return Err(bad(field, format!("{v} is not between {lo} and {hi}")));
            }
        }
        if !(1..=100).contains(&self.import_attempts) {
            return Err(bad(
                "exchange.import_attempts",
                format!("{} is not between 1 and 100", self.import_attempts),
            ));
        }
        let mut partners: Vec<Partner> = Vec::new();
        for p in &self.partners {
            if !is_id(&p.id) {
                return Err(bad(
                    "exchange.partner.id",
                    format!("`{}`: 1 to 64 ASCII letters, digits, '-' or '_'", p.id),
                ));
            }
            if partners.iter().any(|q| q.id == p.id) {
                return Err(bad(
                    "exchange.partner.id",
                    format!("`{}` appears twice", p.id),
                ));
            }
            let countries = if p.countries.iter().any(|c| c.eq_ignore_ascii_case("all")) {
                if p.countries.len() > 1 {
                    return Err(bad(
                        "exchange.partner.countries",
                        format!("partner `{}`: \"all\" stands alone", p.id),
                    ));
                }
                if !p.asns.is_empty() || !p.prefixes.is_empty() {
                    return Err(bad(
                        "exchange.partner.countries",
                        format!(
                            "partner `{}`: \"all\" already covers every AS and prefix; drop \
                             `asns` and `prefixes`, or name countries",
                            p.id
                        ),
                    ));
                }
                Countries::All
            } else {
                if p.countries.is_empty() && p.asns.is_empty() && p.prefixes.is_empty() {
                    return Err(bad(
                        "exchange.partner.countries",
                        format!(
                            "partner `{}`: name at least one country (or \"all\"), AS in \
                             `asns` or network in `prefixes`",
                            p.id
                        ),
                    ));
                }
                let mut list = Vec::new();
                for c in &p.countries {
                    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(bad(
                            "exchange.partner.countries",
                            format!("partner `{}`: `{c}` is not an ISO 3166 alpha-2 code", p.id),
                        ));
                    }
                    list.push(c.to_ascii_uppercase());
                }
                list.sort();
                list.dedup();
                Countries::Only(list)
            };
            if let Some(a) = p.asns.iter().find(|&&a| a == 0 || a == u32::MAX) {
                return Err(bad(
                    "exchange.partner.asns",
                    format!("partner `{}`: AS{a} is reserved (RFC 7607, RFC 7300)", p.id),
                ));
            }
            let mut asns = p.asns.clone();
            asns.sort_unstable();
            asns.dedup();
            let mut prefixes: Vec<ipnet::IpNet> = p.prefixes.iter().map(|n| n.trunc()).collect();
            prefixes.sort_unstable();
            prefixes.dedup();
            let version = match p.iodef_version {
                1 => iodef::Version::V1,
                2 => iodef::Version::V2,
                v => {
                    return Err(bad(
                        "exchange.partner.iodef_version",
                        format!("partner `{}`: {v} is not 1 or 2", p.id),
                    ))
                }
            };
            let formats = match &p.formats {
                None => vec![match version {
                    iodef::Version::V1 => Format::Iodef1,
                    iodef::Version::V2 => Format::Iodef2,
                }],
                Some(names) => {
                    if names.is_empty() {
                        return Err(bad(
                            "exchange.partner.formats",
                            format!(
                                "partner `{}`: the list is empty (name at least one of iodef2, \
                                 iodef1, intelmq, csv, or leave it out for IODEF v{})",
                                p.id, p.iodef_version
                            ),
                        ));
                    }
                    let mut list: Vec<Format> = Vec::with_capacity(names.len());
                    for n in names {
                        let f = Format::parse(n).ok_or_else(|| {
                            bad(
                                "exchange.partner.formats",
                                format!(
                                    "partner `{}`: `{n}` is not iodef2, iodef1, intelmq or csv",
                                    p.id
                                ),
                            )
                        })?;
                        if list.contains(&f) {
                            return Err(bad(
                                "exchange.partner.formats",
                                format!("partner `{}`: `{n}` is listed twice", p.id),
                            ));
                        }
                        list.push(f);
                    }
                    list
                }
            };
            let records = match p.records.as_deref() {
                None | Some("packet") => Records::Packet,
                Some("aggregate") => Records::Aggregate,
                Some(r) => {
                    return Err(bad(
                        "exchange.partner.records",
                        format!("partner `{}`: `{r}` is not packet or aggregate", p.id),
                    ))
                }
            };
            let tlp = Tlp::parse(&p.tlp).ok_or_else(|| {
                bad(
                    "exchange.partner.tlp",
                    format!(
                        "partner `{}`: `{}` is not clear, white, green, amber, amber+strict or red",
                        p.id, p.tlp
                    ),
                )
            })?;
            let timezone: Tz = p.timezone.parse().map_err(|_| {
                bad(
                    "exchange.partner.timezone",
                    format!(
                        "partner `{}`: `{}` is not an IANA time zone (e.g. Asia/Tokyo, UTC)",
                        p.id, p.timezone
                    ),
                )
            })?;
            if let Some(url) = &p.url {
                if url.starts_with("http://") && !p.allow_insecure {
                    return Err(bad(
                        "exchange.partner.url",
                        format!(
                            "partner `{}`: `{url}` is not an https:// URL (set \
                             exchange.partner.allow_insecure = true to allow http:// in tests)",
                            p.id
                        ),
                    ));
                }
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    return Err(bad(
                        "exchange.partner.url",
                        format!("partner `{}`: `{url}` is not an https:// URL", p.id),
                    ));
                }
            }
            let mail_to = p
                .mail_to
                .iter()
                .map(|a| {
                    a.parse::<lettre::message::Mailbox>().map_err(|e| {
                        bad(
                            "exchange.partner.mail_to",
                            format!("partner `{}`: `{a}` is not an e-mail address ({e})", p.id),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if !mail_to.is_empty() && p.url.is_some() {
                return Err(bad(
                    "exchange.partner.mail_to",
                    format!(
                        "partner `{}`: either url or mail_to, not both (one delivery a day)",
                        p.id
                    ),
                ));
            }
            if !mail_to.is_empty() && self.smtp.is_none() {
                return Err(bad(
                    "exchange.partner.mail_to",
                    format!("partner `{}`: mail_to needs [exchange.smtp]", p.id),
                ));
            }
            let upload_token_sha256 = p
                .upload_token_sha256
                .as_deref()
                .map(|s| sha256_hex("exchange.partner.upload_token_sha256", &p.id, s))
                .transpose()?;
            let download_token_sha256 = p
                .download_token_sha256
                .as_deref()
                .map(|s| sha256_hex("exchange.partner.download_token_sha256", &p.id, s))
                .transpose()?;
            partners.push(Partner {
                id: p.id.clone(),
                name: p.name.clone().unwrap_or_else(|| p.id.clone()),
                contact: p.contact.clone(),
                countries,
                asns,
                prefixes,
                version,
                formats,
                records,
                research: p.research,
                tlp,
                timezone,
                url: p.url.clone(),
                allow_insecure: p.allow_insecure,
                ca_file: p.ca_file.clone(),
                token_file: p.token_file.clone(),
                mail_to,
                upload_token_sha256,
                download_token_sha256,
            });
        }
        let mut reporters = Vec::new();
        for r in &self.reporters {
            if r.name.trim().is_empty() {
                return Err(bad("exchange.reporter.name", "must not be empty"));
            }
            let hash = sha256_hex("exchange.reporter.token_sha256", &r.name, &r.token_sha256)?;
            reporters.push(Reporter {
                name: r.name.clone(),
                token_sha256: hash,
                outbox: r.outbox,
                cases: r.cases,
            });
        }
        // A token names its caller: one that two partners (or two reporters) share would hand
        // one of them the other's files or reports.
        distinct_tokens(
            "exchange.partner.upload_token_sha256",
            partners
                .iter()
                .map(|p| (p.id.as_str(), p.upload_token_sha256)),
        )?;
        distinct_tokens(
            "exchange.partner.download_token_sha256",
            partners
                .iter()
                .map(|p| (p.id.as_str(), p.download_token_sha256)),
        )?;
        distinct_tokens(
            "exchange.reporter.token_sha256",
            reporters
                .iter()
                .map(|r| (r.name.as_str(), Some(r.token_sha256))),
        )?;
        let mut rules = Vec::new();
        for r in &self.triage {
            let field_err = |field, what: String| bad(field, format!("rule `{}`: {what}", r.name));
            for c in &r.categories {
                if !CATEGORIES.contains(&c.as_str()) {
                    return Err(field_err(
                        "exchange.triage.categories",
                        format!("`{c}` is not one of {}", CATEGORIES.join(", ")),
                    ));
                }
            }
            for s in &r.sources {
                if !SOURCES.contains(&s.as_str()) {
                    return Err(field_err(
                        "exchange.triage.sources",
                        format!("`{s}` is not one of {}", SOURCES.join(", ")),
                    ));
                }
            }
            let action = match (&r.colour, r.escalate) {
                (Some(_), true) => {
                    return Err(field_err(
                        "exchange.triage.colour",
                        "give a colour or escalate, not both".into(),
                    ))
                }
                (None, false) => {
                    return Err(field_err(
                        "exchange.triage.colour",
                        "needs a colour (green, yellow, red) or escalate = true".into(),
                    ))
                }
                (Some(c), false) => Action::Set(
                    c.parse()
                        .map_err(|e| field_err("exchange.triage.colour", e))?,
                ),
                (None, true) => Action::Escalate,
            };
            if r.repeated == Some(0) {
                return Err(field_err(
                    "exchange.triage.repeated",
                    "must be at least 1".into(),
                ));
            }
            if r.window_hours == 0 {
                return Err(field_err(
                    "exchange.triage.window_hours",
                    "must be at least 1".into(),
                ));
            }
            rules.push(Rule {
                name: r.name.clone(),
                categories: r.categories.clone(),
                sources: r.sources.clone(),
                hosts: r.hosts.clone(),
                repeated: r.repeated.map(|n| (n, r.window_hours.saturating_mul(3600))),
                answers: r.answers.clone(),
                action,
            });
        }
        let questionnaires = crate::cases::check_questionnaires(&self.questionnaires)?;
        for r in &self.triage {
            crate::cases::check_rule_answers(&r.name, &r.answers, &questionnaires)?;
        }
        if rules.is_empty() {
            rules = default_rules();
        }
        let imports = std::sync::Arc::new(tokio::sync::Semaphore::new(self.max_concurrent_imports));
        if self.signing_key.is_none() && self.signing_key_passphrase_file.is_some() {
            return Err(bad(
                "exchange.signing_key_passphrase_file",
                "set without exchange.signing_key",
            ));
        }
        let signer = match &self.signing_key {
            Some(key) => Some(std::sync::Arc::new(
                crate::sign::Signer::load(key, self.signing_key_passphrase_file.as_deref())
                    .map_err(|e| bad("exchange.signing_key", e.to_string()))?,
            )),
            None => None,
        };
        let smtp = self
            .smtp
            .as_ref()
            .map(|c| c.check(self.csirt_email.as_deref()))
            .transpose()?;
        let cases = self
            .cases
            .as_ref()
            .map(|c| {
                c.check(
                    questionnaires.clone(),
                    self.csirt_email.as_deref(),
                    smtp.is_some(),
                )
            })
            .transpose()?
            .map(std::sync::Arc::new);
        Ok(Exchange {
            questionnaires,
            cases,
            smtp,
            signer,
            config: self,
            partners,
            reporters,
            rules,
            imports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_and_mail_settings_are_checked_with_their_keys() {
        let base = "csirt_email = \"csirt@example.org\"\n[smtp]\nserver = \"mx.example.org\"\n";
        let partner = "[[partner]]\nid = \"p\"\ncountries = [\"KR\"]\n";
        let x = check(&format!("{base}{partner}mail_to = [\"soc@p.example\"]\n")).unwrap();
        let smtp = x.smtp.unwrap();
        assert_eq!((smtp.port, smtp.security), (587, Security::StartTls));
        assert_eq!(smtp.from.email.to_string(), "csirt@example.org");
        for (text, key) in [
            (
                format!("{partner}mail_to = [\"soc@p.example\"]\n"),
                "exchange.partner.mail_to",
            ),
            (
                format!("{base}{partner}mail_to = [\"not an address\"]\n"),
                "exchange.partner.mail_to",
            ),
            (
                format!(
                    "{base}{partner}mail_to = [\"a@b.example\"]\nurl = \"https://p.example/\"\n"
                ),
                "exchange.partner.mail_to",
            ),
            (
                format!("{base}security = \"none\"\n"),
                "exchange.smtp.security",
            ),
            (
                format!("{base}security = \"ssl3\"\n"),
                "exchange.smtp.security",
            ),
            (
                format!("{base}username = \"u\"\n"),
                "exchange.smtp.password_file",
            ),
            (
                format!("{base}max_message_bytes = 10\n"),
                "exchange.smtp.max_message_bytes",
            ),
            (
                format!("{base}max_message_bytes = 1073741824\n"),
                "exchange.smtp.max_message_bytes",
            ),
            (
                "[smtp]\nserver = \"mx.example.org\"\n".to_owned(),
                "exchange.smtp.from",
            ),
            (
                "signing_key_passphrase_file = \"/p\"\n".to_owned(),
                "exchange.signing_key_passphrase_file",
            ),
            (
                "signing_key = \"/nonexistent/key.asc\"\n".to_owned(),
                "exchange.signing_key",
            ),
        ] {
            let e = check(&text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    fn check(text: &str) -> std::result::Result<Exchange, String> {
        let c: ExchangeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn formats_default_to_the_iodef_version_and_keep_their_order() {
        let x = check(
            "[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\n\
             [[partner]]\nid = \"b\"\ncountries = [\"KR\"]\niodef_version = 1\n\
             [[partner]]\nid = \"c\"\ncountries = [\"KR\"]\n\
             formats = [\"csv\", \"intelmq\", \"iodef1\"]\nrecords = \"aggregate\"\n",
        )
        .unwrap();
        assert_eq!(x.partners[0].formats, [Format::Iodef2]);
        assert_eq!(x.partners[0].records, Records::Packet);
        assert_eq!(x.partners[1].formats, [Format::Iodef1]);
        assert_eq!(
            x.partners[2].formats,
            [Format::Csv, Format::Intelmq, Format::Iodef1]
        );
        assert_eq!(x.partners[2].records, Records::Aggregate);
        let e = check("[[partner]]\nid = \"zz\"\ncountries = [\"KR\"]\nformats = [\"xml\"]\n")
            .unwrap_err();
        assert!(
            e.contains("exchange.partner.formats") && e.contains("`zz`") && e.contains("`xml`"),
            "{e}"
        );
    }

    /// Every validated key, with a value that breaks its rule: the error names that key.
    #[test]
    fn a_partner_by_networks_only() {
        let x = check(
            "[[partner]]\nid = \"isp\"\nasns = [64511, 64496, 64496]\n\
             prefixes = [\"192.0.2.77/24\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        let p = &x.partners[0];
        assert_eq!(p.countries, Countries::Only(vec![]));
        assert_eq!(p.asns, [64496, 64511]);
        assert_eq!(p.prefixes[0].to_string(), "192.0.2.0/24");
        assert!(p.covers_address("192.0.2.9".parse().unwrap()));
        assert!(!p.covers_address("198.51.100.1".parse().unwrap()));
        assert_eq!(
            p.constituency_words(),
            "AS64496, AS64511, 192.0.2.0/24, 2001:db8::/32"
        );
        let bad = check("[[partner]]\nid = \"isp\"\nprefixes = [\"192.0.2.0/33\"]\n").unwrap_err();
        assert!(bad.contains("prefixes") || bad.contains("invalid"), "{bad}");
    }

    #[test]
    fn every_validation_error_names_its_key() {
        const P: &str = "[[partner]]\nid = \"kr\"\ncountries = [\"KR\"]\n";
        const R: &str = "[[triage]]\nname = \"r\"\ncolour = \"red\"\n";
        let cases: Vec<(&str, String)> = vec![
            ("exchange.csirt", "csirt = \"\"".into()),
            ("exchange.interval_secs", "interval_secs = 0".into()),
            ("exchange.delivery_attempts", "delivery_attempts = 0".into()),
            (
                "exchange.delivery_timeout_secs",
                "delivery_timeout_secs = 0".into(),
            ),
            (
                "exchange.export_delay_minutes",
                "export_delay_minutes = 1441".into(),
            ),
            (
                "exchange.max_upload_bytes",
                "max_upload_bytes = 1023".into(),
            ),
            (
                "exchange.max_concurrent_imports",
                "max_concurrent_imports = 0".into(),
            ),
            (
                "exchange.max_concurrent_imports",
                "max_concurrent_imports = 65".into(),
            ),
            (
                "exchange.import_max_string_bytes",
                "import_max_string_bytes = 63".into(),
            ),
            (
                "exchange.import_max_indicators",
                "import_max_indicators = 0".into(),
            ),
            (
                "exchange.import_max_unit_bytes",
                "import_max_unit_bytes = 4095".into(),
            ),
            (
                "exchange.import_max_unit_elements",
                "import_max_unit_elements = 99".into(),
            ),
            ("exchange.import_attempts", "import_attempts = 0".into()),
            ("exchange.import_attempts", "import_attempts = 101".into()),
            (
                "exchange.partner.id",
                "[[partner]]\nid = \"a/b\"\ncountries = [\"KR\"]".into(),
            ),
            ("exchange.partner.id", format!("{P}{P}")),
            (
                "exchange.partner.countries",
                "[[partner]]\nid = \"a\"\ncountries = []".into(),
            ),
            (
                "exchange.partner.countries",
                "[[partner]]\nid = \"a\"\ncountries = [\"all\", \"KR\"]".into(),
            ),
            (
                "exchange.partner.countries",
                "[[partner]]\nid = \"a\"\ncountries = [\"KOR\"]".into(),
            ),
            (
                "exchange.partner.countries",
                "[[partner]]\nid = \"a\"".into(),
            ),
            (
                "exchange.partner.countries",
                "[[partner]]\nid = \"a\"\ncountries = [\"all\"]\nasns = [64496]".into(),
            ),
            (
                "exchange.partner.asns",
                "[[partner]]\nid = \"a\"\nasns = [0]".into(),
            ),
            (
                "exchange.partner.asns",
                "[[partner]]\nid = \"a\"\nasns = [4294967295]".into(),
            ),
            (
                "exchange.partner.iodef_version",
                format!("{P}iodef_version = 3"),
            ),
            ("exchange.partner.formats", format!("{P}formats = []")),
            (
                "exchange.partner.formats",
                format!("{P}formats = [\"iodef2\", \"stix\"]"),
            ),
            (
                "exchange.partner.formats",
                format!("{P}formats = [\"csv\", \"csv\"]"),
            ),
            (
                "exchange.partner.records",
                format!("{P}records = \"flows\""),
            ),
            ("exchange.partner.tlp", format!("{P}tlp = \"blue\"")),
            (
                "exchange.partner.timezone",
                format!("{P}timezone = \"Mars/Base\""),
            ),
            (
                "exchange.partner.url",
                format!("{P}url = \"http://p.example\""),
            ),
            (
                "exchange.partner.url",
                format!("{P}url = \"ftp://p.example\""),
            ),
            (
                "exchange.partner.upload_token_sha256",
                format!("{P}upload_token_sha256 = \"secret\""),
            ),
            (
                "exchange.reporter.name",
                "[[reporter]]\nname = \" \"\ntoken_sha256 = \"00\"".into(),
            ),
            (
                "exchange.reporter.token_sha256",
                "[[reporter]]\nname = \"a\"\ntoken_sha256 = \"00\"".into(),
            ),
            (
                "exchange.triage.categories",
                format!("{R}categories = [\"nope\"]"),
            ),
            (
                "exchange.triage.sources",
                format!("{R}sources = [\"nope\"]"),
            ),
            ("exchange.triage.colour", format!("{R}escalate = true")),
            ("exchange.triage.colour", "[[triage]]\nname = \"r\"".into()),
            (
                "exchange.triage.colour",
                "[[triage]]\nname = \"r\"\ncolour = \"blue\"".into(),
            ),
            ("exchange.triage.repeated", format!("{R}repeated = 0")),
            (
                "exchange.triage.window_hours",
                format!("{R}window_hours = 0"),
            ),
        ];
        for (key, text) in &cases {
            let err = check(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} passed validation"));
            assert!(
                err.starts_with(&format!("config field `{key}` is invalid")),
                "{text:?} should be reported as `{key}`: {err}"
            );
        }
    }

    #[test]
    fn partners_parse_with_defaults() {
        let x = check(
            "[[partner]]\nid = \"kr-cert\"\ncountries = [\"kr\", \"CN\"]\n\
             [[partner]]\nid = \"world\"\ncountries = [\"all\"]\niodef_version = 1\n\
             tlp = \"TLP:GREEN\"\ntimezone = \"Asia/Tokyo\"\n",
        )
        .unwrap();
        let kr = x.partner("kr-cert").unwrap();
        assert_eq!(
            kr.countries,
            Countries::Only(vec!["CN".into(), "KR".into()])
        );
        assert_eq!(kr.version, iodef::Version::V2);
        assert_eq!(kr.tlp, Tlp::Amber);
        assert_eq!(kr.timezone, Tz::UTC);
        let w = x.partner("world").unwrap();
        assert_eq!(w.countries, Countries::All);
        assert_eq!(w.version, iodef::Version::V1);
        assert_eq!(w.tlp, Tlp::Green);
        assert_eq!(w.timezone, Tz::Asia__Tokyo);
        assert_eq!(x.rules.len(), 6, "default rules");
        assert_eq!(x.questionnaires[0].name, "usb", "the default questionnaire");
        assert!(x.cases.is_none());
    }

    #[test]
    fn a_token_names_one_partner_or_reporter() {
        let h1 = "11".repeat(32);
        let h2 = "22".repeat(32);
        let partner = |id: &str, up: &str, down: &str| {
            format!(
                "[[partner]]\nid = \"{id}\"\ncountries = [\"KR\"]\n\
                 upload_token_sha256 = \"{up}\"\ndownload_token_sha256 = \"{down}\"\n"
            )
        };
        // One partner may upload and download with one token.
        let x = check(&(partner("a", &h1, &h1) + &partner("b", &h2, &h2))).unwrap();
        assert_eq!(
            x.partner("a").unwrap().download_token_sha256,
            Some([0x11; 32])
        );
        let e = check(&(partner("a", &h1, &h1) + &partner("b", &h2, &h1))).unwrap_err();
        assert!(
            e.contains("exchange.partner.download_token_sha256") && e.contains("`a` and `b`"),
            "{e}"
        );
        let e = check(&(partner("a", &h1, &h2) + &partner("b", &h1, &h1))).unwrap_err();
        assert!(e.contains("exchange.partner.upload_token_sha256"), "{e}");
        let e = check(&format!(
            "[[reporter]]\nname = \"x\"\ntoken_sha256 = \"{h1}\"\n\
             [[reporter]]\nname = \"y\"\ntoken_sha256 = \"{h1}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("exchange.reporter.token_sha256"), "{e}");
        let e = check(&partner("a", &h1, "not hex")).unwrap_err();
        assert!(e.contains("exchange.partner.download_token_sha256"), "{e}");
        assert!(
            !e.contains("not hex"),
            "a misplaced token is not echoed: {e}"
        );
    }

    #[test]
    fn bad_partners_say_what_and_which() {
        let e = check("[[partner]]\nid = \"a/b\"\ncountries = [\"KR\"]\n").unwrap_err();
        assert!(
            e.contains("exchange.partner.id") && e.contains("a/b"),
            "{e}"
        );
        let e = check("[[partner]]\nid = \"a\"\ncountries = [\"KOR\"]\n").unwrap_err();
        assert!(e.contains("`KOR` is not an ISO 3166"), "{e}");
        let e = check("[[partner]]\nid = \"a\"\ncountries = []\n").unwrap_err();
        assert!(e.contains("at least one country"), "{e}");
        let e =
            check("[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\ntimezone = \"Mars/Olympus\"\n")
                .unwrap_err();
        assert!(e.contains("Mars/Olympus"), "{e}");
        let e = check("[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\niodef_version = 3\n")
            .unwrap_err();
        assert!(e.contains("3 is not 1 or 2"), "{e}");
        let e =
            check("[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\ntlp = \"purple\"\n").unwrap_err();
        assert!(e.contains("`purple`"), "{e}");
        let e = check(
            "[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\n[[partner]]\nid = \"a\"\ncountries = [\"CN\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = check(
            "[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\nurl = \"http://127.0.0.1:9/x\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("exchange.partner.url") && e.contains("allow_insecure"),
            "{e}"
        );
        let x = check(
            "[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\nurl = \"http://127.0.0.1:9/x\"\n\
             allow_insecure = true\n",
        )
        .unwrap();
        assert!(x.partners[0].allow_insecure);
        let e = check(
            "[[partner]]\nid = \"a\"\ncountries = [\"KR\"]\nupload_token_sha256 = \"secret\"\n",
        )
        .unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        assert!(
            !e.contains("secret"),
            "a misplaced token is not echoed: {e}"
        );
    }

    #[test]
    fn triage_rules_are_checked() {
        let x = check(
            "[[triage]]\nname = \"customer\"\nhosts = [\"203.0.113.0/24\"]\ncolour = \"red\"\n\
             [[triage]]\nname = \"again\"\nrepeated = 2\nwindow_hours = 1\nescalate = true\n",
        )
        .unwrap();
        assert_eq!(x.rules.len(), 2);
        assert_eq!(x.rules[0].action, Action::Set(Colour::Red));
        assert_eq!(x.rules[1].repeated, Some((2, 3600)));
        let e = check("[[triage]]\nname = \"x\"\n").unwrap_err();
        assert!(e.contains("rule `x`: needs a colour"), "{e}");
        let e = check("[[triage]]\nname = \"x\"\ncategories = [\"spam\"]\ncolour = \"red\"\n")
            .unwrap_err();
        assert!(e.contains("`spam` is not one of"), "{e}");
        let e = check("[[triage]]\nname = \"x\"\ncolour = \"blue\"\n").unwrap_err();
        assert!(e.contains("`blue` is not a colour"), "{e}");
    }

    #[test]
    fn import_caps_have_defaults_and_ranges() {
        let x = check("").unwrap();
        assert_eq!(x.config.max_concurrent_imports, 2);
        assert_eq!(x.imports.available_permits(), 2);
        assert_eq!(x.config.import_max_string_bytes, 1024);
        assert_eq!(x.config.import_max_indicators, 1_000_000);
        assert_eq!(x.config.import_max_unit_bytes, 4 << 20);
        assert_eq!(x.config.import_max_unit_elements, 20_000);
        assert_eq!(x.config.import_attempts, 2);
        for (text, field) in [
            (
                "max_concurrent_imports = 0",
                "exchange.max_concurrent_imports",
            ),
            (
                "import_max_string_bytes = 10",
                "exchange.import_max_string_bytes",
            ),
            (
                "import_max_indicators = 0",
                "exchange.import_max_indicators",
            ),
            (
                "import_max_unit_bytes = 1",
                "exchange.import_max_unit_bytes",
            ),
            (
                "import_max_unit_elements = 5000000",
                "exchange.import_max_unit_elements",
            ),
            ("import_attempts = 0", "exchange.import_attempts"),
            ("max_upload_bytes = 10", "exchange.max_upload_bytes"),
        ] {
            let e = check(text).unwrap_err();
            assert!(
                e.contains(field) && e.contains("is not between"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn tlp_order() {
        assert!(Tlp::parse("white").unwrap() < Tlp::Green);
        assert!(Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red);
        assert_eq!(Tlp::parse("x"), None);
        assert_eq!(Colour::Green.escalated(), Colour::Yellow);
        assert_eq!(Colour::Red.escalated(), Colour::Red);
    }
}
