//! teiten's database: everything that knows how the data is kept in ClickHouse.
//!
//! - [`client`]: `[clickhouse]` and the clients built from it.
//! - [`schema`]: every table and view (DDL), the layouts (single server, cluster), the rules
//!   statements follow to run on ClickHouse 18.16 and current releases.
//! - [`queries`]: every other statement the aggregator, the exchange and the dashboard run.
//! - [`events`]: the raw event row and its one column list.
//! - [`migrate`]: brings a server's database to the schema, comparing every table with its
//!   definition ([`schema_diff`]) and refusing what no step migrates.
//! - [`retention`]: dropping old partitions and rebuilding rollups.
//! - [`digest`]: the sealed port digests of past days.
//! - [`geo`]: the source country of an address (tor-format files or a MaxMind database).
//! - [`statement`]: a statement with its bound values ([`statement::Statement`]).
//! - [`reads`]: every statement the dashboard runs.
//! - [`proto`]: protocol numbers and names, the unknown-country code.
//! - [`sources`]: which sources are withheld from partners and public counts, and why.
//! - [`time`]: the one clock and calendar (UTC days as `YYYYMMDD`).
//! - [`Error`]: what went wrong, with the file, table or step it concerns.

pub mod client;
pub mod digest;
mod error;
pub mod events;
pub mod geo;
pub mod migrate;
pub mod proto;
pub mod queries;
pub mod reads;
pub mod retention;
pub mod schema;
pub mod schema_diff;
pub mod sources;
pub mod statement;
pub mod time;

pub use client::{client, client_for, ClickHouseConfig};
pub use error::{Category, Cause, Class, Error, Result};
pub use geo::{address_bytes, address_from_bytes, Geo, GeoConfig, GeoDb, GeoSource, Origin};
pub use migrate::migrate;
pub use proto::{proto_name, Proto, UNKNOWN_COUNTRY};
pub use retention::{
    first_kept_day, rebuild_rollups, rebuild_rollups_all, run_once as retention_run_once,
};
