//! The investigation's HTTP endpoints, for the dashboard's reporter (`cases = true` in its
//! `[[exchange.reporter]]`), which serves the questionnaire pages and the analysts' case
//! pages. Nothing here is for the employee directly: the dashboard passes the link's token.
//!
//! - `GET /api/v1/questionnaire/{token}`: 200 what the page shows (the questionnaire, the
//!   employee's name, the detection, the link's expiry); 404 a link we did not issue; 410 an
//!   expired link; 409 a case answered already. Each with `{"error", "detail"}`.
//! - `POST /api/v1/questionnaire/{token}` (JSON `{"answers": {"<question>": ["<choice>",
//!   ...]}}`; a text question takes one string): 200 `{"colour", "rules"}` once stored; 422
//!   answers outside the questionnaire (the question named), and 404, 410, 409 as above,
//!   nothing stored.
//! - `GET /api/v1/cases/{reporter}/{id}`: the case's steps, oldest first.
//! - `POST /api/v1/cases/{reporter}/{id}/override` (JSON `{"colour", "reason", "analyst"}`):
//!   204 once stored in the history; 422 a colour or reason that is not one; 404 no such report.
//!
//! - `GET /api/v1/cases/trends?from=YYYY-MM&to=YYYY-MM`: the monthly trends of the internal
//!   reports detected in those months (default the last twelve), by colour, source, category,
//!   department and each questionnaire's choices
//!   ([`teiten_exchange::cases::trends::Trends`]); 400 a bad month or period.
//!
//! 401 without a known reporter token, 403 for a reporter without `cases`, 404 when
//! `[exchange.cases]` is not configured; ClickHouse trouble answers 503 with `Retry-After`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::exchange_api::{answer, body_bytes, from_error, refuse, token_hash};
use crate::http::AppState;
use teiten_exchange::cases::store::{self as cases, AnswersInput, LinkError, Override};
use teiten_exchange::cases::trends::{self, Period};
use teiten_exchange::cases::Cases;
use teiten_store::time;

/// A questionnaire link.
pub(crate) const QUESTIONNAIRE_PATH: &str = "/api/v1/questionnaire/{token}";
/// A case's history.
pub(crate) const CASE_PATH: &str = "/api/v1/cases/{reporter}/{id}";
/// An analyst's override.
pub(crate) const OVERRIDE_PATH: &str = "/api/v1/cases/{reporter}/{id}/override";
/// The monthly trends.
pub(crate) const TRENDS_PATH: &str = "/api/v1/cases/trends";
/// Largest body of an answer or an override.
const MAX_BODY: usize = 64 << 10;

/// The routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(QUESTIONNAIRE_PATH, get(view).post(submit))
        .route(CASE_PATH, get(history))
        .route(OVERRIDE_PATH, post(override_colour))
        .route(TRENDS_PATH, get(trends))
}

/// The configured cases, when the caller is a reporter with `cases`; the refusal otherwise.
#[allow(clippy::result_large_err)]
fn allowed(st: &AppState, headers: &HeaderMap) -> Result<Arc<Cases>, Response> {
    let hash = token_hash(headers)?;
    let x = &st.exchange;
    let Some(reporter) = x.reporters.iter().find(|r| r.token_sha256 == hash) else {
        tracing::warn!("Cases request with an unknown token refused");
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown token",
        ));
    };
    if !reporter.cases {
        tracing::warn!(reporter = %reporter.name, "Cases request refused: reporter without cases = true");
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this reporter may not work cases (cases = true in its [[exchange.reporter]])",
        ));
    }
    x.cases.clone().ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "not_configured",
            "no [exchange.cases] on this aggregator",
        )
    })
}

fn link_error(e: &LinkError, retry_after: u64) -> Response {
    let (status, code) = match e {
        LinkError::Unknown => (StatusCode::NOT_FOUND, "unknown_link"),
        LinkError::Expired(_) => (StatusCode::GONE, "expired"),
        LinkError::Answered(_) => (StatusCode::CONFLICT, "answered"),
        LinkError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        LinkError::Store(s) => return from_error(s, retry_after),
    };
    refuse(status, code, e.to_string())
}

async fn view(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(token): UrlPath<String>,
) -> Response {
    let c = match allowed(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match cases::view(&st.client, &st.db, &c, &token, time::now()).await {
        Ok(v) => answer(StatusCode::OK, serde_json::to_value(v).expect("serialises")),
        Err(e) => link_error(&e, st.retry_after_secs),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submitted {
    answers: AnswersInput,
}

async fn submit(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(token): UrlPath<String>,
    body: Body,
) -> Response {
    let c = match allowed(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let bytes = match body_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let s: Submitted = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("not answers: {e}"),
            )
        }
    };
    let x = &st.exchange;
    match cases::answer(&st.client, &st.db, x, &c, &token, &s.answers, time::now()).await {
        Ok(a) => answer(StatusCode::OK, serde_json::to_value(a).expect("serialises")),
        Err(e) => link_error(&e, st.retry_after_secs),
    }
}

async fn history(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath((reporter, id)): UrlPath<(String, String)>,
) -> Response {
    if let Err(r) = allowed(&st, &headers) {
        return r;
    }
    match cases::history(&st.client, &st.db, &reporter, &id).await {
        Ok(h) => answer(
            StatusCode::OK,
            serde_json::json!({"reporter": reporter, "id": id, "steps": h}),
        ),
        Err(e) => from_error(&e, st.retry_after_secs),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    colour: String,
    reason: String,
    analyst: String,
}

async fn override_colour(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath((reporter, id)): UrlPath<(String, String)>,
    body: Body,
) -> Response {
    if let Err(r) = allowed(&st, &headers) {
        return r;
    }
    let bytes = match body_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let b: OverrideBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("not an override: {e}"),
            )
        }
    };
    if b.analyst.trim().is_empty() || b.analyst.len() > 128 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "`analyst`: 1 to 128 characters, who overrides",
        );
    }
    let o = Override {
        colour: b.colour,
        reason: b.reason,
    };
    match cases::override_colour(
        &st.client,
        &st.db,
        &reporter,
        &id,
        b.analyst.trim(),
        &o,
        time::now(),
    )
    .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => link_error(&e, st.retry_after_secs),
    }
}

/// `?from=&to=` of the trends.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrendsQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn trends(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let c = match allowed(&st, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let period = serde_urlencoded::from_str::<TrendsQuery>(q.as_deref().unwrap_or(""))
        .map_err(|e| format!("bad query string (from, to): {e}"))
        .and_then(|q| Period::parse(q.from.as_deref(), q.to.as_deref(), time::now()));
    let period = match period {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    match trends::monthly(&st.client, &st.db, &c.questionnaires, period).await {
        Ok(t) => answer(StatusCode::OK, serde_json::to_value(t).expect("serialises")),
        Err(e) => from_error(&e, st.retry_after_secs),
    }
}
