//! The sensor registry: sensors and the SHA-256 of their tokens, kept in ClickHouse (`sensors`,
//! a ReplacingMergeTree where the row with the highest `version` is a sensor's current state),
//! cached in memory for authentication.
//!
//! A token is `tt_` followed by 64 hex digits (32 random bytes from the OS); only its SHA-256
//! is stored, and it is printed once, by `teiten-aggregator sensor add`.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use clickhouse::{Client, Row};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use teiten_store::queries;
use teiten_store::{Error, Result};

/// A registry row (one change of a sensor's state).
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct SensorRow {
    sensor_id: String,
    token_sha256: String,
    revoked: u8,
    changed: u32,
    version: u64,
}

/// A sensor's current registry state.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct SensorState {
    /// The sensor id.
    pub sensor_id: String,
    /// Hex SHA-256 of its token.
    pub token: String,
    /// 1 when revoked.
    pub revoked: u8,
    /// When it was added or revoked (Unix seconds).
    pub changed: u32,
}

/// What a sensor reported lately (from `sensor_reports`).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct SensorStatus {
    /// The sensor id.
    pub sensor_id: String,
    /// Last batch received (Unix seconds).
    pub last_seen: u32,
    /// Events received in the last 5 minutes.
    pub events_5m: u64,
    /// Kernel drops the sensor last reported.
    pub kernel_drops: u64,
    /// Bytes waiting in its spool, last reported.
    pub spool_bytes: u64,
    /// Events its spool had to drop, last reported.
    pub spool_dropped_events: u64,
    /// Events whose source country was unknown, all time.
    pub unknown_country: u64,
}

/// Makes a new random token.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("tt_{}", hex::encode(b))
}

/// The stored form of a token (shared with the dashboard's `/metrics`: `teiten-service`).
pub use teiten_service::token_hash;

fn now_secs() -> (u32, u64) {
    let us = teiten_store::time::now_us();
    (
        u32::try_from(us / 1_000_000).unwrap_or(u32::MAX),
        u64::try_from(us).unwrap_or(0).saturating_mul(1000),
    )
}

/// Checks a sensor id with the same rule as the wire format.
pub(crate) fn check_sensor_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Sensor {
            sensor: id.into(),
            reason: "an id is 1 to 64 ASCII letters, digits, '-', '_' or '.'".into(),
        })
    }
}

/// All sensors' current state.
pub async fn list(client: &Client, db: &str) -> Result<Vec<SensorState>> {
    queries::sensors_current(db)
        .fetch_all(client)
        .await
        .map_err(Error::ch("reading the sensor registry"))
}

/// What every sensor reported lately.
pub async fn status(client: &Client, db: &str) -> Result<Vec<SensorStatus>> {
    queries::sensor_status(db)
        .fetch_all(client)
        .await
        .map_err(Error::ch("reading sensor reports"))
}

async fn write(client: &Client, row: SensorRow) -> Result<()> {
    let what = format!("writing the registry row of sensor {}", row.sensor_id);
    let mut insert = client
        .insert::<SensorRow>("sensors")
        .await
        .map_err(Error::ch(what.clone()))?;
    insert.write(&row).await.map_err(Error::ch(what.clone()))?;
    insert.end().await.map_err(Error::ch(what))
}

/// Adds a sensor and returns its token (the only time it is shown). A revoked sensor may be
/// added again with a new token.
pub async fn add(client: &Client, db: &str, sensor_id: &str) -> Result<String> {
    check_sensor_id(sensor_id)?;
    if list(client, db)
        .await?
        .iter()
        .any(|s| s.sensor_id == sensor_id && s.revoked == 0)
    {
        return Err(Error::Sensor {
            sensor: sensor_id.into(),
            reason: "already registered (revoke it first to issue a new token)".into(),
        });
    }
    let token = new_token();
    let (changed, version) = now_secs();
    write(
        client,
        SensorRow {
            sensor_id: sensor_id.into(),
            token_sha256: token_hash(&token),
            revoked: 0,
            changed,
            version,
        },
    )
    .await?;
    Ok(token)
}

/// Revokes a sensor: its token is refused from the next registry refresh on.
pub async fn revoke(client: &Client, db: &str, sensor_id: &str) -> Result<()> {
    let current = list(client, db).await?;
    let Some(s) = current.iter().find(|s| s.sensor_id == sensor_id) else {
        return Err(Error::Sensor {
            sensor: sensor_id.into(),
            reason: "not registered".into(),
        });
    };
    let (changed, version) = now_secs();
    write(
        client,
        SensorRow {
            sensor_id: sensor_id.into(),
            token_sha256: s.token.clone(),
            revoked: 1,
            changed,
            version,
        },
    )
    .await
}

/// The outcome of checking a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The token belongs to this active sensor.
    Sensor(String),
    /// The token belonged to this sensor, which is revoked.
    Revoked(String),
    /// No sensor has this token.
    Unknown,
}

/// The in-memory copy of the registry used to authenticate requests.
///
/// Reloads are single-flight: one at a time, and a request with an unknown token that finds a
/// reload in flight waits for it instead of starting another. Unknown tokens cause at most one
/// reload per [`MISS_REFRESH_GAP`], counted from the start of the last reload whether it
/// succeeded or not, so a flood of made-up tokens costs ClickHouse one query a second.
pub struct Cache {
    client: Client,
    db: String,
    /// Token hash -> (sensor, revoked).
    by_hash: RwLock<HashMap<[u8; 32], (String, bool)>>,
    /// Held during a reload; its value counts the reloads started.
    reloading: tokio::sync::Mutex<u64>,
    /// When the last reload started.
    last_attempt: Mutex<Option<Instant>>,
    reloads: Option<prometheus_client::metrics::counter::Counter>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// Shortest time between two reloads caused by unknown tokens.
pub(crate) const MISS_REFRESH_GAP: Duration = Duration::from_secs(1);

impl Cache {
    /// An empty cache; call [`Cache::refresh`] before use.
    pub fn new(client: Client, db: &str) -> Cache {
        Cache {
            client,
            db: db.into(),
            by_hash: RwLock::new(HashMap::new()),
            reloading: tokio::sync::Mutex::new(0),
            last_attempt: Mutex::new(None),
            reloads: None,
        }
    }

    /// The same cache, counting its reloads in `counter`.
    pub fn counting_reloads(
        mut self,
        counter: prometheus_client::metrics::counter::Counter,
    ) -> Cache {
        self.reloads = Some(counter);
        self
    }

    /// Reloads the registry from ClickHouse (waiting for a reload in flight to end first).
    pub async fn refresh(&self) -> Result<usize> {
        let mut started = self.reloading.lock().await;
        self.reload(&mut started).await
    }

    async fn reload(&self, started: &mut u64) -> Result<usize> {
        *started += 1;
        *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if let Some(c) = &self.reloads {
            c.inc();
        }
        let rows = list(&self.client, &self.db).await?;
        let mut map = HashMap::with_capacity(rows.len());
        for r in rows {
            let mut h = [0u8; 32];
            if hex::decode_to_slice(&r.token, &mut h).is_ok() {
                map.insert(h, (r.sensor_id, r.revoked != 0));
            }
        }
        let n = map.len();
        *self.by_hash.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(n)
    }

    fn check_cached(&self, hash: &[u8; 32]) -> Auth {
        let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        match map.get(hash) {
            Some((id, false)) => Auth::Sensor(id.clone()),
            Some((id, true)) => Auth::Revoked(id.clone()),
            None => Auth::Unknown,
        }
    }

    fn reload_due(&self) -> bool {
        match *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(t) => t.elapsed() >= MISS_REFRESH_GAP,
        }
    }

    /// Checks a bearer token. An unknown token triggers a reload (single-flight, at most one
    /// per [`MISS_REFRESH_GAP`]), so a sensor added a moment ago is accepted at once.
    pub async fn authenticate(&self, token: &str) -> Auth {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let auth = self.check_cached(&hash);
        if auth != Auth::Unknown || !self.reload_due() {
            return auth;
        }
        match self.reloading.try_lock() {
            Ok(mut started) => {
                if self.reload_due() {
                    if let Err(e) = self.reload(&mut started).await {
                        tracing::warn!(error = %e, "Sensor registry refresh failed");
                    }
                }
            }
            // A reload is in flight: wait for it rather than start another.
            Err(_) => drop(self.reloading.lock().await),
        }
        self.check_cached(&hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_rows_have_the_store_columns() {
        // The row type and the store's column list (the sample rows) agree.
        assert_eq!(
            <SensorRow as clickhouse::Row>::COLUMN_NAMES.join(", "),
            teiten_store::queries::SENSORS_INSERT_COLUMNS
        );
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert!(a.starts_with("tt_"));
        assert_eq!(token_hash(&a).len(), 64);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// ClickHouse down (nothing listens): a flood of unknown tokens makes one reload attempt,
    /// not one per request, and a second flood a moment later makes none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_token_flood_reloads_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::default().with_url(format!("http://127.0.0.1:{port}"));
        let reloads = prometheus_client::metrics::counter::Counter::default();
        let cache =
            std::sync::Arc::new(Cache::new(client, "teiten").counting_reloads(reloads.clone()));
        for _ in 0..2 {
            let mut tasks = Vec::new();
            for i in 0..200 {
                let cache = cache.clone();
                tasks.push(tokio::spawn(async move {
                    cache.authenticate(&format!("tt_made_up_{i}")).await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap(), Auth::Unknown);
            }
        }
        assert_eq!(reloads.get(), 1);
        tokio::time::sleep(MISS_REFRESH_GAP).await;
        assert_eq!(cache.authenticate("tt_again").await, Auth::Unknown);
        assert_eq!(reloads.get(), 2, "due again after the gap");
    }

    #[test]
    fn sensor_ids() {
        assert!(check_sensor_id("tokyo-1").is_ok());
        let err = check_sensor_id("bad id").unwrap_err().to_string();
        assert_eq!(
            err,
            "sensor bad id: an id is 1 to 64 ASCII letters, digits, '-', '_' or '.'"
        );
    }
}
