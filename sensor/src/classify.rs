//! Classification of decoded events (scan, backscatter, other) and scanner fingerprints.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use teiten_wire::{
    stealth_technique, Class, Event, Tags, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};

use crate::decode::v4_bits;

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const RST: u16 = 0x04;
const ACK: u16 = 0x10;

/// ZMap's fixed IPv4 identification.
pub(crate) const ZMAP_IP_ID: u32 = 54321;
/// TTL at or above which a packet without a known tool's signature is suspected forged.
pub(crate) const SPOOF_TTL: u8 = 200;

/// Sets `class` and `tags` of a decoded event.
pub fn classify(ev: &mut Event) {
    ev.class = class_of(ev);
    ev.tags |= fingerprints(ev);
}

fn class_of(ev: &Event) -> Class {
    if ev.tags.contains(Tags::FRAGMENT) {
        return Class::Other;
    }
    match ev.proto {
        IPPROTO_TCP => {
            let f = ev.tcp_flags;
            if f & SYN != 0 && f & ACK == 0 && f & (RST | FIN) == 0 {
                Class::Scan
            } else if (f & SYN != 0 && f & ACK != 0) || f & RST != 0 {
                Class::Backscatter
            } else if stealth_technique(f).is_some() {
                Class::Scan
            } else {
                Class::Other
            }
        }
        IPPROTO_UDP if ev.sport == 53 => Class::Backscatter,
        IPPROTO_UDP => Class::Scan,
        IPPROTO_ICMP => match ev.sport {
            // Echo, timestamp, information and address-mask requests.
            8 | 13 | 15 | 17 => Class::Scan,
            // Echo reply, destination unreachable, source quench, redirect, time exceeded,
            // parameter problem, timestamp and address-mask replies.
            0 | 3 | 4 | 5 | 11 | 12 | 14 | 16 | 18 => Class::Backscatter,
            _ => Class::Other,
        },
        IPPROTO_ICMPV6 => match ev.sport {
            128 => Class::Scan,
            // Errors (1-4) and echo reply.
            1..=4 | 129 => Class::Backscatter,
            _ => Class::Other,
        },
        _ => Class::Other,
    }
}

fn fingerprints(ev: &Event) -> Tags {
    let mut tags = Tags::empty();
    let fragment = ev.tags.contains(Tags::FRAGMENT);
    if let (Some(dst), false) = (v4_bits(ev.dst), fragment) {
        if ev.ip_id == ZMAP_IP_ID {
            tags |= Tags::ZMAP;
        }
        if ev.proto == IPPROTO_TCP {
            if ev.ip_id == (dst ^ u32::from(ev.dport) ^ ev.seq) & 0xffff {
                tags |= Tags::MASSCAN;
            }
            if ev.seq == dst {
                tags |= Tags::MIRAI;
            }
        }
    }
    if ev.proto == IPPROTO_TCP && !fragment && stealth_technique(ev.tcp_flags).is_some() {
        tags |= Tags::STEALTH;
    }
    let tool_ttl = tags.intersects(Tags::MASSCAN | Tags::ZMAP);
    if (ev.ttl >= SPOOF_TTL && !tool_ttl) || ev.src == ev.dst || is_martian(ev.src) {
        tags |= Tags::SPOOF_SUSPECT;
    }
    tags
}

/// A source address that cannot legitimately arrive from the Internet (the event is tagged
/// `spoof_suspect`, and keeps its class: the raw data stays as seen).
///
/// This tag is a hint. What is published is decided by the aggregator at ingest
/// (`teiten_store::sources`): it withholds spoof suspects, every IANA special-purpose
/// address (198.18.0.0/15 included, unless configured for a lab), sources inside any sensor's
/// monitored prefixes and the sensors' own addresses from partner files and public counts.
/// 198.18.0.0/15 (RFC 2544 benchmarking) is deliberately *not* listed here: labs, including
/// ours, use it to drive real scanners at a sensor.
pub fn is_martian(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => martian_v4(a),
        IpAddr::V6(a) => martian_v6(a),
    }
}

fn martian_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    a.is_unspecified()
        || o[0] == 0
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
}

fn martian_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || a.to_ipv4_mapped().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(flags: u16) -> Event {
        Event {
            ts_us: 0,
            proto: IPPROTO_TCP,
            src: "203.0.114.9".parse().unwrap(),
            dst: "198.18.1.10".parse().unwrap(),
            sport: 40000,
            dport: 23,
            tcp_flags: flags,
            ttl: 50,
            ip_id: 1,
            ip_len: 40,
            seq: 7,
            window: 1024,
            class: Class::Other,
            tags: Tags::empty(),
        }
    }

    fn classified(mut e: Event) -> Event {
        classify(&mut e);
        e
    }

    #[test]
    fn tcp_classes() {
        assert_eq!(classified(tcp(SYN)).class, Class::Scan);
        assert_eq!(classified(tcp(SYN | ACK)).class, Class::Backscatter);
        assert_eq!(classified(tcp(RST)).class, Class::Backscatter);
        assert_eq!(classified(tcp(RST | ACK)).class, Class::Backscatter);
        assert_eq!(classified(tcp(FIN | SYN)).class, Class::Other);
        assert_eq!(classified(tcp(ACK | 0x08)).class, Class::Other, "PSH-ACK");
        assert_eq!(classified(tcp(SYN)).tags, Tags::empty());
    }

    #[test]
    fn probes_without_syn_are_stealth_scans() {
        const PSH: u16 = 0x08;
        const URG: u16 = 0x20;
        for (flags, technique) in [
            (0, "null"),
            (FIN, "fin"),
            (FIN | PSH | URG, "xmas"),
            (FIN | ACK, "maimon"),
            (ACK, "ack"),
        ] {
            let e = classified(tcp(flags));
            assert_eq!(e.class, Class::Scan, "{technique}");
            assert!(e.tags.contains(Tags::STEALTH), "{technique}");
            assert_eq!(stealth_technique(flags), Some(technique));
        }
        // Backscatter stays backscatter, and is never tagged.
        for flags in [SYN | ACK, RST, RST | ACK, FIN | RST] {
            let e = classified(tcp(flags));
            assert_eq!(e.class, Class::Backscatter, "{flags:#x}");
            assert!(!e.tags.contains(Tags::STEALTH));
        }
        // Not TCP, or a fragment: no technique.
        let mut udp = tcp(0);
        udp.proto = IPPROTO_UDP;
        assert!(!classified(udp).tags.contains(Tags::STEALTH));
        let mut frag = tcp(0);
        frag.tags = Tags::FRAGMENT;
        assert_eq!(classified(frag).tags, Tags::FRAGMENT);
    }

    #[test]
    fn udp_and_icmp_classes() {
        let mut e = tcp(0);
        e.proto = IPPROTO_UDP;
        assert_eq!(classified(e).class, Class::Scan);
        e.sport = 53;
        assert_eq!(classified(e).class, Class::Backscatter);
        e.proto = IPPROTO_ICMP;
        for (ty, class) in [
            (8, Class::Scan),
            (0, Class::Backscatter),
            (3, Class::Backscatter),
            (11, Class::Backscatter),
            (9, Class::Other),
        ] {
            e.sport = ty;
            assert_eq!(classified(e).class, class, "icmp type {ty}");
        }
        e.proto = IPPROTO_ICMPV6;
        e.src = "2a01:4f8::1".parse().unwrap();
        e.dst = "2001:db9::1".parse().unwrap();
        for (ty, class) in [
            (128, Class::Scan),
            (129, Class::Backscatter),
            (1, Class::Backscatter),
            (135, Class::Other),
        ] {
            e.sport = ty;
            assert_eq!(classified(e).class, class, "icmpv6 type {ty}");
        }
    }

    #[test]
    fn fragments_are_other() {
        let mut e = tcp(SYN);
        e.tags = Tags::FRAGMENT;
        let e = classified(e);
        assert_eq!(e.class, Class::Other);
        assert_eq!(e.tags, Tags::FRAGMENT);
    }

    #[test]
    fn zmap_fingerprint() {
        let mut e = tcp(SYN);
        e.ip_id = 54321;
        e.ttl = 255;
        assert_eq!(classified(e).tags, Tags::ZMAP);
    }

    #[test]
    fn masscan_fingerprint() {
        let mut e = tcp(SYN);
        let dst = u32::from("198.18.1.10".parse::<Ipv4Addr>().unwrap());
        e.seq = 0xdead_beef;
        e.ip_id = (dst ^ 23 ^ 0xdead_beef) & 0xffff;
        e.ttl = 255;
        assert_eq!(classified(e).tags, Tags::MASSCAN);
    }

    #[test]
    fn mirai_fingerprint() {
        let mut e = tcp(SYN);
        e.seq = u32::from("198.18.1.10".parse::<Ipv4Addr>().unwrap());
        assert!(classified(e).tags.contains(Tags::MIRAI));
    }

    #[test]
    fn spoof_suspects() {
        let mut e = tcp(SYN);
        e.ttl = 250;
        assert_eq!(classified(e).tags, Tags::SPOOF_SUSPECT);
        let mut e = tcp(SYN);
        e.src = e.dst;
        assert!(classified(e).tags.contains(Tags::SPOOF_SUSPECT));
        for src in [
            "10.1.2.3",
            "127.0.0.1",
            "0.1.2.3",
            "240.0.0.1",
            "100.64.0.1",
            "192.0.2.1",
        ] {
            let mut e = tcp(SYN);
            e.src = src.parse().unwrap();
            assert!(classified(e).tags.contains(Tags::SPOOF_SUSPECT), "{src}");
        }
        let mut e = tcp(SYN);
        e.src = "198.18.0.1".parse().unwrap();
        assert!(
            classified(e).tags.is_empty(),
            "the lab range is not martian"
        );
    }

    #[test]
    fn martian_v6_sources() {
        for a in [
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            assert!(is_martian(a.parse().unwrap()), "{a}");
        }
        assert!(!is_martian("2a01:4f8::1".parse().unwrap()));
    }
}
