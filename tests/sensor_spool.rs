//! Spool and shipping: with the aggregator endpoint absent, events accumulate in the durable
//! spool; a sensor killed with SIGKILL loses nothing spooled; when the endpoint returns every
//! batch is delivered once and in order; lost acknowledgements are re-sent, not duplicated;
//! SIGTERM seals the open batch; failover reaches the second URL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use teiten::pcapgen::{frame, scan_mix, write_pcap};
use teiten::receiver::Receiver;
use teiten::{bin, run_ok};

const TOKEN: &str = "s3cret-token-for-tests";
const PACKETS: u64 = 30_000;

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], teiten::clickhouse::free_port().unwrap()))
}

fn config(dir: &Path, urls: &[SocketAddr], max_events: usize) -> PathBuf {
    config_with_metrics(dir, urls, max_events, None)
}

fn config_with_metrics(
    dir: &Path,
    urls: &[SocketAddr],
    max_events: usize,
    metrics: Option<SocketAddr>,
) -> PathBuf {
    let urls: Vec<String> = urls.iter().map(|a| format!("\"http://{a}\"")).collect();
    let path = dir.join("sensor.toml");
    std::fs::write(
        &path,
        format!(
            "sensor_id = \"spool-test\"\nmonitored_prefixes = [\"198.18.1.0/24\"]\n\
             [aggregator]\nurls = [{}]\nallow_insecure = true\ntoken = \"{TOKEN}\"\ntimeout_secs = 5\nretry_max_secs = 1\n\
             [spool]\ndir = \"{}\"\n[batch]\nmax_events = {max_events}\nmax_interval_ms = 200\n\
             [metrics]\nlisten = \"{}\"\n",
            urls.join(", "),
            dir.join("spool").display(),
            metrics.map(|a| a.to_string()).unwrap_or_default()
        ),
    )
    .unwrap();
    path
}

fn pcap(dir: &Path) -> PathBuf {
    let path = dir.join("scan.pcap");
    write_pcap(
        &path,
        (0..PACKETS).map(|i| (1_700_000_000_000_000 + i as i64 * 10, frame(&scan_mix(i)))),
    )
    .unwrap();
    path
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("spool"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".ttb")
            })
            .count()
        })
        .unwrap_or(0)
}

fn sensor(args: &[&str], config: &Path) -> Child {
    Command::new(bin("teiten-sensor"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child with a valid signal.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn spool_survives_outage_and_sigkill_and_drains_in_order_once() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr(); // nothing listens here yet: the aggregator is away
    let cfg = config(dir.path(), &[addr], 1000);
    let file = pcap(dir.path());
    let mut child = sensor(&["--read", file.to_str().unwrap()], &cfg);
    // All 30 batches end up in the spool while the endpoint is absent.
    wait_for("the spool to fill", Duration::from_secs(60), || {
        spooled(dir.path()) == 30
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "sensor exited while undelivered"
    );
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    assert_eq!(spooled(dir.path()), 30, "SIGKILL lost spooled batches");

    // The aggregator returns, and loses its first two acknowledgements.
    let rx = Receiver::start(addr, TOKEN);
    rx.lose_acks(2);
    let out = sensor(&["--drain-only"], &cfg).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spooled(dir.path()), 0);
    let got = rx.received();
    assert_eq!(
        got.events.len() as u64,
        PACKETS,
        "every event delivered once"
    );
    assert_eq!(got.duplicates, 2, "lost acknowledgements re-sent");
    let seqs: Vec<u64> = got.batches.iter().map(|b| b.0.seq).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>(), "in order, without gaps");
    let epochs: std::collections::HashSet<u64> = got.batches.iter().map(|b| b.0.epoch).collect();
    assert_eq!(epochs.len(), 1);
    // Events arrive in capture order.
    assert!(got.events.windows(2).all(|w| w[0].ts_us <= w[1].ts_us));

    // A later run continues the numbering (no number reused after every batch was acked).
    let mut child = sensor(&["--read", file.to_str().unwrap()], &cfg);
    let status = child.wait().unwrap();
    assert!(status.success());
    let got = rx.received();
    assert_eq!(got.batches.last().unwrap().0.seq, 60);
    assert_eq!(got.events.len() as u64, 2 * PACKETS);
}

#[test]
fn failover_and_a_wrong_token_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_addr();
    let rx = Receiver::start("127.0.0.1:0".parse().unwrap(), TOKEN);
    let cfg = config(dir.path(), &[dead, rx.addr], 5000);
    let file = pcap(dir.path());
    let out = sensor(&["--read", file.to_str().unwrap()], &cfg)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rx.received().events.len() as u64, PACKETS);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(TOKEN), "token leaked into the logs");

    // A wrong token is retried (401), never dropped: the batches stay spooled.
    let other = Receiver::start("127.0.0.1:0".parse().unwrap(), "another-token");
    let dir2 = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let cfg2 = config_with_metrics(dir2.path(), &[other.addr], 5000, Some(metrics));
    let mut child = sensor(&["--read", file.to_str().unwrap()], &cfg2);
    wait_for("refusals", Duration::from_secs(30), || {
        other.received().unauthorized >= 2
    });
    // The Prometheus endpoint tells the story: everything recorded, nothing acknowledged.
    let text = http_get(metrics, "/metrics");
    for line in [
        "teiten_sensor_packets_captured_total 30000",
        "teiten_sensor_events_recorded_total 30000",
        "teiten_sensor_batches_sealed_total 6",
        "teiten_sensor_batches_acked_total 0",
        "teiten_sensor_spool_batches 6",
        "teiten_sensor_kernel_drops_total 0",
        "teiten_sensor_packets_malformed_total 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(text.contains("teiten_sensor_send_failures_total"));
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(spooled(dir2.path()), 6, "refused batches stay in the spool");
    assert!(other.received().events.is_empty());
}

#[test]
fn check_config_and_bad_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[free_addr()], 100);
    let ok = run_ok(
        Command::new(bin("teiten-sensor"))
            .arg("--check-config")
            .arg("--config")
            .arg(&cfg),
    );
    assert!(ok.starts_with("config OK: sensor spool-test"), "{ok}");
    assert!(!ok.contains(TOKEN));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "sensor_id = \"x\"\nmonitored_prefixes = [\"198.18.1.0/24\"]\n[batch]\nmax_event = 3\n",
    )
    .unwrap();
    let out = Command::new(bin("teiten-sensor"))
        .arg("--check-config")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("max_event"),
        "{err}"
    );
    // An unknown interface is named in the error.
    let out = Command::new(bin("teiten-sensor"))
        .args(["--interface", "no-such-if0", "--stdout"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot capture on interface no-such-if0"),
        "{err}"
    );
}
