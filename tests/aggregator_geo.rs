//! Geo enrichment against Debian's tor-geoipdb: lookups of known addresses (IPv4 and IPv6)
//! checked against the files' own ranges, countries stored with the events, unknown addresses
//! counted, and a reload on SIGHUP while batches keep coming, without losing any.

mod aggregator_common;

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use aggregator_common::*;
use teiten::clickhouse::Server;
use teiten_store::{GeoConfig, GeoDb};
use teiten_wire::Batch;

/// Every `step`-th range with a country code, parsed independently of the aggregator.
fn sample_ranges(path: &Path, step: usize, v6: bool) -> Vec<(IpAddr, IpAddr, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (apt-get install tor-geoipdb)", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| !l.ends_with("??"))
        .step_by(step)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let parse = |s: &str| -> IpAddr {
                if v6 {
                    IpAddr::V6(s.parse().unwrap())
                } else {
                    IpAddr::V4(s.parse::<u32>().unwrap().into())
                }
            };
            (parse(f[0]), parse(f[1]), f[2].to_owned())
        })
        .collect()
}

fn mid(a: IpAddr, b: IpAddr) -> IpAddr {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            IpAddr::V4((((u32::from(a) as u64 + u32::from(b) as u64) / 2) as u32).into())
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (u128::from(a), u128::from(b));
            IpAddr::V6(Ipv6Addr::from(a + (b - a) / 2))
        }
        _ => unreachable!(),
    }
}

#[test]
fn lookups_match_tor_geoipdb_for_known_addresses() {
    let (p4, p6) = ("/usr/share/tor/geoip", "/usr/share/tor/geoip6");
    let cfg = GeoConfig::tor(p4, p6);
    let db = GeoDb::load(&cfg).expect("tor-geoipdb loads");
    let mut checked = 0;
    for (path, v6) in [(Path::new(p4), false), (Path::new(p6), true)] {
        let ranges = sample_ranges(path, 97, v6);
        assert!(
            ranges.len() > 1000,
            "{}: only {} ranges",
            path.display(),
            ranges.len()
        );
        for (a, b, cc) in ranges {
            for ip in [a, b, mid(a, b)] {
                let got = db
                    .lookup(ip)
                    .map(|c| String::from_utf8_lossy(&c).into_owned());
                assert_eq!(got.as_deref(), Some(cc.as_str()), "{ip} in {a}-{b}");
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000);
    // IPv4-mapped IPv6 is looked up as IPv4; documentation ranges are unknown.
    let v4: IpAddr = "1.0.0.1".parse().unwrap();
    let mapped: IpAddr = "::ffff:1.0.0.1".parse().unwrap();
    assert_eq!(db.lookup(v4), db.lookup(mapped));
    assert_eq!(db.lookup("198.18.0.1".parse().unwrap()), None);
    assert_eq!(db.lookup("2001:db8::1".parse().unwrap()), None);
}

fn tor_files(dir: &Path, cc: &str) {
    // 1.0.0.0/24 and 2001:2::/48 carry the test's code; 1.0.1.0/24 is always "ZZ".
    std::fs::write(
        dir.join("geoip.tmp"),
        format!("# test\n16777216,16777471,{cc}\n16777472,16777727,ZZ\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("geoip6.tmp"),
        format!("2001:2::,2001:2:0:ffff:ffff:ffff:ffff:ffff,{cc}\n"),
    )
    .unwrap();
    // Replace atomically, as a package upgrade does.
    std::fs::rename(dir.join("geoip.tmp"), dir.join("geoip")).unwrap();
    std::fs::rename(dir.join("geoip6.tmp"), dir.join("geoip6")).unwrap();
}

fn countries(ch: &Server, db: &str, seq: u64) -> String {
    ch.query(&format!(
        "SELECT country, count() FROM {db}.scan_events WHERE batch_seq = {seq} GROUP BY country ORDER BY country"
    ))
    .unwrap()
}

#[test]
fn countries_are_stored_unknowns_counted_and_sighup_reloads_without_loss() {
    let ch = Server::start().expect("private ClickHouse starts");
    let geo_dir = tempfile::tempdir().unwrap();
    tor_files(geo_dir.path(), "AA");
    let extra = format!(
        "[geo]\nipv4 = \"{0}/geoip\"\nipv6 = \"{0}/geoip6\"\n",
        geo_dir.path().display()
    );
    let agg = Agg::start(&ch, "t_geo", &extra);
    let tok = agg.add_sensor("g1");
    let now = now_us();

    // The test batch: sources 1.0.0.x (AA), 1.0.1.x (ZZ), 1.2.x.x and 1.3.x.x (unknown here),
    // and 2001:2::x (AA) every 7th event.
    let b: Batch = batch("g1", 1, 1, 1400, now);
    assert_eq!(post(&agg.url, &tok, &b).status, 200);
    let code = |ip: IpAddr| match ip {
        IpAddr::V4(a) if a.octets()[..3] == [1, 0, 0] => "AA",
        IpAddr::V4(a) if a.octets()[..3] == [1, 0, 1] => "ZZ",
        IpAddr::V4(_) => "??",
        IpAddr::V6(_) => "AA",
    };
    let count = |c: &str| b.events.iter().filter(|e| code(e.src) == c).count();
    let (expected_unknown, aa, zz) = (count("??"), count("AA"), count("ZZ"));
    assert!(expected_unknown > 0 && aa > 0 && zz > 0);
    assert_eq!(
        countries(&ch, "t_geo", 1),
        format!("??\t{expected_unknown}\nAA\t{aa}\nZZ\t{zz}\n")
    );
    // Sensor reports are flushed at least every second.
    eventually(
        &ch,
        "SELECT sum(unknown_country) FROM t_geo.sensor_reports",
        expected_unknown as u64,
    );
    assert!(agg.metrics().contains(&format!(
        "teiten_aggregator_geo_unknown_total {expected_unknown}"
    )));

    // Reload while a stream of batches is being sent: every batch is stored, each one
    // entirely with the old or entirely with the new database.
    let url = agg.url.clone();
    let tok2 = tok.clone();
    let sender = std::thread::spawn(move || {
        for seq in 2..=41 {
            let b = batch("g1", 1, seq, 700, now);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let a = post(&url, &tok2, &b);
                if a.status == 200 {
                    break;
                }
                assert!(Instant::now() < deadline, "batch {seq}: {a:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    tor_files(geo_dir.path(), "BB");
    agg.signal("HUP");
    sender.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agg.log_text().contains("Geo database reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload logged:\n{}",
            agg.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        scalar(&ch, "SELECT count() FROM t_geo.scan_events"),
        1400 + 40 * 700
    );
    // No batch mixes the two databases.
    assert_eq!(
        scalar(
            &ch,
            "SELECT count() FROM (SELECT batch_seq FROM t_geo.scan_events \
             WHERE country IN ('AA', 'BB') GROUP BY batch_seq HAVING uniqExact(country) > 1)"
        ),
        0
    );
    // After the reload, new batches get the new code.
    assert_eq!(
        post(&agg.url, &tok, &batch("g1", 1, 42, 70, now)).status,
        200
    );
    assert!(
        countries(&ch, "t_geo", 42).contains("BB\t"),
        "{}",
        countries(&ch, "t_geo", 42)
    );
    assert!(agg
        .metrics()
        .contains("teiten_aggregator_geo_reloads_total 1"));

    // A broken file on reload keeps the loaded database.
    std::fs::write(geo_dir.path().join("geoip"), "garbage\n").unwrap();
    agg.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(agg
        .log_text()
        .contains("Geo reload failed; keeping the loaded database"));
    assert_eq!(
        post(&agg.url, &tok, &batch("g1", 1, 43, 70, now)).status,
        200
    );
    assert!(countries(&ch, "t_geo", 43).contains("BB\t"));
}

/// IPFire's location database (the default) read through the `libloc` crate agrees with
/// Debian's libloc (the database's own C library) on country and AS for 600 pseudo-random
/// IPv4 and IPv6 addresses, found or not.
#[test]
fn location_lookups_match_the_location_tool() {
    teiten::require_tool("location", "location");
    let db = GeoDb::load(&GeoConfig::default()).expect("the location database loads");
    assert!(format!("{db:?}").starts_with("GeoDb::Location"), "{db:?}");
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ips: Vec<IpAddr> = (0..400)
        .map(|_| IpAddr::V4(((next() >> 32) as u32).into()))
        .collect();
    // IPv6: the allocated 2000::/4 space, half of it inside 2a00::/12 (RIPE's, densely announced).
    ips.extend((0..200).map(|i| {
        let hi = if i % 2 == 0 {
            0x2a00u128 | (next() as u128 & 0xf)
        } else {
            0x2000 | (next() as u128 & 0x0fff)
        };
        IpAddr::V6(Ipv6Addr::from(
            (hi << 112) | (u128::from(next()) << 48) | u128::from(next() & 0xffff_ffff_ffff),
        ))
    }));
    // The oracle: Debian's own libloc (the C library, through the Python binding the
    // `location` tool is written with; the tool itself stops at the first address it cannot
    // place, so the lookups are made here one by one).
    let script = "import sys, location\n\
        db = location.Database(sys.argv[1])\n\
        for a in sys.stdin.read().split():\n\
        \x20   try:\n\
        \x20       n = db.lookup(a)\n\
        \x20   except OSError:\n\
        \x20       n = None\n\
        \x20   print(a, (n and n.country_code) or '-', (n and n.asn) or 0)\n";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script, teiten_store::geo::DEFAULT_LOCATION_DB])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Debian's python3 with python3-location (package location)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for ip in &ips {
            writeln!(stdin, "{ip}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the oracle failed");
    let out = String::from_utf8(out.stdout).unwrap();
    let want: std::collections::HashMap<IpAddr, (Option<String>, Option<u32>)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let cc = (f[1] != "-").then(|| f[1].to_owned());
            let asn: u32 = f[2].parse().unwrap();
            (f[0].parse().unwrap(), (cc, (asn != 0).then_some(asn)))
        })
        .collect();
    assert_eq!(want.len(), ips.len(), "every address answered:\n{out}");
    let (mut found, mut with_asn, mut v6_found) = (0, 0, 0);
    for ip in &ips {
        let o = db.origin(*ip);
        let got = (
            o.country.map(|c| String::from_utf8_lossy(&c).into_owned()),
            o.asn,
        );
        assert_eq!(&got, &want[ip], "{ip}");
        found += usize::from(got.0.is_some());
        with_asn += usize::from(got.1.is_some());
        v6_found += usize::from(ip.is_ipv6() && got.0.is_some());
    }
    // The sample reaches every case: placed, with AS, IPv6, and not found.
    assert!(
        found > 150 && with_asn > 150 && v6_found > 20 && found < ips.len(),
        "{found} {with_asn} {v6_found}"
    );
    // AS names come from the same database.
    assert_eq!(db.as_name(15169), Some("GOOGLE"));
}
