//! Login and logout of analysts (argon2, throttled, CSRF-protected forms).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{html_response, AppState, St};
use crate::auth::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::error::HttpError;
use crate::html::{esc, page};

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

pub(super) async fn login_form(State(state): St, headers: HeaderMap) -> Response {
    if state.sessions.get(&headers).is_some() {
        return Redirect::to("/analyst").into_response();
    }
    login_form_response(&state, StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn login(
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
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(state): St,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
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
