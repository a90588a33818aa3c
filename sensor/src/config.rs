//! The sensor's TOML configuration: a serde struct, then a pure [`Config::validate`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::filter::Monitored;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or a value has the wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key, dotted.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The configuration file as written (see `sensor/teiten-sensor.example.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This sensor's id: 1-64 of `A-Za-z0-9-_.`. Required.
    pub sensor_id: String,
    /// The capture interface (for example `eth1`). Required for live capture.
    #[serde(default)]
    pub interface: Option<String>,
    /// The monitored (dark) prefixes, IPv4 and IPv6 in any mix. Required, at least one.
    pub monitored_prefixes: Vec<IpNet>,
    /// Capture settings.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// Where and how batches are shipped.
    #[serde(default)]
    pub aggregator: AggregatorConfig,
    /// The durable on-disk spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// When a batch is sealed.
    #[serde(default)]
    pub batch: BatchConfig,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[capture]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Capture threads, spread with PACKET_FANOUT (hash of the flow). Default 1, at most 16.
    pub threads: usize,
    /// Size of each thread's kernel ring in MiB. Default 64.
    pub ring_mb: usize,
    /// Bytes kept of each packet. Default 256 (headers only).
    pub snaplen: usize,
    /// Also record packets the capture sees leaving the interface. Default false.
    pub include_outbound: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            threads: 1,
            ring_mb: 64,
            snaplen: 256,
            include_outbound: false,
        }
    }
}

/// `[aggregator]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Aggregator base URLs, tried in order for failover: `https://` (`http://` only with
    /// `allow_insecure`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Allow `http://` URLs: the token and the captured packets then cross the network in
    /// clear text, which reveals the sensor. Only for tests on loopback. Default false.
    #[serde(default)]
    pub allow_insecure: bool,
    /// This sensor's token (from `teiten-aggregator sensor add`). Prefer `token_file`.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for `https://` URLs, besides the public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Timeout of one request in seconds. Default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Longest wait between retries in seconds (backoff doubles up to it). Default 30.
    #[serde(default)]
    pub retry_max_secs: Option<u64>,
}

/// `[spool]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory of the spool. Default `/var/lib/teiten-sensor/spool`.
    pub dir: PathBuf,
    /// Largest size of the spool in MiB; new batches are dropped (and counted) past it.
    /// Default 1024.
    pub max_mb: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("/var/lib/teiten-sensor/spool"),
            max_mb: 1024,
        }
    }
}

/// `[batch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most events in a batch. Default 20000.
    pub max_events: usize,
    /// Longest time a batch stays open, in milliseconds. Default 1000.
    pub max_interval_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: 20_000,
            max_interval_ms: 1000,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`/metrics`); empty to turn it off.
    /// Default `127.0.0.1:9108`.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9108".into(),
        }
    }
}

/// A configuration that passed [`Config::validate`].
#[derive(Debug, Clone)]
pub struct Valid {
    /// The sensor id.
    pub sensor_id: String,
    /// The capture interface, if configured.
    pub interface: Option<String>,
    /// The monitored prefixes.
    pub monitored: Monitored,
    /// Capture settings.
    pub capture: CaptureConfig,
    /// Aggregator URLs (may be empty for `--stdout` use).
    pub urls: Vec<String>,
    /// The token, if configured (never logged).
    pub token: Option<Secret>,
    /// Extra CA file.
    pub ca_file: Option<PathBuf>,
    /// Request timeout.
    pub timeout: Duration,
    /// Longest retry wait.
    pub retry_max: Duration,
    /// Spool directory.
    pub spool_dir: PathBuf,
    /// Spool bound in bytes.
    pub spool_max_bytes: u64,
    /// Batch bound in events.
    pub batch_max_events: usize,
    /// Batch bound in time.
    pub batch_max_interval: Duration,
    /// Metrics address, if any.
    pub metrics_listen: Option<SocketAddr>,
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Valid, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Config::parse(&text, path)?;
        config.validate(path)
    }

    /// Parses TOML text (`path` only names the file in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })
    }

    /// Checks every value; reads `token_file` (the only I/O).
    pub fn validate(self, path: &Path) -> Result<Valid, ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let id = &self.sensor_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad(
                "sensor_id",
                format!("{id:?} must be 1-64 characters of A-Z a-z 0-9 - _ ."),
            ));
        }
        if self.monitored_prefixes.is_empty() {
            return Err(bad(
                "monitored_prefixes",
                "at least one prefix is required".into(),
            ));
        }
        if self.capture.threads == 0 || self.capture.threads > 16 {
            return Err(bad(
                "capture.threads",
                format!("{} is not between 1 and 16", self.capture.threads),
            ));
        }
        if self.capture.ring_mb == 0 || self.capture.ring_mb > 4096 {
            return Err(bad(
                "capture.ring_mb",
                format!("{} is not between 1 and 4096", self.capture.ring_mb),
            ));
        }
        if self.capture.snaplen < 64 || self.capture.snaplen > 65535 {
            return Err(bad(
                "capture.snaplen",
                format!("{} is not between 64 and 65535", self.capture.snaplen),
            ));
        }
        for url in &self.aggregator.urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(
                    "aggregator.urls",
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
            if url.starts_with("http://") && !self.aggregator.allow_insecure {
                return Err(bad(
                    "aggregator.urls",
                    format!(
                        "{url:?} is plain HTTP; the sensor ships over https:// only (set \
                         aggregator.allow_insecure = true to allow http:// in tests)"
                    ),
                ));
            }
        }
        let token = match (&self.aggregator.token, &self.aggregator.token_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "aggregator.token",
                    "set token or token_file, not both".into(),
                ))
            }
            (Some(t), None) => Some(t.clone()),
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    bad(
                        "aggregator.token_file",
                        format!("cannot read {}: {e}", f.display()),
                    )
                })?;
                Some(text.lines().next().unwrap_or("").trim().to_owned())
            }
            (None, None) => None,
        };
        if let Some(t) = &token {
            if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(
                    "aggregator.token",
                    "the token is empty or holds spaces or control characters".into(),
                ));
            }
        }
        if !self.aggregator.urls.is_empty() && token.is_none() {
            return Err(bad(
                "aggregator.token",
                "aggregator.urls are set but neither token nor token_file is".into(),
            ));
        }
        if self.spool.max_mb == 0 {
            return Err(bad("spool.max_mb", "must be at least 1".into()));
        }
        if self.batch.max_events == 0 || self.batch.max_events > 500_000 {
            return Err(bad(
                "batch.max_events",
                format!("{} is not between 1 and 500000", self.batch.max_events),
            ));
        }
        if self.batch.max_interval_ms < 10 || self.batch.max_interval_ms > 600_000 {
            return Err(bad(
                "batch.max_interval_ms",
                format!(
                    "{} is not between 10 and 600000",
                    self.batch.max_interval_ms
                ),
            ));
        }
        let metrics_listen = if self.metrics.listen.is_empty() {
            None
        } else {
            Some(self.metrics.listen.parse().map_err(|_| {
                bad(
                    "metrics.listen",
                    format!("{:?} is not an address:port", self.metrics.listen),
                )
            })?)
        };
        Ok(Valid {
            sensor_id: self.sensor_id,
            interface: self.interface,
            monitored: Monitored::new(&self.monitored_prefixes),
            capture: self.capture,
            urls: self
                .aggregator
                .urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            token: token.map(Secret),
            ca_file: self.aggregator.ca_file,
            timeout: Duration::from_secs(self.aggregator.timeout_secs.unwrap_or(30).max(1)),
            retry_max: Duration::from_secs(self.aggregator.retry_max_secs.unwrap_or(30).max(1)),
            spool_dir: self.spool.dir,
            spool_max_bytes: self.spool.max_mb.saturating_mul(1 << 20),
            batch_max_events: self.batch.max_events,
            batch_max_interval: Duration::from_millis(self.batch.max_interval_ms),
            metrics_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "sensor.toml";

    fn check(text: &str) -> Result<Valid, ConfigError> {
        Config::parse(text, Path::new(P))?.validate(Path::new(P))
    }

    const MIN: &str = r#"
sensor_id = "tokyo-1"
monitored_prefixes = ["198.18.1.0/24", "2001:db8:1::/48"]
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let v = check(MIN).unwrap();
        assert_eq!(v.capture.threads, 1);
        assert_eq!(v.batch_max_events, 20_000);
        assert_eq!(v.spool_max_bytes, 1024 << 20);
        assert_eq!(v.metrics_listen, Some("127.0.0.1:9108".parse().unwrap()));
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../teiten-sensor.example.toml");
        let v = check(text).unwrap();
        assert_eq!(v.urls.len(), 2);
        assert!(format!("{v:?}").contains("Secret(***)"));
        assert!(!format!("{v:?}").contains("change-me"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = check(&format!("{MIN}\ncaptur_threads = 2\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config sensor.toml: "), "{err}");
        assert!(err.contains("captur_threads"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn bad_prefix_is_reported() {
        let err = check("sensor_id = \"a\"\nmonitored_prefixes = [\"198.18.1.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("monitored_prefixes"), "{err}");
    }

    #[test]
    fn plain_http_needs_allow_insecure() {
        let err = check(&format!(
            "{MIN}\n[aggregator]\nurls = [\"http://127.0.0.1:1\"]\ntoken = \"t\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("aggregator.allow_insecure = true"), "{err}");
        let v = check(&format!(
            "{MIN}\n[aggregator]\nurls = [\"http://127.0.0.1:1\"]\ntoken = \"t\"\n\
             allow_insecure = true\n"
        ))
        .unwrap();
        assert_eq!(v.urls, ["http://127.0.0.1:1"]);
    }

    #[test]
    fn values_out_of_range() {
        for (extra, key) in [
            ("[capture]\nthreads = 0", "capture.threads"),
            ("[capture]\nthreads = 17", "capture.threads"),
            ("[capture]\nring_mb = 0", "capture.ring_mb"),
            ("[capture]\nring_mb = 4097", "capture.ring_mb"),
            ("[capture]\nsnaplen = 63", "capture.snaplen"),
            ("[capture]\nsnaplen = 65536", "capture.snaplen"),
            ("[spool]\nmax_mb = 0", "spool.max_mb"),
            ("[batch]\nmax_events = 0", "batch.max_events"),
            ("[batch]\nmax_events = 500001", "batch.max_events"),
            ("[batch]\nmax_interval_ms = 9", "batch.max_interval_ms"),
            ("[batch]\nmax_interval_ms = 600001", "batch.max_interval_ms"),
            (
                "[aggregator]\ntoken = \"t\"\ntoken_file = \"/nonexistent/token\"",
                "aggregator.token",
            ),
            ("[aggregator]\ntoken = \"a b\"", "aggregator.token"),
            ("[metrics]\nlisten = \"nowhere\"", "metrics.listen"),
            ("[aggregator]\nurls = [\"ftp://x\"]", "aggregator.urls"),
            (
                "[aggregator]\nurls = [\"http://x\"]\nallow_insecure = true",
                "aggregator.token",
            ),
            (
                "[aggregator]\nurls = [\"http://x\"]\ntoken = \"t\"",
                "aggregator.urls",
            ),
            (
                "[aggregator]\ntoken_file = \"/nonexistent/token\"",
                "aggregator.token_file",
            ),
        ] {
            let err = check(&format!("{MIN}\n{extra}\n")).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("config sensor.toml: {key}: ")),
                "{err}"
            );
        }
        for (text, key) in [
            (
                "sensor_id = \"bad id\"\nmonitored_prefixes = [\"198.18.1.0/24\"]",
                "sensor_id",
            ),
            (
                "sensor_id = \"a\"\nmonitored_prefixes = []",
                "monitored_prefixes",
            ),
        ] {
            let err = check(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("config sensor.toml: {key}: ")),
                "{err}"
            );
        }
    }
}
