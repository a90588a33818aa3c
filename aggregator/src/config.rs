//! The TOML config: a serde struct with defaults, then [`Config::validate`] before any I/O.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use teiten_exchange::config::{Exchange, ExchangeConfig};
use teiten_service::http_server::ServerConfig;
use teiten_store::sources::{is_benchmarking, parse_prefix, SourcePolicy};
use teiten_store::{ClickHouseConfig, Error, GeoConfig, Result};

/// The config file as written (`aggregator.example.toml` shows every field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the ingest API, metrics and health endpoints listen on.
    /// Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the events go.
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    /// Limits on what sensors may send.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// How rows are grouped into INSERT statements.
    #[serde(default)]
    pub insert: InsertConfig,
    /// The IP-to-country database.
    #[serde(default)]
    pub geo: GeoConfig,
    /// How long data is kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// The sensor registry cache.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// The IODEF exchange with partner CSIRTs and internal reports.
    #[serde(default)]
    pub exchange: ExchangeConfig,
    /// Limits on connections and requests (slow and abusive clients).
    #[serde(default)]
    pub server: ServerConfig,
    /// Which sources are never published (partner files, public unique-source counts).
    #[serde(default)]
    pub sources: SourcesConfig,
}

/// `[sources]`: what the aggregator must know to withhold sources that reveal a sensor or
/// were forged (see `sources`). Addresses or prefixes, IPv4 or IPv6 (`192.0.2.1`,
/// `2001:db8::/32`), without host bits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// Every monitored (dark) prefix of every sensor; a source inside one is withheld.
    /// Default empty (a warning at start when partners are configured).
    #[serde(default)]
    pub monitored: Vec<String>,
    /// Every sensor's own addresses (management, uplink); a source among them is withheld.
    /// Default empty.
    #[serde(default)]
    pub sensor_addresses: Vec<String>,
    /// Prefixes inside the benchmarking ranges 198.18.0.0/15 and 2001:2::/48 whose sources
    /// are published anyway (a lab driving real scanners from them); no other special-purpose
    /// range can be published. Default empty: the benchmarking ranges are withheld.
    #[serde(default)]
    pub publish_benchmarking: Vec<String>,
    /// Prefixes of known research scanners (Internet measurement projects that announce
    /// themselves): their events are tagged `research` at ingest, shown and marked, and sent
    /// only to partners that ask for them (`research = true`, the default). Default empty.
    #[serde(default)]
    pub research: Vec<String>,
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted, in bytes (answer 413 above). Default 16 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest decompressed batch, in bytes (answer 413 above). Default 64 MiB.
    #[serde(default = "default_max_decoded")]
    pub max_decoded_bytes: usize,
    /// Most events in one batch (answer 413 above). Default 1,000,000.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Most events held in memory waiting for ClickHouse, over all sensors; above it sensors get
    /// 503 with Retry-After. Default 4,000,000.
    #[serde(default = "default_max_pending")]
    pub max_pending_events: usize,
    /// Most batch requests being read, decoded or waiting at once; above it new ones get 503
    /// with Retry-After. With the other limits this bounds memory: about `max_requests` x
    /// (`max_body_bytes` + `max_decoded_bytes`). Default 32.
    #[serde(default = "default_max_requests")]
    pub max_requests: usize,
    /// Seconds a request waits for its batch to be committed before answering 503. Default 30.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_secs: u64,
    /// The Retry-After value sent with 503, in seconds. Default 5.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
    /// Seconds a batch's seal time, or an event's time, may lie ahead of the aggregator's
    /// clock, and an event's time after its batch's seal time; a batch beyond is refused with
    /// 422 `clock_skew`. Default 300.
    #[serde(default = "default_max_clock_skew")]
    pub max_clock_skew_secs: u64,
    /// Seconds an event's time may lie before its batch's seal time (422 `clock_skew`
    /// beyond). Default 86400.
    #[serde(default = "default_max_event_age")]
    pub max_event_age_secs: u64,
    /// Days a batch's seal time may lie behind the aggregator's clock (a sensor's spool after
    /// an outage; 422 `clock_skew` beyond). Default 30.
    #[serde(default = "default_max_batch_age")]
    pub max_batch_age_days: u64,
}

/// `[insert]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertConfig {
    /// Most rows in one INSERT. Default 1,000,000.
    #[serde(default = "default_insert_rows")]
    pub max_rows: u64,
    /// Most uncompressed bytes in one INSERT. Default 256 MiB.
    #[serde(default = "default_insert_bytes")]
    pub max_bytes: u64,
    /// Longest time an INSERT stays open while batches keep arriving, in milliseconds; an
    /// INSERT also ends as soon as no batch is waiting. Default 1000.
    #[serde(default = "default_insert_period")]
    pub period_ms: u64,
    /// INSERTs in flight side by side (writer tasks). Default 2.
    #[serde(default = "default_writers")]
    pub writers: usize,
    /// Timeout of one INSERT (sending and ending), in seconds. Default 30.
    #[serde(default = "default_insert_timeout")]
    pub timeout_secs: u64,
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of raw events (`scan_events`, `sensor_reports`) kept. Default 90.
    #[serde(default = "default_raw_days")]
    pub raw_days: u32,
    /// Days of rollups kept. Default 730.
    #[serde(default = "default_rollup_days")]
    pub rollup_days: u32,
    /// Seconds between two retention runs (the first runs at start). Default 3600.
    #[serde(default = "default_retention_interval")]
    pub interval_secs: u64,
    /// Seconds between two runs that seal the port digests of the days that are over (and seal
    /// again the days that received events since; see `digest`). Default 300.
    #[serde(default = "default_digest_interval")]
    pub digest_interval_secs: u64,
}

/// `[registry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Seconds between two reloads of the sensor registry from ClickHouse (a revocation takes
    /// effect within this time). Default 10.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body() -> usize {
    16 << 20
}
fn default_max_decoded() -> usize {
    64 << 20
}
fn default_max_events() -> usize {
    1_000_000
}
fn default_max_pending() -> usize {
    4_000_000
}
fn default_max_requests() -> usize {
    32
}
fn default_ack_timeout() -> u64 {
    30
}
fn default_retry_after() -> u64 {
    5
}
fn default_max_clock_skew() -> u64 {
    300
}
fn default_max_event_age() -> u64 {
    86_400
}
fn default_max_batch_age() -> u64 {
    30
}
fn default_insert_rows() -> u64 {
    1_000_000
}
fn default_insert_bytes() -> u64 {
    256 << 20
}
fn default_insert_period() -> u64 {
    1000
}
fn default_writers() -> usize {
    2
}
fn default_insert_timeout() -> u64 {
    30
}
fn default_raw_days() -> u32 {
    90
}
fn default_rollup_days() -> u32 {
    730
}
fn default_retention_interval() -> u64 {
    3600
}
fn default_digest_interval() -> u64 {
    300
}
fn default_refresh() -> u64 {
    10
}

macro_rules! default_via_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // An empty table takes every field's default.
                toml::from_str("").expect("all fields have defaults")
            }
        }
    )*};
}
default_via_serde!(IngestConfig, InsertConfig, RetentionConfig, RegistryConfig);

/// A config that passed [`Config::validate`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The checked config.
    pub config: Config,
    /// `ingest.ack_timeout_secs`.
    pub ack_timeout: Duration,
    /// `insert.period_ms`.
    pub insert_period: Duration,
    /// `insert.timeout_secs`.
    pub insert_timeout: Duration,
    /// `retention.interval_secs`.
    pub retention_interval: Duration,
    /// `retention.digest_interval_secs`.
    pub digest_interval: Duration,
    /// `registry.refresh_secs`.
    pub registry_refresh: Duration,
    /// `[exchange]`, checked.
    pub exchange: Exchange,
    /// `[sources]`, checked.
    pub sources: SourcePolicy,
}

impl Config {
    /// Reads and parses a config file (unknown fields are errors).
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|source| Error::ConfigParse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks every rule that needs no I/O.
    pub fn validate(self) -> Result<Settings> {
        fn bad(field: &'static str, reason: impl Into<String>) -> Error {
            Error::ConfigInvalid {
                field,
                reason: reason.into(),
            }
        }
        self.clickhouse
            .check()
            .map_err(|(field, reason)| bad(field, reason))?;
        let i = &self.ingest;
        if i.max_body_bytes < 64 {
            return Err(bad("ingest.max_body_bytes", "must be at least 64"));
        }
        if i.max_decoded_bytes < 64 {
            return Err(bad("ingest.max_decoded_bytes", "must be at least 64"));
        }
        if i.max_events == 0 {
            return Err(bad("ingest.max_events", "must be at least 1"));
        }
        if i.max_pending_events < i.max_events {
            return Err(bad(
                "ingest.max_pending_events",
                format!(
                    "must be at least ingest.max_events ({}), or no full batch could ever be taken",
                    i.max_events
                ),
            ));
        }
        if i.max_requests == 0 {
            return Err(bad("ingest.max_requests", "must be at least 1"));
        }
        if i.ack_timeout_secs == 0 {
            return Err(bad("ingest.ack_timeout_secs", "must be at least 1"));
        }
        if i.retry_after_secs == 0 {
            return Err(bad("ingest.retry_after_secs", "must be at least 1"));
        }
        let ins = &self.insert;
        if ins.max_rows == 0 {
            return Err(bad("insert.max_rows", "must be at least 1"));
        }
        if ins.max_bytes == 0 {
            return Err(bad("insert.max_bytes", "must be at least 1"));
        }
        if ins.writers == 0 || ins.writers > 64 {
            return Err(bad("insert.writers", "must be 1 to 64"));
        }
        if ins.period_ms == 0 {
            return Err(bad("insert.period_ms", "must be at least 1"));
        }
        if ins.timeout_secs == 0 {
            return Err(bad("insert.timeout_secs", "must be at least 1"));
        }
        let r = &self.retention;
        if r.raw_days == 0 {
            return Err(bad("retention.raw_days", "must be at least 1"));
        }
        if r.rollup_days == 0 {
            return Err(bad("retention.rollup_days", "must be at least 1"));
        }
        if r.interval_secs == 0 {
            return Err(bad("retention.interval_secs", "must be at least 1"));
        }
        if r.digest_interval_secs == 0 {
            return Err(bad("retention.digest_interval_secs", "must be at least 1"));
        }
        if self.registry.refresh_secs == 0 {
            return Err(bad("registry.refresh_secs", "must be at least 1"));
        }
        self.server
            .check()
            .map_err(|(field, reason)| bad(field, reason))?;
        if self.server.request_timeout_secs <= self.ingest.ack_timeout_secs {
            return Err(bad(
                "server.request_timeout_secs",
                format!(
                    "must be more than ingest.ack_timeout_secs ({}), or a batch could time out \
                     before its acknowledgement",
                    self.ingest.ack_timeout_secs
                ),
            ));
        }
        if i.max_clock_skew_secs == 0 || i.max_clock_skew_secs > 86_400 * 366 {
            return Err(bad(
                "ingest.max_clock_skew_secs",
                "must be 1 to 31622400 (a year)",
            ));
        }
        if i.max_event_age_secs == 0 {
            return Err(bad("ingest.max_event_age_secs", "must be at least 1"));
        }
        if i.max_batch_age_days == 0 || i.max_batch_age_days > 36_500 {
            return Err(bad("ingest.max_batch_age_days", "must be 1 to 36500"));
        }
        let sources = self.sources.policy().map_err(|(f, r)| bad(f, r))?;
        let exchange = self.exchange.clone().validate()?;
        Ok(Settings {
            sources,
            exchange,
            ack_timeout: Duration::from_secs(self.ingest.ack_timeout_secs),
            insert_period: Duration::from_millis(self.insert.period_ms),
            insert_timeout: Duration::from_secs(self.insert.timeout_secs),
            retention_interval: Duration::from_secs(self.retention.interval_secs),
            digest_interval: Duration::from_secs(self.retention.digest_interval_secs),
            registry_refresh: Duration::from_secs(self.registry.refresh_secs),
            config: self,
        })
    }
}

impl SourcesConfig {
    /// The checked prefixes as a policy, or the field and reason of the first bad entry.
    fn policy(&self) -> std::result::Result<SourcePolicy, (&'static str, String)> {
        let parse = |field: &'static str, list: &[String]| {
            list.iter()
                .map(|t| parse_prefix(t).map_err(|r| (field, r)))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let monitored = parse("sources.monitored", &self.monitored)?;
        let sensors = parse("sources.sensor_addresses", &self.sensor_addresses)?;
        let bench = parse("sources.publish_benchmarking", &self.publish_benchmarking)?;
        if let Some(n) = bench.iter().find(|n| !is_benchmarking(n)) {
            return Err((
                "sources.publish_benchmarking",
                format!("`{n}` is not inside 198.18.0.0/15 or 2001:2::/48"),
            ));
        }
        let research = parse("sources.research", &self.research)?;
        Ok(SourcePolicy::new(&monitored, &sensors, &bench).with_research(&research))
    }
}

impl Config {
    /// Settings that are valid but probably a mistake, one sentence each (logged at start).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.exchange.partners.is_empty() && self.sources.monitored.is_empty() {
            w.push(
                "partners are configured but [sources] monitored is empty: sources forged from \
                 a dark address are only withheld when they equal the event's destination"
                    .to_owned(),
            );
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../aggregator.example.toml");
        let s = Config::parse(text).unwrap().validate().unwrap();
        assert_eq!(s.config.retention.raw_days, 90);
        assert_eq!(s.config.retention.rollup_days, 730);
    }

    #[test]
    fn empty_config_takes_defaults() {
        let s = Config::parse("").unwrap().validate().unwrap();
        assert_eq!(s.config.clickhouse.database, "teiten");
        assert_eq!(s.config.listen.port(), 8080);
        assert_eq!(
            s.config.geo.source(),
            teiten_store::geo::GeoSource::Location
        );
        assert_eq!(
            s.config.geo.location_path(),
            std::path::PathBuf::from("/var/lib/location/database.db")
        );
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = Config::parse("[ingest]\nmax_body = 3\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_body`"),
            "{err}"
        );
    }

    #[test]
    fn bad_database_name() {
        let err = Config::parse("[clickhouse]\ndatabase = \"a;b\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config field `clickhouse.database` is invalid"),
            "{err}"
        );
    }

    #[test]
    fn cluster_needs_nodes() {
        let err = Config::parse("[clickhouse]\ncluster = \"c\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config field `clickhouse.nodes` is invalid: cluster mode needs the HTTP URL of every node"
        );
    }

    #[test]
    fn pending_must_hold_one_batch() {
        let err = Config::parse("[ingest]\nmax_events = 10\nmax_pending_events = 5\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("ingest.max_pending_events"),
            "{err}"
        );
    }

    #[test]
    fn server_limits_are_checked() {
        let s = Config::parse("").unwrap().validate().unwrap();
        assert_eq!(s.config.server.max_connections, 1024);
        let err = Config::parse("[server]\nmax_connections = 0\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("server.max_connections"), "{err}");
        let err = Config::parse("[server]\nrequest_timeout_secs = 30\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("server.request_timeout_secs"),
            "{err}"
        );
    }

    #[test]
    fn sources_are_checked_with_the_field_named() {
        let err = |text: &str| {
            Config::parse(text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        let e = err("[sources]\nmonitored = [\"198.18.1.7/24\"]\n");
        assert!(
            e.contains("sources.monitored") && e.contains("host bits"),
            "{e}"
        );
        let e = err("[sources]\nsensor_addresses = [\"sensor-1\"]\n");
        assert!(e.contains("sources.sensor_addresses"), "{e}");
        let e = err("[sources]\npublish_benchmarking = [\"10.0.0.0/8\"]\n");
        assert!(
            e.contains("sources.publish_benchmarking") && e.contains("198.18.0.0/15"),
            "{e}"
        );
        let ok = Config::parse(
            "[sources]\nmonitored = [\"198.18.1.0/24\", \"2001:db8:1::/48\"]\n\
             sensor_addresses = [\"198.18.0.2\"]\npublish_benchmarking = [\"198.18.0.0/24\"]\n",
        )
        .unwrap();
        assert!(ok.warnings().is_empty());
        assert!(!ok.validate().unwrap().sources.monitors_nothing());
        let e = err("[ingest]\nmax_clock_skew_secs = 0\n");
        assert!(e.contains("ingest.max_clock_skew_secs"), "{e}");
    }

    #[test]
    fn partners_without_monitored_prefixes_warn() {
        let c = Config::parse("[[exchange.partner]]\nid = \"kr\"\ncountries = [\"KR\"]\n").unwrap();
        assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    }

    /// Every validated key, with a value that breaks its rule: the error names that key.
    #[test]
    fn every_validation_error_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("clickhouse.url", "[clickhouse]\nurl = \"ftp://x\""),
            ("clickhouse.database", "[clickhouse]\ndatabase = \"1x\""),
            (
                "clickhouse.cluster",
                "[clickhouse]\ncluster = \"a-b\"\nnodes = [\"http://n\"]",
            ),
            ("clickhouse.nodes", "[clickhouse]\ncluster = \"c\""),
            (
                "clickhouse.nodes",
                "[clickhouse]\ncluster = \"c\"\nnodes = [\"n:8123\"]",
            ),
            ("clickhouse.nodes", "[clickhouse]\nnodes = [\"http://n\"]"),
            ("clickhouse.replicated", "[clickhouse]\nreplicated = true"),
            (
                "clickhouse.insert_quorum",
                "[clickhouse]\ncluster = \"c\"\nnodes = [\"http://n\"]\ninsert_quorum = 2",
            ),
            ("ingest.max_body_bytes", "[ingest]\nmax_body_bytes = 63"),
            (
                "ingest.max_decoded_bytes",
                "[ingest]\nmax_decoded_bytes = 63",
            ),
            ("ingest.max_events", "[ingest]\nmax_events = 0"),
            (
                "ingest.max_pending_events",
                "[ingest]\nmax_events = 10\nmax_pending_events = 9",
            ),
            ("ingest.max_requests", "[ingest]\nmax_requests = 0"),
            ("ingest.ack_timeout_secs", "[ingest]\nack_timeout_secs = 0"),
            ("ingest.retry_after_secs", "[ingest]\nretry_after_secs = 0"),
            (
                "ingest.max_clock_skew_secs",
                "[ingest]\nmax_clock_skew_secs = 0",
            ),
            (
                "ingest.max_clock_skew_secs",
                "[ingest]\nmax_clock_skew_secs = 31622401",
            ),
            (
                "ingest.max_event_age_secs",
                "[ingest]\nmax_event_age_secs = 0",
            ),
            (
                "ingest.max_batch_age_days",
                "[ingest]\nmax_batch_age_days = 0",
            ),
            (
                "ingest.max_batch_age_days",
                "[ingest]\nmax_batch_age_days = 36501",
            ),
            ("insert.max_rows", "[insert]\nmax_rows = 0"),
            ("insert.max_bytes", "[insert]\nmax_bytes = 0"),
            ("insert.writers", "[insert]\nwriters = 0"),
            ("insert.writers", "[insert]\nwriters = 65"),
            ("insert.period_ms", "[insert]\nperiod_ms = 0"),
            ("insert.timeout_secs", "[insert]\ntimeout_secs = 0"),
            ("retention.raw_days", "[retention]\nraw_days = 0"),
            ("retention.rollup_days", "[retention]\nrollup_days = 0"),
            ("retention.interval_secs", "[retention]\ninterval_secs = 0"),
            (
                "retention.digest_interval_secs",
                "[retention]\ndigest_interval_secs = 0",
            ),
            ("registry.refresh_secs", "[registry]\nrefresh_secs = 0"),
            ("server.max_connections", "[server]\nmax_connections = 0"),
            (
                "server.header_read_timeout_ms",
                "[server]\nheader_read_timeout_ms = 99",
            ),
            (
                "server.request_timeout_secs",
                "[server]\nrequest_timeout_secs = 0",
            ),
            (
                "server.request_timeout_secs",
                "[server]\nrequest_timeout_secs = 30\n[ingest]\nack_timeout_secs = 30",
            ),
            ("server.max_requests", "[server]\nmax_requests = 0"),
            ("sources.monitored", "[sources]\nmonitored = [\"x\"]"),
            (
                "sources.sensor_addresses",
                "[sources]\nsensor_addresses = [\"x\"]",
            ),
            (
                "sources.publish_benchmarking",
                "[sources]\npublish_benchmarking = [\"10.0.0.0/8\"]",
            ),
            ("exchange.csirt", "[exchange]\ncsirt = \" \""),
            (
                "exchange.delivery_timeout_secs",
                "[exchange]\ndelivery_timeout_secs = 0",
            ),
        ];
        for (key, text) in cases {
            let err = Config::parse(text)
                .unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"))
                .validate()
                .err()
                .unwrap_or_else(|| panic!("{text:?} passed validation"))
                .to_string();
            assert!(
                err.starts_with(&format!("config field `{key}` is invalid")),
                "{text:?} should be reported as `{key}`: {err}"
            );
        }
    }

    #[test]
    fn zero_retention_rejected() {
        let err = Config::parse("[retention]\nraw_days = 0\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("retention.raw_days"), "{err}");
    }
}
