use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// One inbound packet seen by a sensor on its dark prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Capture time in microseconds since the Unix epoch (kernel or file timestamp).
    pub ts_us: i64,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, others as seen).
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address (a sensor address: never disclosed outside the CSIRT).
    pub dst: IpAddr,
    /// TCP/UDP source port; ICMP/ICMPv6 type; 0 for other protocols and later fragments.
    pub sport: u16,
    /// TCP/UDP destination port; ICMP/ICMPv6 code; 0 for other protocols and later fragments.
    pub dport: u16,
    /// TCP flags (the 9 low bits: FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS); 0 otherwise.
    pub tcp_flags: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification, or the IPv6 fragment header's identification (0 without one).
    pub ip_id: u32,
    /// IP length: IPv4 total length, or IPv6 payload length plus the 40-byte header.
    pub ip_len: u32,
    /// TCP sequence number; 0 otherwise.
    pub seq: u32,
    /// TCP window; 0 otherwise.
    pub window: u16,
    /// What kind of traffic this is.
    pub class: Class,
    /// Scanner fingerprints and other marks.
    pub tags: Tags,
}

/// The kind of traffic an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Class {
    /// A probe: TCP SYN without ACK, UDP, ICMP echo request.
    Scan = 0,
    /// Replies to spoofed traffic: SYN-ACK, RST, ICMP errors and echo replies, UDP from port 53.
    Backscatter = 1,
    /// Anything else.
    Other = 2,
}

impl Class {
    /// The lowercase name used in JSON, logs and ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Scan => "scan",
            Class::Backscatter => "backscatter",
            Class::Other => "other",
        }
    }
}

bitflags::bitflags! {
    /// Marks attached to an event by the sensor's classifier.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct Tags: u8 {
        /// ZMap's fixed IP identification 54321.
        const ZMAP = 1;
        /// Masscan's IP identification: (dst ^ dport ^ seq) & 0xffff.
        const MASSCAN = 1 << 1;
        /// Mirai's TCP sequence number equal to the destination address.
        const MIRAI = 1 << 2;
        /// The source address is probably forged (high TTL without a known tool's mark,
        /// source equal to destination, reserved or martian source).
        const SPOOF_SUSPECT = 1 << 3;
        /// A later IP fragment: it carries no transport header, so no ports.
        const FRAGMENT = 1 << 4;
        /// A TCP port probe without SYN (nmap's FIN, NULL, Xmas, Maimon, ACK and window
        /// scans): classed `scan`; [`stealth_technique`] names the technique from the flags.
        const STEALTH = 1 << 5;
        /// A known research scanner's source: set by the aggregator at ingest from its
        /// configured list (`[sources] research`), whatever the sensor sent.
        const RESEARCH = 1 << 6;
    }
}

/// The technique of a TCP probe without SYN, as port scanners send them, from its flags
/// (exactly these flags, nothing else set): `null` (none), `fin`, `xmas` (FIN, PSH, URG),
/// `maimon` (FIN, ACK) and `ack` (ACK alone: nmap's ACK scan and window scan send the same
/// packet). `None` for any other flags: SYN, RST and SYN-ACK are not stealth probes.
pub fn stealth_technique(tcp_flags: u16) -> Option<&'static str> {
    const FIN: u16 = 0x01;
    const PSH: u16 = 0x08;
    const ACK: u16 = 0x10;
    const URG: u16 = 0x20;
    match tcp_flags {
        0 => Some("null"),
        FIN => Some("fin"),
        x if x == FIN | PSH | URG => Some("xmas"),
        x if x == FIN | ACK => Some("maimon"),
        ACK => Some("ack"),
        _ => None,
    }
}

impl Tags {
    /// The names of the set tags, in a fixed order, as used in JSON and ClickHouse.
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: [(Tags, &str); 7] = [
            (Tags::ZMAP, "zmap"),
            (Tags::MASSCAN, "masscan"),
            (Tags::MIRAI, "mirai"),
            (Tags::SPOOF_SUSPECT, "spoof_suspect"),
            (Tags::FRAGMENT, "fragment"),
            (Tags::STEALTH, "stealth"),
            (Tags::RESEARCH, "research"),
        ];
        NAMES
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect()
    }
}
