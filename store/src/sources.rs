//! Which event sources may be published: in partner files and public unique-source counts.
//!
//! The aggregator decides at ingest, per event, and stores the answer in
//! `scan_events.withheld` ([`Withheld`]): 0 for a source that may be published, else the
//! reason it is withheld. Withheld events stay in the raw table (analysts see them, with the
//! reason) and count as packets, but never reach a partner file or a public unique-source
//! count. The reasons, checked in this order (the first that holds is stored):
//! 1. [`Withheld::SensorAddress`]: the source is one of `[sources] sensor_addresses` (a
//!    sensor's own management or uplink address);
//! 2. [`Withheld::MonitoredPrefix`]: the source lies in one of `[sources] monitored` (any
//!    sensor's dark prefixes), or equals the event's destination (always a dark address);
//! 3. [`Withheld::SpecialPurpose`]: the source is in the IANA IPv4 or IPv6 special-purpose
//!    address registries (RFC 6890 and its updates), in multicast, or (IPv6) outside global
//!    unicast `2000::/3`; [`special_purpose`] names the entry. Only the benchmarking ranges
//!    (`198.18.0.0/15`, `2001:2::/48`) can be exempted, prefix by prefix, with
//!    `[sources] publish_benchmarking` (labs drive real scanners from them);
//! 4. [`Withheld::SpoofSuspect`]: the sensor tagged the event `spoof_suspect`.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::joint::JointPrefixMap;
use teiten_wire::{Event, Tags};

/// Why a source is not published (`scan_events.withheld`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Withheld {
    /// Published.
    No = 0,
    /// Tagged `spoof_suspect` by the sensor.
    SpoofSuspect = 1,
    /// A special-purpose address (IANA registries, multicast, outside IPv6 global unicast).
    SpecialPurpose = 2,
    /// Inside a monitored (dark) prefix of any sensor, or the event's own destination.
    MonitoredPrefix = 3,
    /// A sensor's own address.
    SensorAddress = 4,
}

impl Withheld {
    /// Every reason, published first.
    pub const ALL: [Withheld; 5] = [
        Withheld::No,
        Withheld::SpoofSuspect,
        Withheld::SpecialPurpose,
        Withheld::MonitoredPrefix,
        Withheld::SensorAddress,
    ];

    /// The stable name (metrics label, analyst page).
    pub fn name(self) -> &'static str {
        match self {
            Withheld::No => "published",
            Withheld::SpoofSuspect => "spoof_suspect",
            Withheld::SpecialPurpose => "special_purpose",
            Withheld::MonitoredPrefix => "monitored_prefix",
            Withheld::SensorAddress => "sensor_address",
        }
    }

    /// The reason stored as `code`, if it is one.
    pub fn from_code(code: u8) -> Option<Withheld> {
        Withheld::ALL.into_iter().find(|w| *w as u8 == code)
    }
}

/// The IANA IPv4 special-purpose address registry (RFC 6890 and updates), plus multicast
/// (RFC 5771, from the address-space registry): (prefix, name).
const SPECIAL_V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (RFC 791)"),
    ("10.0.0.0/8", "private use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link local (RFC 3927)"),
    ("172.16.0.0/12", "private use (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
    ("192.52.193.0/24", "AMT (RFC 7450)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private use (RFC 1918)"),
    (
        "192.175.48.0/24",
        "direct delegation AS112 service (RFC 7534)",
    ),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    (
        "240.0.0.0/4",
        "reserved (RFC 1112), limited broadcast (RFC 919)",
    ),
];

/// The IANA IPv6 special-purpose address registry (RFC 6890 and updates), plus multicast
/// (RFC 4291) and the deprecated site-local and IPv4-compatible ranges. Everything outside
/// `2000::/3` is withheld too (see [`special_purpose`]).
const SPECIAL_V6: &[(&str, &str)] = &[
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::/96", "deprecated IPv4-compatible (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
    ("64:ff9b::/96", "IPv4-IPv6 translation (RFC 6052)"),
    (
        "64:ff9b:1::/48",
        "local-use IPv4-IPv6 translation (RFC 8215)",
    ),
    ("100::/64", "discard-only (RFC 6666)"),
    ("100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)"),
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001::/32", "TEREDO (RFC 4380)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056)"),
    (
        "2620:4f:8000::/48",
        "direct delegation AS112 service (RFC 7534)",
    ),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing SIDs (RFC 9602)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local unicast (RFC 4291)"),
    ("fec0::/10", "deprecated site-local (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
];

/// The ranges `[sources] publish_benchmarking` may exempt.
pub const BENCHMARKING: [&str; 2] = ["198.18.0.0/15", "2001:2::/48"];

fn registry() -> &'static JointPrefixMap<IpNet, &'static str> {
    static R: std::sync::OnceLock<JointPrefixMap<IpNet, &'static str>> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let mut m = JointPrefixMap::new();
        for (p, name) in SPECIAL_V4.iter().chain(SPECIAL_V6) {
            m.insert(p.parse::<IpNet>().expect("registry prefixes parse"), *name);
        }
        m
    })
}

/// IPv4-mapped IPv6 addresses as IPv4 (how they are stored).
fn unmapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

fn host(a: IpAddr) -> IpNet {
    match a {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::from(v4)),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::from(v6)),
    }
}

/// The special-purpose registry entry holding `addr` (the most specific one), if any. IPv6
/// outside global unicast `2000::/3` is special-purpose ("not global unicast"). IPv4-mapped
/// addresses are looked up as IPv4.
pub fn special_purpose(addr: IpAddr) -> Option<&'static str> {
    let a = unmapped(addr);
    if let Some((_, name)) = registry().get_lpm(&host(a)) {
        return Some(name);
    }
    match a {
        IpAddr::V6(v6) if v6.segments()[0] & 0xe000 != 0x2000 => {
            Some("not global unicast (outside 2000::/3, RFC 4291)")
        }
        _ => None,
    }
}

/// Parses an address or a prefix (`192.0.2.1`, `2001:db8::/32`); a prefix must have no host
/// bits set.
pub fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(host(unmapped(a)));
    }
    let net: IpNet = t
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address or prefix (a.b.c.d/n, x::/n)"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{text}` has host bits set; the prefix is `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

/// The configured prefixes, checked (the aggregator's `[sources]`), as lookup tables.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    monitored: JointPrefixMap<IpNet, ()>,
    sensors: JointPrefixMap<IpNet, ()>,
    published_benchmarking: JointPrefixMap<IpNet, ()>,
    research: JointPrefixMap<IpNet, ()>,
}

fn table(nets: &[IpNet]) -> JointPrefixMap<IpNet, ()> {
    let mut m = JointPrefixMap::new();
    for n in nets {
        m.insert(*n, ());
    }
    m
}

fn covers(m: &JointPrefixMap<IpNet, ()>, a: IpAddr) -> bool {
    m.get_spm(&host(a)).is_some()
}

impl SourcePolicy {
    /// A policy from checked prefixes.
    pub fn new(monitored: &[IpNet], sensors: &[IpNet], publish_benchmarking: &[IpNet]) -> Self {
        SourcePolicy {
            monitored: table(monitored),
            sensors: table(sensors),
            published_benchmarking: table(publish_benchmarking),
            research: JointPrefixMap::new(),
        }
    }

    /// The same policy with the prefixes of known research scanners ([`Tags::RESEARCH`]).
    pub fn with_research(mut self, research: &[IpNet]) -> Self {
        self.research = table(research);
        self
    }

    /// Whether `src` is a known research scanner's.
    pub fn is_research(&self, src: IpAddr) -> bool {
        covers(&self.research, unmapped(src))
    }

    /// Sets or clears [`Tags::RESEARCH`] of an event from the configured list: the sensor's
    /// own value never counts.
    pub fn mark_research(&self, e: &mut Event) {
        e.tags.set(Tags::RESEARCH, self.is_research(e.src));
    }

    /// Whether no monitored prefix is configured.
    pub fn monitors_nothing(&self) -> bool {
        self.monitored.is_empty()
    }

    /// Why the source of `src` (sent to `dst`, tagged `tags`) is withheld, or
    /// [`Withheld::No`].
    pub fn withheld(&self, src: IpAddr, dst: IpAddr, tags: Tags) -> Withheld {
        let a = unmapped(src);
        if covers(&self.sensors, a) {
            return Withheld::SensorAddress;
        }
        if a == unmapped(dst) || covers(&self.monitored, a) {
            return Withheld::MonitoredPrefix;
        }
        if special_purpose(a).is_some() && !covers(&self.published_benchmarking, a) {
            return Withheld::SpecialPurpose;
        }
        if tags.contains(Tags::SPOOF_SUSPECT) {
            return Withheld::SpoofSuspect;
        }
        Withheld::No
    }

    /// [`SourcePolicy::withheld`] of an event.
    pub fn of_event(&self, e: &Event) -> Withheld {
        self.withheld(e.src, e.dst, e.tags)
    }
}

/// A withheld source of a period, for analysts: a row of [`crate::queries::withheld_sources`].
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
pub struct WithheldSource {
    /// The address (IPv4 dotted, IPv6 compressed).
    pub source: String,
    /// The [`Withheld`] code.
    pub withheld: u8,
    /// Events from it.
    pub packets: u64,
    /// First seen (Unix seconds).
    pub first_seen: u32,
    /// Last seen (Unix seconds).
    pub last_seen: u32,
    /// Sensors that saw it.
    pub sensors: u64,
    /// Distinct (protocol, destination port) pairs.
    pub ports: u64,
}

impl WithheldSource {
    /// The reason's name, and for special-purpose sources the registry entry.
    pub fn reason(&self) -> String {
        let w = Withheld::from_code(self.withheld);
        match (
            w,
            self.source.parse::<IpAddr>().ok().and_then(special_purpose),
        ) {
            (Some(Withheld::SpecialPurpose), Some(entry)) => format!("special_purpose: {entry}"),
            (Some(w), _) => w.name().to_owned(),
            (None, _) => format!("unknown ({})", self.withheld),
        }
    }
}

/// Events and distinct sources of a period with one [`Withheld`] code: a row of
/// [`crate::queries::withheld_counts`].
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
pub struct WithheldCount {
    /// The code (0: published).
    pub withheld: u8,
    /// Events.
    pub events: u64,
    /// Distinct sources.
    pub sources: u64,
}

/// Whether `net` lies inside one of the [`BENCHMARKING`] ranges.
pub fn is_benchmarking(net: &IpNet) -> bool {
    BENCHMARKING.iter().any(|b| {
        b.parse::<IpNet>()
            .expect("benchmarking ranges parse")
            .contains(net)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn registry_entries_and_their_names() {
        for (a, name) in [
            ("10.1.2.3", "private use (RFC 1918)"),
            ("127.0.0.1", "loopback (RFC 1122)"),
            ("0.1.2.3", "\"this network\" (RFC 791)"),
            ("224.0.0.251", "multicast (RFC 5771)"),
            (
                "255.255.255.255",
                "reserved (RFC 1112), limited broadcast (RFC 919)",
            ),
            ("100.64.0.1", "shared address space (RFC 6598)"),
            ("192.0.0.9", "IETF protocol assignments (RFC 6890)"),
            ("198.19.255.1", "benchmarking (RFC 2544)"),
            ("::1", "loopback (RFC 4291)"),
            ("::ffff:10.0.0.1", "private use (RFC 1918)"),
            ("2001:2::5", "benchmarking (RFC 5180)"),
            ("2001:db8::1", "documentation (RFC 3849)"),
            ("2001:0:1::1", "TEREDO (RFC 4380)"),
            ("2001:10::1", "IETF protocol assignments (RFC 2928)"),
            ("3fff::1", "documentation (RFC 9637)"),
            ("fd00::1", "unique local (RFC 4193)"),
            ("fe80::1", "link-local unicast (RFC 4291)"),
            ("ff02::1", "multicast (RFC 4291)"),
            ("64:ff9b::1.2.3.4", "IPv4-IPv6 translation (RFC 6052)"),
            ("4000::1", "not global unicast (outside 2000::/3, RFC 4291)"),
        ] {
            assert_eq!(special_purpose(ip(a)), Some(name), "{a}");
        }
        for a in [
            "1.0.0.1",
            "8.8.8.8",
            "192.0.3.1",
            "198.20.0.1",
            "2a01:4f8::1",
            "2001:200::1",
        ] {
            assert_eq!(special_purpose(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn research_scanners_are_marked_from_the_list_only() {
        let p = SourcePolicy::default().with_research(&[
            parse_prefix("192.0.2.0/24").unwrap(),
            parse_prefix("2001:db8:1::/48").unwrap(),
        ]);
        assert!(p.is_research(ip("192.0.2.9")));
        assert!(p.is_research(ip("::ffff:192.0.2.9")));
        assert!(p.is_research(ip("2001:db8:1::7")));
        assert!(!p.is_research(ip("192.0.3.1")));
        let mut e = Event {
            ts_us: 0,
            proto: 6,
            src: ip("192.0.3.1"),
            dst: ip("198.18.1.10"),
            sport: 1,
            dport: 2,
            tcp_flags: 2,
            ttl: 50,
            ip_id: 1,
            ip_len: 40,
            seq: 1,
            window: 1024,
            class: teiten_wire::Class::Scan,
            tags: Tags::RESEARCH | Tags::ZMAP,
        };
        // A sensor's own research mark is dropped; the list's is set.
        p.mark_research(&mut e);
        assert_eq!(e.tags, Tags::ZMAP);
        e.src = ip("192.0.2.9");
        p.mark_research(&mut e);
        assert_eq!(e.tags, Tags::ZMAP | Tags::RESEARCH);
    }

    #[test]
    fn reasons_in_order() {
        let p = SourcePolicy::new(
            &[
                parse_prefix("198.18.1.0/24").unwrap(),
                parse_prefix("203.0.113.0/25").unwrap(),
            ],
            &[parse_prefix("198.18.0.2").unwrap()],
            &[parse_prefix("198.18.0.0/16").unwrap()],
        );
        let dark = ip("198.18.1.10");
        let w = |src: &str, tags| p.withheld(ip(src), dark, tags);
        assert_eq!(w("1.0.0.1", Tags::empty()), Withheld::No);
        assert_eq!(w("1.0.0.1", Tags::SPOOF_SUSPECT), Withheld::SpoofSuspect);
        assert_eq!(w("10.0.0.1", Tags::SPOOF_SUSPECT), Withheld::SpecialPurpose);
        assert_eq!(w("198.18.1.10", Tags::empty()), Withheld::MonitoredPrefix);
        assert_eq!(w("198.18.1.77", Tags::empty()), Withheld::MonitoredPrefix);
        // Monitored wins over special-purpose (another sensor's dark prefix in TEST-NET-3).
        assert_eq!(w("203.0.113.5", Tags::empty()), Withheld::MonitoredPrefix);
        assert_eq!(w("203.0.113.200", Tags::empty()), Withheld::SpecialPurpose);
        assert_eq!(w("198.18.0.2", Tags::empty()), Withheld::SensorAddress);
        assert_eq!(
            w("::ffff:198.18.0.2", Tags::empty()),
            Withheld::SensorAddress
        );
        // The published benchmarking prefix, but only it.
        assert_eq!(w("198.18.0.1", Tags::empty()), Withheld::No);
        assert_eq!(w("198.19.0.1", Tags::empty()), Withheld::SpecialPurpose);
        // Source equal to destination, with no monitored prefix configured.
        let none = SourcePolicy::default();
        assert!(none.monitors_nothing());
        assert_eq!(
            none.withheld(ip("5.6.7.8"), ip("5.6.7.8"), Tags::empty()),
            Withheld::MonitoredPrefix
        );
        assert_eq!(
            none.withheld(ip("198.18.0.1"), dark, Tags::empty()),
            Withheld::SpecialPurpose,
            "the benchmarking range is withheld by default"
        );
        assert_eq!(
            none.withheld(ip("2001:2::1"), ip("2001:db8::1"), Tags::empty()),
            Withheld::SpecialPurpose
        );
        for w in Withheld::ALL {
            assert_eq!(Withheld::from_code(w as u8), Some(w));
        }
        assert_eq!(Withheld::from_code(9), None);
    }

    #[test]
    fn prefixes_parse_with_reasons() {
        assert_eq!(
            parse_prefix("192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_prefix(" 2001:db8::/32 ").unwrap().to_string(),
            "2001:db8::/32"
        );
        let e = parse_prefix("198.18.1.5/24").unwrap_err();
        assert!(
            e.contains("host bits") && e.contains("198.18.1.0/24"),
            "{e}"
        );
        assert!(parse_prefix("nope")
            .unwrap_err()
            .contains("not an IP address"));
        assert!(is_benchmarking(&parse_prefix("198.18.0.0/24").unwrap()));
        assert!(is_benchmarking(&parse_prefix("2001:2::/64").unwrap()));
        assert!(!is_benchmarking(&parse_prefix("198.0.0.0/8").unwrap()));
        assert!(!is_benchmarking(&parse_prefix("10.0.0.0/8").unwrap()));
    }
}
