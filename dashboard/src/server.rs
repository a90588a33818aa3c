//! Running the dashboard: the ClickHouse client, the font, the listener, signals.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

use crate::chart::load_font;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::http::{app, AppState};

/// The read-only ClickHouse client, built like the aggregator's (RowBinary without schema
/// validation: 18.16 lacks RowBinaryWithNamesAndTypes).
pub fn client(settings: &Settings) -> clickhouse::Client {
    teiten_aggregator::client(&settings.config.clickhouse)
}

/// Serves until SIGTERM or SIGINT (open requests finish first).
pub async fn serve(settings: Settings) -> Result<()> {
    load_font(&settings.config.font)?;
    let listen = settings.config.listen;
    let state = Arc::new(AppState::new(settings.clone(), client(&settings)));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Io {
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
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("Shutting down");
        })
        .await
        .map_err(io("serving HTTP"))
}
