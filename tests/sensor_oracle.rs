//! Oracle test: the sensor's events for every lab capture (and a generated edge-case capture)
//! equal tshark's field dump of the same file, packet by packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use teiten::pcapgen::{frame, write_pcap, Spec, L4};
use teiten::{bin, conformance, require_tool, run_ok, tshark_fields, tshark_number as num};

/// One packet as both sides report it.
#[derive(Debug, PartialEq, Eq)]
struct Fields {
    ts_us: i64,
    proto: u64,
    src: String,
    dst: String,
    /// Ports, or ICMP type and code.
    sport: u64,
    dport: u64,
    tcp_flags: u64,
    ip_id: u64,
    ttl: u64,
    seq: u64,
}

fn tshark(file: &Path) -> Vec<Fields> {
    let fields = [
        "frame.time_epoch",
        "ip.proto",
        "ip.src",
        "tcp.srcport",
        "udp.srcport",
        "ip.dst",
        "tcp.dstport",
        "udp.dstport",
        "icmp.type",
        "icmp.code",
        "tcp.flags",
        "ip.id",
        "ip.ttl",
        "tcp.seq_raw",
        "ipv6.src",
        "ipv6.dst",
        "ipv6.hlim",
        "ipv6.nxt",
        "icmpv6.type",
        "icmpv6.code",
    ];
    tshark_fields(file, &["-o", "ip.defragment:FALSE"], &fields)
        .lines()
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            assert_eq!(c.len(), fields.len(), "tshark line {line:?}");
            let (secs, frac) = c[0].split_once('.').expect("epoch has a fraction");
            let ts_us =
                secs.parse::<i64>().unwrap() * 1_000_000 + frac[..6].parse::<i64>().unwrap();
            let v6 = !c[14].is_empty();
            let proto = if v6 { num(c[17]) } else { num(c[1]) };
            let (sport, dport) = if proto == 1 {
                (num(c[8]), num(c[9]))
            } else if proto == 58 {
                (num(c[18]), num(c[19]))
            } else {
                (num(c[3]) + num(c[4]), num(c[6]) + num(c[7]))
            };
            Fields {
                ts_us,
                proto,
                src: if v6 { c[14] } else { c[2] }
                    .parse::<IpAddr>()
                    .unwrap()
                    .to_string(),
                dst: if v6 { c[15] } else { c[5] }
                    .parse::<IpAddr>()
                    .unwrap()
                    .to_string(),
                sport,
                dport,
                tcp_flags: num(c[10]),
                ip_id: num(c[11]),
                ttl: if v6 { num(c[16]) } else { num(c[12]) },
                seq: num(c[13]),
            }
        })
        .collect()
}

fn sensor(file: &Path) -> Vec<Fields> {
    let out = run_ok(
        Command::new(bin("teiten-sensor"))
            .arg("--read")
            .arg(file)
            .arg("--stdout"),
    );
    out.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("one JSON object per line");
            for key in [
                "ts_us",
                "proto",
                "src",
                "sport",
                "dst",
                "dport",
                "tcp_flags",
                "ttl",
                "ip_id",
                "seq",
                "class",
                "tags",
            ] {
                assert!(v.get(key).is_some(), "key {key} missing in {line}");
            }
            let n = |k: &str| v[k].as_u64().unwrap();
            Fields {
                ts_us: v["ts_us"].as_i64().unwrap(),
                proto: n("proto"),
                src: v["src"].as_str().unwrap().to_owned(),
                dst: v["dst"].as_str().unwrap().to_owned(),
                sport: n("sport"),
                dport: n("dport"),
                tcp_flags: n("tcp_flags"),
                ip_id: n("ip_id"),
                ttl: n("ttl"),
                seq: n("seq"),
            }
        })
        .collect()
}

fn compare(file: &Path) -> usize {
    require_tool("tshark", "tshark");
    let want = tshark(file);
    let got = sensor(file);
    assert_eq!(
        got.len(),
        want.len(),
        "{}: sensor and tshark count different packets",
        file.display()
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{}: packet {} differs", file.display(), i + 1);
    }
    got.len()
}

#[test]
fn every_lab_capture_matches_tshark() {
    let dir = conformance().join("pcaps/lab");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "lab captures missing in {}",
        dir.display()
    );
    let mut total = 0;
    for f in &files {
        total += compare(f);
    }
    // nmap 2,000 + dark_mix 25,946 + mirai 10 + oracle_edge 3.
    assert_eq!(total, 27_959);
}

#[test]
fn dark_mix_matches_the_shipped_field_dump() {
    // The CSV beside the capture is tshark's dump made when the capture was taken: the sensor
    // must agree with it too (same packet count, same fingerprints).
    let dir = conformance().join("pcaps/lab");
    let csv = std::fs::read_to_string(dir.join("dark_mix_fields.csv")).unwrap();
    let got = sensor(&dir.join("dark_mix.pcap"));
    assert_eq!(got.len(), csv.lines().count());
    for (g, line) in got.iter().zip(csv.lines()) {
        let c: Vec<&str> = line.split(',').collect();
        assert_eq!(g.src, c[2]);
        assert_eq!(g.dst, c[5]);
        // Columns: time, proto, src, tcp/udp sport, dst, tcp/udp dport, icmp.type, ip.id,
        // ttl, tcp.seq_raw, window, tcp.flags.
        assert_eq!(g.proto, num(c[1]), "{line}");
        assert_eq!(g.ip_id, num(c[9]), "{line}");
        assert_eq!(g.ttl, num(c[10]), "{line}");
        assert_eq!(g.seq, num(c[11]), "{line}");
        assert_eq!(g.tcp_flags, num(c[13]), "{line}");
    }
}

#[test]
fn generated_edge_cases_match_tshark() {
    let v4 = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let tcp = |flags| L4::Tcp {
        sport: 40000,
        dport: 445,
        seq: 0x0102_0304,
        flags,
        window: 29200,
    };
    // (source, destination, TTL, IP ID, transport, 802.1Q tags)
    let specs: Vec<Spec> = [
        (v4([45, 1, 2, 3]), v4([198, 18, 1, 1]), 50, 7, tcp(0x002), 0),
        (v4([45, 1, 2, 4]), v4([198, 18, 1, 2]), 60, 8, tcp(0x012), 1),
        (v4([45, 1, 2, 5]), v4([198, 18, 1, 3]), 70, 9, tcp(0x1c2), 2),
        (
            v4([45, 1, 2, 6]),
            v4([198, 18, 1, 4]),
            80,
            10,
            L4::Udp {
                sport: 53,
                dport: 33434,
            },
            1,
        ),
        (
            v4([45, 1, 2, 7]),
            v4([198, 18, 1, 5]),
            90,
            11,
            L4::Icmp { ty: 8, code: 0 },
            0,
        ),
        (v6("2a01:4f8::1"), v6("2001:db8:1::5"), 64, 0, tcp(0x002), 0),
        (
            v6("2a01:4f8::2"),
            v6("2001:db8:1::6"),
            63,
            0,
            L4::Udp {
                sport: 1,
                dport: 161,
            },
            1,
        ),
        (
            v6("2a01:4f8::3"),
            v6("2001:db8:1::7"),
            62,
            0,
            L4::Icmp { ty: 128, code: 0 },
            2,
        ),
    ]
    .into_iter()
    .map(|(src, dst, ttl, ip_id, l4, vlans)| Spec {
        src,
        dst,
        ttl,
        ip_id,
        l4,
        vlans,
    })
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.pcap");
    write_pcap(
        &path,
        specs
            .iter()
            .enumerate()
            .map(|(i, s)| (1_700_000_000_000_000 + i as i64 * 1001, frame(s))),
    )
    .unwrap();
    assert_eq!(compare(&path), specs.len());
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let out = Command::new(bin("teiten-sensor"))
        .args(["--read", "/nonexistent/x.pcap", "--stdout"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read capture file /nonexistent/x.pcap"),
        "{err}"
    );
}

#[test]
fn pcapng_reads_the_same_as_pcap() {
    require_tool("editcap", "tshark");
    let dir = tempfile::tempdir().unwrap();
    let src = conformance().join("pcaps/lab/dark_mix.pcap");
    let ng = dir.path().join("dark_mix.pcapng");
    run_ok(
        Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(&src)
            .arg(&ng),
    );
    let from_pcap = sensor(&src);
    let from_ng = sensor(&ng);
    assert_eq!(from_ng.len(), 25_946);
    assert_eq!(from_ng, from_pcap);
}
