//! Shared by the dashboard's ClickHouse tests: a private ClickHouse 18.16 with the aggregator's
//! schema and generated data, the app over it, and request helpers driving the router with
//! `oneshot` (no socket).
#![allow(dead_code)] // Each test file uses a different part.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use teiten::clickhouse::Server;
use teiten_dashboard::testdata::Synth;
use teiten_dashboard::{app, AppState, Config};
use teiten_store::schema::{create_sql, Layout};
use tower::ServiceExt;

pub(crate) const DB: &str = "dash";
pub(crate) const PASSWORD: &str = "s3cret analyst";

/// A `[reports]` section naming an aggregator nobody listens on (the discard port): every
/// request to it fails to connect.
pub(crate) const REPORTS_UNREACHABLE: &str =
    "[reports]\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"{dir}/reports-token\"\ntimeout_secs = 5\n";

/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;

pub(crate) struct Env {
    pub(crate) ch: Server,
    pub(crate) synth: Synth,
    pub(crate) state: Arc<AppState>,
    pub(crate) app: Router,
}

/// Starts ClickHouse, applies the aggregator's schema, loads `events` events over the last 31
/// days from 4 sensors plus a surge on TCP port 8728 in the last 20 hours, and builds the app.
pub(crate) fn start(events: u64) -> Env {
    start_with(events, "")
}

/// [`start`] with more config text (sections after the others').
pub(crate) fn start_with(events: u64, extra: &str) -> Env {
    let ch =
        Server::start().expect("a private clickhouse-server (apt-get install clickhouse-server)");
    ch.query_all(create_sql(DB, &Layout::Single))
        .expect("the aggregator's schema");
    let now = teiten_dashboard::now();
    let synth = Synth::month(DB, now, events, 7);
    ch.query_all(synth.load_sql())
        .expect("sensors, sensor reports and events");
    ch.query(&synth.surge_sql(8728, 30_000, 3_000, 20))
        .expect("surge");
    let hash = teiten_dashboard::auth::hash_password(PASSWORD).unwrap();
    // The dashboard's reporter token, for an `extra` `[reports]` section (`token_file =
    // "<dir>/reports-token"`, see [`REPORTS_UNREACHABLE`]).
    std::fs::write(ch.dir().join("reports-token"), "dashboard-token\n").unwrap();
    let toml = format!(
        "[clickhouse]\nurl = \"{}\"\ndatabase = \"{DB}\"\n\n[groups]\nnorth = [\"sapporo-1\", \"osaka-1\"]\n\n\
         [analyst.users]\nalice = \"{hash}\"\n\n{}",
        ch.url(),
        extra.replace("{dir}", &ch.dir().display().to_string()),
    );
    let settings = Config::parse(&toml, "test").unwrap().validate().unwrap();
    teiten_dashboard::chart::load_font(&settings.config.font).expect("fonts-dejavu-core");
    let client = teiten_dashboard::client(&settings);
    let mut state = AppState::new(settings.clone(), client);
    if let Some(r) = &settings.config.reports {
        state = state.with_aggregator(teiten_dashboard::reports::Aggregator::load(r).unwrap());
    }
    let state = Arc::new(state);
    let app = app(state.clone());
    Env {
        ch,
        synth,
        state,
        app,
    }
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `Set-Cookie` value for a cookie name (`name=value`).
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap_or("").to_owned())
    }
}

pub(crate) async fn request(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.expect("infallible router");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) async fn get(app: &Router, uri: &str, cookie: Option<&str>) -> Answer {
    let mut b = Request::get(uri);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    request(app, b.body(Body::empty()).unwrap()).await
}

pub(crate) async fn post_form(
    app: &Router,
    uri: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Answer {
    let mut b = Request::post(uri).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    let body = serde_urlencoded::to_string(form).unwrap();
    request(app, b.body(Body::from(body)).unwrap()).await
}

/// One number from a ClickHouse query.
pub(crate) fn count(ch: &Server, sql: &str) -> f64 {
    let out = ch.query(sql).unwrap_or_else(|e| panic!("{e}"));
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number from `{sql}`: {out:?}"))
}

/// The value of `name="csrf" value="..."` in a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[i..].split('"').next().unwrap().to_owned()
}

/// A logged-in analyst's session cookie (`teiten_session=...`), made the way the login handler
/// makes one; the login itself is tested in `analyst.rs`.
pub(crate) fn analyst_cookie(env: &Env) -> String {
    format!(
        "{}={}",
        teiten_dashboard::auth::SESSION_COOKIE,
        env.state.sessions.create("alice")
    )
}

/// Start of the current UTC day: where public data ends by default.
pub(crate) fn today() -> i64 {
    teiten_dashboard::now() / DAY * DAY
}
