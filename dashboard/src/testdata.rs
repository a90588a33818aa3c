//! Synthetic scan data for tests, benchmarks and demos, generated inside ClickHouse with
//! `INSERT ... SELECT ... FROM numbers()` (fast: no rows cross the network). The values are
//! realistic in shape: most packets go to a few well-known scan targets (Telnet, SMB, SSH, RDP,
//! ...), sources are IPv4 addresses (IPv4-mapped) with a stable country each, sensors watch
//! `198.18.<n>.0/24` (the "sensor addresses" the public pages must never show).
//!
//! These statements are built from the generator's own numbers, never from a request.

/// TCP ports scanned most, in descending popularity.
pub const POPULAR_PORTS: [u16; 16] = [
    23, 445, 22, 80, 3389, 443, 8080, 5060, 1433, 3306, 6379, 2323, 5555, 81, 8443, 25,
];

/// UDP ports scanned most (reflection and discovery), in descending popularity.
pub const POPULAR_UDP_PORTS: [u16; 10] = [53, 123, 161, 1900, 5060, 11211, 389, 137, 500, 19];

/// Source countries, most sources first.
pub const COUNTRIES: [&str; 12] = [
    "CN", "US", "RU", "BR", "IN", "NL", "DE", "VN", "KR", "TW", "JP", "??",
];

/// A generated data set.
#[derive(Debug, Clone)]
pub struct Synth {
    /// The database (a checked identifier).
    pub db: String,
    /// Sensor ids; sensor `i` (from 0) watches `198.18.i.0/24`.
    pub sensors: Vec<String>,
    /// First event time (Unix seconds).
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
    /// Number of events.
    pub events: u64,
    /// Size of the source address population.
    pub sources: u64,
    /// Salt of the hashes (different data sets from the same numbers).
    pub seed: u64,
}

/// The address of sensor `i`, host `h` (for tests that look for it).
pub fn sensor_address(i: usize, h: u8) -> String {
    format!("198.18.{i}.{h}")
}

fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

impl Synth {
    /// The tests' month: `events` events from 20,000 sources over the 31 days before `now`,
    /// seen by four sensors (tokyo-1, osaka-1, sapporo-1, naha-1).
    pub fn month(db: &str, now: i64, events: u64, seed: u64) -> Synth {
        Synth {
            db: db.into(),
            sensors: ["tokyo-1", "osaka-1", "sapporo-1", "naha-1"]
                .map(String::from)
                .to_vec(),
            from: now - 31 * 86_400,
            to: now,
            events,
            sources: 20_000,
            seed,
        }
    }

    /// What loads the whole set: the sensors, their reports and every event.
    pub fn load_sql(&self) -> [String; 3] {
        [
            self.sensors_sql(),
            self.reports_sql(),
            self.events_sql(0, self.events),
        ]
    }

    /// The registry rows of the sensors.
    pub fn sensors_sql(&self) -> String {
        let rows: Vec<String> = self
            .sensors
            .iter()
            .map(|s| {
                format!(
                    "('{s}', '{}', 0, toDateTime({}), 1)",
                    "0".repeat(64),
                    self.from
                )
            })
            .collect();
        format!(
            "INSERT INTO {}.sensors (sensor_id, token_sha256, revoked, changed, version) VALUES {}",
            self.db,
            rows.join(", ")
        )
    }

    /// Sensor reports: one per sensor every 5 minutes of the last hour before `to`.
    pub fn reports_sql(&self) -> String {
        let mut rows = Vec::new();
        for (i, s) in self.sensors.iter().enumerate() {
            for k in 0..12i64 {
                let t = self.to - 3600 + k * 300;
                rows.push(format!(
                    "('{s}', 1, {k}, toDateTime({t}), {us}, 500, 3, {cap}, {drops}, {cap}, 0, 0, {spool}, 0)",
                    us = t * 1_000_000,
                    cap = 1_000_000 + k * 600 + i as i64,
                    drops = i as i64 * 10 + k,
                    spool = if i == 0 { 4096 } else { 0 },
                ));
            }
        }
        format!(
            "INSERT INTO {}.sensor_reports (sensor_id, epoch, batch_seq, received, sealed_us, \
             events, unknown_country, packets_captured, kernel_drops, events_recorded, filtered, \
             malformed, spool_bytes, spool_dropped_events) VALUES {}",
            self.db,
            rows.join(", ")
        )
    }

    /// Events `offset .. offset + count` of the data set (times rise with the number, so each
    /// chunk fills few day partitions).
    pub fn events_sql(&self, offset: u64, count: u64) -> String {
        let span = (self.to - self.from).max(1) as u64;
        let sensors = array(self.sensors.iter().map(|s| format!("'{s}'")));
        let ports = array(POPULAR_PORTS.iter().map(|p| p.to_string()));
        let udp_ports = array(POPULAR_UDP_PORTS.iter().map(|p| p.to_string()));
        let nu = POPULAR_UDP_PORTS.len();
        let countries = array(COUNTRIES.iter().map(|c| format!("'{c}'")));
        let (np, nc, ns) = (POPULAR_PORTS.len(), COUNTRIES.len(), self.sensors.len());
        format!(
            "INSERT INTO {db}.scan_events (sensor_id, epoch, batch_seq, idx, ts, usec, proto, src, \
             dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country, \
             src_asn) \
             SELECT \
               arrayElement({sensors}, 1 + h % {ns}) AS sensor_id, \
               {seed} AS epoch, intDiv(number, 1000) AS batch_seq, toUInt32(number % 1000) AS idx, \
               toDateTime({from} + intDiv(number * {span}, {total})) AS ts, \
               toUInt32(h % 1000000) AS usec, \
               toUInt8(multiIf(h2 % 100 < 80, 6, h2 % 100 < 95, 17, 1)) AS proto, \
               toFixedString(IPv6StringToNum(concat('::ffff:', IPv4NumToString(toUInt32(16777216 + s * 7919)))), 16) AS src, \
               toFixedString(IPv6StringToNum(concat('::ffff:198.18.', toString(h % {ns}), '.', toString(1 + h3 % 250))), 16) AS dst, \
               toUInt16(1024 + h3 % 60000) AS sport, \
               toUInt16(multiIf(proto = 1, 0, h2 % 10 = 0, 1 + intDiv(h2, 7) % 65535, proto = 6, \
                 arrayElement({ports}, toUInt32(1 + floor({np} * pow((intDiv(h2, 1000) % 1000) / 1000, 3)))), \
                 arrayElement({udp_ports}, toUInt32(1 + floor({nu} * pow((intDiv(h2, 1000) % 1000) / 1000, 3)))))) AS dport, \
               toUInt16(2) AS tcp_flags, toUInt8(32 + h3 % 200) AS ttl, toUInt32(h3 % 65536) AS ip_id, \
               toUInt32(40) AS ip_len, toUInt32(h % 4294967296) AS tcp_seq, toUInt16(1024) AS window, \
               'scan' AS class, toUInt8(0) AS tags, \
               toFixedString(arrayElement({countries}, toUInt32(1 + floor({nc} * pow((s % 1000) / 1000, 2)))), 2) AS country, \
               toUInt32(64496 + s % 16) AS src_asn \
             FROM (SELECT number, cityHash64(number, {seed}) AS h, cityHash64(number, {seed}, 2) AS h2, \
                   cityHash64(number, {seed}, 3) AS h3, \
                   toUInt64(floor({nsrc} * pow((cityHash64(number, {seed}, 4) % 1000000) / 1000000, 2))) AS s \
                   FROM numbers({offset}, {count}))",
            db = self.db,
            seed = self.seed,
            from = self.from,
            total = self.events.max(1),
            nsrc = self.sources.max(1),
        )
    }

    /// A surge: `count` TCP packets to `port` from `sources` sources (from 203.0.113.0 up, all
    /// in VN) in the last `hours` before `to`, for the trends box.
    pub fn surge_sql(&self, port: u16, count: u64, sources: u64, hours: u64) -> String {
        let span = hours * 3600;
        format!(
            "INSERT INTO {db}.scan_events (sensor_id, epoch, batch_seq, idx, ts, usec, proto, src, \
             dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country) \
             SELECT arrayElement({sensors}, 1 + number % {ns}), {epoch}, intDiv(number, 1000), \
               toUInt32(number % 1000), toDateTime({start} + intDiv(number * {span}, {count})), 0, \
               toUInt8(6), \
               toFixedString(IPv6StringToNum(concat('::ffff:', IPv4NumToString(toUInt32(3405803776 + number % {sources})))), 16), \
               toFixedString(IPv6StringToNum(concat('::ffff:198.18.', toString(number % {ns}), '.9')), 16), \
               toUInt16(40000), toUInt16({port}), toUInt16(2), toUInt8(50), toUInt32(0), toUInt32(40), \
               toUInt32(0), toUInt16(1024), 'scan', toUInt8(0), toFixedString('VN', 2) \
             FROM numbers({count})",
            db = self.db,
            sensors = array(self.sensors.iter().map(|s| format!("'{s}'"))),
            ns = self.sensors.len(),
            epoch = self.seed + 1_000_000,
            start = self.to - span as i64,
        )
    }
}
