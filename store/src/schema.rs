//! The ClickHouse schema as an ordered list of idempotent migration steps.
//!
//! Every DDL statement of the project is written here (every other statement is in
//! [`crate::queries`]), so that the compatibility test can run all of them on current ClickHouse
//! (`scripts/chdb_compat.py`, chdb-core) while the other tests run them on 18.16.
//!
//! Portability rules (18.16 and 26.x): no IPv4/IPv6 column types (addresses are
//! `FixedString(16)`, IPv4 as IPv4-mapped IPv6), no `LowCardinality`, no TTL, no codecs, no
//! `DateTime64` (time is `ts DateTime` plus `usec UInt32`), no `SimpleAggregateFunction`.
//!
//! Layouts:
//! - single server: the tables below under their own names;
//! - cluster: every storage table is `<name>_local` on each node ((Replicated)MergeTree), and
//!   `<name>` is a `Distributed` table over the cluster's shards, so readers use the same names
//!   in both layouts. The materialized views sit on each node, between the local tables.

use crate::client::ClickHouseConfig;

/// The oldest server the schema and queries are written for.
pub const MIN_SERVER_VERSION: (u32, u32) = (18, 16);

/// How the tables are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One server.
    Single,
    /// Shards of a cluster named in the servers' `remote_servers`.
    Cluster {
        /// The cluster name.
        name: String,
        /// ReplicatedMergeTree family (ZooKeeper, `{shard}` and `{replica}` macros).
        replicated: bool,
    },
}

impl Layout {
    /// The layout a config asks for.
    pub fn from_config(ch: &ClickHouseConfig) -> Layout {
        match &ch.cluster {
            Some(name) => Layout::Cluster {
                name: name.clone(),
                replicated: ch.replicated,
            },
            None => Layout::Single,
        }
    }
}

/// When a migration step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// When its object is missing (it creates it).
    Missing,
    /// When its object (a table) was there before this migration and lacks this column (it
    /// adds it: 18.16 has no `ADD COLUMN IF NOT EXISTS`).
    ColumnMissing(&'static str),
    /// When its object is there (it drops a view replaced by one under a new name).
    Present,
}

/// One migration step: the object it creates, changes or drops and its DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Name of the table or view the step is about (checked in `system.tables`); empty for
    /// the database itself (checked in `system.databases`).
    pub object: String,
    /// When it runs.
    pub when: When,
    /// The statement (`CREATE ... IF NOT EXISTS`, `ALTER TABLE ... ADD COLUMN`, `DROP TABLE
    /// IF EXISTS`).
    pub sql: String,
    /// Run right after the object was created (not when it was there): fills a rollup added
    /// in an upgrade from an older one, before its view exists.
    pub backfill: Option<String>,
    /// What the object must look like on the server (steps that create a table or view):
    /// `migrate` compares an object that is there with it ([`crate::schema_diff`]).
    pub shape: Option<Shape>,
}

/// The definition of a table or view, as the comparison with the server reads it (the same
/// text the step's `CREATE` statement is made of).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A table.
    Table {
        /// The column list (`name Type, ...`).
        columns: String,
        /// The engine with its arguments (`ReplacingMergeTree(version)`).
        engine: String,
        /// The partition key, empty for none (Distributed).
        partition: String,
        /// The sort key (`ORDER BY`), empty for none (Distributed).
        order: String,
        /// The table settings (`index_granularity = 256`), empty for the defaults.
        settings: String,
    },
    /// A materialized view writing to a table (`TO`).
    View {
        /// The table it writes to, `db.table`.
        target: String,
        /// Its query (`SELECT ...`).
        select: String,
    },
}

/// Rollups added after the first release that can be filled from an older rollup when the
/// migration creates them: (table, the `SELECT` of its `INSERT`, with `{db}` and
/// `{scan_ports_1d}`, that rollup's storage table in the layout). The rollups new since the
/// legacy release ([`NEWER_THAN_LEGACY`]) are filled with their view's own `SELECT` from the
/// events retention still keeps (the view comes later in the same run, before the aggregator
/// serves).
const BACKFILLS: &[(&str, &str)] = &[(
    "scan_sensor_totals_1d",
    "SELECT bucket, proto, sensor_id, sum(packets) FROM {db}.{scan_ports_1d} \
     GROUP BY bucket, proto, sensor_id",
)];

/// The column that says why an event's source is withheld from partner files and public
/// counts (0: published; see [`crate::sources::Withheld`]).
pub const WITHHELD_COLUMN: (&str, &str) = ("withheld", "UInt8");

/// The columns of a per-port table: its bucket, protocol and destination port, then `$rest`.
macro_rules! port_columns {
    ($($rest:literal),+ $(,)?) => {
        concat!("bucket DateTime, proto UInt8, dport UInt16, ", $($rest),+)
    };
}

const ROLLUP_COLUMNS: &str = port_columns!(
    "country FixedString(2), ",
    "sensor_id String, ",
    "packets AggregateFunction(count), ",
    "sources AggregateFunction(uniq, FixedString(16))"
);

/// Destination ports per sensor (the port graph): plain packet counts, summed on merge.
const PORTS_COLUMNS: &str = port_columns!("sensor_id String, ", "packets UInt64");

/// Destination ports over all sensors, per day (the top ports of requests without a sensor
/// filter, and the trends' baseline).
const PORT_TOTALS_COLUMNS: &str = port_columns!("packets UInt64");

/// One port's packets by source country and sensor (the per-port packets graph).
const PORT_PACKETS_COLUMNS: &str = port_columns!(
    "country FixedString(2), ",
    "sensor_id String, ",
    "packets UInt64"
);

/// One port's unique sources per day and source country, over all sensors: HyperLogLog states
/// (`uniqHLL12`, at most 2.5 KB each, where `uniq` keeps up to 256 KB per state), so that a month
/// merges in milliseconds.
const PORT_SOURCES_COLUMNS: &str = port_columns!(
    "country FixedString(2), ",
    "sources AggregateFunction(uniqHLL12, FixedString(16))"
);

/// One port's unique sources per 5 minutes and source country, over all sensors (`uniq` states:
/// the per-port graph up to two days without a sensor filter; half the rows of
/// `scan_port_regions_5m` for port 23 over a day at 100 M events and 8 sensors).
const PORT_SOURCES_5M_COLUMNS: &str = port_columns!(
    "country FixedString(2), ",
    "sources AggregateFunction(uniq, FixedString(16))"
);

/// The same per sensor (requests with a sensor filter).
const PORT_SENSOR_SOURCES_COLUMNS: &str = port_columns!(
    "country FixedString(2), ",
    "sensor_id String, ",
    "sources AggregateFunction(uniqHLL12, FixedString(16))"
);

/// Packets per day, sensor and protocol: the current totals that the port digests are checked
/// against (the digest of a day that received events after it was sealed is widened by them).
const SENSOR_TOTALS_COLUMNS: &str = "\
    bucket DateTime, \
    proto UInt8, \
    sensor_id String, \
    packets UInt64";

/// Port digests (see [`crate::digest`]): per day, sensor (`''`: all sensors) and protocol, the
/// ports with the most packets and their packets, sorted by packets; `rest_max` is the most
/// packets of any port left out, `total` the day's packets when it was `sealed` (Unix
/// microseconds, the version: the latest digest of a day counts).
const PORT_DIGESTS_COLUMNS: &str = "\
    bucket DateTime, \
    sensor_id String, \
    proto UInt8, \
    sealed UInt64, \
    total UInt64, \
    rest_max UInt64, \
    ports Array(UInt16), \
    packets Array(UInt64)";

/// Source countries per sensor (the region graph and the active-sensor divisor).
const REGIONS_COLUMNS: &str = "\
    bucket DateTime, \
    proto UInt8, \
    country FixedString(2), \
    sensor_id String, \
    packets UInt64";

/// Packets and unique published sources per source autonomous system, country and sensor (the
/// network graph and table; `src_asn` 0 is unknown).
const NETWORKS_COLUMNS: &str = "\
    bucket DateTime, \
    proto UInt8, \
    src_asn UInt32, \
    country FixedString(2), \
    sensor_id String, \
    packets AggregateFunction(count), \
    sources AggregateFunction(uniq, FixedString(16))";

/// The names of autonomous systems, by number, as the aggregator's network database names
/// them when it first stores an event from one (the latest `version` counts), so that the
/// dashboard can name them without a string per event.
const AS_NAMES_COLUMNS: &str = "\
    asn UInt32, \
    name String, \
    version UInt64";

const SENSORS_COLUMNS: &str = "\
    sensor_id String, \
    token_sha256 String, \
    revoked UInt8, \
    changed DateTime, \
    version UInt64";

const SENSOR_REPORTS_COLUMNS: &str = "\
    sensor_id String, \
    epoch UInt64, \
    batch_seq UInt64, \
    received DateTime, \
    sealed_us Int64, \
    events UInt32, \
    unknown_country UInt32, \
    packets_captured UInt64, \
    kernel_drops UInt64, \
    events_recorded UInt64, \
    filtered UInt64, \
    malformed UInt64, \
    spool_bytes UInt64, \
    spool_dropped_events UInt64";

/// Daily files per partner: one row per state change (generated, delivered, failed); the
/// latest `version` is the current state.
const EXCHANGE_LOG_COLUMNS: &str = "\
    partner String, \
    day UInt32, \
    revision UInt32, \
    file String, \
    sha256 String, \
    events UInt64, \
    sources UInt64, \
    reports UInt32, \
    bytes UInt64, \
    generated DateTime, \
    status Enum8('generated' = 0, 'delivered' = 1, 'failed' = 2), \
    attempts UInt32, \
    error String, \
    version UInt64";

/// Imported partner files, valid or quarantined, by content hash.
const IODEF_IMPORTS_COLUMNS: &str = "\
    sha256 String, \
    partner String, \
    name String, \
    received DateTime, \
    iodef_version UInt8, \
    status Enum8('stored' = 0, 'quarantined' = 1), \
    reason String, \
    incidents UInt32, \
    indicators UInt32";

/// One row per address found in an imported file (with its role, ports and time).
const IODEF_INDICATORS_COLUMNS: &str = "\
    sha256 String, \
    n UInt32, \
    partner String, \
    incident String, \
    restriction String, \
    category String, \
    time DateTime, \
    role Enum8('source' = 0, 'target' = 1, 'other' = 2), \
    address String, \
    addr FixedString(16), \
    proto UInt8, \
    ports String";

/// The organisation's own detection reports with their triage.
const INTERNAL_REPORTS_COLUMNS: &str = "\
    id String, \
    received DateTime, \
    detected DateTime, \
    reporter String, \
    source String, \
    host String, \
    category String, \
    description String, \
    addresses Array(String), \
    countries Array(String), \
    ports Array(UInt16), \
    protocol UInt8, \
    hashes Array(String), \
    urls Array(String), \
    tlp String, \
    colour Enum8('green' = 0, 'yellow' = 1, 'red' = 2), \
    rules String";

/// Every step of an internal report's case: opened (who, which questionnaire), a link issued,
/// a mail or webhook sent or failed, answered, escalated, alerted, overridden by an analyst. Append-only:
/// the history is the rows in `version` order, the state their aggregate.
const REPORT_CASES_COLUMNS: &str = "\
    reporter String, \
    id String, \
    version UInt64, \
    at DateTime, \
    event Enum8('opened' = 0, 'requested' = 1, 'sent' = 2, 'send_failed' = 3, \
        'answered' = 4, 'escalated' = 5, 'alerted' = 6, 'overridden' = 7), \
    actor String, \
    colour Enum8('green' = 0, 'yellow' = 1, 'red' = 2), \
    rules String, \
    questionnaire String, \
    employee String, \
    name String, \
    email String, \
    department String, \
    manager String, \
    token_sha256 String, \
    expires DateTime, \
    answers String, \
    note String";

/// A storage table: name, columns, engine family and its argument, partition, order.
#[derive(Debug, Clone, Copy)]
struct Storage {
    name: &'static str,
    columns: &'static str,
    /// `MergeTree`, `AggregatingMergeTree` or `ReplacingMergeTree`.
    engine: &'static str,
    /// Engine argument (the version column of ReplacingMergeTree), empty for none.
    engine_arg: &'static str,
    partition: &'static str,
    order: &'static str,
    /// Sharding expression for the Distributed table.
    shard_key: &'static str,
    /// Table settings (`SETTINGS ...`), empty for none.
    settings: &'static str,
}

/// Tables sorted by port first are read a few ports at a time: small granules (8192 rows is the
/// default) keep each day partition's read to the rows of those ports.
const SMALL_GRANULES: &str = "index_granularity = 256";

/// Month partitions, for the tables read over long periods a few rows per day at a time (18.16
/// spends about as long per part as on the rows: the top ports' series over 30 days took 37 ms
/// from 31 day parts and 15 ms from two month parts). Retention drops them when the whole month
/// has expired; a rebuild deletes the day's rows first ([`month_partitioned`]).
const MONTH: &str = "toYYYYMM(bucket)";

/// Whether a schema table is partitioned by month (else by day).
pub fn month_partitioned(table: &str) -> bool {
    storage().any(|s| s.name == table && s.partition == MONTH)
}

/// Every storage table in migration order: the tables, the rollups', the derived ones.
fn storage() -> impl Iterator<Item = Storage> {
    TABLES
        .iter()
        .copied()
        .chain(ROLLUPS.iter().map(Rollup::storage))
        .chain(DERIVED.iter().copied())
}

/// The storage tables that are neither rollups nor computed from them, in migration order.
const TABLES: &[Storage] = &[
    Storage {
        name: "scan_events",
        // From the one event column list ([`crate::events::EVENT_COLUMNS`]).
        columns: "",
        engine: "MergeTree",
        engine_arg: "",
        partition: "toYYYYMMDD(ts)",
        order: "(sensor_id, epoch, batch_seq, idx)",
        // A batch lands on one shard, so it is stored (and checked) in one place.
        settings: "",
        shard_key: "cityHash64(sensor_id, epoch, batch_seq)",
    },
    Storage {
        name: "sensors",
        columns: SENSORS_COLUMNS,
        engine: "ReplacingMergeTree",
        engine_arg: "version",
        partition: "tuple()",
        order: "sensor_id",
        settings: "",
        shard_key: "cityHash64(sensor_id)",
    },
    Storage {
        name: "as_names",
        columns: AS_NAMES_COLUMNS,
        engine: "ReplacingMergeTree",
        engine_arg: "version",
        partition: "tuple()",
        order: "asn",
        settings: "",
        shard_key: "asn",
    },
    Storage {
        name: "sensor_reports",
        columns: SENSOR_REPORTS_COLUMNS,
        engine: "MergeTree",
        engine_arg: "",
        partition: "toYYYYMMDD(received)",
        order: "(sensor_id, received)",
        settings: "",
        shard_key: "cityHash64(sensor_id)",
    },
    Storage {
        name: "exchange_log",
        columns: EXCHANGE_LOG_COLUMNS,
        engine: "MergeTree",
        engine_arg: "",
        partition: "tuple()",
        order: "(partner, day, version)",
        settings: "",
        shard_key: "cityHash64(partner)",
    },
    Storage {
        name: "iodef_imports",
        columns: IODEF_IMPORTS_COLUMNS,
        engine: "MergeTree",
        engine_arg: "",
        partition: "tuple()",
        order: "(sha256, received)",
        settings: "",
        shard_key: "cityHash64(sha256)",
    },
    Storage {
        name: "iodef_indicators",
        columns: IODEF_INDICATORS_COLUMNS,
        engine: "MergeTree",
        engine_arg: "",
        partition: "tuple()",
        order: "(sha256, n)",
        // A file's indicators land on one shard, so the repair check sees all of them.
        settings: "",
        shard_key: "cityHash64(sha256)",
    },
    Storage {
        name: "internal_reports",
        columns: INTERNAL_REPORTS_COLUMNS,
        engine: "MergeTree",
        engine_arg: "",
        partition: "tuple()",
        order: "(id, detected)",
        settings: "",
        shard_key: "cityHash64(id)",
    },
    Storage {
        name: "report_cases",
        columns: REPORT_CASES_COLUMNS,
        engine: "MergeTree",
        engine_arg: "",
        partition: "tuple()",
        order: "(reporter, id, version)",
        settings: "",
        shard_key: "cityHash64(reporter, id)",
    },
];

/// The tables computed from the rollups ([`DERIVED_TABLES`]), created after them.
const DERIVED: &[Storage] = &[Storage {
    name: "scan_port_digests_1d",
    columns: PORT_DIGESTS_COLUMNS,
    engine: "ReplacingMergeTree",
    engine_arg: "sealed",
    partition: MONTH,
    order: "(sensor_id, bucket, proto)",
    settings: "",
    shard_key: "rand()",
}];

/// The bucket width of a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grain {
    /// 5-minute buckets.
    FiveMinutes,
    /// Hourly buckets.
    Hour,
    /// UTC days (`toStartOfDay` as a `DateTime`, like the other buckets).
    Day,
}

impl Grain {
    /// The bucket function applied to `ts`.
    pub const fn bucket(self) -> &'static str {
        match self {
            Grain::FiveMinutes => "toStartOfFiveMinute",
            Grain::Hour => "toStartOfHour",
            Grain::Day => "toStartOfDay",
        }
    }

    /// The suffix of the table names (`5m`, `1h`, `1d`).
    pub const fn suffix(self) -> &'static str {
        match self {
            Grain::FiveMinutes => "5m",
            Grain::Hour => "1h",
            Grain::Day => "1d",
        }
    }
}

/// What a rollup counts, by which dimensions (the table name is `scan_<kind>_<grain>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `scan_rollup_*`: packets and unique sources per port, country and sensor.
    Rollup,
    /// `scan_ports_*`: packets per port and sensor (the port graph).
    Ports,
    /// `scan_regions_*`: packets per source country and sensor (the region graph).
    Regions,
    /// `scan_port_regions_*`: like [`Kind::Rollup`], sorted by port first (one port's graph).
    PortRegions,
    /// `scan_port_packets_*`: packets per port, country and sensor, sorted by port first.
    PortPackets,
    /// `scan_port_totals_*`: packets per port over all sensors.
    PortTotals,
    /// `scan_port_sources_*`: unique sources per port and country over all sensors.
    PortSources,
    /// `scan_port_sensor_sources_*`: unique sources per port, country and sensor.
    PortSensorSources,
    /// `scan_sensor_totals_*`: packets per sensor and protocol (the digests' check).
    SensorTotals,
    /// `scan_networks_*`: packets and unique sources per source AS, country and sensor.
    Networks,
}

impl Kind {
    /// The part of the table name between `scan_` and the grain.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Rollup => "rollup",
            Kind::Ports => "ports",
            Kind::Regions => "regions",
            Kind::PortRegions => "port_regions",
            Kind::PortPackets => "port_packets",
            Kind::PortTotals => "port_totals",
            Kind::PortSources => "port_sources",
            Kind::PortSensorSources => "port_sensor_sources",
            Kind::SensorTotals => "sensor_totals",
            Kind::Networks => "networks",
        }
    }
}

/// A rollup, the one definition of it: its table (name, columns, engine, partition, sort key,
/// settings) and the materialized view filling it from the raw events, grouped by the bucket
/// (the grain's function of `ts`) and `keys`, with `aggregates`. The table's columns are the
/// bucket, the keys and the aggregates in this order (the rebuild inserts by position).
/// [`ROLLUP_TABLES`], the storage tables and the views are all derived from [`ROLLUPS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollup {
    /// What it counts.
    pub kind: Kind,
    /// Its bucket width.
    pub grain: Grain,
    /// The materialized view.
    pub view: &'static str,
    /// The target table (`scan_<kind>_<grain>`).
    pub table: &'static str,
    /// The grouping columns after the bucket.
    pub keys: &'static str,
    /// The aggregate expressions.
    pub aggregates: &'static str,
    /// The table's columns (`name Type, ...`).
    pub columns: &'static str,
    /// `SummingMergeTree` or `AggregatingMergeTree`.
    pub engine: &'static str,
    /// The partition key.
    pub partition: &'static str,
    /// The sort key.
    pub order: &'static str,
    /// Table settings, empty for the defaults.
    pub settings: &'static str,
    /// The view this one replaced (dropped by the migration), or empty.
    pub replaces: &'static str,
}

impl Rollup {
    /// The bucket function of `ts`.
    pub const fn bucket(&self) -> &'static str {
        self.grain.bucket()
    }

    /// Its view's `SELECT` from the events table `source` of `db`, with `aggregates`.
    fn select(&self, db: &str, source: &str, aggregates: &str) -> String {
        format!(
            "SELECT {}(ts) AS bucket, {}, {aggregates} FROM {db}.{source} GROUP BY bucket, {}",
            self.bucket(),
            self.keys,
            self.keys
        )
    }

    /// The aggregates of the view it replaced (unique sources counted with the withheld).
    fn legacy_aggregates(&self) -> String {
        self.aggregates
            .replace("StateIf(src, withheld = 0)", "State(src)")
    }

    /// Its storage table.
    const fn storage(&self) -> Storage {
        Storage {
            name: self.table,
            columns: self.columns,
            engine: self.engine,
            engine_arg: "",
            partition: self.partition,
            order: self.order,
            // Rollup rows are summed wherever they land.
            shard_key: "rand()",
            settings: self.settings,
        }
    }
}

/// The rollup of a kind and grain, if there is one.
pub fn rollup(kind: Kind, grain: Grain) -> Option<&'static Rollup> {
    ROLLUPS.iter().find(|r| r.kind == kind && r.grain == grain)
}

/// The table of the rollup of a kind and grain; empty when there is none (a statement naming
/// it fails on the server; the tests read every pair the statements use).
pub fn rollup_table(kind: Kind, grain: Grain) -> &'static str {
    rollup(kind, grain).map_or("", |r| r.table)
}

/// Packets of every event; unique sources of the published ones only (`withheld = 0`).
const STATES: &str = "countState() AS packets, uniqStateIf(src, withheld = 0) AS sources";
const COUNT: &str = "count() AS packets";
/// Unique published sources alone (`uniq`, the 5-minute per-port rollup over all sensors).
const SOURCES: &str = "uniqStateIf(src, withheld = 0) AS sources";
/// Unique published sources as a HyperLogLog state (the daily per-port rollups).
const SKETCH: &str = "uniqHLL12StateIf(src, withheld = 0) AS sources";

/// Packets and unique sources per port, country and sensor by 5 minutes (the hour's rollup
/// differs in its grain and names only).
const ROLLUP_5M: Rollup = Rollup {
    kind: Kind::Rollup,
    grain: Grain::FiveMinutes,
    view: "scan_rollup_5m_published_mv",
    table: "scan_rollup_5m",
    keys: "proto, dport, country, sensor_id",
    aggregates: STATES,
    columns: ROLLUP_COLUMNS,
    engine: "AggregatingMergeTree",
    partition: "toYYYYMMDD(bucket)",
    order: "(bucket, proto, dport, country, sensor_id)",
    settings: "",
    replaces: "scan_rollup_5m_mv",
};

/// Packets per port and sensor by 5 minutes (the day's rollup differs in its grain and names
/// only; the hour's is sorted by port first).
const PORTS_5M: Rollup = Rollup {
    kind: Kind::Ports,
    grain: Grain::FiveMinutes,
    view: "scan_ports_5m_mv",
    table: "scan_ports_5m",
    keys: "proto, dport, sensor_id",
    aggregates: COUNT,
    columns: PORTS_COLUMNS,
    engine: "SummingMergeTree",
    partition: "toYYYYMMDD(bucket)",
    order: "(bucket, sensor_id, proto, dport)",
    settings: "",
    replaces: "",
};

/// Packets per source country and sensor by 5 minutes (the hour's rollup differs in its grain
/// and names only).
const REGIONS_5M: Rollup = Rollup {
    kind: Kind::Regions,
    grain: Grain::FiveMinutes,
    view: "scan_regions_5m_mv",
    table: "scan_regions_5m",
    keys: "proto, country, sensor_id",
    aggregates: COUNT,
    columns: REGIONS_COLUMNS,
    engine: "SummingMergeTree",
    partition: "toYYYYMMDD(bucket)",
    order: "(bucket, sensor_id, proto, country)",
    settings: "",
    replaces: "",
};

/// Rollup views, in migration order.
pub const ROLLUPS: &[Rollup] = &[
    ROLLUP_5M,
    Rollup {
        grain: Grain::Hour,
        view: "scan_rollup_1h_published_mv",
        table: "scan_rollup_1h",
        replaces: "scan_rollup_1h_mv",
        ..ROLLUP_5M
    },
    PORTS_5M,
    // Port first: the port graph's series read only their ports' rows.
    Rollup {
        grain: Grain::Hour,
        view: "scan_ports_1h_mv",
        table: "scan_ports_1h",
        partition: MONTH,
        order: "(dport, bucket, proto, sensor_id)",
        settings: SMALL_GRANULES,
        ..PORTS_5M
    },
    Rollup {
        grain: Grain::Day,
        view: "scan_ports_1d_mv",
        table: "scan_ports_1d",
        ..PORTS_5M
    },
    REGIONS_5M,
    Rollup {
        grain: Grain::Hour,
        view: "scan_regions_1h_mv",
        table: "scan_regions_1h",
        ..REGIONS_5M
    },
    Rollup {
        kind: Kind::PortRegions,
        grain: Grain::FiveMinutes,
        view: "scan_port_regions_5m_published_mv",
        table: "scan_port_regions_5m",
        keys: "proto, dport, country, sensor_id",
        aggregates: STATES,
        columns: ROLLUP_COLUMNS,
        engine: "AggregatingMergeTree",
        partition: "toYYYYMMDD(bucket)",
        order: "(dport, sensor_id, bucket, proto, country)",
        settings: "",
        replaces: "scan_port_regions_5m_mv",
    },
    Rollup {
        kind: Kind::PortPackets,
        grain: Grain::Hour,
        view: "scan_port_packets_1h_mv",
        table: "scan_port_packets_1h",
        keys: "proto, dport, country, sensor_id",
        aggregates: COUNT,
        columns: PORT_PACKETS_COLUMNS,
        engine: "SummingMergeTree",
        partition: "toYYYYMMDD(bucket)",
        order: "(dport, sensor_id, bucket, proto, country)",
        settings: SMALL_GRANULES,
        replaces: "",
    },
    Rollup {
        kind: Kind::PortTotals,
        grain: Grain::Day,
        view: "scan_port_totals_1d_mv",
        table: "scan_port_totals_1d",
        keys: "proto, dport",
        aggregates: COUNT,
        columns: PORT_TOTALS_COLUMNS,
        engine: "SummingMergeTree",
        partition: "toYYYYMMDD(bucket)",
        order: "(bucket, proto, dport)",
        settings: "",
        replaces: "",
    },
    Rollup {
        kind: Kind::PortSources,
        grain: Grain::Day,
        view: "scan_port_sources_1d_published_mv",
        table: "scan_port_sources_1d",
        keys: "proto, dport, country",
        aggregates: SKETCH,
        columns: PORT_SOURCES_COLUMNS,
        engine: "AggregatingMergeTree",
        partition: "toYYYYMMDD(bucket)",
        order: "(dport, bucket, proto, country)",
        settings: SMALL_GRANULES,
        replaces: "scan_port_sources_1d_mv",
    },
    Rollup {
        kind: Kind::PortSensorSources,
        grain: Grain::Day,
        view: "scan_port_sensor_sources_1d_published_mv",
        table: "scan_port_sensor_sources_1d",
        keys: "proto, dport, country, sensor_id",
        aggregates: SKETCH,
        columns: PORT_SENSOR_SOURCES_COLUMNS,
        engine: "AggregatingMergeTree",
        partition: "toYYYYMMDD(bucket)",
        order: "(dport, sensor_id, bucket, proto, country)",
        settings: SMALL_GRANULES,
        replaces: "scan_port_sensor_sources_1d_mv",
    },
    Rollup {
        kind: Kind::PortSources,
        grain: Grain::FiveMinutes,
        view: "scan_port_sources_5m_published_mv",
        table: "scan_port_sources_5m",
        keys: "proto, dport, country",
        aggregates: SOURCES,
        columns: PORT_SOURCES_5M_COLUMNS,
        engine: "AggregatingMergeTree",
        partition: "toYYYYMMDD(bucket)",
        order: "(dport, bucket, proto, country)",
        settings: SMALL_GRANULES,
        replaces: "scan_port_sources_5m_mv",
    },
    Rollup {
        kind: Kind::SensorTotals,
        grain: Grain::Day,
        view: "scan_sensor_totals_1d_mv",
        table: "scan_sensor_totals_1d",
        keys: "proto, sensor_id",
        aggregates: COUNT,
        columns: SENSOR_TOTALS_COLUMNS,
        engine: "SummingMergeTree",
        partition: MONTH,
        order: "(bucket, sensor_id, proto)",
        settings: "",
        replaces: "",
    },
    // Hourly only: the network views read hours whatever the period (a 5-minute one would
    // cost ingest another view for little).
    Rollup {
        kind: Kind::Networks,
        grain: Grain::Hour,
        view: "scan_networks_1h_mv",
        table: "scan_networks_1h",
        keys: "proto, src_asn, country, sensor_id",
        aggregates: STATES,
        columns: NETWORKS_COLUMNS,
        engine: "AggregatingMergeTree",
        partition: "toYYYYMMDD(bucket)",
        order: "(bucket, sensor_id, proto, src_asn, country)",
        settings: "",
        replaces: "",
    },
];

/// Tables whose day partitions retention drops, with the kind of data they hold.
pub const RAW_TABLES: &[&str] = &["scan_events", "sensor_reports"];
/// Rollup tables (kept longer), in the order of [`ROLLUPS`].
pub const ROLLUP_TABLES: [&str; ROLLUPS.len()] = {
    let mut out = [""; ROLLUPS.len()];
    let mut i = 0;
    while i < ROLLUPS.len() {
        out[i] = ROLLUPS[i].table;
        i += 1;
    }
    out
};
/// Tables computed from the rollups (kept as long as them, dropped with them).
pub const DERIVED_TABLES: &[&str] = &["scan_port_digests_1d"];

/// The table that holds a logical table's rows on this node (`<name>_local` in a cluster).
pub fn storage_name(layout: &Layout, name: &str) -> String {
    match layout {
        Layout::Single => name.to_owned(),
        Layout::Cluster { .. } => format!("{name}_local"),
    }
}

fn engine(layout: &Layout, db: &str, s: &Storage) -> String {
    match layout {
        Layout::Cluster {
            replicated: true, ..
        } => {
            let mut args = format!(
                "'/clickhouse/tables/{{shard}}/{db}/{}_local', '{{replica}}'",
                s.name
            );
            if !s.engine_arg.is_empty() {
                args.push_str(", ");
                args.push_str(s.engine_arg);
            }
            format!("Replicated{}({args})", s.engine)
        }
        _ if s.engine_arg.is_empty() => s.engine.to_owned(),
        _ => format!("{}({})", s.engine, s.engine_arg),
    }
}

/// The statements that create a new database from nothing: the steps of [`steps`] that run
/// when their object is missing (the others upgrade an older database), each with its
/// backfill. Tests and benchmarks that build a database without `migrate` run these.
pub fn create_sql(db: &str, layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    for s in steps(db, layout) {
        if s.when == When::Missing {
            out.push(s.sql);
            out.extend(s.backfill);
        }
    }
    out
}

/// The ordered migration steps for database `db` (a checked identifier): the database, the
/// tables, the upgrades of tables made by an older release (columns added, replaced views
/// dropped), the views.
pub fn steps(db: &str, layout: &Layout) -> Vec<Step> {
    build(db, layout, false)
}

/// The schema as it was before the `withheld` column (the release the upgrade steps start
/// from): for the upgrade tests.
pub fn legacy_steps(db: &str, layout: &Layout) -> Vec<Step> {
    build(db, layout, true)
}

/// The database `schema --print-sql` creates with [`legacy_steps`] and upgrades.
pub const LEGACY_SAMPLE_DB: &str = "teiten_v0";

/// The statements [`steps`] applies to a database made by [`legacy_steps`], in order.
pub fn upgrade_sql(db: &str, layout: &Layout) -> Vec<String> {
    // The views that replaced older ones, and the tables and views added since.
    let created: Vec<String> = ROLLUPS
        .iter()
        .filter(|r| !r.replaces.is_empty() || NEWER_THAN_LEGACY.contains(&r.table))
        .map(|r| r.view.to_owned())
        .chain(NEWER_THAN_LEGACY.iter().map(|t| storage_name(layout, t)))
        .collect();
    steps(db, layout)
        .into_iter()
        .filter(|s| s.when != When::Missing || created.contains(&s.object))
        .flat_map(|s| std::iter::once(s.sql).chain(s.backfill))
        .collect()
}

/// Tables the release of [`legacy_steps`] did not have (with their views).
const NEWER_THAN_LEGACY: &[&str] = &["as_names", "scan_networks_1h"];

fn build(db: &str, layout: &Layout, legacy: bool) -> Vec<Step> {
    let mut out = vec![Step {
        object: String::new(),
        when: When::Missing,
        sql: format!("CREATE DATABASE IF NOT EXISTS {db}"),
        backfill: None,
        shape: None,
    }];
    let columns = |s: &Storage| {
        if s.name == "scan_events" {
            crate::events::columns_ddl(legacy)
        } else {
            s.columns.to_owned()
        }
    };
    for s in &storage()
        .filter(|s| !(legacy && NEWER_THAN_LEGACY.contains(&s.name)))
        .collect::<Vec<_>>()
    {
        let table = storage_name(layout, s.name);
        let shape = Shape::Table {
            columns: columns(s),
            engine: engine(layout, db, s),
            partition: s.partition.to_owned(),
            order: s.order.to_owned(),
            settings: s.settings.to_owned(),
        };
        out.push(Step {
            when: When::Missing,
            sql: format!(
                "CREATE TABLE IF NOT EXISTS {db}.{table} ({}) ENGINE = {} PARTITION BY {} ORDER BY {}{}",
                columns(s),
                engine(layout, db, s),
                s.partition,
                s.order,
                if s.settings.is_empty() {
                    String::new()
                } else {
                    format!(" SETTINGS {}", s.settings)
                }
            ),
            shape: Some(shape),
            backfill: BACKFILLS
                .iter()
                .find(|(name, _)| *name == s.name)
                .map(|(_, select)| {
                    select
                        .replace("{db}", db)
                        .replace("{scan_ports_1d}", &storage_name(layout, "scan_ports_1d"))
                })
                .or_else(|| {
                    ROLLUPS
                        .iter()
                        .find(|r| r.table == s.name && NEWER_THAN_LEGACY.contains(&r.table))
                        .map(|r| {
                            r.select(db, &storage_name(layout, "scan_events"), r.aggregates)
                        })
                })
                .map(|select| format!("INSERT INTO {db}.{table} {select}")),
            object: table,
        });
        if let Layout::Cluster { name: cluster, .. } = layout {
            let engine = format!(
                "Distributed({cluster}, {db}, {}_local, {})",
                s.name, s.shard_key
            );
            out.push(Step {
                object: s.name.to_owned(),
                when: When::Missing,
                sql: format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{} ({}) ENGINE = {engine}",
                    s.name,
                    columns(s)
                ),
                backfill: None,
                shape: Some(Shape::Table {
                    columns: columns(s),
                    engine,
                    partition: String::new(),
                    order: String::new(),
                    settings: String::new(),
                }),
            });
        }
        if !legacy && s.name == "scan_events" {
            // The event columns added since the first release, right after the events' tables
            // (the storage table first, then the Distributed one over it), so that the
            // backfills of the rollups after them can read those columns.
            let mut tables = vec![storage_name(layout, "scan_events")];
            if matches!(layout, Layout::Cluster { .. }) {
                tables.push("scan_events".to_owned());
            }
            for &(column, ty) in crate::events::added_columns() {
                for t in &tables {
                    out.push(Step {
                        sql: format!("ALTER TABLE {db}.{t} ADD COLUMN {column} {ty}"),
                        object: t.clone(),
                        when: When::ColumnMissing(column),
                        backfill: None,
                        shape: None,
                    });
                }
            }
        }
    }
    if !legacy {
        for r in ROLLUPS.iter().filter(|r| !r.replaces.is_empty()) {
            out.push(Step {
                object: r.replaces.to_owned(),
                when: When::Present,
                sql: format!("DROP TABLE IF EXISTS {db}.{}", r.replaces),
                backfill: None,
                shape: None,
            });
        }
    }
    for r in ROLLUPS
        .iter()
        .filter(|r| !(legacy && NEWER_THAN_LEGACY.contains(&r.table)))
    {
        let source = storage_name(layout, "scan_events");
        let target = storage_name(layout, r.table);
        let (view, aggregates) = if legacy && !r.replaces.is_empty() {
            (r.replaces, r.legacy_aggregates())
        } else {
            (r.view, r.aggregates.to_owned())
        };
        let select = r.select(db, &source, &aggregates);
        out.push(Step {
            object: view.to_owned(),
            when: When::Missing,
            sql: format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{view} TO {db}.{target} AS {select}"
            ),
            backfill: None,
            shape: Some(Shape::View {
                target: format!("{db}.{target}"),
                select,
            }),
        });
    }
    out
}

/// Parses `version()` output into (major, minor).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_layout_order_and_names() {
        let s = steps("teiten", &Layout::Single);
        let names: Vec<&str> = s.iter().map(|s| s.object.as_str()).collect();
        assert_eq!(
            names,
            [
                "",
                "scan_events",
                // Upgrades: the columns added since, then (below) the replaced views.
                "scan_events",
                "scan_events",
                "sensors",
                "as_names",
                "sensor_reports",
                "exchange_log",
                "iodef_imports",
                "iodef_indicators",
                "internal_reports",
                "report_cases",
                "scan_rollup_5m",
                "scan_rollup_1h",
                "scan_ports_5m",
                "scan_ports_1h",
                "scan_ports_1d",
                "scan_regions_5m",
                "scan_regions_1h",
                "scan_port_regions_5m",
                "scan_port_packets_1h",
                "scan_port_totals_1d",
                "scan_port_sources_1d",
                "scan_port_sensor_sources_1d",
                "scan_port_sources_5m",
                "scan_sensor_totals_1d",
                "scan_networks_1h",
                "scan_port_digests_1d",
                "scan_rollup_5m_mv",
                "scan_rollup_1h_mv",
                "scan_port_regions_5m_mv",
                "scan_port_sources_1d_mv",
                "scan_port_sensor_sources_1d_mv",
                "scan_port_sources_5m_mv",
                "scan_rollup_5m_published_mv",
                "scan_rollup_1h_published_mv",
                "scan_ports_5m_mv",
                "scan_ports_1h_mv",
                "scan_ports_1d_mv",
                "scan_regions_5m_mv",
                "scan_regions_1h_mv",
                "scan_port_regions_5m_published_mv",
                "scan_port_packets_1h_mv",
                "scan_port_totals_1d_mv",
                "scan_port_sources_1d_published_mv",
                "scan_port_sensor_sources_1d_published_mv",
                "scan_port_sources_5m_published_mv",
                "scan_sensor_totals_1d_mv",
                "scan_networks_1h_mv"
            ]
        );
        let step = |name: &str| {
            s.iter()
                .find(|s| s.object == name && s.when == When::Missing)
                .unwrap()
        };
        // A new database gets 41 objects: the upgrade steps find nothing to do there.
        assert_eq!(s.iter().filter(|s| s.when == When::Missing).count(), 41);
        let alter = s.iter().find(|s| s.when != When::Missing).unwrap();
        assert_eq!(
            alter.sql,
            "ALTER TABLE teiten.scan_events ADD COLUMN withheld UInt8"
        );
        assert_eq!(alter.when, When::ColumnMissing("withheld"));
        assert!(step("scan_events").sql.ends_with(
            "country FixedString(2), withheld UInt8, src_asn UInt32) ENGINE = MergeTree \
             PARTITION BY toYYYYMMDD(ts) \
             ORDER BY (sensor_id, epoch, batch_seq, idx)"
        ));
        // Public unique sources count only published sources; packets count every event.
        let mv = step("scan_port_regions_5m_published_mv");
        assert!(
            mv.sql
                .contains("countState() AS packets, uniqStateIf(src, withheld = 0) AS sources"),
            "{}",
            mv.sql
        );
        assert!(step("scan_port_sources_1d_published_mv")
            .sql
            .contains("uniqHLL12StateIf(src, withheld = 0)"));
        // Unique sources count the published ones only; the views that counted every source
        // were replaced, and views added since never did.
        for r in ROLLUPS {
            assert_eq!(
                r.aggregates.contains("src"),
                r.aggregates.contains("withheld = 0"),
                "{}",
                r.view
            );
            assert_eq!(
                r.aggregates.contains("src") && !NEWER_THAN_LEGACY.contains(&r.table),
                !r.replaces.is_empty(),
                "{}",
                r.view
            );
        }
        assert!(s
            .iter()
            .all(|s| s.when != When::Missing || s.sql.contains("IF NOT EXISTS")));
        assert!(s[1].sql.contains("PARTITION BY toYYYYMMDD(ts)"));
        // Port-first rollups have small granules; the others the default.
        assert!(step("scan_ports_1h").sql.ends_with(
            "ORDER BY (dport, bucket, proto, sensor_id) SETTINGS index_granularity = 256"
        ));
        assert!(!step("scan_ports_5m").sql.contains("SETTINGS"));
        // Every rollup table is retained and rebuilt.
        for r in ROLLUPS {
            assert!(ROLLUP_TABLES.contains(&r.table), "{}", r.table);
        }
        assert_eq!(ROLLUPS.len(), ROLLUP_TABLES.len());
    }

    #[test]
    fn rollups_are_named_by_kind_and_grain() {
        for r in ROLLUPS {
            assert_eq!(
                r.table,
                format!("scan_{}_{}", r.kind.name(), r.grain.suffix()),
                "{r:?}"
            );
            assert_eq!(rollup(r.kind, r.grain), Some(r));
            assert_eq!(rollup_table(r.kind, r.grain), r.table);
            assert!(r.columns.starts_with("bucket DateTime, "), "{}", r.table);
        }
        assert_eq!(rollup_table(Kind::Regions, Grain::Day), "");
        assert_eq!(ROLLUP_TABLES[0], "scan_rollup_5m");
        assert!(month_partitioned("scan_ports_1h") && month_partitioned("scan_port_digests_1d"));
        assert!(!month_partitioned("scan_ports_5m"));
    }

    #[test]
    fn cluster_layout_has_local_and_distributed() {
        let l = Layout::Cluster {
            name: "c1".into(),
            replicated: true,
        };
        let s = steps("db", &l);
        let ev = s.iter().find(|s| s.object == "scan_events_local").unwrap();
        assert!(
            ev.sql
                .contains("ReplicatedMergeTree('/clickhouse/tables/{shard}/db/scan_events_local', '{replica}')"),
            "{}",
            ev.sql
        );
        let sensors = s.iter().find(|s| s.object == "sensors_local").unwrap();
        assert!(sensors.sql.contains("ReplicatedReplacingMergeTree("));
        assert!(sensors.sql.contains("'{replica}', version)"));
        let d = s
            .iter()
            .find(|s| s.object == "scan_events" && s.when == When::Missing)
            .unwrap();
        assert!(d
            .sql
            .contains("Distributed(c1, db, scan_events_local, cityHash64("));
        let mv = s
            .iter()
            .find(|s| s.object == "scan_rollup_1h_published_mv")
            .unwrap();
        assert!(mv.sql.contains("TO db.scan_rollup_1h_local"));
        assert!(mv.sql.contains("FROM db.scan_events_local"));
    }

    #[test]
    fn legacy_schema_and_its_upgrade() {
        let old = legacy_steps("v0", &Layout::Single);
        assert_eq!(old.len(), 38);
        let ev = old.iter().find(|s| s.object == "scan_events").unwrap();
        assert!(
            ev.sql.contains("country FixedString(2)) ENGINE"),
            "{}",
            ev.sql
        );
        let mv = old
            .iter()
            .find(|s| s.object == "scan_port_sources_5m_mv")
            .unwrap();
        assert!(
            mv.sql
                .contains("uniqState(src) AS sources FROM v0.scan_events"),
            "{}",
            mv.sql
        );
        let up = upgrade_sql("v0", &Layout::Single);
        // Two columns, the two tables added since (and the rollup's backfill), six replaced
        // views dropped, six views and the new rollup's view created.
        assert_eq!(up.len(), 2 + 3 + 6 + 7, "{up:#?}");
        assert_eq!(
            up[0],
            "ALTER TABLE v0.scan_events ADD COLUMN withheld UInt8"
        );
        assert_eq!(
            up[1],
            "ALTER TABLE v0.scan_events ADD COLUMN src_asn UInt32"
        );
        assert!(up[2].starts_with("CREATE TABLE IF NOT EXISTS v0.as_names "));
        assert!(up[4].starts_with("INSERT INTO v0.scan_networks_1h SELECT"));
        assert_eq!(up[5], "DROP TABLE IF EXISTS v0.scan_rollup_5m_mv");
        assert!(up[11]
            .starts_with("CREATE MATERIALIZED VIEW IF NOT EXISTS v0.scan_rollup_5m_published_mv"));
        let cluster = Layout::Cluster {
            name: "c1".into(),
            replicated: false,
        };
        let up = upgrade_sql("db", &cluster);
        assert_eq!(
            up[0],
            "ALTER TABLE db.scan_events_local ADD COLUMN withheld UInt8"
        );
        assert_eq!(
            up[1],
            "ALTER TABLE db.scan_events ADD COLUMN withheld UInt8"
        );
        assert_eq!(
            up[3],
            "ALTER TABLE db.scan_events ADD COLUMN src_asn UInt32"
        );
        let dist = steps("db", &cluster);
        let d = dist
            .iter()
            .find(|s| s.object == "scan_events" && s.when == When::Missing)
            .unwrap();
        assert!(
            d.sql
                .contains("withheld UInt8, src_asn UInt32) ENGINE = Distributed"),
            "{}",
            d.sql
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("18.16.1"), Some((18, 16)));
        assert_eq!(parse_version("26.9.1.1\n"), Some((26, 9)));
        assert_eq!(parse_version("x"), None);
    }
}
