//! The analyst pages, behind the login: sensor health, the raw event search, withheld
//! sources, the IODEF exchange (with the download of daily files and the report form, both
//! through the aggregator's API) and the address page. Each handler takes an [`Analyst`],
//! whose rejection sends a visitor without a session to the login page.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::{html_response, AppState, St};
use crate::analyst::{self, RawSearch, Search};
use crate::auth::{self, Session};
use crate::error::HttpError;
use crate::exchange::{self, ReportForm};
use crate::html::{esc, page};
use crate::reports::Refusal;
use teiten_exchange::cases::trends::{Period, Trends};

/// The logged-in analyst's session: extracting it answers a visitor without one with a
/// redirect to `/login`.
#[derive(Debug, Clone)]
pub struct Analyst(pub Session);

impl FromRequestParts<Arc<AppState>> for Analyst {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        state
            .sessions
            .get(&parts.headers)
            .map(|(_, s)| Analyst(s))
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

impl Analyst {
    /// The menu's user and CSRF token.
    fn menu(&self) -> Option<(&str, &str)> {
        Some((&self.0.user, &self.0.csrf))
    }

    /// A page of the analyst view.
    fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        html_response(status, page(title, self.menu(), body))
    }
}

pub(super) async fn home(State(state): St, me: Analyst) -> Response {
    let now = (state.clock)();
    match analyst::sensor_health(&state.reader, now).await {
        Ok(rows) => me.page(
            StatusCode::OK,
            "Sensor health",
            &analyst::health_html(&rows, now),
        ),
        Err(e) => HttpError::from(e).into_response(),
    }
}

pub(super) async fn exchange(State(state): St, me: Analyst) -> Response {
    let form = state.aggregator.as_ref().map(|_| me.0.csrf.as_str());
    match exchange::page_html(&state.reader, (state.clock)(), form).await {
        Ok(body) => me.page(StatusCode::OK, "IODEF exchange", &body),
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

/// A partner's daily file, from the aggregator's outbox (streamed through, so a file of any
/// size is served in constant memory): a 404 page when the aggregator has no such file.
pub(super) async fn exchange_file(
    State(state): St,
    me: Analyst,
    RawQuery(q): RawQuery,
) -> Response {
    let q: FileQuery = match serde_urlencoded::from_str(q.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            return HttpError::bad(format!("bad query string (partner, day): {e}")).into_response()
        }
    };
    if !teiten_exchange::config::is_id(&q.partner) {
        return HttpError::bad("partner: a partner id is 1 to 64 letters, digits, `-` or `_`")
            .into_response();
    }
    let Some(aggregator) = state.aggregator.as_ref() else {
        return me.page(
            StatusCode::NOT_FOUND,
            "Daily file",
            "<p class=\"err\">Downloading daily files needs <code>[reports]</code> in the \
             dashboard's config.</p>",
        );
    };
    match aggregator.outbox_file(&q.partner, q.day).await {
        Ok(d) => {
            tracing::info!(user = %me.0.user, partner = %q.partner, day = q.day, "Daily file downloaded");
            let mut res = d.body.into_response();
            let h = res.headers_mut();
            if let Ok(v) = header::HeaderValue::from_str(&d.content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            if let Some(v) = d
                .disposition
                .and_then(|d| header::HeaderValue::from_str(&d).ok())
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(Refusal::Refused {
            status: 404,
            detail,
        }) => me.page(
            StatusCode::NOT_FOUND,
            "Daily file",
            &format!("<p class=\"err\" id=\"gone\">{}</p>", esc(&detail)),
        ),
        Err(Refusal::Refused { detail, .. }) => me.page(
            StatusCode::BAD_GATEWAY,
            "Daily file",
            &format!(
                "<p class=\"err\">The aggregator refused the download: {}</p>",
                esc(&detail)
            ),
        ),
        Err(Refusal::Unavailable) => me.page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Daily file",
            "<p class=\"err\">aggregator unavailable, try again</p>",
        ),
    }
}

/// Files an internal report from the exchange page's form through the aggregator: its id and
/// triage colour; the aggregator's error (4xx) or "unavailable" (5xx, no answer) with the form
/// kept as sent.
pub(super) async fn file_report(
    State(state): St,
    me: Analyst,
    Form(f): Form<ReportForm>,
) -> Response {
    if !auth::same_token(&me.0.csrf, &f.csrf) {
        return HttpError::Forbidden("missing or wrong CSRF token").into_response();
    }
    let Some(aggregator) = state.aggregator.as_ref() else {
        return HttpError::bad("filing reports here needs [reports] in the dashboard's config")
            .into_response();
    };
    let input = match f.input() {
        Ok(i) => i,
        Err(m) => return HttpError::BadRequest(m).into_response(),
    };
    let not_filed = |status: StatusCode, message: &str| {
        me.page(
            status,
            "Report not filed",
            &format!(
                "<p class=\"err\" id=\"not-filed\">{}</p>{}",
                esc(message),
                exchange::form_html(&me.0.csrf, Some(&f))
            ),
        )
    };
    match aggregator.file(&input).await {
        Ok(filed) => {
            tracing::info!(user = %me.0.user, id = %filed.id, colour = %filed.colour, "Internal report filed");
            me.page(
                StatusCode::OK,
                "Report filed",
                &exchange::filed_html(&filed),
            )
        }
        Err(Refusal::Refused { status, detail }) => not_filed(
            match status {
                // The report: the analyst can change it.
                400 | 413 | 422 => StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                // The dashboard's token or URL ([reports]): not the analyst's doing.
                _ => StatusCode::BAD_GATEWAY,
            },
            &format!("The aggregator refused the report: {detail}"),
        ),
        Err(Refusal::Unavailable) => not_filed(
            StatusCode::SERVICE_UNAVAILABLE,
            "aggregator unavailable, try again",
        ),
    }
}

/// `?addr=` of the address page.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressQuery {
    addr: Option<String>,
}

pub(super) async fn address(State(state): St, me: Analyst, RawQuery(q): RawQuery) -> Response {
    let result: Result<String, HttpError> = async {
        let q: AddressQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string: {e}")))?;
        exchange::address_html(&state.reader, q.addr.as_deref(), state.geo.as_ref()).await
    }
    .await;
    match result {
        Ok(body) => me.page(StatusCode::OK, "Address", &body),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn withheld(State(state): St, me: Analyst, RawQuery(q): RawQuery) -> Response {
    let result: Result<String, HttpError> = async {
        let raw: analyst::RawPeriod = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string: {e}")))?;
        analyst::withheld_html(&state.reader, &raw, &state.settings.config, (state.clock)()).await
    }
    .await;
    match result {
        Ok(body) => me.page(StatusCode::OK, "Withheld sources", &body),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn events(State(state): St, me: Analyst, RawQuery(q): RawQuery) -> Response {
    let result: Result<String, HttpError> = async {
        let raw: RawSearch = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string: {e}")))?;
        let s = Search::from_raw(&raw, &state.settings.config, (state.clock)())?;
        let (rows, more) = analyst::search(&state.reader, &s).await?;
        Ok(analyst::search_html(&s, &rows, more))
    }
    .await;
    match result {
        Ok(body) => me.page(StatusCode::OK, "Event search", &body),
        Err(e) => e.into_response(),
    }
}

/// `?from=&to=` of the trends pages.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrendsQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The period of a trends request, or the page saying what is wrong with it.
#[allow(clippy::result_large_err)]
fn trends_period(state: &AppState, me: &Analyst, q: Option<&str>) -> Result<Period, Response> {
    let q: TrendsQuery = serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|e| HttpError::bad(format!("bad query string (from, to): {e}")).into_response())?;
    Period::parse(q.from.as_deref(), q.to.as_deref(), (state.clock)()).map_err(|e| {
        me.page(
            StatusCode::BAD_REQUEST,
            TRENDS_TITLE,
            &format!(
                "<p class=\"err\" id=\"bad-period\">{}</p>{}",
                esc(&e),
                crate::cases::period_form(
                    q.from.as_deref().unwrap_or(""),
                    q.to.as_deref().unwrap_or("")
                )
            ),
        )
    })
}

/// The aggregator's refusal or absence as a page.
fn not_from_aggregator(me: &Analyst, title: &str, r: Option<Refusal>) -> Response {
    let (status, text) = match r {
        None => (
            StatusCode::NOT_FOUND,
            "This page needs <code>[reports]</code> in the dashboard's config.".to_owned(),
        ),
        Some(Refusal::Refused {
            status: 404,
            detail,
        }) => (StatusCode::NOT_FOUND, esc(&detail)),
        Some(Refusal::Refused {
            status: 422,
            detail,
        }) => (StatusCode::UNPROCESSABLE_ENTITY, esc(&detail)),
        Some(Refusal::Refused { detail, .. }) => (
            StatusCode::BAD_GATEWAY,
            format!("The aggregator refused: {}", esc(&detail)),
        ),
        Some(Refusal::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "aggregator unavailable, try again".to_owned(),
        ),
    };
    me.page(
        status,
        title,
        &format!("<p class=\"err\" id=\"refused\">{text}</p>"),
    )
}

const TRENDS_TITLE: &str = "Internal detections by month";

/// The trends of the period asked for, from the aggregator; the page saying why not.
async fn fetch_trends(
    state: &AppState,
    me: &Analyst,
    q: Option<&str>,
) -> Result<(Period, Trends), Response> {
    let period = trends_period(state, me, q)?;
    let Some(aggregator) = state.aggregator.as_ref() else {
        return Err(not_from_aggregator(me, TRENDS_TITLE, None));
    };
    match aggregator.trends(&period).await {
        Ok(t) => Ok((period, t)),
        Err(r) => Err(not_from_aggregator(me, TRENDS_TITLE, Some(r))),
    }
}

/// The monthly trends of the internal detections.
pub(super) async fn trends(State(state): St, me: Analyst, RawQuery(q): RawQuery) -> Response {
    match fetch_trends(&state, &me, q.as_deref()).await {
        Ok((period, t)) => match crate::cases::trends_html(&t, &period) {
            Ok(body) => me.page(StatusCode::OK, TRENDS_TITLE, &body),
            Err(e) => HttpError::from(e).into_response(),
        },
        Err(r) => r,
    }
}

/// The trends as CSV.
pub(super) async fn trends_csv(State(state): St, me: Analyst, RawQuery(q): RawQuery) -> Response {
    match fetch_trends(&state, &me, q.as_deref()).await {
        Ok((period, t)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"internal-detections-{}-{}.csv\"",
                        period.from, period.to
                    ),
                ),
            ],
            t.csv(),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// `?reporter=&id=` of the case page.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseQuery {
    reporter: String,
    id: String,
}

/// Reporter names and report ids are short printable strings.
fn case_key_ok(reporter: &str, id: &str) -> bool {
    let ok = |s: &str| !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control);
    ok(reporter) && ok(id)
}

/// A case's history and the override form.
pub(super) async fn case(State(state): St, me: Analyst, RawQuery(q): RawQuery) -> Response {
    const TITLE: &str = "Case";
    let q: CaseQuery = match serde_urlencoded::from_str(q.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            return HttpError::bad(format!("bad query string (reporter, id): {e}")).into_response()
        }
    };
    if !case_key_ok(&q.reporter, &q.id) {
        return HttpError::bad("reporter, id: 1 to 128 printable characters each").into_response();
    }
    let Some(aggregator) = state.aggregator.as_ref() else {
        return not_from_aggregator(&me, TITLE, None);
    };
    match aggregator.case(&q.reporter, &q.id).await {
        Ok(steps) => me.page(
            StatusCode::OK,
            TITLE,
            &crate::cases::case_html(&q.reporter, &q.id, &steps, &me.0.csrf),
        ),
        Err(r) => not_from_aggregator(&me, TITLE, Some(r)),
    }
}

/// The override form.
#[derive(Debug, serde::Deserialize)]
pub(super) struct OverrideForm {
    csrf: String,
    reporter: String,
    id: String,
    colour: String,
    reason: String,
}

/// Overrides a case's colour as the logged-in analyst; back to the case page.
pub(super) async fn override_case(
    State(state): St,
    me: Analyst,
    Form(f): Form<OverrideForm>,
) -> Response {
    const TITLE: &str = "Case not overridden";
    if !auth::same_token(&me.0.csrf, &f.csrf) {
        return HttpError::Forbidden("missing or wrong CSRF token").into_response();
    }
    if !case_key_ok(&f.reporter, &f.id) {
        return HttpError::bad("reporter, id: 1 to 128 printable characters each").into_response();
    }
    let Some(aggregator) = state.aggregator.as_ref() else {
        return not_from_aggregator(&me, TITLE, None);
    };
    match aggregator
        .override_colour(&f.reporter, &f.id, &me.0.user, &f.colour, &f.reason)
        .await
    {
        Ok(()) => {
            tracing::info!(user = %me.0.user, reporter = %f.reporter, id = %f.id, colour = %f.colour, "Case colour overridden");
            let to = format!(
                "/analyst/case?{}",
                serde_urlencoded::to_string([("reporter", &f.reporter), ("id", &f.id)])
                    .unwrap_or_default()
            );
            Redirect::to(&to).into_response()
        }
        Err(r) => not_from_aggregator(&me, TITLE, Some(r)),
    }
}
