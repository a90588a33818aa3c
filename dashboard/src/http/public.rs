//! The public graph handlers (analysts logged in see more of the same): the graph pages, the
//! charts, the JSON and CSV data API, the trends and the API documentation.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{html_response, AppState, St};
use crate::auth::Session;
use crate::cache::Cache;
use crate::chart::{self, Format};
use crate::data::{GraphData, PortData, Trends};
use crate::error::HttpError;
use crate::export;
use crate::html::{self, page};
use crate::params::{iso, GraphQuery, Public, RawParams};

/// The API documentation served at `/api`.
const API_DOC: &str = include_str!("../../API.md");

/// A graph drawn as a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Graph {
    Ports,
    Regions,
    PortPackets,
    PortSources,
    Networks,
}

impl Graph {
    pub(super) fn name(self) -> &'static str {
        match self {
            Graph::Ports => "ports",
            Graph::Regions => "regions",
            Graph::PortPackets => "port-packets",
            Graph::PortSources => "port-sources",
            Graph::Networks => "networks",
        }
    }
    fn needs_port(self) -> bool {
        matches!(self, Graph::PortPackets | Graph::PortSources)
    }
}

/// A data endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    Ports,
    Regions,
    Port,
    Networks,
}

impl Api {
    pub(super) fn name(self) -> &'static str {
        match self {
            Api::Ports => "ports",
            Api::Regions => "regions",
            Api::Port => "port",
            Api::Networks => "networks",
        }
    }
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

/// The answer to a visitor without a session asking for an analysts' view (the network views:
/// the public pages show no per-network counts).
const ANALYSTS_ONLY: HttpError =
    HttpError::Forbidden("the network views are for analysts: log in at /login");

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

async fn networks_data(state: &AppState, q: &GraphQuery) -> Result<Arc<GraphData>, HttpError> {
    if q.public.is_some() {
        return Err(ANALYSTS_ONLY);
    }
    cached(
        &state.graphs,
        q.cache_key("networks"),
        state.reader.networks(q),
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

pub(super) async fn chart(
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
        Graph::Networks => networks_data(state, q).await?.as_ref().clone(),
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

pub(super) async fn api_data(
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
            Api::Networks => {
                let g = networks_data(&state, &q).await?;
                if csv {
                    (export::networks_csv(&g), api.name().to_owned())
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

pub(super) async fn trends_json(State(state): St, headers: HeaderMap) -> Response {
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

pub(super) async fn api_doc() -> Response {
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
    if public && which == Api::Networks {
        return Ok(axum::response::Redirect::to("/login").into_response());
    }
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
        Api::Networks => ("Source networks", "/networks"),
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
        Api::Networks => {
            let g = networks_data(state, &q).await?;
            body.push_str(&html::graph(&g, "networks", "networks", &qs));
            body.push_str(&html::networks_table(&g));
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

pub(super) async fn front(State(state): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    graph_page(&state, &headers, q.as_deref(), Api::Ports)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn regions_page(
    State(state): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    graph_page(&state, &headers, q.as_deref(), Api::Regions)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn networks_page(
    State(state): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    graph_page(&state, &headers, q.as_deref(), Api::Networks)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn port_page(
    State(state): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
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
