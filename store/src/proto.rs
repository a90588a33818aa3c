//! The codes rows are made of: IP protocol numbers and their names, and the country code
//! stored for a source no geo database places.
//!
//! The numbers are teiten-wire's (`IPPROTO_*`, what the sensor decodes); every name, parse and
//! the unknown-country code live here, so the dashboard, the exchange and the aggregator agree.

use teiten_wire::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};

/// An IP protocol the project names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// ICMP (1).
    Icmp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMPv6 (58).
    Icmpv6,
}

impl Proto {
    /// Every named protocol.
    pub const ALL: [Proto; 4] = [Proto::Icmp, Proto::Tcp, Proto::Udp, Proto::Icmpv6];

    /// The IP protocol number (the `proto` column).
    pub const fn number(self) -> u8 {
        match self {
            Proto::Icmp => IPPROTO_ICMP,
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
            Proto::Icmpv6 => IPPROTO_ICMPV6,
        }
    }

    /// The lower-case name (`tcp`, `udp`, `icmp`, `icmpv6`).
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Icmp => "icmp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmpv6 => "icmpv6",
        }
    }

    /// The protocol of a number, if it is named.
    pub fn from_number(n: u8) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.number() == n)
    }

    /// The protocol of a lower-case name.
    pub fn parse(name: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The name of a protocol number for tables and reports: its name, or the number.
pub fn proto_name(n: u8) -> String {
    Proto::from_number(n).map_or_else(|| n.to_string(), |p| p.name().to_owned())
}

/// The country code stored for addresses no geo range covers (and for tor's own `??`).
pub const UNKNOWN_COUNTRY: [u8; 2] = *b"??";

/// [`UNKNOWN_COUNTRY`] as text, as `toString(country)` reads it.
pub const UNKNOWN_COUNTRY_TEXT: &str = "??";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        for p in Proto::ALL {
            assert_eq!(Proto::from_number(p.number()), Some(p));
            assert_eq!(Proto::parse(p.name()), Some(p));
        }
        assert_eq!(Proto::Tcp.number(), 6);
        assert_eq!(Proto::Udp.number(), 17);
        assert_eq!(Proto::Icmp.number(), 1);
        assert_eq!(Proto::Icmpv6.number(), 58);
        assert_eq!(proto_name(58), "icmpv6");
        assert_eq!(proto_name(132), "132");
        assert_eq!(Proto::parse("TCP"), None);
        assert_eq!(UNKNOWN_COUNTRY_TEXT.as_bytes(), UNKNOWN_COUNTRY);
    }
}
