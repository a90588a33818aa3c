//! Applies the schema ([`crate::schema::steps`]) to a server: the version first, then the
//! comparison of every table and view that is there with its definition
//! ([`crate::schema_diff`]): a difference that no step below migrates (a column of another type,
//! an extra column, a missing one without its step, another engine, partition key, sort key or
//! view query) stops the migration before any step, with [`Error::SchemaMismatch`] naming each
//! table and difference. Then, in order, every step whose object is missing from
//! `system.tables` (or `system.databases`), with its backfill; every column step whose table
//! was there before and lacks the column (`system.columns`); every drop step whose (replaced)
//! view is there. When steps ran, the comparison is made again, strictly: the database must
//! then be as defined.
//!
//! Upgrading from the release before `withheld`: the column is added to `scan_events` (and its
//! Distributed table), with 0 (published) in the rows stored before; the six views whose unique
//! sources now count published sources only are dropped and created under new names. Rows a
//! running aggregator inserts between the drop and the new view are missing from those rollups:
//! stop ingest for the migration, or rebuild the day afterwards (`rebuild-rollups`).

use std::collections::HashSet;

use clickhouse::Client;

use crate::error::{Error, Result};
use crate::queries;
use crate::schema::{parse_version, steps, Layout, When, MIN_SERVER_VERSION};
use crate::schema_diff::{compare, ServerColumn, ServerTable, Stage};

/// Checks the server version and applies the missing steps; returns what was applied (empty
/// when the schema was complete).
pub async fn migrate(client: &Client, db: &str, layout: &Layout) -> Result<Vec<String>> {
    let version: String = queries::server_version()
        .fetch_one(client)
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
    let db_exists: u64 = queries::database_exists(db)
        .fetch_one(client)
        .await
        .map_err(Error::ch("checking system.databases"))?;
    let tables: HashSet<String> = queries::tables_in_database(db)
        .fetch_all::<String>(client)
        .await
        .map_err(Error::ch("checking system.tables"))?
        .into_iter()
        .collect();
    if db_exists > 0 {
        check(client, db, layout, Stage::Before).await?;
    }
    let mut applied = Vec::new();
    for step in steps(db, layout) {
        let present = if step.object.is_empty() {
            db_exists > 0
        } else {
            tables.contains(&step.object)
        };
        let due = match step.when {
            When::Missing => !present,
            When::Present => present,
            // A table created by this run has the column already.
            When::ColumnMissing(column) => {
                present && !has_column(client, db, &step.object, column).await?
            }
        };
        if !due {
            continue;
        }
        let name = if step.object.is_empty() {
            format!("database {db}")
        } else {
            format!("{db}.{}", step.object)
        };
        let doing = match step.when {
            When::Missing => "creating",
            When::ColumnMissing(_) => "adding a column to",
            When::Present => "dropping the replaced view",
        };
        client
            .query(&step.sql)
            .execute()
            .await
            .map_err(Error::ch(format!("migration step {doing} {name}")))?;
        if let Some(fill) = &step.backfill {
            client
                .query(fill)
                .execute()
                .await
                .map_err(Error::ch(format!("filling {name} from the older rollups")))?;
        }
        tracing::info!(object = %name, step = doing, "Migration step applied");
        applied.push(match step.when {
            When::Missing => name,
            When::ColumnMissing(column) => format!("{name}.{column} (column added)"),
            When::Present => format!("{name} (dropped)"),
        });
    }
    if !applied.is_empty() {
        check(client, db, layout, Stage::After).await?;
    }
    Ok(applied)
}

/// Compares the server's tables and views with the definition ([`crate::schema_diff`]).
async fn check(client: &Client, db: &str, layout: &Layout, stage: Stage) -> Result<()> {
    let tables: Vec<ServerTable> =
        queries::schema_tables(db)
            .fetch_all(client)
            .await
            .map_err(Error::ch(format!(
                "reading the tables of {db} (system.tables)"
            )))?;
    let columns: Vec<ServerColumn> = queries::schema_columns(db)
        .fetch_all(client)
        .await
        .map_err(Error::ch(format!(
            "reading the columns of {db} (system.columns)"
        )))?;
    let differences = compare(db, layout, &tables, &columns, stage);
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::SchemaMismatch {
        database: db.to_owned(),
        differences,
        after_migrating: stage == Stage::After,
    })
}

async fn has_column(client: &Client, db: &str, table: &str, column: &str) -> Result<bool> {
    let n: u64 = queries::column_exists(db, table, column)
        .fetch_one(client)
        .await
        .map_err(Error::ch(format!("checking the columns of {db}.{table}")))?;
    Ok(n > 0)
}
