//! Writes pcap files of synthetic frames for tests and benchmarks, built with pnet's mutable
//! packet views and written with libpcap (through the `pcap` crate).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use pnet_packet::ethernet::{EtherType, MutableEthernetPacket};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{checksum, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::MutableTcpPacket;
use pnet_packet::udp::MutableUdpPacket;
use pnet_packet::vlan::MutableVlanPacket;

/// A transport header to put in a frame.
#[derive(Debug, Clone, Copy)]
pub enum L4 {
    /// TCP with ports, sequence number, flags (12 bits) and window.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Flags.
        flags: u16,
        /// Window.
        window: u16,
    },
    /// UDP with ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP (or ICMPv6 over IPv6) with type and code.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
    },
}

/// One synthetic packet.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same IP version).
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification.
    pub ip_id: u16,
    /// The transport header.
    pub l4: L4,
    /// 802.1Q tags in front (0, 1 or 2).
    pub vlans: usize,
}

fn l4_bytes(l4: L4) -> (u8, Vec<u8>) {
    match l4 {
        L4::Tcp {
            sport,
            dport,
            seq,
            flags,
            window,
        } => {
            let mut b = vec![0u8; 20];
            let mut t = MutableTcpPacket::new(&mut b).expect("20 bytes");
            t.set_source(sport);
            t.set_destination(dport);
            t.set_sequence(seq);
            t.set_data_offset(5);
            t.set_reserved((flags >> 8) as u8 & 0x0f);
            t.set_flags(flags as u8);
            t.set_window(window);
            (6, b)
        }
        L4::Udp { sport, dport } => {
            let mut b = vec![0u8; 8];
            let mut u = MutableUdpPacket::new(&mut b).expect("8 bytes");
            u.set_source(sport);
            u.set_destination(dport);
            u.set_length(8);
            (17, b)
        }
        L4::Icmp { ty, code } => (1, vec![ty, code, 0, 0, 0, 0, 0, 0]),
    }
}

/// The Ethernet frame for a spec.
pub fn frame(s: &Spec) -> Vec<u8> {
    let (mut proto, l4) = l4_bytes(s.l4);
    let ip = match (s.src, s.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => ipv4(src, dst, s.ttl, s.ip_id, proto, &l4),
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            if proto == 1 {
                proto = 58;
            }
            ipv6(src, dst, s.ttl, proto, &l4)
        }
        _ => panic!("source and destination of different IP versions"),
    };
    let ethertype = if s.src.is_ipv4() { 0x0800 } else { 0x86dd };
    let mut f = vec![0u8; 14 + 4 * s.vlans + ip.len()];
    let mut eth = MutableEthernetPacket::new(&mut f).expect("long enough");
    eth.set_destination([0x02, 0, 0, 0, 0, 2].into());
    eth.set_source([0x02, 0, 0, 0, 0, 1].into());
    eth.set_ethertype(EtherType(if s.vlans > 0 { 0x8100 } else { ethertype }));
    for i in 0..s.vlans {
        let off = 14 + 4 * i;
        let mut v = MutableVlanPacket::new(&mut f[off..]).expect("long enough");
        v.set_vlan_identifier(100 + i as u16);
        v.set_ethertype(EtherType(if i + 1 < s.vlans { 0x8100 } else { ethertype }));
    }
    let off = 14 + 4 * s.vlans;
    f[off..].copy_from_slice(&ip);
    f
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, id: u16, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + l4.len()];
    let mut ip = MutableIpv4Packet::new(&mut b).expect("long enough");
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length((20 + l4.len()) as u16);
    ip.set_identification(id);
    ip.set_ttl(ttl);
    ip.set_next_level_protocol(IpNextHeaderProtocol(proto));
    ip.set_source(src);
    ip.set_destination(dst);
    let sum = checksum(&ip.to_immutable());
    ip.set_checksum(sum);
    b[20..].copy_from_slice(l4);
    b
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hlim: u8, next: u8, l4: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 40 + l4.len()];
    let mut ip = MutableIpv6Packet::new(&mut b).expect("long enough");
    ip.set_version(6);
    ip.set_payload_length(l4.len() as u16);
    ip.set_next_header(IpNextHeaderProtocol(next));
    ip.set_hop_limit(hlim);
    ip.set_source(src);
    ip.set_destination(dst);
    b[40..].copy_from_slice(l4);
    b
}

/// Writes `frames` (with timestamps in microseconds) to a pcap file.
pub fn write_pcap(
    path: &Path,
    frames: impl IntoIterator<Item = (i64, Vec<u8>)>,
) -> Result<(), pcap::Error> {
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET)?;
    let mut save = cap.savefile(path)?;
    for (ts, data) in frames {
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: ts / 1_000_000,
                tv_usec: ts % 1_000_000,
            },
            caplen: data.len() as u32,
            len: data.len() as u32,
        };
        save.write(&pcap::Packet::new(&header, &data));
    }
    save.flush()?;
    Ok(())
}

/// A deterministic scan-like mix: mostly TCP SYN from many sources to a dark /24 (with zmap and
/// masscan signatures), some UDP, ICMP and backscatter; `i` picks the packet.
pub fn scan_mix(i: u64) -> Spec {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let src = Ipv4Addr::from(0x2d00_0000 | ((x >> 8) as u32 & 0x00ff_ffff));
    let dst = Ipv4Addr::new(198, 18, 1, (x >> 40) as u8);
    let dport = [22, 23, 80, 443, 445, 3389, 8080, 5060][(x >> 50) as usize % 8];
    let l4 = match x % 10 {
        0 => L4::Udp {
            sport: 40000 + (x % 1000) as u16,
            dport: 53,
        },
        1 => L4::Icmp { ty: 8, code: 0 },
        2 => L4::Tcp {
            sport: dport,
            dport: 40000,
            seq: x as u32,
            flags: 0x012,
            window: 0,
        },
        _ => L4::Tcp {
            sport: 40000 + (x % 20000) as u16,
            dport,
            seq: (x >> 16) as u32,
            flags: 0x002,
            window: 1024,
        },
    };
    Spec {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl: 40 + (x % 200) as u8,
        ip_id: if x.is_multiple_of(7) {
            54321
        } else {
            (x >> 24) as u16
        },
        l4,
        vlans: 0,
    }
}
