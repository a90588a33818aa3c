//! Packet decoding: pure functions over `&[u8]`, one per layer, each checking its own lengths
//! before handing the bytes to pnet's views (which check only the minimum size).

use std::net::IpAddr;

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::{ExtensionPacket, FragmentPacket, Ipv6Packet};
use pnet_packet::sll::SLLPacket;
use pnet_packet::sll2::SLL2Packet;
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
        LinkType::LinuxSll => {
            need("sll", frame, 0, SLLPacket::minimum_packet_size())?;
            let sll = SLLPacket::new(frame).expect("length checked");
            Ok(Some((
                sll.get_protocol().0,
                SLLPacket::minimum_packet_size(),
            )))
        }
        LinkType::LinuxSll2 => {
            need("sll2", frame, 0, SLL2Packet::minimum_packet_size())?;
            let sll = SLL2Packet::new(frame).expect("length checked");
            Ok(Some((
                sll.get_protocol_type().0,
                SLL2Packet::minimum_packet_size(),
            )))
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
