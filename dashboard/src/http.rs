//! The HTTP app: public pages, charts, the JSON/CSV API, login and the analyst view.
//! [`app`] builds the router so that tests drive it without a socket.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::analyst::{self, RawSearch, Search};
use crate::auth::{self, Session, Sessions, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::cache::Cache;
use crate::chart::{self, Format};
use crate::config::Settings;
use crate::data::{GraphData, PortData, Reader, Trends};
use crate::error::HttpError;
use crate::export;
use crate::html::{self, esc, page};
use crate::metrics::{self, Metrics};
use crate::params::{iso, GraphQuery, Public, RawParams};

/// The API documentation served at `/api`.
const API_DOC: &str = include_str!("../API.md");

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    /// The validated config.
    pub settings: Settings,
    /// ClickHouse.
    pub reader: Reader,
    /// Analyst sessions.
    pub sessions: Sessions,
    /// Login throttling.
    login: auth::LoginGuard,
    graphs: Cache<GraphData>,
    images: Cache<Vec<u8>>,
    /// The latest trends computed in the background, with the time they were computed: the
    /// analysts' (up to now) and the public ones (up to the public end).
    latest_trends: std::sync::RwLock<Option<(i64, Arc<Trends>)>>,
    latest_public_trends: std::sync::RwLock<Option<(i64, Arc<Trends>)>>,
    sensors: Cache<BTreeSet<String>>,
    /// The clock (Unix seconds); tests may fix it.
    pub clock: fn() -> i64,
    /// Filing internal reports from the exchange page (`analyst.aggregator_config`).
    filing: Option<Arc<crate::exchange::Filing>>,
    /// What `/metrics` shows.
    pub(crate) metrics: Arc<Metrics>,
}

pub use teiten_store::time::now;

impl AppState {
    /// State over a ClickHouse client (database from the config).
    pub fn new(settings: Settings, client: clickhouse::Client) -> AppState {
        let ttl = settings.cache_ttl;
        let max = settings.config.cache.max_entries;
        let reader = Reader::new(client, &settings.config.clickhouse.database);
        let sessions = Sessions::new(std::time::Duration::from_secs(
            settings.config.analyst.session_secs,
        ));
        let metrics = Arc::new(Metrics::new());
        let counted = |name| metrics.cache_counters(name);
        let (graph_hits, graph_misses) = counted("graphs");
        let (image_hits, image_misses) = counted("images");
        let (sensor_hits, sensor_misses) = counted("sensors");
        AppState {
            reader,
            sessions,
            login: auth::LoginGuard::new(&settings.config.login),
            graphs: Cache::new(ttl, max).counted(graph_hits, graph_misses),
            images: Cache::new(ttl, max).counted(image_hits, image_misses),
            latest_trends: std::sync::RwLock::new(None),
            latest_public_trends: std::sync::RwLock::new(None),
            sensors: Cache::new(ttl, 1).counted(sensor_hits, sensor_misses),
            clock: now,
            filing: None,
            metrics,
            settings,
        }
    }

    /// Computes the trends now, the analysts' and the public ones, and keeps them as the
    /// latest (the background refresh of `trends.refresh_secs`); returns the analysts'.
    pub async fn refresh_trends(&self) -> crate::error::Result<Arc<Trends>> {
        self.refresh_trends_for(true).await?;
        self.refresh_trends_for(false).await
    }

    /// Computes the public (`public`) or the analysts' trends now and keeps them as the latest.
    async fn refresh_trends_for(&self, public: bool) -> crate::error::Result<Arc<Trends>> {
        let now = (self.clock)();
        let rules = public.then(|| Public::of(&self.settings.config.public, now));
        let t = Arc::new(
            self.reader
                .trends(&self.settings.config.trends, now, rules.as_ref())
                .await?,
        );
        let slot = if public {
            &self.latest_public_trends
        } else {
            &self.latest_trends
        };
        if let Ok(mut latest) = slot.write() {
            *latest = Some((now, t.clone()));
        }
        Ok(t)
    }

    /// The same state, filing internal reports with these rules and geo database.
    pub fn with_filing(mut self, filing: crate::exchange::Filing) -> AppState {
        self.filing = Some(Arc::new(filing));
        self
    }
}

type St = State<Arc<AppState>>;

/// The router.
pub fn app(state: Arc<AppState>) -> Router {
    let mut r = Router::new()
        .route("/", get(front))
        .route("/regions", get(regions_page))
        .route("/port", get(port_page))
        .route("/api", get(api_doc))
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::serve))
        .route("/api/v1/trends.json", get(trends_json))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/analyst", get(analyst_home))
        .route("/analyst/events", get(analyst_events))
        .route("/analyst/exchange", get(analyst_exchange))
        .route("/analyst/exchange/file", get(analyst_exchange_file))
        .route("/analyst/reports", post(analyst_file_report))
        .route("/analyst/address", get(analyst_address))
        .route("/analyst/withheld", get(analyst_withheld));
    for graph in [
        Graph::Ports,
        Graph::Regions,
        Graph::PortPackets,
        Graph::PortSources,
    ] {
        for format in [Format::Png, Format::Svg] {
            r = r.route(
                &format!("/chart/{}.{}", graph.name(), format.ext()),
                get(move |s: St, h: HeaderMap, q: RawQuery| chart(s, h, q, graph, format)),
            );
        }
    }
    for api in [Api::Ports, Api::Regions, Api::Port] {
        for csv in [false, true] {
            r = r.route(
                &format!(
                    "/api/v1/{}.{}",
                    api.name(),
                    if csv { "csv" } else { "json" }
                ),
                get(move |s: St, h: HeaderMap, q: RawQuery| api_data(s, h, q, api, csv)),
            );
        }
    }
    r.fallback(|| async { HttpError::NotFound })
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// A graph drawn as a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Graph {
    Ports,
    Regions,
    PortPackets,
    PortSources,
}

impl Graph {
    fn name(self) -> &'static str {
        match self {
            Graph::Ports => "ports",
            Graph::Regions => "regions",
            Graph::PortPackets => "port-packets",
            Graph::PortSources => "port-sources",
        }
    }
    fn needs_port(self) -> bool {
        matches!(self, Graph::PortPackets | Graph::PortSources)
    }
}

/// A data endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Ports,
    Regions,
    Port,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Ports => "ports",
            Api::Regions => "regions",
            Api::Port => "port",
        }
    }
}

fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn known_sensors(state: &AppState) -> Result<Arc<BTreeSet<String>>, HttpError> {
    cached(&state.sensors, "ids".into(), state.reader.sensor_ids()).await
}

/// Parses and checks graph parameters; reads the sensor list only when an analyst names a
/// sensor. `public`: no analyst is logged in.
async fn graph_query(
    state: &AppState,
    query: Option<&str>,
    needs_port: bool,
    public: bool,
) -> Result<GraphQuery, HttpError> {
    let raw = RawParams::parse(query)?;
    let known = if !public && raw.sensor.as_deref().is_some_and(|s| !s.is_empty()) {
        known_sensors(state).await?
    } else {
        Arc::new(BTreeSet::new())
    };
    GraphQuery::from_raw(
        &raw,
        &state.settings.config,
        &known,
        (state.clock)(),
        needs_port,
        public,
    )
}

/// Whether a request comes without an analyst's session: answered under `[public]`.
fn is_public(state: &AppState, headers: &HeaderMap) -> bool {
    state.sessions.get(headers).is_none()
}

/// The caching and rules headers of a graph answer: public answers may be cached by anyone and
/// state the public rules; analysts' answers are private and never stored.
fn audience_headers(res: &mut Response, public: Option<&Public>) {
    let h = res.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Cookie"));
    match public {
        Some(p) => {
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            );
            for (name, value) in [
                ("x-teiten-public-grain", p.grain_secs.to_string()),
                ("x-teiten-public-delay", p.delay.clone()),
                ("x-teiten-public-until", iso(p.until)),
                (
                    "x-teiten-public-threshold",
                    format!("{} sources, {} sensors", p.min_sources, p.min_sensors),
                ),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
        }
        None => {
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
        }
    }
}

async fn ports_data(state: &AppState, q: &GraphQuery) -> Result<Arc<GraphData>, HttpError> {
    cached(&state.graphs, q.cache_key("ports"), state.reader.ports(q)).await
}

async fn regions_data(state: &AppState, q: &GraphQuery) -> Result<Arc<GraphData>, HttpError> {
    cached(
        &state.graphs,
        q.cache_key("regions"),
        state.reader.regions(q),
    )
    .await
}

async fn port_packets_data(state: &AppState, q: &GraphQuery) -> Result<Arc<GraphData>, HttpError> {
    cached(
        &state.graphs,
        q.cache_key("port-packets"),
        state.reader.port_packets(q),
    )
    .await
}

async fn port_sources_data(state: &AppState, q: &GraphQuery) -> Result<Arc<GraphData>, HttpError> {
    cached(
        &state.graphs,
        q.cache_key("port-sources"),
        state.reader.port_sources(q),
    )
    .await
}

/// Both per-port graphs (each cached as the chart that draws it).
async fn port_data(state: &AppState, q: &GraphQuery) -> Result<PortData, HttpError> {
    let (packets, sources) =
        tokio::try_join!(port_packets_data(state, q), port_sources_data(state, q))?;
    Ok(PortData {
        published: packets.published && sources.published,
        packets: packets.as_ref().clone(),
        sources: sources.as_ref().clone(),
    })
}

async fn cached<V: Send + Sync + 'static>(
    cache: &Cache<V>,
    key: String,
    fetch: impl std::future::Future<Output = crate::error::Result<V>>,
) -> Result<Arc<V>, HttpError> {
    Ok(cache.get_or_fetch(key, fetch).await?)
}

async fn chart(
    State(state): St,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    graph: Graph,
    format: Format,
) -> Response {
    let public = is_public(&state, &headers);
    match chart_inner(&state, query.as_deref(), graph, format, public).await {
        Ok((bytes, rules)) => {
            let mut res = (
                [(header::CONTENT_TYPE, format.content_type())],
                bytes.as_ref().clone(),
            )
                .into_response();
            audience_headers(&mut res, rules.as_ref());
            res
        }
        Err(e) => e.into_response(),
    }
}

async fn chart_inner(
    state: &AppState,
    query: Option<&str>,
    graph: Graph,
    format: Format,
    public: bool,
) -> Result<(Arc<Vec<u8>>, Option<Public>), HttpError> {
    let q = graph_query(state, query, graph.needs_port(), public).await?;
    let key = format!("{}|{}", q.cache_key(graph.name()), format.ext());
    let bytes = state
        .images
        .get_or_fetch(key, render(state, &q, graph, format))
        .await?;
    Ok((bytes, q.public))
}

/// Draws a chart from its (cached) data.
async fn render(
    state: &AppState,
    q: &GraphQuery,
    graph: Graph,
    format: Format,
) -> Result<Vec<u8>, HttpError> {
    let data: GraphData = match graph {
        Graph::Ports => ports_data(state, q).await?.as_ref().clone(),
        Graph::Regions => regions_data(state, q).await?.as_ref().clone(),
        Graph::PortPackets => port_packets_data(state, q).await?.as_ref().clone(),
        Graph::PortSources => port_sources_data(state, q).await?.as_ref().clone(),
    };
    let bytes = tokio::task::spawn_blocking(move || chart::render(&data, format))
        .await
        .map_err(|e| {
            HttpError::Internal(crate::error::Error::Chart {
                what: graph.name().into(),
                message: e.to_string(),
            })
        })??;
    Ok(bytes)
}

async fn api_data(
    State(state): St,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    api: Api,
    csv: bool,
) -> Response {
    let public = is_public(&state, &headers);
    let result: Result<(String, String, Option<Public>), HttpError> = async {
        let q = graph_query(&state, query.as_deref(), api == Api::Port, public).await?;
        let (body, name) = match api {
            Api::Ports | Api::Regions => {
                let g = if api == Api::Ports {
                    ports_data(&state, &q).await?
                } else {
                    regions_data(&state, &q).await?
                };
                if csv {
                    (export::csv(&g), api.name().to_owned())
                } else {
                    (to_json(g.as_ref())?, String::new())
                }
            }
            Api::Port => {
                let p = port_data(&state, &q).await?;
                if csv {
                    (
                        export::port_csv(&p),
                        format!("port-{}", q.port.unwrap_or(0)),
                    )
                } else {
                    (to_json(&p)?, String::new())
                }
            }
        };
        Ok((body, name, q.public))
    }
    .await;
    match result {
        Ok((body, name, rules)) if csv => {
            let mut res = (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"teiten-{name}.csv\""),
                    ),
                ],
                body,
            )
                .into_response();
            audience_headers(&mut res, rules.as_ref());
            res
        }
        Ok((body, _, rules)) => {
            let mut res = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
            audience_headers(&mut res, rules.as_ref());
            res
        }
        Err(e) => e.into_response(),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, HttpError> {
    serde_json::to_string(v).map_err(|e| {
        HttpError::Internal(crate::error::Error::Chart {
            what: "json".into(),
            message: e.to_string(),
        })
    })
}

/// The latest trends while younger than two refresh periods (`trends.refresh_secs`; with 0,
/// than the cache lifetime), else computed now and kept as the latest. When computing fails
/// (ClickHouse down), the latest is served however old, as cached graphs are.
async fn trends_data(state: &AppState, public: bool) -> Result<Arc<Trends>, HttpError> {
    let refresh = state.settings.config.trends.refresh_secs as i64;
    let max_age = if refresh > 0 {
        2 * refresh
    } else {
        state.settings.cache_ttl.as_secs() as i64
    };
    let slot = if public {
        &state.latest_public_trends
    } else {
        &state.latest_trends
    };
    let latest = || slot.read().ok().and_then(|l| l.clone());
    if let Some((at, t)) = latest() {
        if (state.clock)() - at < max_age {
            return Ok(t);
        }
    }
    match state.refresh_trends_for(public).await {
        Ok(t) => Ok(t),
        Err(e) => match latest() {
            Some((_, t)) => {
                tracing::warn!(error = %e, "Computing the trends failed; serving the latest");
                Ok(t)
            }
            None => Err(e.into()),
        },
    }
}

async fn trends_json(State(state): St, headers: HeaderMap) -> Response {
    let public = is_public(&state, &headers);
    match trends_data(&state, public).await {
        Ok(t) => match to_json(t.as_ref()) {
            Ok(body) => {
                let mut res = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
                audience_headers(&mut res, t.public.as_ref());
                res
            }
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

async fn api_doc() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        API_DOC,
    )
        .into_response()
}

/// The logged-in analyst, for the menu.
fn user_of(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    state.sessions.get(headers).map(|(_, s)| s)
}

async fn graph_page(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    which: Api,
) -> Result<Response, HttpError> {
    let user = user_of(state, headers);
    let public = user.is_none();
    let q = graph_query(state, query, which == Api::Port, public).await?;
    // The public form offers no sensor or group filter.
    let sensors = if public {
        Arc::new(BTreeSet::new())
    } else {
        known_sensors(state).await?
    };
    let groups: Vec<String> = if public {
        Vec::new()
    } else {
        state.settings.config.groups.keys().cloned().collect()
    };
    let max_top = state.settings.config.limits.max_top;
    let qs = q.query_string();
    let (title, action) = match which {
        Api::Ports => ("Destination ports", "/"),
        Api::Regions => ("Source regions", "/regions"),
        Api::Port => ("Per port", "/port"),
    };
    let mut body = String::new();
    body.push_str(&html::audience(q.public.as_ref()));
    if which == Api::Ports {
        body.push_str(&html::trends(&*trends_data(state, public).await?));
    }
    body.push_str(&html::filters(action, &q, &sensors, &groups, max_top));
    match which {
        Api::Ports => body.push_str(&html::graph(
            &*ports_data(state, &q).await?,
            "ports",
            "ports",
            &qs,
        )),
        Api::Regions => body.push_str(&html::graph(
            &*regions_data(state, &q).await?,
            "regions",
            "regions",
            &qs,
        )),
        Api::Port => {
            let p = port_data(state, &q).await?;
            body.push_str(&html::graph(&p.packets, "port-packets", "port", &qs));
            body.push_str(&html::graph(&p.sources, "port-sources", "port", &qs));
        }
    }
    Ok(html_response(
        StatusCode::OK,
        page(
            title,
            user.as_ref().map(|s| (s.user.as_str(), s.csrf.as_str())),
            &body,
        ),
    ))
}

async fn front(State(state): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    graph_page(&state, &headers, q.as_deref(), Api::Ports)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn regions_page(State(state): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    graph_page(&state, &headers, q.as_deref(), Api::Regions)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn port_page(State(state): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    // Without a port, the page asks for one (the per-port graph needs it).
    let has_port = q
        .as_deref()
        .map(|q| {
            q.split('&')
                .any(|kv| kv.starts_with("port=") && kv.len() > 5)
        })
        .unwrap_or(false);
    if !has_port {
        let user = user_of(&state, &headers);
        return html_response(
            StatusCode::OK,
            page(
                "Per port",
                user.as_ref().map(|s| (s.user.as_str(), s.csrf.as_str())),
                "<form method=\"get\" action=\"/port\"><label>Port <input name=\"port\" id=\"port\" \
                 size=\"6\"></label> <button type=\"submit\">Show</button></form>",
            ),
        );
    }
    graph_page(&state, &headers, q.as_deref(), Api::Port)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn login_page(csrf: &str, message: Option<&str>) -> String {
    page(
        "Analyst login",
        None,
        &format!(
            "{}<form method=\"post\" action=\"/login\" id=\"login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <p><label>User <input name=\"user\" id=\"user\" autocomplete=\"username\"></label></p>\
             <p><label>Password <input name=\"password\" id=\"password\" type=\"password\" \
             autocomplete=\"current-password\"></label></p>\
             <p><button type=\"submit\" id=\"submit\">Log in</button></p></form>",
            message
                .map(|m| format!("<p class=\"err\">{}</p>", esc(m)))
                .unwrap_or_default(),
            esc(csrf)
        ),
    )
}

fn login_form_response(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let token = auth::random_token();
    let mut res = html_response(status, login_page(&token, message));
    let cookie = auth::set_cookie(
        LOGIN_CSRF_COOKIE,
        &token,
        3600,
        state.settings.config.analyst.secure_cookies,
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn login_form(State(state): St, headers: HeaderMap) -> Response {
    if state.sessions.get(&headers).is_some() {
        return Redirect::to("/analyst").into_response();
    }
    login_form_response(&state, StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): St,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let cookie = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !auth::same_token(&cookie, &f.csrf) {
        return HttpError::Forbidden(
            "the login form expired or was not sent by this site; reload it",
        )
        .into_response();
    }
    let ip = peer
        .map(|p| p.0 .0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let name = auth::printable(&f.user);
    let hash = state.settings.config.analyst.users.get(&f.user).cloned();
    let known = hash.is_some();
    let refused = |refusal: auth::Refusal| {
        let (status, wait, message) = match refusal {
            auth::Refusal::Address(w) | auth::Refusal::User(w) => (
                StatusCode::TOO_MANY_REQUESTS,
                w.as_secs() + 1,
                "Too many login attempts; wait a moment and try again.",
            ),
            auth::Refusal::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                1,
                "The server is busy; try again in a moment.",
            ),
        };
        // Debug only: a flood must not become a flood of log lines.
        tracing::debug!(user = %name, %ip, ?refusal, "Login attempt refused unchecked");
        let mut res = login_form_response(&state, status, Some(message));
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        res
    };
    let attempt = match state.login.attempt(ip, &f.user, known) {
        Ok(a) => a,
        Err(r) => return refused(r),
    };
    // An unknown user is checked against a dummy hash (on the check thread), so that the
    // answer takes as long.
    let ok = match state.login.verify(attempt, hash, f.password).await {
        Ok(ok) => ok && known,
        Err(r) => return refused(r),
    };
    if !ok {
        tracing::warn!(user = %name, %ip, "Login refused");
        return login_form_response(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name or password."),
        );
    }
    tracing::info!(user = %name, %ip, "Analyst logged in");
    let token = state.sessions.create(&f.user);
    let secure = state.settings.config.analyst.secure_cookies;
    let mut res = Redirect::to("/analyst").into_response();
    let ttl = state.sessions.ttl().as_secs();
    for c in [
        auth::set_cookie(SESSION_COOKIE, &token, ttl, secure),
        auth::set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(state): St, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some((token, session)) = state.sessions.get(&headers) else {
        return Redirect::to("/").into_response();
    };
    if !auth::same_token(&session.csrf, &f.csrf) {
        return HttpError::Forbidden("missing or wrong CSRF token").into_response();
    }
    state.sessions.remove(&token);
    tracing::info!(user = %session.user, "Analyst logged out");
    let mut res = Redirect::to("/").into_response();
    let c = auth::set_cookie(
        SESSION_COOKIE,
        "",
        0,
        state.settings.config.analyst.secure_cookies,
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The session of a logged-in analyst (callers redirect to the login page without one).
fn require_analyst(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    state.sessions.get(headers).map(|(_, s)| s)
}

async fn analyst_home(State(state): St, headers: HeaderMap) -> Response {
    let Some(session) = require_analyst(&state, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let now = (state.clock)();
    match analyst::sensor_health(&state.reader, now).await {
        Ok(rows) => html_response(
            StatusCode::OK,
            page(
                "Sensor health",
                Some((&session.user, &session.csrf)),
                &analyst::health_html(&rows, now),
            ),
        ),
        Err(e) => HttpError::from(e).into_response(),
    }
}

async fn analyst_exchange(State(state): St, headers: HeaderMap) -> Response {
    let Some(session) = require_analyst(&state, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let form = state.filing.as_ref().map(|_| session.csrf.as_str());
    match crate::exchange::page_html(&state.reader, (state.clock)(), form).await {
        Ok(body) => html_response(
            StatusCode::OK,
            page(
                "IODEF exchange",
                Some((&session.user, &session.csrf)),
                &body,
            ),
        ),
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// `?partner=&day=` of a daily file's download.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    partner: String,
    day: u32,
}

/// A partner's daily file as it is in the outbox (streamed, so a file of any size is served in
/// constant memory).
async fn analyst_exchange_file(
    State(state): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(session) = require_analyst(&state, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let result: Result<Response, HttpError> = async {
        let q: FileQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string (partner, day): {e}")))?;
        let outbox = &state.settings.config.analyst.outbox;
        let Some(path) =
            crate::exchange::outbox_file(&state.reader, outbox, &q.partner, q.day).await?
        else {
            return Err(HttpError::NotFound);
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HttpError::bad(format!(
                    "the file of {} for {} is no longer in the outbox",
                    q.partner, q.day
                )))
            }
            Err(e) => {
                return Err(HttpError::Internal(crate::error::Error::Io {
                    what: format!("opening {}", path.display()),
                    source: e,
                }))
            }
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = if name.ends_with(".gz") {
            "application/gzip"
        } else {
            "application/xml"
        };
        tracing::info!(user = %session.user, partner = %q.partner, day = q.day, "Daily file downloaded");
        let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
        Ok((
            [
                (header::CONTENT_TYPE, kind.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", name.replace('"', "")),
                ),
            ],
            body,
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Files an internal report from the exchange page's form.
async fn analyst_file_report(
    State(state): St,
    headers: HeaderMap,
    Form(f): Form<crate::exchange::ReportForm>,
) -> Response {
    let Some(session) = require_analyst(&state, &headers) else {
        return Redirect::to("/login").into_response();
    };
    if !auth::same_token(&session.csrf, &f.csrf) {
        return HttpError::Forbidden("missing or wrong CSRF token").into_response();
    }
    let Some(filing) = state.filing.as_ref() else {
        return HttpError::bad(
            "filing reports here needs analyst.aggregator_config in the dashboard's config",
        )
        .into_response();
    };
    match crate::exchange::file_report(&state.reader, filing, &session.user, &f).await {
        Ok(filed) => {
            tracing::info!(user = %session.user, id = %filed.id, colour = %filed.colour, "Internal report filed");
            html_response(
                StatusCode::OK,
                page(
                    "Report filed",
                    Some((&session.user, &session.csrf)),
                    &crate::exchange::filed_html(&filed),
                ),
            )
        }
        Err(e) => e.into_response(),
    }
}

/// `?addr=` of the address page.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressQuery {
    addr: Option<String>,
}

async fn analyst_address(State(state): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let Some(session) = require_analyst(&state, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let result: Result<String, HttpError> = async {
        let q: AddressQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string: {e}")))?;
        crate::exchange::address_html(&state.reader, q.addr.as_deref()).await
    }
    .await;
    match result {
        Ok(body) => html_response(
            StatusCode::OK,
            page("Address", Some((&session.user, &session.csrf)), &body),
        ),
        Err(e) => e.into_response(),
    }
}

async fn analyst_withheld(State(state): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let Some(session) = require_analyst(&state, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let result: Result<String, HttpError> = async {
        let raw: analyst::RawPeriod = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string: {e}")))?;
        analyst::withheld_html(&state.reader, &raw, &state.settings.config, (state.clock)()).await
    }
    .await;
    match result {
        Ok(body) => html_response(
            StatusCode::OK,
            page(
                "Withheld sources",
                Some((&session.user, &session.csrf)),
                &body,
            ),
        ),
        Err(e) => e.into_response(),
    }
}

async fn analyst_events(State(state): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let Some(session) = require_analyst(&state, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let result: Result<String, HttpError> = async {
        let raw: RawSearch = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string: {e}")))?;
        let s = Search::from_raw(&raw, &state.settings.config, (state.clock)())?;
        let (rows, more) = analyst::search(&state.reader, &s).await?;
        Ok(analyst::search_html(&s, &rows, more))
    }
    .await;
    match result {
        Ok(body) => html_response(
            StatusCode::OK,
            page("Event search", Some((&session.user, &session.csrf)), &body),
        ),
        Err(e) => e.into_response(),
    }
}
