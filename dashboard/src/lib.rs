//! teiten's dashboard: destination port, source region and per-port graphs drawn on the server
//! (PNG and SVG, plotters) from the aggregator's rollups in ClickHouse, the tables and the JSON
//! and CSV API behind them, rising-port trends, and a logged-in analyst view (sensor health,
//! raw event search).
//!
//! Layout: [`config`] (TOML, validated before I/O), [`params`] (request parameters and their
//! 400s), [`data`] (reading the rollups), [`cache`] (the per-query cache), [`chart`], [`export`],
//! [`html`], [`auth`] (argon2, sessions, CSRF), [`analyst`], [`exchange`] (the exchange pages),
//! [`reports`] (the aggregator's API: filing reports, downloading daily files), `http` (`app()`:
//! routing, public, login and analyst handlers), [`server`], [`testdata`] (synthetic data for
//! tests and benchmarks). Every SQL statement it runs is built with its values in
//! `teiten_store::reads`. The API is documented in `dashboard/API.md` (served at `/api`).

pub mod analyst;
pub mod auth;
pub mod cache;
pub mod cases;
pub mod chart;
mod config;
pub mod data;
mod error;
pub mod exchange;
pub mod export;
pub mod html;
mod http;
mod metrics;
pub mod params;
pub mod reports;
mod server;
pub mod testdata;

pub use config::{
    AnalystConfig, CacheConfig, Config, LimitsConfig, LoginConfig, MetricsConfig, PublicConfig,
    QueryConfig, ReportsConfig, Settings, TrendsConfig,
};
pub use error::{Error, HttpError, Result};
pub use http::{app, now, Analyst, AppState};
pub use server::{client, serve};
