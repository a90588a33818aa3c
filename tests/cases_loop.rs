//! The investigation loop end to end, with the real parts: Debian's clamd (a signature
//! database this test writes) detects a planted file on a "USB medium" and the real
//! `teiten-intake` files it, with an EVE alert it follows; other antivirus detections come
//! through the reports API. The aggregator opens a case per report, finds the employee in the
//! directory, and mails (through a real SMTP server, aiosmtpd with STARTTLS and AUTH) a
//! one-time link; headless Chromium opens each link on the real dashboard and fills the
//! questionnaire; the triage colour follows the answers; a red one alerts the CSIRT by mail
//! and webhook; an unanswered one gets its reminder and then its escalation to the manager
//! and the CSIRT; a report on an unknown host and an IDS alert nobody is asked about alert
//! at once. Bad input (a forged token, a reused or expired link, answers outside the
//! choices) gets a clear answer and changes nothing; an analyst's override is kept in the
//! history, and an aggregator restart in the middle repeats no step.

mod aggregator_common;
mod cases_common;
mod intake_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator_common::{token_hash, Agg};
use cases_common::{exchange_head, file_report, mails, scalar, start_smtp, wait_mail, Mail};
use intake_common::Intake;
use serde_json::json;
use teiten::browser::{Browser, Guard};
use teiten::clamd::Clamd;
use teiten::clickhouse::{free_port, Server};

const DB: &str = "t_cases";
const REMIND: u64 = 10;
const ESCALATE: u64 = 16;
const LINK: u64 = 20;

const DIRECTORY: &str = r#"
[[employee]]
uid = "sato"
name = "Sato Jiro"
email = "sato@corp.teiten.test"
department = "Sales"

[[employee]]
uid = "tanaka"
name = "Tanaka Hanako"
email = "tanaka@corp.teiten.test"
department = "Sales"
manager = "sato"
hosts = ["pc-17.corp.teiten.test", "10.20.0.5"]

[[employee]]
uid = "suzuki"
name = "Suzuki Ichiro"
email = "suzuki@corp.teiten.test"
department = "Engineering"
manager = "sato"
hosts = ["pc-18.corp.teiten.test"]

[[employee]]
uid = "kato"
name = "Kato Yui"
email = "kato@corp.teiten.test"
department = "Engineering"
manager = "sato"
hosts = ["pc-19.corp.teiten.test"]
"#;

/// A webhook POST: its JSON body and its Authorization header.
type Posted = (serde_json::Value, Option<String>);

/// The webhook's receiving end: every POST.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Posted>>>,
}

fn hook() -> Hook {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/csirt",
        server.server_addr().to_ip().unwrap()
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = Vec::new();
            let _ = req.as_reader().read_to_end(&mut body);
            let auth = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.to_string());
            g.lock()
                .unwrap()
                .push((serde_json::from_slice(&body).unwrap_or_default(), auth));
            let _ = req.respond(tiny_http::Response::from_string("ok"));
        }
    });
    Hook { url, got }
}

fn link_of(m: &Mail, base: &str) -> String {
    let at = m
        .text
        .find(&format!("{base}/q/"))
        .unwrap_or_else(|| panic!("no link in {m:#?}"));
    m.text[at..].split_whitespace().next().unwrap().to_owned()
}

fn colour_of(ch: &Server, host: &str) -> String {
    scalar(
        ch,
        &format!(
            "SELECT toString(argMax(colour, version)) FROM {DB}.report_cases \
             WHERE event IN ('opened', 'answered', 'overridden') AND (reporter, id) IN \
             (SELECT reporter, id FROM {DB}.internal_reports WHERE host = '{host}')"
        ),
    )
}

const ANALYST_PASSWORD: &str = "cases analyst password";

fn start_dashboard(ch: &Server, dir: &Path, port: u16, agg: &Agg) -> Guard {
    let config = dir.join("dashboard.toml");
    let hash = teiten_dashboard::auth::hash_password(ANALYST_PASSWORD).unwrap();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{DB}\"\n\
             [analyst.users]\nalice = \"{hash}\"\n\
             [reports]\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            ch.url(),
            agg.url,
            dir.join("dashboard.token").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("dashboard.log")).unwrap();
    let child = Command::new(teiten::bin("teiten-dashboard"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("http://127.0.0.1:{port}/health"))
        .call()
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "dashboard did not start: {}",
            std::fs::read_to_string(dir.join("dashboard.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

/// Chromium on a link: checks the given inputs (by id), types the notes, sends; the page after.
fn answer_in_browser(b: &mut Browser, link: &str, ids: &[&str], notes: &str, shot: &str) -> String {
    b.goto(link);
    let html = b.html();
    assert!(html.contains("id=\"questionnaire\""), "{html}");
    for id in ids {
        b.eval(&format!(
            "document.getElementById({id:?}).checked = true; true"
        ));
    }
    b.set("textarea[name=notes]", notes);
    b.screenshot(&format!("{shot}-form.png"));
    b.click("#send");
    b.screenshot(&format!("{shot}-sent.png"));
    b.html()
}

#[test]
fn detections_are_investigated_with_the_employee() {
    let ch = Server::start().expect("a private clickhouse-server");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    teiten::tls::certificates(w);
    let smtp = start_smtp(w);
    std::fs::write(w.join("directory.toml"), DIRECTORY).unwrap();
    std::fs::write(w.join("hook.token"), "hook-secret-token\n").unwrap();
    std::fs::write(w.join("dashboard.token"), "dashboard-token\n").unwrap();
    let hook = hook();
    let dash_port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{dash_port}");
    let cfg = format!(
        "{head}[exchange.cases]\nquestionnaire_url = \"{base}/q\"\ndirectory = \"{w}/directory.toml\"\n\
         link_secs = {LINK}\nremind_after_secs = {REMIND}\nescalate_after_secs = {ESCALATE}\n\
         interval_secs = 1\nwebhook_url = \"{hook}\"\nwebhook_token_file = \"{w}/hook.token\"\n\
         summary_to = [\"lead@teiten.test\"]\nsummary_after_secs = 0\n\n\
         [[exchange.reporter]]\nname = \"intake\"\ntoken_sha256 = \"{intake}\"\n\n\
         [[exchange.reporter]]\nname = \"av-console\"\ntoken_sha256 = \"{av}\"\n\n\
         [[exchange.reporter]]\nname = \"dashboard\"\ntoken_sha256 = \"{dash}\"\ncases = true\n",
        head = exchange_head(w, &smtp),
        w = w.display(),
        hook = hook.url,
        intake = token_hash("intake-token"),
        av = token_hash("av-token"),
        dash = token_hash("dashboard-token"),
    );
    let mut agg = Agg::start(&ch, DB, &cfg);
    let _dashboard = start_dashboard(&ch, w, dash_port, &agg);

    // The intake: clamd's VirusEvent spool and an EVE file.
    let spool = w.join("spool");
    let eve = w.join("eve.json");
    std::fs::write(w.join("intake.token"), "intake-token\n").unwrap();
    std::fs::write(
        w.join("intake.toml"),
        format!(
            "state_dir = \"{0}/state\"\npoll_ms = 50\n[aggregator]\nurl = \"{1}\"\n\
             token_file = \"{0}/intake.token\"\n[[eve]]\npath = \"{2}\"\n[clamav]\nspool = \"{3}\"\n",
            w.display(),
            agg.url,
            eve.display(),
            spool.display()
        ),
    )
    .unwrap();
    let mut intake = Intake {
        config: w.join("intake.toml"),
        log: w.join("intake.log"),
        child: None,
    };
    intake.start();
    let marker = "teiten planted sample, not a virus 77d2e1";
    let hex: String = marker.bytes().map(|b| format!("{b:02x}")).collect();
    let clamd = Clamd::start(
        &[("local.ndb", &format!("Teiten.Test.USB:0:*:{hex}\n"))],
        &format!(
            "{} clamav-event --spool {} --host pc-17.corp.teiten.test",
            teiten::bin("teiten-intake").display(),
            spool.display()
        ),
    )
    .unwrap();
    let usb = w.join("media/usb0");
    std::fs::create_dir_all(&usb).unwrap();
    std::fs::write(usb.join("invoice.exe"), format!("MZ..{marker}..")).unwrap();
    assert!(clamd.scan(&usb).unwrap().contains("FOUND"));
    // EVE's own form: 2026-12-01T10:00:00.000000+0000.
    let eve_time =
        teiten_dashboard::params::iso(teiten_store::time::now()).replace('Z', ".000000+0000");
    std::fs::write(
        &eve,
        "{\"timestamp\":\"EVE_TIME\",\"flow_id\":4711,\"event_type\":\"alert\",\
         \"src_ip\":\"203.0.113.9\",\"src_port\":443,\"dest_ip\":\"10.20.0.5\",\"dest_port\":50123,\
         \"proto\":\"TCP\",\"alert\":{\"action\":\"allowed\",\"gid\":1,\"signature_id\":2024792,\"rev\":3,\
         \"signature\":\"ET MALWARE test beacon\",\"category\":\"A Network Trojan was detected\",\
         \"severity\":1}}\n"
            .replace("EVE_TIME", &eve_time),
    )
    .unwrap();
    // The antivirus console's detections, through the API.
    file_report(
        &agg,
        "av-token",
        "pc-18.corp.teiten.test",
        "Win.Worm.Test in E:\\tools\\setup.exe",
    );
    file_report(
        &agg,
        "av-token",
        "pc-19.corp.teiten.test",
        "Win.Worm.Test in F:\\photos\\x.scr",
    );
    file_report(
        &agg,
        "av-token",
        "pc-99.corp.teiten.test",
        "Win.Worm.Test in C:\\temp\\y.exe",
    );

    // Each employee gets their request; the unknown host and the IDS alert alert at once.
    let to_tanaka = wait_mail(&smtp, w, "tanaka@", "Please answer", 0);
    assert!(
        to_tanaka.text.contains("Dear Tanaka Hanako")
            && to_tanaka.text.contains("Teiten.Test.USB.UNOFFICIAL in")
            && to_tanaka.text.contains("invoice.exe"),
        "{to_tanaka:#?}"
    );
    let to_suzuki = wait_mail(&smtp, w, "suzuki@", "Please answer", 0);
    let to_kato = wait_mail(&smtp, w, "kato@", "Please answer", 0);
    let unknown = wait_mail(&smtp, w, "csirt@", "pc-99", 0);
    assert!(
        unknown
            .text
            .contains("no employee in the directory for host pc-99"),
        "{unknown:#?}"
    );
    let ids = wait_mail(&smtp, w, "csirt@", "10.20.0.5", 0);
    assert!(
        ids.subject.contains("YELLOW") && ids.text.contains("ET MALWARE test beacon"),
        "{ids:#?}"
    );
    let (a, b_link, c_first) = (
        link_of(&to_tanaka, &base),
        link_of(&to_suzuki, &base),
        link_of(&to_kato, &base),
    );
    assert_ne!(a, b_link);
    assert_eq!(
        colour_of(&ch, "pc-17.corp.teiten.test"),
        "yellow",
        "before the answer"
    );

    let mut browser = Browser::start();
    // Tanaka: a company medium, scanned before it left the office: green, nobody alerted.
    let page = answer_in_browser(
        &mut browser,
        &a,
        &["owner-company", "places-office", "scanned-yes"],
        "it is the team's stick",
        "questionnaire-green",
    );
    assert!(page.contains("id=\"thanks\""), "{page}");
    let shown = browser.eval("document.querySelector('main').innerText");
    let shown = shown.as_str().unwrap();
    assert!(
        !shown.contains("green") && !shown.contains("yellow"),
        "the colour is not shown: {shown}"
    );
    assert_eq!(colour_of(&ch, "pc-17.corp.teiten.test"), "green");
    // Suzuki: a private medium used at home and at a customer's, not scanned: yellow, then
    // escalated to red for the customer site.
    let page = answer_in_browser(
        &mut browser,
        &b_link,
        &[
            "owner-private",
            "places-home",
            "places-customer",
            "scanned-no",
        ],
        "",
        "questionnaire-red",
    );
    assert!(page.contains("id=\"thanks\""), "{page}");
    assert_eq!(colour_of(&ch, "pc-18.corp.teiten.test"), "red");
    let alert = wait_mail(&smtp, w, "csirt@", "pc-18", 0);
    assert!(
        alert.subject.contains("RED")
            && alert
                .text
                .contains("usb-other-answers-are-yellow,usb-used-at-customer-escalates")
            && alert.text.contains("Suzuki Ichiro"),
        "{alert:#?}"
    );

    // The aggregator restarts: the loop goes on from the stored steps (Kato's history below
    // has each step once).
    agg.kill();
    agg.restart();

    // A link works once.
    browser.goto(&a);
    let again = browser.html();
    assert!(again.contains("was answered at"), "{again}");
    browser.screenshot("questionnaire-reused.png");
    // A forged token, and a token that is not one.
    for bad in [
        format!("{base}/q/{}", "ab".repeat(32)),
        format!("{base}/q/..%2F..%2Fetc"),
    ] {
        let r = ureq::get(&bad).call();
        let Err(ureq::Error::Status(404, resp)) = r else {
            panic!("{bad}: {r:?}")
        };
        assert!(resp.into_string().unwrap().contains("not valid"));
    }
    // Answers outside the choices: the form again with the question named, nothing stored.
    let r = ureq::post(&c_first).send_form(&[
        ("owner", "stolen"),
        ("places", "home"),
        ("scanned", "no"),
    ]);
    let Err(ureq::Error::Status(422, resp)) = r else {
        panic!("{r:?}")
    };
    let text = resp.into_string().unwrap();
    assert!(
        text.contains("`owner`: `stolen` is not one of its choices"),
        "{text}"
    );
    let r = ureq::post(&c_first).send_form(&[("owner", "company"), ("scanned", "no")]);
    assert!(matches!(r, Err(ureq::Error::Status(422, _))));
    assert_eq!(
        scalar(
            &ch,
            &format!("SELECT count() FROM {DB}.report_cases WHERE event = 'answered'")
        ),
        "2"
    );

    // Kato does not answer: a reminder with a new link, then the escalation to the manager
    // with the CSIRT in copy.
    let reminder = wait_mail(&smtp, w, "kato@", "Reminder", 0);
    let c_second = link_of(&reminder, &base);
    assert_ne!(c_second, c_first);
    let escalation = wait_mail(&smtp, w, "sato@", "Unanswered", 0);
    assert!(
        escalation.rcpt.contains("csirt@teiten.test")
            && escalation
                .text
                .contains("Kato Yui <kato@corp.teiten.test> (Engineering)"),
        "{escalation:#?}"
    );
    // The first link expires; the reminder's still opens.
    let first_request = scalar(
        &ch,
        &format!(
            "SELECT toUInt32(min(at)) FROM {DB}.report_cases WHERE event = 'sent' AND note = 'request' \
             AND actor LIKE '%kato%'"
        ),
    )
    .parse::<u64>()
    .unwrap();
    while teiten_store::time::now() < (first_request + LINK + 1) as i64 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = ureq::get(&c_first).call();
    let Err(ureq::Error::Status(410, resp)) = r else {
        panic!("{r:?}")
    };
    assert!(resp.into_string().unwrap().contains("expired"));
    browser.goto(&c_second);
    assert!(browser.html().contains("id=\"questionnaire\""));
    browser.screenshot("questionnaire-reminder.png");

    // The webhook got the three alerts, with its token and the report.
    let got = hook.got.lock().unwrap().clone();
    let hosts: BTreeMap<String, String> = got
        .iter()
        .map(|(v, _)| {
            (
                v["report"]["host"].as_str().unwrap_or("").to_owned(),
                v["colour"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        BTreeMap::from([
            ("10.20.0.5".to_owned(), "yellow".to_owned()),
            ("pc-18.corp.teiten.test".to_owned(), "red".to_owned()),
            ("pc-99.corp.teiten.test".to_owned(), "yellow".to_owned()),
        ]),
        "{got:#?}"
    );
    assert!(got
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some("Bearer hook-secret-token")));
    let b_hook = got
        .iter()
        .find(|(v, _)| v["report"]["host"] == "pc-18.corp.teiten.test")
        .unwrap();
    assert_eq!(b_hook.0["answers"]["places"], json!(["home", "customer"]));

    // An analyst overrides Kato's case; the history keeps every step with the reason.
    let r = ureq::post(&format!("{}/api/v1/cases/av-console/x/override", agg.url))
        .set("Authorization", "Bearer dashboard-token")
        .send_string(&json!({"colour": "green", "reason": "r", "analyst": "alice"}).to_string());
    assert!(matches!(r, Err(ureq::Error::Status(404, _))), "{r:?}");
    let kato_id = scalar(
        &ch,
        &format!("SELECT id FROM {DB}.internal_reports WHERE host = 'pc-19.corp.teiten.test'"),
    );
    let r = ureq::post(&format!(
        "{}/api/v1/cases/av-console/{kato_id}/override",
        agg.url
    ))
    .set("Authorization", "Bearer dashboard-token")
    .send_string(
        &json!({"colour": "green", "reason": "called Kato: a known test file", "analyst": "alice"})
            .to_string(),
    )
    .unwrap();
    assert_eq!(r.status(), 204);
    let r = ureq::post(&format!(
        "{}/api/v1/cases/av-console/{kato_id}/override",
        agg.url
    ))
    .set("Authorization", "Bearer av-token")
    .send_string(&json!({"colour": "red", "reason": "x", "analyst": "mallory"}).to_string());
    assert!(
        matches!(r, Err(ureq::Error::Status(403, _))),
        "a reporter without cases: {r:?}"
    );
    let history: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{}/api/v1/cases/av-console/{kato_id}", agg.url))
            .set("Authorization", "Bearer dashboard-token")
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let steps: Vec<String> = history["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["case_event"].as_str().unwrap(),
                s["note"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "opened:",
            "requested:request",
            "sent:request",
            "requested:reminder",
            "sent:reminder",
            "sent:escalation",
            "escalated:no answer after the reminder",
            "overridden:called Kato: a known test file",
        ],
        "{history:#}"
    );
    assert_eq!(colour_of(&ch, "pc-19.corp.teiten.test"), "green");

    // A second answer to Tanaka's case, as another aggregator taking the same link at the same
    // moment would store it: the first answer stands for every reader (colour, trends, no alert).
    scalar(
        &ch,
        &format!(
            "INSERT INTO {DB}.report_cases (reporter, id, version, at, event, colour, answers) \
             SELECT reporter, id, max(version) + 1, now(), 'answered', 'red', \
             '{{\"owner\":[\"other\"],\"places\":[\"other\"],\"scanned\":[\"unknown\"]}}' \
             FROM {DB}.report_cases WHERE event = 'answered' AND actor LIKE 'tanaka@%' \
             GROUP BY reporter, id"
        ),
    );
    std::thread::sleep(Duration::from_secs(2)); // two rounds of the loop

    // The analyst's pages: the case with its override form, then the monthly trends.
    let dash = base.clone();
    browser.goto(&format!("{dash}/analyst/trends"));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.set("#user", "alice");
    browser.set("#password", ANALYST_PASSWORD);
    browser.click("#submit");
    let unknown_id = scalar(
        &ch,
        &format!("SELECT id FROM {DB}.internal_reports WHERE host = 'pc-99.corp.teiten.test'"),
    );
    browser.goto(&format!(
        "{dash}/analyst/case?reporter=av-console&id={unknown_id}"
    ));
    let html = browser.html();
    assert!(
        html.contains("id=\"steps\"") && html.contains("no employee in the directory"),
        "{html}"
    );
    browser.set("#override select[name=colour]", "green");
    browser.set(
        "#override input[name=reason]",
        "the host was reimaged; a lab machine",
    );
    browser.screenshot("case-override-form.png");
    browser.click("#override-send");
    let html = browser.html();
    assert!(
        browser.url().contains("/analyst/case?reporter=av-console")
            && html.contains("overridden")
            && html.contains("the host was reimaged; a lab machine")
            && html.contains("<b class=\"triage-green\">green</b>"),
        "{html}"
    );
    assert_eq!(colour_of(&ch, "pc-99.corp.teiten.test"), "green");
    let by_alice = scalar(
        &ch,
        &format!(
            "SELECT actor FROM {DB}.report_cases WHERE event = 'overridden' AND id = '{unknown_id}'"
        ),
    );
    assert_eq!(by_alice, "alice", "the logged-in analyst overrides");

    // Every report counted once per month, by colour, source, department and answers.
    let this_month = teiten_exchange::cases::trends::Month::of(teiten_store::time::now());
    let period = format!("from={this_month}&to={this_month}");
    browser.goto(&format!("{dash}/analyst/trends?{period}"));
    browser.screenshot("trends.png");
    let table = |b: &mut Browser, key: &str| -> BTreeMap<String, u64> {
        let v = b.eval(&format!(
            "Array.from(document.querySelectorAll('table[data-key=\"{key}\"] tr[data-value]'))\
             .map(r => [r.dataset.value, Number(r.lastElementChild.innerText)])"
        ));
        v.as_array()
            .unwrap_or_else(|| panic!("{key}: {v}"))
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_u64().unwrap()))
            .collect()
    };
    let m = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    assert_eq!(
        table(&mut browser, "colour"),
        m(&[("green", 3), ("yellow", 1), ("red", 1)])
    );
    assert_eq!(
        table(&mut browser, "source"),
        m(&[("antivirus", 4), ("ids", 1)])
    );
    assert_eq!(
        table(&mut browser, "department"),
        m(&[("Sales", 2), ("Engineering", 2), ("", 1)])
    );
    assert_eq!(
        table(&mut browser, "answer:usb.owner"),
        m(&[
            ("company", 1),
            ("private", 1),
            ("customer", 0),
            ("other", 0),
            ("", 2)
        ]),
        "Kato and the unknown host did not answer"
    );
    assert_eq!(
        table(&mut browser, "answer:usb.places"),
        m(&[
            ("office", 1),
            ("home", 1),
            ("customer", 1),
            ("other", 0),
            ("", 2)
        ])
    );
    assert_eq!(
        table(&mut browser, "answer:usb.scanned"),
        m(&[("yes", 1), ("no", 1), ("unknown", 0), ("", 2)])
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('section svg').length"),
        json!(7),
        "a chart for each breakdown"
    );
    assert!(
        !mails(&smtp, w)
            .iter()
            .any(|m| m.subject.contains("pc-17") && m.rcpt.contains("csirt@")),
        "no alert for Tanaka's green case"
    );
    // The CSV, as the page links it.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let session = teiten::login::login(&agent, &dash, "alice", ANALYST_PASSWORD);
    let csv = agent
        .get(&format!("{dash}/analyst/trends.csv?{period}"))
        .set("Cookie", &session)
        .call()
        .unwrap();
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains(&format!(
            "internal-detections-{this_month}-{this_month}.csv"
        )));
    let csv = csv.into_string().unwrap();
    assert!(
        csv.starts_with("month,breakdown,value,label,reports\n")
            && csv.contains(&format!(
                "{this_month},answer:usb.places,customer,At a customer's or partner's site,1\n"
            )),
        "{csv}"
    );
    for bad in [
        "from=2026-13",
        "from=2027-01&to=2026-12",
        "from=2020-01&to=2026-12",
        "x=1",
    ] {
        let r = agent
            .get(&format!("{dash}/analyst/trends?{bad}"))
            .set("Cookie", &session)
            .call();
        assert!(
            matches!(r, Err(ureq::Error::Status(400, _))),
            "{bad}: {r:?}"
        );
    }
    let r = agent
        .get(&format!("{dash}/analyst/trends.csv?{period}"))
        .call()
        .unwrap();
    assert_eq!(
        (r.status(), r.header("location")),
        (303, Some("/login")),
        "the trends need a login"
    );

    // The monthly summary: last month's went out once by itself (the aggregator restarted in
    // between); this month's on request, with the same counts as the page.
    let last_month = this_month.prev();
    let summaries: Vec<Mail> = mails(&smtp, w)
        .into_iter()
        .filter(|m| m.rcpt.contains("lead@teiten.test"))
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert!(
        summaries[0]
            .subject
            .contains(&format!("Internal detections in {last_month}")),
        "{summaries:#?}"
    );
    let out = Command::new(teiten::bin("teiten-aggregator"))
        .arg("--config")
        .arg(&agg.config)
        .args(["report", "summary", "--month", &this_month.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = wait_mail(&smtp, w, "lead@", &format!("in {this_month}"), 0);
    for line in [
        "     3  green",
        "     1  red",
        "     4  antivirus",
        "     2  Engineering",
        "     1  At a customer's or partner's site",
        "     2  (not answered)",
    ] {
        assert!(summary.text.contains(line), "{line}: {summary:#?}");
    }
    assert!(summary
        .text
        .contains(&format!("{dash}/analyst/trends?from={this_month}")));

    // The trends API refuses strangers, reporters without cases and bad periods.
    let trends_url = format!("{}/api/v1/cases/trends", agg.url);
    for (token, query, status, says) in [
        ("nobody", "", 401, "unknown token"),
        ("av-token", "", 403, "cases = true"),
        (
            "dashboard-token",
            "?from=2026-13",
            400,
            "from: `2026-13` is not a month",
        ),
        (
            "dashboard-token",
            "?from=1999-01&to=2026-12",
            400,
            "at most 36 months",
        ),
        (
            "dashboard-token",
            "?month=2026-12",
            400,
            "unknown field `month`",
        ),
    ] {
        let r = ureq::get(&format!("{trends_url}{query}"))
            .set("Authorization", &format!("Bearer {token}"))
            .call();
        let Err(ureq::Error::Status(got, resp)) = r else {
            panic!("{token} {query}: {r:?}")
        };
        let body = resp.into_string().unwrap();
        assert!(
            got == status && body.contains(says),
            "{token} {query}: {got} {body}"
        );
    }
    // The loop's work in the aggregator's metrics (counted since the restart above).
    let m = agg.metrics();
    let value = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("teiten_aggregator_cases_{name}_total ")))
            .unwrap_or_else(|| panic!("no cases_{name}_total in\n{m}"))
            .parse()
            .unwrap()
    };
    assert!(value("rounds") > 5, "{m}");
    for name in [
        "opened",
        "requested",
        "escalated",
        "alerted",
        "summaries",
        "errors",
    ] {
        value(name);
    }

    // Each detection is one report and one case; no token in any log.
    assert_eq!(
        scalar(&ch, &format!("SELECT count() FROM {DB}.internal_reports")),
        "5"
    );
    assert_eq!(
        scalar(
            &ch,
            &format!("SELECT count() FROM {DB}.report_cases WHERE event = 'opened'")
        ),
        "5"
    );
    let token = c_second.rsplit('/').next().unwrap().to_owned();
    for log in [
        agg.log_text(),
        std::fs::read_to_string(w.join("dashboard.log")).unwrap(),
        intake.log_text(),
    ] {
        assert!(!log.contains(&token) && !log.contains("hook-secret-token"));
        assert!(!log.contains("smtp-secret-pw"));
    }
    intake.kill();
}
