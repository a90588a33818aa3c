//! Shared by the investigation loop's end-to-end tests: the aggregator's `[exchange]` with a
//! real SMTP server, reports filed through the API, the mails received.
#![allow(dead_code)] // Each test file uses a different part of this module.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use teiten::clickhouse::Server;
use teiten::smtp::{take_apart, SmtpServer};

use crate::aggregator_common::Agg;

/// The SMTP server (aiosmtpd, STARTTLS and AUTH as `teiten` with `smtp-secret-pw`), with the
/// certificates of [`teiten::tls::certificates`] in `w` and the password in
/// `w/smtp.password`.
pub fn start_smtp(w: &Path) -> SmtpServer {
    if !w.join("ca.pem").exists() {
        teiten::tls::certificates(w);
    }
    let smtp = SmtpServer::start(w, "teiten", "smtp-secret-pw", 0);
    std::fs::write(w.join("smtp.password"), "smtp-secret-pw\n").unwrap();
    smtp
}

/// `[exchange]` (csirt `csirt.teiten.test`, `csirt@teiten.test`, its directories in `w`) and
/// `[exchange.smtp]` for `smtp`; `[exchange.cases]` and the reporters follow.
pub fn exchange_head(w: &Path, smtp: &SmtpServer) -> String {
    format!(
        "[exchange]\ncsirt = \"csirt.teiten.test\"\ncsirt_email = \"csirt@teiten.test\"\n\
         outbox = \"{w}/outbox\"\ninbox = \"{w}/inbox\"\nquarantine = \"{w}/quarantine\"\n\n\
         [exchange.smtp]\nserver = \"127.0.0.1\"\nport = {port}\nca_file = \"{w}/ca.pem\"\n\
         username = \"teiten\"\npassword_file = \"{w}/smtp.password\"\ntimeout_secs = 10\n\n",
        w = w.display(),
        port = smtp.port,
    )
}

/// A received mail: recipients, subject, text.
#[derive(Debug, Clone)]
pub struct Mail {
    pub rcpt: String,
    pub subject: String,
    pub text: String,
}

pub fn mails(smtp: &SmtpServer, dir: &Path) -> Vec<Mail> {
    smtp.messages()
        .iter()
        .enumerate()
        .map(|(n, eml)| {
            let s = take_apart(eml, &dir.join(format!("mail-{n}")));
            Mail {
                rcpt: std::fs::read_to_string(eml.with_extension("rcpt")).unwrap_or_default(),
                subject: s["subject"].as_str().unwrap_or("").to_owned(),
                text: s["text"].as_str().unwrap_or("").to_owned(),
            }
        })
        .collect()
}

/// Waits for a mail to `to` whose subject contains `about` (the `nth` such, from 0).
pub fn wait_mail(smtp: &SmtpServer, dir: &Path, to: &str, about: &str, nth: usize) -> Mail {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = mails(smtp, dir);
        let found: Vec<&Mail> = all
            .iter()
            .filter(|m| m.rcpt.contains(to) && m.subject.contains(about))
            .collect();
        if let Some(m) = found.get(nth) {
            return (*m).clone();
        }
        assert!(
            Instant::now() < deadline,
            "no mail {nth} to {to} about {about:?}; got: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The one value `sql` answers.
pub fn scalar(ch: &Server, sql: &str) -> String {
    ch.query(sql).unwrap().trim().to_owned()
}

/// Files an antivirus detection on `host` through the reports API, as the reporter of `token`.
pub fn file_report(agg: &Agg, token: &str, host: &str, description: &str) {
    let body = json!({
        // Now, so that the month's trends and summary hold every report of a test.
        "detected": teiten_dashboard::params::iso(teiten_store::time::now()),
        "source": "antivirus",
        "host": host,
        "category": "malware",
        "description": description,
    });
    let r = ureq::post(&format!("{}/api/v1/reports", agg.url))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .unwrap();
    assert_eq!(r.status(), 201);
}
