//! The monitored (dark) prefixes: the user-space check and the kernel (BPF) filter.

use std::net::IpAddr;

use ipnet::IpNet;

/// The prefixes a sensor watches; only traffic *to* them is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitored {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    nets: Vec<IpNet>,
}

impl Monitored {
    /// Builds the set from configured prefixes (host bits are ignored).
    pub fn new(nets: &[IpNet]) -> Monitored {
        let mut m = Monitored {
            v4: Vec::new(),
            v6: Vec::new(),
            nets: nets.iter().map(IpNet::trunc).collect(),
        };
        for net in &m.nets {
            match net {
                IpNet::V4(n) => {
                    let mask = u32::from(n.netmask());
                    m.v4.push((u32::from(n.network()), mask));
                }
                IpNet::V6(n) => {
                    let mask = u128::from(n.netmask());
                    m.v6.push((u128::from(n.network()), mask));
                }
            }
        }
        m
    }

    /// How many prefixes are monitored.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// Whether no prefix is monitored.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `dst` lies in a monitored prefix.
    #[inline]
    pub fn contains(&self, dst: IpAddr) -> bool {
        match dst {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }

    /// The kernel filter: destination in a monitored prefix, untagged or under one or two
    /// VLAN tags (QinQ). Packets the kernel lets through are checked again in user space.
    pub fn bpf(&self) -> String {
        let dst = self
            .nets
            .iter()
            .map(|n| match n {
                IpNet::V4(n) => format!("dst net {n}"),
                IpNet::V6(n) => format!("ip6 dst net {n}"),
            })
            .collect::<Vec<_>>()
            .join(" or ");
        format!("({dst}) or (vlan and (({dst}) or (vlan and ({dst}))))")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Monitored {
        Monitored::new(&[
            "198.18.1.0/24".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
            "198.19.7.9/30".parse().unwrap(),
        ])
    }

    #[test]
    fn membership() {
        let m = m();
        assert!(m.contains("198.18.1.0".parse().unwrap()));
        assert!(m.contains("198.18.1.255".parse().unwrap()));
        assert!(!m.contains("198.18.2.1".parse().unwrap()));
        assert!(
            m.contains("198.19.7.11".parse().unwrap()),
            "host bits ignored"
        );
        assert!(!m.contains("198.19.7.12".parse().unwrap()));
        assert!(m.contains("2001:db8:1:ffff::1".parse().unwrap()));
        assert!(!m.contains("2001:db8:2::1".parse().unwrap()));
        assert!(!m.contains("::ffff:198.18.1.1".parse().unwrap()));
    }

    #[test]
    fn bpf_expression() {
        let m = Monitored::new(&["198.18.1.0/24".parse().unwrap()]);
        assert_eq!(
            m.bpf(),
            "(dst net 198.18.1.0/24) or (vlan and ((dst net 198.18.1.0/24) or (vlan and (dst net 198.18.1.0/24))))"
        );
    }

    #[test]
    fn bpf_compiles_with_libpcap() {
        let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
        cap.compile(&m().bpf(), true)
            .expect("libpcap compiles the filter");
    }
}
