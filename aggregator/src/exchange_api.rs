//! The exchange's HTTP endpoints, beside the ingest API:
//!
//! - `POST /api/v1/iodef` (`Authorization: Bearer <partner upload token>`, body an IODEF v1 or
//!   v2 document, `Content-Encoding: gzip` allowed, `X-Filename` optional): 200 `{"status":
//!   "stored", ...}` or `{"status": "duplicate", ...}`; 422 `{"status": "quarantined",
//!   "reason": ...}` with every schema and semantic error (or the import cap exceeded, naming
//!   the element); 401 unknown token; 413 too large (`max_upload_bytes`, after gunzip); 503
//!   with `Retry-After` when `max_concurrent_imports` imports are running. The body is
//!   decompressed as it arrives into a spool file under `<inbox>/.uploads/` (removed once
//!   imported), never held in memory.
//! - `POST /api/v1/reports` (`Authorization: Bearer <reporter token>`, JSON
//!   [`ReportInput`](teiten_exchange::reports::ReportInput)): 201 `{"id", "colour", "rules",
//!   "duplicate": false}`, 200 with `"duplicate": true` for a report filed before; 400 not the
//!   JSON expected (with line and column); 422 a field breaks a rule (named).
//! - `GET /api/v1/outbox/{partner}/{day}` (`Authorization: Bearer <reporter token>` of a
//!   reporter with `outbox = true`, `day` as YYYYMMDD): the partner's daily file of that day as
//!   the delivery log names it, streamed from `[exchange] outbox` (`Content-Type`
//!   `application/xml` or `application/gzip`, `Content-Disposition` with its file name); 401
//!   missing or unknown token; 403 a reporter without `outbox`; 400 a partner that is not a
//!   partner id or a day that is not a date; 404 no file logged for that partner-day, or the
//!   file is no longer in the outbox. The dashboard's exchange page downloads through it.
//! - `GET /api/v1/partner/files?from=YYYY-MM-DD&to=YYYY-MM-DD&limit=N` (`Authorization:
//!   Bearer <partner download token>`, `download_token_sha256` of its `[[exchange.partner]]`):
//!   the partner's own days, newest first, `{"partner", "days": [{"date", "index",
//!   "index_signature", "files": [{"file", "format", "records", "sha256", "bytes",
//!   "revision", "signature", "manifest"}]}], "more"}`; `from` and `to` optional and
//!   inclusive, `limit` 1 to 366 (default 31); 400 a parameter that is not one of these
//!   (named); 401 missing or unknown token.
//! - `GET /api/v1/partner/files/{name}` (same token): one of the partner's own files, a
//!   daily file, its manifest, the day index or a signature, streamed with its media type and
//!   `Content-Disposition`; 404 for anything else (another partner's file, a temporary or
//!   hidden file, a link, a path), without saying which.
//!
//! ClickHouse trouble answers 503 with `Retry-After`; nothing is half-accepted: a file or report
//! is acknowledged only once stored.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::Path as UrlPath;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::http::AppState;
use teiten_exchange::import::{import, Imported};
use teiten_exchange::reports::{self, ReportInput};
use teiten_exchange::ExchangeError;

/// Path of partner uploads.
pub(crate) const IODEF_PATH: &str = "/api/v1/iodef";
/// Path of internal reports.
pub(crate) const REPORTS_PATH: &str = "/api/v1/reports";
/// Path of the daily files in the outbox.
pub(crate) const OUTBOX_PATH: &str = "/api/v1/outbox/{partner}/{day}";
/// Path of a partner's own listing of days.
pub(crate) const PARTNER_FILES_PATH: &str = "/api/v1/partner/files";
/// Path of one of a partner's own files.
pub(crate) const PARTNER_FILE_PATH: &str = "/api/v1/partner/files/{name}";
/// Most days one listing returns.
const MAX_LISTED_DAYS: usize = 366;
/// Largest report body.
const MAX_REPORT_BYTES: usize = 1 << 20;

/// The exchange routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(IODEF_PATH, post(upload))
        .route(REPORTS_PATH, post(report))
        .route(OUTBOX_PATH, get(outbox_file))
        .route(PARTNER_FILES_PATH, get(partner_days))
        .route(PARTNER_FILE_PATH, get(partner_file))
}

pub(crate) fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

pub(crate) fn refuse(status: StatusCode, error: &str, detail: impl Into<String>) -> Response {
    answer(
        status,
        serde_json::json!({"error": error, "detail": detail.into()}),
    )
}

pub(crate) fn from_error(e: &ExchangeError, retry_after: u64) -> Response {
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
pub(crate) fn token_hash(headers: &HeaderMap) -> Result<[u8; 32], Response> {
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
pub(crate) async fn body_bytes(body: Body, max: usize) -> Result<Bytes, Response> {
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

/// An upload's spool file, removed when dropped.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The decoded body went past the cap.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too large")
    }
}

impl std::error::Error for TooLarge {}

/// A file that refuses to grow past `max` bytes.
struct Capped {
    f: std::fs::File,
    n: usize,
    max: usize,
}

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.n + b.len() > self.max {
            return Err(std::io::Error::other(TooLarge));
        }
        let k = self.f.write(b)?;
        self.n += k;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.f.flush()
    }
}

fn is_too_large(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|x| x.is::<TooLarge>())
}

/// Streams the body (gunzipped with `gz`) into a new spool file under `<inbox>/.uploads/`,
/// at most `max` bytes of it compressed or not; the 413 or 400 answer otherwise.
async fn spool_body(
    inbox: &Path,
    partner: &str,
    mut body: Body,
    gz: bool,
    max: usize,
) -> Result<Spool, Response> {
    let dir = inbox.join(".uploads");
    let path = dir.join(format!("{partner}-{:016x}.xml", rand::random::<u64>()));
    let failed = |what: &str, e: std::io::Error| {
        tracing::error!(file = %path.display(), error = %e, "Cannot spool an upload ({what})");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the upload could not be stored",
        )
    };
    let f = match std::fs::create_dir_all(&dir).and_then(|()| std::fs::File::create(&path)) {
        Ok(f) => f,
        Err(e) => return Err(failed("creating", e)),
    };
    let spool = Spool(path.clone());
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let out = Capped { f, n: 0, max };
        if gz {
            let mut d = flate2::write::GzDecoder::new(out);
            while let Some(b) = rx.blocking_recv() {
                d.write_all(&b)?;
            }
            d.try_finish()?;
            d.get_mut().flush()
        } else {
            let mut out = out;
            while let Some(b) = rx.blocking_recv() {
                out.write_all(&b)?;
            }
            out.flush()
        }
    });
    let mut raw = 0usize;
    let mut read_err = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            read_err = true;
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        raw += data.len();
        if raw > max {
            drop(tx);
            let _ = writer.await;
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body is larger than {max} bytes"),
            ));
        }
        if tx.send(data).await.is_err() {
            // The writer stopped: its error is below.
            break;
        }
    }
    drop(tx);
    let written = writer.await.expect("the spool writer does not panic");
    if read_err {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the request body could not be read",
        ));
    }
    match written {
        Ok(()) => Ok(spool),
        Err(e) if is_too_large(&e) => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("decompressed body is larger than {max} bytes"),
        )),
        Err(e) if gz && e.kind() != std::io::ErrorKind::StorageFull => Err(refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("gzip body does not decompress: {e}"),
        )),
        Err(e) => Err(failed("writing", e)),
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
    // A slot first, before the body is read: imports beyond the cap wait on the client's side.
    let Ok(_slot) = x.imports.clone().try_acquire_owned() else {
        tracing::warn!(partner = %partner.id, "IODEF upload refused: all import slots busy");
        let mut r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} imports are running (max_concurrent_imports), retry later",
                x.config.max_concurrent_imports
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(st.retry_after_secs));
        return r;
    };
    let max = x.config.max_upload_bytes;
    let gz = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let spool = match spool_body(&x.config.inbox, &partner.id, body, gz, max).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = headers
        .get("x-filename")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("upload.xml")
        .to_owned();
    let result = import(&st.client, &st.db, x, &partner.id, &name, spool.0.clone()).await;
    drop(spool);
    match result {
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
    let Some(reporter) = x.reporters.iter().find(|r| r.token_sha256 == hash) else {
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
    match reports::file(&st.client, &st.db, x, &geo, &reporter.name, input).await {
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

/// `GET /api/v1/outbox/{partner}/{day}`: a partner's daily file, for reporters with `outbox`.
async fn outbox_file(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath((partner, day)): UrlPath<(String, String)>,
) -> Response {
    let x = &st.exchange;
    let hash = match token_hash(&headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let Some(reporter) = x.reporters.iter().find(|r| r.token_sha256 == hash) else {
        tracing::warn!("Outbox request with an unknown token refused");
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token");
    };
    if !reporter.outbox {
        tracing::warn!(reporter = %reporter.name, "Outbox request refused: reporter without outbox = true");
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this reporter may not read the outbox (outbox = true in its [[exchange.reporter]])",
        );
    }
    if !teiten_exchange::config::is_id(&partner) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            "partner: a partner id is 1 to 64 letters, digits, `-` or `_`",
        );
    }
    let day_number = match chrono::NaiveDate::parse_from_str(&day, "%Y%m%d") {
        Ok(d) if day.len() == 8 => teiten_store::time::date_number(d),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("day: `{}` is not a date as YYYYMMDD", day.escape_debug()),
            )
        }
    };
    let days =
        match teiten_exchange::deliver::status(&st.client, &st.db, day_number, day_number).await {
            Ok(d) => d,
            Err(e) => return from_error(&e, st.retry_after_secs),
        };
    let gone = || {
        refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the file of {partner} for {day} is no longer in the outbox"),
        )
    };
    let Some(logged) = days.into_iter().find(|d| d.partner == partner) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no daily file of {partner} for {day} was generated"),
        );
    };
    if !teiten_exchange::outbox::plain_name(&logged.file) {
        tracing::warn!(partner = %partner, day = %day, "The delivery log names no plain file; not served");
        return gone();
    }
    let path = x.config.outbox.join(&partner).join(&logged.file);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return gone(),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "Cannot open a daily file");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the file could not be read",
            );
        }
    };
    let kind = if logged.file.ends_with(".gz") {
        "application/gzip"
    } else {
        "application/xml"
    };
    tracing::info!(reporter = %reporter.name, partner = %partner, day = %day, "Daily file served from the outbox");
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", logged.file.replace('"', "")),
            ),
        ],
        body,
    )
        .into_response()
}

/// The partner whose download token the request bears, or the 401 answer.
#[allow(clippy::result_large_err)]
fn downloader<'a>(
    x: &'a teiten_exchange::config::Exchange,
    headers: &HeaderMap,
) -> Result<&'a teiten_exchange::config::Partner, Response> {
    let hash = token_hash(headers)?;
    x.partners
        .iter()
        .find(|p| p.download_token_sha256 == Some(hash))
        .ok_or_else(|| {
            tracing::warn!("Partner download with an unknown token refused");
            refuse(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token")
        })
}

/// The query of a partner's listing.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DaysQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

/// A `YYYY-MM-DD` parameter, or the 400 answer naming it.
#[allow(clippy::result_large_err)]
fn date_param(name: &str, v: Option<&str>) -> Result<Option<chrono::NaiveDate>, Response> {
    let Some(v) = v else { return Ok(None) };
    match chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) if v.len() == 10 => Ok(Some(d)),
        _ => Err(refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!(
                "{name}: `{}` is not a date as YYYY-MM-DD",
                v.chars().take(40).collect::<String>().escape_debug()
            ),
        )),
    }
}

/// `GET /api/v1/partner/files`: the days in the partner's own outbox.
async fn partner_days(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<DaysQuery>, QueryRejection>,
) -> Response {
    let x = &st.exchange;
    let partner = match downloader(x, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!(
                    "{} (parameters: from, to as YYYY-MM-DD; limit 1 to {MAX_LISTED_DAYS})",
                    e.body_text()
                ),
            )
        }
    };
    let (from, to) = match (
        date_param("from", q.from.as_deref()),
        date_param("to", q.to.as_deref()),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 31,
        Some(Ok(n)) if (1..=MAX_LISTED_DAYS).contains(&n) => n,
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!(
                    "limit: `{}` is not a number between 1 and {MAX_LISTED_DAYS}",
                    q.limit
                        .unwrap_or_default()
                        .chars()
                        .take(40)
                        .collect::<String>()
                        .escape_debug()
                ),
            )
        }
    };
    let dir = x.config.outbox.join(&partner.id);
    let id = partner.id.clone();
    let listed = tokio::task::spawn_blocking(move || {
        teiten_exchange::outbox::list_days(&dir, &id, from, to, limit)
    })
    .await;
    match listed {
        Ok(Ok((days, more))) => {
            tracing::info!(partner = %partner.id, days = days.len(), "Partner listed its files");
            answer(
                StatusCode::OK,
                serde_json::json!({"partner": partner.id, "days": days, "more": more}),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(partner = %partner.id, error = %e, "Cannot list a partner's outbox");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the outbox could not be read",
            )
        }
        Err(e) => {
            tracing::error!(partner = %partner.id, error = %e, "Listing a partner's outbox failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the listing failed",
            )
        }
    }
}

/// `GET /api/v1/partner/files/{name}`: one of the partner's own files.
async fn partner_file(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let x = &st.exchange;
    let partner = match downloader(x, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let not_found = || refuse(StatusCode::NOT_FOUND, "not_found", "no such file");
    let dir = x.config.outbox.join(&partner.id);
    let wanted = name.clone();
    let opened = tokio::task::spawn_blocking(move || teiten_exchange::outbox::open(&dir, &wanted))
        .await
        .ok()
        .flatten();
    let Some(file) = opened else {
        tracing::info!(partner = %partner.id, "Partner asked for a file it has not got");
        return not_found();
    };
    tracing::info!(partner = %partner.id, file = %name, "Partner file served");
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(file),
    ));
    (
        [
            (
                header::CONTENT_TYPE,
                teiten_exchange::outbox::content_type(&name).to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace('"', "")),
            ),
        ],
        body,
    )
        .into_response()
}
