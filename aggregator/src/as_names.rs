//! The names of the source autonomous systems, kept in `as_names` so that the dashboard (which
//! does not read the network database) can name them without a string per event.
//!
//! A task of `serve` asks the network rollup for the ASes seen lately that `as_names` lacks,
//! looks each up in the loaded network database and writes the ones it names. Ingest pays
//! nothing for it; a new AS is named within `geo.names_interval_secs`. The first run after a start looks at the
//! whole rollup (so an upgraded database gets the names of what it holds), later ones at the
//! last [`LOOKBACK_SECS`].

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use teiten_store::geo::GeoDb;
use teiten_store::{queries, Error, Result};

/// How far back the runs after the first look.
pub(crate) const LOOKBACK_SECS: i64 = 2 * 3600;
/// Most ASes named by one run (the rest the next run).
const MOST: u32 = 100_000;

/// One `as_names` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub(crate) struct AsNameRow {
    /// The AS number.
    pub asn: u32,
    /// Its name in the network database.
    pub name: String,
    /// When it was written (Unix microseconds; the latest counts).
    pub version: u64,
}

/// Names the ASes of the rollup since `since` (Unix seconds) that `as_names` lacks and `geo`
/// names; returns how many were written. ASes the database does not name stay unnamed (and
/// are asked for again next time).
pub(crate) async fn name_new(client: &Client, db: &str, geo: &GeoDb, since: i64) -> Result<usize> {
    let asns: Vec<u32> = queries::unnamed_asns(db, since, MOST)
        .fetch_all(client)
        .await
        .map_err(Error::ch("reading the unnamed ASes"))?;
    let version = u64::try_from(teiten_store::time::now_us()).unwrap_or(0);
    let rows: Vec<AsNameRow> = asns
        .into_iter()
        .filter_map(|asn| {
            geo.as_name(asn).map(|name| AsNameRow {
                asn,
                name: name.to_owned(),
                version,
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    let what = format!("writing {} AS names", rows.len());
    let mut insert = client
        .insert::<AsNameRow>("as_names")
        .await
        .map_err(Error::ch(what.clone()))?;
    for row in &rows {
        insert.write(row).await.map_err(Error::ch(what.clone()))?;
    }
    insert.end().await.map_err(Error::ch(what))?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_the_store_columns() {
        assert_eq!(
            <AsNameRow as clickhouse::Row>::COLUMN_NAMES.join(", "),
            queries::AS_NAMES_INSERT_COLUMNS
        );
    }
}
