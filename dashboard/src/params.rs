//! Request parameters of the graphs: parsed from the query string and checked, before any
//! query runs. Every rule answers 400 with a message naming the parameter.

use std::collections::BTreeSet;
use teiten_store::time::DAY;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::config::{is_sensor_name, Config, PublicConfig};
use crate::error::HttpError;
use teiten_store::proto::Proto as ip;
use teiten_store::reads::Rollup;

/// The query string as sent (all text, so that every error message is ours).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParams {
    /// `1d`, `1w`, `1m`, `3m`, `1y` or `custom` (with `from` and `to`).
    pub period: Option<String>,
    /// Start of a custom period (UTC): `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS][Z]` or Unix seconds.
    pub from: Option<String>,
    /// End of a custom period (exclusive), same forms.
    pub to: Option<String>,
    /// `all`, `tcp`, `udp` or `icmp` (ICMP and ICMPv6).
    pub proto: Option<String>,
    /// One sensor id.
    pub sensor: Option<String>,
    /// A sensor group from the config.
    pub group: Option<String>,
    /// How many ports or countries.
    pub top: Option<String>,
    /// `avg` (packets per sensor, the default) or `total`.
    pub mode: Option<String>,
    /// The port of the per-port graph.
    pub port: Option<String>,
}

impl RawParams {
    /// Parses a query string.
    pub fn parse(query: Option<&str>) -> Result<RawParams, HttpError> {
        serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| HttpError::bad(format!("bad query string: {e}")))
    }
}

/// A named period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Last day.
    Day,
    /// Last 7 days.
    Week,
    /// Last 30 days.
    Month,
    /// Last 90 days.
    Quarter,
    /// Last 365 days.
    Year,
    /// `from` to `to`.
    Custom,
}

impl Period {
    /// The parameter value.
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "1d",
            Period::Week => "1w",
            Period::Month => "1m",
            Period::Quarter => "3m",
            Period::Year => "1y",
            Period::Custom => "custom",
        }
    }
    /// The named periods for forms.
    pub const NAMED: [Period; 5] = [
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Quarter,
        Period::Year,
    ];
    fn days(self) -> i64 {
        match self {
            Period::Day => 1,
            Period::Week => 7,
            Period::Month => 30,
            Period::Quarter => 90,
            Period::Year => 365,
            Period::Custom => 0,
        }
    }
    /// A label for forms.
    pub fn label(self) -> &'static str {
        match self {
            Period::Day => "1 day",
            Period::Week => "1 week",
            Period::Month => "1 month",
            Period::Quarter => "3 months",
            Period::Year => "1 year",
            Period::Custom => "custom",
        }
    }
}

/// Packets as totals or per sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Average packets per active sensor (JPCERT/CC ISDAS and TSUBAME convention).
    PerSensor,
    /// All packets.
    Total,
}

impl Mode {
    /// The parameter value.
    pub fn name(self) -> &'static str {
        match self {
            Mode::PerSensor => "avg",
            Mode::Total => "total",
        }
    }
}

/// A protocol filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// No filter.
    All,
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// 1 and 58.
    Icmp,
}

impl Proto {
    /// The parameter value.
    pub fn name(self) -> &'static str {
        match self {
            Proto::All => "all",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
    /// Every value, for forms.
    pub const ALL: [Proto; 4] = [Proto::All, Proto::Tcp, Proto::Udp, Proto::Icmp];
    /// IP protocol numbers, `None` for all.
    pub fn numbers(self) -> Option<Vec<u8>> {
        match self {
            Proto::All => None,
            Proto::Tcp => Some(vec![ip::Tcp.number()]),
            Proto::Udp => Some(vec![ip::Udp.number()]),
            Proto::Icmp => Some(vec![ip::Icmp.number(), ip::Icmpv6.number()]),
        }
    }
}

/// Which sensors a graph counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sensors {
    /// Every sensor.
    All,
    /// One sensor.
    One(String),
    /// A configured group.
    Group(String, Vec<String>),
}

impl Sensors {
    /// The ids, `None` for all.
    pub fn ids(&self) -> Option<Vec<String>> {
        match self {
            Sensors::All => None,
            Sensors::One(id) => Some(vec![id.clone()]),
            Sensors::Group(_, ids) => Some(ids.clone()),
        }
    }
    /// A label (`all sensors`, `sensor x`, `group y`).
    pub fn label(&self) -> String {
        match self {
            Sensors::All => "all sensors".to_owned(),
            Sensors::One(id) => format!("sensor {id}"),
            Sensors::Group(g, _) => format!("group {g}"),
        }
    }
}

/// The rules a public (not logged-in) request is answered under, stated in every public
/// response (`public` in JSON, `X-Teiten-Public-*` headers, chart captions, page text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Public {
    /// The finest public bucket, seconds.
    pub grain_secs: u32,
    /// The delay in words.
    pub delay: String,
    /// Public data ends here (Unix seconds, exclusive).
    pub until: i64,
    /// Distinct sources a port or region needs in the period to be shown.
    pub min_sources: u64,
    /// Distinct sensors a port or region needs in the period to be shown.
    pub min_sensors: u64,
}

impl Public {
    /// The rules of `config` at `now`.
    pub fn of(config: &PublicConfig, now: i64) -> Public {
        Public {
            grain_secs: config.grain_secs,
            delay: config.delay_text(),
            until: config.until(now),
            min_sources: config.min_sources,
            min_sensors: config.min_sensors,
        }
    }

    /// One line for captions and pages.
    pub fn text(&self) -> String {
        format!(
            "public data: until {} (delay: {}), buckets of at least {} s, ports and regions \
             seen from at least {} sources on at least {} sensors",
            iso(self.until),
            self.delay,
            self.grain_secs,
            self.min_sources,
            self.min_sensors
        )
    }
}

/// Checked graph parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphQuery {
    /// The named period or custom.
    pub period: Period,
    /// Start, Unix seconds, aligned to `step`.
    pub from: i64,
    /// End (exclusive), Unix seconds, aligned to `step`.
    pub to: i64,
    /// Bucket width in seconds.
    pub step: u32,
    /// The rollup read.
    pub rollup: Rollup,
    /// Protocol filter.
    pub proto: Proto,
    /// Sensor filter.
    pub sensors: Sensors,
    /// N of the top N.
    pub top: u32,
    /// Totals or per sensor.
    pub mode: Mode,
    /// The per-port graph's port.
    pub port: Option<u16>,
    /// The public rules (`None`: an analyst, who sees everything).
    pub public: Option<Public>,
}

/// The bucket width for a span: 5 minutes up to 2 days, 1 hour up to 31 days, 6 hours up to
/// 92 days, then 1 day.
pub fn step_for(span_secs: i64) -> (u32, Rollup) {
    if span_secs <= 2 * DAY {
        (300, Rollup::FiveMinutes)
    } else if span_secs <= 31 * DAY {
        (3600, Rollup::Hour)
    } else if span_secs <= 92 * DAY {
        (6 * 3600, Rollup::Hour)
    } else {
        (86_400, Rollup::Hour)
    }
}

/// Parses a time parameter (UTC).
pub(crate) fn parse_time(name: &str, s: &str) -> Result<i64, HttpError> {
    let s = s.trim();
    let bad = || {
        HttpError::bad(format!(
            "{name}: {s:?} is not a date; use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC) or Unix \
             seconds"
        ))
    };
    if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .ok_or_else(bad);
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp());
        }
    }
    Err(bad())
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Earliest accepted time: 2000-01-01.
const EARLIEST: i64 = 946_684_800;

impl GraphQuery {
    /// Checks the parameters against the config, the known sensor ids and the clock (`now`,
    /// Unix seconds). `needs_port`: the per-port graph (port required); elsewhere a port is
    /// refused. `public`: a request without login, answered under `[public]` (no sensor or
    /// group filter, data until [`PublicConfig::until`], buckets of at least its grain).
    pub fn from_raw(
        raw: &RawParams,
        config: &Config,
        known_sensors: &BTreeSet<String>,
        now: i64,
        needs_port: bool,
        public: bool,
    ) -> Result<GraphQuery, HttpError> {
        let public = public.then(|| Public::of(&config.public, now));
        if let Some(p) = &public {
            // Before anything else, whatever the value: the same answer for every sensor.
            for (name, v) in [("sensor", &raw.sensor), ("group", &raw.group)] {
                if v.as_deref().is_some_and(|s| !s.is_empty()) {
                    return Err(HttpError::bad(format!(
                        "{name}: the sensor and group filters are for analysts (log in); {}",
                        p.text()
                    )));
                }
            }
        }
        // Public data ends at `until`: named periods end there, custom ones are cut there.
        let end = public.as_ref().map_or(now, |p| p.until);
        // Empty form fields count as absent.
        let from_raw = raw.from.as_deref().filter(|s| !s.trim().is_empty());
        let to_raw = raw.to.as_deref().filter(|s| !s.trim().is_empty());
        let custom = from_raw.is_some() || to_raw.is_some();
        let period = match raw.period.as_deref() {
            None | Some("") if custom => Period::Custom,
            None | Some("") => Period::Day,
            Some("custom") => Period::Custom,
            Some(p) => match Period::NAMED.iter().find(|n| n.name() == p) {
                Some(n) if custom => {
                    return Err(HttpError::bad(format!(
                        "period={}: from and to go with period=custom only",
                        n.name()
                    )))
                }
                Some(n) => *n,
                None => {
                    return Err(HttpError::bad(format!(
                        "period: {p:?} is not one of 1d, 1w, 1m, 3m, 1y, custom"
                    )))
                }
            },
        };
        let (from, to) = if period == Period::Custom {
            let (Some(f), Some(t)) = (from_raw, to_raw) else {
                return Err(HttpError::bad(
                    "period=custom needs both from and to".to_owned(),
                ));
            };
            let (f, t) = (parse_time("from", f)?, parse_time("to", t)?);
            // Checked as asked, then cut at the public end.
            let cut = |t: i64| t.min(end);
            if f >= t {
                return Err(HttpError::bad(format!(
                    "from ({}) must be before to ({})",
                    iso(f),
                    iso(t)
                )));
            }
            if f < EARLIEST {
                return Err(HttpError::bad(format!(
                    "from ({}) is before 2000-01-01",
                    iso(f)
                )));
            }
            if t > now + DAY {
                return Err(HttpError::bad(format!(
                    "to ({}) is more than a day in the future",
                    iso(t)
                )));
            }
            let max = i64::from(config.limits.max_days) * DAY;
            if t - f > max {
                return Err(HttpError::bad(format!(
                    "from..to spans more than {} days",
                    config.limits.max_days
                )));
            }
            if let Some(p) = &public {
                if f >= cut(t) {
                    return Err(HttpError::bad(format!(
                        "from ({}): public data ends at {} (delay: {}); analysts (log in) see \
                         later data",
                        iso(f),
                        iso(p.until),
                        p.delay
                    )));
                }
            }
            (f, cut(t))
        } else {
            (end - period.days() * DAY, end)
        };
        let (mut step, mut rollup) = step_for(to - from);
        if let Some(p) = &public {
            if step < p.grain_secs {
                step = p.grain_secs;
                rollup = Rollup::Hour;
            }
        }
        let s = i64::from(step);
        // Whole buckets: for analysts the current, partly filled bucket is included; public
        // answers end at the last whole bucket before the public end.
        let to_aligned = if public.is_some() {
            to.div_euclid(s) * s
        } else {
            (to + s - 1).div_euclid(s) * s
        };
        let from_aligned = if period == Period::Custom {
            from.div_euclid(s) * s
        } else {
            to_aligned - period.days() * DAY
        };
        if from_aligned >= to_aligned {
            return Err(HttpError::bad(format!(
                "from..to: no whole {s}-second bucket before the public end{}",
                public
                    .as_ref()
                    .map(|p| format!(" ({})", iso(p.until)))
                    .unwrap_or_default()
            )));
        }

        let proto = match raw.proto.as_deref().unwrap_or("all") {
            "" | "all" => Proto::All,
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            p => {
                return Err(HttpError::bad(format!(
                    "proto: {p:?} is not one of all, tcp, udp, icmp"
                )))
            }
        };
        let sensor = raw.sensor.as_deref().filter(|s| !s.is_empty());
        let group = raw.group.as_deref().filter(|s| !s.is_empty());
        let sensors = match (sensor, group) {
            (Some(_), Some(_)) => {
                return Err(HttpError::bad("give sensor or group, not both".to_owned()))
            }
            (Some(id), None) => {
                if !is_sensor_name(id) || !known_sensors.contains(id) {
                    return Err(HttpError::bad(format!("sensor: unknown sensor {id:?}")));
                }
                Sensors::One(id.to_owned())
            }
            (None, Some(g)) => match config.groups.get(g) {
                Some(ids) => Sensors::Group(g.to_owned(), ids.clone()),
                None => return Err(HttpError::bad(format!("group: unknown sensor group {g:?}"))),
            },
            (None, None) => Sensors::All,
        };
        let max_top = config.limits.max_top;
        let top = match raw.top.as_deref().filter(|s| !s.is_empty()) {
            None => 10.min(max_top),
            Some(t) => match t.parse::<u32>() {
                Ok(n) if (1..=max_top).contains(&n) => n,
                _ => {
                    return Err(HttpError::bad(format!(
                        "top: {t:?} is not a number from 1 to {max_top}"
                    )))
                }
            },
        };
        let mode = match raw.mode.as_deref().unwrap_or("avg") {
            "" | "avg" => Mode::PerSensor,
            "total" => Mode::Total,
            m => return Err(HttpError::bad(format!("mode: {m:?} is not avg or total"))),
        };
        let port = match raw.port.as_deref().filter(|s| !s.is_empty()) {
            Some(p) if needs_port => match p.parse::<u16>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(HttpError::bad(format!(
                        "port: {p:?} is not a port number (0 to 65535)"
                    )))
                }
            },
            Some(_) => {
                return Err(HttpError::bad(
                    "port: only the per-port graph takes a port".to_owned(),
                ))
            }
            None if needs_port => {
                return Err(HttpError::bad("port: missing (0 to 65535)".to_owned()))
            }
            None => None,
        };
        Ok(GraphQuery {
            period,
            from: from_aligned,
            to: to_aligned,
            step,
            rollup,
            proto,
            sensors,
            top,
            mode,
            port,
            public,
        })
    }

    /// The canonical query string of these parameters (links, cache keys). Named periods are
    /// written by name, custom ones by their aligned bounds.
    pub fn query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if self.period == Period::Custom {
            pairs.push(("period", "custom".into()));
            pairs.push(("from", iso(self.from)));
            pairs.push(("to", iso(self.to)));
        } else {
            pairs.push(("period", self.period.name().into()));
        }
        pairs.push(("proto", self.proto.name().into()));
        match &self.sensors {
            Sensors::All => {}
            Sensors::One(id) => pairs.push(("sensor", id.clone())),
            Sensors::Group(g, _) => pairs.push(("group", g.clone())),
        }
        pairs.push(("top", self.top.to_string()));
        pairs.push(("mode", self.mode.name().into()));
        if let Some(p) = self.port {
            pairs.push(("port", p.to_string()));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    /// The cache key: the graph and every value that changes its data, with the actual bounds.
    /// Public and analyst answers never share an entry (`public` is part of the key).
    pub fn cache_key(&self, graph: &str) -> String {
        format!(
            "{graph}|{}|{}|{}|{}|{:?}|{}|{}|{:?}|{:?}",
            self.from,
            self.to,
            self.step,
            self.proto.name(),
            self.sensors,
            self.top,
            self.mode.name(),
            self.port,
            self.public
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_769_600 + 1234; // 2025-11-22T00:20:34Z

    fn config() -> Config {
        Config::parse("[groups]\njapan = [\"tokyo-1\", \"osaka-1\"]\n", "t").unwrap()
    }

    fn check(q: &str, port: bool) -> Result<GraphQuery, String> {
        let raw = RawParams::parse(Some(q)).map_err(|e| format!("{e:?}"))?;
        let known: BTreeSet<String> = ["tokyo-1".to_owned(), "osaka-1".to_owned()].into();
        GraphQuery::from_raw(&raw, &config(), &known, NOW, port, false).map_err(|e| match e {
            HttpError::BadRequest(m) => m,
            e => format!("{e:?}"),
        })
    }

    #[test]
    fn defaults_are_last_day_in_5_minute_buckets() {
        let q = check("", false).unwrap();
        assert_eq!(q.period, Period::Day);
        assert_eq!(q.step, 300);
        assert_eq!(q.rollup, Rollup::FiveMinutes);
        assert_eq!(q.to % 300, 0);
        assert!(q.to >= NOW && q.to < NOW + 300);
        assert_eq!(q.to - q.from, 86_400);
        assert_eq!((q.top, q.mode, q.proto), (10, Mode::PerSensor, Proto::All));
    }

    #[test]
    fn periods_pick_rollup_and_step() {
        assert_eq!(check("period=1w", false).unwrap().step, 3600);
        assert_eq!(check("period=1m", false).unwrap().rollup, Rollup::Hour);
        assert_eq!(check("period=3m", false).unwrap().step, 21_600);
        assert_eq!(check("period=1y", false).unwrap().step, 86_400);
    }

    #[test]
    fn custom_dates() {
        let q = check("from=2025-11-01&to=2025-11-02T12:00", false).unwrap();
        assert_eq!(q.period, Period::Custom);
        assert_eq!(q.from, 1_761_955_200);
        assert_eq!(q.to - q.from, 36 * 3600);
        assert_eq!(q.step, 300);
        let q2 = check("period=custom&from=1761955200&to=1762128000", false).unwrap();
        assert_eq!(q2.from, 1_761_955_200);
        assert!(q.query_string().contains("from=2025-11-01T00%3A00%3A00Z"));
    }

    #[test]
    fn bad_dates() {
        assert!(check("from=2025-13-01&to=2025-11-02", false)
            .unwrap_err()
            .contains("from: \"2025-13-01\" is not a date"));
        assert!(check("from=2025-11-02&to=2025-11-01", false)
            .unwrap_err()
            .contains("must be before"));
        assert!(check("from=1990-01-01&to=1990-01-02", false)
            .unwrap_err()
            .contains("before 2000"));
        assert!(check("from=2020-01-01&to=2025-01-02", false)
            .unwrap_err()
            .contains("more than 400 days"));
        assert!(check("period=custom&from=2025-11-01", false)
            .unwrap_err()
            .contains("needs both"));
        assert!(check("period=1w&from=2025-11-01&to=2025-11-02", false)
            .unwrap_err()
            .contains("period=custom only"));
        assert!(check("from=2025-11-01&to=2030-01-01", false)
            .unwrap_err()
            .contains("future"));
    }

    #[test]
    fn bad_values() {
        assert!(check("period=2d", false)
            .unwrap_err()
            .contains("period: \"2d\""));
        assert!(check("proto=sctp", false).unwrap_err().contains("proto"));
        assert!(check("top=1000000", false)
            .unwrap_err()
            .contains("top: \"1000000\" is not a number from 1 to 20"));
        assert!(check("top=0", false).unwrap_err().contains("top"));
        assert!(check("mode=x", false).unwrap_err().contains("mode"));
        assert!(check("sensor=nowhere", false)
            .unwrap_err()
            .contains("unknown sensor \"nowhere\""));
        assert!(check("sensor=x'%20OR%201=1", false)
            .unwrap_err()
            .contains("unknown sensor"));
        assert!(check("group=mars", false)
            .unwrap_err()
            .contains("unknown sensor group"));
        assert!(check("sensor=tokyo-1&group=japan", false)
            .unwrap_err()
            .contains("not both"));
        assert!(check("colour=red", false)
            .unwrap_err()
            .contains("unknown field `colour`"));
        assert!(check("port=23", false).unwrap_err().contains("per-port"));
    }

    #[test]
    fn ports() {
        assert_eq!(check("port=23", true).unwrap().port, Some(23));
        assert!(check("port=65536", true)
            .unwrap_err()
            .contains("not a port"));
        assert!(check("port=ssh", true).unwrap_err().contains("not a port"));
        assert!(check("", true).unwrap_err().contains("port: missing"));
    }

    #[test]
    fn empty_form_fields_are_absent() {
        let q = check(
            "period=1w&from=&to=&sensor=&group=&proto=tcp&top=3&mode=avg",
            false,
        )
        .unwrap();
        assert_eq!(
            (q.period, q.top, q.sensors),
            (Period::Week, 3, Sensors::All)
        );
    }

    fn public(q: &str, port: bool) -> Result<GraphQuery, String> {
        let raw = RawParams::parse(Some(q)).map_err(|e| format!("{e:?}"))?;
        let known: BTreeSet<String> = ["tokyo-1".to_owned()].into();
        GraphQuery::from_raw(&raw, &config(), &known, NOW, port, true).map_err(|e| match e {
            HttpError::BadRequest(m) => m,
            e => format!("{e:?}"),
        })
    }

    #[test]
    fn public_answers_end_at_the_start_of_the_day_in_hours() {
        let midnight = 1_763_769_600; // 2025-11-22T00:00:00Z
        let q = public("", false).unwrap();
        assert_eq!((q.from, q.to, q.step), (midnight - 86_400, midnight, 3600));
        assert_eq!(q.rollup, Rollup::Hour);
        assert_eq!(q.public.as_ref().unwrap().until, midnight);
        let w = public("period=1w", false).unwrap();
        assert_eq!((w.to, w.to - w.from), (midnight, 7 * 86_400));
        // A custom range past the end is cut there; one after it is refused, naming `from`.
        let c = public("from=2025-11-21T06:00&to=2025-11-22T12:00", false).unwrap();
        assert_eq!(
            (c.from, c.to, c.step),
            (midnight - 18 * 3600, midnight, 3600)
        );
        let late = public("from=2025-11-22T00:05&to=2025-11-22T00:10", false).unwrap_err();
        assert!(
            late.starts_with("from (2025-11-22T00:05:00Z): public data ends at"),
            "{late}"
        );
        // The analyst's answer to the same: 5-minute buckets up to now.
        let a = check("from=2025-11-22T00:05&to=2025-11-22T00:10", false).unwrap();
        assert_eq!((a.step, a.public), (300, None));
        assert_ne!(
            q.cache_key("ports"),
            check("", false).unwrap().cache_key("ports")
        );
    }

    #[test]
    fn public_refuses_sensor_filters_alike() {
        for q in [
            "sensor=tokyo-1",
            "sensor=nowhere",
            "group=japan",
            "group=mars",
        ] {
            let e = public(q, false).unwrap_err();
            assert!(e.contains("filters are for analysts"), "{q}: {e}");
            let name = q.split('=').next().unwrap();
            assert!(e.starts_with(name), "{q}: {e}");
            // The message does not depend on the value.
            assert_eq!(e, public(&format!("{name}=x"), false).unwrap_err());
        }
        assert_eq!(public("port=4444", true).unwrap().port, Some(4444));
    }

    #[test]
    fn filters() {
        let q = check("sensor=tokyo-1&proto=icmp&mode=total&top=5", false).unwrap();
        assert_eq!(q.sensors, Sensors::One("tokyo-1".into()));
        assert_eq!(q.proto.numbers(), Some(vec![1, 58]));
        let g = check("group=japan", false).unwrap();
        assert_eq!(g.sensors.ids().unwrap().len(), 2);
        assert_ne!(q.cache_key("ports"), g.cache_key("ports"));
    }
}
