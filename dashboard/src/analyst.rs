//! The analyst view's data: sensor health, the raw event search and the withheld sources.

use std::fmt::Write as _;
use std::net::IpAddr;
use teiten_store::time::DAY;

use serde::{Deserialize, Serialize};
use teiten_store::sources::{Withheld, WithheldCount, WithheldSource};
use teiten_store::{address_bytes, address_from_bytes};

use crate::config::Config;
use crate::data::Reader;
use crate::error::{Error, HttpError, Result};
use crate::html::esc;
use crate::params::{iso, parse_time};
use teiten_store::proto_name;
use teiten_store::reads;

/// One sensor's health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorHealth {
    /// Sensor id.
    pub sensor_id: String,
    /// Revoked in the registry.
    pub revoked: bool,
    /// Last report (Unix seconds), 0 if none in the last 30 days.
    pub last_seen: u32,
    /// Events per second over the last hour.
    pub events_per_sec: f64,
    /// Packets captured since the sensor started (last report).
    pub packets_captured: u64,
    /// Kernel drops since the sensor started (last report).
    pub kernel_drops: u64,
    /// Spool backlog in bytes (last report).
    pub spool_bytes: u64,
    /// Events the spool dropped (last report).
    pub spool_dropped_events: u64,
}

impl SensorHealth {
    /// A sensor without reports: all counts 0.
    fn unreported(sensor_id: String, revoked: bool) -> SensorHealth {
        SensorHealth {
            sensor_id,
            revoked,
            last_seen: 0,
            events_per_sec: 0.0,
            packets_captured: 0,
            kernel_drops: 0,
            spool_bytes: 0,
            spool_dropped_events: 0,
        }
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct HealthRow {
    sensor_id: String,
    last_seen: u32,
    events_1h: u64,
    packets_captured: u64,
    kernel_drops: u64,
    spool_bytes: u64,
    spool_dropped_events: u64,
}

/// Registered sensors with what their reports of the last 30 days say.
pub async fn sensor_health(reader: &Reader, now: i64) -> Result<Vec<SensorHealth>> {
    let registry: Vec<(String, u8, u32)> = reads::sensor_registry(reader.db())
        .fetch_all(reader.client())
        .await
        .map_err(Error::ch("reading the sensor registry"))?;
    let rows: Vec<HealthRow> = reads::sensor_health(reader.db(), now - 3600, now - 30 * DAY)
        .fetch_all(reader.client())
        .await
        .map_err(Error::ch("reading sensor reports"))?;
    let mut out: Vec<SensorHealth> = registry
        .into_iter()
        .map(|(sensor_id, revoked, _)| SensorHealth::unreported(sensor_id, revoked != 0))
        .collect();
    for r in rows {
        let i = match out.iter().position(|s| s.sensor_id == r.sensor_id) {
            Some(i) => i,
            None => {
                out.push(SensorHealth::unreported(r.sensor_id.clone(), false));
                out.len() - 1
            }
        };
        let s = &mut out[i];
        s.last_seen = r.last_seen;
        s.events_per_sec = r.events_1h as f64 / 3600.0;
        s.packets_captured = r.packets_captured;
        s.kernel_drops = r.kernel_drops;
        s.spool_bytes = r.spool_bytes;
        s.spool_dropped_events = r.spool_dropped_events;
    }
    Ok(out)
}

/// The sensor health table.
pub fn health_html(rows: &[SensorHealth], now: i64) -> String {
    let mut s = String::from(
        "<table id=\"health\"><tr><th class=\"l\">Sensor</th><th class=\"l\">State</th>\
         <th class=\"l\">Last seen (UTC)</th><th>Ago</th><th>Events/s (1 h)</th>\
         <th>Captured</th><th>Kernel drops</th><th>Spool backlog (bytes)</th>\
         <th>Spool dropped</th></tr>",
    );
    for r in rows {
        let (seen, ago) = if r.last_seen == 0 {
            ("never (30 days)".to_owned(), "—".to_owned())
        } else {
            let ago = (now - i64::from(r.last_seen)).max(0);
            (iso(i64::from(r.last_seen)), format!("{} s", ago))
        };
        let state = if r.revoked {
            "revoked"
        } else if r.last_seen == 0 || now - i64::from(r.last_seen) > 600 {
            "silent"
        } else {
            "reporting"
        };
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{state}</td><td class=\"l\">{}</td>\
             <td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.sensor_id),
            esc(&seen),
            esc(&ago),
            r.events_per_sec,
            r.packets_captured,
            r.kernel_drops,
            r.spool_bytes,
            r.spool_dropped_events
        );
    }
    s.push_str("</table>");
    s
}

/// The search form as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    /// Source address (IPv4 or IPv6).
    pub src: Option<String>,
    /// Destination port.
    pub port: Option<String>,
    /// Start (UTC; default 24 hours ago).
    pub from: Option<String>,
    /// End (exclusive; default now).
    pub to: Option<String>,
    /// Page number from 1.
    pub page: Option<String>,
    /// Rows per page.
    pub rows: Option<String>,
}

/// A checked search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Source address.
    pub src: Option<IpAddr>,
    /// Destination port.
    pub port: Option<u16>,
    /// Start, Unix seconds.
    pub from: i64,
    /// End, Unix seconds.
    pub to: i64,
    /// Page from 1.
    pub page: u32,
    /// Rows per page.
    pub rows: u32,
}

impl Search {
    /// Checks the form.
    pub fn from_raw(raw: &RawSearch, config: &Config, now: i64) -> Result<Search, HttpError> {
        let nonempty = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let src = match nonempty(&raw.src) {
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                HttpError::bad(format!("src: {s:?} is not an IPv4 or IPv6 address"))
            })?),
            None => None,
        };
        let port = match nonempty(&raw.port) {
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                HttpError::bad(format!("port: {p:?} is not a port number (0 to 65535)"))
            })?),
            None => None,
        };
        let (from, to) = period(&raw.from, &raw.to, config, now)?;
        let max_rows = config.limits.max_page;
        let rows = match nonempty(&raw.rows) {
            Some(r) => match r.parse::<u32>() {
                Ok(n) if (1..=max_rows).contains(&n) => n,
                _ => {
                    return Err(HttpError::bad(format!(
                        "rows: {r:?} is not a number from 1 to {max_rows}"
                    )))
                }
            },
            None => 50.min(max_rows),
        };
        let page = match nonempty(&raw.page) {
            Some(p) => match p.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(HttpError::bad(format!("page: {p:?} is not a page number"))),
            },
            None => 1,
        };
        if u64::from(page - 1) * u64::from(rows) > u64::from(config.limits.max_offset) {
            return Err(HttpError::bad(format!(
                "page: paging stops at row {}; narrow the search",
                config.limits.max_offset
            )));
        }
        Ok(Search {
            src,
            port,
            from,
            to,
            page,
            rows,
        })
    }

    /// The query string of a page of this search.
    pub fn query_string(&self, page: u32) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(s) = self.src {
            pairs.push(("src", s.to_string()));
        }
        if let Some(p) = self.port {
            pairs.push(("port", p.to_string()));
        }
        pairs.push(("from", iso(self.from)));
        pairs.push(("to", iso(self.to)));
        pairs.push(("rows", self.rows.to_string()));
        pairs.push(("page", page.to_string()));
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// One raw event as the analyst's search shows it (a row of the HTML table, an object of the
/// JSON answer): a stored event (a row of `scan_events`) with its time, protocol
/// and class spelt out and the header fields the search does not show (IP id and length, TCP
/// sequence and window) left out.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventView {
    /// Time, ISO 8601 UTC with microseconds.
    pub time: String,
    /// Sensor id.
    pub sensor_id: String,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, or the protocol number.
    pub proto: String,
    /// The source address (IPv4 as IPv4, not mapped).
    pub src: IpAddr,
    /// The destination: the sensor's address, which analysts may see.
    pub dst: IpAddr,
    /// TCP/UDP source port, ICMP type.
    pub sport: u16,
    /// TCP/UDP destination port, ICMP code.
    pub dport: u16,
    /// The 9 TCP flag bits as a number (0 for other protocols).
    pub tcp_flags: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// `scan`, `backscatter` or `other`.
    pub class: String,
    /// Source country, alpha-2 (`??` when unknown).
    pub country: String,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct EventRow {
    t: u32,
    usec: u32,
    sensor_id: String,
    proto: u8,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    tcp_flags: u16,
    ttl: u8,
    class: String,
    country: String,
}

/// One page of events, newest first, and whether there is another page.
pub async fn search(reader: &Reader, s: &Search) -> Result<(Vec<EventView>, bool)> {
    let search = reads::EventSearch {
        from: s.from,
        to: s.to,
        src: s.src.map(address_bytes),
        port: s.port,
        offset: u64::from(s.page - 1) * u64::from(s.rows),
        rows: s.rows + 1,
    };
    let rows: Vec<EventRow> = reads::event_search(reader.db(), &search)
        .fetch_all(reader.client())
        .await
        .map_err(Error::ch("searching events"))?;
    let more = rows.len() > s.rows as usize;
    let out = rows
        .into_iter()
        .take(s.rows as usize)
        .map(|r| EventView {
            time: {
                let s = iso(i64::from(r.t));
                format!("{}.{:06}Z", s.get(..19).unwrap_or(&s), r.usec.min(999_999))
            },
            sensor_id: r.sensor_id,
            proto: proto_name(r.proto),
            src: address_from_bytes(r.src),
            dst: address_from_bytes(r.dst),
            sport: r.sport,
            dport: r.dport,
            tcp_flags: r.tcp_flags,
            ttl: r.ttl,
            class: r.class,
            country: r.country,
        })
        .collect();
    Ok((out, more))
}

/// The search form (GET: it changes nothing) and the result table.
pub fn search_html(s: &Search, rows: &[EventView], more: bool) -> String {
    let mut h = format!(
        "<form method=\"get\" action=\"/analyst/events\" id=\"search\">\
         <label>Source <input name=\"src\" id=\"src\" value=\"{}\"></label> \
         <label>Port <input name=\"port\" id=\"port\" size=\"6\" value=\"{}\"></label> \
         <label>From <input name=\"from\" value=\"{}\"></label> \
         <label>To <input name=\"to\" value=\"{}\"></label> \
         <label>Rows <input name=\"rows\" size=\"4\" value=\"{}\"></label> \
         <button type=\"submit\">Search</button></form>",
        esc(&s.src.map(|a| a.to_string()).unwrap_or_default()),
        s.port.map(|p| p.to_string()).unwrap_or_default(),
        esc(&iso(s.from)),
        esc(&iso(s.to)),
        s.rows
    );
    let _ = write!(h, "<p>Page {}; {} events shown.</p>", s.page, rows.len());
    h.push_str(
        "<table id=\"events\"><tr><th class=\"l\">Time (UTC)</th><th class=\"l\">Sensor</th>\
         <th class=\"l\">Proto</th><th class=\"l\">Source</th><th>Sport</th>\
         <th class=\"l\">Destination</th><th>Dport</th><th>Flags</th><th>TTL</th>\
         <th class=\"l\">Class</th><th class=\"l\">Country</th></tr>",
    );
    for r in rows {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td>\
             <td>0x{:02x}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&r.time),
            esc(&r.sensor_id),
            esc(&r.proto),
            esc(&r.src.to_string()),
            r.sport,
            esc(&r.dst.to_string()),
            r.dport,
            r.tcp_flags,
            r.ttl,
            esc(&r.class),
            esc(&r.country)
        );
    }
    h.push_str("</table><p>");
    if s.page > 1 {
        let _ = write!(
            h,
            "<a id=\"prev\" href=\"/analyst/events?{}\">Previous page</a> ",
            esc(&s.query_string(s.page - 1))
        );
    }
    if more {
        let _ = write!(
            h,
            "<a id=\"next\" href=\"/analyst/events?{}\">Next page</a>",
            esc(&s.query_string(s.page + 1))
        );
    }
    h.push_str("</p>");
    h
}

/// The period `from..to` of a form, checked: `to` defaults to now (inclusive), `from` to 24 hours
/// before `to`; `from` must be before `to`, and the span at most `limits.max_days`.
fn period(
    from: &Option<String>,
    to: &Option<String>,
    config: &Config,
    now: i64,
) -> Result<(i64, i64), HttpError> {
    let given = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let to = match given(to) {
        Some(t) => parse_time("to", &t)?,
        None => now + 1,
    };
    let from = match given(from) {
        Some(f) => parse_time("from", &f)?,
        None => to - DAY,
    };
    if from >= to {
        return Err(HttpError::bad(format!(
            "from ({}) must be before to ({})",
            iso(from),
            iso(to)
        )));
    }
    if to - from > i64::from(config.limits.max_days) * DAY {
        return Err(HttpError::bad(format!(
            "from..to spans more than {} days",
            config.limits.max_days
        )));
    }
    Ok((from, to))
}

/// `/analyst/withheld`'s query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeriod {
    /// Start (UTC; default 24 hours before `to`).
    pub from: Option<String>,
    /// End (exclusive; default now).
    pub to: Option<String>,
}

/// Most withheld sources listed on the page.
pub const WITHHELD_ROWS: u32 = 1000;

/// The sources of a period that are never published (partner files, public unique-source
/// counts), with their reasons, and the events of the period by reason: the page's body.
pub async fn withheld_html(
    reader: &Reader,
    raw: &RawPeriod,
    config: &Config,
    now: i64,
) -> Result<String, HttpError> {
    let (from, to) = period(&raw.from, &raw.to, config, now)?;
    let db = reader.db();
    let counts: Vec<WithheldCount> = teiten_store::queries::withheld_counts(db, from, to)
        .fetch_all(reader.client())
        .await
        .map_err(Error::ch("counting events by withheld reason"))?;
    let rows: Vec<WithheldSource> =
        teiten_store::queries::withheld_sources(db, from, to, WITHHELD_ROWS)
            .fetch_all(reader.client())
            .await
            .map_err(Error::ch("reading the withheld sources"))?;
    Ok(withheld_body(from, to, &counts, &rows))
}

fn withheld_body(from: i64, to: i64, counts: &[WithheldCount], rows: &[WithheldSource]) -> String {
    let mut h = format!(
        "<p>Sources that never reach a partner file or a public unique-source count: forged \
         (spoof suspects), special-purpose addresses, addresses in a monitored prefix, sensor \
         addresses. Their packets are stored and counted.</p>\
         <form method=\"get\" action=\"/analyst/withheld\" id=\"period\">\
         <label>From <input name=\"from\" value=\"{}\"></label> \
         <label>To <input name=\"to\" value=\"{}\"></label> \
         <button type=\"submit\">Show</button></form>\
         <h2>Events by reason</h2><table id=\"withheld-counts\"><tr><th class=\"l\">Reason</th>\
         <th>Events</th><th>Sources</th></tr>",
        esc(&iso(from)),
        esc(&iso(to))
    );
    for w in Withheld::ALL {
        let c = counts.iter().find(|c| c.withheld == w as u8);
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            w.name(),
            c.map_or(0, |c| c.events),
            c.map_or(0, |c| c.sources)
        );
    }
    let _ = write!(
        h,
        "</table><h2>Withheld sources</h2><p>{} source(s){}.</p>\
         <table id=\"withheld\"><tr><th class=\"l\">Source</th><th class=\"l\">Reason</th>\
         <th>Packets</th><th class=\"l\">First seen (UTC)</th><th class=\"l\">Last seen (UTC)</th>\
         <th>Sensors</th><th>Ports</th></tr>",
        rows.len(),
        if rows.len() as u32 >= WITHHELD_ROWS {
            format!(", the {WITHHELD_ROWS} with the most packets")
        } else {
            String::new()
        }
    );
    for r in rows {
        let addr = serde_urlencoded::to_string([("addr", &r.source)]).unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td class=\"l\"><a href=\"/analyst/address?{}\">{}</a></td><td class=\"l\">{}</td>\
             <td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&addr),
            esc(&r.source),
            esc(&r.reason()),
            r.packets,
            esc(&iso(i64::from(r.first_seen))),
            esc(&iso(i64::from(r.last_seen))),
            r.sensors,
            r.ports
        );
    }
    h.push_str("</table>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(q: &str) -> Result<Search, String> {
        let raw: RawSearch = serde_urlencoded::from_str(q).map_err(|e| e.to_string())?;
        let c = Config::parse("", "t").unwrap();
        Search::from_raw(&raw, &c, 1_763_769_600).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn search_rules() {
        let s = check("src=192.0.2.1&port=23").unwrap();
        assert_eq!(s.src, Some("192.0.2.1".parse().unwrap()));
        assert_eq!((s.page, s.rows), (1, 50));
        assert!(check("src=1.2.3")
            .unwrap_err()
            .contains("not an IPv4 or IPv6"));
        assert!(check("port=70000").unwrap_err().contains("not a port"));
        assert!(check("rows=100000").unwrap_err().contains("rows"));
        assert!(check("page=0").unwrap_err().contains("page"));
        assert!(check("page=100000").unwrap_err().contains("paging stops"));
        assert!(check("from=2025-11-22&to=2025-11-21")
            .unwrap_err()
            .contains("before"));
        assert!(check("src=2001:db8::1").is_ok());
    }

    #[test]
    fn withheld_page_lists_every_reason_and_escapes() {
        let counts = [
            WithheldCount {
                withheld: 0,
                events: 5,
                sources: 2,
            },
            WithheldCount {
                withheld: 2,
                events: 3,
                sources: 1,
            },
        ];
        let rows = [WithheldSource {
            source: "10.1.2.3".into(),
            withheld: 2,
            packets: 3,
            first_seen: 1_763_700_000,
            last_seen: 1_763_700_060,
            sensors: 1,
            ports: 1,
        }];
        let h = withheld_body(1_763_683_200, 1_763_769_600, &counts, &rows);
        for w in Withheld::ALL {
            assert!(h.contains(&format!(">{}<", w.name())), "{h}");
        }
        assert!(
            h.contains("<tr><td class=\"l\">special_purpose</td><td>3</td><td>1</td></tr>"),
            "{h}"
        );
        assert!(h.contains("special_purpose: private use (RFC 1918)"), "{h}");
        assert!(h.contains("/analyst/address?addr=10.1.2.3"), "{h}");
    }
}
