//! The employee directory on a real LDAP server: Debian's slapd (started here with the stock
//! schemas and the entries below) answers the investigation loop's lookups. Employees are
//! found by host name and by address, over plain LDAP, StartTLS and LDAPS, with their
//! manager's address read from the manager's entry; an unknown host, a host two entries
//! claim, an entry without an address and a host written as a filter injection find nobody;
//! a wrong bind password and a stopped server are errors that say so, and a restarted
//! server answers again. End to end, the aggregator opens a case with the LDAP employee and
//! mails them; while slapd is down the new report waits (no case without the employee the
//! directory knows) and gets its case, once, when slapd is back.

mod aggregator_common;
mod cases_common;

use std::path::Path;
use std::time::{Duration, Instant};

use aggregator_common::{token_hash, Agg};
use cases_common::{exchange_head, file_report, scalar, start_smtp, wait_mail};
use teiten::clickhouse::Server;
use teiten::slapd::Slapd;
use teiten_exchange::cases::{Directory, Found, LdapConfig, Person};

const DB: &str = "t_cases_ldap";
const BIND_DN: &str = "cn=teiten,ou=services,dc=corp,dc=example";
const BIND_PASSWORD: &str = "ldap-bind-secret";
const PEOPLE: &str = "ou=people,dc=corp,dc=example";

/// `host` (cosine) is allowed on an inetOrgPerson entry by the auxiliary `extensibleObject`,
/// `ipHostNumber` (nis) by `ipHost`.
const LDIF: &str = "
dn: ou=people,dc=corp,dc=example
objectClass: organizationalUnit
ou: people

dn: ou=services,dc=corp,dc=example
objectClass: organizationalUnit
ou: services

dn: cn=teiten,ou=services,dc=corp,dc=example
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: teiten
userPassword: ldap-bind-secret

dn: uid=sato,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
uid: sato
cn: Sato Jiro
sn: Sato
mail: sato@corp.teiten.test
departmentNumber: Sales

dn: uid=tanaka,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
objectClass: ipHost
objectClass: extensibleObject
uid: tanaka
cn: Tanaka Hanako
sn: Tanaka
mail: tanaka@corp.teiten.test
departmentNumber: Sales
manager: uid=sato,ou=people,dc=corp,dc=example
host: pc-17.corp.teiten.test
ipHostNumber: 10.20.0.17
ipHostNumber: 2001:db8::17

dn: uid=suzuki,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: suzuki
cn: Suzuki Ichiro
sn: Suzuki
mail: suzuki@corp.teiten.test
departmentNumber: Engineering
manager: uid=left-the-company,ou=people,dc=corp,dc=example
host: pc-18.corp.teiten.test

dn: uid=kato,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: kato
cn: Kato Yui
sn: Kato
mail: kato@corp.teiten.test
host: pc-shared.corp.teiten.test

dn: uid=yamada,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: yamada
cn: Yamada Taro
sn: Yamada
mail: yamada@corp.teiten.test
host: pc-shared.corp.teiten.test

dn: uid=ito,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: ito
cn: Ito Ken
sn: Ito
host: pc-20.corp.teiten.test
";

/// The directory of `[exchange.cases.ldap]` with `keys` (url first), checked.
fn directory(keys: &str) -> Result<Directory, String> {
    let c: LdapConfig = toml::from_str(&format!(
        "{keys}\nbase_dn = \"{PEOPLE}\"\ntimeout_secs = 5\n"
    ))
    .map_err(|e| e.to_string())?;
    c.check().map(Directory::Ldap).map_err(|e| e.to_string())
}

fn bound(url: &str, w: &Path, extra: &str) -> Directory {
    directory(&format!(
        "url = \"{url}\"\nbind_dn = \"{BIND_DN}\"\nbind_password_file = \"{}\"\n{extra}",
        w.join("ldap.password").display()
    ))
    .unwrap()
}

async fn person(d: &Directory, host: &str) -> Person {
    match d.lookup(host).await {
        Ok(Found::Employee(p)) => p,
        other => panic!("{host}: {other:?}"),
    }
}

async fn nobody(d: &Directory, host: &str) -> String {
    match d.lookup(host).await {
        Ok(Found::Nobody(why)) => why,
        other => panic!("{host}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_resolve_to_ldap_employees() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    teiten::tls::certificates(w);
    std::fs::write(w.join("ldap.password"), format!("{BIND_PASSWORD}\n")).unwrap();
    std::fs::write(w.join("wrong.password"), "not-the-password\n").unwrap();
    let mut slapd = Slapd::start(LDIF, Some(w)).expect("a private slapd");
    let d = bound(&slapd.url(), w, "");

    // By name (case and trailing dot as DNS has them), by address (in any spelling).
    let tanaka = person(&d, "PC-17.corp.teiten.test.").await;
    assert_eq!(
        tanaka,
        Person {
            uid: "tanaka".into(),
            name: "Tanaka Hanako".into(),
            email: "tanaka@corp.teiten.test".into(),
            department: "Sales".into(),
            manager_email: "sato@corp.teiten.test".into(),
        }
    );
    assert_eq!(person(&d, "10.20.0.17").await, tanaka);
    assert_eq!(person(&d, "2001:DB8:0:0::17").await, tanaka);
    // A manager DN that is not in the directory: no manager's address.
    let suzuki = person(&d, "pc-18.corp.teiten.test").await;
    assert_eq!(
        (suzuki.uid.as_str(), suzuki.manager_email.as_str()),
        ("suzuki", "")
    );

    // Nobody, and why.
    assert_eq!(
        nobody(&d, "pc-99.corp.teiten.test").await,
        "no employee in the directory for host pc-99.corp.teiten.test"
    );
    let shared = nobody(&d, "pc-shared.corp.teiten.test").await;
    assert!(
        shared.contains("uid=kato,ou=people,dc=corp,dc=example")
            && shared.contains("uid=yamada,ou=people,dc=corp,dc=example")
            && shared.ends_with("nobody is asked"),
        "{shared}"
    );
    assert_eq!(
        nobody(&d, "pc-20.corp.teiten.test").await,
        "the directory entry uid=ito,ou=people,dc=corp,dc=example of host \
         pc-20.corp.teiten.test has no mail"
    );
    // Filter syntax in a host is a literal: without the escaping each would match every
    // entry with a host.
    for injection in ["*)(uid=*", "*", "pc-1*", "x)(|(objectClass=*"] {
        assert!(
            nobody(&d, injection)
                .await
                .starts_with("no employee in the directory"),
            "{injection}"
        );
    }
    // Anonymous: this directory lets it read nothing, an error (the report waits).
    let anonymous = directory(&format!("url = \"{}\"", slapd.url())).unwrap();
    let e = anonymous
        .lookup("pc-17.corp.teiten.test")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("looking up host pc-17.corp.teiten.test: LDAP operation result: rc=50 (insufficientAccessRights)"),
        "{e}"
    );

    // StartTLS and LDAPS with the CA file; without it the certificate is not trusted.
    let ca = format!("ca_file = \"{}\"", w.join("ca.pem").display());
    let starttls = bound(&slapd.url(), w, &format!("starttls = true\n{ca}"));
    assert_eq!(person(&starttls, "10.20.0.17").await, tanaka);
    let ldaps = bound(&slapd.ldaps_url(), w, &ca);
    assert_eq!(person(&ldaps, "10.20.0.17").await, tanaka);
    let untrusted = bound(&slapd.ldaps_url(), w, "");
    let e = untrusted
        .lookup("10.20.0.17")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "the LDAP directory {}: connecting: ",
            slapd.ldaps_url()
        )) && e.contains("certificate"),
        "{e}"
    );

    // A wrong password: the bind is refused, and the error says so (not the password).
    let wrong = directory(&format!(
        "url = \"{}\"\nbind_dn = \"{BIND_DN}\"\nbind_password_file = \"{}\"",
        slapd.url(),
        w.join("wrong.password").display()
    ))
    .unwrap();
    let e = wrong.lookup("10.20.0.17").await.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "the LDAP directory {}: binding as {BIND_DN}: ",
            slapd.url()
        )) && e.contains("invalidCredentials"),
        "{e}"
    );
    assert!(!e.contains("not-the-password") && !format!("{wrong:?}").contains("not-the"));

    // Every lookup closed its connection, also those that failed: slapd logs a close for
    // each connection it accepted.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = slapd.log();
        let open: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" ACCEPT from "))
            .filter_map(|l| l.split(' ').find(|t| t.starts_with("conn=")))
            .filter(|conn| {
                !log.lines()
                    .any(|l| l.contains(&format!("{conn} fd=")) && l.contains(" closed"))
            })
            .collect();
        if open.is_empty() {
            assert!(log.matches(" ACCEPT from ").count() > 15, "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "still open: {open:?}\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // slapd stopped: an error (quickly: the port refuses); started again: answers.
    slapd.stop();
    let start = Instant::now();
    let e = d.lookup("10.20.0.17").await.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("the LDAP directory {}: connecting: ", slapd.url())),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    slapd.restart().unwrap();
    assert_eq!(person(&d, "pc-17.corp.teiten.test").await, tanaka);
}

fn opened(ch: &Server, host: &str) -> String {
    scalar(
        ch,
        &format!(
            "SELECT concat(toString(count()), '|', any(employee), '|', any(manager), '|', \
             any(department), '|', any(note)) FROM {DB}.report_cases WHERE event = 'opened' AND \
             (reporter, id) IN (SELECT reporter, id FROM {DB}.internal_reports WHERE host = '{host}')"
        ),
    )
}

#[test]
fn cases_open_with_the_ldap_employee_and_wait_for_the_directory() {
    let ch = Server::start().expect("a private clickhouse-server");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let smtp = start_smtp(w);
    std::fs::write(w.join("ldap.password"), format!("{BIND_PASSWORD}\n")).unwrap();
    let mut slapd = Slapd::start(LDIF, Some(w)).expect("a private slapd");
    let cfg = format!(
        "{head}[exchange.cases]\nquestionnaire_url = \"http://127.0.0.1:9/q\"\ninterval_secs = 1\n\n\
         [exchange.cases.ldap]\nurl = \"{url}\"\nstarttls = true\nca_file = \"{w}/ca.pem\"\n\
         bind_dn = \"{BIND_DN}\"\nbind_password_file = \"{w}/ldap.password\"\n\
         base_dn = \"{PEOPLE}\"\ntimeout_secs = 3\n\n\
         [[exchange.reporter]]\nname = \"av-console\"\ntoken_sha256 = \"{av}\"\n",
        head = exchange_head(w, &smtp),
        url = slapd.url(),
        w = w.display(),
        av = token_hash("av-token"),
    );
    let agg = Agg::start(&ch, DB, &cfg);

    // The employee and their manager come from LDAP.
    file_report(&agg, "av-token", "10.20.0.17", "Win.Worm.Test in E:\\a.exe");
    let request = wait_mail(&smtp, w, "tanaka@", "Please answer", 0);
    assert!(request.text.contains("Dear Tanaka Hanako"), "{request:#?}");
    assert_eq!(
        opened(&ch, "10.20.0.17"),
        "1|tanaka|sato@corp.teiten.test|Sales|"
    );
    // Two entries claim the host: nobody is asked, the CSIRT is alerted.
    file_report(
        &agg,
        "av-token",
        "pc-shared.corp.teiten.test",
        "Win.Worm.Test in F:\\b.exe",
    );
    let alert = wait_mail(&smtp, w, "csirt@", "pc-shared", 0);
    assert!(
        alert
            .text
            .contains("no employee in the directory for host pc-shared"),
        "{alert:#?}"
    );
    let shared = opened(&ch, "pc-shared.corp.teiten.test");
    assert!(
        shared.starts_with("1||||host pc-shared.corp.teiten.test is uid=")
            && shared.ends_with("'s in the directory: nobody is asked"),
        "{shared}"
    );

    // slapd down: the report waits, without a case, and the rounds say why.
    slapd.stop();
    file_report(
        &agg,
        "av-token",
        "pc-18.corp.teiten.test",
        "Win.Worm.Test in G:\\c.exe",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agg.log_text().contains("left for the next round") {
        assert!(Instant::now() < deadline, "{}", agg.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2)); // more rounds
    assert!(opened(&ch, "pc-18.corp.teiten.test").starts_with("0|"));
    let log = agg.log_text();
    assert!(
        log.contains(&format!("the LDAP directory {}: connecting", slapd.url())),
        "{log}"
    );
    // Back: the case is opened once, with the employee.
    slapd.restart().unwrap();
    let request = wait_mail(&smtp, w, "suzuki@", "Please answer", 0);
    assert!(request.text.contains("Dear Suzuki Ichiro"), "{request:#?}");
    std::thread::sleep(Duration::from_secs(2)); // more rounds
    assert_eq!(
        opened(&ch, "pc-18.corp.teiten.test"),
        "1|suzuki||Engineering|"
    );
    assert_eq!(
        scalar(
            &ch,
            &format!("SELECT count() FROM {DB}.report_cases WHERE event = 'opened'")
        ),
        "3"
    );
    let log = agg.log_text();
    assert!(
        log.contains("LDAP ldap://127.0.0.1:"),
        "the directory in the start line"
    );
    assert!(!log.contains(BIND_PASSWORD) && !log.contains("smtp-secret-pw"));
}
