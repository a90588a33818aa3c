//! The ClickHouse connection: `[clickhouse]` of the aggregator's and the dashboard's configs,
//! and the clients built from it.

use clickhouse::Client;
use serde::Deserialize;

/// `[clickhouse]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP URL of the server (or, in cluster mode, of the node that takes inserts and queries).
    /// Default `http://127.0.0.1:8123`.
    #[serde(default = "default_ch_url")]
    pub url: String,
    /// User name. Default `default`.
    #[serde(default = "default_user")]
    pub user: String,
    /// Password. Default empty.
    #[serde(default)]
    pub password: String,
    /// Database holding teiten's tables: letters, digits and `_`. Default `teiten`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Cluster mode: the cluster name from the servers' `remote_servers` config. Default none
    /// (single server).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Cluster mode: the HTTP URL of every node, for schema migrations and retention (each node
    /// holds its own shard tables). Default empty; required with `cluster`.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Cluster mode: use ReplicatedMergeTree (needs ZooKeeper and the `{shard}`/`{replica}`
    /// macros on every server). Default false.
    #[serde(default)]
    pub replicated: bool,
    /// Replicated mode: how many replicas must hold an INSERT before it is acknowledged
    /// (ClickHouse's `insert_quorum`). Default 0: one, the replica that took it, which
    /// replicates it to the others afterwards; 2 or more: the sensor's batch is acknowledged
    /// only once that many replicas hold it, and inserts fail (transient, 503) while fewer
    /// replicas are up. See `docs/clickhouse-cluster.md` for what it costs.
    #[serde(default)]
    pub insert_quorum: u32,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        // An empty table takes every field's default.
        toml::from_str("").expect("all fields have defaults")
    }
}

impl ClickHouseConfig {
    /// Checks the values; on a bad one, the dotted key (`clickhouse.url`) and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let ch = self;
        check_url(&ch.url).map_err(|r| ("clickhouse.url", r))?;
        if !is_identifier(&ch.database) {
            return Err((
                "clickhouse.database",
                "must be 1 to 64 ASCII letters, digits or '_', not starting with a digit"
                    .to_owned(),
            ));
        }
        match &ch.cluster {
            Some(name) => {
                if !is_identifier(name) {
                    return Err((
                        "clickhouse.cluster",
                        "must be 1 to 64 ASCII letters, digits or '_'".to_owned(),
                    ));
                }
                if ch.nodes.is_empty() {
                    return Err((
                        "clickhouse.nodes",
                        "cluster mode needs the HTTP URL of every node".to_owned(),
                    ));
                }
                for n in &ch.nodes {
                    check_url(n).map_err(|r| ("clickhouse.nodes", r))?;
                }
            }
            None => {
                if !ch.nodes.is_empty() {
                    return Err((
                        "clickhouse.nodes",
                        "needs a cluster name in clickhouse.cluster".to_owned(),
                    ));
                }
                if ch.replicated {
                    return Err((
                        "clickhouse.replicated",
                        "needs a cluster name in clickhouse.cluster".to_owned(),
                    ));
                }
            }
        }
        if ch.insert_quorum > 1 && !ch.replicated {
            return Err((
                "clickhouse.insert_quorum",
                "needs replicated tables (clickhouse.replicated = true)".to_owned(),
            ));
        }
        Ok(())
    }
}

fn default_ch_url() -> String {
    "http://127.0.0.1:8123".into()
}
fn default_user() -> String {
    "default".into()
}
fn default_database() -> String {
    "teiten".into()
}

pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`{url}` is not an http:// or https:// URL"))
    }
}

/// A safe SQL identifier: it is put into DDL as is.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A client of the node at `url` (no database set: for migrations on every node).
pub fn client_for(ch: &ClickHouseConfig, url: &str) -> Client {
    let mut c = Client::default()
        .with_url(url)
        .with_user(&ch.user)
        .with_validation(false)
        // Loopback or LAN: CPU is scarcer than bandwidth, and 18.16's compressed HTTP
        // answers do not decode with the crate.
        .with_compression(clickhouse::Compression::None);
    if !ch.password.is_empty() {
        c = c.with_password(&ch.password);
    }
    if ch.cluster.is_some() {
        c = c.with_option("insert_distributed_sync", "1");
    }
    if ch.insert_quorum > 1 {
        c = c.with_option("insert_quorum", ch.insert_quorum.to_string());
    }
    c
}

/// The client for inserts and queries, with the database set.
pub fn client(ch: &ClickHouseConfig) -> Client {
    client_for(ch, &ch.url).with_database(&ch.database)
}
