//! `/metrics` against a real ClickHouse 18.16: only a scraper with the configured bearer token
//! reads it; requests, latency, cache hits and misses and ClickHouse errors move as pages are
//! requested; labels are route templates and nothing names a sensor.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use common::{get, request, start_with, DB};
use teiten_dashboard::{app, AppState, Config};

const TOKEN: &str = "scraper token 1";

async fn scrape(app: &axum::Router, token: Option<&str>) -> common::Answer {
    let mut b = Request::get("/metrics");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    request(app, b.body(Body::empty()).unwrap()).await
}

/// The value of the sample `name{labels}` (0 when absent: a counter not yet created).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{series}: {v:?}"))
        })
        .unwrap_or(0.0)
}

async fn metrics(app: &axum::Router) -> String {
    let a = scrape(app, Some(TOKEN)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        a.headers
    );
    a.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_cache_and_clickhouse_errors() {
    let hash = teiten_service::token_hash(TOKEN);
    let env = start_with(20_000, &format!("[metrics]\ntoken_sha256 = \"{hash}\"\n"));
    let app = &env.app;

    // Only the scraper may read it.
    let a = scrape(app, None).await;
    assert_eq!(a.status, 401, "{}", a.text());
    assert_eq!(a.headers["www-authenticate"], "Bearer");
    assert_eq!(scrape(app, Some("wrong")).await.status, 401);
    let cookie = common::analyst_cookie(&env);
    let a = get(app, "/metrics", Some(&cookie)).await;
    assert_eq!(
        a.status, 401,
        "an analyst session is not the scraper's token"
    );

    let before = metrics(app).await;
    let ports_ok =
        "teiten_dashboard_requests_total{endpoint=\"/api/v1/ports.json\",status=\"2xx\"}";
    let ports_bad =
        "teiten_dashboard_requests_total{endpoint=\"/api/v1/ports.json\",status=\"4xx\"}";
    let ports_5xx =
        "teiten_dashboard_requests_total{endpoint=\"/api/v1/ports.json\",status=\"5xx\"}";
    let ports_latency = "teiten_dashboard_request_seconds_count{endpoint=\"/api/v1/ports.json\"}";
    let chart_ok = "teiten_dashboard_requests_total{endpoint=\"/chart/ports.svg\",status=\"2xx\"}";
    let unmatched = "teiten_dashboard_requests_total{endpoint=\"unmatched\",status=\"4xx\"}";
    let hits = "teiten_dashboard_cache_hits_total{cache=\"graphs\"}";
    let misses = "teiten_dashboard_cache_misses_total{cache=\"graphs\"}";
    let ch_errors = "teiten_dashboard_clickhouse_errors_total";
    assert_eq!(sample(&before, ports_ok), 0.0, "{before}");
    assert_eq!(sample(&before, ch_errors), 0.0, "{before}");
    // The scrapes so far are counted too (3 refused, then this one in progress: not yet).
    assert_eq!(
        sample(
            &before,
            "teiten_dashboard_requests_total{endpoint=\"/metrics\",status=\"4xx\"}"
        ),
        3.0,
        "{before}"
    );

    // Public pages: the same graph twice (one miss, then a hit), a chart drawn from it
    // (a graph-cache hit), a bad parameter, a path that is no route.
    for _ in 0..2 {
        let a = get(app, "/api/v1/ports.json?top=5", None).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let a = get(app, "/chart/ports.svg?top=5", None).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(get(app, "/api/v1/ports.json?top=0", None).await.status, 400);
    assert_eq!(
        get(app, "/no/such/page?sensor=tokyo-1", None).await.status,
        404
    );

    let after = metrics(app).await;
    assert_eq!(sample(&after, ports_ok), 2.0, "{after}");
    assert_eq!(sample(&after, ports_bad), 1.0, "{after}");
    assert_eq!(sample(&after, ports_latency), 3.0, "{after}");
    assert_eq!(sample(&after, chart_ok), 1.0, "{after}");
    assert_eq!(sample(&after, unmatched), 1.0, "{after}");
    assert!(
        sample(&after, hits) >= sample(&before, hits) + 2.0,
        "the second ports.json and the chart come from the graph cache:\n{after}"
    );
    assert!(
        sample(&after, misses) > sample(&before, misses),
        "the first ports.json missed:\n{after}"
    );
    assert_eq!(
        sample(
            &after,
            "teiten_dashboard_requests_total{endpoint=\"/metrics\",status=\"2xx\"}"
        ),
        1.0,
        "{after}"
    );
    // Bounded labels: templates, never raw paths, queries or sensor ids.
    for leak in ["/no/such/page", "top=", "tokyo-1", "osaka-1"] {
        assert!(!after.contains(leak), "`{leak}` in /metrics:\n{after}");
    }

    // ClickHouse fails: the answer is a 5xx and the error is counted.
    env.ch
        .query(&format!("DROP DATABASE {DB}"))
        .expect("dropping the database");
    let a = get(app, "/api/v1/ports.json?top=7", None).await;
    assert!(a.status.is_server_error(), "{} {}", a.status, a.text());
    let failed = metrics(app).await;
    assert_eq!(sample(&failed, ch_errors), 1.0, "{failed}");
    assert_eq!(sample(&failed, ports_5xx), 1.0, "{failed}");
}

/// Without `metrics.token_sha256` nobody reads `/metrics`: it is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_without_a_token() {
    let env = start_with(1_000, "");
    let toml = format!(
        "[clickhouse]\nurl = \"{}\"\ndatabase = \"{DB}\"\n",
        env.ch.url()
    );
    let settings = Config::parse(&toml, "test").unwrap().validate().unwrap();
    let client = teiten_dashboard::client(&settings);
    let app = app(Arc::new(AppState::new(settings, client)));
    let a = scrape(&app, Some(TOKEN)).await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert_eq!(get(&app, "/health", None).await.status, 200);
    // The app built by start_with has no token either.
    assert_eq!(scrape(&env.app, None).await.status, 404);
}
