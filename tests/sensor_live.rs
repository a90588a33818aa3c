//! Live test: the real sensor captures on a veth inside a network namespace while real
//! scanners (nmap, masscan, zmap, hping3) probe a dark prefix from another namespace. The events
//! must equal what the scanners sent (checked against a tcpdump capture on the scanner side
//! with tshark), with the right fingerprints, and nothing outside the monitored prefix.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use teiten::lab::{self, Lab, SENSOR_IP};
use teiten::{bin, require_tool, run_ok, tshark_fields, tshark_number};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Runs one scanner and returns the time window it ran in. hping3 exits 1 when nothing
/// answers (as in a darknet), so only its ability to start is checked.
fn scan(name: &str, cmd: &mut Command) -> (String, i64, i64) {
    let start = now_us();
    if name.starts_with("hping") || name == "unmonitored" || name == "management" {
        let out = cmd.stdin(Stdio::null()).output().expect("hping3 starts");
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("5 packets transmitted"), "{name}: {text}");
    } else {
        run_ok(cmd.stdin(Stdio::null()));
    }
    std::thread::sleep(Duration::from_millis(300));
    (name.to_owned(), start, now_us())
}

/// (dst, proto, dport, ip_id, seq) of a packet: its identity for the comparison.
type Key = (String, u64, u64, u64, u64);

#[test]
fn scanners_in_a_namespace_lab_are_recorded_exactly() {
    for (tool, pkg) in [
        ("nmap", "nmap"),
        ("masscan", "masscan"),
        ("zmap", "zmap"),
        ("hping3", "hping3"),
        ("tshark", "tshark"),
    ] {
        require_tool(tool, pkg);
    }
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "sensor_id = \"lab-1\"\ninterface = \"{}\"\nmonitored_prefixes = [\"{}\"]\n\
             [capture]\nthreads = 2\n[metrics]\nlisten = \"\"\n",
            lab.sensor_if,
            lab::DARK
        ),
    )
    .unwrap();
    let sent_pcap = dir.path().join("sent.pcap");
    let recorder = lab.record_sent(&sent_pcap, "ip");
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

    let mut windows = Vec::new();
    windows.push(scan("nmap", &mut lab.nmap("198.18.1.10", "1-100")));
    windows.push(scan(
        "masscan",
        &mut lab.masscan("198.18.1.0/28", "1-20", 10_000),
    ));
    windows.push(scan(
        "zmap",
        &mut lab.zmap(
            "198.18.1.0/26",
            443,
            5000,
            &dir.path().join("empty-blocklist"),
        ),
    ));
    let hping = |args: &[&str]| lab.hping(5, args);
    windows.push(scan(
        "hping-syn",
        &mut hping(&["-S", "-p", "80", "198.18.1.77"]),
    ));
    windows.push(scan(
        "hping-udp",
        &mut hping(&["--udp", "-p", "53", "198.18.1.78"]),
    ));
    windows.push(scan("hping-icmp", &mut hping(&["--icmp", "198.18.1.79"])));
    // Not monitored: another routed prefix, and the sensor's own management address.
    windows.push(scan(
        "unmonitored",
        &mut hping(&["-S", "-p", "81", "198.18.2.5"]),
    ));
    windows.push(scan(
        "management",
        &mut hping(&["-S", "-p", "22", SENSOR_IP]),
    ));
    std::thread::sleep(Duration::from_millis(500));

    let out = lab::stop(sensor);
    let _ = lab::stop(recorder);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sensor failed: {stderr}");
    assert!(stderr.contains("kernel_drops=0"), "kernel drops: {stderr}");
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // Attribute every event to the scanner that ran when it was captured.
    let mut by_scanner: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &events {
        let ts = e["ts_us"].as_i64().unwrap();
        let (name, _, _) = windows
            .iter()
            .find(|(_, a, b)| *a <= ts && ts <= *b)
            .unwrap_or_else(|| panic!("event outside every scanner's window: {e}"));
        by_scanner.entry(name.clone()).or_default().push(e);
    }
    let count = |name: &str| by_scanner.get(name).map_or(0, Vec::len);
    let has_tag = |e: &&Value, t: &str| e["tags"].as_array().unwrap().iter().any(|x| x == t);

    // nmap: one SYN to each of ports 1-100.
    let nmap = &by_scanner["nmap"];
    let mut ports: Vec<u64> = nmap.iter().map(|e| e["dport"].as_u64().unwrap()).collect();
    ports.sort_unstable();
    assert_eq!(ports, (1..=100).collect::<Vec<_>>());
    assert!(nmap.iter().all(|e| e["class"] == "scan" && e["proto"] == 6));
    // masscan: 16 hosts x 20 ports, every one with masscan's signature.
    assert_eq!(count("masscan"), 320);
    assert!(by_scanner["masscan"].iter().all(|e| has_tag(e, "masscan")));
    // zmap: 64 hosts on port 443, every one with zmap's signature.
    assert_eq!(count("zmap"), 64);
    assert!(by_scanner["zmap"]
        .iter()
        .all(|e| has_tag(e, "zmap") && e["dport"] == 443));
    // hping3.
    for (name, proto, dport) in [
        ("hping-syn", 6, 80),
        ("hping-udp", 17, 53),
        ("hping-icmp", 1, 0),
    ] {
        assert_eq!(count(name), 5, "{name}");
        assert!(by_scanner[name]
            .iter()
            .all(|e| e["proto"] == proto && e["dport"] == dport && e["class"] == "scan"));
    }
    assert_eq!(
        count("unmonitored"),
        0,
        "traffic outside the monitored prefix recorded"
    );
    assert_eq!(count("management"), 0, "management traffic recorded");

    // And the whole multiset equals what the scanner side sent into the dark prefix.
    let key = |dst: &str, proto: u64, dport: u64, id: u64, seq: u64| -> Key {
        (dst.to_owned(), proto, dport, id, seq)
    };
    let mut got: Vec<Key> = events
        .iter()
        .map(|e| {
            let proto = e["proto"].as_u64().unwrap();
            key(
                e["dst"].as_str().unwrap(),
                proto,
                if proto == 1 {
                    0
                } else {
                    e["dport"].as_u64().unwrap()
                },
                e["ip_id"].as_u64().unwrap(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let dump = tshark_fields(
        &sent_pcap,
        &["-Y", "ip.dst==198.18.1.0/24"],
        &[
            "ip.dst",
            "ip.proto",
            "tcp.dstport",
            "udp.dstport",
            "ip.id",
            "tcp.seq_raw",
        ],
    );
    let n = tshark_number;
    let mut want: Vec<Key> = dump
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            key(c[0], n(c[1]), n(c[2]) + n(c[3]), n(c[4]), n(c[5]))
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "sensor events vs packets sent");
    assert_eq!(got, want);
}
