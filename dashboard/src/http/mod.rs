//! The HTTP app: public pages, charts, the JSON/CSV API, login and the analyst view.
//! [`app`] builds the router (every URL is routed here) so that tests drive it without a
//! socket; the handlers live in [`public`] (graphs, charts, data API, trends), [`login`]
//! (login and logout), [`analyst`] (the pages behind the login, with the [`Analyst`]
//! extractor) and [`questionnaire`] (the employees' investigation questionnaires, by link).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::{self, Sessions};
use crate::cache::Cache;
use crate::chart::Format;
use crate::config::Settings;
use crate::data::{GraphData, Reader, Trends};
use crate::error::HttpError;
use crate::metrics::{self, Metrics};
use crate::params::Public;
use crate::reports::Aggregator;

mod analyst;
mod login;
mod public;
mod questionnaire;

pub use analyst::Analyst;
use public::{Api, Graph};

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
    /// The aggregator's API (`[reports]`): filing internal reports and downloading the daily
    /// files from the exchange page.
    aggregator: Option<Aggregator>,
    /// The network database (`[geo]`), for the address page.
    geo: Option<teiten_store::GeoDb>,
    /// What `/metrics` shows.
    pub(crate) metrics: Arc<Metrics>,
    /// Questionnaire lookups and answers in flight.
    questionnaire_slots: tokio::sync::Semaphore,
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
            aggregator: None,
            geo: None,
            metrics,
            questionnaire_slots: tokio::sync::Semaphore::new(questionnaire::QUESTIONNAIRE_SLOTS),
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

    /// The same state, filing internal reports and downloading daily files through this
    /// aggregator (`[reports]`).
    pub fn with_aggregator(mut self, aggregator: Aggregator) -> AppState {
        self.aggregator = Some(aggregator);
        self
    }

    /// The same state, naming an address's network on the address page from this database.
    pub fn with_geo(mut self, geo: teiten_store::GeoDb) -> AppState {
        self.geo = Some(geo);
        self
    }
}

type St = State<Arc<AppState>>;

/// The router.
pub fn app(state: Arc<AppState>) -> Router {
    let mut r = Router::new()
        .route("/", get(public::front))
        .route("/regions", get(public::regions_page))
        .route("/networks", get(public::networks_page))
        .route("/port", get(public::port_page))
        .route("/api", get(public::api_doc))
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::serve))
        .route("/api/v1/trends.json", get(public::trends_json))
        .route("/login", get(login::login_form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/analyst", get(analyst::home))
        .route("/analyst/events", get(analyst::events))
        .route("/analyst/exchange", get(analyst::exchange))
        .route("/analyst/exchange/file", get(analyst::exchange_file))
        .route("/analyst/reports", post(analyst::file_report))
        .route("/analyst/address", get(analyst::address))
        .route("/analyst/withheld", get(analyst::withheld))
        .route("/analyst/trends", get(analyst::trends))
        .route("/analyst/trends.csv", get(analyst::trends_csv))
        .route(
            "/analyst/case",
            get(analyst::case).post(analyst::override_case),
        )
        .route(
            "/q/{token}",
            get(questionnaire::show)
                .post(questionnaire::submit)
                .layer(axum::extract::DefaultBodyLimit::max(64 * 1024)),
        );
    for graph in [
        Graph::Ports,
        Graph::Regions,
        Graph::PortPackets,
        Graph::PortSources,
        Graph::Networks,
    ] {
        for format in [Format::Png, Format::Svg] {
            r = r.route(
                &format!("/chart/{}.{}", graph.name(), format.ext()),
                get(move |s: St, h: HeaderMap, q: RawQuery| public::chart(s, h, q, graph, format)),
            );
        }
    }
    for api in [Api::Ports, Api::Regions, Api::Port, Api::Networks] {
        for csv in [false, true] {
            r = r.route(
                &format!(
                    "/api/v1/{}.{}",
                    api.name(),
                    if csv { "csv" } else { "json" }
                ),
                get(move |s: St, h: HeaderMap, q: RawQuery| public::api_data(s, h, q, api, csv)),
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

/// An HTML answer that is never stored.
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
