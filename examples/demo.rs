//! The local deployment behind `scripts/demo`: a private ClickHouse, the aggregator, the
//! dashboard, a sensor on a veth in a network namespace watching the dark prefix
//! 198.18.1.0/24, and real scanners (nmap, masscan, zmap, hping3) driven at it from another
//! namespace every 20 seconds. Prints the dashboard URL and, after the first round, writes a
//! daily IODEF file per partner CSIRT into `target/demo/outbox/`; Ctrl-C stops everything
//! cleanly.
//!
//! The public pages show only the UTC days that are over, over at least two sensors (the
//! `[public]` defaults, against probe response attacks: `docs/probe-response.md`); so that they
//! show something, the demo loads two weeks of synthetic history up to today 00:00 UTC from the
//! lab sensor and three synthetic ones (`teiten_dashboard::testdata`). Today's real scans are in
//! the analyst's view (log in).
//!
//! All traffic stays inside the lab's namespaces: the scanners send only to 198.18.1.0/24,
//! which nothing answers. hping3 forges source addresses (`--rand-source`) so the source region
//! graph has countries to show; those packets, too, never leave the lab.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use teiten::chain::{Chain, Options};
use teiten::lab::Lab;

fn main() {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).expect("signal handler");
    }
    let dir = teiten::root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    println!("teiten demo: configs and logs in {}", dir.display());
    println!("Starting ClickHouse, the aggregator, the dashboard and a sensor...");
    let opts = Options {
        dashboard_port: 8090,
        batch_interval_ms: 1000,
        ..Options::default()
    };
    let mut chain = Chain::start(&dir, &opts);
    let days = load_history(&chain);
    println!();
    println!("  Dashboard: {}/", chain.dashboard_url);
    println!("  Analyst login: analyst / {}", opts.analyst_password);
    println!(
        "  Scanners probe 198.18.1.0/24 every 20 s; the analyst's graphs fill within a minute."
    );
    println!(
        "  Public pages show the days that are over ({days} days of synthetic history loaded);"
    );
    println!("  today's scans are for analysts: log in to see them.");
    println!("  Ctrl-C stops everything.");
    println!();

    let mut round = 0u32;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        next = Instant::now() + Duration::from_secs(20);
        round += 1;
        scan_round(&chain.lab, &chain.dir, round, &stop);
        if stop.load(Ordering::Relaxed) {
            // Interrupted mid-round (Ctrl-C also reaches ClickHouse): no count to print.
            break;
        }
        println!(
            "round {round}: scanners done, {} events stored",
            chain.stored_events()
        );
        // Today's partner files so far (the aggregator's scheduler writes yesterday's each
        // night); one per partner in the outbox.
        if round == 1 {
            for line in chain.export_today().lines() {
                println!("  partner file: {line}");
            }
            println!("  outbox: {}", chain.dir.join("outbox").display());
        }
    }
    println!("Stopping...");
    chain.stop();
    drop(chain);
    println!("Stopped.");
}

/// Loads synthetic history (events only: the synthetic sensors are not registered) for the days
/// before today (UTC); returns how many days.
fn load_history(chain: &Chain) -> i64 {
    const DAYS: i64 = 14;
    let today = teiten_dashboard::now() / 86_400 * 86_400;
    let synth = teiten_dashboard::testdata::Synth {
        db: "teiten".into(),
        sensors: ["lab-1", "history-2", "history-3", "history-4"]
            .map(String::from)
            .to_vec(),
        from: today - DAYS * 86_400,
        to: today,
        events: 1_000_000,
        sources: 20_000,
        seed: 5,
    };
    println!("Loading {DAYS} days of synthetic history...");
    for (offset, count) in [(0, 500_000), (500_000, 500_000)] {
        chain
            .clickhouse
            .query(&synth.events_sql(offset, count))
            .expect("synthetic history");
    }
    // A port that rose yesterday, for the public trends box.
    chain
        .clickhouse
        .query(&synth.surge_sql(8728, 20_000, 2_000, 20))
        .expect("synthetic surge");
    DAYS
}

/// One round of real scanners against the dark prefix.
fn scan_round(lab: &Lab, dir: &std::path::Path, round: u32, stop: &AtomicBool) {
    // Each scanner runs in its own process group (Ctrl-C is the demo's to handle) and gets
    // at most a minute.
    let run = |mut c: Command| {
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
    run(lab.nmap(&format!("198.18.1.{}", 10 + round % 20), "1-1024"));
    run(lab.masscan("198.18.1.0/25", "22,23,80,443,445,3389,8080", 2000));
    run(lab.zmap("198.18.1.0/24", 6379, 2000, &dir.join("empty-blocklist")));
    // Forged sources so the region graph has countries (the packets stay in the lab).
    let target = format!("198.18.1.{}", 100 + round % 50);
    for (count, args) in [
        (400, &["-S", "-p", "23"][..]),
        (250, &["-S", "-p", "445"]),
        (150, &["-S", "-p", "22"]),
        (80, &["--udp", "-p", "5060"]),
        (60, &["--icmp"]),
    ] {
        let mut c = lab.hping(count, args);
        c.args(["--rand-source", &target]);
        run(c);
    }
}
