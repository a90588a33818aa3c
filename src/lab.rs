//! A network-namespace lab: two namespaces joined by a veth pair, addresses from 198.18.0.0/15
//! only. The *scanner* side holds 198.18.0.1 and routes the dark prefix 198.18.1.0/24 (and the
//! unmonitored 198.18.2.0/24) to the *sensor* side, which holds only its management address
//! 198.18.0.2: nothing answers in the dark prefix, as on a real darknet.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The scanner side's address.
pub const SCANNER_IP: &str = "198.18.0.1";
/// The sensor side's management address (not monitored).
pub const SENSOR_IP: &str = "198.18.0.2";
/// The dark prefix the sensor monitors.
pub const DARK: &str = "198.18.1.0/24";
/// The IPv6 dark prefix the sensor monitors too (documentation space: the lab routes no IPv6,
/// so only frames replayed onto the scanner side's link reach it).
pub const DARK6: &str = "2001:db8:1::/64";
/// A prefix routed to the sensor side but not monitored.
pub const UNMONITORED: &str = "198.18.2.0/24";

/// Two namespaces and a veth pair, removed on drop.
pub struct Lab {
    /// The management link from the host (root namespace) to the sensor namespace, if any:
    /// (host-side interface, host address, sensor-side address).
    pub uplink: Option<(String, String, String)>,
    /// The scanner namespace.
    pub scanner_ns: String,
    /// The sensor namespace.
    pub sensor_ns: String,
    /// The scanner side's interface.
    pub scanner_if: String,
    /// The sensor side's interface (capture here).
    pub sensor_if: String,
}

fn ip(args: &[&str]) {
    crate::run_ok(Command::new("ip").args(args));
}

impl Lab {
    /// Creates the lab (needs root and iproute2).
    pub fn new() -> Lab {
        crate::require_tool("ip", "iproute2");
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            uplink: None,
            scanner_ns: format!("tt-scan-{id}"),
            sensor_ns: format!("tt-sens-{id}"),
            scanner_if: "tt-scan".into(),
            sensor_if: "tt-dark".into(),
        };
        ip(&["netns", "add", &lab.scanner_ns]);
        ip(&["netns", "add", &lab.sensor_ns]);
        let tmp_a = format!("tta{id}");
        let tmp_b = format!("ttb{id}");
        ip(&[
            "link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b,
        ]);
        ip(&[
            "link",
            "set",
            &tmp_a,
            "netns",
            &lab.scanner_ns,
            "name",
            &lab.scanner_if,
        ]);
        ip(&[
            "link",
            "set",
            &tmp_b,
            "netns",
            &lab.sensor_ns,
            "name",
            &lab.sensor_if,
        ]);
        lab.ns_ip(
            &lab.scanner_ns,
            &["addr", "add", "198.18.0.1/24", "dev", &lab.scanner_if],
        );
        lab.ns_ip(
            &lab.sensor_ns,
            &["addr", "add", "198.18.0.2/24", "dev", &lab.sensor_if],
        );
        for (ns, dev) in [
            (&lab.scanner_ns, &lab.scanner_if),
            (&lab.sensor_ns, &lab.sensor_if),
        ] {
            lab.ns_ip(ns, &["link", "set", dev, "up"]);
            lab.ns_ip(ns, &["link", "set", "lo", "up"]);
        }
        for net in [DARK, UNMONITORED] {
            lab.ns_ip(&lab.scanner_ns, &["route", "add", net, "via", SENSOR_IP]);
        }
        // Resolve the gateway once so the first probe is not held back by ARP.
        let _ = lab
            .in_scanner("ping")
            .args(["-c", "1", "-W", "2", SENSOR_IP])
            .output();
        lab
    }

    /// Like [`Lab::new`], plus a management link from the host to the sensor namespace (a
    /// /30 from 198.18.0.0/15 outside the lab's other prefixes), so a sensor in the lab can ship
    /// to an aggregator running on the host. The sensor namespace does not forward, so nothing
    /// from the scanner side reaches the host.
    pub fn with_uplink() -> Lab {
        static N: AtomicU32 = AtomicU32::new(0);
        let mut lab = Lab::new();
        let n = N.fetch_add(1, Ordering::Relaxed);
        let third = 3 + (std::process::id() % 200) as u8;
        let fourth = ((n % 64) * 4) as u8;
        let host = format!("198.18.{third}.{}", fourth + 1);
        let sensor = format!("198.18.{third}.{}", fourth + 2);
        let host_if = format!("ttu{}x{n}", std::process::id());
        let tmp = format!("ttv{}x{n}", std::process::id());
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &tmp,
        ]);
        ip(&[
            "link",
            "set",
            &tmp,
            "netns",
            &lab.sensor_ns,
            "name",
            "tt-up",
        ]);
        ip(&["addr", "add", &format!("{host}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        lab.ns_ip(
            &lab.sensor_ns,
            &["addr", "add", &format!("{sensor}/30"), "dev", "tt-up"],
        );
        lab.ns_ip(&lab.sensor_ns, &["link", "set", "tt-up", "up"]);
        lab.uplink = Some((host_if, host, sensor));
        lab
    }

    fn ns_ip(&self, ns: &str, args: &[&str]) {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// A command that will run inside the scanner namespace.
    pub fn in_scanner(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.scanner_ns, program]);
        c
    }

    /// A command that will run inside the sensor namespace.
    pub fn in_sensor(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.sensor_ns, program]);
        c
    }

    /// The MAC address of the sensor side's interface (the scanners' next hop).
    pub fn sensor_mac(&self) -> String {
        let out = crate::run_ok(
            self.in_sensor("cat")
                .arg(format!("/sys/class/net/{}/address", self.sensor_if)),
        );
        out.trim().to_owned()
    }

    /// nmap SYN scan of `ports` on `target`, one probe per port (no retries, no discovery).
    pub fn nmap(&self, target: &str, ports: &str) -> Command {
        self.nmap_scan("-sS", target, ports)
    }

    /// nmap scan of technique `scan` (`-sS`, `-sF`, `-sN`, `-sX`, `-sM`, `-sA`, `-sW`) of
    /// `ports` on `target`, one probe per port (no retries, no discovery).
    pub fn nmap_scan(&self, scan: &str, target: &str, ports: &str) -> Command {
        let mut c = self.in_scanner("nmap");
        c.args([
            scan,
            "-Pn",
            "-n",
            "-T5",
            "--max-retries",
            "0",
            "--min-rate",
            "2000",
        ])
        .args(["-p", ports, target]);
        c
    }

    /// masscan of `range` on `ports` at `rate` packets/s, straight to the sensor side's MAC.
    pub fn masscan(&self, range: &str, ports: &str, rate: u32) -> Command {
        let mut c = self.in_scanner("masscan");
        c.args([range, "-p", ports, "--rate", &rate.to_string()])
            .args(["--adapter", &self.scanner_if, "--adapter-ip", SCANNER_IP])
            .args(["--router-mac", &self.sensor_mac(), "--wait", "0"]);
        c
    }

    /// zmap of `range` on `port` at `rate` packets/s, with an empty blocklist (zmap's default
    /// one holds 198.18.0.0/15) written to `blocklist`.
    pub fn zmap(&self, range: &str, port: u16, rate: u32, blocklist: &std::path::Path) -> Command {
        std::fs::write(blocklist, "").expect("blocklist file");
        let mut c = self.in_scanner("zmap");
        c.args([
            "-i",
            &self.scanner_if,
            "-G",
            &self.sensor_mac(),
            "-S",
            SCANNER_IP,
            "-b",
        ])
        .arg(blocklist)
        .args([
            "-p",
            &port.to_string(),
            "-r",
            &rate.to_string(),
            "-c",
            "0",
            "-q",
            range,
        ]);
        c
    }

    /// hping3 sending `count` packets 10 ms apart, quietly, with `args` (mode, ports, source,
    /// target). It exits 1 when nothing answers, as in a darknet.
    pub fn hping(&self, count: u32, args: &[&str]) -> Command {
        let mut c = self.in_scanner("hping3");
        c.args(["-c", &count.to_string(), "-i", "u10000", "-q"])
            .args(args);
        c
    }

    /// Starts a packet capture on the scanner side (what the scanners really sent), writing
    /// `path`; stop it with [`stop`].
    pub fn record_sent(&self, path: &std::path::Path, filter: &str) -> Child {
        crate::require_tool("tcpdump", "tcpdump");
        let child = self
            .in_scanner("tcpdump")
            .args(["-i", &self.scanner_if, "-n", "-U", "-Q", "out", "-w"])
            .arg(path)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        std::thread::sleep(std::time::Duration::from_millis(700));
        child
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some((host_if, _, _)) = &self.uplink {
            let _ = Command::new("ip").args(["link", "del", host_if]).status();
        }
        for ns in [&self.scanner_ns, &self.sensor_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Sends SIGTERM to a child and waits for it, returning its output.
pub fn stop(mut child: Child) -> std::process::Output {
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.try_wait();
    child.wait_with_output().expect("child output")
}
