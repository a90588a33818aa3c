//! Live test: nmap's scans without SYN (FIN, NULL, Xmas, Maimon, ACK, window), each at its own
//! dark address, reach the real sensor as `scan` events tagged `stealth`, with the technique
//! their flags name, counted exactly against what the scanner side sent (tcpdump there,
//! tshark as the oracle). A SYN scan beside them stays untagged.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use teiten::lab::{self, Lab};
use teiten::{bin, require_tool, run_ok, tshark_fields, tshark_number};

/// nmap's option, the target, and the technique the sensor must name (`None`: not stealth).
const SCANS: [(&str, &str, Option<&str>); 7] = [
    ("-sF", "198.18.1.21", Some("fin")),
    ("-sN", "198.18.1.22", Some("null")),
    ("-sX", "198.18.1.23", Some("xmas")),
    ("-sM", "198.18.1.24", Some("maimon")),
    ("-sA", "198.18.1.25", Some("ack")),
    ("-sW", "198.18.1.26", Some("ack")),
    ("-sS", "198.18.1.27", None),
];

const PORTS: u64 = 30;

#[test]
fn nmap_stealth_scans_are_scans_named_by_technique() {
    for (tool, pkg) in [("nmap", "nmap"), ("tshark", "tshark")] {
        require_tool(tool, pkg);
    }
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "sensor_id = \"lab-1\"\ninterface = \"{}\"\nmonitored_prefixes = [\"{}\"]\n\
             [metrics]\nlisten = \"\"\n",
            lab.sensor_if,
            lab::DARK
        ),
    )
    .unwrap();
    let sent_pcap = dir.path().join("sent.pcap");
    let recorder = lab.record_sent(&sent_pcap, "tcp");
    let sensor = lab
        .in_sensor(bin("teiten-sensor").to_str().unwrap())
        .arg("--config")
        .arg(&config)
        .arg("--stdout")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    for (scan, target, _) in SCANS {
        run_ok(
            lab.nmap_scan(scan, target, &format!("1-{PORTS}"))
                .stdin(Stdio::null()),
        );
    }
    std::thread::sleep(Duration::from_millis(800));
    let out = lab::stop(sensor);
    let _ = lab::stop(recorder);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sensor failed: {stderr}");
    assert!(stderr.contains("kernel_drops=0"), "kernel drops: {stderr}");

    // (dst, dport, flags) -> count, from the sensor and from the wire.
    let mut got: BTreeMap<(String, u64, u64), u64> = BTreeMap::new();
    let mut by_target: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let dst = e["dst"].as_str().unwrap().to_owned();
        let k = (
            dst.clone(),
            e["dport"].as_u64().unwrap(),
            e["tcp_flags"].as_u64().unwrap(),
        );
        *got.entry(k).or_default() += 1;
        by_target.entry(dst).or_default().push(e);
    }
    let mut want: BTreeMap<(String, u64, u64), u64> = BTreeMap::new();
    let dump = tshark_fields(
        &sent_pcap,
        &["-Y", "ip.dst==198.18.1.0/24"],
        &["ip.dst", "tcp.dstport", "tcp.flags"],
    );
    for l in dump.lines() {
        let c: Vec<&str> = l.split(',').collect();
        let k = (c[0].to_owned(), tshark_number(c[1]), tshark_number(c[2]));
        *want.entry(k).or_default() += 1;
    }
    assert_eq!(
        got, want,
        "sensor events vs packets sent (dst, dport, flags)"
    );

    for (scan, target, technique) in SCANS {
        let events = by_target
            .get(target)
            .unwrap_or_else(|| panic!("nothing from nmap {scan}"));
        let mut ports: Vec<u64> = events
            .iter()
            .map(|e| e["dport"].as_u64().unwrap())
            .collect();
        ports.sort_unstable();
        assert_eq!(
            ports,
            (1..=PORTS).collect::<Vec<_>>(),
            "nmap {scan}: one probe a port"
        );
        for e in events {
            let tags: Vec<&str> = e["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            assert_eq!(e["class"], "scan", "nmap {scan}: {e}");
            assert_eq!(
                tags.contains(&"stealth"),
                technique.is_some(),
                "nmap {scan}: {e}"
            );
            let flags = e["tcp_flags"].as_u64().unwrap() as u16;
            assert_eq!(
                teiten_wire::stealth_technique(flags),
                technique,
                "nmap {scan}: {e}"
            );
        }
    }
}
