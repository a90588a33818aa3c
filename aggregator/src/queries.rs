//! Every non-DDL statement the project runs, in one place (DDL is in [`crate::schema`]).
//!
//! `{db}` stands for the configured database (a checked identifier, see
//! [`crate::config::Config::validate`]); `?` are values bound by the `clickhouse` crate, which
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

/// Rows already stored for a batch (deduplication).
pub const BATCH_ROWS: &str = "SELECT count() FROM {db}.scan_events \
     WHERE sensor_id = ? AND epoch = ? AND batch_seq = ?";
/// The event indexes already stored for a partly stored batch (repair).
pub const BATCH_INDEXES: &str = "SELECT idx FROM {db}.scan_events \
     WHERE sensor_id = ? AND epoch = ? AND batch_seq = ?";

/// Insert targets: table and column list (the crate builds `INSERT INTO t (cols) FORMAT
/// RowBinary` from the row types, whose fields are in this order).
pub const SCAN_EVENTS_INSERT_COLUMNS: &str = "sensor_id, epoch, batch_seq, idx, ts, usec, proto, \
     src, dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country";
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

/// Recomputes one day of a rollup table from the raw events (after its partition was
/// dropped): `{table}`, `{bucket}` and `{source}` come from [`crate::schema::ROLLUPS`] and the
/// layout, `?` is the day as YYYYMMDD. Same expressions as the materialized views.
pub const REBUILD_ROLLUP_DAY: &str = "INSERT INTO {db}.{table} \
     SELECT {bucket}(ts) AS bucket, proto, dport, country, sensor_id, \
     countState() AS packets, uniqState(src) AS sources \
     FROM {db}.{source} WHERE toYYYYMMDD(ts) = ? \
     GROUP BY bucket, proto, dport, country, sensor_id";

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
/// addresses as text (IPv4 without the `::ffff:` prefix).
pub const READ_DAILY_SOURCES: &str = "SELECT \
     replaceRegexpOne(IPv6NumToString(src), '^::ffff:', '') AS source, proto, dport, \
     any(country) AS country, count() AS packets, toUInt32(min(ts)) AS first_seen, \
     toUInt32(max(ts)) AS last_seen, groupBitOr(tags) AS tags \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND class = 'scan' \
     GROUP BY src, proto, dport ORDER BY packets DESC, source, proto, dport LIMIT ?";
/// Totals over raw events (tests and operators compare them with the rollups).
pub const RAW_TOTALS: &str = "SELECT count() AS packets, uniqExact(src) AS sources \
     FROM {db}.scan_events";
/// Totals over the 5-minute rollups.
pub const ROLLUP_TOTALS: &str = "SELECT countMerge(packets) AS packets \
     FROM {db}.scan_rollup_5m";

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
    (BATCH_ROWS, &["'tokyo-1'", "7", "3"]),
    (BATCH_INDEXES, &["'tokyo-1'", "7", "3"]),
    (SENSORS_CURRENT, &[]),
    (SENSOR_STATUS, &[]),
    (TABLE_PARTITIONS, &["'teiten'", "'scan_events'"]),
    (READ_SERIES_5M, &["1763683200", "1763769600"]),
    (READ_TOP_PORTS, &["1763683200", "1763769600", "10"]),
    (READ_TOP_COUNTRIES, &["1763683200", "1763769600", "10"]),
    (READ_DAILY_SOURCES, &["1763683200", "1763769600", "100"]),
    (RAW_TOTALS, &[]),
    (ROLLUP_TOTALS, &[]),
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
         40000, 23, 2, 54, 54321, 40, 12345, 1024, 'scan', 1, 'AU'), \
         ('tokyo-1', 7, 3, 1, toDateTime(1763700001), 6, 17, \
         toFixedString(IPv6StringToNum('2001:2::1'), 16), \
         toFixedString(IPv6StringToNum('2001:db8::1'), 16), \
         53, 53, 0, 60, 0, 60, 0, 0, 'backscatter', 0, 'JP')",
    ),
    (
        "sensors",
        SENSORS_INSERT_COLUMNS,
        "('tokyo-1', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 0, \
         toDateTime(1763700000), 1)",
    ),
    (
        "sensor_reports",
        SENSOR_REPORTS_INSERT_COLUMNS,
        "('tokyo-1', 7, 3, toDateTime(1763700002), 1763700001000000, 2, 0, 10, 1, 2, 3, 0, 4096, 0)",
    ),
];
