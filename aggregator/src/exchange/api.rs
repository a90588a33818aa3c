//! The exchange's HTTP endpoints, beside the ingest API:
//!
//! - `POST /api/v1/iodef` (`Authorization: Bearer <partner upload token>`, body an IODEF v1 or
//!   v2 document, `Content-Encoding: gzip` allowed, `X-Filename` optional): 200 `{"status":
//!   "stored", ...}` or `{"status": "duplicate", ...}`; 422 `{"status": "quarantined",
//!   "reason": ...}` with every schema and semantic error; 401 unknown token; 413 too large.
//! - `POST /api/v1/reports` (`Authorization: Bearer <reporter token>`, JSON
//!   [`ReportInput`](super::reports::ReportInput)): 201 `{"id", "colour", "rules",
//!   "duplicate": false}`, 200 with `"duplicate": true` for a report filed before; 400 not the
//!   JSON expected (with line and column); 422 a field breaks a rule (named).
//!
//! ClickHouse trouble answers 503 with `Retry-After`; nothing is half-accepted: a file or report
//! is acknowledged only once stored.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use super::import::{import, Imported};
use super::reports::{self, ReportInput};
use super::ExchangeError;
use crate::http::AppState;

/// Path of partner uploads.
pub const IODEF_PATH: &str = "/api/v1/iodef";
/// Path of internal reports.
pub const REPORTS_PATH: &str = "/api/v1/reports";
/// Largest report body.
const MAX_REPORT_BYTES: usize = 1 << 20;

/// The exchange routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(IODEF_PATH, post(upload))
        .route(REPORTS_PATH, post(report))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, error: &str, detail: impl Into<String>) -> Response {
    answer(
        status,
        serde_json::json!({"error": error, "detail": detail.into()}),
    )
}

fn from_error(e: &ExchangeError, retry_after: u64) -> Response {
    match e {
        ExchangeError::Invalid(m) => refuse(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m.clone()),
        ExchangeError::ClickHouse { .. } => {
            tracing::error!(error = %e, "Exchange request not stored");
            let mut r = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is unavailable, retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        _ => {
            tracing::error!(error = %e, "Exchange request failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request could not be processed",
            )
        }
    }
}

/// The SHA-256 of the bearer token, or the 401 answer when there is none (returned at once by
/// the handler, so its size does not matter).
#[allow(clippy::result_large_err)]
fn token_hash(headers: &HeaderMap) -> Result<[u8; 32], Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    match token {
        Some(t) => Ok(Sha256::digest(t.as_bytes()).into()),
        None => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token in Authorization",
        )),
    }
}

/// Reads at most `max` bytes of a body; the 413 or 400 answer when it is longer or unreadable.
async fn body_bytes(body: Body, max: usize) -> Result<Bytes, Response> {
    match axum::body::to_bytes(body, max).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("body is larger than {max} bytes"),
                ))
            } else {
                Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "the request body could not be read",
                ))
            }
        }
    }
}

async fn upload(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let x = &st.exchange;
    let hash = match token_hash(&headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let Some(partner) = x
        .partners
        .iter()
        .find(|p| p.upload_token_sha256 == Some(hash))
    else {
        tracing::warn!("IODEF upload with an unknown token refused");
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token");
    };
    let max = x.config.max_upload_bytes;
    let mut bytes = match body_bytes(body, max).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let gz = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if gz {
        let mut out = Vec::new();
        let read = flate2::read::GzDecoder::new(&bytes[..])
            .take(max as u64 + 1)
            .read_to_end(&mut out);
        if let Err(e) = read {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("gzip body does not decompress: {e}"),
            );
        }
        if out.len() > max {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("decompressed body is larger than {max} bytes"),
            );
        }
        bytes = out.into();
    }
    let name = headers
        .get("x-filename")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("upload.xml")
        .to_owned();
    match import(&st.client, &st.db, x, &partner.id, &name, bytes).await {
        Ok(i @ Imported::Quarantined { .. }) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::to_value(i).expect("serialises"),
        ),
        Ok(i) => answer(StatusCode::OK, serde_json::to_value(i).expect("serialises")),
        Err(e) => from_error(&e, st.retry_after_secs),
    }
}

async fn report(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let x = &st.exchange;
    let hash = match token_hash(&headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let Some((reporter, _)) = x.reporters.iter().find(|(_, h)| *h == hash) else {
        tracing::warn!("Internal report with an unknown token refused");
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token");
    };
    let bytes = match body_bytes(body, MAX_REPORT_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let input: ReportInput = match serde_json::from_slice(&bytes) {
        Ok(i) => i,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("not a report: {e}"),
            )
        }
    };
    let geo = st.geo.current();
    match reports::file(&st.client, &st.db, x, &geo, reporter, input).await {
        Ok(f) => {
            let status = if f.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            answer(status, serde_json::to_value(f).expect("serialises"))
        }
        Err(e) => from_error(&e, st.retry_after_secs),
    }
}
