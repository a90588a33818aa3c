//! The local deployment behind `scripts/demo`: a private ClickHouse, the aggregator, the
//! dashboard, a sensor on a veth in a network namespace watching the dark prefix
//! 198.18.1.0/24, and real scanners (nmap, masscan, zmap, hping3) driven at it from another
//! namespace every few seconds. Prints the dashboard URL; Ctrl-C stops everything cleanly.
//!
//! All traffic stays inside the lab's namespaces: the scanners send only to 198.18.1.0/24,
//! which nothing answers. hping3 forges source addresses (`-a`, `--rand-source`) so the source
//! region graph has countries to show; those packets, too, never leave the lab.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use teiten::clickhouse::{free_port, Server};
use teiten::lab::{self, Lab, SCANNER_IP};
use teiten::{bin, run_ok};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Starts a long-running part in its own process group, so Ctrl-C reaches only the demo,
/// which then stops the parts in order (sensor first, so it can deliver what it holds).
fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    cmd.process_group(0)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

fn terminate(child: &mut Child) {
    // SAFETY: SIGTERM to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).expect("signal handler");
    }
    let dir = teiten::root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("teiten demo: logs and configs in {}", dir.display());

    println!("Starting ClickHouse...");
    let ch = Server::start().expect("ClickHouse starts");
    let lab = Lab::with_uplink();
    let (_, host_ip, _) = lab.uplink.clone().expect("uplink");

    // Aggregator: listens on the host end of the lab's management link.
    let agg_port = free_port().unwrap();
    let agg_cfg = dir.join("aggregator.toml");
    write(
        &agg_cfg,
        &format!(
            "listen = \"{host_ip}:{agg_port}\"\n[clickhouse]\nurl = \"{}\"\n",
            ch.url()
        ),
    );
    let agg = bin("teiten-aggregator");
    run_ok(Command::new(&agg).arg("-c").arg(&agg_cfg).arg("migrate"));
    let added = run_ok(
        Command::new(&agg)
            .arg("-c")
            .arg(&agg_cfg)
            .args(["sensor", "add", "demo-1"]),
    );
    let token = added
        .split_whitespace()
        .last()
        .expect("sensor add prints the token")
        .to_owned();
    let mut aggregator = spawn(
        Command::new(&agg).arg("-c").arg(&agg_cfg).arg("serve"),
        &dir.join("aggregator.log"),
    );

    // Dashboard, with one analyst account.
    let dash = bin("teiten-dashboard");
    let dash_port = 8090;
    let password = "teiten-demo";
    let mut hasher = Command::new(&dash)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("teiten-dashboard hash-password");
    writeln!(hasher.stdin.take().unwrap(), "{password}").unwrap();
    let hash = String::from_utf8(hasher.wait_with_output().unwrap().stdout).unwrap();
    let dash_cfg = dir.join("dashboard.toml");
    write(
        &dash_cfg,
        &format!(
            "listen = \"127.0.0.1:{dash_port}\"\n[clickhouse]\nurl = \"{}\"\n\
             [analyst]\nsecure_cookies = false\n[analyst.users]\nanalyst = \"{}\"\n",
            ch.url(),
            hash.trim()
        ),
    );
    let mut dashboard = spawn(
        Command::new(&dash)
            .arg("serve")
            .arg("--config")
            .arg(&dash_cfg),
        &dir.join("dashboard.log"),
    );

    // The sensor, inside the lab's sensor namespace.
    let sensor_cfg = dir.join("sensor.toml");
    write(
        &sensor_cfg,
        &format!(
            "sensor_id = \"demo-1\"\ninterface = \"{}\"\nmonitored_prefixes = [\"{}\"]\n\
             [aggregator]\nurls = [\"http://{host_ip}:{agg_port}\"]\ntoken = \"{token}\"\n\
             [spool]\ndir = \"{}\"\n[batch]\nmax_interval_ms = 1000\n[metrics]\nlisten = \"\"\n",
            lab.sensor_if,
            lab::DARK,
            dir.join("spool").display()
        ),
    );
    let mut sensor = spawn(
        lab.in_sensor(bin("teiten-sensor").to_str().unwrap())
            .arg("--config")
            .arg(&sensor_cfg),
        &dir.join("sensor.log"),
    );
    std::thread::sleep(Duration::from_secs(2));
    println!();
    println!("  Dashboard: http://127.0.0.1:{dash_port}/");
    println!("  Analyst login: analyst / {password}");
    println!("  Scanners probe 198.18.1.0/24 every 20 s; graphs fill within a minute.");
    println!("  Ctrl-C stops everything.");
    println!();

    let mac = lab.sensor_mac();
    let blocklist = dir.join("empty-blocklist");
    write(&blocklist, "");
    let mut round = 0u32;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        next = Instant::now() + Duration::from_secs(20);
        round += 1;
        scan_round(&lab, &mac, &blocklist, round, &stop);
        println!("round {round}: scanners done");
    }

    println!("Stopping...");
    terminate(&mut sensor);
    terminate(&mut aggregator);
    terminate(&mut dashboard);
    drop(lab);
    drop(ch);
    println!("Stopped.");
}

/// One round of real scanners against the dark prefix.
fn scan_round(lab: &Lab, mac: &str, blocklist: &Path, round: u32, stop: &AtomicBool) {
    // Each scanner runs in its own process group (Ctrl-C is the demo's to handle) and gets
    // at most a minute.
    let quiet = |mut c: Command| {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut child) = c
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    let mut c = lab.in_scanner("nmap");
    c.args([
        "-sS",
        "-Pn",
        "-n",
        "-T5",
        "--max-retries",
        "0",
        "-p",
        "1-1024",
    ])
    .arg(format!("198.18.1.{}", 10 + round % 20));
    quiet(c);
    let mut c = lab.in_scanner("masscan");
    c.args([
        "198.18.1.0/25",
        "-p22,23,80,443,445,3389,8080",
        "--rate",
        "2000",
    ])
    .args(["--adapter", &lab.scanner_if, "--adapter-ip", SCANNER_IP])
    .args(["--router-mac", mac, "--wait", "0"]);
    quiet(c);
    let mut c = lab.in_scanner("zmap");
    c.args(["-i", &lab.scanner_if, "-G", mac, "-S", SCANNER_IP, "-b"])
        .arg(blocklist)
        .args(["-p", "6379", "-r", "2000", "-c", "0", "-q", "198.18.1.0/24"]);
    quiet(c);
    // Forged sources so the region graph has countries (packets stay in the lab).
    for (port, count, proto) in [
        ("23", "400", "-S"),
        ("445", "250", "-S"),
        ("22", "150", "-S"),
        ("5060", "80", "--udp"),
        ("0", "60", "--icmp"),
    ] {
        let mut c = lab.in_scanner("hping3");
        c.args([proto, "--rand-source", "-c", count, "-i", "u2000", "-q"]);
        if proto != "--icmp" {
            c.args(["-p", port]);
        }
        c.arg(format!("198.18.1.{}", 100 + round % 50));
        quiet(c);
    }
}
