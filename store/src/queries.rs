//! Every non-DDL statement the aggregator, the exchange and the store run, each built with its
//! bound values by one function returning a [`Statement`] (DDL is in [`crate::schema`], the
//! dashboard's reads in [`crate::reads`]).
//!
//! `{db}` stands for the configured database (a checked identifier, see
//! `Config::validate` of the aggregator); `?` are values bound by the `clickhouse` crate, which
//! escapes them on the client (18.16 has no server-side parameters). [`samples`] builds every
//! statement with sample values for the chdb compatibility test (`schema --print-sql`).
//!
//! See `aggregator/README.md` for the tables and columns.

use crate::schema::{month_partitioned, Rollup};
use crate::statement::{Statement, Value};

/// A trivial query (the health probe).
const PING: &str = "SELECT 1";
/// Server version (checked before migrating).
const SERVER_VERSION: &str = "SELECT version()";
/// Whether a database exists.
const DATABASE_EXISTS: &str = "SELECT count() FROM system.databases WHERE name = ?";
/// Tables and views of a database (the migration check).
const TABLES_IN_DATABASE: &str = "SELECT name FROM system.tables WHERE database = ?";
/// Whether a table has a column (the migration's column steps). Binds: database, table, column.
const COLUMN_EXISTS: &str =
    "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?";

/// The tables and views of a database as the server has them, for the migration's comparison
/// with the definition ([`crate::schema_diff`]). Binds: database.
const SCHEMA_TABLES: &str = "SELECT name, engine, engine_full, partition_key, sorting_key, \
     create_table_query FROM system.tables WHERE database = ?";
/// The columns of a database's tables, each table's in its order (the comparison). Binds:
/// database.
const SCHEMA_COLUMNS: &str = "SELECT table, name, type, default_kind, default_expression \
     FROM system.columns WHERE database = ?";

/// Rows already stored for a batch (deduplication).
const BATCH_ROWS: &str = "SELECT count() FROM {db}.scan_events \
     WHERE sensor_id = ? AND epoch = ? AND batch_seq = ?";
/// The event indexes already stored for a partly stored batch (repair).
const BATCH_INDEXES: &str = "SELECT idx FROM {db}.scan_events \
     WHERE sensor_id = ? AND epoch = ? AND batch_seq = ?";

/// Insert targets: table and column list (the crate builds `INSERT INTO t (cols) FORMAT
/// RowBinary` from the row types, whose fields are in this order). The raw events' are
/// [`crate::events::EVENT_COLUMNS`].
/// Columns of a sensor registry row.
pub const SENSORS_INSERT_COLUMNS: &str = "sensor_id, token_sha256, revoked, changed, version";
/// Columns of an AS name row.
pub const AS_NAMES_INSERT_COLUMNS: &str = "asn, name, version";
/// Columns of a sensor report row.
pub const SENSOR_REPORTS_INSERT_COLUMNS: &str = "sensor_id, epoch, batch_seq, received, \
     sealed_us, events, unknown_country, packets_captured, kernel_drops, events_recorded, \
     filtered, malformed, spool_bytes, spool_dropped_events";

/// The current state of every sensor (latest registry row wins).
const SENSORS_CURRENT: &str = "SELECT sensor_id, argMax(token_sha256, version) AS token, \
     argMax(revoked, version) AS revoked, toUInt32(argMax(changed, version)) AS changed \
     FROM {db}.sensors GROUP BY sensor_id ORDER BY sensor_id";
/// What sensors reported: last seen, events in the last 5 minutes, latest counters (each
/// batch's report once, should an INSERT whose answer was lost have stored it twice).
const SENSOR_STATUS: &str = "SELECT sensor_id, toUInt32(max(received)) AS last_seen, \
     toUInt64(sumIf(events, received >= now() - 300)) AS events_5m, \
     argMax(kernel_drops, (sealed_us, batch_seq)) AS kernel_drops, \
     argMax(spool_bytes, (sealed_us, batch_seq)) AS spool_bytes, \
     argMax(spool_dropped_events, (sealed_us, batch_seq)) AS spool_dropped_events, \
     toUInt64(sum(unknown_country)) AS unknown_country \
     FROM (SELECT sensor_id, received, events, sealed_us, batch_seq, kernel_drops, spool_bytes, \
     spool_dropped_events, unknown_country FROM {db}.sensor_reports \
     LIMIT 1 BY sensor_id, epoch, batch_seq) GROUP BY sensor_id ORDER BY sensor_id";

/// Active day partitions of a table on this node (retention).
const TABLE_PARTITIONS: &str = "SELECT DISTINCT partition FROM system.parts \
     WHERE database = ? AND table = ? AND active ORDER BY partition";
/// The node's `{shard}` macro (the replicas of one shard share it): no row without one.
const SHARD_MACRO: &str = "SELECT substitution FROM system.macros WHERE macro = 'shard'";
/// Drops one day partition (`{table}` is a schema table name, `?` the day as YYYYMMDD).
const DROP_PARTITION: &str = "ALTER TABLE {db}.{table} DROP PARTITION ?";

/// Deletes one day's rows from a month-partitioned table (`{table}`; `?` the day as YYYYMMDD):
/// a mutation, done in the background ([`MUTATIONS_PENDING`]).
const DELETE_DAY: &str = "ALTER TABLE {db}.{table} DELETE WHERE toYYYYMMDD(bucket) = ?";
/// Mutations of a table not done yet. Binds: database, table.
const MUTATIONS_PENDING: &str = "SELECT count() FROM system.mutations \
     WHERE database = ? AND table = ? AND is_done = 0";

/// Recomputes one day of a rollup table from the raw events (after its partition was
/// dropped): `{table}`, `{bucket}`, `{keys}` and `{aggregates}` come from
/// [`crate::schema::ROLLUPS`], `{source}` from the layout, `?` is the day as YYYYMMDD. Same
/// expressions as the materialized views (a day's buckets, daily ones too, lie in that day).
const REBUILD_ROLLUP_DAY: &str = "INSERT INTO {db}.{table} \
     SELECT {bucket}(ts) AS bucket, {keys}, {aggregates} \
     FROM {db}.{source} WHERE toYYYYMMDD(ts) = ? \
     GROUP BY bucket, {keys}";

/// Port digests due: the days in `[?, ?)` with a (sensor, protocol) whose packets differ from
/// its latest digest's total (never sealed, or events arrived or were rebuilt since). Binds: from,
/// to, from, to (Unix seconds, whole days).
const DIGESTS_DUE: &str = "SELECT toUInt32(bucket) AS day FROM (\
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
const SEAL_DIGESTS: &str = "INSERT INTO {db}.scan_port_digests_1d \
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

/// Analysts: the withheld sources of `[from, to)` (any class) with their reason
/// ([`crate::sources::Withheld`] code), packets, first and last seen, sensors and ports, most
/// packets first. Binds: from, to, limit.
const WITHHELD_SOURCES: &str = "SELECT \
     replaceRegexpOne(IPv6NumToString(src), '^::ffff:', '') AS source, withheld, \
     count() AS packets, toUInt32(min(ts)) AS first_seen, toUInt32(max(ts)) AS last_seen, \
     uniqExact(sensor_id) AS sensors, uniqExact(proto, dport) AS ports \
     FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND withheld != 0 \
     GROUP BY src, withheld ORDER BY packets DESC, source, withheld LIMIT ?";
/// Analysts: events and distinct sources of `[from, to)` by withheld reason (0: published).
/// Binds: from, to.
const WITHHELD_COUNTS: &str = "SELECT withheld, count() AS events, \
     uniqExact(src) AS sources FROM {db}.scan_events \
     WHERE ts >= toDateTime(?) AND ts < toDateTime(?) GROUP BY withheld ORDER BY withheld";

// ---- IODEF exchange (see `teiten-exchange`) ----

/// The statements of one partner-day: `events` (one row a packet) or `aggregates` (one row a
/// source, protocol and port), from the day's scan events with withheld and non-scan events
/// left out, research scanners' events (tag bit 64, `Tags::RESEARCH`) too unless the third
/// bind is 1, and `$filter` added to that WHERE clause. Binds: from, to, research, then the
/// filter's.
macro_rules! partner_day_sql {
    ($kind:ident, constituency) => {
        // Countries, ASNs, then the prefixes' first and last addresses (hex of the stored 16
        // bytes: equal-length upper-case hex compares as the bytes do).
        partner_day_sql!(
            $kind,
            " AND (has(?, toString(country)) OR has(?, toUInt64(src_asn)) \
             OR arrayExists((lo, hi) -> hex(src) >= lo AND hex(src) <= hi, ?, ?))"
        )
    };
    (events, $filter:literal) => {
        partner_day_sql!(
            "SELECT src, sport, dport, proto, toUInt32(ts) AS t, usec, country, src_asn",
            $filter,
            " ORDER BY src, t, usec, proto, sport, dport, sensor_id, epoch, batch_seq, idx"
        )
    };
    (aggregates, $filter:literal) => {
        partner_day_sql!(
            "SELECT src, proto, if(proto IN (1, 58), toUInt16(0), dport) AS port, \
             any(country) AS cc, any(src_asn) AS asn, count() AS packets, \
             min(toUInt64(ts) * 1000000 + usec) AS first_us, \
             max(toUInt64(ts) * 1000000 + usec) AS last_us, \
             uniqExact(dst) AS destinations",
            $filter,
            " GROUP BY src, proto, port ORDER BY src, proto, port"
        )
    };
    ($select:literal, $filter:literal, $tail:literal) => {
        concat!(
            $select,
            " FROM {db}.scan_events WHERE ts >= toDateTime(?) AND ts < toDateTime(?) \
             AND class = 'scan' AND withheld = 0 AND (bitAnd(tags, 64) = 0 OR ?)",
            $filter,
            $tail
        )
    };
}

/// The scan events of one partner-day from every source, in the order they are written (by
/// source, then time; the rest makes the order total, so a re-export gives the same bytes). The
/// destination (sensor) address is deliberately not selected, and withheld sources (forged,
/// special-purpose, a sensor's) never are.
const EXPORT_EVENTS_ALL: &str = partner_day_sql!(events, "");
/// [`EXPORT_EVENTS_ALL`] limited to a [`Constituency`].
const EXPORT_EVENTS_OF: &str = partner_day_sql!(events, constituency);

/// The aggregated records of one partner-day (`records = "aggregate"`): one row per source
/// address, protocol and destination port (ICMP: port 0, the port columns hold type and code),
/// with the packets, the first and last time seen (microseconds since the epoch) and how many
/// distinct destinations were probed (a count only: the addresses are never selected). The
/// GROUP BY runs in ClickHouse and the rows stream in the order they are written. Withheld and
/// non-scan events are left out as in [`EXPORT_EVENTS_ALL`]. Binds: from, to, research.
const EXPORT_AGGREGATES_ALL: &str = partner_day_sql!(aggregates, "");
/// [`EXPORT_AGGREGATES_ALL`] limited to a [`Constituency`].
const EXPORT_AGGREGATES_OF: &str = partner_day_sql!(aggregates, constituency);
/// Internal reports detected in `[from, to)` with one of the given TLP labels.
const EXPORT_REPORTS: &str = "SELECT id, toUInt32(received) AS received, \
     toUInt32(detected) AS detected, reporter, source, host, category, description, addresses, \
     countries, ports, protocol, hashes, urls, tlp, toString(colour) AS colour, rules \
     FROM {db}.internal_reports WHERE detected >= toDateTime(?) AND detected < toDateTime(?) \
     AND has(?, tlp) ORDER BY detected, id";
/// Columns of an exchange log row.
pub const EXCHANGE_LOG_INSERT_COLUMNS: &str = "partner, day, revision, file, sha256, events, \
     sources, reports, bytes, generated, status, attempts, error, version";
/// The current state of every partner-day in `[from_day, to_day]` (YYYYMMDD), newest first.
const EXCHANGE_STATUS: &str = "SELECT partner, day, argMax(revision, version) AS revision, \
     argMax(file, version) AS file, argMax(sha256, version) AS sha256, \
     argMax(events, version) AS events, argMax(sources, version) AS sources, \
     argMax(reports, version) AS reports, argMax(bytes, version) AS bytes, \
     toUInt32(argMax(generated, version)) AS generated, \
     toString(argMax(status, version)) AS status, argMax(attempts, version) AS attempts, \
     argMax(error, version) AS error, toUInt32(intDiv(max(version), 1000000)) AS updated \
     FROM {db}.exchange_log WHERE day >= ? AND day <= ? \
     GROUP BY partner, day ORDER BY day DESC, partner";
/// Whether a file with this content hash was imported before, and how.
const IMPORT_BY_SHA: &str = "SELECT toString(status) AS status, partner, reason, incidents, \
     indicators FROM {db}.iodef_imports WHERE sha256 = ? ORDER BY received LIMIT 1";
/// Indicator numbers already stored for a file (an import that died half-way).
const IMPORT_STORED_INDICATORS: &str = "SELECT n FROM {db}.iodef_indicators WHERE sha256 = ?";
/// Columns of an import row.
pub const IODEF_IMPORTS_INSERT_COLUMNS: &str = "sha256, partner, name, received, iodef_version, \
     status, reason, incidents, indicators";
/// Columns of an indicator row.
pub const IODEF_INDICATORS_INSERT_COLUMNS: &str = "sha256, n, partner, incident, restriction, \
     category, time, role, address, addr, proto, ports";
/// Recent imports, newest first.
const IMPORTS_RECENT: &str = "SELECT sha256, partner, name, toUInt32(received) AS received, \
     iodef_version, toString(status) AS status, reason, incidents, indicators \
     FROM {db}.iodef_imports ORDER BY received DESC, sha256 LIMIT ?";
/// Whether a reporter's report id is stored (ids are per reporter). Binds: reporter, id.
const REPORT_EXISTS: &str =
    "SELECT count() FROM {db}.internal_reports WHERE reporter = ? AND id = ?";
/// Reports on one affected host detected at or after a time (triage repetition rules).
const HOST_REPORTS_SINCE: &str = "SELECT count() FROM {db}.internal_reports \
     WHERE host = ? AND detected >= toDateTime(?)";
/// Columns of an internal report row.
pub const INTERNAL_REPORTS_INSERT_COLUMNS: &str = "id, received, detected, reporter, source, \
     host, category, description, addresses, countries, ports, protocol, hashes, urls, tlp, \
     colour, rules";
/// Recent internal reports, newest first.
const REPORTS_RECENT: &str = "SELECT id, toUInt32(received) AS received, \
     toUInt32(detected) AS detected, reporter, source, host, category, description, addresses, \
     countries, ports, protocol, hashes, urls, tlp, toString(colour) AS colour, rules \
     FROM {db}.internal_reports ORDER BY detected DESC, id LIMIT ?";
/// One internal report of one reporter. Binds: reporter, id.
const REPORT_BY_ID: &str = "SELECT id, toUInt32(received) AS received, \
     toUInt32(detected) AS detected, reporter, source, host, category, description, addresses, \
     countries, ports, protocol, hashes, urls, tlp, toString(colour) AS colour, rules \
     FROM {db}.internal_reports WHERE reporter = ? AND id = ? LIMIT 1";
/// What the sensors saw of one source address (as text, IPv4 as `::ffff:a.b.c.d`), with the
/// gravest reason it was withheld (0: published), and the AS and country stored with its last
/// packet.
const CORRELATE_SIGHTINGS: &str = "SELECT count() AS packets, toUInt32(min(ts)) AS first_seen, \
     toUInt32(max(ts)) AS last_seen, uniqExact(dport) AS ports, uniqExact(sensor_id) AS sensors, \
     max(withheld) AS withheld, argMax(src_asn, ts) AS asn, \
     toString(argMax(country, ts)) AS country \
     FROM {db}.scan_events WHERE src = IPv6StringToNum(?)";
/// The ports one source address probed most.
const CORRELATE_PORTS: &str = "SELECT proto, dport, count() AS packets \
     FROM {db}.scan_events WHERE src = IPv6StringToNum(?) \
     GROUP BY proto, dport ORDER BY packets DESC, proto, dport LIMIT 20";
/// Imported partner indicators naming one address.
const CORRELATE_IMPORTS: &str = "SELECT partner, incident, toUInt32(time) AS time, category, \
     toString(role) AS role, ports, restriction FROM {db}.iodef_indicators \
     WHERE addr = IPv6StringToNum(?) ORDER BY time DESC, partner, incident LIMIT 100";
/// Internal reports naming one address (as indicator or affected host).
const CORRELATE_REPORTS: &str = "SELECT id, toUInt32(detected) AS detected, category, \
     toString(colour) AS colour, host, tlp FROM {db}.internal_reports \
     WHERE has(addresses, ?) OR host = ? ORDER BY detected DESC, id LIMIT 100";

/// Columns of a case event row.
pub const REPORT_CASES_INSERT_COLUMNS: &str = "reporter, id, version, at, event, actor, colour, \
     rules, questionnaire, employee, name, email, department, manager, token_sha256, expires, \
     answers, note";
/// Internal reports received at or after a time that have no case yet, oldest first (the
/// outer query reads a subquery, so that on a cluster the `IN` is not sent to the shards).
/// Binds: the time (Unix seconds), most rows.
const CASES_NEW: &str = "SELECT id, received, detected, reporter, source, host, category, \
     description, addresses, countries, ports, protocol, hashes, urls, tlp, colour, rules \
     FROM (SELECT id, toUInt32(received) AS received, toUInt32(detected) AS detected, reporter, \
     source, host, category, description, addresses, countries, ports, protocol, hashes, urls, \
     tlp, toString(colour) AS colour, rules FROM {db}.internal_reports \
     WHERE received >= toDateTime(?)) \
     WHERE (reporter, id) NOT IN (SELECT reporter, id FROM {db}.report_cases) \
     ORDER BY received, reporter, id LIMIT ?";
/// A case's value of `colour` or `rules`: an analyst's newest override, else the first answer
/// stored (two aggregators taking answers at once both store theirs; every reader keeps the
/// first), else the opening's.
macro_rules! case_value {
    ($column:literal) => {
        concat!(
            "if(countIf(event = 'overridden') > 0, argMaxIf(",
            $column,
            ", version, event = 'overridden'), if(countIf(event = 'answered') > 0, argMinIf(",
            $column,
            ", version, event = 'answered'), anyIf(",
            $column,
            ", event = 'opened')))"
        )
    };
}

/// The state of every case opened at or after a time that still needs something done: not
/// alerted, not overridden by an analyst, not answered green, and not a green report nobody
/// is asked about. The colour and rules are [`case_value`]'s. Only steps since the time are read: every step of
/// a case comes after its opening. Binds: the time (Unix seconds) twice, most rows.
const CASES_OPEN: &str = concat!(
    "SELECT reporter, id, \
     anyIf(questionnaire, event = 'opened') AS case_questionnaire, \
     anyIf(employee, event = 'opened') AS case_employee, \
     anyIf(name, event = 'opened') AS case_name, \
     anyIf(email, event = 'opened') AS case_email, \
     anyIf(department, event = 'opened') AS case_department, \
     anyIf(manager, event = 'opened') AS case_manager, ",
    // A string: 18.16's `if` takes no Enum8 branches.
    case_value!("toString(colour)"),
    " AS case_colour, ",
    case_value!("rules"),
    " AS case_rules, \
     toUInt32(minIf(at, event = 'opened')) AS opened, \
     countIf(event = 'sent' AND note = 'request') AS requests, \
     toUInt32(minIf(at, event = 'sent' AND note = 'request')) AS first_request, \
     countIf(event = 'sent' AND note = 'reminder') AS reminders, \
     countIf(event = 'sent' AND note = 'alert') AS alert_mails, \
     countIf(event = 'sent' AND note = 'webhook') AS alert_hooks, \
     countIf(event = 'escalated') AS escalations, \
     countIf(event = 'answered') AS answered, \
     countIf(event = 'alerted') AS alerts, \
     countIf(event = 'overridden') AS overrides, \
     countIf(event = 'send_failed') AS failures, \
     toUInt32(maxIf(at, event = 'send_failed')) AS last_failure, \
     toUInt32(maxIf(at, event = 'sent')) AS last_sent \
     FROM {db}.report_cases WHERE at >= toDateTime(?) GROUP BY reporter, id \
     HAVING opened >= ? AND alerts = 0 AND overrides = 0 \
     AND NOT (answered > 0 AND case_colour = 'green') \
     AND NOT (case_questionnaire = '' AND case_colour = 'green') \
     ORDER BY opened, reporter, id LIMIT ?"
);
/// The case a questionnaire link belongs to, by the SHA-256 of its token. Binds: the hex digest.
const CASE_BY_TOKEN: &str = "SELECT reporter, id, toUInt32(expires) AS case_expires, \
     questionnaire FROM {db}.report_cases WHERE event = 'requested' AND token_sha256 = ? \
     ORDER BY version LIMIT 1";
/// Every step of one case, oldest first. Binds: reporter, id.
const CASE_HISTORY: &str = "SELECT toUInt32(at) AS case_at, toString(event) AS case_event, \
     actor, toString(colour) AS case_colour, rules, questionnaire, employee, name, email, \
     department, manager, toUInt32(expires) AS case_expires, answers, note, version \
     FROM {db}.report_cases WHERE reporter = ? AND id = ? ORDER BY version";

/// Internal reports detected in a period with their case, grouped by month (`YYYYMM`), source,
/// category, colour (the case's, [`case_value`]; the filed colour without a case), the employee's department, the questionnaire and the stored answers.
/// The answers are the first stored. Both sides are subqueries, so that on a cluster the join runs on the initiator (18.16
/// refuses a distributed table in a distributed query's join). Binds: the period's start and
/// end (Unix seconds), the earliest case step read (the start less a week: a report's case
/// starts after its reception, which the detection time precedes), most rows.
const CASES_MONTHLY: &str = concat!(
    "SELECT toUInt32(m) AS month, source, category, \
     if(opened > 0, case_colour, filed_colour) AS colour, department, questionnaire, answers, \
     count() AS reports \
     FROM (SELECT toYYYYMM(detected) AS m, reporter, id, source, category, \
     toString(colour) AS filed_colour FROM {db}.internal_reports \
     WHERE detected >= toDateTime(?) AND detected < toDateTime(?)) AS r \
     ANY LEFT JOIN (SELECT reporter, id, countIf(event = 'opened') AS opened, ",
    case_value!("toString(colour)"),
    " AS case_colour, anyIf(department, event = 'opened') AS department, \
     anyIf(questionnaire, event = 'opened') AS questionnaire, \
     argMinIf(answers, version, event = 'answered') AS answers \
     FROM {db}.report_cases WHERE at >= toDateTime(?) GROUP BY reporter, id) AS c \
     USING (reporter, id) \
     GROUP BY month, source, category, colour, department, questionnaire, answers \
     ORDER BY month, source, category, colour, department, questionnaire, answers LIMIT ?"
);

/// Source ASes of the network rollup since a time that `as_names` does not name yet (the
/// outer query reads a subquery, so that on a cluster the `IN` is not sent to the shards:
/// 18.16 refuses a distributed table in an `IN` of a distributed query). Binds: the time (Unix
/// seconds), most rows.
const UNNAMED_ASNS: &str = "SELECT src_asn FROM (SELECT DISTINCT src_asn \
     FROM {db}.scan_networks_1h WHERE bucket >= toDateTime(?) AND src_asn != 0) \
     WHERE src_asn NOT IN (SELECT asn FROM {db}.as_names) ORDER BY src_asn LIMIT ?";

/// A statement of a template with the database in place.
fn with_db(template: &str, db: &str) -> Statement {
    Statement::new(template.replace("{db}", db))
}

/// A statement of a template naming one table (`{table}`, a schema table on this node).
fn with_table(template: &str, db: &str, table: &str) -> Statement {
    Statement::new(template.replace("{db}", db).replace("{table}", table))
}

/// A trivial query answering `1` (is the server there?).
pub fn ping() -> Statement {
    Statement::new(PING)
}

/// The server's version: one string.
pub fn server_version() -> Statement {
    Statement::new(SERVER_VERSION)
}

/// Whether database `db` exists: one count.
pub fn database_exists(db: &str) -> Statement {
    Statement::new(DATABASE_EXISTS).bind(db)
}

/// The names of the tables and views of `db`.
pub fn tables_in_database(db: &str) -> Statement {
    Statement::new(TABLES_IN_DATABASE).bind(db)
}

/// Whether `db.table` has `column`: one count.
pub fn column_exists(db: &str, table: &str, column: &str) -> Statement {
    Statement::new(COLUMN_EXISTS)
        .bind(db)
        .bind(table)
        .bind(column)
}

/// The tables and views of `db` as the server has them ([`crate::schema_diff::ServerTable`]).
pub fn schema_tables(db: &str) -> Statement {
    Statement::new(SCHEMA_TABLES).bind(db)
}

/// The columns of the tables of `db` ([`crate::schema_diff::ServerColumn`]).
pub fn schema_columns(db: &str) -> Statement {
    Statement::new(SCHEMA_COLUMNS).bind(db)
}

/// Rows already stored of one batch: one count.
pub fn batch_rows(db: &str, sensor_id: &str, epoch: u64, seq: u64) -> Statement {
    with_db(BATCH_ROWS, db)
        .bind(sensor_id)
        .bind(epoch)
        .bind(seq)
}

/// The event indexes already stored of a partly stored batch.
pub fn batch_indexes(db: &str, sensor_id: &str, epoch: u64, seq: u64) -> Statement {
    with_db(BATCH_INDEXES, db)
        .bind(sensor_id)
        .bind(epoch)
        .bind(seq)
}

/// The current state of every sensor.
pub fn sensors_current(db: &str) -> Statement {
    with_db(SENSORS_CURRENT, db)
}

/// What every sensor reported lately.
pub fn sensor_status(db: &str) -> Statement {
    with_db(SENSOR_STATUS, db)
}

/// The active partitions of `db.table` on this node.
pub fn table_partitions(db: &str, table: &str) -> Statement {
    Statement::new(TABLE_PARTITIONS).bind(db).bind(table)
}

/// The node's `{shard}` macro, if it has one.
pub fn shard_macro() -> Statement {
    Statement::new(SHARD_MACRO)
}

/// Drops one partition (a day as YYYYMMDD or a month as YYYYMM) of `db.table`.
pub fn drop_partition(db: &str, table: &str, partition: u32) -> Statement {
    with_table(DROP_PARTITION, db, table).bind(partition)
}

/// Deletes one day's rows (YYYYMMDD) of a month-partitioned `db.table` (a mutation).
pub fn delete_day(db: &str, table: &str, day: u32) -> Statement {
    with_table(DELETE_DAY, db, table).bind(day)
}

/// Mutations of `db.table` not done yet: one count.
pub fn mutations_pending(db: &str, table: &str) -> Statement {
    Statement::new(MUTATIONS_PENDING).bind(db).bind(table)
}

/// Empties one day (YYYYMMDD) of a rollup's table `table` (its name on this node) before a
/// rebuild: drops the day's partition, or deletes the day's rows where the partitions are
/// months ([`month_partitioned`]).
pub fn clear_rollup_day(db: &str, r: &Rollup, table: &str, day: u32) -> Statement {
    if month_partitioned(r.table) {
        delete_day(db, table, day)
    } else {
        drop_partition(db, table, day)
    }
}

/// Recomputes one day (YYYYMMDD) of a rollup into `table` (its name on this node) from the raw
/// events in `source` (theirs), with the view's own expressions.
pub fn rebuild_rollup_day(db: &str, r: &Rollup, table: &str, source: &str, day: u32) -> Statement {
    Statement::new(
        REBUILD_ROLLUP_DAY
            .replace("{db}", db)
            .replace("{table}", table)
            .replace("{bucket}", r.bucket())
            .replace("{keys}", r.keys)
            .replace("{aggregates}", r.aggregates)
            .replace("{source}", source),
    )
    .bind(day)
}

/// The days (Unix seconds) in `[from, to)` whose port digests are missing or out of date.
pub fn digests_due(db: &str, from: i64, to: i64) -> Statement {
    with_db(DIGESTS_DUE, db)
        .bind(from)
        .bind(to)
        .bind(from)
        .bind(to)
}

/// Seals the port digests of the day starting at `day` (Unix seconds) from `source` with the
/// sensor expression `sensor` (a pair of [`crate::digest::SEAL_SOURCES`]), as of `sealed_us`,
/// keeping `ports` ports.
pub fn seal_digests(
    db: &str,
    source: &str,
    sensor: &str,
    sealed_us: u64,
    ports: u64,
    day: i64,
) -> Statement {
    Statement::new(
        SEAL_DIGESTS
            .replace("{db}", db)
            .replace("{source}", source)
            .replace("{sensor}", sensor),
    )
    .bind(sealed_us)
    .bind(ports)
    .bind(ports + 1)
    .bind(ports)
    .bind(ports)
    .bind(day)
}

/// The withheld sources of `[from, to)`, most packets first, at most `limit`
/// ([`crate::sources::WithheldSource`]).
pub fn withheld_sources(db: &str, from: i64, to: i64, limit: u32) -> Statement {
    with_db(WITHHELD_SOURCES, db)
        .bind(from)
        .bind(to)
        .bind(limit)
}

/// Events and distinct sources of `[from, to)` by withheld reason
/// ([`crate::sources::WithheldCount`]).
pub fn withheld_counts(db: &str, from: i64, to: i64) -> Statement {
    with_db(WITHHELD_COUNTS, db).bind(from).bind(to)
}

/// Whose scans a partner receives: sources in any of these countries, announced by any of
/// these autonomous systems, or inside any of these prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constituency {
    /// ISO 3166 alpha-2 codes, upper case.
    pub countries: Vec<String>,
    /// Autonomous system numbers.
    pub asns: Vec<u32>,
    /// Networks, IPv4 or IPv6.
    pub prefixes: Vec<ipnet::IpNet>,
}

/// Stands in for an empty list in the constituency filter (ClickHouse 18.16 cannot type an
/// empty array literal): no country code is empty, no AS is 4294967295 (reserved, RFC 7300),
/// no stored address's hex is empty.
const NO_COUNTRY: &str = "";
const NO_ASN: u64 = u32::MAX as u64;

impl Constituency {
    /// The binds of the constituency filter: countries, ASNs, first and last addresses.
    fn binds(&self, st: Statement) -> Statement {
        let or_none = |mut v: Vec<String>| {
            if v.is_empty() {
                v.push(NO_COUNTRY.to_owned());
            }
            v
        };
        let mut asns: Vec<u64> = self.asns.iter().map(|&a| u64::from(a)).collect();
        if asns.is_empty() {
            asns.push(NO_ASN);
        }
        let hex = |ip: std::net::IpAddr| {
            crate::geo::address_bytes(ip)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        };
        let lo = self.prefixes.iter().map(|p| hex(p.network())).collect();
        let hi = self.prefixes.iter().map(|p| hex(p.broadcast())).collect();
        st.bind(or_none(self.countries.clone()))
            .bind(Value::UInts(asns))
            .bind(or_none(lo))
            .bind(or_none(hi))
    }
}

/// A partner-day statement: `all` (binds from, to, research) or, for a constituency, `of`
/// (binds those and the constituency's).
fn partner_day(
    all: &'static str,
    of: &'static str,
    db: &str,
    (from, to): (i64, i64),
    constituency: Option<&Constituency>,
    research: bool,
) -> Statement {
    let sql = if constituency.is_some() { of } else { all };
    let st = with_db(sql, db)
        .bind(from)
        .bind(to)
        .bind(u8::from(research));
    match constituency {
        Some(c) => c.binds(st),
        None => st,
    }
}

/// The published scan events of `[from, to)` for a partner file, from every source (`None`)
/// or from a constituency's, with research scanners' or without.
pub fn export_events(
    db: &str,
    from: i64,
    to: i64,
    constituency: Option<&Constituency>,
    research: bool,
) -> Statement {
    let (all, of) = (EXPORT_EVENTS_ALL, EXPORT_EVENTS_OF);
    partner_day(all, of, db, (from, to), constituency, research)
}

/// The aggregated records of `[from, to)` for a partner file (see [`EXPORT_AGGREGATES_ALL`]),
/// from every source (`None`) or from a constituency's, with research scanners' or without.
pub fn export_aggregates(
    db: &str,
    from: i64,
    to: i64,
    constituency: Option<&Constituency>,
    research: bool,
) -> Statement {
    let (all, of) = (EXPORT_AGGREGATES_ALL, EXPORT_AGGREGATES_OF);
    partner_day(all, of, db, (from, to), constituency, research)
}

/// Internal reports detected in `[from, to)` with one of the TLP labels.
pub fn export_reports(db: &str, from: i64, to: i64, tlps: &[&str]) -> Statement {
    with_db(EXPORT_REPORTS, db).bind(from).bind(to).bind(tlps)
}

/// The current state of every partner-day in `[from_day, to_day]` (YYYYMMDD).
pub fn exchange_status(db: &str, from_day: u32, to_day: u32) -> Statement {
    with_db(EXCHANGE_STATUS, db).bind(from_day).bind(to_day)
}

/// How a file with this content hash was imported before, if it was.
pub fn import_by_sha(db: &str, sha256: &str) -> Statement {
    with_db(IMPORT_BY_SHA, db).bind(sha256)
}

/// The indicator numbers already stored of a file.
pub fn import_stored_indicators(db: &str, sha256: &str) -> Statement {
    with_db(IMPORT_STORED_INDICATORS, db).bind(sha256)
}

/// The last `limit` imports, newest first.
pub fn imports_recent(db: &str, limit: u32) -> Statement {
    with_db(IMPORTS_RECENT, db).bind(limit)
}

/// Whether a reporter's report id is stored: one count.
pub fn report_exists(db: &str, reporter: &str, id: &str) -> Statement {
    with_db(REPORT_EXISTS, db).bind(reporter).bind(id)
}

/// Reports on one affected host detected at or after `since` (Unix seconds): one count.
pub fn host_reports_since(db: &str, host: &str, since: i64) -> Statement {
    with_db(HOST_REPORTS_SINCE, db).bind(host).bind(since)
}

/// The last `limit` internal reports, newest first.
pub fn reports_recent(db: &str, limit: u32) -> Statement {
    with_db(REPORTS_RECENT, db).bind(limit)
}

/// One internal report of one reporter.
pub fn report_by_id(db: &str, reporter: &str, id: &str) -> Statement {
    with_db(REPORT_BY_ID, db).bind(reporter).bind(id)
}

/// What the sensors saw of one source address (as stored: IPv4 as `::ffff:a.b.c.d`).
pub fn correlate_sightings(db: &str, stored: &str) -> Statement {
    with_db(CORRELATE_SIGHTINGS, db).bind(stored)
}

/// The ports one source address (as stored) probed most.
pub fn correlate_ports(db: &str, stored: &str) -> Statement {
    with_db(CORRELATE_PORTS, db).bind(stored)
}

/// Imported partner indicators naming one address (as stored).
pub fn correlate_imports(db: &str, stored: &str) -> Statement {
    with_db(CORRELATE_IMPORTS, db).bind(stored)
}

/// Internal reports naming one address (as text: indicator or affected host).
pub fn correlate_reports(db: &str, text: &str) -> Statement {
    with_db(CORRELATE_REPORTS, db).bind(text).bind(text)
}

/// Internal reports detected in `[from, to)` (Unix seconds) counted by month, source, category,
/// colour, department, questionnaire and answers, at most `limit` groups.
pub fn cases_monthly(db: &str, from: i64, to: i64, limit: u32) -> Statement {
    with_db(CASES_MONTHLY, db)
        .bind(from)
        .bind(to)
        .bind(from - 7 * crate::time::DAY)
        .bind(limit)
}

/// Source ASes seen in the network rollup since `since` (Unix seconds) without a row in
/// `as_names`, at most `limit`: `src_asn` each.
pub fn unnamed_asns(db: &str, since: i64, limit: u32) -> Statement {
    with_db(UNNAMED_ASNS, db).bind(since).bind(limit)
}

/// Reports received at or after `since` (Unix seconds) without a case, oldest first, at most
/// `limit`: the columns of the recent reports.
pub fn cases_new(db: &str, since: i64, limit: u32) -> Statement {
    with_db(CASES_NEW, db).bind(since).bind(limit)
}

/// The cases opened at or after `since` that still need something done, at most `limit`.
pub fn cases_open(db: &str, since: i64, limit: u32) -> Statement {
    with_db(CASES_OPEN, db).bind(since).bind(since).bind(limit)
}

/// The case of a questionnaire link (the hex SHA-256 of its token).
pub fn case_by_token(db: &str, token_sha256: &str) -> Statement {
    with_db(CASE_BY_TOKEN, db).bind(token_sha256)
}

/// Every step of one case, oldest first.
pub fn case_history(db: &str, reporter: &str, id: &str) -> Statement {
    with_db(CASE_HISTORY, db).bind(reporter).bind(id)
}

/// Sample values: 2025-11-21 (a whole UTC day).
const FROM: i64 = 1_763_683_200;
const TO: i64 = 1_763_769_600;

/// Every statement above (except the DDL-like rollup maintenance, see
/// [`maintenance_samples`]) with sample values, for the compatibility test
/// (`teiten-aggregator schema --print-sql`): (purpose, statement).
pub fn samples(db: &str) -> Vec<(&'static str, Statement)> {
    let countries = Constituency {
        countries: vec!["AU".to_owned(), "JP".to_owned()],
        ..Constituency::default()
    };
    let networks = Constituency {
        asns: vec![13335, 2519],
        prefixes: vec![
            "1.0.0.0/24".parse().expect("prefix"),
            "2001:2::/48".parse().expect("prefix"),
        ],
        ..Constituency::default()
    };
    vec![
        ("ping", ping()),
        ("server version", server_version()),
        ("database exists", database_exists(db)),
        ("tables in database", tables_in_database(db)),
        (
            "column exists",
            column_exists(db, "scan_events", "withheld"),
        ),
        ("schema tables", schema_tables(db)),
        ("schema columns", schema_columns(db)),
        ("batch rows", batch_rows(db, "tokyo-1", 7, 3)),
        ("batch indexes", batch_indexes(db, "tokyo-1", 7, 3)),
        ("sensors current", sensors_current(db)),
        ("sensor status", sensor_status(db)),
        ("table partitions", table_partitions(db, "scan_events")),
        ("shard macro", shard_macro()),
        ("mutations pending", mutations_pending(db, "scan_ports_1h")),
        ("digests due", digests_due(db, FROM, TO)),
        ("withheld sources", withheld_sources(db, FROM, TO, 100)),
        ("withheld counts", withheld_counts(db, FROM, TO)),
        ("export events", export_events(db, FROM, TO, None, true)),
        (
            "export events of countries without research scanners",
            export_events(db, FROM, TO, Some(&countries), false),
        ),
        (
            "export events of ASes and prefixes",
            export_events(db, FROM, TO, Some(&networks), true),
        ),
        (
            "export aggregates",
            export_aggregates(db, FROM, TO, None, true),
        ),
        (
            "export aggregates of ASes and prefixes",
            export_aggregates(db, FROM, TO, Some(&networks), true),
        ),
        (
            "export aggregates of countries without research scanners",
            export_aggregates(db, FROM, TO, Some(&countries), false),
        ),
        (
            "export reports",
            export_reports(db, FROM, TO, &["clear", "green", "amber"]),
        ),
        (
            "exchange status",
            exchange_status(db, 20_251_120, 20_251_122),
        ),
        ("import by sha", import_by_sha(db, "ab12")),
        (
            "import stored indicators",
            import_stored_indicators(db, "ab12"),
        ),
        ("imports recent", imports_recent(db, 50)),
        ("report exists", report_exists(db, "ids-1", "r1")),
        (
            "host reports since",
            host_reports_since(db, "192.0.2.10", FROM),
        ),
        ("reports recent", reports_recent(db, 50)),
        ("report by id", report_by_id(db, "ids-1", "r1")),
        (
            "correlate sightings",
            correlate_sightings(db, "::ffff:1.0.0.1"),
        ),
        ("correlate ports", correlate_ports(db, "::ffff:1.0.0.1")),
        ("correlate imports", correlate_imports(db, "::ffff:1.0.0.1")),
        ("correlate reports", correlate_reports(db, "1.0.0.1")),
        ("unnamed asns", unnamed_asns(db, FROM, 10_000)),
        ("cases new", cases_new(db, FROM, 1000)),
        ("cases open", cases_open(db, FROM, 1000)),
        ("case by token", case_by_token(db, &"ab".repeat(32))),
        ("case history", case_history(db, "ids-1", "r1")),
        ("cases monthly", cases_monthly(db, FROM, TO, 100_000)),
    ]
}

/// The statements that change rows with sample values, run after [`samples`] by the
/// compatibility test: the digests sealed, each rollup's day cleared and rebuilt, a raw day
/// dropped (single-server layout).
pub fn maintenance_samples(db: &str) -> Vec<Statement> {
    let mut out: Vec<Statement> = crate::digest::SEAL_SOURCES
        .iter()
        .map(|(source, sensor)| seal_digests(db, source, sensor, 1_763_769_600_000_000, 1000, FROM))
        .collect();
    for r in crate::schema::ROLLUPS {
        out.push(clear_rollup_day(db, r, r.table, 20_251_121));
        out.push(rebuild_rollup_day(
            db,
            r,
            r.table,
            "scan_events",
            20_251_121,
        ));
    }
    out.push(drop_partition(db, "scan_events", 20_251_121));
    out
}
/// Sample rows for the compatibility test: (table, columns, VALUES list), in the column order
/// of the row types.
pub fn sample_inserts() -> Vec<(&'static str, String, &'static str)> {
    SAMPLE_INSERTS
        .iter()
        .map(|(table, columns, values)| {
            let columns = match *table {
                "scan_events" => crate::events::column_names(),
                _ => (*columns).to_owned(),
            };
            (*table, columns, *values)
        })
        .collect()
}

/// The rows of [`sample_inserts`] (the raw events' columns are filled in there).
const SAMPLE_INSERTS: &[(&str, &str, &str)] = &[
    (
        "scan_events",
        "",
        "('tokyo-1', 7, 3, 0, toDateTime(1763700000), 5, 6, \
         toFixedString(IPv6StringToNum('::ffff:1.0.0.1'), 16), \
         toFixedString(IPv6StringToNum('::ffff:198.18.0.1'), 16), \
         40000, 23, 2, 54, 54321, 40, 12345, 1024, 'scan', 1, 'AU', 0, 13335), \
         ('tokyo-1', 7, 3, 1, toDateTime(1763700001), 6, 17, \
         toFixedString(IPv6StringToNum('2001:2::1'), 16), \
         toFixedString(IPv6StringToNum('2001:db8::1'), 16), \
         53, 53, 0, 60, 0, 60, 0, 0, 'backscatter', 0, 'JP', 2, 0)",
    ),
    (
        "sensors",
        SENSORS_INSERT_COLUMNS,
        "('tokyo-1', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 0, \
         toDateTime(1763700000), 1)",
    ),
    (
        "as_names",
        AS_NAMES_INSERT_COLUMNS,
        "(13335, 'CLOUDFLARENET', 1763700000000000)",
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
        "report_cases",
        REPORT_CASES_INSERT_COLUMNS,
        "('ids-1', 'r1', 1763700200000000, toDateTime(1763700200), 'opened', 'teiten', 'red', \
         'intrusion-is-red', 'usb', 'tanaka', 'Tanaka Hanako', 'tanaka@corp.example', 'Sales', \
         'sato@corp.example', '', toDateTime(0), '', '')",
    ),
    (
        "sensor_reports",
        SENSOR_REPORTS_INSERT_COLUMNS,
        "('tokyo-1', 7, 3, toDateTime(1763700002), 1763700001000000, 2, 0, 10, 1, 2, 3, 0, 4096, 0)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_research_bit_of_the_export_is_the_wire_tag() {
        assert_eq!(teiten_wire::Tags::RESEARCH.bits(), 64);
        assert!(EXPORT_EVENTS_ALL.contains("bitAnd(tags, 64) = 0 OR ?"));
    }

    #[test]
    fn every_sample_binds_every_placeholder() {
        let db = "teiten";
        let all = samples(db)
            .into_iter()
            .map(|(_, st)| st)
            .chain(maintenance_samples(db));
        for st in all {
            let sql = st.to_sql_literal().unwrap_or_else(|e| panic!("{e}"));
            assert!(!sql.contains('?') && !sql.contains('{'), "{sql}");
        }
        let au = Constituency {
            countries: vec!["AU".to_owned()],
            ..Constituency::default()
        };
        assert_eq!(
            export_events(db, 1, 2, Some(&au), false).to_string(),
            "SELECT src, sport, dport, proto, toUInt32(ts) AS t, usec, country, src_asn \
             FROM teiten.scan_events \
             WHERE ts >= toDateTime(1) AND ts < toDateTime(2) AND class = 'scan' AND withheld = 0 \
             AND (bitAnd(tags, 64) = 0 OR 0) AND (has(['AU'], toString(country)) \
             OR has([4294967295], toUInt64(src_asn)) \
             OR arrayExists((lo, hi) -> hex(src) >= lo AND hex(src) <= hi, [''], [''])) \
             ORDER BY src, t, usec, proto, sport, dport, sensor_id, epoch, batch_seq, idx"
        );
        let net = Constituency {
            asns: vec![64496],
            prefixes: vec!["192.0.2.0/24".parse().unwrap()],
            ..Constituency::default()
        };
        let sql = export_aggregates(db, 1, 2, Some(&net), true).to_string();
        assert!(
            sql.contains(
                "has([''], toString(country)) OR has([64496], toUInt64(src_asn)) \
                 OR arrayExists((lo, hi) -> hex(src) >= lo AND hex(src) <= hi, \
                 ['00000000000000000000FFFFC0000200'], ['00000000000000000000FFFFC00002FF'])"
            ),
            "{sql}"
        );
        let r = crate::schema::ROLLUPS
            .iter()
            .find(|r| r.table == "scan_ports_1h")
            .unwrap();
        assert!(clear_rollup_day(db, r, "scan_ports_1h_local", 20_251_121)
            .to_string()
            .starts_with("ALTER TABLE teiten.scan_ports_1h_local DELETE"));
    }
}
