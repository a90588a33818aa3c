//! Running the dashboard: the ClickHouse client, the font, the listener, signals.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

use crate::chart::load_font;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::http::{app, AppState};

/// The ClickHouse client of the dashboard's queries, built like the aggregator's (RowBinary
/// without schema validation: 18.16 lacks RowBinaryWithNamesAndTypes): as `query.user` when
/// one is configured, and with `max_execution_time` = `query.max_execution_secs`.
pub fn client(settings: &Settings) -> clickhouse::Client {
    let mut ch = settings.config.clickhouse.clone();
    let q = &settings.config.query;
    if let Some(user) = &q.user {
        ch.user = user.clone();
        ch.password = q.password.clone();
    }
    teiten_store::client(&ch).with_option("max_execution_time", q.max_execution_secs.to_string())
}

/// Serves until SIGTERM or SIGINT (open requests finish first).
pub async fn serve(settings: Settings) -> Result<()> {
    load_font(&settings.config.font)?;
    let listen = settings.config.listen;
    let mut state = AppState::new(settings.clone(), client(&settings));
    if let Some(r) = &settings.config.reports {
        let aggregator = crate::reports::Aggregator::load(r)?;
        tracing::info!(aggregator = %aggregator.url(), "Internal reports are filed and daily files downloaded through the aggregator");
        state = state.with_aggregator(aggregator);
    }
    match teiten_store::GeoDb::load(&settings.config.geo) {
        Ok(geo) => state = state.with_geo(geo),
        Err(e) => {
            tracing::warn!(error = %e, "No network database: the address page names no network")
        }
    }
    let state = Arc::new(state);
    let refresh = settings.config.trends.refresh_secs;
    if refresh > 0 {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(refresh));
            loop {
                tick.tick().await;
                let t = std::time::Instant::now();
                match state.refresh_trends().await {
                    Ok(_) => {
                        tracing::debug!(ms = t.elapsed().as_millis() as u64, "Trends computed")
                    }
                    Err(e) => {
                        if matches!(e, Error::ClickHouse { .. }) {
                            state.metrics.clickhouse_errors.inc();
                        }
                        tracing::warn!(error = %e, "Computing the trends failed; retrying at the next refresh")
                    }
                }
            }
        });
    }
    let listener = teiten_service::http_server::bind(listen).map_err(|source| Error::Io {
        what: format!("listening on {listen}"),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        what: "reading the listen address".into(),
        source,
    })?;
    tracing::info!(listen = %local, "Dashboard listening");
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| Error::Io { what, source }
    };
    let mut term = signal(SignalKind::terminate()).map_err(io("installing SIGTERM"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("installing SIGINT"))?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("Shutting down");
    };
    teiten_service::http_server::serve(listener, app(state), &settings.config.server, shutdown)
        .await
        .map_err(io("serving HTTP"))
}
