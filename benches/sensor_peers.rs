//! Sensor benchmark harness (run by `scripts/bench`): offline decode of generated pcaps side by
//! side with tshark and tcpdump (throughput, CPU, peak memory, and memory as input grows), and
//! live capture in the namespace lab with `tcpreplay --topspeed` (loss, and CPU per packet
//! against `tcpdump -w` on the same traffic). Prints a Markdown table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use teiten::lab::{self, Lab};
use teiten::measure::{self, Measured};
use teiten::pcapgen::{frame, scan_mix, write_pcap};
use teiten::{bin, require_tool};

fn pcap(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join(format!("scan-{n}.pcap"));
    if !path.exists() {
        write_pcap(
            &path,
            (0..n).map(|i| (1_700_000_000_000_000 + i as i64, frame(&scan_mix(i)))),
        )
        .unwrap();
    }
    path
}

fn row(tool: &str, input: &str, packets: u64, m: &Measured, base: Option<&Measured>) {
    let pps = packets as f64 / m.wall.as_secs_f64();
    let cpu_pps = packets as f64 / m.cpu.as_secs_f64().max(1e-9);
    // How many times faster the sensor (`base`) is than this tool, on wall time.
    let ratio = base.map_or("1x".to_owned(), |b| {
        format!("{:.0}x", m.wall.as_secs_f64() / b.wall.as_secs_f64())
    });
    println!(
        "| {tool} | {input} | {:.2} s | {:.2} M/s | {:.2} M/CPU-s | {:.0} MiB | {ratio} |",
        m.wall.as_secs_f64(),
        pps / 1e6,
        cpu_pps / 1e6,
        m.max_rss_kib as f64 / 1024.0
    );
}

fn offline(dir: &Path) {
    require_tool("tshark", "tshark");
    require_tool("tcpdump", "tcpdump");
    let sensor = bin("teiten-sensor");
    println!("\n### Offline decode, one core (taskset -c 0)\n");
    println!(
        "| tool | input | wall | packets/s | per CPU-second | peak RSS | teiten-sensor speed vs this tool |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in [100_000u64, 1_000_000, 4_000_000] {
        let file = pcap(dir, n);
        let input = if n < 1_000_000 {
            format!("{} k packets", n / 1_000)
        } else {
            format!("{} M packets", n / 1_000_000)
        };
        let ours = measure::run(
            Command::new("taskset")
                .args(["-c", "0"])
                .arg(&sensor)
                .arg("--read")
                .arg(&file)
                .args(["--count", "--prefix", "198.18.1.0/24"]),
        );
        row("teiten-sensor --count", &input, n, &ours, None);
        // tcpdump's time grows with the square of this input (10 k packets 0.1 s, 100 k 7 s;
        // 1 M had not finished after 11 CPU-minutes): perf puts ~80% in one loop, apparently
        // its cache of printed addresses (kept even with -n) walking chains that grow with the
        // darknet's millions of distinct sources. So it runs on the smallest file only.
        if n == 100_000 {
            let tcpdump = measure::run(
                Command::new("taskset")
                    .args(["-c", "0", "tcpdump", "-n", "-r"])
                    .arg(&file),
            );
            row("tcpdump -r", &input, n, &tcpdump, Some(&ours));
        }
        if n <= 1_000_000 {
            let mut t = Command::new("taskset");
            t.args(["-c", "0", "tshark", "-n", "-r"]).arg(&file).args([
                "-T",
                "fields",
                "-E",
                "separator=,",
                "-e",
                "frame.time_epoch",
                "-e",
                "ip.proto",
                "-e",
                "ip.src",
                "-e",
                "tcp.srcport",
                "-e",
                "udp.srcport",
                "-e",
                "ip.dst",
                "-e",
                "tcp.dstport",
                "-e",
                "udp.dstport",
                "-e",
                "icmp.type",
                "-e",
                "icmp.code",
                "-e",
                "tcp.flags",
                "-e",
                "ip.id",
                "-e",
                "ip.ttl",
                "-e",
                "tcp.seq_raw",
            ]);
            let tshark = measure::run(&mut t);
            row("tshark -T fields", &input, n, &tshark, Some(&ours));
        }
    }
}

/// Alternating runs of each capturer, so that a passing disturbance does not decide the ratio.
const LIVE_ROUNDS: usize = 5;

fn live(dir: &Path) {
    use std::io::Read;
    require_tool("tcpreplay", "tcpreplay");
    require_tool("taskset", "util-linux");
    let n = 1_000_000u64;
    let file = pcap(dir, n);
    let lab = Lab::new();
    println!(
        "\n### Live capture in the namespace lab: tcpreplay --topspeed, {n} packets, \
         {LIVE_ROUNDS} alternating runs each\n"
    );
    println!(
        "Capturer pinned to core 0, tcpreplay to core 1, both capturers with a 64 MiB kernel \
         ring; CPU is the capturer's user + system time over the whole run (setting up the \
         ring, 1.5 s idle before and after the replay included).\n"
    );
    println!("| capturer | run | offered rate | captured | kernel drops | CPU | CPU per packet |");
    println!("|---|---|---|---|---|---|---|");
    let replay = || -> String {
        let out = lab
            .in_scanner("taskset")
            .args(["-c", "1", "tcpreplay", "--topspeed", "-i", &lab.scanner_if])
            .arg(&file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find(|l| l.contains("Rated:"))
            .and_then(|l| l.split(',').find(|p| p.contains("pps")))
            .map(|p| p.trim().to_owned())
            .unwrap_or_else(|| format!("? ({})", text.trim()))
    };
    let capture = |program: &str, args: &[&str]| -> (Measured, String, String) {
        let started = Instant::now();
        let mut child = lab
            .in_sensor("taskset")
            .args(["-c", "0", program])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let rate = replay();
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: SIGTERM to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let m = measure::wait(child, started);
        let (mut out, mut err) = (String::new(), String::new());
        so.read_to_string(&mut out).unwrap();
        se.read_to_string(&mut err).unwrap();
        (m, rate, out + &err)
    };
    let ns_per_packet = |m: &Measured| m.cpu.as_nanos() as f64 / n as f64;
    let sensor = bin("teiten-sensor");
    let pcap_out = dir.join("live-tcpdump.pcap");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 1..=LIVE_ROUNDS {
        let (m, rate, text) = capture(
            sensor.to_str().unwrap(),
            &[
                "--interface",
                &lab.sensor_if,
                "--count",
                "--prefix",
                lab::DARK,
            ],
        );
        let v: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap_or_default();
        let field = |key: &str| v[key].as_u64().map_or("?".to_owned(), |x| x.to_string());
        println!(
            "| teiten-sensor | {run} | {rate} | {} | {} | {:.2} s | {:.0} ns |",
            field("packets"),
            field("kernel_drops"),
            m.cpu.as_secs_f64(),
            ns_per_packet(&m)
        );
        ours.push(ns_per_packet(&m));

        let (m, rate, text) = capture(
            "tcpdump",
            &[
                "-i",
                &lab.sensor_if,
                // The same kernel ring as the sensor's (its default `ring_mb`).
                "-B",
                "65536",
                "-n",
                "-Q",
                "in",
                "-w",
                pcap_out.to_str().unwrap(),
                "dst net 198.18.1.0/24",
            ],
        );
        let grab = |what: &str| -> String {
            text.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("?")
                .to_owned()
        };
        println!(
            "| tcpdump -w | {run} | {rate} | {} | {} | {:.2} s | {:.0} ns |",
            grab("captured"),
            grab("dropped by kernel"),
            m.cpu.as_secs_f64(),
            ns_per_packet(&m)
        );
        theirs.push(ns_per_packet(&m));
        let _ = std::fs::remove_file(&pcap_out);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut ours), median(&mut theirs));
    println!(
        "\nMedian CPU per packet: teiten-sensor {a:.0} ns, tcpdump -w {b:.0} ns: the sensor uses \
         {:.2}x tcpdump -w's CPU.",
        a / b
    );
}

fn main() {
    let dir = teiten::root().join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    println!("## Sensor benchmarks");
    offline(&dir);
    live(&dir);
}
