//! Every SQL statement the dashboard runs, in one place.
//!
//! `{db}` is the configured database (a checked identifier), `{ports}`, `{regions}`,
//! `{port_packets}`, `{days}` and `{port_sources}` the per-graph rollup tables of the bucket
//! width and filter ([`graph_sql`]); nothing from a request is ever put into the text: request
//! values are bound to `?` by the `clickhouse` crate, which escapes them on the client (18.16 has
//! no server-side parameters). Only the number of placeholders of the filter and of a port list
//! depends on the request ([`Filter`]). [`all`] lists every statement with sample values, for
//! the chdb (ClickHouse 26.x) compatibility check (`teiten-dashboard print-sql`).
//!
//! Portability (18.16 and 26.x): no `toStartOfInterval` (buckets are `intDiv` of Unix seconds by
//! the step), no IPv4/IPv6 types (addresses are `FixedString(16)`, IPv4-mapped), FixedString
//! columns are read through `toString` or as raw 16 bytes.
//!
//! Speed: each graph reads the rollup that has only its own dimensions (see
//! `store/src/schema.rs`): the top ports from the daily rollup over all sensors unless a
//! sensor filter asks for the per-sensor one; the top ports' series from the hourly rollup sorted
//! by port first (`dport IN (...)`, so only their rows are read); regions from
//! `(bucket, proto, country, sensor_id)`; one port's packets from a plain count sorted by port
//! first; its unique sources from `uniq` states per 5 minutes up to two days and from daily
//! HyperLogLog states beyond (a month of hourly `uniq` states takes seconds to merge on 18.16).
//! Absent filters are left out of the text (a `(1 = 1 OR has(...))` is evaluated per row on
//! 18.16), present ones are `IN (?, ...)` lists, which the primary key can use.

/// Which rollup tables a graph reads (by bucket width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rollup {
    /// 5-minute buckets (periods up to two days).
    FiveMinutes,
    /// Hourly buckets.
    Hour,
}

impl Rollup {
    /// The suffix of the table names.
    pub fn suffix(self) -> &'static str {
        match self {
            Rollup::FiveMinutes => "5m",
            Rollup::Hour => "1h",
        }
    }
}

/// The shape of the graph filter: how many protocols and sensors it lists (`None`: no filter),
/// and how many ports a port list (`{port_list}`) binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filter {
    /// Number of protocols bound.
    pub protos: Option<usize>,
    /// Number of sensor ids bound.
    pub sensors: Option<usize>,
    /// Number of ports in `{port_list}`.
    pub ports: usize,
}

fn list(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

impl Filter {
    /// `bucket` in `[?, ?)`, then the protocol and sensor lists. Binds: from, to, each
    /// protocol, each sensor.
    pub fn text(self) -> String {
        let mut out = "bucket >= toDateTime(?) AND bucket < toDateTime(?)".to_owned();
        if let Some(n) = self.protos {
            out.push_str(&format!(" AND proto IN ({})", list(n)));
        }
        if let Some(n) = self.sensors {
            out.push_str(&format!(" AND sensor_id IN ({})", list(n)));
        }
        out
    }
}

/// Top destination ports by packets. Binds: the filter, N.
pub const TOP_PORTS: &str = "SELECT dport, sum(packets) AS packets \
     FROM {db}.{ports} WHERE {filter} \
     GROUP BY dport ORDER BY packets DESC, dport LIMIT ?";

/// Top destination ports of a period with whole days: the days from a daily rollup (over all
/// sensors without a sensor filter, a third of the rows), the hours before the first and after
/// the last whole day from the 5-minute one (sorted by time first, where the hourly one is
/// sorted by port: a quarter less time at 100 M events with a sensor filter). Binds: the filter
/// (whole days), the filter (hours before), the filter (hours after), N.
pub const TOP_PORTS_DAYS: &str = "SELECT dport, sum(p) AS packets FROM (\
     SELECT dport, sum(packets) AS p FROM {db}.{days} WHERE {filter} GROUP BY dport \
     UNION ALL \
     SELECT dport, sum(packets) AS p FROM {db}.scan_ports_5m WHERE {filter} GROUP BY dport \
     UNION ALL \
     SELECT dport, sum(packets) AS p FROM {db}.scan_ports_5m WHERE {filter} GROUP BY dport) \
     GROUP BY dport ORDER BY packets DESC, dport LIMIT ?";

/// Candidates for the top ports of a period of days, from the port digests of the days that are
/// over (`store/src/digest.rs`): per port, `lo` the packets the digests of the whole days
/// inside the period list, `hi` those of every day the period touches (a day at either end
/// counted whole); the (day, sensor, protocol)s without a digest (today, a day not yet sealed)
/// are read from the daily rollup in full. Sorted by `hi`, the first N' kept. Binds: the whole
/// days (start, end), the filter (the days touched); the whole days, the filter, the filter, the
/// filter (for the rows without digest); N'.
pub const DIGEST_TOP_PORTS: &str = "SELECT dport, sum(lo) AS lo, sum(hi) AS hi FROM (\
     SELECT dport, sumIf(c, inner) AS lo, sum(c) AS hi FROM (\
       SELECT bucket >= toDateTime(?) AND bucket < toDateTime(?) AS inner, d.1 AS ports, \
       d.2 AS packets FROM (SELECT bucket, argMax((ports, packets), sealed) AS d \
         FROM {db}.scan_port_digests_1d WHERE {filter}{all_sensors} GROUP BY {digest_key})) \
     ARRAY JOIN ports AS dport, packets AS c GROUP BY dport \
     UNION ALL \
     SELECT dport, sumIf(packets, bucket >= toDateTime(?) AND bucket < toDateTime(?)) AS lo, \
       sum(packets) AS hi FROM {db}.{days} WHERE {filter} AND ({digest_key}) IN (\
         SELECT {digest_key} FROM {db}.scan_sensor_totals_1d WHERE {filter} \
         AND ({digest_key}) NOT IN (SELECT {digest_key} FROM {db}.scan_port_digests_1d \
           WHERE {filter}{all_sensors}) GROUP BY {digest_key}) \
     GROUP BY dport) \
     GROUP BY dport ORDER BY hi DESC, dport LIMIT ?";

/// The most packets any port can have beyond its `hi` of [`DIGEST_TOP_PORTS`]: over the digests
/// read, the most packets of a port each left out plus the events that arrived after the seal
/// (the day's packets now, from `scan_sensor_totals_1d`, minus the digest's total). Binds: the
/// filter (the days touched) twice.
pub const DIGEST_BOUND: &str = "SELECT toUInt64(sum(d.1 + if(x > d.2, x - d.2, 0))) AS bound \
     FROM (SELECT {digest_key}, argMax((rest_max, total), sealed) AS d \
       FROM {db}.scan_port_digests_1d WHERE {filter}{all_sensors} GROUP BY {digest_key}) \
     AS digests ANY LEFT JOIN (SELECT {digest_key}, sum(packets) AS x \
       FROM {db}.scan_sensor_totals_1d WHERE {filter} GROUP BY {digest_key}) AS totals \
     USING ({digest_key})";

/// Packets per step of the given ports (the hourly rollup is sorted by port first, so only
/// their rows are read). Binds: step, step, the filter, each port.
pub const PORT_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, dport, \
     sum(packets) AS packets FROM {db}.{ports} WHERE {filter} AND dport IN ({port_list}) \
     GROUP BY t, dport ORDER BY t, dport";

/// Sensors with any traffic per step (the divisor of "average per sensor"), from the small
/// region rollup. Binds: step, step, the filter without protocols.
pub const ACTIVE_SENSORS: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     uniqExact(sensor_id) AS sensors FROM {db}.{regions} WHERE {filter} \
     GROUP BY t ORDER BY t";

/// Top source countries by packets. Binds: the filter, N.
pub const TOP_COUNTRIES: &str = "SELECT toString(country) AS c, sum(packets) AS packets \
     FROM {db}.{regions} WHERE {filter} \
     GROUP BY c ORDER BY packets DESC, c LIMIT ?";

/// Top source countries by packets to one port. Binds: port, the filter, N.
pub const TOP_PORT_COUNTRIES: &str = "SELECT toString(country) AS c, \
     {port_count} AS packets FROM {db}.{port_packets} WHERE dport = ? AND {filter} \
     GROUP BY c ORDER BY packets DESC, c LIMIT ?";

/// Packets per step and country, countries outside the given list folded into `''`. Binds:
/// step, step, countries, the filter.
pub const COUNTRY_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, \
     sum(packets) AS packets FROM {db}.{regions} WHERE {filter} \
     GROUP BY t, c ORDER BY t, c";

/// One port: packets per step and country, countries outside the given list folded into `''`.
/// Binds: step, step, countries, port, the filter.
pub const PORT_PACKET_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, {port_count} AS packets \
     FROM {db}.{port_packets} WHERE dport = ? AND {filter} GROUP BY t, c ORDER BY t, c";

/// One port: unique sources per step and country, countries outside the given list folded into
/// `''`, from `{port_sources}`: `uniq` states per 5 minutes up to two days, HyperLogLog states
/// per day beyond, over all sensors without a sensor filter. Binds: step, step, countries,
/// port, the filter.
pub const PORT_SOURCES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, {sources_merge}(sources) AS sources \
     FROM {db}.{port_sources} WHERE dport = ? AND {filter} GROUP BY t, c";

/// One port: unique sources per step over all regions (they do not add up over regions: a
/// query of its own, run beside [`PORT_SOURCES`]). Binds: step, step, port, the filter.
pub const PORT_SOURCES_ALL: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     {sources_merge}(sources) AS sources FROM {db}.{port_sources} WHERE dport = ? AND {filter} \
     GROUP BY t";

/// Trends: per protocol and port, packets in the last 24 hours (day index = baseline days,
/// from the hourly rollup) and the sum and sum of squares of the daily packets of the whole
/// baseline days before them (from the daily rollup over all sensors). Binds: baseline days
/// (x3), the first baseline day (Unix seconds) x2, the end of the baseline, baseline days, the
/// last 24 hours' start and end, minimum packets in the last day, row limit.
pub const TRENDS: &str = "SELECT proto, dport, toUInt64(sumIf(p, d = ?)) AS recent, \
     toUInt64(sumIf(p, d < ?)) AS base, sumIf(toFloat64(p) * toFloat64(p), d < ?) AS base_sq \
     FROM (SELECT toUInt32(intDiv(toUInt32(bucket) - ?, 86400)) AS d, proto, dport, \
           sum(packets) AS p FROM {db}.scan_port_totals_1d \
           WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) GROUP BY d, proto, dport \
           UNION ALL \
           SELECT toUInt32(?) AS d, proto, dport, sum(packets) AS p FROM {db}.scan_ports_1h \
           WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) GROUP BY proto, dport) \
     GROUP BY proto, dport HAVING recent >= ? ORDER BY recent DESC, proto, dport LIMIT ?";

/// Public answers (`[public]`, `docs/probe-response.md`): the ports that cleared the threshold
/// in the period, with their packets, most first. A port counts when at least `min_sensors`
/// sensors saw it (`{ports}`, per sensor) and at least `min_sources` distinct sources sent to it
/// over all sensors (`{port_sources}`: `uniq` states per 5 minutes, or HyperLogLog states per
/// day when the period ends on a UTC day). Binds: the filter (without sensors), min_sensors,
/// the filter again (for the sources: from the start of the first day), min_sources.
pub const PUBLIC_PORTS: &str = "SELECT dport, packets FROM (\
     SELECT dport, sum(packets) AS packets, uniqExact(sensor_id) AS sensors \
       FROM {db}.{ports} WHERE {filter} GROUP BY dport HAVING sensors >= ?) AS seen \
     ANY INNER JOIN (SELECT dport, {sources_merge}(sources) AS n \
       FROM {db}.{port_sources} WHERE {filter} GROUP BY dport HAVING n >= ?) AS sent \
     USING dport ORDER BY packets DESC, dport";

/// Public answers: of the traffic to the given (published) ports, the source countries that
/// cleared the same threshold, with their packets, most first. Binds: the filter, each port,
/// min_sensors, the filter (sources), each port, min_sources, N.
pub const PUBLIC_COUNTRIES: &str = "SELECT c, packets FROM (\
     SELECT toString(country) AS c, {port_count} AS packets, uniqExact(sensor_id) AS sensors \
       FROM {db}.{port_packets} WHERE {filter} AND dport IN ({port_list}) GROUP BY c \
       HAVING sensors >= ?) AS seen \
     ANY INNER JOIN (SELECT toString(country) AS c, {sources_merge}(sources) AS n \
       FROM {db}.{port_sources} WHERE {filter} AND dport IN ({port_list}) GROUP BY c \
       HAVING n >= ?) AS sent \
     USING c ORDER BY packets DESC, c LIMIT ?";

/// Public answers: packets to the given (published) ports per step and country, countries
/// outside the given list folded into `''`. Binds: step, step, countries, the filter, each port.
pub const PUBLIC_COUNTRY_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, {port_count} AS packets \
     FROM {db}.{port_packets} WHERE {filter} AND dport IN ({port_list}) \
     GROUP BY t, c ORDER BY t, c";

/// Public answers: the divisor of "average per sensor", sensors that saw any of the given
/// (published) ports per step (a sensor that saw only unpublished ports does not move it).
/// Binds: step, step, the filter, each port.
pub const PUBLIC_ACTIVE_SENSORS: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     uniqExact(sensor_id) AS sensors FROM {db}.{ports} WHERE {filter} \
     AND dport IN ({port_list}) GROUP BY t ORDER BY t";

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

/// A template with the database, the rollup tables and the graph filter in place. Rollups
/// without `sensor_id` are read when the filter has no sensor list.
pub fn graph_sql(template: &str, db: &str, rollup: Rollup, filter: Filter) -> String {
    let r = rollup.suffix();
    let all_sensors = filter.sensors.is_none();
    let (port_packets, port_count) = match rollup {
        Rollup::FiveMinutes => ("scan_port_regions_5m", "countMerge(packets)"),
        Rollup::Hour => ("scan_port_packets_1h", "sum(packets)"),
    };
    template
        .replace("{filter}", &filter.text())
        .replace("{port_list}", &list(filter.ports))
        .replace("{db}", db)
        .replace("{ports}", &format!("scan_ports_{r}"))
        .replace("{regions}", &format!("scan_regions_{r}"))
        .replace("{port_packets}", port_packets)
        .replace("{port_count}", port_count)
        .replace(
            "{days}",
            if all_sensors {
                "scan_port_totals_1d"
            } else {
                "scan_ports_1d"
            },
        )
        .replace(
            "{digest_key}",
            if all_sensors {
                "bucket, proto"
            } else {
                "bucket, sensor_id, proto"
            },
        )
        .replace(
            "{all_sensors}",
            // The digests over all sensors have the id `''`; an empty sensor group binds `''`.
            if all_sensors {
                " AND sensor_id = ''"
            } else {
                " AND sensor_id != ''"
            },
        )
        .replace(
            "{port_sources}",
            match (rollup, all_sensors) {
                (Rollup::FiveMinutes, true) => "scan_port_sources_5m",
                (Rollup::FiveMinutes, false) => "scan_port_regions_5m",
                (Rollup::Hour, true) => "scan_port_sources_1d",
                (Rollup::Hour, false) => "scan_port_sensor_sources_1d",
            },
        )
        .replace(
            "{sources_merge}",
            match rollup {
                Rollup::FiveMinutes => "uniqMerge",
                Rollup::Hour => "uniqHLL12Merge",
            },
        )
}

/// A template without graph filter with the database in place.
pub fn sql(template: &str, db: &str, rollup: Rollup) -> String {
    graph_sql(template, db, rollup, Filter::default())
}

/// Sample values for the graph filter's binds, with one protocol and one sensor.
const FILTER_SAMPLES: [&str; 4] = ["1763683200", "1763769600", "6", "'tokyo-1'"];
/// The same without protocol and sensor filter.
const NO_FILTER_SAMPLES: [&str; 2] = ["1763683200", "1763769600"];

const FILTERED: Filter = Filter {
    protos: Some(1),
    sensors: Some(1),
    ports: 0,
};

fn vals(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Every statement as run, with sample values in place of `?`, for the compatibility check
/// on current ClickHouse: (purpose, SQL). Both bucket widths for the graph queries, with and
/// without the protocol and sensor filter.
pub fn all(db: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rollup in [Rollup::FiveMinutes, Rollup::Hour] {
        for (filter, f, label) in [
            (FILTERED, &FILTER_SAMPLES[..], "filtered"),
            (Filter::default(), &NO_FILTER_SAMPLES[..], "unfiltered"),
        ] {
            let active = Filter {
                protos: None,
                ..filter
            };
            let active_samples: Vec<&str> = f.iter().copied().filter(|v| *v != "6").collect();
            let graph: Vec<(&str, &str, Filter, Vec<String>)> = vec![
                ("top ports", TOP_PORTS, filter, vals(&[f, &["10"]])),
                (
                    "port series",
                    PORT_SERIES,
                    Filter { ports: 2, ..filter },
                    vals(&[&["3600", "3600"], f, &["23", "445"]]),
                ),
                (
                    "active sensors",
                    ACTIVE_SENSORS,
                    active,
                    vals(&[&["3600", "3600"], &active_samples]),
                ),
                ("top countries", TOP_COUNTRIES, filter, vals(&[f, &["10"]])),
                (
                    "top port countries",
                    TOP_PORT_COUNTRIES,
                    filter,
                    vals(&[&["23"], f, &["10"]]),
                ),
                (
                    "country series",
                    COUNTRY_SERIES,
                    filter,
                    vals(&[&["3600", "3600", "['AU','JP']"], f]),
                ),
                (
                    "port packet series",
                    PORT_PACKET_SERIES,
                    filter,
                    vals(&[&["3600", "3600", "['AU','JP']", "23"], f]),
                ),
                (
                    "port sources",
                    PORT_SOURCES,
                    filter,
                    vals(&[&["300", "300", "['AU','JP']", "23"], f]),
                ),
                (
                    "port sources over all regions",
                    PORT_SOURCES_ALL,
                    filter,
                    vals(&[&["300", "300", "23"], f]),
                ),
            ];
            for (what, template, filter, values) in graph {
                out.push((
                    format!("{what} ({}, {label})", rollup.suffix()),
                    fill(&graph_sql(template, db, rollup, filter), &values),
                ));
            }
        }
    }
    // Public answers: never a sensor filter; with and without a protocol.
    let tcp = Filter {
        protos: Some(1),
        sensors: None,
        ports: 0,
    };
    for rollup in [Rollup::FiveMinutes, Rollup::Hour] {
        for (filter, f, label) in [
            (tcp, &FILTER_SAMPLES[..3], "tcp"),
            (Filter::default(), &NO_FILTER_SAMPLES[..], "all"),
        ] {
            let two = Filter { ports: 2, ..filter };
            let ports: &[&str] = &["23", "445"];
            let public: Vec<(&str, &str, Filter, Vec<String>)> = vec![
                (
                    "public ports",
                    PUBLIC_PORTS,
                    filter,
                    vals(&[f, &["2"], f, &["10"]]),
                ),
                (
                    "public countries",
                    PUBLIC_COUNTRIES,
                    two,
                    vals(&[f, ports, &["2"], f, ports, &["10"], &["10"]]),
                ),
                (
                    "public country series",
                    PUBLIC_COUNTRY_SERIES,
                    two,
                    vals(&[&["3600", "3600", "['AU','JP']"], f, ports]),
                ),
                (
                    "public active sensors",
                    PUBLIC_ACTIVE_SENSORS,
                    two,
                    vals(&[&["3600", "3600"], f, ports]),
                ),
            ];
            for (what, template, filter, values) in public {
                out.push((
                    format!("{what} ({}, {label})", rollup.suffix()),
                    fill(&graph_sql(template, db, rollup, filter), &values),
                ));
            }
        }
    }
    for (filter, f, label) in [
        (FILTERED, &FILTER_SAMPLES[..], "filtered"),
        (Filter::default(), &NO_FILTER_SAMPLES[..], "unfiltered"),
    ] {
        out.push((
            format!("top ports over days ({label})"),
            fill(
                &graph_sql(TOP_PORTS_DAYS, db, Rollup::Hour, filter),
                &vals(&[f, f, f, &["10"]]),
            ),
        ));
        let inner = ["1763683200", "1763769600"];
        out.push((
            format!("top port candidates from digests ({label})"),
            fill(
                &graph_sql(DIGEST_TOP_PORTS, db, Rollup::Hour, filter),
                &vals(&[&inner, f, &inner, f, f, f, &["100"]]),
            ),
        ));
        out.push((
            format!("digest bound ({label})"),
            fill(
                &graph_sql(DIGEST_BOUND, db, Rollup::Hour, filter),
                &vals(&[f, f]),
            ),
        ));
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
                "1763683200",
                "30",
                "1763686800",
                "1763773200",
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
        // Each template's ? count with a one-protocol, one-sensor filter.
        let count = |t: &str| {
            graph_sql(t, "db", Rollup::Hour, FILTERED)
                .matches('?')
                .count()
        };
        assert_eq!(count(TOP_PORTS), 5);
        assert_eq!(count(TOP_PORTS_DAYS), 13);
        assert_eq!(count(PORT_SERIES), 7);
        let three_ports = Filter {
            ports: 3,
            ..FILTERED
        };
        let series = graph_sql(PORT_SERIES, "db", Rollup::Hour, three_ports);
        assert!(series.contains("dport IN (?, ?, ?)"), "{series}");
        assert_eq!(count(ACTIVE_SENSORS), 6);
        assert_eq!(count(TOP_COUNTRIES), 5);
        assert_eq!(count(TOP_PORT_COUNTRIES), 6);
        assert_eq!(count(COUNTRY_SERIES), 7);
        assert_eq!(count(PORT_PACKET_SERIES), 8);
        assert_eq!(count(PORT_SOURCES), 8);
        assert_eq!(count(PORT_SOURCES_ALL), 7);
        assert_eq!(count(TRENDS), 11);
        let public = Filter {
            protos: Some(1),
            sensors: None,
            ports: 2,
        };
        let n = |t: &str| {
            graph_sql(t, "db", Rollup::Hour, public)
                .matches('?')
                .count()
        };
        assert_eq!(n(PUBLIC_PORTS), 8);
        assert_eq!(n(PUBLIC_COUNTRIES), 13);
        assert_eq!(n(PUBLIC_COUNTRY_SERIES), 8);
        assert_eq!(n(PUBLIC_ACTIVE_SENSORS), 7);
        // Distinct sources over all sensors; distinct sensors from a per-sensor rollup.
        let p = graph_sql(PUBLIC_PORTS, "db", Rollup::Hour, public);
        assert!(p.contains("FROM db.scan_ports_1h") && p.contains("FROM db.scan_port_sources_1d"));
        let p = graph_sql(PUBLIC_PORTS, "db", Rollup::FiveMinutes, public);
        assert!(p.contains("FROM db.scan_ports_5m") && p.contains("FROM db.scan_port_sources_5m"));
        assert_eq!(count(EVENT_SEARCH), 8);
        let three = Filter {
            protos: Some(2),
            sensors: Some(3),
            ports: 0,
        };
        assert_eq!(
            three.text(),
            "bucket >= toDateTime(?) AND bucket < toDateTime(?) AND proto IN (?, ?) \
             AND sensor_id IN (?, ?, ?)"
        );
        assert!(!sql(TOP_PORTS, "db", Rollup::Hour).contains(" IN "));
        // Without a sensor list the rollups over all sensors are read.
        assert!(sql(TOP_PORTS_DAYS, "db", Rollup::Hour).contains("db.scan_port_totals_1d"));
        let filtered = graph_sql(TOP_PORTS_DAYS, "db", Rollup::Hour, FILTERED);
        assert!(filtered.contains("db.scan_ports_1d"), "{filtered}");
        // Unique sources: per 5 minutes (`uniq`) or per day (HyperLogLog), over all sensors
        // without a sensor filter.
        let sources = |rollup, filter| graph_sql(PORT_SOURCES, "db", rollup, filter);
        let five = sources(Rollup::FiveMinutes, Filter::default());
        assert!(five.contains("uniqMerge(sources) AS sources FROM db.scan_port_sources_5m"));
        assert!(sources(Rollup::FiveMinutes, FILTERED).contains("db.scan_port_regions_5m"));
        let daily = sources(Rollup::Hour, Filter::default());
        assert!(daily.contains("uniqHLL12Merge(sources) AS sources FROM db.scan_port_sources_1d"));
        assert!(sources(Rollup::Hour, FILTERED).contains("db.scan_port_sensor_sources_1d"));
        assert!(sql(PORT_PACKET_SERIES, "db", Rollup::Hour).contains("sum(packets)"));
        let five = sql(PORT_PACKET_SERIES, "db", Rollup::FiveMinutes);
        assert!(five.contains("countMerge(packets) AS packets FROM db.scan_port_regions_5m"));
    }
}
