//! Every SQL statement the dashboard runs, in one place.
//!
//! `{db}` is the configured database (a checked identifier) and `{rollup}` one of the two
//! rollup tables ([`Rollup::table`]); nothing from a request is ever put into the text: request
//! values are bound to `?` by the `clickhouse` crate, which escapes them on the client (18.16 has
//! no server-side parameters). [`all`] lists every statement with sample values, for the chdb
//! (ClickHouse 26.x) compatibility check (`teiten-dashboard print-sql`).
//!
//! Portability (18.16 and 26.x): no `toStartOfInterval` (buckets are `intDiv` of Unix seconds by
//! the step), no IPv4/IPv6 types (addresses are `FixedString(16)`, IPv4-mapped), FixedString
//! columns are read through `toString` or as raw 16 bytes.
//!
//! Filters that may be absent are written `(? = 1 OR has(?, column))`: the first value is 1 for
//! "no filter" (the array is then a one-element placeholder, never empty, because 18.16 types
//! `[]` as `Array(Nothing)`).

/// Which rollup table a graph reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rollup {
    /// `scan_rollup_5m` (periods up to two days).
    FiveMinutes,
    /// `scan_rollup_1h`.
    Hour,
}

impl Rollup {
    /// The table name.
    pub fn table(self) -> &'static str {
        match self {
            Rollup::FiveMinutes => "scan_rollup_5m",
            Rollup::Hour => "scan_rollup_1h",
        }
    }
}

/// Common filter of the graph queries: `[from, to)` in Unix seconds, protocols, sensors.
/// Binds: from, to, all_protos, protos, all_sensors, sensors.
const GRAPH_FILTER: &str = "bucket >= toDateTime(?) AND bucket < toDateTime(?) \
     AND (? = 1 OR has(?, proto)) AND (? = 1 OR has(?, sensor_id))";

/// Top destination ports by packets. Binds: the filter, N.
pub const TOP_PORTS: &str = "SELECT dport, countMerge(packets) AS packets \
     FROM {db}.{rollup} WHERE {filter} \
     GROUP BY dport ORDER BY packets DESC, dport LIMIT ?";

/// Packets per step of the given ports. Binds: step, step, the filter, ports.
pub const PORT_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, dport, \
     countMerge(packets) AS packets FROM {db}.{rollup} WHERE {filter} AND has(?, dport) \
     GROUP BY t, dport ORDER BY t, dport";

/// Sensors with any traffic per step (the divisor of "average per sensor"). Binds: step, step,
/// from, to, all_sensors, sensors.
pub const ACTIVE_SENSORS: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     uniqExact(sensor_id) AS sensors FROM {db}.{rollup} \
     WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) \
     AND (? = 1 OR has(?, sensor_id)) GROUP BY t ORDER BY t";

/// Top source countries by packets, optionally for one port. Binds: the filter, all_ports,
/// port, N.
pub const TOP_COUNTRIES: &str = "SELECT toString(country) AS c, countMerge(packets) AS packets \
     FROM {db}.{rollup} WHERE {filter} AND (? = 1 OR dport = ?) \
     GROUP BY c ORDER BY packets DESC, c LIMIT ?";

/// Packets per step and country, countries outside the given list folded into `''`. Binds:
/// step, step, countries, the filter.
pub const COUNTRY_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, \
     countMerge(packets) AS packets FROM {db}.{rollup} WHERE {filter} \
     GROUP BY t, c ORDER BY t, c";

/// One port: packets and unique sources per step and country (others folded into `''`), plus
/// the same without the country split (`c = '*'`, since unique sources do not add up).
/// Binds: step, step, countries, the filter, port, then again step, step, the filter, port.
pub const PORT_REGION_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, \
     countMerge(packets) AS packets, uniqMerge(sources) AS sources \
     FROM {db}.{rollup} WHERE {filter} AND dport = ? GROUP BY t, c \
     UNION ALL \
     SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, '*' AS c, \
     countMerge(packets) AS packets, uniqMerge(sources) AS sources \
     FROM {db}.{rollup} WHERE {filter} AND dport = ? GROUP BY t";

/// Trends: per protocol and port, packets in the last day (day index = baseline days) and the
/// sum and sum of squares of the daily packets of the baseline days before it. Binds: start
/// (Unix seconds, the first baseline day), start, end, baseline days (x3), minimum packets in
/// the last day, row limit.
pub const TRENDS: &str = "SELECT proto, dport, toUInt64(sumIf(p, d = ?)) AS recent, \
     toUInt64(sumIf(p, d < ?)) AS base, sumIf(toFloat64(p) * toFloat64(p), d < ?) AS base_sq \
     FROM (SELECT intDiv(toUInt32(bucket) - ?, 86400) AS d, proto, dport, \
           countMerge(packets) AS p FROM {db}.scan_rollup_1h \
           WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) GROUP BY d, proto, dport) \
     GROUP BY proto, dport HAVING recent >= ? ORDER BY recent DESC, proto, dport LIMIT ?";

/// Known sensor ids (the registry; the filter accepts only these).
pub const SENSOR_IDS: &str = "SELECT sensor_id FROM {db}.sensors GROUP BY sensor_id \
     ORDER BY sensor_id";

/// Sensor registry state (analyst view). No token hashes.
pub const SENSOR_REGISTRY: &str = "SELECT sensor_id, argMax(revoked, version) AS revoked, \
     toUInt32(argMax(changed, version)) AS changed FROM {db}.sensors GROUP BY sensor_id \
     ORDER BY sensor_id";

/// Sensor health from the reports since a time (analyst view): last seen, events in the last
/// hour, latest counters. Binds: since-last-hour, since.
pub const SENSOR_HEALTH: &str = "SELECT sensor_id, toUInt32(max(received)) AS last_seen, \
     toUInt64(sumIf(events, received >= toDateTime(?))) AS events_1h, \
     argMax(packets_captured, (sealed_us, batch_seq)) AS packets_captured, \
     argMax(kernel_drops, (sealed_us, batch_seq)) AS kernel_drops, \
     argMax(spool_bytes, (sealed_us, batch_seq)) AS spool_bytes, \
     argMax(spool_dropped_events, (sealed_us, batch_seq)) AS spool_dropped_events \
     FROM {db}.sensor_reports WHERE received >= toDateTime(?) \
     GROUP BY sensor_id ORDER BY sensor_id";

/// Raw event search (analyst view), newest first, one page. Binds: from, to, any_source,
/// source (32 hex digits), any_port, port, offset, rows.
pub const EVENT_SEARCH: &str = "SELECT toUInt32(ts) AS t, usec, sensor_id, proto, src, dst, \
     sport, dport, tcp_flags, ttl, toString(class) AS class, toString(country) AS country \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) \
     AND (? = 1 OR src = toFixedString(unhex(?), 16)) AND (? = 1 OR dport = ?) \
     ORDER BY ts DESC, usec DESC, sensor_id, src LIMIT ?, ?";

/// A template with the database, the rollup table and the graph filter in place.
pub fn sql(template: &str, db: &str, rollup: Rollup) -> String {
    template
        .replace("{filter}", GRAPH_FILTER)
        .replace("{db}", db)
        .replace("{rollup}", rollup.table())
}

/// Sample values for the graph filter's binds.
const FILTER_SAMPLES: [&str; 6] = ["1763683200", "1763769600", "0", "[6]", "0", "['tokyo-1']"];

fn with_filter(before: &[&str], after: &[&str]) -> Vec<String> {
    before
        .iter()
        .chain(FILTER_SAMPLES.iter())
        .chain(after.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Every statement as run, with sample values in place of `?`, for the compatibility check
/// on current ClickHouse: (purpose, SQL). Both rollup tables for the graph queries.
pub fn all(db: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rollup in [Rollup::FiveMinutes, Rollup::Hour] {
        let graph: Vec<(&str, &str, Vec<String>)> = vec![
            ("top ports", TOP_PORTS, with_filter(&[], &["10"])),
            (
                "port series",
                PORT_SERIES,
                with_filter(&["3600", "3600"], &["[23,445]"]),
            ),
            (
                "active sensors",
                ACTIVE_SENSORS,
                [
                    "3600",
                    "3600",
                    "1763683200",
                    "1763769600",
                    "0",
                    "['tokyo-1']",
                ]
                .map(String::from)
                .to_vec(),
            ),
            (
                "top countries",
                TOP_COUNTRIES,
                with_filter(&[], &["0", "23", "10"]),
            ),
            (
                "country series",
                COUNTRY_SERIES,
                with_filter(&["3600", "3600", "['AU','JP']"], &[]),
            ),
            ("port region series", PORT_REGION_SERIES, {
                let mut v = with_filter(&["3600", "3600", "['AU','JP']"], &["23"]);
                v.extend(with_filter(&["3600", "3600"], &["23"]));
                v
            }),
        ];
        for (what, template, values) in graph {
            out.push((
                format!("{what} ({})", rollup.table()),
                fill(&sql(template, db, rollup), &values),
            ));
        }
    }
    let other: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "trends",
            TRENDS,
            vec![
                "30",
                "30",
                "30",
                "1761091200",
                "1761091200",
                "1763769600",
                "100",
                "1000",
            ],
        ),
        ("sensor ids", SENSOR_IDS, vec![]),
        ("sensor registry", SENSOR_REGISTRY, vec![]),
        (
            "sensor health",
            SENSOR_HEALTH,
            vec!["1763766000", "1761091200"],
        ),
        (
            "event search",
            EVENT_SEARCH,
            vec![
                "1763683200",
                "1763769600",
                "0",
                "'00000000000000000000ffff01000001'",
                "0",
                "23",
                "0",
                "51",
            ],
        ),
    ];
    for (what, template, values) in other {
        let values: Vec<String> = values.into_iter().map(String::from).collect();
        out.push((
            what.to_owned(),
            fill(&sql(template, db, Rollup::Hour), &values),
        ));
    }
    out
}

/// Fills `?` in order.
fn fill(sql: &str, values: &[String]) -> String {
    let mut out = String::new();
    let mut values = values.iter();
    for (i, part) in sql.split('?').enumerate() {
        if i > 0 {
            out.push_str(values.next().map(String::as_str).unwrap_or("NULL"));
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_fills_every_placeholder() {
        for (what, sql) in all("teiten") {
            assert!(!sql.contains('?'), "{what}: {sql}");
            assert!(!sql.contains("NULL"), "{what} has too few samples: {sql}");
            assert!(!sql.contains('{'), "{what}: {sql}");
        }
    }

    #[test]
    fn placeholders_match_samples() {
        // Each template's ? count equals its sample count (else `fill` would leave NULL or
        // ignore extras).
        let count = |t: &str| sql(t, "db", Rollup::Hour).matches('?').count();
        assert_eq!(count(TOP_PORTS), 7);
        assert_eq!(count(PORT_SERIES), 9);
        assert_eq!(count(ACTIVE_SENSORS), 6);
        assert_eq!(count(TOP_COUNTRIES), 9);
        assert_eq!(count(COUNTRY_SERIES), 9);
        assert_eq!(count(PORT_REGION_SERIES), 19);
        assert_eq!(count(TRENDS), 8);
        assert_eq!(count(EVENT_SEARCH), 8);
    }
}
