//! Applies the schema ([`crate::schema::steps`]) to a server: the version first, then every
//! step whose object is missing from `system.tables` (or `system.databases`), in order, with
//! its backfill.

use std::collections::HashSet;

use clickhouse::Client;

use crate::error::{Error, Result};
use crate::queries;
use crate::schema::{parse_version, steps, Layout, MIN_SERVER_VERSION};

/// Checks the server version and applies the missing steps; returns what was applied (empty
/// when the schema was complete).
pub async fn migrate(client: &Client, db: &str, layout: &Layout) -> Result<Vec<String>> {
    let version: String = client
        .query(queries::SERVER_VERSION)
        .fetch_one()
        .await
        .map_err(Error::ch("reading the server version"))?;
    match parse_version(&version) {
        Some(v) if v >= MIN_SERVER_VERSION => {}
        _ => {
            return Err(Error::ServerTooOld {
                found: version,
                needed: format!("{}.{}", MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1),
            })
        }
    }
    let db_exists: u64 = client
        .query(queries::DATABASE_EXISTS)
        .bind(db)
        .fetch_one()
        .await
        .map_err(Error::ch("checking system.databases"))?;
    let tables: HashSet<String> = client
        .query(queries::TABLES_IN_DATABASE)
        .bind(db)
        .fetch_all::<String>()
        .await
        .map_err(Error::ch("checking system.tables"))?
        .into_iter()
        .collect();
    let mut applied = Vec::new();
    for step in steps(db, layout) {
        let present = if step.object.is_empty() {
            db_exists > 0
        } else {
            tables.contains(&step.object)
        };
        if present {
            continue;
        }
        let name = if step.object.is_empty() {
            format!("database {db}")
        } else {
            format!("{db}.{}", step.object)
        };
        client
            .query(&step.sql)
            .execute()
            .await
            .map_err(Error::ch(format!("migration step creating {name}")))?;
        if let Some(fill) = &step.backfill {
            client
                .query(fill)
                .execute()
                .await
                .map_err(Error::ch(format!("filling {name} from the older rollups")))?;
        }
        tracing::info!(object = %name, "Migration step applied");
        applied.push(name);
    }
    Ok(applied)
}
