//! teiten's aggregator: receives sensor batches over HTTP and stores every event in ClickHouse,
//! exactly once, with the source country, rollups, retention and optional cluster mode.
//!
//! The database (schema, statements, migrations, retention, geo) is `teiten-store`'s; the IODEF
//! exchange is `teiten-exchange`'s; this crate is ingest, the scheduler and the wiring:
//! `config` (TOML, validated before I/O), `as_names` (names of the source ASes for the
//! dashboard), `registry` (sensors and tokens), `store` (dedup,
//! backpressure, the writer), `http` (`app()`, with the exchange's endpoints from
//! `exchange_api` and the investigation's from `cases_api`), `metrics`, `server` (running it all).
//! See `aggregator/README.md` for the tables the dashboard and the IODEF export read.

mod as_names;
mod cases_api;
mod config;
mod exchange_api;
mod http;
mod metrics;
mod registry;
mod server;
mod store;

pub use config::{
    Config, IngestConfig, InsertConfig, RegistryConfig, RetentionConfig, Settings, SourcesConfig,
};
pub use http::{app, AppState, Reject};
pub use metrics::Metrics;
pub use registry::{
    add as add_sensor, list as list_sensors, new_token, revoke as revoke_sensor,
    status as sensor_status, token_hash, Auth, Cache, SensorState, SensorStatus,
};
pub use server::{migrate_all, retention_all, seal_digests, serve};
pub use store::{Enriched, Outcome, Store, StoreError, WriterHandle, WriterStop};
/// Rebuilds one day of the rollups (store logic, in `teiten-store`).
pub use teiten_store::rebuild_rollups_all;
