//! Every non-DDL statement the project runs, in one place (DDL is in [`crate::schema`]).
//!
//! `{db}` stands for the configured database (a checked identifier, see
//! `Config::validate` of the aggregator); `?` are values bound by the `clickhouse` crate, which
//! escapes them on the client (18.16 has no server-side parameters). [`ALL`] lists them with
//! sample values for the chdb compatibility test.
//!
//! The read queries at the end are the API for the dashboard and the IODEF exchange; see
//! `aggregator/README.md` for the tables and columns.

/// Server version (checked before migrating).
pub const SERVER_VERSION: &str = "SELECT version()";
/// Whether a database exists.
pub const DATABASE_EXISTS: &str = "SELECT count() FROM system.databases WHERE name = ?";
/// Tables and views of a database (the migration check).
pub const TABLES_IN_DATABASE: &str = "SELECT name FROM system.tables WHERE database = ?";
/// Whether a table has a column (the migration's column steps). Binds: database, table, column.
pub const COLUMN_EXISTS: &str =
    "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?";

/// The tables and views of a database as the server has them, for the migration's comparison
/// with the definition ([`crate::schema_diff`]). Binds: database.
pub const SCHEMA_TABLES: &str = "SELECT name, engine, engine_full, partition_key, sorting_key, \
     create_table_query FROM system.tables WHERE database = ?";
/// The columns of a database's tables, each table's in its order (the comparison). Binds:
/// database.
pub const SCHEMA_COLUMNS: &str = "SELECT table, name, type, default_kind, default_expression \
     FROM system.columns WHERE database = ?";

/// Rows already stored for a batch (deduplication).
pub const BATCH_ROWS: &str = "SELECT count() FROM {db}.scan_events \
     WHERE sensor_id = ? AND epoch = ? AND batch_seq = ?";
/// The event indexes already stored for a partly stored batch (repair).
pub const BATCH_INDEXES: &str = "SELECT idx FROM {db}.scan_events \
     WHERE sensor_id = ? AND epoch = ? AND batch_seq = ?";

/// Insert targets: table and column list (the crate builds `INSERT INTO t (cols) FORMAT
/// RowBinary` from the row types, whose fields are in this order).
pub const SCAN_EVENTS_INSERT_COLUMNS: &str = "sensor_id, epoch, batch_seq, idx, ts, usec, proto, \
     src, dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country, \
     withheld";
/// Columns of a sensor registry row.
pub const SENSORS_INSERT_COLUMNS: &str = "sensor_id, token_sha256, revoked, changed, version";
/// Columns of a sensor report row.
pub const SENSOR_REPORTS_INSERT_COLUMNS: &str = "sensor_id, epoch, batch_seq, received, \
     sealed_us, events, unknown_country, packets_captured, kernel_drops, events_recorded, \
     filtered, malformed, spool_bytes, spool_dropped_events";

/// The current state of every sensor (latest registry row wins).
pub const SENSORS_CURRENT: &str = "SELECT sensor_id, argMax(token_sha256, version) AS token, \
     argMax(revoked, version) AS revoked, toUInt32(argMax(changed, version)) AS changed \
     FROM {db}.sensors GROUP BY sensor_id ORDER BY sensor_id";
/// What sensors reported: last seen, events in the last 5 minutes, latest counters.
pub const SENSOR_STATUS: &str = "SELECT sensor_id, toUInt32(max(received)) AS last_seen, \
     toUInt64(sumIf(events, received >= now() - 300)) AS events_5m, \
     argMax(kernel_drops, (sealed_us, batch_seq)) AS kernel_drops, \
     argMax(spool_bytes, (sealed_us, batch_seq)) AS spool_bytes, \
     argMax(spool_dropped_events, (sealed_us, batch_seq)) AS spool_dropped_events, \
     toUInt64(sum(unknown_country)) AS unknown_country \
     FROM {db}.sensor_reports GROUP BY sensor_id ORDER BY sensor_id";

/// Active day partitions of a table on this node (retention).
pub const TABLE_PARTITIONS: &str = "SELECT DISTINCT partition FROM system.parts \
     WHERE database = ? AND table = ? AND active ORDER BY partition";
/// Drops one day partition (`{table}` is a schema table name, `?` the day as YYYYMMDD).
pub const DROP_PARTITION: &str = "ALTER TABLE {db}.{table} DROP PARTITION ?";

/// Deletes one day's rows from a month-partitioned table (`{table}`; `?` the day as YYYYMMDD):
/// a mutation, done in the background ([`MUTATIONS_PENDING`]).
pub const DELETE_DAY: &str = "ALTER TABLE {db}.{table} DELETE WHERE toYYYYMMDD(bucket) = ?";
/// Mutations of a table not done yet. Binds: database, table.
pub const MUTATIONS_PENDING: &str = "SELECT count() FROM system.mutations \
     WHERE database = ? AND table = ? AND is_done = 0";

/// Recomputes one day of a rollup table from the raw events (after its partition was
/// dropped): `{table}`, `{bucket}`, `{keys}` and `{aggregates}` come from
/// [`crate::schema::ROLLUPS`], `{source}` from the layout, `?` is the day as YYYYMMDD. Same
/// expressions as the materialized views (a day's buckets, daily ones too, lie in that day).
pub const REBUILD_ROLLUP_DAY: &str = "INSERT INTO {db}.{table} \
     SELECT {bucket}(ts) AS bucket, {keys}, {aggregates} \
     FROM {db}.{source} WHERE toYYYYMMDD(ts) = ? \
     GROUP BY bucket, {keys}";

/// Port digests due: the days in `[?, ?)` with a (sensor, protocol) whose packets differ from
/// its latest digest's total (never sealed, or events arrived or were rebuilt since). Binds: from,
/// to, from, to (Unix seconds, whole days).
pub const DIGESTS_DUE: &str = "SELECT toUInt32(bucket) AS day FROM (\
     SELECT bucket, sensor_id, proto, sum(packets) AS x FROM {db}.scan_sensor_totals_1d \
     WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) GROUP BY bucket, sensor_id, proto) \
     AS current ANY LEFT JOIN (SELECT bucket, sensor_id, proto, argMax(total, sealed) AS total \
     FROM {db}.scan_port_digests_1d WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) \
     GROUP BY bucket, sensor_id, proto) AS sealed USING (bucket, sensor_id, proto) \
     WHERE x != total GROUP BY bucket ORDER BY bucket";

/// Seals one day's port digests from `{source}` (`scan_ports_1d` per sensor, with `{sensor}` =
/// `sensor_id`; `scan_port_totals_1d` over all sensors, with `{sensor}` = `''`), from one read
/// of the day (so the total and the ports agree): per sensor and protocol, the ports sorted by
/// packets, the first K kept. Binds: sealed (Unix microseconds), K, K + 1, K, K, the day (Unix
/// seconds).
pub const SEAL_DIGESTS: &str = "INSERT INTO {db}.scan_port_digests_1d \
     (bucket, sensor_id, proto, sealed, total, rest_max, ports, packets) \
     SELECT bucket, sensor_id, proto, toUInt64(?) AS sealed, arraySum(ps) AS total, \
     if(length(ps) > ?, ps[?], 0) AS rest_max, arraySlice(arrayMap(x -> x.1, s), 1, ?) AS ports, \
     arraySlice(ps, 1, ?) AS packets \
     FROM (SELECT bucket, sensor_id, proto, arrayReverseSort(x -> x.2, groupArray((dport, p))) AS s, \
           arrayMap(x -> x.2, s) AS ps \
           FROM (SELECT bucket, {sensor} AS sensor_id, proto, dport, sum(packets) AS p \
                 FROM {db}.{source} WHERE bucket = toDateTime(?) \
                 GROUP BY bucket, sensor_id, proto, dport) \
           GROUP BY bucket, sensor_id, proto)";

/// Read API: packets and unique sources per 5-minute bucket in `[from, to)` (Unix seconds).
pub const READ_SERIES_5M: &str = "SELECT toUInt32(bucket) AS t, countMerge(packets) AS packets, \
     uniqMerge(sources) AS sources FROM {db}.scan_rollup_5m \
     WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) GROUP BY bucket ORDER BY bucket";
/// Read API: top destination ports by packets over hourly rollups in `[from, to)`.
pub const READ_TOP_PORTS: &str = "SELECT proto, dport, countMerge(packets) AS packets, \
     uniqMerge(sources) AS sources FROM {db}.scan_rollup_1h \
     WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) \
     GROUP BY proto, dport ORDER BY packets DESC, proto, dport LIMIT ?";
/// Read API: top source countries over hourly rollups in `[from, to)`.
pub const READ_TOP_COUNTRIES: &str = "SELECT country, countMerge(packets) AS packets, \
     uniqMerge(sources) AS sources FROM {db}.scan_rollup_1h \
     WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?) \
     GROUP BY country ORDER BY packets DESC, country LIMIT ?";
/// Read API: per-source scan activity in `[from, to)` for a daily report (IODEF export);
/// addresses as text (IPv4 without the `::ffff:` prefix). Published sources only.
pub const READ_DAILY_SOURCES: &str = "SELECT \
     replaceRegexpOne(IPv6NumToString(src), '^::ffff:', '') AS source, proto, dport, \
     any(country) AS country, count() AS packets, toUInt32(min(ts)) AS first_seen, \
     toUInt32(max(ts)) AS last_seen, groupBitOr(tags) AS tags \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND class = 'scan' \
     AND withheld = 0 \
     GROUP BY src, proto, dport ORDER BY packets DESC, source, proto, dport LIMIT ?";
/// Analysts: the withheld sources of `[from, to)` (any class) with their reason
/// ([`crate::sources::Withheld`] code), packets, first and last seen, sensors and ports, most
/// packets first. Binds: from, to, limit.
pub const WITHHELD_SOURCES: &str = "SELECT \
     replaceRegexpOne(IPv6NumToString(src), '^::ffff:', '') AS source, withheld, \
     count() AS packets, toUInt32(min(ts)) AS first_seen, toUInt32(max(ts)) AS last_seen, \
     uniqExact(sensor_id) AS sensors, uniqExact(proto, dport) AS ports \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND withheld != 0 \
     GROUP BY src, withheld ORDER BY packets DESC, source, withheld LIMIT ?";
/// Analysts: events and distinct sources of `[from, to)` by withheld reason (0: published).
/// Binds: from, to.
pub const WITHHELD_COUNTS: &str = "SELECT withheld, count() AS events, \
     uniqExact(src) AS sources FROM {db}.scan_events \
     WHERE ts >= toDateTime(?) AND ts < toDateTime(?) GROUP BY withheld ORDER BY withheld";
/// Totals over raw events (tests and operators compare them with the rollups).
pub const RAW_TOTALS: &str = "SELECT count() AS packets, uniqExact(src) AS sources \
     FROM {db}.scan_events";
/// Totals over the 5-minute rollups.
pub const ROLLUP_TOTALS: &str = "SELECT countMerge(packets) AS packets \
     FROM {db}.scan_rollup_5m";

// ---- IODEF exchange (see `teiten-exchange`) ----

/// The scan events of one partner-day from every source country, in the order they are
/// written (by source, then time; the rest makes the order total, so a re-export gives the
/// same bytes). The destination (sensor) address is deliberately not selected, and withheld
/// sources (forged, special-purpose, a sensor's) never are.
pub const EXPORT_EVENTS_ALL: &str = "SELECT src, sport, dport, proto, toUInt32(ts) AS t, usec \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND class = 'scan' \
     AND withheld = 0 \
     ORDER BY src, t, usec, proto, sport, dport, sensor_id, epoch, batch_seq, idx";
/// [`EXPORT_EVENTS_ALL`] limited to source countries (an array of alpha-2 codes).
pub const EXPORT_EVENTS_COUNTRIES: &str =
    "SELECT src, sport, dport, proto, toUInt32(ts) AS t, usec \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND class = 'scan' \
     AND withheld = 0 AND has(?, toString(country)) \
     ORDER BY src, t, usec, proto, sport, dport, sensor_id, epoch, batch_seq, idx";
/// Internal reports detected in `[from, to)` with one of the given TLP labels.
pub const EXPORT_REPORTS: &str = "SELECT id, toUInt32(received) AS received, \
     toUInt32(detected) AS detected, reporter, source, host, category, description, addresses, \
     countries, ports, protocol, hashes, urls, tlp, toString(colour) AS colour, rules \
     FROM {db}.internal_reports WHERE detected >= toDateTime(?) AND detected < toDateTime(?) \
     AND has(?, tlp) ORDER BY detected, id";
/// Columns of an exchange log row.
pub const EXCHANGE_LOG_INSERT_COLUMNS: &str = "partner, day, revision, file, sha256, events, \
     sources, reports, bytes, generated, status, attempts, error, version";
/// The current state of every partner-day in `[from_day, to_day]` (YYYYMMDD), newest first.
pub const EXCHANGE_STATUS: &str = "SELECT partner, day, argMax(revision, version) AS revision, \
     argMax(file, version) AS file, argMax(sha256, version) AS sha256, \
     argMax(events, version) AS events, argMax(sources, version) AS sources, \
     argMax(reports, version) AS reports, argMax(bytes, version) AS bytes, \
     toUInt32(argMax(generated, version)) AS generated, \
     toString(argMax(status, version)) AS status, argMax(attempts, version) AS attempts, \
     argMax(error, version) AS error, toUInt32(intDiv(max(version), 1000000)) AS updated \
     FROM {db}.exchange_log WHERE day >= ? AND day <= ? \
     GROUP BY partner, day ORDER BY day DESC, partner";
/// Whether a file with this content hash was imported before, and how.
pub const IMPORT_BY_SHA: &str = "SELECT toString(status) AS status, partner, reason, incidents, \
     indicators FROM {db}.iodef_imports WHERE sha256 = ? ORDER BY received LIMIT 1";
/// Indicator numbers already stored for a file (an import that died half-way).
pub const IMPORT_STORED_INDICATORS: &str = "SELECT n FROM {db}.iodef_indicators WHERE sha256 = ?";
/// Columns of an import row.
pub const IODEF_IMPORTS_INSERT_COLUMNS: &str = "sha256, partner, name, received, iodef_version, \
     status, reason, incidents, indicators";
/// Columns of an indicator row.
pub const IODEF_INDICATORS_INSERT_COLUMNS: &str = "sha256, n, partner, incident, restriction, \
     category, time, role, address, addr, proto, ports";
/// Recent imports, newest first.
pub const IMPORTS_RECENT: &str = "SELECT sha256, partner, name, toUInt32(received) AS received, \
     iodef_version, toString(status) AS status, reason, incidents, indicators \
     FROM {db}.iodef_imports ORDER BY received DESC, sha256 LIMIT ?";
/// Whether a reporter's report id is stored (ids are per reporter). Binds: reporter, id.
pub const REPORT_EXISTS: &str =
    "SELECT count() FROM {db}.internal_reports WHERE reporter = ? AND id = ?";
/// Reports on one affected host detected at or after a time (triage repetition rules).
pub const HOST_REPORTS_SINCE: &str = "SELECT count() FROM {db}.internal_reports \
     WHERE host = ? AND detected >= toDateTime(?)";
/// Columns of an internal report row.
pub const INTERNAL_REPORTS_INSERT_COLUMNS: &str = "id, received, detected, reporter, source, \
     host, category, description, addresses, countries, ports, protocol, hashes, urls, tlp, \
     colour, rules";
/// Recent internal reports, newest first.
pub const REPORTS_RECENT: &str = "SELECT id, toUInt32(received) AS received, \
     toUInt32(detected) AS detected, reporter, source, host, category, description, addresses, \
     countries, ports, protocol, hashes, urls, tlp, toString(colour) AS colour, rules \
     FROM {db}.internal_reports ORDER BY detected DESC, id LIMIT ?";
/// One internal report of one reporter. Binds: reporter, id.
pub const REPORT_BY_ID: &str = "SELECT id, toUInt32(received) AS received, \
     toUInt32(detected) AS detected, reporter, source, host, category, description, addresses, \
     countries, ports, protocol, hashes, urls, tlp, toString(colour) AS colour, rules \
     FROM {db}.internal_reports WHERE reporter = ? AND id = ? LIMIT 1";
/// What the sensors saw of one source address (as text, IPv4 as `::ffff:a.b.c.d`), with the
/// gravest reason it was withheld (0: published).
pub const CORRELATE_SIGHTINGS: &str =
    "SELECT count() AS packets, toUInt32(min(ts)) AS first_seen, \
     toUInt32(max(ts)) AS last_seen, uniqExact(dport) AS ports, uniqExact(sensor_id) AS sensors, \
     max(withheld) AS withheld \
     FROM {db}.scan_events WHERE src = IPv6StringToNum(?)";
/// The ports one source address probed most.
pub const CORRELATE_PORTS: &str = "SELECT proto, dport, count() AS packets \
     FROM {db}.scan_events WHERE src = IPv6StringToNum(?) \
     GROUP BY proto, dport ORDER BY packets DESC, proto, dport LIMIT 20";
/// Imported partner indicators naming one address.
pub const CORRELATE_IMPORTS: &str = "SELECT partner, incident, toUInt32(time) AS time, category, \
     toString(role) AS role, ports, restriction FROM {db}.iodef_indicators \
     WHERE addr = IPv6StringToNum(?) ORDER BY time DESC, partner, incident LIMIT 100";
/// Internal reports naming one address (as indicator or affected host).
pub const CORRELATE_REPORTS: &str = "SELECT id, toUInt32(detected) AS detected, category, \
     toString(colour) AS colour, host, tlp FROM {db}.internal_reports \
     WHERE has(addresses, ?) OR host = ? ORDER BY detected DESC, id LIMIT 100";

/// Puts the database name into a template.
pub fn sql(template: &str, db: &str) -> String {
    template.replace("{db}", db)
}

/// Every query above with sample values in place of `?`, for the compatibility test
/// (`teiten-aggregator schema --print-sql`).
pub const ALL: &[(&str, &[&str])] = &[
    (SERVER_VERSION, &[]),
    (DATABASE_EXISTS, &["'teiten'"]),
    (TABLES_IN_DATABASE, &["'teiten'"]),
    (COLUMN_EXISTS, &["'teiten'", "'scan_events'", "'withheld'"]),
    (SCHEMA_TABLES, &["'teiten'"]),
    (SCHEMA_COLUMNS, &["'teiten'"]),
    (BATCH_ROWS, &["'tokyo-1'", "7", "3"]),
    (BATCH_INDEXES, &["'tokyo-1'", "7", "3"]),
    (SENSORS_CURRENT, &[]),
    (SENSOR_STATUS, &[]),
    (TABLE_PARTITIONS, &["'teiten'", "'scan_events'"]),
    (MUTATIONS_PENDING, &["'teiten'", "'scan_ports_1h'"]),
    (
        DIGESTS_DUE,
        &["1763683200", "1763769600", "1763683200", "1763769600"],
    ),
    (READ_SERIES_5M, &["1763683200", "1763769600"]),
    (READ_TOP_PORTS, &["1763683200", "1763769600", "10"]),
    (READ_TOP_COUNTRIES, &["1763683200", "1763769600", "10"]),
    (READ_DAILY_SOURCES, &["1763683200", "1763769600", "100"]),
    (WITHHELD_SOURCES, &["1763683200", "1763769600", "100"]),
    (WITHHELD_COUNTS, &["1763683200", "1763769600"]),
    (RAW_TOTALS, &[]),
    (ROLLUP_TOTALS, &[]),
    (EXPORT_EVENTS_ALL, &["1763683200", "1763769600"]),
    (
        EXPORT_EVENTS_COUNTRIES,
        &["1763683200", "1763769600", "['AU','KR']"],
    ),
    (
        EXPORT_REPORTS,
        &["1763683200", "1763769600", "['clear','green','amber']"],
    ),
    (EXCHANGE_STATUS, &["20251120", "20251122"]),
    (IMPORT_BY_SHA, &["'ab12'"]),
    (IMPORT_STORED_INDICATORS, &["'ab12'"]),
    (IMPORTS_RECENT, &["50"]),
    (REPORT_EXISTS, &["'ids-1'", "'r1'"]),
    (HOST_REPORTS_SINCE, &["'192.0.2.10'", "1763683200"]),
    (REPORTS_RECENT, &["50"]),
    (REPORT_BY_ID, &["'ids-1'", "'r1'"]),
    (CORRELATE_SIGHTINGS, &["'::ffff:1.0.0.1'"]),
    (CORRELATE_PORTS, &["'::ffff:1.0.0.1'"]),
    (CORRELATE_IMPORTS, &["'::ffff:1.0.0.1'"]),
    (CORRELATE_REPORTS, &["'1.0.0.1'", "'1.0.0.1'"]),
];

/// Fills a template's `?` with sample values.
pub fn with_samples(template: &str, values: &[&str], db: &str) -> String {
    let mut out = String::new();
    let mut values = values.iter();
    for (i, part) in sql(template, db).split('?').enumerate() {
        if i > 0 {
            out.push_str(values.next().copied().unwrap_or("NULL"));
        }
        out.push_str(part);
    }
    out
}

/// Sample rows for the compatibility test: (table, columns, VALUES list), in the column order
/// of the aggregator's row types.
pub const SAMPLE_INSERTS: &[(&str, &str, &str)] = &[
    (
        "scan_events",
        SCAN_EVENTS_INSERT_COLUMNS,
        "('tokyo-1', 7, 3, 0, toDateTime(1763700000), 5, 6, \
         toFixedString(IPv6StringToNum('::ffff:1.0.0.1'), 16), \
         toFixedString(IPv6StringToNum('::ffff:198.18.0.1'), 16), \
         40000, 23, 2, 54, 54321, 40, 12345, 1024, 'scan', 1, 'AU', 0), \
         ('tokyo-1', 7, 3, 1, toDateTime(1763700001), 6, 17, \
         toFixedString(IPv6StringToNum('2001:2::1'), 16), \
         toFixedString(IPv6StringToNum('2001:db8::1'), 16), \
         53, 53, 0, 60, 0, 60, 0, 0, 'backscatter', 0, 'JP', 2)",
    ),
    (
        "sensors",
        SENSORS_INSERT_COLUMNS,
        "('tokyo-1', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 0, \
         toDateTime(1763700000), 1)",
    ),
    (
        "exchange_log",
        EXCHANGE_LOG_INSERT_COLUMNS,
        "('kr-cert', 20251121, 1, 'teiten-kr-cert-2025-11-21.xml', 'ab12', 10, 3, 0, 4096, \
         toDateTime(1763770000), 'generated', 0, '', 1763770000000000)",
    ),
    (
        "iodef_imports",
        IODEF_IMPORTS_INSERT_COLUMNS,
        "('ab12', 'kr-cert', 'incident.xml', toDateTime(1763770000), 2, 'stored', '', 1, 1)",
    ),
    (
        "iodef_indicators",
        IODEF_INDICATORS_INSERT_COLUMNS,
        "('ab12', 0, 'kr-cert', 'KR-1', 'amber', 'scanning', toDateTime(1763700000), 'source', \
         '1.0.0.1', toFixedString(IPv6StringToNum('::ffff:1.0.0.1'), 16), 6, '22,23')",
    ),
    (
        "internal_reports",
        INTERNAL_REPORTS_INSERT_COLUMNS,
        "('r1', toDateTime(1763700100), toDateTime(1763700000), 'ids-1', 'ids', '192.0.2.10', \
         'intrusion', 'shell on web server', ['1.0.0.1'], ['AU'], [22], 6, [], [], 'amber', \
         'red', 'intrusion-is-red')",
    ),
    (
        "sensor_reports",
        SENSOR_REPORTS_INSERT_COLUMNS,
        "('tokyo-1', 7, 3, toDateTime(1763700002), 1763700001000000, 2, 0, 10, 1, 2, 3, 0, 4096, 0)",
    ),
];
