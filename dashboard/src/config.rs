//! The TOML config: a serde struct with defaults, then [`Config::validate`] before any I/O.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use teiten_service::http_server::ServerConfig;
use teiten_store::ClickHouseConfig;

use crate::error::{Error, Result};

/// The config file as written (`dashboard/dashboard.example.toml` shows every field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the dashboard listens on. Default `127.0.0.1:8090`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TrueType font for chart text. Default
    /// `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf` (Debian `fonts-dejavu-core`).
    #[serde(default = "default_font")]
    pub font: PathBuf,
    /// Where the data is: the same `[clickhouse]` section as the aggregator's (the dashboard
    /// only reads).
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    /// Limits on what a request may ask for.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The per-query cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The trends box on the front page.
    #[serde(default)]
    pub trends: TrendsConfig,
    /// Named sensor groups usable as a filter: group name -> sensor ids. Default none.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The analyst view (login). Default: no users, so nobody can log in.
    #[serde(default)]
    pub analyst: AnalystConfig,
    /// What the public (not logged-in) pages and API may show: the defence against probe
    /// response attacks (`docs/probe-response.md`).
    #[serde(default)]
    pub public: PublicConfig,
    /// Throttling of login attempts.
    #[serde(default)]
    pub login: LoginConfig,
    /// How the dashboard's queries run in ClickHouse.
    #[serde(default)]
    pub query: QueryConfig,
    /// Limits on connections and requests (slow and abusive clients; the aggregator has the
    /// same section).
    #[serde(default)]
    pub server: ServerConfig,
    /// Who may read `/metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The aggregator's API, through which the exchange page files internal reports and
    /// downloads the daily partner files. Default none: the page offers no report form and
    /// no download.
    #[serde(default)]
    pub reports: Option<ReportsConfig>,
    /// The network database the address page names an address's network, AS and flags from:
    /// the same `[geo]` section as the aggregator's. Default: IPFire's location database; the
    /// page does without when it does not load.
    #[serde(default)]
    pub geo: teiten_store::geo::GeoConfig,
}

/// `[reports]`: the aggregator the exchange page talks to, as an `[[exchange.reporter]]` of
/// the aggregator's own (its name is stored with every report filed here; `outbox = true` lets
/// it download the daily files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// The aggregator's base URL (`https://127.0.0.1:8443`); reports go to
    /// `<url>/api/v1/reports`, downloads come from `<url>/api/v1/outbox/...`. Required.
    pub url: String,
    /// File whose first line is the reporter's bearer token (its SHA-256 is the reporter's
    /// `token_sha256` in the aggregator's config). Read at start-up, never logged. Required.
    pub token_file: PathBuf,
    /// PEM file of the CA (or the certificate) the aggregator's TLS certificate is checked
    /// against, besides the web PKI. Default none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Longest a report may take to be filed (connecting, sending, the answer), in seconds.
    /// 1 to 300. Default 30.
    #[serde(default = "default_report_timeout")]
    pub timeout_secs: u64,
    /// Longest a daily file's download from the aggregator may take, in seconds. 1 to 3600.
    /// Default 600.
    #[serde(default = "default_download_timeout")]
    pub download_timeout_secs: u64,
    /// Allow a plain `http://` URL to another host (the bearer token and the reports then cross
    /// the network unencrypted). `http://` to a loopback address (127.0.0.0/8, `[::1]`,
    /// `localhost`) is always allowed. Default false.
    #[serde(default)]
    pub allow_insecure: bool,
}

/// Whether a URL's `host[:port]` is this machine's loopback.
fn is_loopback(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

fn default_report_timeout() -> u64 {
    30
}
fn default_download_timeout() -> u64 {
    600
}

/// `[metrics]`: `/metrics` (Prometheus text: requests, latency per endpoint, cache hits,
/// ClickHouse errors; no per-sensor labels) is read with a bearer token, like a scraper's
/// `authorization` setting. Without `token_sha256`, `/metrics` answers 404.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// SHA-256 of the scraper's bearer token, 64 hex digits (`teiten-aggregator token-hash`
    /// prints it). Default: none (no one may read `/metrics`).
    #[serde(default)]
    pub token_sha256: Option<String>,
}

/// `[public]`: the public pages and API show data only after a delay, in coarse buckets, over
/// all sensors, and per port or region only when it cleared a threshold. Analysts (logged in)
/// see everything at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// Delay before data is public, in seconds: public data ends at `now - delay_secs`, rounded
    /// down to `grain_secs`. At most 30 days. Default: none set, and public data ends at the
    /// start of the current UTC day (only whole UTC days that are over are public).
    #[serde(default)]
    pub delay_secs: Option<u64>,
    /// The finest public bucket, in seconds: 300, 3600 or 86400. Periods whose own bucket is
    /// finer are drawn at this one. Default 3600 (one hour).
    #[serde(default = "default_grain")]
    pub grain_secs: u32,
    /// A port (or a source region) is public in a period only when at least this many distinct
    /// source addresses sent to it in the period, over all sensors. At least 1. Default 10.
    #[serde(default = "default_min_sources")]
    pub min_sources: u64,
    /// ... and at least this many distinct sensors saw it in the period. At least 1.
    /// Default 2.
    #[serde(default = "default_min_sensors")]
    pub min_sensors: u64,
}

impl PublicConfig {
    /// The end (exclusive, Unix seconds) of public data at `now`: the start of the current UTC
    /// day, or `now - delay_secs` rounded down to the grain.
    pub fn until(&self, now: i64) -> i64 {
        match self.delay_secs {
            None => teiten_store::time::midnight(now),
            Some(d) => {
                let g = i64::from(self.grain_secs.max(1));
                (now - d as i64).div_euclid(g) * g
            }
        }
    }

    /// The delay in words, for responses.
    pub fn delay_text(&self) -> String {
        match self.delay_secs {
            None => "whole UTC days that are over".to_owned(),
            Some(d) => format!("{d} seconds, then whole {}-second buckets", self.grain_secs),
        }
    }
}

/// `[login]`: attempts are counted per client address (IPv6 by /64) and per user name (names
/// that are not configured users share one count); each count is a bucket of `*_burst`
/// attempts refilled at `*_per_minute`, and an attempt that finds its bucket empty is answered
/// 429 with `Retry-After`, without checking the password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// Attempts one address may make in a row. 1 to 1000. Default 10.
    #[serde(default = "default_address_burst")]
    pub address_burst: u32,
    /// Attempts per minute an address gets back. 1 to 600. Default 6.
    #[serde(default = "default_address_per_minute")]
    pub address_per_minute: u32,
    /// Attempts on one user name in a row, from any address. 1 to 1000. Default 10.
    #[serde(default = "default_user_burst")]
    pub user_burst: u32,
    /// Attempts per minute a user name gets back. 1 to 600. Default 4.
    #[serde(default = "default_user_per_minute")]
    pub user_per_minute: u32,
    /// Password checks (argon2, about 19 MiB each) running at once; an attempt waits at most
    /// 2 s for a slot, then gets 503. One check at a time per user name (made-up names count
    /// as one), so a flood cannot queue ahead of another user. 1 to 64. Default 2.
    #[serde(default = "default_max_checks")]
    pub max_checks: usize,
}

/// `[query]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Longest a query may run in ClickHouse (`max_execution_time`), in seconds; then it is
    /// cancelled and the page answers 500. 1 to 3600. Default 10.
    #[serde(default = "default_max_execution")]
    pub max_execution_secs: u64,
    /// A read-only ClickHouse user the graph, API and analyst queries run as (its profile
    /// needs `readonly` = 2, so that `max_execution_time` can be set; see
    /// `docs/deploy-single-node.md`). Default none: `clickhouse.user` for everything (the
    /// dashboard only reads; internal reports are written by the aggregator, `[reports]`).
    #[serde(default)]
    pub user: Option<String>,
    /// Password of `query.user`. Default empty.
    #[serde(default)]
    pub password: String,
}

fn default_address_burst() -> u32 {
    10
}
fn default_address_per_minute() -> u32 {
    6
}
fn default_user_burst() -> u32 {
    10
}
fn default_user_per_minute() -> u32 {
    4
}
fn default_max_checks() -> usize {
    2
}
fn default_max_execution() -> u64 {
    10
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            address_burst: default_address_burst(),
            address_per_minute: default_address_per_minute(),
            user_burst: default_user_burst(),
            user_per_minute: default_user_per_minute(),
            max_checks: default_max_checks(),
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_execution_secs: default_max_execution(),
            user: None,
            password: String::new(),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest N of a top-N graph. Default 20.
    #[serde(default = "default_max_top")]
    pub max_top: u32,
    /// Longest custom period, in days. Default 400.
    #[serde(default = "default_max_days")]
    pub max_days: u32,
    /// Largest page of the raw event search, in rows. Default 500.
    #[serde(default = "default_max_page")]
    pub max_page: u32,
    /// How far the raw event search may page, in rows. Default 100000.
    #[serde(default = "default_max_offset")]
    pub max_offset: u32,
}

/// `[cache]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a query's result (data and rendered charts) is reused, in seconds; 0 turns the
    /// cache off. Default 60.
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// Most cached entries. Default 1000.
    #[serde(default = "default_entries")]
    pub max_entries: usize,
}

/// `[trends]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendsConfig {
    /// Days of baseline before the last 24 hours. Default 30.
    #[serde(default = "default_baseline_days")]
    pub baseline_days: u32,
    /// A port rises when its last 24 hours are at least this many times its daily baseline
    /// mean. Default 3.0.
    #[serde(default = "default_min_ratio")]
    pub min_ratio: f64,
    /// ... and at least this many standard deviations above it. Default 3.0.
    #[serde(default = "default_min_score")]
    pub min_score: f64,
    /// ... and at least this many packets in the last 24 hours. Default 100.
    #[serde(default = "default_min_packets")]
    pub min_packets: u64,
    /// Most ports shown. Default 10.
    #[serde(default = "default_trend_rows")]
    pub max_rows: u32,
    /// Seconds between recomputations in the background (30 days of every port take about a
    /// second at 100 M events); pages answer from the latest. 0: computed when asked and kept
    /// for `cache.ttl_secs`. Default 300.
    #[serde(default = "default_trend_refresh")]
    pub refresh_secs: u64,
}

/// `[analyst]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalystConfig {
    /// Analysts: name -> argon2 PHC hash (`teiten-dashboard hash-password`). Default none.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// How long a session lasts, in seconds. Default 28800 (8 hours).
    #[serde(default = "default_session")]
    pub session_secs: u64,
    /// Mark cookies `Secure` (browsers then send them over HTTPS and to localhost only). Turn
    /// off only behind a trusted TLS-terminating proxy that speaks plain HTTP to the browser's
    /// network... which should not exist. Default true.
    #[serde(default = "default_true")]
    pub secure_cookies: bool,
    /// Removed (the daily files come through the aggregator's API, `[reports]`): only read
    /// to name it in the error.
    #[serde(default)]
    outbox: Option<toml::Value>,
    /// Removed (reports are filed through the aggregator's API, `[reports]`): only read to
    /// name it in the error.
    #[serde(default)]
    aggregator_config: Option<toml::Value>,
}

fn default_grain() -> u32 {
    3600
}
fn default_min_sources() -> u64 {
    10
}
fn default_min_sensors() -> u64 {
    2
}
fn default_trend_refresh() -> u64 {
    300
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}
fn default_font() -> PathBuf {
    PathBuf::from("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
}
fn default_max_top() -> u32 {
    20
}
fn default_max_days() -> u32 {
    400
}
fn default_max_page() -> u32 {
    500
}
fn default_max_offset() -> u32 {
    100_000
}
fn default_ttl() -> u64 {
    60
}
fn default_entries() -> usize {
    1000
}
fn default_baseline_days() -> u32 {
    30
}
fn default_min_ratio() -> f64 {
    3.0
}
fn default_min_score() -> f64 {
    3.0
}
fn default_min_packets() -> u64 {
    100
}
fn default_trend_rows() -> u32 {
    10
}
fn default_session() -> u64 {
    8 * 3600
}
fn default_true() -> bool {
    true
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_top: default_max_top(),
            max_days: default_max_days(),
            max_page: default_max_page(),
            max_offset: default_max_offset(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl_secs: default_ttl(),
            max_entries: default_entries(),
        }
    }
}

impl Default for TrendsConfig {
    fn default() -> Self {
        TrendsConfig {
            baseline_days: default_baseline_days(),
            min_ratio: default_min_ratio(),
            min_score: default_min_score(),
            min_packets: default_min_packets(),
            max_rows: default_trend_rows(),
            refresh_secs: default_trend_refresh(),
        }
    }
}

impl Default for PublicConfig {
    fn default() -> Self {
        PublicConfig {
            delay_secs: None,
            grain_secs: default_grain(),
            min_sources: default_min_sources(),
            min_sensors: default_min_sensors(),
        }
    }
}

impl Default for AnalystConfig {
    fn default() -> Self {
        AnalystConfig {
            users: BTreeMap::new(),
            session_secs: default_session(),
            secure_cookies: true,
            outbox: None,
            aggregator_config: None,
        }
    }
}

/// A config that passed [`Config::validate`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config.
    pub config: Config,
    /// The cache lifetime.
    pub cache_ttl: Duration,
    /// The SHA-256 of the bearer token that may read `/metrics` (`metrics.token_sha256`).
    pub metrics_token: Option<[u8; 32]>,
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// Sensor ids and group names: what the filter accepts.
pub(crate) fn is_sensor_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Config {
    /// Parses TOML text (`what` names its origin in errors).
    pub fn parse(text: &str, what: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::Config {
            what: what.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Checks every rule that needs no I/O.
    pub fn validate(self) -> Result<Settings> {
        let bad = |message: String| {
            Err(Error::Config {
                what: "validation".to_owned(),
                message,
            })
        };
        if !is_identifier(&self.clickhouse.database) {
            return bad(format!(
                "clickhouse.database {:?}: letters, digits and _ only",
                self.clickhouse.database
            ));
        }
        if !self.clickhouse.url.starts_with("http://")
            && !self.clickhouse.url.starts_with("https://")
        {
            return bad(format!(
                "clickhouse.url {:?}: must start with http:// or https://",
                self.clickhouse.url
            ));
        }
        if self.limits.max_top == 0 || self.limits.max_top > 100 {
            return bad(format!(
                "limits.max_top {}: between 1 and 100",
                self.limits.max_top
            ));
        }
        if self.limits.max_days == 0 || self.limits.max_days > 3660 {
            return bad(format!(
                "limits.max_days {}: between 1 and 3660",
                self.limits.max_days
            ));
        }
        if self.limits.max_page == 0 || self.limits.max_page > 10_000 {
            return bad(format!(
                "limits.max_page {}: between 1 and 10000",
                self.limits.max_page
            ));
        }
        if self.cache.max_entries == 0 {
            return bad("cache.max_entries: at least 1".to_owned());
        }
        if self.trends.baseline_days == 0 || self.trends.baseline_days > 365 {
            return bad(format!(
                "trends.baseline_days {}: between 1 and 365",
                self.trends.baseline_days
            ));
        }
        if !(self.trends.min_ratio.is_finite() && self.trends.min_ratio >= 1.0) {
            return bad("trends.min_ratio: a number of at least 1".to_owned());
        }
        if !self.trends.min_score.is_finite() {
            return bad("trends.min_score: a finite number".to_owned());
        }
        for (name, members) in &self.groups {
            if !is_sensor_name(name) {
                return bad(format!(
                    "groups.{name}: group names are letters, digits, '-', '_' and '.'"
                ));
            }
            if members.is_empty() {
                return bad(format!("groups.{name}: no sensors"));
            }
            if let Some(m) = members.iter().find(|m| !is_sensor_name(m)) {
                return bad(format!("groups.{name}: bad sensor id {m:?}"));
            }
        }
        for (name, hash) in &self.analyst.users {
            if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
                return bad(format!("analyst.users: bad user name {name:?}"));
            }
            if let Err(e) = argon2::PasswordHash::new(hash) {
                return bad(format!(
                    "analyst.users.{name}: not an argon2 PHC hash ({e}); make one with \
                     `teiten-dashboard hash-password`"
                ));
            }
        }
        if ![300, 3600, 86_400].contains(&self.public.grain_secs) {
            return bad(format!(
                "public.grain_secs {}: one of 300, 3600, 86400",
                self.public.grain_secs
            ));
        }
        if self.public.delay_secs.is_some_and(|d| d > 30 * 86_400) {
            return bad("public.delay_secs: at most 2592000 (30 days)".to_owned());
        }
        if self.public.min_sources == 0 {
            return bad("public.min_sources: at least 1".to_owned());
        }
        if self.public.min_sensors == 0 {
            return bad("public.min_sensors: at least 1".to_owned());
        }
        if self.analyst.outbox.is_some() {
            return bad(
                "analyst.outbox: no longer read; the exchange page downloads the daily \
                 files through the aggregator: set [reports] (url, token_file) and give the \
                 dashboard's [[exchange.reporter]] outbox = true in the aggregator's config"
                    .to_owned(),
            );
        }
        if self.analyst.aggregator_config.is_some() {
            return bad(
                "analyst.aggregator_config: no longer read; reports are filed through \
                 the aggregator's POST /api/v1/reports: set [reports] (url, token_file) with \
                 the token of an [[exchange.reporter]] of the aggregator's config"
                    .to_owned(),
            );
        }
        if let Some(r) = &self.reports {
            if !r.url.starts_with("http://") && !r.url.starts_with("https://") {
                return bad(format!(
                    "reports.url {:?}: must start with http:// or https://",
                    r.url
                ));
            }
            let host = r
                .url
                .split_once("://")
                .and_then(|(_, rest)| rest.split('/').next())
                .unwrap_or("");
            if host.is_empty() {
                return bad(format!("reports.url {:?}: no host", r.url));
            }
            if r.url.starts_with("http://") && !r.allow_insecure && !is_loopback(host) {
                return bad(format!(
                    "reports.url {:?}: plain http:// to another host would send the reporter \
                     token unencrypted; use https:// (or reports.allow_insecure = true)",
                    r.url
                ));
            }
            if !(1..=300).contains(&r.timeout_secs) {
                return bad(format!(
                    "reports.timeout_secs {}: between 1 and 300",
                    r.timeout_secs
                ));
            }
            if !(1..=3600).contains(&r.download_timeout_secs) {
                return bad(format!(
                    "reports.download_timeout_secs {}: between 1 and 3600",
                    r.download_timeout_secs
                ));
            }
        }
        if self.analyst.session_secs < 60 {
            return bad("analyst.session_secs: at least 60".to_owned());
        }
        let l = &self.login;
        for (field, v, max) in [
            ("login.address_burst", l.address_burst, 1000),
            ("login.address_per_minute", l.address_per_minute, 600),
            ("login.user_burst", l.user_burst, 1000),
            ("login.user_per_minute", l.user_per_minute, 600),
        ] {
            if v == 0 || v > max {
                return bad(format!("{field} {v}: between 1 and {max}"));
            }
        }
        if l.max_checks == 0 || l.max_checks > 64 {
            return bad(format!(
                "login.max_checks {}: between 1 and 64",
                l.max_checks
            ));
        }
        if !(1..=3600).contains(&self.query.max_execution_secs) {
            return bad(format!(
                "query.max_execution_secs {}: between 1 and 3600",
                self.query.max_execution_secs
            ));
        }
        if let Some(u) = &self.query.user {
            if u.is_empty() || u.len() > 64 || u.chars().any(|c| c.is_control()) {
                return bad(format!("query.user {u:?}: 1 to 64 printable characters"));
            }
        }
        if let Err((field, reason)) = self.server.check() {
            return bad(format!("{field}: {reason}"));
        }
        let mut metrics_token = None;
        if let Some(h) = &self.metrics.token_sha256 {
            let mut d = [0u8; 32];
            if hex::decode_to_slice(h.trim(), &mut d).is_err() {
                return bad("metrics.token_sha256: 64 hex digits (a SHA-256 digest, \
                     `teiten-aggregator token-hash`), not the token"
                    .to_owned());
            }
            metrics_token = Some(d);
        }
        Ok(Settings {
            cache_ttl: Duration::from_secs(self.cache.ttl_secs),
            metrics_token,
            config: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "t")
            .and_then(Config::validate)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../dashboard.example.toml");
        let s = Config::parse(text, "example").unwrap().validate().unwrap();
        assert_eq!(s.config.groups["japan"], ["tokyo-1", "osaka-1"]);
        assert_eq!(s.config.analyst.users.len(), 1);
    }

    #[test]
    fn defaults() {
        let s = Config::parse("", "t").unwrap().validate().unwrap();
        assert_eq!(s.config.limits.max_top, 20);
        assert_eq!(s.config.clickhouse.database, "teiten");
        assert!(s.config.analyst.secure_cookies);
    }

    #[test]
    fn unknown_field() {
        assert!(err("colour = 1").contains("unknown field `colour`"));
    }

    #[test]
    fn bad_database() {
        assert!(err("[clickhouse]\ndatabase = \"a;b\"").contains("letters, digits and _"));
    }

    #[test]
    fn bad_hash() {
        assert!(err("[analyst.users]\nalice = \"plain\"").contains("not an argon2 PHC hash"));
    }

    #[test]
    fn bad_group() {
        assert!(err("[groups]\nx = []").contains("groups.x: no sensors"));
        assert!(err("[groups]\nx = [\"a b\"]").contains("bad sensor id"));
    }

    #[test]
    fn public_defaults_end_at_the_start_of_the_utc_day() {
        let s = Config::parse("", "t").unwrap().validate().unwrap();
        let p = &s.config.public;
        assert_eq!((p.grain_secs, p.min_sources, p.min_sensors), (3600, 10, 2));
        // 2025-11-22T00:20:34Z and 23:59:59Z: both end at 2025-11-22T00:00:00Z.
        assert_eq!(p.until(1_763_769_600 + 1234), 1_763_769_600);
        assert_eq!(p.until(1_763_769_600 + 86_399), 1_763_769_600);
        assert_eq!(p.until(1_763_769_600), 1_763_769_600);
        assert_eq!(p.delay_text(), "whole UTC days that are over");
        let short = Config::parse("[public]\ndelay_secs = 600\ngrain_secs = 300", "t")
            .unwrap()
            .validate()
            .unwrap();
        // 00:20:34 - 10 minutes = 00:10:34, down to 00:10:00.
        assert_eq!(
            short.config.public.until(1_763_769_600 + 1234),
            1_763_770_200
        );
    }

    #[test]
    fn bad_public() {
        assert!(err("[public]\ngrain_secs = 60").contains("public.grain_secs 60"));
        assert!(err("[public]\nmin_sensors = 0").contains("at least 1"));
        assert!(err("[public]\ndelay_secs = 9999999").contains("30 days"));
    }

    #[test]
    fn login_query_and_server_limits() {
        let s = Config::parse("", "t").unwrap().validate().unwrap();
        assert_eq!(s.config.login.max_checks, 2);
        assert_eq!(s.config.query.max_execution_secs, 10);
        assert_eq!(s.config.server.max_connections, 1024);
        assert!(err("[login]\nmax_checks = 0").contains("login.max_checks"));
        assert!(err("[login]\nuser_burst = 0").contains("login.user_burst"));
        assert!(err("[query]\nmax_execution_secs = 0").contains("query.max_execution_secs"));
        assert!(err("[query]\nuser = \"\"").contains("query.user"));
        assert!(err("[server]\nmax_requests = 0").contains("server.max_requests"));
    }

    /// Every validated key, with a value that breaks its rule: the error names that key.
    #[test]
    fn every_validation_error_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("clickhouse.database", "[clickhouse]\ndatabase = \"a;b\""),
            ("clickhouse.url", "[clickhouse]\nurl = \"ch:8123\""),
            ("limits.max_top", "[limits]\nmax_top = 0"),
            ("limits.max_top", "[limits]\nmax_top = 101"),
            ("limits.max_days", "[limits]\nmax_days = 0"),
            ("limits.max_days", "[limits]\nmax_days = 3661"),
            ("limits.max_page", "[limits]\nmax_page = 0"),
            ("limits.max_page", "[limits]\nmax_page = 10001"),
            ("cache.max_entries", "[cache]\nmax_entries = 0"),
            ("trends.baseline_days", "[trends]\nbaseline_days = 0"),
            ("trends.baseline_days", "[trends]\nbaseline_days = 366"),
            ("trends.min_ratio", "[trends]\nmin_ratio = 0.5"),
            ("trends.min_ratio", "[trends]\nmin_ratio = nan"),
            ("trends.min_score", "[trends]\nmin_score = inf"),
            ("groups.a b", "[groups]\n\"a b\" = [\"s1\"]"),
            ("groups.x", "[groups]\nx = []"),
            ("groups.x", "[groups]\nx = [\"a b\"]"),
            (
                "analyst.users",
                "[analyst.users]\n\"\" = \"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\"",
            ),
            ("analyst.users.alice", "[analyst.users]\nalice = \"plain\""),
            ("public.grain_secs", "[public]\ngrain_secs = 60"),
            ("public.delay_secs", "[public]\ndelay_secs = 2592001"),
            ("public.min_sources", "[public]\nmin_sources = 0"),
            ("public.min_sensors", "[public]\nmin_sensors = 0"),
            ("analyst.session_secs", "[analyst]\nsession_secs = 59"),
            ("login.address_burst", "[login]\naddress_burst = 0"),
            (
                "login.address_per_minute",
                "[login]\naddress_per_minute = 601",
            ),
            ("login.user_burst", "[login]\nuser_burst = 1001"),
            ("login.user_per_minute", "[login]\nuser_per_minute = 0"),
            ("login.max_checks", "[login]\nmax_checks = 65"),
            (
                "query.max_execution_secs",
                "[query]\nmax_execution_secs = 3601",
            ),
            ("query.user", "[query]\nuser = \"\""),
            ("server.max_connections", "[server]\nmax_connections = 0"),
            (
                "server.header_read_timeout_ms",
                "[server]\nheader_read_timeout_ms = 99",
            ),
            (
                "server.request_timeout_secs",
                "[server]\nrequest_timeout_secs = 0",
            ),
            ("server.max_requests", "[server]\nmax_requests = 0"),
            (
                "metrics.token_sha256",
                "[metrics]\ntoken_sha256 = \"secret\"",
            ),
            (
                "analyst.outbox",
                "[analyst]\noutbox = \"/var/lib/teiten/outbox\"",
            ),
            (
                "analyst.aggregator_config",
                "[analyst]\naggregator_config = \"/etc/teiten/aggregator.toml\"",
            ),
            (
                "reports.url",
                "[reports]\nurl = \"127.0.0.1:8443\"\ntoken_file = \"t\"",
            ),
            (
                "reports.url",
                "[reports]\nurl = \"http://aggregator.example:8443\"\ntoken_file = \"t\"",
            ),
            (
                "reports.timeout_secs",
                "[reports]\nurl = \"https://a\"\ntoken_file = \"t\"\ntimeout_secs = 0",
            ),
            (
                "reports.download_timeout_secs",
                "[reports]\nurl = \"https://a\"\ntoken_file = \"t\"\ndownload_timeout_secs = 3601",
            ),
        ];
        for (key, text) in cases {
            let e = err(text);
            let rest = e
                .strip_prefix(&format!("config validation: {key}"))
                .unwrap_or_else(|| panic!("{text:?} should be reported as `{key}`: {e}"));
            assert!(
                rest.starts_with(':') || rest.starts_with(' '),
                "{text:?} should be reported as `{key}`: {e}"
            );
        }
        let ok = Config::parse(
            &format!("[metrics]\ntoken_sha256 = \"{}\"", "ab".repeat(32)),
            "t",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(ok.metrics_token, Some([0xab; 32]));
    }

    #[test]
    fn removed_analyst_keys_name_their_replacement() {
        for key in ["outbox = \"/o\"", "aggregator_config = \"/a.toml\""] {
            let e = err(&format!("[analyst]\n{key}"));
            assert!(
                e.contains("no longer read") && e.contains("[reports]"),
                "{e}"
            );
        }
        let s = Config::parse(
            "[reports]\nurl = \"https://127.0.0.1:8443\"\ntoken_file = \"/t\"",
            "t",
        )
        .unwrap()
        .validate()
        .unwrap();
        let r = s.config.reports.unwrap();
        assert_eq!((r.timeout_secs, r.download_timeout_secs), (30, 600));
        assert!(r.ca_file.is_none());
    }

    #[test]
    fn plain_http_only_to_loopback_or_when_allowed() {
        let check = |url: &str, extra: &str| {
            Config::parse(
                &format!("[reports]\nurl = \"{url}\"\ntoken_file = \"/t\"\n{extra}"),
                "t",
            )
            .unwrap()
            .validate()
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        for url in [
            "http://127.0.0.1:8443",
            "http://127.0.0.2",
            "http://localhost:8443/",
            "http://[::1]:8443",
            "https://aggregator.example",
        ] {
            assert!(check(url, "").is_ok(), "{url}");
        }
        for url in [
            "http://192.0.2.1:8443",
            "http://aggregator.example",
            "http://[2001:db8::1]",
        ] {
            let e = check(url, "").unwrap_err();
            assert!(
                e.contains("reports.url") && e.contains("allow_insecure"),
                "{e}"
            );
            assert!(check(url, "allow_insecure = true").is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_top() {
        assert!(err("[limits]\nmax_top = 0").contains("between 1 and 100"));
    }
}
