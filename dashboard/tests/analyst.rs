//! The analyst view against a real ClickHouse: login (argon2, CSRF, cookie flags), protected
//! pages, sensor health, the paged raw event search, logout.

mod common;

use common::{csrf_of, get, post_form, start_with, PASSWORD, REPORTS_UNREACHABLE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_protects_the_analyst_pages() {
    let env = start_with(50_000, REPORTS_UNREACHABLE);
    let app = &env.app;

    for uri in [
        "/analyst",
        "/analyst/events",
        "/analyst/events?src=1.2.3.4",
        "/analyst/exchange",
        "/analyst/address?addr=1.2.3.4",
    ] {
        let a = get(app, uri, None).await;
        assert_eq!(a.status, 303, "{uri}");
        assert_eq!(a.headers["location"], "/login");
    }
    let forged = get(app, "/analyst", Some("teiten_session=0123456789abcdef")).await;
    assert_eq!(forged.status, 303);

    // The login form sets a CSRF cookie and carries the same token.
    let form = get(app, "/login", None).await;
    assert_eq!(form.status, 200);
    let token = csrf_of(&form.text());
    let csrf_cookie = form.cookie("teiten_login_csrf").unwrap();
    assert_eq!(csrf_cookie, format!("teiten_login_csrf={token}"));

    // Without the token, or with another one: 403, even with the right password.
    let no = post_form(
        app,
        "/login",
        None,
        &[("user", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(no.status, 403);
    let wrong = post_form(
        app,
        "/login",
        Some(&csrf_cookie),
        &[("user", "alice"), ("password", PASSWORD), ("csrf", "00")],
    )
    .await;
    assert_eq!(wrong.status, 403);
    // Wrong password, unknown user: 401 and no session.
    for (user, pw) in [("alice", "guess"), ("mallory", PASSWORD)] {
        let a = post_form(
            app,
            "/login",
            Some(&csrf_cookie),
            &[("user", user), ("password", pw), ("csrf", &token)],
        )
        .await;
        assert_eq!(a.status, 401, "{user}");
        assert!(a.text().contains("Wrong user name or password"));
        assert!(a.cookie("teiten_session").is_none());
    }

    let ok = post_form(
        app,
        "/login",
        Some(&csrf_cookie),
        &[("user", "alice"), ("password", PASSWORD), ("csrf", &token)],
    )
    .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.headers["location"], "/analyst");
    let set = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("teiten_session="))
        .unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    let session = ok.cookie("teiten_session").unwrap();

    // Sensor health.
    let home = get(app, "/analyst", Some(&session)).await;
    assert_eq!(home.status, 200);
    let text = home.text();
    for id in ["tokyo-1", "osaka-1", "sapporo-1", "naha-1"] {
        assert!(text.contains(&format!(">{id}<")), "{id} in {text}");
    }
    assert!(text.contains(">reporting<"));
    assert!(text.contains(">4096<"), "spool backlog of tokyo-1");
    assert_eq!(home.headers["cache-control"], "no-store");

    // A report stored twice (an INSERT whose answer was lost, sent again to a server that
    // does not deduplicate) counts once.
    let now = (env.state.clock)();
    let health = teiten_dashboard::analyst::sensor_health(&env.state.reader, now)
        .await
        .unwrap();
    assert!(
        health.iter().any(|h| h.events_per_sec > 0.0),
        "events in the last hour: {health:?}"
    );
    env.ch
        .query(&format!(
            "INSERT INTO {db}.sensor_reports SELECT * FROM {db}.sensor_reports",
            db = common::DB
        ))
        .unwrap();
    let again = teiten_dashboard::analyst::sensor_health(&env.state.reader, now)
        .await
        .unwrap();
    assert_eq!(again, health);

    // Event search by source address and port, paged.
    let src = env
        .ch
        .query(&format!(
            "SELECT replaceRegexpOne(IPv6NumToString(src), '^::ffff:', '') AS s FROM {}.scan_events \
             WHERE dport = 23 GROUP BY s ORDER BY count() DESC LIMIT 1",
            common::DB
        ))
        .unwrap();
    let src = src.trim().to_owned();
    let n = common::count(
        &env.ch,
        &format!(
            "SELECT count() FROM {}.scan_events WHERE src = toFixedString(IPv6StringToNum('::ffff:{src}'), 16) \
             AND ts >= now() - 86400",
            common::DB
        ),
    );
    assert!(
        n >= 2.0,
        "the busiest source has events in the last day ({n})"
    );
    let page1 = get(
        app,
        &format!("/analyst/events?src={src}&rows=1"),
        Some(&session),
    )
    .await;
    assert_eq!(page1.status, 200, "{}", page1.text());
    let t1 = page1.text();
    assert!(t1.contains(&format!(">{src}<")), "{t1}");
    assert!(t1.contains("198.18."), "analysts see the sensor address");
    assert!(t1.contains("id=\"next\""));
    assert_eq!(t1.matches("<tr><td class=\"l\">").count(), 1);
    let page2 = get(
        app,
        &format!("/analyst/events?src={src}&rows=1&page=2"),
        Some(&session),
    )
    .await;
    assert!(page2.text().contains("id=\"prev\""));
    assert_ne!(page1.text(), page2.text());
    let by_port = get(app, "/analyst/events?port=8728&rows=5", Some(&session)).await;
    assert_eq!(by_port.text().matches(">8728<").count(), 5);
    let bad = get(app, "/analyst/events?src=300.1.1.1", Some(&session)).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("not an IPv4 or IPv6 address"));

    // The exchange: partner-days, imports and internal reports as the aggregator stored them.
    let db = common::DB;
    env.ch
        .query(&format!(
            "INSERT INTO {db}.exchange_log VALUES ('kr-cert', toYYYYMMDD(today()), 1, 'f.xml', 'ab', 12, 3, 1, \
             4096, now(), 'failed', 2, 'https://kr.example answered 503', toUInt64(toUInt32(now())) * 1000000), \
             ('au-cert', toYYYYMMDD(today()), 1, 'g.xml', 'cd', 5, 1, 0, 999, now(), 'delivered', 1, '', \
             toUInt64(toUInt32(now())) * 1000000)"
        ))
        .unwrap();
    env.ch
        .query(&format!(
            "INSERT INTO {db}.iodef_imports VALUES ('ab12', 'kr-cert', 'kr-<b>.xml', now(), 2, \
             'quarantined', 'error: /IODEF-Document (line 3, column 1): Incident is required', 0, 0)"
        ))
        .unwrap();
    env.ch
        .query(&format!(
            "INSERT INTO {db}.iodef_indicators VALUES ('cd34', 0, 'au-cert', 'au:77', 'amber', \
             'scanning', now(), 'source', '{src}', toFixedString(IPv6StringToNum('::ffff:{src}'), 16), 6, '23')"
        ))
        .unwrap();
    env.ch
        .query(&format!(
            "INSERT INTO {db}.internal_reports VALUES ('r1', now(), now(), 'ids-1', 'ids', '192.0.2.10', \
             'intrusion', 'web shell', ['{src}'], ['AU'], [22], 6, [], [], 'amber', 'red', 'intrusion-is-red')"
        ))
        .unwrap();
    let ex = get(app, "/analyst/exchange", Some(&session)).await;
    assert_eq!(ex.status, 200, "{}", ex.text());
    let t = ex.text();
    assert!(
        t.contains(">kr-cert<") && t.contains("<b>failed</b>") && t.contains("answered 503"),
        "{t}"
    );
    assert!(t.contains("<b>delivered</b>"), "{t}");
    assert!(t.contains("kr-&lt;b&gt;.xml"), "names are escaped: {t}");
    assert!(t.contains("Incident is required"), "{t}");
    assert!(
        t.contains("triage-red") && t.contains("intrusion-is-red"),
        "{t}"
    );
    assert!(t.contains(&format!("/analyst/address?addr={src}")), "{t}");
    let addr = get(app, &format!("/analyst/address?addr={src}"), Some(&session)).await;
    assert_eq!(addr.status, 200, "{}", addr.text());
    let t = addr.text();
    assert!(
        t.contains("packets to") && t.contains("au:77") && t.contains(">r1<"),
        "{t}"
    );
    let none = get(app, "/analyst/address?addr=2001:db8::99", Some(&session)).await;
    assert!(none.text().contains("never saw 2001:db8::99"));
    let bad = get(app, "/analyst/address?addr=300.1.1.1", Some(&session)).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("not an IPv4 or IPv6 address"));
    let unknown = get(app, "/analyst/address?ip=1.2.3.4", Some(&session)).await;
    assert_eq!(unknown.status, 400);

    // The daily files and the report form come through the aggregator's API (`[reports]`;
    // tests/exchange.rs drives them against a real aggregator): here it cannot be reached.
    let day = env.ch.query("SELECT toYYYYMMDD(today())").unwrap();
    let day = day.trim();
    let ex = get(app, "/analyst/exchange", Some(&session)).await.text();
    let link = format!("/analyst/exchange/file?partner=kr-cert&amp;day={day}");
    assert!(ex.contains(&link), "{ex}");
    let uri = format!("/analyst/exchange/file?partner=kr-cert&day={day}");
    let file = get(app, &uri, Some(&session)).await;
    assert_eq!(file.status, 503, "{}", file.text());
    assert!(
        file.text().contains("aggregator unavailable, try again"),
        "{}",
        file.text()
    );
    assert_eq!(get(app, &uri, None).await.status, 303, "needs a login");
    let traversal = get(
        app,
        &format!("/analyst/exchange/file?partner=..%2Fetc&day={day}"),
        Some(&session),
    )
    .await;
    assert_eq!(traversal.status, 400, "{}", traversal.text());
    let bad = get(
        app,
        "/analyst/exchange/file?partner=kr-cert&day=x",
        Some(&session),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("partner, day"), "{}", bad.text());

    // Without [reports], the page offers neither the form nor the downloads.
    let mut settings = env.state.settings.clone();
    settings.config.reports = None;
    let client = teiten_dashboard::client(&settings);
    let bare_state = std::sync::Arc::new(teiten_dashboard::AppState::new(settings, client));
    let bare_cookie = format!(
        "{}={}",
        teiten_dashboard::auth::SESSION_COOKIE,
        bare_state.sessions.create("alice")
    );
    let bare = teiten_dashboard::app(bare_state);
    let plain = get(&bare, "/analyst/exchange", Some(&bare_cookie)).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert!(
        !plain.text().contains("report-form") && !plain.text().contains("/analyst/exchange/file"),
        "{}",
        plain.text()
    );
    assert_eq!(get(&bare, &uri, Some(&bare_cookie)).await.status, 404);

    // Filing an internal report: the form on the exchange page, CSRF-protected, the fields
    // checked here first; the aggregator unavailable keeps the form as sent.
    assert!(ex.contains("id=\"report-form\""), "{ex}");
    let form_csrf = csrf_of(&ex);
    let report = |csrf: &str, addresses: &str| {
        let session = session.clone();
        let form = [
            ("csrf", csrf.to_owned()),
            ("detected", "2026-11-30T08:15".into()),
            ("source", "staff".into()),
            ("host", "192.0.2.44".into()),
            ("category", "intrusion".to_owned()),
            ("description", "brute force on <ssh>".into()),
            ("addresses", addresses.to_owned()),
            ("ports", "22, 2222".into()),
            ("protocol", "tcp".into()),
            ("tlp", "amber".into()),
        ];
        async move {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(app, "/analyst/reports", Some(&session), &pairs).await
        }
    };
    assert_eq!(report("wrong", "203.0.113.7").await.status, 403);
    let bad = report(&form_csrf, "203.0.113.300").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("addresses: `203.0.113.300`"),
        "{}",
        bad.text()
    );
    let kept = report(&form_csrf, "203.0.113.7 198.51.100.1").await;
    assert_eq!(kept.status, 503, "{}", kept.text());
    let t = kept.text();
    assert!(t.contains("aggregator unavailable, try again"), "{t}");
    assert!(
        t.contains("id=\"report-form\"")
            && t.contains("value=\"203.0.113.7 198.51.100.1\"")
            && t.contains("brute force on &lt;ssh&gt;")
            && t.contains("<option value=\"intrusion\" selected>"),
        "the form is kept as sent: {t}"
    );

    // Logout needs the session's CSRF token.
    let csrf = csrf_of(&home.text());
    let refused = post_form(app, "/logout", Some(&session), &[("csrf", "nope")]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(get(app, "/analyst", Some(&session)).await.status, 200);
    let out = post_form(app, "/logout", Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(get(app, "/analyst", Some(&session)).await.status, 303);
}
