//! The servers hold up against outsiders (issue 14, part 5), run against the real binaries and
//! a real ClickHouse 18.16, on loopback only:
//!
//! - the aggregator under slowloris (hundreds of connections that send part of a request head
//!   and stall, reconnecting when cut) and a flood of made-up sensor tokens, while the real
//!   sensor keeps shipping: `/health` answers within a second throughout, the registry reloads
//!   at most about once a second, and every sensor event is stored exactly once;
//! - the dashboard under slowloris and a flood of bad logins from 24 addresses at once (each
//!   flooder sends its next attempt as soon as it has the answer): the
//!   real analyst logs in during it, `/health` answers within a second, the RSS stays bounded,
//!   and the graphs are read as the read-only ClickHouse user.
//!
//! Each test prints its figures (health latency p50/p99/max, RSS before/peak/after).

mod aggregator_common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aggregator_common::*;
use teiten::clickhouse::{free_port, Server, READER_PASSWORD, READER_USER};
use teiten::pcapgen::{frame, scan_mix, write_pcap};

/// The `[aggregator]` timeouts of the lab sensor.
const SENSOR_TIMEOUTS: &str = "timeout_secs = 10\nretry_max_secs = 1\n";

/// Connects to `dst` from the loopback address `src` (127.0.0.0/8), so that the server sees
/// a client address of its own.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(dst) = dst else {
        panic!("IPv4 only")
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the addresses live on the
    // stack for the duration of the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(src, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(*dst.ip(), dst.port());
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the whole answer.
fn exchange(stream: std::io::Result<TcpStream>, request: &str) -> (u16, String) {
    let Ok(mut s) = stream else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    if s.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Slowloris: `n` connections that each send a partial request head and stall; a connection
/// the server closes is opened again at once. Returns the closes seen.
fn slowloris(addr: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let head = b"POST /api/v1/batches HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let open = || -> Option<TcpStream> {
            let mut s = TcpStream::connect(addr).ok()?;
            s.write_all(head).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        };
        let mut conns: Vec<Option<TcpStream>> = (0..n).map(|_| open()).collect();
        let mut closed = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for c in conns.iter_mut() {
                let gone = match c {
                    None => true,
                    Some(s) => {
                        let mut b = [0u8; 512];
                        match s.peek(&mut b) {
                            Ok(_) => true,
                            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                        }
                    }
                };
                if gone {
                    closed += 1;
                    *c = open();
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        closed
    })
}

/// Times `GET /health` on a fresh connection every 100 ms until `stop`: each latency (a
/// failure counts as 99 s), and the slowest TCP connect alone.
fn health_prober(addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<(Vec<Duration>, Duration)> {
    std::thread::spawn(move || {
        let mut times = Vec::new();
        let mut slowest_connect = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) && times.len() < 10_000 {
            let t = Instant::now();
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
            slowest_connect = slowest_connect.max(t.elapsed());
            let (status, text) = exchange(
                stream,
                "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            let ok = status == 200 && (text.ends_with("ok\n") || text.contains("\"ok\""));
            times.push(if ok {
                t.elapsed()
            } else {
                Duration::from_secs(99)
            });
            std::thread::sleep(Duration::from_millis(100));
        }
        (times, slowest_connect)
    })
}

/// p50, p99 and max of latencies, in milliseconds.
fn figures(mut times: Vec<Duration>) -> (f64, f64, f64) {
    assert!(!times.is_empty());
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.99), ms(*times.last().unwrap()))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn aggregator_survives_slowloris_and_unknown_tokens_while_a_sensor_ships() {
    const ROUNDS: u64 = 6;
    const PER_ROUND: u64 = 3000;
    let ch = Server::start().expect("private ClickHouse starts");
    let agg = Agg::start(&ch, "t_abuse", "");
    let token = agg.add_sensor("lab-1");
    let addr: SocketAddr = agg.url.trim_start_matches("http://").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = lab_sensor_config(dir.path(), &agg.url, &token, SENSOR_TIMEOUTS, 500);
    let start_us = now_us() - 600_000_000;
    for round in 0..ROUNDS {
        let frames = (0..PER_ROUND).map(|k| {
            let i = round * PER_ROUND + k;
            (start_us + i as i64 * 1000, frame(&scan_mix(i)))
        });
        write_pcap(&dir.path().join(format!("round-{round}.pcap")), frames).unwrap();
    }
    let reloads_before = metric(&agg.metrics(), "teiten_aggregator_registry_reloads_total");

    let stop = Arc::new(AtomicBool::new(false));
    let loris = slowloris(addr, 400, stop.clone());
    let started = Instant::now();
    let flood_requests = Arc::new(AtomicU64::new(0));
    let floods: Vec<JoinHandle<()>> = (0..6)
        .map(|t| {
            let (stop, n, url) = (stop.clone(), flood_requests.clone(), agg.url.clone());
            std::thread::spawn(move || {
                let b = batch("lab-1", 1, 0, 1, now_us());
                let body = teiten_wire::encode(&b);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let a = post_raw(
                        &url,
                        Some(&format!("tt_made_up_{t}_{i}")),
                        teiten_wire::CONTENT_TYPE,
                        &body,
                    );
                    assert!(
                        matches!(a.status, 401 | 503),
                        "made-up token answered {a:?}"
                    );
                    n.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let prober = health_prober(addr, stop.clone());

    // The real sensor ships its rounds meanwhile, one after another.
    for round in 0..ROUNDS {
        let capture = dir.path().join(format!("round-{round}.pcap"));
        if let Err(e) = teiten::try_run(
            teiten::configured("teiten-sensor", &config)
                .arg("--read")
                .arg(capture),
        ) {
            panic!("sensor round {round}: {e}\n{}", agg.log_text());
        }
    }
    // Keep the attack on for at least 12 s (two header-read timeouts and more).
    while started.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let attack = started.elapsed();
    let closed = loris.join().unwrap();
    for f in floods {
        f.join().unwrap();
    }
    let (times, connect) = prober.join().unwrap();
    let probes = times.len();
    let (p50, p99, max) = figures(times);
    let reloads =
        metric(&agg.metrics(), "teiten_aggregator_registry_reloads_total") - reloads_before;
    let flood = flood_requests.load(Ordering::Relaxed);
    println!(
        "aggregator under 400 slowloris connections for {attack:?}: /health p50 {p50:.1} ms, \
         p99 {p99:.1} ms, max {max:.1} ms over {probes} probes (slowest connect {connect:?}); slowloris connections cut {closed}; \
         {flood} made-up-token requests, {reloads} registry reloads"
    );
    assert!(max < 1000.0, "/health took {max:.1} ms at worst");
    assert!(
        closed >= 400,
        "the header-read timeout cuts every stalled connection ({closed} cut)"
    );
    // Periodic reloads (1 s in the test config) plus at most one a second for misses.
    let bound = 2 * attack.as_secs() + 4;
    assert!(
        reloads <= bound,
        "{reloads} reloads for {flood} unknown tokens in {attack:?}"
    );
    assert!(
        flood > 10 * bound,
        "the flood was a flood ({flood} requests)"
    );
    // Every sensor event stored, exactly once.
    let total = ROUNDS * PER_ROUND;
    eventually(&ch, "SELECT count() FROM t_abuse.scan_events", total);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        scalar(&ch, "SELECT count() FROM t_abuse.scan_events"),
        total
    );
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM t_abuse.scan_events WHERE sensor_id != 'lab-1'"
        ),
        0
    );
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("metric {name} not in:\n{text}")) as u64
}

struct Dashboard {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ALICE_PASSWORD: &str = "the real analyst's password";

fn start_dashboard(ch: &Server, dir: &std::path::Path) -> Dashboard {
    // The schema, as the aggregator creates it.
    let agg_config = dir.join("aggregator.toml");
    std::fs::write(
        &agg_config,
        format!(
            "[clickhouse]\nurl = \"{}\"\ndatabase = \"t_dash\"\n",
            ch.url()
        ),
    )
    .unwrap();
    teiten::run_ok(teiten::configured("teiten-aggregator", &agg_config).arg("migrate"));
    let alice = teiten_dashboard::auth::hash_password(ALICE_PASSWORD).unwrap();
    let bob = teiten_dashboard::auth::hash_password("bob's password").unwrap();
    let port = free_port().unwrap();
    let config = dir.join("dashboard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"t_dash\"\n\
             [query]\nuser = \"{READER_USER}\"\npassword = \"{READER_PASSWORD}\"\n\
             [analyst]\nsecure_cookies = false\n\
             [analyst.users]\nalice = \"{alice}\"\nbob = \"{bob}\"\n",
            ch.url(),
        ),
    )
    .unwrap();
    let log = dir.join("dashboard.log");
    let child = Command::new(teiten::bin("teiten-dashboard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("TEITEN_LOG", "info")
        .stdin(Stdio::null())
        // The log goes to standard error (teiten-service's one log convention).
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("http://{addr}/health")).call().is_err() {
        assert!(Instant::now() < deadline, "dashboard did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Dashboard { child, addr, log }
}

fn login_request(user: &str, password: &str) -> String {
    let body = format!("user={user}&password={password}&csrf=flood");
    format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nCookie: teiten_login_csrf=flood\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The real analyst logs in the way a browser does: the form, its CSRF cookie, the POST, then
/// the analyst page with the session cookie. Returns how long it took.
fn analyst_logs_in(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(20))
        .build();
    let session = teiten::login::login(&agent, &format!("http://{addr}"), "alice", ALICE_PASSWORD);
    let page = agent
        .get(&format!("http://{addr}/analyst"))
        .set("Cookie", &session)
        .call()
        .unwrap();
    assert_eq!(page.status(), 200);
    let text = page.into_string().unwrap();
    assert!(text.contains("alice"), "{text}");
    t.elapsed()
}

#[test]
fn dashboard_survives_login_flood_and_slowloris() {
    let ch = Server::start().expect("private ClickHouse starts");
    let dir = tempfile::tempdir().unwrap();
    let dash = start_dashboard(&ch, dir.path());
    let addr = dash.addr;
    let pid = dash.child.id();
    // The graphs are read as the read-only user, which cannot write.
    let api = ureq::get(&format!("http://{addr}/api/v1/ports.json"))
        .call()
        .unwrap_or_else(|e| panic!("ports API as {READER_USER}: {e}"));
    assert_eq!(api.status(), 200);
    let refused = ureq::post(&format!(
        "{}/?user={READER_USER}&password={READER_PASSWORD}",
        ch.url()
    ))
    .send_string("CREATE TABLE t_dash.forbidden (x UInt8) ENGINE = Memory");
    assert!(refused.is_err(), "{READER_USER} may not write");

    let rss_before = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let loris = slowloris(addr, 300, stop.clone());
    let prober = health_prober(addr, stop.clone());
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // 24 flooders, each from an address of its own, as bob or made-up names.
    let statuses: Vec<JoinHandle<Vec<u16>>> = (0..24u8)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let src = Ipv4Addr::new(127, 0, 1, 10 + i);
                let mut got = Vec::new();
                let mut k = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let user = if k.is_multiple_of(2) {
                        "bob".to_owned()
                    } else {
                        format!("guess{i}x{k}")
                    };
                    let (status, _) = exchange(
                        connect_from(src, addr),
                        &login_request(&user, &format!("wrong{k}")),
                    );
                    got.push(status);
                    k += 1;
                }
                got
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let login_took = analyst_logs_in(addr);
    std::thread::sleep(Duration::from_secs(7));
    let login_again = analyst_logs_in(addr);
    stop.store(true, Ordering::Relaxed);
    let closed = loris.join().unwrap();
    sampler.join().unwrap();
    let all: Vec<u16> = statuses
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let (times, connect) = prober.join().unwrap();
    let probes = times.len();
    let (p50, p99, max) = figures(times);
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = rss_kib(pid);
    let rss_peak = peak.load(Ordering::Relaxed);
    let count = |s: u16| all.iter().filter(|&&x| x == s).count();
    println!(
        "dashboard under a login flood from 24 addresses ({} attempts: {} 401, {} 429, {} 503, \
         {} other) and 300 slowloris connections ({closed} cut): RSS before {} MiB, peak {} MiB, \
         after {} MiB; /health p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {probes} probes (slowest \
         connect {connect:?}); the analyst \
         logged in in {login_took:?} and {login_again:?}",
        all.len(),
        count(401),
        count(429),
        count(503),
        all.len() - count(401) - count(429) - count(503),
        rss_before / 1024,
        rss_peak / 1024,
        rss_after / 1024,
    );
    let log = std::fs::read_to_string(&dash.log).unwrap_or_default();
    assert!(max < 1000.0, "/health took {max:.1} ms at worst");
    assert!(
        all.iter().all(|s| matches!(s, 401 | 429 | 503)),
        "every flood attempt refused"
    );
    assert!(count(429) > count(401), "most attempts throttled unchecked");
    // Password checks are bounded at `login.max_checks` = 2, each thread keeping its 19 MiB of
    // argon2 memory; 40 MiB for the rest (connections, pages).
    assert!(
        rss_peak < rss_before + (2 * 19 + 40) * 1024,
        "RSS grew from {rss_before} to {rss_peak} KiB"
    );
    assert!(closed >= 300, "stalled connections are cut ({closed})");
    assert!(log.contains("Login refused"), "{log}");
}
