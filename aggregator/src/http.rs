//! The HTTP API: batch ingest, health and metrics.
//!
//! `POST /api/v1/batches` (`Authorization: Bearer <token>`, `Content-Type:
//! application/x-teiten-batch`, body from `teiten_wire::encode`) answers:
//! - 200 with an [`Ack`] once the batch is committed (or was committed before);
//! - 401 unknown, revoked or missing token; 403 the token belongs to another sensor;
//! - 413 body, decompressed batch or event count over the limits; 415 wrong content type;
//! - 400 not a batch (bad magic, corrupt compression, undecodable payload); 422 a batch that
//!   breaks a rule of the format (`invalid`), or whose seal or event times lie outside the
//!   window around the aggregator's clock and the seal time (`clock_skew`, see [`TimeWindow`];
//!   the sensor sets such a batch aside and goes on with the next);
//! - 422 `storage_rejected` when ClickHouse refuses the batch with a permanent error (the
//!   schema does not match, the data is refused, the aggregator's ClickHouse user lacks a
//!   right: see [`teiten_store::Cause::of`]), so that the sensor sets it aside instead of
//!   retrying it forever; `cause` names it (`"schema: No such column withheld in table
//!   teiten.scan_events"`);
//! - 503 with `Retry-After` when ClickHouse is slow or down (a transient error, with its
//!   `cause`), the batch is being written by another request, or an INSERT it shared with
//!   other batches was refused for a reason that may be another batch's (`retry_alone`: sent
//!   again, it is written alone).
//!
//! The exchange's endpoints (`/api/v1/iodef`, `/api/v1/reports`) are described in
//! `crate::exchange_api`.
//!
//! Every refusal has a JSON body `{"error": reason, "detail": text}` (plus `cause` for
//! ClickHouse errors: never a URL, address, user or password), is logged with the cause
//! (never the token) and counted by reason.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::BytesMut;
use http_body_util::BodyExt;
use teiten_wire::{Ack, AckStatus, Limits, WireError, CONTENT_TYPE, INGEST_PATH};

use crate::metrics::{Metrics, ReasonLabel};
use crate::registry::{Auth, Cache};
use crate::store::{Enriched, Outcome, Store, StoreError};
use teiten_store::geo::{Geo, UNKNOWN};
use teiten_store::sources::SourcePolicy;

/// What the handlers share.
pub struct AppState {
    /// Storage.
    pub store: Arc<Store>,
    /// Authentication.
    pub registry: Arc<Cache>,
    /// Country lookups.
    pub geo: Geo,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Decoding limits.
    pub limits: Limits,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Retry-After seconds for 503.
    pub retry_after_secs: u64,
    /// Batch requests allowed in progress at once.
    pub requests: Arc<tokio::sync::Semaphore>,
    /// The IODEF exchange (partner uploads, internal reports).
    pub exchange: Arc<teiten_exchange::config::Exchange>,
    /// ClickHouse, for the exchange endpoints.
    pub client: clickhouse::Client,
    /// The database.
    pub db: String,
    /// Which sources are withheld from partners and public counts.
    pub sources: Arc<SourcePolicy>,
    /// The accepted times of a batch.
    pub time_window: TimeWindow,
}

/// The times a batch may carry, from `[ingest]`: its seal time at most `max_skew` ahead of
/// the aggregator's clock and at most `max_batch_age` behind it; each event's time at most
/// `max_event_age` before the seal time and at most `max_skew` after it (and so never more
/// than twice `max_skew` ahead of the clock). All in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// `ingest.max_clock_skew_secs`.
    pub max_skew_us: i64,
    /// `ingest.max_event_age_secs`.
    pub max_event_age_us: i64,
    /// `ingest.max_batch_age_days`.
    pub max_batch_age_us: i64,
}

impl TimeWindow {
    /// The window of a checked `[ingest]`.
    pub fn from_config(i: &crate::config::IngestConfig) -> TimeWindow {
        let us = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX / 2_000_000) * 1_000_000;
        TimeWindow {
            max_skew_us: us(i.max_clock_skew_secs),
            max_event_age_us: us(i.max_event_age_secs),
            max_batch_age_us: us(i.max_batch_age_days.saturating_mul(86_400)),
        }
    }

    /// Checks a batch at aggregator time `now_us`; the error says which time is wrong, by how
    /// much, and which setting bounds it.
    pub fn check(&self, batch: &teiten_wire::Batch, now_us: i64) -> Result<(), String> {
        let sealed = batch.sealed_us;
        let secs = |us: i64| us.saturating_abs() / 1_000_000;
        let fix = "check the sensor's clock (NTP)";
        // The seal time is `side` of the clock by more than `bound` (the `setting`).
        let off = |side: &str, bound: String, setting: &str| {
            format!(
                "the batch's seal time {} is {} s {side} the aggregator's clock ({}); at most \
                 {bound} are accepted ({setting}): {fix}",
                rfc3339(sealed),
                secs(sealed - now_us),
                rfc3339(now_us),
            )
        };
        if sealed > now_us.saturating_add(self.max_skew_us) {
            let bound = format!("{} s", secs(self.max_skew_us));
            return Err(off("ahead of", bound, "ingest.max_clock_skew_secs"));
        }
        if sealed < now_us.saturating_sub(self.max_batch_age_us) {
            let bound = format!("{} days", self.max_batch_age_us / 86_400_000_000);
            return Err(off("behind", bound, "ingest.max_batch_age_days"));
        }
        let lo = sealed.saturating_sub(self.max_event_age_us);
        let hi = sealed.saturating_add(self.max_skew_us);
        if let Some((i, e)) = batch
            .events
            .iter()
            .enumerate()
            .find(|(_, e)| e.ts_us < lo || e.ts_us > hi)
        {
            let (how, limit, field) = if e.ts_us < lo {
                ("before", self.max_event_age_us, "ingest.max_event_age_secs")
            } else {
                ("after", self.max_skew_us, "ingest.max_clock_skew_secs")
            };
            return Err(format!(
                "event {i}'s time {} is {} s {how} the batch's seal time {}; at most {} s are \
                 accepted ({field}): {fix}",
                rfc3339(e.ts_us),
                secs(e.ts_us - sealed),
                rfc3339(sealed),
                secs(limit)
            ));
        }
        Ok(())
    }
}

/// Microseconds since the epoch as RFC 3339 (UTC, seconds), or the number when out of range.
fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp(us.div_euclid(1_000_000), 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{us} us"))
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("limits", &self.limits)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP app (tests call it without a socket).
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route(INGEST_PATH, post(ingest))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(crate::exchange_api::routes())
        .merge(crate::cases_api::routes())
        // The ingest handler enforces its own limit with a reason in the answer.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// A refused request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// No valid token.
    #[error("{0}")]
    Unauthorized(String),
    /// The token is not the batch's sensor's.
    #[error("{0}")]
    Forbidden(String),
    /// Wrong content type.
    #[error("content type must be {CONTENT_TYPE}")]
    UnsupportedMediaType,
    /// Over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Not decodable.
    #[error("{0}")]
    Malformed(WireError),
    /// Decodable, but breaks a rule.
    #[error("{0}")]
    Invalid(WireError),
    /// Seal or event times outside the [`TimeWindow`].
    #[error("{0}")]
    ClockSkew(String),
    /// Retry later.
    #[error("{0}")]
    Unavailable(StoreError),
    /// ClickHouse refuses the batch with a permanent error: do not send it again.
    #[error("{0}")]
    StorageRejected(StoreError),
}

impl Reject {
    /// The metric label and JSON `error` value.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Unauthorized(_) => "unauthorized",
            Reject::Forbidden(_) => "forbidden",
            Reject::UnsupportedMediaType => "unsupported_media_type",
            Reject::TooLarge(_) => "too_large",
            Reject::Malformed(_) => "malformed",
            Reject::Invalid(_) => "invalid",
            Reject::ClockSkew(_) => "clock_skew",
            Reject::Unavailable(StoreError::Busy) => "busy",
            Reject::Unavailable(StoreError::InFlight) => "in_flight",
            Reject::Unavailable(StoreError::ShuttingDown) => "shutting_down",
            Reject::Unavailable(StoreError::Unattributed(_)) => "retry_alone",
            Reject::Unavailable(_) => "unavailable",
            Reject::StorageRejected(_) => "storage_rejected",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Reject::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Reject::Forbidden(_) => StatusCode::FORBIDDEN,
            Reject::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reject::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::Malformed(_) => StatusCode::BAD_REQUEST,
            Reject::Invalid(_) | Reject::ClockSkew(_) | Reject::StorageRejected(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Reject::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Detail for the client: never internals of ClickHouse.
    fn detail(&self) -> String {
        match self {
            Reject::Unavailable(StoreError::ClickHouse(_)) => {
                "storage is unavailable, retry later".into()
            }
            Reject::Unavailable(StoreError::Unattributed(_)) => {
                "the INSERT this batch shared with others was refused; retry, it will be written \
                 alone"
                    .into()
            }
            Reject::StorageRejected(_) => {
                "the aggregator's ClickHouse refuses this batch until an operator fixes the \
                 cause; do not send it again"
                    .into()
            }
            other => other.to_string(),
        }
    }

    /// The classified ClickHouse error behind a refusal, as the client may see it.
    fn cause(&self) -> Option<String> {
        match self {
            Reject::Unavailable(e) | Reject::StorageRejected(e) => e.cause().map(|c| c.public()),
            _ => None,
        }
    }
}

/// A refusal on its way out, with what it needs to answer.
struct Refusal {
    reject: Reject,
    sensor: Option<String>,
    metrics: Arc<Metrics>,
    retry_after: u64,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let r = &self.reject;
        self.metrics
            .batches_rejected
            .get_or_create(&ReasonLabel { reason: r.reason() })
            .inc();
        let sensor = self.sensor.as_deref().unwrap_or("-");
        let cause = r.cause();
        match r {
            Reject::StorageRejected(e) => {
                let c = e.cause();
                tracing::error!(
                    sensor, reason = r.reason(), cause = cause.as_deref().unwrap_or(""),
                    code = c.as_ref().and_then(|c| c.code), error = %e,
                    "Batch refused: ClickHouse rejects it until an operator acts; the sensor sets it aside"
                )
            }
            Reject::Unavailable(StoreError::ClickHouse(e)) => {
                tracing::error!(
                    sensor, reason = r.reason(), cause = cause.as_deref().unwrap_or(""), error = %e,
                    "Batch not stored"
                )
            }
            Reject::Unavailable(_) => {
                tracing::warn!(sensor, reason = r.reason(), error = %r, "Batch deferred")
            }
            _ => tracing::warn!(sensor, reason = r.reason(), error = %r, "Batch rejected"),
        }
        let mut body = serde_json::json!({"error": r.reason(), "detail": r.detail()});
        if let Some(c) = cause {
            body["cause"] = c.into();
        }
        let body = Json(body);
        let mut resp = (r.status(), body).into_response();
        if let Reject::Unavailable(e) = r {
            let secs = if matches!(e, StoreError::InFlight | StoreError::Unattributed(_)) {
                1
            } else {
                self.retry_after
            };
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn ingest(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let mut sensor = None;
    match ingest_inner(&st, &headers, body, &mut sensor).await {
        Ok(ack) => Json(ack).into_response(),
        Err(reject) => Refusal {
            reject,
            sensor,
            metrics: st.metrics.clone(),
            retry_after: st.retry_after_secs,
        }
        .into_response(),
    }
}

async fn ingest_inner(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    sensor: &mut Option<String>,
) -> Result<Ack, Reject> {
    let Some(token) = bearer(headers) else {
        return Err(Reject::Unauthorized(
            "missing bearer token in Authorization".into(),
        ));
    };
    let who = match st.registry.authenticate(token).await {
        Auth::Sensor(id) => id,
        Auth::Revoked(id) => {
            *sensor = Some(id);
            return Err(Reject::Unauthorized("sensor is revoked".into()));
        }
        Auth::Unknown => return Err(Reject::Unauthorized("unknown token".into())),
    };
    *sensor = Some(who.clone());
    let Ok(_slot) = st.requests.clone().try_acquire_owned() else {
        return Err(Reject::Unavailable(StoreError::Busy));
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some(CONTENT_TYPE) {
        return Err(Reject::UnsupportedMediaType);
    }
    let bytes = read_body(body, st.max_body_bytes).await?;
    let limits = st.limits;
    let geo = st.geo.current();
    let sources = st.sources.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let mut batch = teiten_wire::decode(&bytes, limits)?;
        for e in &mut batch.events {
            sources.mark_research(e);
        }
        let withheld = batch.events.iter().map(|e| sources.of_event(e)).collect();
        let mut unknown = 0u32;
        let mut unknown_asn = 0u32;
        let n = batch.events.len();
        let (mut countries, mut asns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for o in geo.origins(batch.events.iter().map(|e| e.src)) {
            countries.push(o.country.unwrap_or_else(|| {
                unknown += 1;
                UNKNOWN
            }));
            asns.push(o.asn.unwrap_or_else(|| {
                unknown_asn += 1;
                0
            }));
        }
        Ok::<_, WireError>((
            Enriched {
                batch,
                countries,
                asns,
                unknown,
                withheld,
            },
            unknown_asn,
        ))
    })
    .await
    .map_err(|e| Reject::Malformed(WireError::Invalid(format!("decoder failed: {e}"))))?;
    let (data, unknown_asn) = decoded.map_err(|e| match e {
        WireError::TooLarge { .. } | WireError::TooManyEvents { .. } => {
            Reject::TooLarge(e.to_string())
        }
        WireError::Invalid(_) => Reject::Invalid(e),
        _ => Reject::Malformed(e),
    })?;
    if data.batch.id.sensor_id != who {
        return Err(Reject::Forbidden(format!(
            "token of sensor {who} used for a batch of sensor {}",
            data.batch.id.sensor_id
        )));
    }
    // Refused before it reaches a shared INSERT: a batch with absurd times must not fail
    // (or spread partitions through) the INSERT that carries other sensors' batches.
    st.time_window
        .check(&data.batch, teiten_store::time::now_us())
        .map_err(Reject::ClockSkew)?;
    st.metrics.geo_unknown.inc_by(u64::from(data.unknown));
    st.metrics.asn_unknown.inc_by(u64::from(unknown_asn));
    st.metrics
        .geo_lookups
        .inc_by(data.batch.events.len() as u64);
    let seq = data.batch.id.seq;
    match st.store.submit(data).await {
        Ok(Outcome::Stored(n)) => Ok(Ack {
            seq,
            status: AckStatus::Stored,
            stored: n,
        }),
        Ok(Outcome::Duplicate) => Ok(Ack {
            seq,
            status: AckStatus::Duplicate,
            stored: 0,
        }),
        Err(e) if e.is_permanent() => Err(Reject::StorageRejected(e)),
        Err(e) => Err(Reject::Unavailable(e)),
    }
}

/// Most bytes of an oversized body read and thrown away before answering 413, so that a
/// client still sending gets the answer rather than a broken connection.
const DRAIN_CAP: usize = 256 << 20;

/// Reads the body up to `max` bytes; beyond it keeps reading (without storing) up to
/// [`DRAIN_CAP`] and refuses with 413.
async fn read_body(body: Body, max: usize) -> Result<Bytes, Reject> {
    let mut body = body;
    let mut buf = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Reject::Malformed(WireError::Invalid(
                "the request body could not be read".into(),
            )));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            buf.extend_from_slice(&data);
        } else {
            buf = BytesMut::new();
            if seen > DRAIN_CAP {
                break;
            }
        }
    }
    if seen > max {
        return Err(Reject::TooLarge(format!("body is larger than {max} bytes")));
    }
    Ok(buf.freeze())
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    if st.store.ping().await {
        (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "clickhouse unavailable"})),
        )
            .into_response()
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use teiten_wire::{Batch, BatchId, Class, Event, SensorStats, Tags};

    fn batch(sealed_us: i64, times: &[i64]) -> Batch {
        Batch {
            id: BatchId {
                sensor_id: "s".into(),
                epoch: 1,
                seq: 1,
            },
            sealed_us,
            stats: SensorStats::default(),
            events: times
                .iter()
                .map(|t| Event {
                    ts_us: *t,
                    proto: 6,
                    src: "1.0.0.1".parse().unwrap(),
                    dst: "198.18.1.1".parse().unwrap(),
                    sport: 1,
                    dport: 23,
                    tcp_flags: 2,
                    ttl: 50,
                    ip_id: 1,
                    ip_len: 40,
                    seq: 1,
                    window: 1024,
                    class: Class::Scan,
                    tags: Tags::empty(),
                })
                .collect(),
        }
    }

    #[test]
    fn time_window_names_the_time_and_the_setting() {
        let i: crate::config::IngestConfig = toml::from_str("").unwrap();
        let w = TimeWindow::from_config(&i);
        let s = 1_000_000;
        let now = 1_763_700_000 * s;
        assert!(w.check(&batch(now, &[now - 3600 * s, now]), now).is_ok());
        // A spooled batch from last week is fine; from last year it is not.
        assert!(w.check(&batch(now - 7 * 86_400 * s, &[]), now).is_ok());
        let e = w
            .check(&batch(now - 400 * 86_400 * s, &[]), now)
            .unwrap_err();
        assert!(
            e.contains("behind") && e.contains("ingest.max_batch_age_days"),
            "{e}"
        );
        let e = w.check(&batch(now + 3600 * s, &[]), now).unwrap_err();
        assert!(
            e.contains("3600 s ahead") && e.contains("max_clock_skew_secs"),
            "{e}"
        );
        let e = w.check(&batch(now, &[now, 0]), now).unwrap_err();
        assert!(
            e.starts_with("event 1's time 1970-01-01T00:00:00Z is 1763700000 s before"),
            "{e}"
        );
        assert!(e.contains("ingest.max_event_age_secs"), "{e}");
        let e = w.check(&batch(now, &[now + 301 * s]), now).unwrap_err();
        assert!(e.contains("301 s after"), "{e}");
        let e = w.check(&batch(now, &[i64::MAX]), now).unwrap_err();
        assert!(e.contains("after"), "{e}");
        assert_eq!(
            Reject::ClockSkew(e).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
