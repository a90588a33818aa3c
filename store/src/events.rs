//! The raw event row (`scan_events`), its one column list: the DDL, the INSERT (the row type
//! [`EventRow`], whose fields are in this order) and the sample rows are made from
//! [`EVENT_COLUMNS`]; the SELECTs name these columns.

use clickhouse::Row;
use serde::Serialize;

/// The columns of `scan_events` in table (and insert) order: name and type. The first
/// [`LEGACY_EVENT_COLUMNS`] are those of the first release; the rest were added by upgrades
/// (`withheld`, then `src_asn`), each appended by `ALTER TABLE ... ADD COLUMN` where missing.
pub const EVENT_COLUMNS: &[(&str, &str)] = &[
    ("sensor_id", "String"),
    ("epoch", "UInt64"),
    ("batch_seq", "UInt64"),
    ("idx", "UInt32"),
    ("ts", "DateTime"),
    ("usec", "UInt32"),
    ("proto", "UInt8"),
    ("src", "FixedString(16)"),
    ("dst", "FixedString(16)"),
    ("sport", "UInt16"),
    ("dport", "UInt16"),
    ("tcp_flags", "UInt16"),
    ("ttl", "UInt8"),
    ("ip_id", "UInt32"),
    ("ip_len", "UInt32"),
    ("tcp_seq", "UInt32"),
    ("window", "UInt16"),
    ("class", "Enum8('scan' = 0, 'backscatter' = 1, 'other' = 2)"),
    ("tags", "UInt8"),
    ("country", "FixedString(2)"),
    ("withheld", "UInt8"),
    ("src_asn", "UInt32"),
];

/// How many of [`EVENT_COLUMNS`] the first release's table had (all but `withheld` and
/// `src_asn`).
pub const LEGACY_EVENT_COLUMNS: usize = 20;

/// The column list of the DDL (`name Type, ...`), of the current table or of the first
/// release's (`legacy`).
pub fn columns_ddl(legacy: bool) -> String {
    let n = if legacy {
        LEGACY_EVENT_COLUMNS
    } else {
        EVENT_COLUMNS.len()
    };
    EVENT_COLUMNS[..n]
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The column names in insert order (`sensor_id, epoch, ...`).
pub fn column_names() -> String {
    EVENT_COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row of `scan_events`; fields in the order of [`EVENT_COLUMNS`] (RowBinary is
/// positional; a test checks the names).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct EventRow<'a> {
    /// The sensor.
    pub sensor_id: &'a str,
    /// The sensor's epoch (restart counter).
    pub epoch: u64,
    /// The batch's sequence number in the epoch.
    pub batch_seq: u64,
    /// The event's index in the batch.
    pub idx: u32,
    /// Capture time, Unix seconds.
    pub ts: u32,
    /// Microseconds within the second.
    pub usec: u32,
    /// IP protocol number ([`crate::proto::Proto`]).
    pub proto: u8,
    /// [`Event::src`](teiten_wire::Event::src) as 16 bytes (IPv4-mapped).
    pub src: [u8; 16],
    /// [`Event::dst`](teiten_wire::Event::dst) (the sensor's address) as 16 bytes.
    pub dst: [u8; 16],
    /// The wire event's [`Event::sport`](teiten_wire::Event::sport) (TCP/UDP port, ICMP type).
    pub sport: u16,
    /// [`Event::dport`](teiten_wire::Event::dport) (TCP/UDP port, ICMP code).
    pub dport: u16,
    /// [`Event::tcp_flags`](teiten_wire::Event::tcp_flags).
    pub tcp_flags: u16,
    /// [`Event::ttl`](teiten_wire::Event::ttl) (or hop limit).
    pub ttl: u8,
    /// [`Event::ip_id`](teiten_wire::Event::ip_id).
    pub ip_id: u32,
    /// [`Event::ip_len`](teiten_wire::Event::ip_len).
    pub ip_len: u32,
    /// [`Event::seq`](teiten_wire::Event::seq), renamed: `seq` would read as the batch's.
    pub tcp_seq: u32,
    /// [`Event::window`](teiten_wire::Event::window).
    pub window: u16,
    /// The class (`Enum8` value: 0 scan, 1 backscatter, 2 other).
    pub class: i8,
    /// Tag bits.
    pub tags: u8,
    /// Source country, alpha-2 ([`crate::proto::UNKNOWN_COUNTRY`] when unknown).
    pub country: [u8; 2],
    /// Why the source is withheld (0: published; [`crate::sources::Withheld`]).
    pub withheld: u8,
    /// The source's autonomous system (0: unknown).
    pub src_asn: u32,
}

/// The columns added to `scan_events` after the first release, in the order they were added.
pub fn added_columns() -> &'static [(&'static str, &'static str)] {
    &EVENT_COLUMNS[LEGACY_EVENT_COLUMNS..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_type_has_the_columns_in_order() {
        let names: Vec<&str> = EVENT_COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(<EventRow<'static> as Row>::COLUMN_NAMES, names.as_slice());
        assert_eq!(
            EVENT_COLUMNS[LEGACY_EVENT_COLUMNS],
            crate::schema::WITHHELD_COLUMN
        );
        assert!(columns_ddl(true).ends_with("country FixedString(2)"));
        assert!(
            columns_ddl(false).ends_with("country FixedString(2), withheld UInt8, src_asn UInt32")
        );
        assert_eq!(added_columns()[1], ("src_asn", "UInt32"));
        assert!(column_names().starts_with("sensor_id, epoch, batch_seq, idx, ts,"));
    }
}
