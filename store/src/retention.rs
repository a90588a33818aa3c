//! Retention: drops the day partitions older than the configured number of days, on every node
//! or, with replicated tables, on one replica of each shard (ZooKeeper replicates the drop to
//! the others: [`run_all`]).

use clickhouse::Client;

use crate::client::{client, client_for, ClickHouseConfig};
use crate::error::{Error, Result};
use crate::queries;
use crate::schema::{
    month_partitioned, storage_name, Layout, DERIVED_TABLES, RAW_TABLES, ROLLUPS, ROLLUP_TABLES,
};
use crate::time;

/// The oldest day (as YYYYMMDD) kept when keeping `days` days up to the day of `now` (Unix
/// seconds, UTC): partitions of earlier days are dropped.
pub fn first_kept_day(now: i64, days: u32) -> u32 {
    time::day_number(now - (i64::from(days) - 1) * time::DAY)
}

/// Drops expired partitions of the raw and rollup tables through `client` (one node) and
/// returns `table/partition` for each one dropped.
pub async fn run_once(
    client: &Client,
    db: &str,
    layout: &Layout,
    now: i64,
    raw_days: u32,
    rollup_days: u32,
) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    let plan = RAW_TABLES
        .iter()
        .map(|t| (*t, raw_days))
        .chain(ROLLUP_TABLES.iter().map(|t| (*t, rollup_days)))
        .chain(DERIVED_TABLES.iter().map(|t| (*t, rollup_days)));
    for (logical, days) in plan {
        let table = storage_name(layout, logical);
        let keep_from = first_kept_day(now, days);
        let parts: Vec<String> = queries::table_partitions(db, &table)
            .fetch_all(client)
            .await
            .map_err(Error::ch(format!("listing partitions of {db}.{table}")))?;
        for p in parts {
            // Day partitions are YYYYMMDD, month partitions YYYYMM; anything else is not ours.
            let Ok(day) = p.parse::<u32>() else { continue };
            if !expired(day, keep_from) {
                continue;
            }
            drop_partition(client, db, &table, day).await?;
            tracing::info!(table = %table, partition = day, "Expired partition dropped");
            dropped.push(format!("{table}/{day}"));
        }
    }
    Ok(dropped)
}

/// Runs [`run_once`] on the server or, in cluster mode, on every node of `ch.nodes`; with
/// replicated tables (`ch.replicated`) on the first node of each shard that answers
/// ([`per_shard`]): a replicated table's DROP PARTITION is replicated by ZooKeeper to the shard's
/// other replicas, including one that is down (it applies the drop when it is back). Dropping it
/// on every replica instead would list each partition once per replica (a replica that has not
/// applied the first drop yet drops it again) and fail the whole run while one replica is down.
/// Returns `table/partition` for each partition dropped, or, once every other node is done, the
/// first node's error: a node that does not answer is reported even when another replica of its
/// shard did the drops (its shard cannot be told).
pub async fn run_all(
    ch: &ClickHouseConfig,
    now: i64,
    raw_days: u32,
    rollup_days: u32,
) -> Result<Vec<String>> {
    let layout = Layout::from_config(ch);
    let dropped = per_shard(ch, "Retention", |c| {
        let layout = &layout;
        async move { run_once(&c, &ch.database, layout, now, raw_days, rollup_days).await }
    })
    .await?;
    Ok(dropped.into_iter().flatten().collect())
}

/// Runs `job` through each node of the cluster (or on the one server) and returns what each run
/// returned, or, once every node has been tried, the first error. With replicated tables
/// (`ch.replicated`) a job runs once per shard: nodes whose `{shard}` macro is the same are
/// replicas of one shard, and a shard is done once a job on one of them succeeded (a later
/// replica skips it, an earlier failed one is still reported). A node without the macro (which
/// replicated tables need) counts as a shard of its own.
async fn per_shard<T, F, Fut>(ch: &ClickHouseConfig, what: &str, mut job: F) -> Result<Vec<T>>
where
    F: FnMut(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let nodes = if ch.nodes.is_empty() {
        vec![ch.url.clone()]
    } else {
        ch.nodes.clone()
    };
    let replicated = matches!(
        Layout::from_config(ch),
        Layout::Cluster {
            replicated: true,
            ..
        }
    );
    let (mut done, mut shards_done, mut failed) = (Vec::new(), Vec::new(), None);
    for url in &nodes {
        let c = client_for(ch, url);
        let run = async {
            let shard = if replicated {
                let macro_: Option<String> = queries::shard_macro()
                    .fetch_optional(&c)
                    .await
                    .map_err(Error::ch(format!("reading the shard macro of {url}")))?;
                Some(macro_.unwrap_or_else(|| url.clone()))
            } else {
                None
            };
            if shard.as_ref().is_some_and(|s| shards_done.contains(s)) {
                tracing::debug!(node = %url, shard = ?shard, "Shard done through another replica");
                return Ok(());
            }
            done.push(job(c.clone()).await?);
            shards_done.extend(shard);
            Ok::<(), Error>(())
        };
        if let Err(e) = run.await {
            tracing::warn!(node = %url, error = %e, "{what} failed on a node");
            failed.get_or_insert(e);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Drops one partition (a day as YYYYMMDD or a month as YYYYMM) of a table on this node.
async fn drop_partition(client: &Client, db: &str, table: &str, partition: u32) -> Result<()> {
    queries::drop_partition(db, table, partition)
        .execute(client)
        .await
        .map_err(Error::ch(format!(
            "dropping partition {partition} of {db}.{table}"
        )))
}

/// Whether a partition (a day as YYYYMMDD or a month as YYYYMM) lies wholly before the first
/// day kept (YYYYMMDD).
fn expired(partition: u32, keep_from: u32) -> bool {
    match partition {
        19_000_101..=29_991_231 => partition < keep_from,
        // Any day of the month, the 31st included, is before the first kept day.
        190_001..=299_912 => partition * 100 + 31 < keep_from,
        _ => false,
    }
}

/// How long a rebuild waits for the deletion of a day's rows from a month partition.
const MUTATION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes one day's rows from a month-partitioned table and waits until the deletion (a
/// mutation, which 18.16 runs in the background) is done.
async fn delete_day(client: &Client, db: &str, table: &str, day: u32) -> Result<()> {
    queries::delete_day(db, table, day)
        .execute(client)
        .await
        .map_err(Error::ch(format!("deleting day {day} of {db}.{table}")))?;
    let start = std::time::Instant::now();
    loop {
        let pending: u64 = queries::mutations_pending(db, table)
            .fetch_one(client)
            .await
            .map_err(Error::ch(format!("checking the mutations of {db}.{table}")))?;
        if pending == 0 {
            return Ok(());
        }
        if start.elapsed() > MUTATION_DEADLINE {
            return Err(Error::MutationTimeout {
                what: format!("deleting day {day} of {db}.{table}"),
                secs: MUTATION_DEADLINE.as_secs(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Recomputes the rollups of one day (YYYYMMDD) from the raw events on this node: drops the
/// day's rollup partitions (deletes the day's rows where the partitions are months) and fills
/// them again with the views' own expressions.
///
/// Use it after ClickHouse crashed during an INSERT (the raw rows are exact, but the views'
/// parts of that INSERT may be missing; the aggregator logs the days concerned). Events of that
/// day arriving during the rebuild may be counted twice: rebuild days that are over.
pub async fn rebuild_rollups(client: &Client, db: &str, layout: &Layout, day: u32) -> Result<()> {
    let source = storage_name(layout, "scan_events");
    for r in ROLLUPS {
        let table = storage_name(layout, r.table);
        if month_partitioned(r.table) {
            delete_day(client, db, &table, day).await?;
        } else {
            drop_partition(client, db, &table, day).await?;
        }
        queries::rebuild_rollup_day(db, r, &table, &source, day)
            .execute(client)
            .await
            .map_err(Error::ch(format!("rebuilding day {day} of {db}.{table}")))?;
        tracing::info!(table = %table, day, "Rollup day rebuilt from raw events");
    }
    Ok(())
}

/// Rebuilds one day of the rollups on the server or, in cluster mode, on every node or, with
/// replicated tables, on one replica of each shard ([`per_shard`]: ZooKeeper replicates the
/// drops, deletions and inserts to the others; rebuilding on each replica would have them race
/// over the same parts), then seals its port digests again over the whole cluster
/// ([`crate::digest::seal_day`]): what `teiten-aggregator rebuild-rollups` runs.
///
/// The re-inserts go without block deduplication (`insert_deduplicate = 0`): a replicated table
/// remembers the hashes of recent inserted blocks, so a second rebuild of the same day, whose
/// blocks are the same as the first's, would be dropped as a duplicate after the day was
/// emptied, leaving the rollups of that day empty.
pub async fn rebuild_rollups_all(ch: &ClickHouseConfig, day: u32) -> Result<()> {
    let layout = Layout::from_config(ch);
    per_shard(ch, "Rebuilding rollups", |c| {
        let layout = &layout;
        async move {
            let c = c.with_option("insert_deduplicate", "0");
            rebuild_rollups(&c, &ch.database, layout, day).await
        }
    })
    .await?;
    let start = time::day_start(day);
    crate::digest::seal_day(
        &client(ch),
        &ch.database,
        start,
        time::now_us() as u64,
        crate::digest::DIGEST_PORTS,
    )
    .await?;
    tracing::info!(day, "Port digests sealed again after the rebuild");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_and_month_partitions_expire_whole() {
        let keep_from = 20_261_103;
        assert!(expired(20_261_102, keep_from));
        assert!(!expired(20_261_103, keep_from));
        // A month expires when its last day has.
        assert!(expired(202_610, keep_from));
        assert!(!expired(202_611, keep_from));
        assert!(!expired(202_611, 20_261_130));
        assert!(expired(202_602, 20_260_301));
        // Not ours: tuple(), other names.
        assert!(!expired(0, keep_from));
        assert!(!expired(42, keep_from));
    }

    #[test]
    fn keep_window() {
        // 2026-11-22 00:16 UTC
        let now = 1_795_306_560;
        assert_eq!(time::day_number(now), 20_261_122);
        assert_eq!(first_kept_day(now, 1), 20_261_122);
        assert_eq!(first_kept_day(now, 90), 20_260_825);
    }
}
