//! teiten's aggregator: receives sensor batches over HTTP and stores every event in ClickHouse,
//! exactly once, with the source country, rollups, retention and optional cluster mode.
//!
//! Layout: [`config`] (TOML, validated before I/O), [`schema`] and [`queries`] (every SQL
//! statement), [`migrate`] (with [`schema_diff`], the comparison of the server's tables with the
//! definition), [`geo`], [`registry`] (sensors and tokens), [`store`] (dedup,
//! backpressure, the writer), [`http`] (`app()`), [`retention`], [`digest`] (the port digests of
//! past days), [`http_server`] (the hardened accept loop, shared with the dashboard), [`server`]
//! (running it all).
//! See `aggregator/README.md` for the tables the dashboard and the IODEF export read.

mod config;
pub mod digest;
mod error;
pub mod exchange;
mod geo;
mod http;
pub mod http_server;
mod metrics;
mod migrate;
pub mod queries;
mod registry;
mod retention;
pub mod schema;
pub mod schema_diff;
mod server;
pub mod sources;
mod store;

pub use config::{
    ClickHouseConfig, Config, GeoConfig, IngestConfig, InsertConfig, RegistryConfig,
    RetentionConfig, Settings, SourcesConfig,
};
pub use error::{Error, Result};
pub use geo::{address_bytes, address_from_bytes, Geo, GeoDb, UNKNOWN as UNKNOWN_COUNTRY};
pub use http::{app, AppState, Reject};
pub use metrics::Metrics;
pub use migrate::migrate;
pub use registry::{
    add as add_sensor, list as list_sensors, new_token, revoke as revoke_sensor,
    status as sensor_status, token_hash, Auth, Cache, SensorState, SensorStatus,
};
pub use retention::{first_kept_day, rebuild_rollups, run_once as retention_run_once};
pub use server::{
    client, client_for, migrate_all, rebuild_rollups_all, retention_all, seal_digests, serve,
};
pub use store::{Enriched, Outcome, Store, StoreError, WriterHandle, WriterStop};
