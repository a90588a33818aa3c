//! Every statement the dashboard runs, each built with its bound values
//! ([`Statement`]); the dashboard decodes and formats the rows.
//!
//! `{db}` is the configured database (a checked identifier), `{ports}`, `{regions}`,
//! `{port_packets}`, `{days}`, `{port_sources}` and the other braces the rollup tables of the
//! bucket width and filter, from [`crate::schema::ROLLUPS`] ([`rollup_table`]); nothing from a
//! request is ever put into the text: request values are bound to `?` by the `clickhouse`
//! crate, which escapes them on the client (18.16 has no server-side parameters). Only the
//! number of placeholders of the filter and of a port list depends on the request ([`Filter`]).
//! [`samples`] builds every statement with sample values, for the chdb (ClickHouse 26.x)
//! compatibility check (`teiten-dashboard print-sql`).
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

use crate::schema::{rollup_table, Grain, Kind, DERIVED_TABLES};
use crate::statement::Statement;

/// Which rollup tables a graph reads (by bucket width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rollup {
    /// 5-minute buckets (periods up to two days).
    FiveMinutes,
    /// Hourly buckets (and daily ones where a graph reads whole days).
    Hour,
}

impl Rollup {
    /// The suffix of the table names.
    pub fn suffix(self) -> &'static str {
        self.grain().suffix()
    }

    /// The grain of the rollups read.
    pub fn grain(self) -> Grain {
        match self {
            Rollup::FiveMinutes => Grain::FiveMinutes,
            Rollup::Hour => Grain::Hour,
        }
    }
}

/// The graph filter: `bucket` in `[from, to)` (Unix seconds), the protocols and sensors it
/// lists (`None`: no filter; an empty sensor list matches nothing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// Start, inclusive.
    pub from: i64,
    /// End, exclusive.
    pub to: i64,
    /// The protocol numbers.
    pub protos: Option<Vec<u8>>,
    /// The sensor ids.
    pub sensors: Option<Vec<String>>,
}

/// The country list of a series statement: at least one name (18.16 refuses `has([], x)`):
/// `--`, which no row has, for none.
fn countries_list(countries: &[String]) -> Vec<String> {
    if countries.is_empty() {
        vec!["--".to_owned()]
    } else {
        countries.to_vec()
    }
}

fn list(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

impl Filter {
    /// The same filter over `[from, to)`.
    pub fn range(&self, from: i64, to: i64) -> Filter {
        Filter {
            from,
            to,
            ..self.clone()
        }
    }

    /// The same filter without its protocol list.
    pub fn without_protos(&self) -> Filter {
        Filter {
            protos: None,
            ..self.clone()
        }
    }

    /// The same filter without its sensor list (public answers never filter by sensor).
    pub fn without_sensors(&self) -> Filter {
        Filter {
            sensors: None,
            ..self.clone()
        }
    }

    /// `bucket` in `[?, ?)`, then the protocol and sensor lists; bound by [`Filter::bind`].
    fn text(&self) -> String {
        let mut out = "bucket >= toDateTime(?) AND bucket < toDateTime(?)".to_owned();
        if let Some(p) = &self.protos {
            out.push_str(&format!(" AND proto IN ({})", list(p.len())));
        }
        if let Some(s) = &self.sensors {
            out.push_str(&format!(" AND sensor_id IN ({})", list(s.len())));
        }
        out
    }

    /// Binds what [`Filter::text`] placed: from, to, each protocol, each sensor.
    fn bind(&self, mut st: Statement) -> Statement {
        st = st.bind(self.from).bind(self.to);
        if let Some(protos) = &self.protos {
            st = st.bind_all(protos.iter().copied());
        }
        if let Some(ids) = &self.sensors {
            if ids.is_empty() {
                // No sensor has an empty id: an empty group counts nothing.
                st = st.bind("");
            }
            st = st.bind_all(ids);
        }
        st
    }

    fn all_sensors(&self) -> bool {
        self.sensors.is_none()
    }
}

/// Top destination ports by packets. Binds: the filter, N.
const TOP_PORTS: &str = "SELECT dport, sum(packets) AS packets \
     FROM {db}.{ports} WHERE {filter} \
     GROUP BY dport ORDER BY packets DESC, dport LIMIT ?";

/// Top destination ports of a period with whole days: the days from a daily rollup (over all
/// sensors without a sensor filter, a third of the rows), the hours before the first and after
/// the last whole day from the 5-minute one (sorted by time first, where the hourly one is
/// sorted by port: a quarter less time at 100 M events with a sensor filter). Binds: the filter
/// (whole days), the filter (hours before), the filter (hours after), N.
const TOP_PORTS_DAYS: &str = "SELECT dport, sum(p) AS packets FROM (\
     SELECT dport, sum(packets) AS p FROM {db}.{days} WHERE {filter} GROUP BY dport \
     UNION ALL \
     SELECT dport, sum(packets) AS p FROM {db}.{ports_5m} WHERE {filter} GROUP BY dport \
     UNION ALL \
     SELECT dport, sum(packets) AS p FROM {db}.{ports_5m} WHERE {filter} GROUP BY dport) \
     GROUP BY dport ORDER BY packets DESC, dport LIMIT ?";

/// Candidates for the top ports of a period of days, from the port digests of the days that are
/// over (`store/src/digest.rs`): per port, `lo` the packets the digests of the whole days
/// inside the period list, `hi` those of every day the period touches (a day at either end
/// counted whole); the (day, sensor, protocol)s without a digest (today, a day not yet sealed)
/// are read from the daily rollup in full. Sorted by `hi`, the first N' kept. Binds: the whole
/// days (start, end), the filter (the days touched); the whole days, the filter, the filter, the
/// filter (for the rows without digest); N'.
const DIGEST_TOP_PORTS: &str = "SELECT dport, sum(lo) AS lo, sum(hi) AS hi FROM (\
     SELECT dport, sumIf(c, inner) AS lo, sum(c) AS hi FROM (\
       SELECT bucket >= toDateTime(?) AND bucket < toDateTime(?) AS inner, d.1 AS ports, \
       d.2 AS packets FROM (SELECT bucket, argMax((ports, packets), sealed) AS d \
         FROM {db}.{digests} WHERE {filter}{all_sensors} GROUP BY {digest_key})) \
     ARRAY JOIN ports AS dport, packets AS c GROUP BY dport \
     UNION ALL \
     SELECT dport, sumIf(packets, bucket >= toDateTime(?) AND bucket < toDateTime(?)) AS lo, \
       sum(packets) AS hi FROM {db}.{days} WHERE {filter} AND ({digest_key}) IN (\
         SELECT {digest_key} FROM {db}.{sensor_totals} WHERE {filter} \
         AND ({digest_key}) NOT IN (SELECT {digest_key} FROM {db}.{digests} \
           WHERE {filter}{all_sensors}) GROUP BY {digest_key}) \
     GROUP BY dport) \
     GROUP BY dport ORDER BY hi DESC, dport LIMIT ?";

/// The most packets any port can have beyond its `hi` of [`digest_top_ports`]: over the digests
/// read, the most packets of a port each left out plus the events that arrived after the seal
/// (the day's packets now, from `scan_sensor_totals_1d`, minus the digest's total). Binds: the
/// filter (the days touched) twice.
const DIGEST_BOUND: &str = "SELECT toUInt64(sum(d.1 + if(x > d.2, x - d.2, 0))) AS bound \
     FROM (SELECT {digest_key}, argMax((rest_max, total), sealed) AS d \
       FROM {db}.{digests} WHERE {filter}{all_sensors} GROUP BY {digest_key}) \
     AS digests ANY LEFT JOIN (SELECT {digest_key}, sum(packets) AS x \
       FROM {db}.{sensor_totals} WHERE {filter} GROUP BY {digest_key}) AS totals \
     USING ({digest_key})";

/// Packets per step of the given ports (the hourly rollup is sorted by port first, so only
/// their rows are read). Binds: step, step, the filter, each port.
const PORT_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, dport, \
     sum(packets) AS packets FROM {db}.{ports} WHERE {filter} AND dport IN ({port_list}) \
     GROUP BY t, dport ORDER BY t, dport";

/// Sensors with any traffic per step (the divisor of "average per sensor"), from the small
/// region rollup. Binds: step, step, the filter without protocols.
const ACTIVE_SENSORS: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     uniqExact(sensor_id) AS sensors FROM {db}.{regions} WHERE {filter} \
     GROUP BY t ORDER BY t";

/// Top source countries by packets. Binds: the filter, N.
const TOP_COUNTRIES: &str = "SELECT toString(country) AS c, sum(packets) AS packets \
     FROM {db}.{regions} WHERE {filter} \
     GROUP BY c ORDER BY packets DESC, c LIMIT ?";

/// Top source ASes by packets (AS 0: unknown), with their unique published sources, the
/// country most of their packets came from, and their name from `as_names` (`''` when it has
/// none). One pass over the rollup: per AS and country the packets and the merged `uniq`
/// state (`uniqMergeState`), then per AS. Binds: the filter, N.
const TOP_NETWORKS: &str = "SELECT asn, packets, sources, country, name FROM (\
     SELECT asn, sum(p) AS packets, uniqMerge(s) AS sources, argMax(c, p) AS country FROM (\
       SELECT src_asn AS asn, toString(country) AS c, countMerge(packets) AS p, \
       uniqMergeState(sources) AS s FROM {db}.{networks} WHERE {filter} GROUP BY asn, c) \
     GROUP BY asn ORDER BY packets DESC, asn LIMIT ?) AS top \
     ANY LEFT JOIN (SELECT asn, argMax(name, version) AS name FROM {db}.as_names \
       GROUP BY asn) AS named USING asn ORDER BY packets DESC, asn";

/// Packets per step and source AS (as text), ASes outside the given list folded into `''`.
/// Binds: step, step, ASes, the filter.
const NETWORK_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(src_asn)), toString(src_asn), '') AS c, \
     countMerge(packets) AS packets FROM {db}.{networks} WHERE {filter} \
     GROUP BY t, c ORDER BY t, c";

/// Top source countries by packets to one port. Binds: port, the filter, N.
const TOP_PORT_COUNTRIES: &str = "SELECT toString(country) AS c, \
     {port_count} AS packets FROM {db}.{port_packets} WHERE dport = ? AND {filter} \
     GROUP BY c ORDER BY packets DESC, c LIMIT ?";

/// Packets per step and country, countries outside the given list folded into `''`. Binds:
/// step, step, countries, the filter.
const COUNTRY_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, \
     sum(packets) AS packets FROM {db}.{regions} WHERE {filter} \
     GROUP BY t, c ORDER BY t, c";

/// One port: packets per step and country, countries outside the given list folded into `''`.
/// Binds: step, step, countries, port, the filter.
const PORT_PACKET_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, {port_count} AS packets \
     FROM {db}.{port_packets} WHERE dport = ? AND {filter} GROUP BY t, c ORDER BY t, c";

/// One port: unique sources per step and country, countries outside the given list folded into
/// `''`, from `{port_sources}`: `uniq` states per 5 minutes up to two days, HyperLogLog states
/// per day beyond, over all sensors without a sensor filter. Binds: step, step, countries,
/// port, the filter.
const PORT_SOURCES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, {sources_merge}(sources) AS sources \
     FROM {db}.{port_sources} WHERE dport = ? AND {filter} GROUP BY t, c";

/// One port: unique sources per step over all regions (they do not add up over regions: a
/// query of its own, run beside [`port_sources`]). Binds: step, step, port, the filter.
const PORT_SOURCES_ALL: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     {sources_merge}(sources) AS sources FROM {db}.{port_sources} WHERE dport = ? AND {filter} \
     GROUP BY t";

/// Trends: per protocol and port, packets in the last 24 hours (day index = baseline days,
/// from the hourly rollup) and the sum and sum of squares of the daily packets of the whole
/// baseline days before them (from the daily rollup over all sensors). Binds: baseline days
/// (x3), the first baseline day (Unix seconds) x2, the end of the baseline, baseline days, the
/// last 24 hours' start and end, minimum packets in the last day, row limit.
const TRENDS: &str = "SELECT proto, dport, toUInt64(sumIf(p, d = ?)) AS recent, \
     toUInt64(sumIf(p, d < ?)) AS base, sumIf(toFloat64(p) * toFloat64(p), d < ?) AS base_sq \
     FROM (SELECT toUInt32(intDiv(toUInt32(bucket) - ?, 86400)) AS d, proto, dport, \
           sum(packets) AS p FROM {db}.{port_totals_1d} \
           WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) GROUP BY d, proto, dport \
           UNION ALL \
           SELECT toUInt32(?) AS d, proto, dport, sum(packets) AS p FROM {db}.{ports_1h} \
           WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) GROUP BY proto, dport) \
     GROUP BY proto, dport HAVING recent >= ? ORDER BY recent DESC, proto, dport LIMIT ?";

/// Public answers (`[public]`, `docs/probe-response.md`): the ports that cleared the threshold
/// in the period, with their packets, most first. A port counts when at least `min_sensors`
/// sensors saw it (`{ports}`, per sensor) and at least `min_sources` distinct sources sent to it
/// over all sensors (`{port_sources}`: `uniq` states per 5 minutes, or HyperLogLog states per
/// day when the period ends on a UTC day). Binds: the filter (without sensors), min_sensors,
/// the filter again (for the sources: from the start of the first day), min_sources.
const PUBLIC_PORTS: &str = "SELECT dport, packets FROM (\
     SELECT dport, sum(packets) AS packets, uniqExact(sensor_id) AS sensors \
       FROM {db}.{ports} WHERE {filter} GROUP BY dport HAVING sensors >= ?) AS seen \
     ANY INNER JOIN (SELECT dport, {sources_merge}(sources) AS n \
       FROM {db}.{port_sources} WHERE {filter} GROUP BY dport HAVING n >= ?) AS sent \
     USING dport ORDER BY packets DESC, dport";

/// Public answers: of the traffic to the given (published) ports, the source countries that
/// cleared the same threshold, with their packets, most first. Binds: the filter, each port,
/// min_sensors, the filter (sources), each port, min_sources, N.
const PUBLIC_COUNTRIES: &str = "SELECT c, packets FROM (\
     SELECT toString(country) AS c, {port_count} AS packets, uniqExact(sensor_id) AS sensors \
       FROM {db}.{port_packets} WHERE {filter} AND dport IN ({port_list}) GROUP BY c \
       HAVING sensors >= ?) AS seen \
     ANY INNER JOIN (SELECT toString(country) AS c, {sources_merge}(sources) AS n \
       FROM {db}.{port_sources} WHERE {filter} AND dport IN ({port_list}) GROUP BY c \
       HAVING n >= ?) AS sent \
     USING c ORDER BY packets DESC, c LIMIT ?";

/// Public answers: packets to the given (published) ports per step and country, countries
/// outside the given list folded into `''`. Binds: step, step, countries, the filter, each port.
const PUBLIC_COUNTRY_SERIES: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     if(has(?, toString(country)), toString(country), '') AS c, {port_count} AS packets \
     FROM {db}.{port_packets} WHERE {filter} AND dport IN ({port_list}) \
     GROUP BY t, c ORDER BY t, c";

/// Public answers: the divisor of "average per sensor", sensors that saw any of the given
/// (published) ports per step (a sensor that saw only unpublished ports does not move it).
/// Binds: step, step, the filter, each port.
const PUBLIC_ACTIVE_SENSORS: &str = "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS t, \
     uniqExact(sensor_id) AS sensors FROM {db}.{ports} WHERE {filter} \
     AND dport IN ({port_list}) GROUP BY t ORDER BY t";

/// Known sensor ids (the registry; the filter accepts only these).
const SENSOR_IDS: &str = "SELECT sensor_id FROM {db}.sensors GROUP BY sensor_id \
     ORDER BY sensor_id";

/// Sensor registry state (analyst view). No token hashes.
const SENSOR_REGISTRY: &str = "SELECT sensor_id, argMax(revoked, version) AS revoked, \
     toUInt32(argMax(changed, version)) AS changed FROM {db}.sensors GROUP BY sensor_id \
     ORDER BY sensor_id";

/// Sensor health from the reports since a time (analyst view): last seen, events in the last
/// hour, latest counters (each batch's report once). Binds: since-last-hour, since.
const SENSOR_HEALTH: &str = "SELECT sensor_id, toUInt32(max(received)) AS last_seen, \
     toUInt64(sumIf(events, received >= toDateTime(?))) AS events_1h, \
     argMax(packets_captured, (sealed_us, batch_seq)) AS packets_captured, \
     argMax(kernel_drops, (sealed_us, batch_seq)) AS kernel_drops, \
     argMax(spool_bytes, (sealed_us, batch_seq)) AS spool_bytes, \
     argMax(spool_dropped_events, (sealed_us, batch_seq)) AS spool_dropped_events \
     FROM (SELECT sensor_id, received, events, sealed_us, batch_seq, packets_captured, \
     kernel_drops, spool_bytes, spool_dropped_events FROM {db}.sensor_reports \
     WHERE received >= toDateTime(?) LIMIT 1 BY sensor_id, epoch, batch_seq) \
     GROUP BY sensor_id ORDER BY sensor_id";

/// Raw event search (analyst view), newest first, one page. Binds: from, to, any_source,
/// source (32 hex digits), any_port, port, offset, rows.
const EVENT_SEARCH: &str = "SELECT toUInt32(ts) AS t, usec, sensor_id, proto, src, dst, \
     sport, dport, tcp_flags, ttl, toString(class) AS class, toString(country) AS country \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) \
     AND (? = 1 OR src = toFixedString(unhex(?), 16)) AND (? = 1 OR dport = ?) \
     ORDER BY ts DESC, usec DESC, sensor_id, src LIMIT ?, ?";

/// A template with the database, the rollup tables and the graph filter in place (`ports`
/// placeholders in `{port_list}`). Rollups without `sensor_id` are read when the filter has no
/// sensor list.
fn graph_sql(template: &str, db: &str, rollup: Rollup, filter: &Filter, ports: usize) -> String {
    let g = rollup.grain();
    let all_sensors = filter.all_sensors();
    let (port_packets, port_count) = match rollup {
        Rollup::FiveMinutes => (
            rollup_table(Kind::PortRegions, Grain::FiveMinutes),
            "countMerge(packets)",
        ),
        Rollup::Hour => (rollup_table(Kind::PortPackets, Grain::Hour), "sum(packets)"),
    };
    let (days, digest_key, all_sensors_cond) = if all_sensors {
        // The digests over all sensors have the id `''`; an empty sensor group binds `''`.
        (
            rollup_table(Kind::PortTotals, Grain::Day),
            "bucket, proto",
            " AND sensor_id = ''",
        )
    } else {
        (
            rollup_table(Kind::Ports, Grain::Day),
            "bucket, sensor_id, proto",
            " AND sensor_id != ''",
        )
    };
    let port_sources = match (rollup, all_sensors) {
        (Rollup::FiveMinutes, true) => rollup_table(Kind::PortSources, Grain::FiveMinutes),
        (Rollup::FiveMinutes, false) => rollup_table(Kind::PortRegions, Grain::FiveMinutes),
        (Rollup::Hour, true) => rollup_table(Kind::PortSources, Grain::Day),
        (Rollup::Hour, false) => rollup_table(Kind::PortSensorSources, Grain::Day),
    };
    let sources_merge = match rollup {
        Rollup::FiveMinutes => "uniqMerge",
        Rollup::Hour => "uniqHLL12Merge",
    };
    template
        .replace("{filter}", &filter.text())
        .replace("{port_list}", &list(ports))
        .replace("{db}", db)
        .replace("{ports}", rollup_table(Kind::Ports, g))
        .replace("{regions}", rollup_table(Kind::Regions, g))
        .replace("{networks}", rollup_table(Kind::Networks, Grain::Hour))
        .replace("{port_packets}", port_packets)
        .replace("{port_count}", port_count)
        .replace("{days}", days)
        .replace("{digest_key}", digest_key)
        .replace("{all_sensors}", all_sensors_cond)
        .replace("{port_sources}", port_sources)
        .replace("{sources_merge}", sources_merge)
        .replace("{ports_5m}", rollup_table(Kind::Ports, Grain::FiveMinutes))
        .replace("{ports_1h}", rollup_table(Kind::Ports, Grain::Hour))
        .replace(
            "{port_totals_1d}",
            rollup_table(Kind::PortTotals, Grain::Day),
        )
        .replace(
            "{sensor_totals}",
            rollup_table(Kind::SensorTotals, Grain::Day),
        )
        .replace("{digests}", DERIVED_TABLES[0])
}

/// A statement of a template without graph filter.
fn plain(template: &str, db: &str) -> Statement {
    Statement::new(graph_sql(template, db, Rollup::Hour, &Filter::default(), 0))
}

/// Top destination ports by packets over the filter: `(dport, packets)`.
pub fn top_ports(db: &str, rollup: Rollup, f: &Filter, top: u32) -> Statement {
    f.bind(Statement::new(graph_sql(TOP_PORTS, db, rollup, f, 0)))
        .bind(top)
}

/// Top destination ports of a period with whole days `[first_day, last_day)` inside it (the
/// days from a daily rollup, the hours before and after from the 5-minute one): `(dport,
/// packets)`.
pub fn top_ports_days(db: &str, f: &Filter, first_day: i64, last_day: i64, top: u32) -> Statement {
    let st = Statement::new(graph_sql(TOP_PORTS_DAYS, db, Rollup::Hour, f, 0));
    let st = f.range(first_day, last_day).bind(st);
    let st = f.range(f.from, first_day).bind(st);
    f.range(last_day, f.to).bind(st).bind(top)
}

/// Candidates for the top ports from the port digests: `(dport, lo, hi)`, the first `rows` by
/// `hi`. `[first_day, last_day)` are the whole days inside the period, `f` the days it touches.
pub fn digest_top_ports(
    db: &str,
    f: &Filter,
    first_day: i64,
    last_day: i64,
    rows: u32,
) -> Statement {
    let st = Statement::new(graph_sql(DIGEST_TOP_PORTS, db, Rollup::Hour, f, 0))
        .bind(first_day)
        .bind(last_day);
    let st = f.bind(st).bind(first_day).bind(last_day);
    f.bind(f.bind(f.bind(st))).bind(rows)
}

/// The most packets any port can have beyond its `hi` of [`digest_top_ports`] over the days
/// `f` touches: one `u64`.
pub fn digest_bound(db: &str, f: &Filter) -> Statement {
    f.bind(f.bind(Statement::new(graph_sql(
        DIGEST_BOUND,
        db,
        Rollup::Hour,
        f,
        0,
    ))))
}

/// Packets per step of the given ports: `(t, dport, packets)`.
pub fn port_series(db: &str, rollup: Rollup, f: &Filter, step: u32, ports: &[u16]) -> Statement {
    let st = Statement::new(graph_sql(PORT_SERIES, db, rollup, f, ports.len()))
        .bind(step)
        .bind(step);
    f.bind(st).bind_all(ports.iter().copied())
}

/// Sensors with any traffic per step (the protocol filter does not apply): `(t, sensors)`.
pub fn active_sensors(db: &str, rollup: Rollup, f: &Filter, step: u32) -> Statement {
    let f = f.without_protos();
    let st = Statement::new(graph_sql(ACTIVE_SENSORS, db, rollup, &f, 0))
        .bind(step)
        .bind(step);
    f.bind(st)
}

/// Top source countries by packets: `(country, packets)`.
pub fn top_countries(db: &str, rollup: Rollup, f: &Filter, top: u32) -> Statement {
    f.bind(Statement::new(graph_sql(TOP_COUNTRIES, db, rollup, f, 0)))
        .bind(top)
}

/// Top source ASes by packets, from the hourly network rollup whatever `rollup` (the filter's
/// times should be whole hours): `(asn, packets, sources, country, name)`.
pub fn top_networks(db: &str, f: &Filter, top: u32) -> Statement {
    let st = Statement::new(graph_sql(TOP_NETWORKS, db, Rollup::Hour, f, 0));
    f.bind(st).bind(top)
}

/// Packets per step and source AS (as text), the ASes not in `asns` folded into `''`:
/// `(t, asn, packets)`. Hourly, as [`top_networks`]; `step` a multiple of an hour.
pub fn network_series(db: &str, f: &Filter, step: u32, asns: &[String]) -> Statement {
    let st = Statement::new(graph_sql(NETWORK_SERIES, db, Rollup::Hour, f, 0))
        .bind(step)
        .bind(step)
        .bind(countries_list(asns));
    f.bind(st)
}

/// Top source countries by packets to one port: `(country, packets)`.
pub fn top_port_countries(db: &str, rollup: Rollup, f: &Filter, port: u16, top: u32) -> Statement {
    let st = Statement::new(graph_sql(TOP_PORT_COUNTRIES, db, rollup, f, 0)).bind(port);
    f.bind(st).bind(top)
}

/// Packets per step and country, the countries not in `countries` (none: all) folded into
/// `''`: `(t, country, packets)`.
pub fn country_series(
    db: &str,
    rollup: Rollup,
    f: &Filter,
    step: u32,
    countries: &[String],
) -> Statement {
    let st = Statement::new(graph_sql(COUNTRY_SERIES, db, rollup, f, 0))
        .bind(step)
        .bind(step)
        .bind(countries_list(countries));
    f.bind(st)
}

/// What a one-port series counts (see [`one_port_series`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMeasure {
    /// Packets: `(t, country, packets)`.
    Packets,
    /// Unique sources: `(t, country, sources)`.
    Sources,
}

/// One port's packets or unique sources per step and country (as [`country_series`]): the
/// statement binds the step twice, the countries list and the port, then the filter.
pub fn one_port_series(
    measure: PortMeasure,
    db: &str,
    rollup: Rollup,
    f: &Filter,
    step: u32,
    countries: &[String],
    port: u16,
) -> Statement {
    let sql = match measure {
        PortMeasure::Packets => PORT_PACKET_SERIES,
        PortMeasure::Sources => PORT_SOURCES,
    };
    let st = Statement::new(graph_sql(sql, db, rollup, f, 0))
        .bind(step)
        .bind(step)
        .bind(countries_list(countries))
        .bind(port);
    f.bind(st)
}

/// One port's unique sources per step over all regions: `(t, sources)`.
pub fn port_sources_all(db: &str, rollup: Rollup, f: &Filter, step: u32, port: u16) -> Statement {
    let st = Statement::new(graph_sql(PORT_SOURCES_ALL, db, rollup, f, 0))
        .bind(step)
        .bind(step)
        .bind(port);
    f.bind(st)
}

/// The periods and thresholds of the trends statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendsWindow {
    /// Whole days of baseline.
    pub baseline_days: u32,
    /// The first baseline day (Unix seconds).
    pub start: i64,
    /// The end of the baseline.
    pub base_to: i64,
    /// The start of the last 24 hours.
    pub recent_from: i64,
    /// Their end.
    pub to: i64,
    /// Minimum packets in the last day.
    pub min_packets: u64,
    /// Rows read at most.
    pub limit: u32,
}

/// Trends: per protocol and port, packets in the last 24 hours and the sum and sum of squares
/// of the daily packets of the baseline: `(proto, dport, recent, base, base_sq)`.
pub fn trends(db: &str, w: &TrendsWindow) -> Statement {
    plain(TRENDS, db)
        .bind(w.baseline_days)
        .bind(w.baseline_days)
        .bind(w.baseline_days)
        .bind(w.start)
        .bind(w.start)
        .bind(w.base_to)
        .bind(w.baseline_days)
        .bind(w.recent_from)
        .bind(w.to)
        .bind(w.min_packets)
        .bind(w.limit)
}

/// The public thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Distinct sensors a port or region needs.
    pub min_sensors: u64,
    /// Distinct sources a port or region needs.
    pub min_sources: u64,
    /// Where the sources are counted from (the start of the first day for daily states).
    pub sources_from: i64,
}

/// Public answers: the ports that cleared the threshold in the period (never a sensor
/// filter), with their packets, most first: `(dport, packets)`.
pub fn public_ports(db: &str, rollup: Rollup, f: &Filter, t: &Threshold) -> Statement {
    let f = f.without_sensors();
    let st = f
        .bind(Statement::new(graph_sql(PUBLIC_PORTS, db, rollup, &f, 0)))
        .bind(t.min_sensors);
    f.range(t.sources_from, f.to).bind(st).bind(t.min_sources)
}

/// Public answers: of the traffic to the given ports, the source countries that cleared the
/// threshold, top N: `(country, packets)`.
pub fn public_countries(
    db: &str,
    rollup: Rollup,
    f: &Filter,
    t: &Threshold,
    ports: &[u16],
    top: u32,
) -> Statement {
    let f = f.without_sensors();
    let st = Statement::new(graph_sql(PUBLIC_COUNTRIES, db, rollup, &f, ports.len()));
    let st = f
        .bind(st)
        .bind_all(ports.iter().copied())
        .bind(t.min_sensors);
    f.range(t.sources_from, f.to)
        .bind(st)
        .bind_all(ports.iter().copied())
        .bind(t.min_sources)
        .bind(top)
}

/// Public answers: packets to the given ports per step and country (as [`country_series`]):
/// `(t, country, packets)`.
pub fn public_country_series(
    db: &str,
    rollup: Rollup,
    f: &Filter,
    step: u32,
    countries: &[String],
    ports: &[u16],
) -> Statement {
    public_per_step(PUBLIC_COUNTRY_SERIES, db, rollup, f, step, ports, |st| {
        st.bind(countries_list(countries))
    })
}

/// Public answers: sensors that saw any of the given ports per step: `(t, sensors)`.
pub fn public_active_sensors(
    db: &str,
    rollup: Rollup,
    f: &Filter,
    step: u32,
    ports: &[u16],
) -> Statement {
    public_per_step(PUBLIC_ACTIVE_SENSORS, db, rollup, f, step, ports, |st| st)
}

/// A public per-step statement over all sensors (the filter without its sensors): `step`
/// twice, what `then` binds, the filter's values, then the published ports.
fn public_per_step(
    sql: &str,
    db: &str,
    rollup: Rollup,
    f: &Filter,
    step: u32,
    ports: &[u16],
    then: impl FnOnce(Statement) -> Statement,
) -> Statement {
    let f = f.without_sensors();
    let st = Statement::new(graph_sql(sql, db, rollup, &f, ports.len()))
        .bind(step)
        .bind(step);
    f.bind(then(st)).bind_all(ports.iter().copied())
}

/// Known sensor ids: `sensor_id`.
pub fn sensor_ids(db: &str) -> Statement {
    plain(SENSOR_IDS, db)
}

/// The sensor registry without token hashes: `(sensor_id, revoked, changed)`.
pub fn sensor_registry(db: &str) -> Statement {
    plain(SENSOR_REGISTRY, db)
}

/// Sensor health from the reports since `since`, events counted since `since_hour`.
pub fn sensor_health(db: &str, since_hour: i64, since: i64) -> Statement {
    plain(SENSOR_HEALTH, db).bind(since_hour).bind(since)
}

/// An event search: `[from, to)`, a source address (its 16 bytes) and a port, or any; one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSearch {
    /// Start, inclusive.
    pub from: i64,
    /// End, exclusive.
    pub to: i64,
    /// The source address as 16 bytes (IPv4-mapped), or any.
    pub src: Option<[u8; 16]>,
    /// The destination port, or any.
    pub port: Option<u16>,
    /// Rows skipped.
    pub offset: u64,
    /// Rows read.
    pub rows: u32,
}

/// Raw events of a search, newest first.
pub fn event_search(db: &str, s: &EventSearch) -> Statement {
    let src_hex = s.src.map_or_else(
        || "00".to_owned(),
        |a| a.iter().map(|b| format!("{b:02x}")).collect(),
    );
    plain(EVENT_SEARCH, db)
        .bind(s.from)
        .bind(s.to)
        .bind(u8::from(s.src.is_none()))
        .bind(src_hex)
        .bind(u8::from(s.port.is_none()))
        .bind(s.port.unwrap_or(0))
        .bind(s.offset)
        .bind(s.rows)
}

/// Sample values: 2025-11-21 (a whole UTC day).
const FROM: i64 = 1_763_683_200;
const TO: i64 = 1_763_769_600;

/// Every statement as run, with sample values, for the compatibility check on current
/// ClickHouse: (purpose, statement). Both bucket widths for the graph queries, with and without
/// the protocol and sensor filter.
pub fn samples(db: &str) -> Vec<(String, Statement)> {
    let filtered = Filter {
        from: FROM,
        to: TO,
        protos: Some(vec![6]),
        sensors: Some(vec!["tokyo-1".to_owned()]),
    };
    let unfiltered = Filter {
        from: FROM,
        to: TO,
        ..Filter::default()
    };
    let countries = ["AU".to_owned(), "JP".to_owned()];
    let ports = [23, 445];
    let mut out = Vec::new();
    for rollup in [Rollup::FiveMinutes, Rollup::Hour] {
        for (f, label) in [(&filtered, "filtered"), (&unfiltered, "unfiltered")] {
            let graph = [
                ("top ports", top_ports(db, rollup, f, 10)),
                ("port series", port_series(db, rollup, f, 3600, &ports)),
                ("active sensors", active_sensors(db, rollup, f, 3600)),
                ("top countries", top_countries(db, rollup, f, 10)),
                (
                    "top port countries",
                    top_port_countries(db, rollup, f, 23, 10),
                ),
                (
                    "country series",
                    country_series(db, rollup, f, 3600, &countries),
                ),
                (
                    "port packet series",
                    one_port_series(PortMeasure::Packets, db, rollup, f, 3600, &countries, 23),
                ),
                (
                    "port sources",
                    one_port_series(PortMeasure::Sources, db, rollup, f, 300, &countries, 23),
                ),
                (
                    "port sources over all regions",
                    port_sources_all(db, rollup, f, 300, 23),
                ),
            ];
            for (what, st) in graph {
                out.push((format!("{what} ({}, {label})", rollup.suffix()), st));
            }
        }
    }
    for (f, label) in [(&filtered, "filtered"), (&unfiltered, "unfiltered")] {
        out.push((format!("top networks ({label})"), top_networks(db, f, 10)));
        out.push((
            format!("network series ({label})"),
            network_series(db, f, 3600, &["13335".to_owned(), "0".to_owned()]),
        ));
    }
    // Public answers: never a sensor filter; with and without a protocol.
    let threshold = Threshold {
        min_sensors: 2,
        min_sources: 10,
        sources_from: FROM,
    };
    let tcp = filtered.without_sensors();
    for rollup in [Rollup::FiveMinutes, Rollup::Hour] {
        for (f, label) in [(&tcp, "tcp"), (&unfiltered, "all")] {
            let public = [
                ("public ports", public_ports(db, rollup, f, &threshold)),
                (
                    "public countries",
                    public_countries(db, rollup, f, &threshold, &ports, 10),
                ),
                (
                    "public country series",
                    public_country_series(db, rollup, f, 3600, &countries, &ports),
                ),
                (
                    "public active sensors",
                    public_active_sensors(db, rollup, f, 3600, &ports),
                ),
            ];
            for (what, st) in public {
                out.push((format!("{what} ({}, {label})", rollup.suffix()), st));
            }
        }
    }
    for (f, label) in [(&filtered, "filtered"), (&unfiltered, "unfiltered")] {
        out.push((
            format!("top ports over days ({label})"),
            top_ports_days(db, f, FROM, TO, 10),
        ));
        out.push((
            format!("top port candidates from digests ({label})"),
            digest_top_ports(db, f, FROM, TO, 100),
        ));
        out.push((format!("digest bound ({label})"), digest_bound(db, f)));
    }
    let window = TrendsWindow {
        baseline_days: 30,
        start: 1_761_091_200,
        base_to: FROM,
        recent_from: 1_763_686_800,
        to: 1_763_773_200,
        min_packets: 100,
        limit: 1000,
    };
    let mut src = [0u8; 16];
    src[10] = 0xff;
    src[11] = 0xff;
    src[12] = 1;
    src[15] = 1;
    out.extend([
        ("trends".to_owned(), trends(db, &window)),
        ("sensor ids".to_owned(), sensor_ids(db)),
        ("sensor registry".to_owned(), sensor_registry(db)),
        (
            "sensor health".to_owned(),
            sensor_health(db, 1_763_766_000, 1_761_091_200),
        ),
        (
            "event search".to_owned(),
            event_search(
                db,
                &EventSearch {
                    from: FROM,
                    to: TO,
                    src: Some(src),
                    port: Some(23),
                    offset: 0,
                    rows: 51,
                },
            ),
        ),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered() -> Filter {
        Filter {
            from: FROM,
            to: TO,
            protos: Some(vec![6]),
            sensors: Some(vec!["tokyo-1".to_owned()]),
        }
    }

    #[test]
    fn every_sample_binds_every_placeholder() {
        let all = samples("teiten");
        assert_eq!(all.len(), 67);
        for (what, st) in all {
            let sql = st
                .to_sql_literal()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(!sql.contains('?'), "{what}: {sql}");
            assert!(!sql.contains('{'), "{what}: {sql}");
            assert!(!sql.contains("db.."), "{what}: {sql}");
        }
    }

    #[test]
    fn placeholders_follow_the_filter() {
        let f = filtered();
        let n = |st: Statement| {
            st.check().unwrap();
            st.placeholders()
        };
        assert_eq!(n(top_ports("db", Rollup::Hour, &f, 10)), 5);
        assert_eq!(n(top_ports_days("db", &f, FROM, TO, 10)), 13);
        assert_eq!(n(port_series("db", Rollup::Hour, &f, 3600, &[23, 445])), 8);
        let series = port_series("db", Rollup::Hour, &f, 3600, &[1, 2, 3]);
        assert!(
            series.sql().contains("dport IN (?, ?, ?)"),
            "{}",
            series.sql()
        );
        assert_eq!(n(active_sensors("db", Rollup::Hour, &f, 3600)), 5);
        assert_eq!(n(top_countries("db", Rollup::Hour, &f, 10)), 5);
        assert_eq!(n(top_port_countries("db", Rollup::Hour, &f, 23, 10)), 6);
        let c = ["AU".to_owned()];
        assert_eq!(n(country_series("db", Rollup::Hour, &f, 3600, &c)), 7);
        assert_eq!(
            n(one_port_series(
                PortMeasure::Packets,
                "db",
                Rollup::Hour,
                &f,
                3600,
                &c,
                23
            )),
            8
        );
        assert_eq!(
            n(one_port_series(
                PortMeasure::Sources,
                "db",
                Rollup::Hour,
                &f,
                3600,
                &c,
                23
            )),
            8
        );
        assert_eq!(n(port_sources_all("db", Rollup::Hour, &f, 3600, 23)), 7);
        let t = Threshold {
            min_sensors: 2,
            min_sources: 10,
            sources_from: FROM,
        };
        let two = [23, 445];
        assert_eq!(n(public_ports("db", Rollup::Hour, &f, &t)), 8);
        assert_eq!(
            n(public_countries("db", Rollup::Hour, &f, &t, &two, 10)),
            13
        );
        assert_eq!(
            n(public_country_series(
                "db",
                Rollup::Hour,
                &f,
                3600,
                &c,
                &two
            )),
            8
        );
        assert_eq!(
            n(public_active_sensors("db", Rollup::Hour, &f, 3600, &two)),
            7
        );
        // Distinct sources over all sensors; distinct sensors from a per-sensor rollup.
        let p = public_ports("db", Rollup::Hour, &f, &t);
        assert!(
            p.sql().contains("FROM db.scan_ports_1h")
                && p.sql().contains("FROM db.scan_port_sources_1d")
        );
        let p = public_ports("db", Rollup::FiveMinutes, &f, &t);
        assert!(
            p.sql().contains("FROM db.scan_ports_5m")
                && p.sql().contains("FROM db.scan_port_sources_5m")
        );
        let two_protos = Filter {
            protos: Some(vec![6, 17]),
            sensors: Some(vec!["a".into(), "b".into(), "c".into()]),
            ..f.clone()
        };
        assert_eq!(
            two_protos.text(),
            "bucket >= toDateTime(?) AND bucket < toDateTime(?) AND proto IN (?, ?) \
             AND sensor_id IN (?, ?, ?)"
        );
        // An empty sensor group binds `''` (no sensor has it).
        let none = Filter {
            sensors: Some(Vec::new()),
            ..f.clone()
        };
        let st = top_ports("db", Rollup::Hour, &none, 10);
        // An empty country list binds `['--']` (18.16 refuses `has([], x)`).
        let fold = country_series("db", Rollup::Hour, &f, 3600, &[]);
        assert!(
            fold.to_string().contains("has(['--'], toString(country))"),
            "{fold}"
        );
        assert!(st.to_string().contains("sensor_id IN ('')"), "{st}");
        let all = Filter {
            from: FROM,
            to: TO,
            ..Filter::default()
        };
        assert!(!top_ports("db", Rollup::Hour, &all, 10)
            .sql()
            .contains(" IN "));
        // Without a sensor list the rollups over all sensors are read.
        assert!(top_ports_days("db", &all, FROM, TO, 1)
            .sql()
            .contains("db.scan_port_totals_1d"));
        let days = top_ports_days("db", &f, FROM, TO, 1);
        assert!(days.sql().contains("db.scan_ports_1d"), "{}", days.sql());
        // Unique sources: per 5 minutes (`uniq`) or per day (HyperLogLog), over all sensors
        // without a sensor filter.
        let sources = |rollup, f: &Filter| {
            one_port_series(PortMeasure::Sources, "db", rollup, f, 300, &c, 23)
        };
        let five = sources(Rollup::FiveMinutes, &all);
        assert!(five
            .sql()
            .contains("uniqMerge(sources) AS sources FROM db.scan_port_sources_5m"));
        assert!(sources(Rollup::FiveMinutes, &f)
            .sql()
            .contains("db.scan_port_regions_5m"));
        let daily = sources(Rollup::Hour, &all);
        assert!(daily
            .sql()
            .contains("uniqHLL12Merge(sources) AS sources FROM db.scan_port_sources_1d"));
        assert!(sources(Rollup::Hour, &f)
            .sql()
            .contains("db.scan_port_sensor_sources_1d"));
        let packets = one_port_series(PortMeasure::Packets, "db", Rollup::Hour, &all, 3600, &c, 23);
        assert!(packets.sql().contains("sum(packets)"));
        let five = one_port_series(
            PortMeasure::Packets,
            "db",
            Rollup::FiveMinutes,
            &all,
            300,
            &c,
            23,
        );
        assert!(five
            .sql()
            .contains("countMerge(packets) AS packets FROM db.scan_port_regions_5m"));
        let search = EventSearch {
            from: FROM,
            to: TO,
            src: None,
            port: Some(23),
            offset: 50,
            rows: 51,
        };
        let st = event_search("db", &search);
        assert_eq!(n(st.clone()), 8);
        assert!(
            st.to_string().ends_with(
                "AND (1 = 1 OR src = toFixedString(unhex('00'), 16)) \
             AND (0 = 1 OR dport = 23) ORDER BY ts DESC, usec DESC, sensor_id, src LIMIT 50, 51"
            ),
            "{st}"
        );
    }

    #[test]
    fn every_rollup_read_exists() {
        // Each graph statement names only schema tables.
        for (what, st) in samples("db") {
            for word in st.sql().split(|c: char| c.is_whitespace() || c == ')') {
                if let Some(table) = word.strip_prefix("db.") {
                    assert!(
                        crate::schema::ROLLUP_TABLES.contains(&table)
                            || DERIVED_TABLES.contains(&table)
                            || ["sensors", "sensor_reports", "scan_events", "as_names"]
                                .contains(&table),
                        "{what}: {table}"
                    );
                }
            }
        }
    }
}
