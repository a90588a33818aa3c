//! Logging in to the dashboard the way a browser does (the form, its CSRF cookie, the POST),
//! and filing a report through the analyst's form, for the end-to-end tests.

/// The `name=value` part of the `Set-Cookie` header of `resp` that sets cookie `name`.
pub fn cookie(resp: &ureq::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    resp.all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&prefix))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// Logs in to the dashboard at `url` (`http://host:port`) as `user` with `agent` (which
/// must not follow redirects): the login form for its CSRF cookie, then the POST with the
/// cookie and its token. Returns the session cookie (`teiten_session=...`); panics, naming
/// the step, unless the login answers 303 with one.
pub fn login(agent: &ureq::Agent, url: &str, user: &str, password: &str) -> String {
    let form = agent
        .get(&format!("{url}/login"))
        .call()
        .unwrap_or_else(|e| panic!("the login form of {url}: {e}"));
    let csrf_cookie = cookie(&form, "teiten_login_csrf")
        .unwrap_or_else(|| panic!("the login form of {url} sets no CSRF cookie"));
    let token = csrf_cookie
        .trim_start_matches("teiten_login_csrf=")
        .to_owned();
    let res = agent
        .post(&format!("{url}/login"))
        .set("Cookie", &csrf_cookie)
        .send_form(&[("user", user), ("password", password), ("csrf", &token)])
        .unwrap_or_else(|e| panic!("{user}'s login at {url} failed: {e}"));
    assert_eq!(res.status(), 303, "{user}'s login at {url} redirects");
    cookie(&res, "teiten_session")
        .unwrap_or_else(|| panic!("{user}'s login at {url} sets no session cookie"))
}

/// Files a report through the analyst's form at `url` the way a browser does: the form's
/// `csrf` token, the session cookie `session` (from [`login`]), the report's own `fields`
/// (host, category, description, addresses, ports) and the fields every test files alike
/// (detected 2026-11-30T08:15, source staff, protocol tcp, TLP amber). Returns the answer
/// as `ureq` gives it (a 4xx answer is an `Err` the caller reads the page of).
#[allow(clippy::result_large_err)] // ureq's own Result, unchanged
pub fn file_report(
    agent: &ureq::Agent,
    url: &str,
    session: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> Result<ureq::Response, ureq::Error> {
    let mut form = vec![
        ("csrf", csrf),
        ("detected", "2026-11-30T08:15"),
        ("source", "staff"),
        ("protocol", "tcp"),
        ("tlp", "amber"),
    ];
    form.extend_from_slice(fields);
    agent
        .post(&format!("{url}/analyst/reports"))
        .set("cookie", session)
        .send_form(&form)
}
