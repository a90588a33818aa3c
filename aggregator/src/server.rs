//! Running the aggregator: clients, migrations, the HTTP server, background tasks, signals and
//! an orderly shutdown (stop accepting, let open requests finish, end the open INSERTs).

use std::sync::Arc;
use std::time::Duration;

use teiten_store::time::{self, now_us};

use teiten_wire::Limits;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Settings;
use crate::http::{app, AppState};
use crate::metrics::Metrics;
use crate::registry::Cache;
use crate::store::Store;
use teiten_store::geo::{Geo, GeoDb};
use teiten_store::migrate::migrate;
use teiten_store::retention;
use teiten_store::schema::Layout;
use teiten_store::{client, client_for, ClickHouseConfig};
use teiten_store::{Error, Result};

/// How long the writer may take to end its INSERTs at shutdown.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// Applies the schema on the server, or on every node in cluster mode.
pub async fn migrate_all(ch: &ClickHouseConfig) -> Result<Vec<String>> {
    let layout = Layout::from_config(ch);
    let mut applied = Vec::new();
    let nodes = if ch.nodes.is_empty() {
        vec![ch.url.clone()]
    } else {
        ch.nodes.clone()
    };
    for url in &nodes {
        for step in migrate(&client_for(ch, url), &ch.database, &layout).await? {
            applied.push(format!("{url}: {step}"));
        }
    }
    Ok(applied)
}

/// Runs retention once on the server, or on every node (every shard once, with replicated
/// tables: [`retention::run_all`]).
pub async fn retention_all(settings: &Settings) -> Result<Vec<String>> {
    let r = &settings.config.retention;
    let now = now_us().div_euclid(1_000_000);
    retention::run_all(&settings.config.clickhouse, now, r.raw_days, r.rollup_days).await
}

/// Seals the port digests of every day over within the rollups' retention that has none or an
/// out-of-date one ([`teiten_store::digest`]); returns the days sealed (YYYYMMDD). `progress`
/// counts the days (`indicatif::ProgressBar::hidden()` shows nothing).
pub async fn seal_digests(
    settings: &Settings,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<u32>> {
    let ch = &settings.config.clickhouse;
    teiten_store::digest::seal_due_showing(
        &client(ch),
        &ch.database,
        now_us(),
        settings.config.retention.rollup_days,
        teiten_store::digest::DIGEST_PORTS,
        progress,
    )
    .await
}

/// Serves until SIGTERM or SIGINT; a second signal exits at once.
pub async fn serve(settings: Settings) -> Result<()> {
    let cfg = settings.config.clone();
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    let applied = migrate_all(&cfg.clickhouse).await?;
    tracing::info!(steps = applied.len(), "Schema is up to date");
    let metrics = Arc::new(Metrics::new());
    let geo = Geo::new(GeoDb::load(&cfg.geo)?);
    tracing::info!(db = ?geo.current(), "Geo database loaded");
    let client = client(&cfg.clickhouse);
    let registry = Arc::new(
        Cache::new(client.clone(), &cfg.clickhouse.database)
            .counting_reloads(metrics.registry_reloads.clone()),
    );
    let sensors = registry.refresh().await?;
    tracing::info!(sensors, "Sensor registry loaded");
    let exchange = Arc::new(settings.exchange.clone());
    let exchange_client = client.clone();
    let (store, writer, stop_writer) = Store::start(client, &settings, metrics.clone());
    let state = Arc::new(AppState {
        store,
        registry: registry.clone(),
        geo: geo.clone(),
        metrics: metrics.clone(),
        limits: Limits {
            max_decoded_bytes: cfg.ingest.max_decoded_bytes,
            max_events: cfg.ingest.max_events,
        },
        max_body_bytes: cfg.ingest.max_body_bytes,
        retry_after_secs: cfg.ingest.retry_after_secs,
        requests: Arc::new(tokio::sync::Semaphore::new(cfg.ingest.max_requests)),
        exchange: exchange.clone(),
        client: exchange_client.clone(),
        db: cfg.clickhouse.database.clone(),
        sources: Arc::new(settings.sources.clone()),
        time_window: crate::http::TimeWindow::from_config(&cfg.ingest),
    });

    let io = |what: &str| {
        let what = what.to_owned();
        move |source| Error::Io { what, source }
    };
    let mut hup = signal(SignalKind::hangup()).map_err(io("installing the SIGHUP handler"))?;
    let mut term = signal(SignalKind::terminate()).map_err(io("installing the SIGTERM handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("installing the SIGINT handler"))?;

    let geo_cfg = cfg.geo.clone();
    let reload_metrics = metrics.clone();
    let reloader = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match geo.reload(&geo_cfg) {
                Ok(()) => {
                    reload_metrics.geo_reloads.inc();
                    tracing::info!(db = ?geo.current(), "Geo database reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "Geo reload failed; keeping the loaded database")
                }
            }
        }
    });
    let (naming_client, naming_db, naming_geo) = (
        exchange_client.clone(),
        cfg.clickhouse.database.clone(),
        state.geo.clone(),
    );
    let naming_every = cfg.geo.names_interval();
    let namer = tokio::spawn(async move {
        let mut since = 0;
        loop {
            let started = now_us() / 1_000_000;
            let db = naming_geo.current();
            match crate::as_names::name_new(&naming_client, &naming_db, &db, since).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(named = n, "AS names written");
                    }
                    since = started - crate::as_names::LOOKBACK_SECS;
                }
                Err(e) => tracing::warn!(error = %e, "Naming the source ASes failed; retrying"),
            }
            tokio::time::sleep(naming_every).await;
        }
    });
    let refresh_every = settings.registry_refresh;
    let refresher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(refresh_every).await;
            if let Err(e) = registry.refresh().await {
                tracing::warn!(error = %e, "Sensor registry refresh failed");
            }
        }
    });
    let retention_settings = settings.clone();
    let retention_metrics = metrics.clone();
    let retainer = tokio::spawn(async move {
        loop {
            match retention_all(&retention_settings).await {
                Ok(d) => {
                    retention_metrics.partitions_dropped.inc_by(d.len() as u64);
                }
                Err(e) => tracing::error!(error = %e, "Retention run failed"),
            }
            tokio::time::sleep(retention_settings.retention_interval).await;
        }
    });

    let digest_settings = settings.clone();
    let digester = tokio::spawn(async move {
        loop {
            if let Err(e) = seal_digests(&digest_settings, &indicatif::ProgressBar::hidden()).await
            {
                tracing::error!(error = %e, "Port digest run failed");
            }
            tokio::time::sleep(digest_settings.digest_interval).await;
        }
    });

    let cases_client = exchange_client.clone();
    let cases_db = cfg.clickhouse.database.clone();
    let cases_exchange = exchange.clone();
    let cases_metrics = metrics.clone();
    let cases_loop = tokio::spawn(async move {
        let Some(cases) = cases_exchange.cases.clone() else {
            return;
        };
        tracing::info!(
            directory = %cases.directory,
            questionnaires = cases.questionnaires.len(),
            "Investigation loop started"
        );
        let every = Duration::from_secs(cases.config.interval_secs);
        loop {
            let r = teiten_exchange::cases::worker::run_round(
                &cases_client,
                &cases_db,
                &cases_exchange,
                &cases,
                time::now(),
            )
            .await;
            let m = &cases_metrics;
            m.cases_rounds.inc();
            m.cases_opened.inc_by(r.opened.into());
            m.cases_requested.inc_by(r.requested.into());
            m.cases_escalated.inc_by(r.escalated.into());
            m.cases_alerted.inc_by(r.alerted.into());
            m.cases_summaries.inc_by(r.summaries.into());
            m.cases_errors.inc_by(r.errors.len() as u64);
            if r.opened + r.requested + r.escalated + r.alerted + r.summaries > 0
                || !r.errors.is_empty()
            {
                tracing::info!(
                    opened = r.opened,
                    requested = r.requested,
                    escalated = r.escalated,
                    alerted = r.alerted,
                    summaries = r.summaries,
                    errors = ?r.errors,
                    "Cases round"
                );
            }
            tokio::time::sleep(every).await;
        }
    });
    let exchange_db = cfg.clickhouse.database.clone();
    let exchange_every = Duration::from_secs(cfg.exchange.interval_secs);
    let scheduling = cfg.exchange.scheduler;
    let scheduler = tokio::spawn(async move {
        if !scheduling {
            tracing::info!("Exchange scheduler off (exchange.scheduler = false)");
            return;
        }
        loop {
            let now = time::now();
            let sum =
                teiten_exchange::run_once(&exchange_client, &exchange_db, &exchange, now).await;
            if sum.exported + sum.retried + sum.imported > 0 || !sum.errors.is_empty() {
                tracing::info!(
                    exported = sum.exported,
                    retried = sum.retried,
                    imported = sum.imported,
                    errors = sum.errors.len(),
                    "Exchange run"
                );
            }
            tokio::time::sleep(exchange_every).await;
        }
    });
    let listener = teiten_service::http_server::bind(cfg.listen)
        .map_err(io(&format!("binding {}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(io("reading the local address"))?;
    tracing::info!(%addr, "Listening");
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("Shutting down: no new requests, finishing open ones");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("Second signal: exiting now");
            std::process::exit(2);
        });
    };
    teiten_service::http_server::serve(listener, app(state), &cfg.server, shutdown)
        .await
        .map_err(io("serving HTTP"))?;
    reloader.abort();
    refresher.abort();
    cases_loop.abort();
    namer.abort();
    retainer.abort();
    digester.abort();
    scheduler.abort();
    let _ = stop_writer.send(true);
    match tokio::time::timeout(DRAIN_DEADLINE, writer).await {
        Ok(_) => tracing::info!("Open inserts finished; stopped"),
        Err(_) => tracing::error!("Writer did not finish within {DRAIN_DEADLINE:?}"),
    }
    Ok(())
}
