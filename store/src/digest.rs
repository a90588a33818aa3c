//! Port digests: a small, bounded summary of each day that is over, so that the top ports of
//! long periods read thousands of rows instead of millions.
//!
//! Dark addresses are probed on nearly every port every day, so a day of the per-sensor daily
//! rollup holds tens of thousands of ports per sensor and protocol, almost all with a handful of
//! packets. A digest keeps, per day, sensor (and `''` for all sensors) and protocol, the
//! [`DIGEST_PORTS`] ports with the most packets with their packets, the most packets of any port
//! left out (`rest_max`) and the day's packets when it was sealed (`total`). From the digests a
//! reader knows for every port a lower bound (the packets the digests list) and an upper bound
//! (those plus `rest_max` where the port was left out, plus the events that arrived after the
//! seal: today's packets minus `total`, from `scan_sensor_totals_1d`), picks the ports that can
//! be in the top N and counts only those exactly (the dashboard's top ports).
//!
//! A day is sealed once it is over ([`seal_due`], every `retention.digest_interval_secs` in
//! `serve`, and `seal-digests`), again when its packets changed since (late events from a
//! sensor's spool, a rebuilt rollup), and at once after `rebuild-rollups`. The latest digest of a
//! day counts (the table replaces older ones when it merges); a day without one is read from the
//! rollups in full.
//!
//! Limit: the widening relies on `scan_sensor_totals_1d` and `scan_ports_1d` agreeing. Both are
//! filled by views of the same INSERT, one after the other, so while a late batch for a sealed
//! day is being written one may count it and the other not yet: for that moment a reader's
//! bound can be short by that batch.

use clickhouse::Client;

use crate::error::{Error, Result};
use crate::queries;

/// Ports kept per day, sensor and protocol.
pub const DIGEST_PORTS: u64 = 1000;

use crate::time::DAY;

/// What a day's digests are sealed from, as `{source}` and `{sensor}` of
/// [`queries::seal_digests`]: per sensor from `scan_ports_1d`, over all sensors (id `''`) from
/// `scan_port_totals_1d`.
pub const SEAL_SOURCES: [(&str, &str); 2] = [
    ("scan_ports_1d", "sensor_id"),
    ("scan_port_totals_1d", "''"),
];

/// Seals the digests of the day starting at `day` (Unix seconds, UTC midnight), per sensor and
/// over all sensors, as of `sealed_us` (Unix microseconds, the digests' version), keeping `ports`
/// ports each ([`DIGEST_PORTS`]; tests keep fewer).
pub async fn seal_day(
    client: &Client,
    db: &str,
    day: i64,
    sealed_us: u64,
    ports: u64,
) -> Result<()> {
    for (source, sensor) in SEAL_SOURCES {
        queries::seal_digests(db, source, sensor, sealed_us, ports, day)
            .execute(client)
            .await
            .map_err(Error::ch(format!(
                "sealing the port digests of {} from {db}.{source}",
                crate::time::day_number(day)
            )))?;
    }
    Ok(())
}

/// The days (Unix seconds) of the last `days` days before today (UTC, `now` in Unix seconds)
/// whose digests are missing or out of date.
pub async fn due(client: &Client, db: &str, now: i64, days: u32) -> Result<Vec<i64>> {
    let today = now.div_euclid(DAY) * DAY;
    let from = today - i64::from(days) * DAY;
    let due: Vec<u32> = queries::digests_due(db, from, today)
        .fetch_all(client)
        .await
        .map_err(Error::ch("listing the days whose port digests are due"))?;
    Ok(due.into_iter().map(i64::from).collect())
}

/// Seals every due day of the last `days` days ([`due`]), `ports` ports each, and returns them
/// (YYYYMMDD).
pub async fn seal_due(
    client: &Client,
    db: &str,
    now_us: i64,
    days: u32,
    ports: u64,
) -> Result<Vec<u32>> {
    let hidden = indicatif::ProgressBar::hidden();
    seal_due_showing(client, db, now_us, days, ports, &hidden).await
}

/// [`seal_due`], counting the days due and sealed on `progress`.
pub async fn seal_due_showing(
    client: &Client,
    db: &str,
    now_us: i64,
    days: u32,
    ports: u64,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<u32>> {
    let mut sealed = Vec::new();
    let due = due(client, db, now_us.div_euclid(1_000_000), days).await?;
    progress.set_length(due.len() as u64);
    for day in due {
        seal_day(client, db, day, now_us.max(0) as u64, ports).await?;
        let n = crate::time::day_number(day);
        tracing::info!(day = n, "Port digests sealed");
        sealed.push(n);
        progress.inc(1);
    }
    Ok(sealed)
}
