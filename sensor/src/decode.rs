//! Packet decoding: pure functions over `&[u8]`, one per layer, each checking its own lengths
//! before handing the bytes to pnet's views (which check only the minimum size).

use std::net::IpAddr;

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::{ExtensionPacket, FragmentPacket, Ipv6Packet};
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use pnet_packet::vlan::VlanPacket;
use teiten_wire::{Class, Event, Tags, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};

/// The link layer of a capture (libpcap's DLT values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB: Ethernet, with any number of 802.1Q / 802.1ad tags (up to [`MAX_VLAN_TAGS`]).
    Ethernet,
    /// DLT_LINUX_SLL: Linux cooked capture v1 (`-i any`).
    LinuxSll,
    /// DLT_LINUX_SLL2: Linux cooked capture v2.
    LinuxSll2,
    /// DLT_RAW and friends: the frame starts with the IP header.
    Raw,
    /// DLT_NULL / DLT_LOOP: a 4-byte address family, then IP.
    Null,
}

impl LinkType {
    /// Maps a libpcap data-link type to the ones the decoder handles.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            12 | 14 | 101 | 228 | 229 => Some(LinkType::Raw),
            0 | 108 => Some(LinkType::Null),
            _ => None,
        }
    }
}

/// Most VLAN tags peeled off one frame (QinQ is two).
pub(crate) const MAX_VLAN_TAGS: usize = 4;
/// Most IPv6 extension headers followed before giving up.
const MAX_IPV6_EXTENSIONS: usize = 8;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A header is cut short.
    #[error("{layer} header truncated: need {need} bytes at offset {offset}, frame has {have}")]
    Truncated {
        /// The layer being decoded.
        layer: &'static str,
        /// Bytes the header needs.
        need: usize,
        /// Where the header starts in the frame.
        offset: usize,
        /// The frame's captured length.
        have: usize,
    },
    /// A length or version field is impossible.
    #[error("{layer} header invalid at offset {offset}: {what}")]
    Invalid {
        /// The layer being decoded.
        layer: &'static str,
        /// Where the header starts in the frame.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// Decodes one captured frame into an event with class [`Class::Other`] and no tags (see
/// [`crate::classify`]). `Ok(None)` is a well-formed frame that carries no IP packet (ARP,
/// LLDP, ...).
pub fn decode(link: LinkType, ts_us: i64, frame: &[u8]) -> Result<Option<Event>, DecodeError> {
    let Some((ethertype, off)) = link_layer(link, frame)? else {
        return Ok(None);
    };
    match ethertype {
        ETH_IPV4 => ipv4(ts_us, frame, off).map(Some),
        ETH_IPV6 => ipv6(ts_us, frame, off).map(Some),
        _ => Ok(None),
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;

fn need(layer: &'static str, frame: &[u8], offset: usize, len: usize) -> Result<(), DecodeError> {
    if frame.len() < offset.saturating_add(len) {
        return Err(DecodeError::Truncated {
            layer,
            need: len,
            offset,
            have: frame.len(),
        });
    }
    Ok(())
}

/// Returns the ethertype of the network layer and its offset.
fn link_layer(link: LinkType, frame: &[u8]) -> Result<Option<(u16, usize)>, DecodeError> {
    match link {
        LinkType::Ethernet => {
            need("ethernet", frame, 0, EthernetPacket::minimum_packet_size())?;
            let eth = EthernetPacket::new(frame).expect("length checked");
            let mut ethertype = eth.get_ethertype();
            let mut off = EthernetPacket::minimum_packet_size();
            let mut tags = 0;
            while matches!(
                ethertype,
                EtherTypes::Vlan | EtherTypes::PBridge | EtherTypes::QinQ
            ) {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(DecodeError::Invalid {
                        layer: "vlan",
                        offset: off,
                        what: "more than 4 stacked VLAN tags",
                    });
                }
                need("vlan", frame, off, VlanPacket::minimum_packet_size())?;
                ethertype = VlanPacket::new(&frame[off..])
                    .expect("length checked")
                    .get_ethertype();
                off += VlanPacket::minimum_packet_size();
            }
            Ok(Some((ethertype.0, off)))
        }
        // pnet's SLL views panic on some short inputs (found by the property tests below), so
        // the cooked headers are read by hand: the protocol is a big-endian u16 at a fixed offset.
        LinkType::LinuxSll => {
            need("sll", frame, 0, 16)?;
            Ok(Some((u16::from_be_bytes([frame[14], frame[15]]), 16)))
        }
        LinkType::LinuxSll2 => {
            need("sll2", frame, 0, 20)?;
            Ok(Some((u16::from_be_bytes([frame[0], frame[1]]), 20)))
        }
        LinkType::Raw => {
            need("ip", frame, 0, 1)?;
            match frame[0] >> 4 {
                4 => Ok(Some((ETH_IPV4, 0))),
                6 => Ok(Some((ETH_IPV6, 0))),
                _ => Err(DecodeError::Invalid {
                    layer: "ip",
                    offset: 0,
                    what: "IP version is neither 4 nor 6",
                }),
            }
        }
        LinkType::Null => {
            need("null", frame, 0, 4)?;
            // The family is in the capturing host's byte order: accept both.
            let le = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let be = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let fam = if le < 0x10000 { le } else { be };
            match fam {
                2 => Ok(Some((ETH_IPV4, 4))),
                10 | 24 | 28 | 30 => Ok(Some((ETH_IPV6, 4))),
                _ => Ok(None),
            }
        }
    }
}

fn blank(ts_us: i64, proto: u8, src: IpAddr, dst: IpAddr, ttl: u8) -> Event {
    Event {
        ts_us,
        proto,
        src,
        dst,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        ttl,
        ip_id: 0,
        ip_len: 0,
        seq: 0,
        window: 0,
        class: Class::Other,
        tags: Tags::empty(),
    }
}

fn ipv4(ts_us: i64, frame: &[u8], off: usize) -> Result<Event, DecodeError> {
    need("ipv4", frame, off, Ipv4Packet::minimum_packet_size())?;
    let ip = Ipv4Packet::new(&frame[off..]).expect("length checked");
    if ip.get_version() != 4 {
        return Err(DecodeError::Invalid {
            layer: "ipv4",
            offset: off,
            what: "version field is not 4",
        });
    }
    let hlen = ip.get_header_length() as usize * 4;
    if hlen < Ipv4Packet::minimum_packet_size() {
        return Err(DecodeError::Invalid {
            layer: "ipv4",
            offset: off,
            what: "header length below 20 bytes",
        });
    }
    // Options are part of the header: the whole header must be there.
    need("ipv4", frame, off, hlen)?;
    let total = ip.get_total_length() as usize;
    if total < hlen {
        return Err(DecodeError::Invalid {
            layer: "ipv4",
            offset: off,
            what: "total length smaller than the header",
        });
    }
    let mut ev = blank(
        ts_us,
        ip.get_next_level_protocol().0,
        IpAddr::V4(ip.get_source()),
        IpAddr::V4(ip.get_destination()),
        ip.get_ttl(),
    );
    ev.ip_id = u32::from(ip.get_identification());
    ev.ip_len = total as u32;
    if ip.get_fragment_offset() != 0 {
        ev.tags |= Tags::FRAGMENT;
        return Ok(ev);
    }
    // The transport header ends where the IP packet says it does, or where the capture does.
    let l4_end = frame.len().min(off + total);
    let l4 = &frame[..l4_end];
    transport(&mut ev, l4, off + hlen)?;
    Ok(ev)
}

fn ipv6(ts_us: i64, frame: &[u8], off: usize) -> Result<Event, DecodeError> {
    need("ipv6", frame, off, Ipv6Packet::minimum_packet_size())?;
    let ip = Ipv6Packet::new(&frame[off..]).expect("length checked");
    if ip.get_version() != 6 {
        return Err(DecodeError::Invalid {
            layer: "ipv6",
            offset: off,
            what: "version field is not 6",
        });
    }
    let payload_len = ip.get_payload_length() as usize;
    let mut ev = blank(
        ts_us,
        0,
        IpAddr::V6(ip.get_source()),
        IpAddr::V6(ip.get_destination()),
        ip.get_hop_limit(),
    );
    ev.ip_len = (payload_len + Ipv6Packet::minimum_packet_size()) as u32;
    let end = frame
        .len()
        .min(off + Ipv6Packet::minimum_packet_size() + payload_len);
    let frame = &frame[..end];
    let mut next = ip.get_next_header().0;
    let mut pos = off + Ipv6Packet::minimum_packet_size();
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6: generic TLV length.
            0 | 43 | 60 | 135 | 139 | 140 => {
                need("ipv6-extension", frame, pos, 8)?;
                let ext = ExtensionPacket::new(&frame[pos..]).expect("length checked");
                let len = (ext.get_hdr_ext_len() as usize + 1) * 8;
                need("ipv6-extension", frame, pos, len)?;
                next = ext.get_next_header().0;
                pos += len;
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                need("ipv6-ah", frame, pos, 8)?;
                let len = (frame[pos + 1] as usize + 2) * 4;
                need("ipv6-ah", frame, pos, len)?;
                next = frame[pos];
                pos += len;
            }
            44 => {
                need("ipv6-fragment", frame, pos, 8)?;
                let frag = FragmentPacket::new(&frame[pos..]).expect("length checked");
                ev.ip_id = frag.get_id();
                next = frag.get_next_header().0;
                pos += 8;
                if frag.get_fragment_offset() != 0 {
                    ev.proto = next;
                    ev.tags |= Tags::FRAGMENT;
                    return Ok(ev);
                }
            }
            _ => {
                ev.proto = next;
                transport(&mut ev, frame, pos)?;
                return Ok(ev);
            }
        }
    }
    Err(DecodeError::Invalid {
        layer: "ipv6",
        offset: off,
        what: "more than 8 extension headers",
    })
}

fn transport(ev: &mut Event, frame: &[u8], off: usize) -> Result<(), DecodeError> {
    match ev.proto {
        IPPROTO_TCP => {
            need("tcp", frame, off, TcpPacket::minimum_packet_size())?;
            let tcp = TcpPacket::new(&frame[off..]).expect("length checked");
            if (tcp.get_data_offset() as usize) < 5 {
                return Err(DecodeError::Invalid {
                    layer: "tcp",
                    offset: off,
                    what: "data offset below 5 words",
                });
            }
            ev.sport = tcp.get_source();
            ev.dport = tcp.get_destination();
            ev.seq = tcp.get_sequence();
            ev.window = tcp.get_window();
            // The 12-bit flags field: 3 reserved bits, AE/NS, then CWR..FIN.
            ev.tcp_flags = (u16::from(tcp.get_reserved()) << 8) | u16::from(tcp.get_flags());
        }
        IPPROTO_UDP => {
            need("udp", frame, off, UdpPacket::minimum_packet_size())?;
            let udp = UdpPacket::new(&frame[off..]).expect("length checked");
            ev.sport = udp.get_source();
            ev.dport = udp.get_destination();
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            need("icmp", frame, off, 4)?;
            if ev.proto == IPPROTO_ICMP {
                let icmp = IcmpPacket::new(&frame[off..]).expect("length checked");
                ev.sport = u16::from(icmp.get_icmp_type().0);
                ev.dport = u16::from(icmp.get_icmp_code().0);
            } else {
                let icmp = Icmpv6Packet::new(&frame[off..]).expect("length checked");
                ev.sport = u16::from(icmp.get_icmpv6_type().0);
                ev.dport = u16::from(icmp.get_icmpv6_code().0);
            }
        }
        _ => {}
    }
    Ok(())
}

/// An IPv4 address as its 32-bit number (for the fingerprint rules).
pub(crate) fn v4_bits(addr: IpAddr) -> Option<u32> {
    match addr {
        IpAddr::V4(a) => Some(u32::from(a)),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn tcp_hdr(sport: u16, dport: u16, seq: u32, flags: u16, win: u16) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[4..8].copy_from_slice(&seq.to_be_bytes());
        h[12] = 5 << 4 | ((flags >> 8) as u8 & 0x0f);
        h[13] = flags as u8;
        h[14..16].copy_from_slice(&win.to_be_bytes());
        h
    }

    fn udp_hdr(sport: u16, dport: u16) -> Vec<u8> {
        let mut h = vec![0u8; 8];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[4..6].copy_from_slice(&8u16.to_be_bytes());
        h
    }

    struct V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        ttl: u8,
        id: u16,
        frag_off: u16,
        more: bool,
        options: Vec<u8>,
    }

    impl V4 {
        fn new(proto: u8) -> V4 {
            V4 {
                src: Ipv4Addr::new(203, 0, 114, 9),
                dst: Ipv4Addr::new(198, 18, 1, 10),
                proto,
                ttl: 51,
                id: 4242,
                frag_off: 0,
                more: false,
                options: Vec::new(),
            }
        }
        fn packet(&self, payload: &[u8]) -> Vec<u8> {
            let hlen = 20 + self.options.len();
            let mut h = vec![0u8; hlen];
            h[0] = 0x40 | (hlen / 4) as u8;
            h[2..4].copy_from_slice(&((hlen + payload.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&self.id.to_be_bytes());
            let ff = (u16::from(self.more) << 13) | self.frag_off;
            h[6..8].copy_from_slice(&ff.to_be_bytes());
            h[8] = self.ttl;
            h[9] = self.proto;
            h[12..16].copy_from_slice(&self.src.octets());
            h[16..20].copy_from_slice(&self.dst.octets());
            h[20..].copy_from_slice(&self.options);
            h.extend_from_slice(payload);
            h
        }
    }

    fn v6(next: u8, exts: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&((exts.len() + payload.len()) as u16).to_be_bytes());
        h[6] = next;
        h[7] = 64;
        h[8..24].copy_from_slice(&"2a01:4f8::9".parse::<Ipv6Addr>().unwrap().octets());
        h[24..40].copy_from_slice(&"2001:db8:1::10".parse::<Ipv6Addr>().unwrap().octets());
        h.extend_from_slice(exts);
        h.extend_from_slice(payload);
        h
    }

    fn eth(tags: &[u16], ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for &tpid in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0x00, 0x64]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    fn dec(link: LinkType, f: &[u8]) -> Event {
        decode(link, 7, f).unwrap().unwrap()
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let ip = V4::new(6).packet(&tcp_hdr(40000, 23, 0xdead_beef, 0x002, 1024));
        let e = dec(LinkType::Ethernet, &eth(&[], 0x0800, &ip));
        assert_eq!(e.ts_us, 7);
        assert_eq!((e.proto, e.sport, e.dport), (6, 40000, 23));
        assert_eq!((e.seq, e.tcp_flags, e.window), (0xdead_beef, 2, 1024));
        assert_eq!((e.ttl, e.ip_id, e.ip_len), (51, 4242, 40));
        assert_eq!(e.src, IpAddr::V4(Ipv4Addr::new(203, 0, 114, 9)));
        assert_eq!(e.dst, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10)));
    }

    #[test]
    fn tcp_flags_keep_ns_and_reserved_bits() {
        let ip = V4::new(6).packet(&tcp_hdr(1, 2, 3, 0x1c2, 0));
        assert_eq!(dec(LinkType::Raw, &ip).tcp_flags, 0x1c2);
    }

    #[test]
    fn vlan_and_qinq() {
        let ip = V4::new(17).packet(&udp_hdr(5353, 161));
        for tags in [&[0x8100][..], &[0x88a8, 0x8100], &[0x9100, 0x8100]] {
            let e = dec(LinkType::Ethernet, &eth(tags, 0x0800, &ip));
            assert_eq!((e.proto, e.sport, e.dport), (17, 5353, 161), "{tags:x?}");
        }
        let err = decode(LinkType::Ethernet, 0, &eth(&[0x8100; 5], 0x0800, &ip)).unwrap_err();
        assert!(
            err.to_string().contains("more than 4 stacked VLAN tags"),
            "{err}"
        );
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = V4::new(17).packet(&udp_hdr(1, 2));
        let mut sll = vec![0u8; 16];
        sll[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(&ip);
        assert_eq!(dec(LinkType::LinuxSll, &sll).dport, 2);
        let mut sll2 = vec![0u8; 20];
        sll2[0..2].copy_from_slice(&0x0800u16.to_be_bytes());
        sll2.extend_from_slice(&ip);
        assert_eq!(dec(LinkType::LinuxSll2, &sll2).dport, 2);
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let mut v4 = V4::new(6);
        v4.options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL
        let e = dec(LinkType::Raw, &v4.packet(&tcp_hdr(1, 443, 9, 2, 0)));
        assert_eq!((e.sport, e.dport, e.ip_len), (1, 443, 44));
    }

    #[test]
    fn ipv4_fragments() {
        let mut v4 = V4::new(17);
        v4.more = true;
        let first = dec(LinkType::Raw, &v4.packet(&udp_hdr(53, 999)));
        assert_eq!((first.sport, first.dport), (53, 999));
        assert!(!first.tags.contains(Tags::FRAGMENT));
        v4.frag_off = 185;
        let later = dec(LinkType::Raw, &v4.packet(&[0xAA; 24]));
        assert_eq!((later.sport, later.dport, later.proto), (0, 0, 17));
        assert!(later.tags.contains(Tags::FRAGMENT));
    }

    #[test]
    fn icmp_type_and_code() {
        let e = dec(
            LinkType::Raw,
            &V4::new(1).packet(&[3, 13, 0, 0, 0, 0, 0, 0]),
        );
        assert_eq!((e.sport, e.dport), (3, 13));
        let e = dec(LinkType::Raw, &v6(58, &[], &[128, 0, 0, 0, 0, 1, 0, 1]));
        assert_eq!((e.proto, e.sport, e.dport, e.ttl), (58, 128, 0, 64));
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        // Hop-by-hop (8 bytes) then destination options (16 bytes) then TCP.
        let mut exts = vec![60, 0, 1, 4, 0, 0, 0, 0];
        exts.extend_from_slice(&[6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let e = dec(
            LinkType::Ethernet,
            &eth(&[], 0x86dd, &v6(0, &exts, &tcp_hdr(1234, 22, 5, 2, 8))),
        );
        assert_eq!((e.proto, e.sport, e.dport, e.seq), (6, 1234, 22, 5));
        assert_eq!(e.ip_len, 40 + 24 + 20);
        // First fragment carries the ports; a later one does not.
        let first = [17, 0, 0, 1, 0, 0, 0, 99];
        let e = dec(LinkType::Raw, &v6(44, &first, &udp_hdr(7, 8)));
        assert_eq!((e.proto, e.sport, e.dport, e.ip_id), (17, 7, 8, 99));
        let later = [17, 0, 0x05, 0x00, 0, 0, 0, 99];
        let e = dec(LinkType::Raw, &v6(44, &later, &[0; 16]));
        assert_eq!((e.proto, e.sport, e.ip_id), (17, 0, 99));
        assert!(e.tags.contains(Tags::FRAGMENT));
    }

    #[test]
    fn non_ip_frames_are_not_errors() {
        let arp = eth(&[], 0x0806, &[0; 28]);
        assert_eq!(decode(LinkType::Ethernet, 0, &arp), Ok(None));
    }

    #[test]
    fn truncation_and_garbage_are_errors_with_context() {
        let ip = V4::new(6).packet(&tcp_hdr(1, 2, 3, 2, 0));
        let err = decode(LinkType::Raw, 0, &ip[..30]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tcp header truncated: need 20 bytes at offset 20, frame has 30"
        );
        let mut bad = ip.clone();
        bad[0] = 0x43; // IHL 3
        assert!(decode(LinkType::Raw, 0, &bad)
            .unwrap_err()
            .to_string()
            .contains("header length below 20 bytes"));
        let mut bad = ip.clone();
        bad[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert!(decode(LinkType::Raw, 0, &bad)
            .unwrap_err()
            .to_string()
            .contains("total length smaller than the header"));
        assert!(decode(LinkType::Raw, 0, &[0x50; 40]).is_err());
        assert!(decode(LinkType::Ethernet, 0, &[0; 13]).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(link in 0usize..5, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let link = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Raw, LinkType::Null][link];
            let _ = decode(link, 0, &bytes);
        }

        #[test]
        fn every_truncation_of_a_valid_frame_is_handled(cut in 0usize..80, proto in prop_oneof![Just(1u8), Just(6u8), Just(17u8)]) {
            let payload = match proto { 6 => tcp_hdr(1, 2, 3, 2, 4), 17 => udp_hdr(1, 2), _ => vec![8, 0, 0, 0, 0, 0, 0, 0] };
            let f = eth(&[0x8100], 0x0800, &V4::new(proto).packet(&payload));
            let cut = cut.min(f.len());
            let needed = 14 + 4 + 20 + match proto { 6 => 20, 17 => 8, _ => 4 };
            let r = decode(LinkType::Ethernet, 0, &f[..cut]);
            if cut >= needed { prop_assert!(matches!(r, Ok(Some(_)))); } else { prop_assert!(r.is_err()); }
        }

        #[test]
        fn tcp_fields_round_trip(src in any::<u32>(), dst in any::<u32>(), sport in any::<u16>(), dport in any::<u16>(),
                                 seq in any::<u32>(), flags in 0u16..0x1000, win in any::<u16>(), ttl in any::<u8>(), id in any::<u16>()) {
            let mut v4 = V4::new(6);
            v4.src = Ipv4Addr::from(src);
            v4.dst = Ipv4Addr::from(dst);
            v4.ttl = ttl;
            v4.id = id;
            let e = dec(LinkType::Ethernet, &eth(&[], 0x0800, &v4.packet(&tcp_hdr(sport, dport, seq, flags, win))));
            prop_assert_eq!((e.src, e.dst), (IpAddr::V4(v4.src), IpAddr::V4(v4.dst)));
            prop_assert_eq!((e.sport, e.dport, e.seq, e.tcp_flags, e.window), (sport, dport, seq, flags, win));
            prop_assert_eq!((e.ttl, e.ip_id), (ttl, u32::from(id)));
        }
    }
}
