//! Prometheus metrics, served as text on `/metrics` to a scraper holding the bearer token of
//! `metrics.token_sha256`. Labels are bounded: an endpoint is a route template (never a raw
//! path or query), a status is a class (`2xx`...), a cache is one of three names; nothing is
//! labelled by sensor, address or user.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use crate::error::HttpError;
use crate::http::AppState;

/// The endpoint label of requests that matched no route.
pub(crate) const UNMATCHED: &str = "unmatched";

/// Labels of a request count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template, or [`UNMATCHED`].
    endpoint: String,
    /// `1xx` to `5xx`.
    status: &'static str,
}

/// The label of a latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

/// The label of a cache counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    /// `graphs`, `images` or `sensors`.
    cache: &'static str,
}

/// Marks a response that failed because of ClickHouse (set by [`HttpError`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClickHouseFailed;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the dashboard exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    cache_hits: Family<CacheLabel, Counter>,
    cache_misses: Family<CacheLabel, Counter>,
    /// ClickHouse queries that failed (in requests and in the background trends refresh).
    pub(crate) clickhouse_errors: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("teiten_dashboard");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            clickhouse_errors: Counter::default(),
            registry: Registry::default(),
        };
        teiten_service::register_metrics!(registry, m, {
            requests: "HTTP requests answered, by route template and status class",
            request_seconds: "Seconds from request to response headers, by route template",
            cache_hits: "Lookups answered from the per-query cache, by cache",
            cache_misses: "Lookups the per-query cache could not answer, by cache",
            clickhouse_errors: "ClickHouse queries that failed",
        });
        Metrics { registry, ..m }
    }

    /// The hit and miss counters of the cache `name`.
    pub(crate) fn cache_counters(&self, name: &'static str) -> (Counter, Counter) {
        let l = CacheLabel { cache: name };
        (
            self.cache_hits.get_or_create(&l).clone(),
            self.cache_misses.get_or_create(&l).clone(),
        )
    }

    /// Counts one answered request.
    fn observe(&self, endpoint: &str, status: StatusCode, seconds: f64) {
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_owned(),
                status: class,
            })
            .inc();
        self.request_seconds
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_owned(),
            })
            .observe(seconds);
    }

    /// The Prometheus text.
    fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware: counts every request by its route template and times it.
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED.to_owned());
    let start = Instant::now();
    let res = next.run(req).await;
    let m = &state.metrics;
    if res.extensions().get::<ClickHouseFailed>().is_some() {
        m.clickhouse_errors.inc();
    }
    m.observe(&endpoint, res.status(), start.elapsed().as_secs_f64());
    res
}

/// `GET /metrics`: 404 without `metrics.token_sha256`; 401 without the right bearer token.
pub(crate) async fn serve(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(want) = &state.settings.metrics_token else {
        return HttpError::NotFound.into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| teiten_service::token_hash(t.trim()));
    let ok = given
        .and_then(|h| hex::decode(h).ok())
        .is_some_and(|h| bool::from(h.as_slice().ct_eq(want.as_slice())));
    if !ok {
        let mut res = (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "/metrics needs Authorization: Bearer with the token of metrics.token_sha256\n",
        )
            .into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_template_and_class() {
        let m = Metrics::new();
        m.observe("/chart/ports.png", StatusCode::OK, 0.01);
        m.observe("/chart/ports.png", StatusCode::BAD_REQUEST, 0.002);
        let (hits, misses) = m.cache_counters("graphs");
        hits.inc();
        misses.inc_by(2);
        m.clickhouse_errors.inc();
        let text = m.render();
        for line in [
            "teiten_dashboard_requests_total{endpoint=\"/chart/ports.png\",status=\"2xx\"} 1",
            "teiten_dashboard_requests_total{endpoint=\"/chart/ports.png\",status=\"4xx\"} 1",
            "teiten_dashboard_request_seconds_count{endpoint=\"/chart/ports.png\"} 2",
            "teiten_dashboard_cache_hits_total{cache=\"graphs\"} 1",
            "teiten_dashboard_cache_misses_total{cache=\"graphs\"} 2",
            "teiten_dashboard_clickhouse_errors_total 1",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
    }
}
