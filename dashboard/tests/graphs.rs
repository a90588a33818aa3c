//! The public graphs against a real ClickHouse 18.16 with generated data: every number the API
//! answers is checked against a direct count over the raw events; filters, the rollup choice,
//! trends, 400s, the cache, and that nothing public shows a sensor address.

mod common;

use common::{count, get, start, start_with, today, DAY, DB};
use serde_json::Value;

/// Sum of a series' values.
fn sum(series: &Value) -> f64 {
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum()
}

/// Sum of all series of a graph.
fn all_series(g: &Value) -> f64 {
    g["series"].as_array().unwrap().iter().map(sum).sum()
}

fn series<'a>(g: &'a Value, name: &str) -> &'a Value {
    g["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no series {name} in {g}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_match_the_raw_events() {
    let env = start(400_000);
    let app = &env.app;
    // Everything at once, per sensor, up to now: the analyst's view (the public one is
    // `public_views_follow_the_rules` below).
    let cookie = common::analyst_cookie(&env);
    let an = Some(cookie.as_str());

    // Destination ports, last day, totals: each port's sum equals the raw count.
    let a = get(app, "/api/v1/ports.json?mode=total&top=5", an).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let g = a.json();
    assert_eq!(g["step"], 300, "one day is drawn from the 5-minute rollup");
    let (from, to) = (g["from"].as_i64().unwrap(), g["to"].as_i64().unwrap());
    assert_eq!(to - from, 86_400);
    assert_eq!(g["times"].as_array().unwrap().len(), 288);
    let names: Vec<&str> = g["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5);
    assert!(
        names.contains(&"23") && names.contains(&"8728"),
        "{names:?}"
    );
    for s in g["series"].as_array().unwrap() {
        let port = s["name"].as_str().unwrap();
        let raw = count(
            &env.ch,
            &format!(
                "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
                 AND ts < toDateTime({to}) AND dport = {port}"
            ),
        );
        assert_eq!(sum(s), raw, "port {port}");
        assert_eq!(s["total"].as_f64().unwrap(), raw, "port {port}");
    }

    // Per sensor: every bucket divided by the 4 sensors that saw traffic.
    let avg = get(app, "/api/v1/ports.json?top=5", an).await.json();
    assert_eq!(avg["mode"], "avg");
    let t23 = sum(series(&g, "23"));
    assert!((sum(series(&avg, "23")) - t23 / 4.0).abs() < 1e-6);
    assert!(avg["unit"].as_str().unwrap().contains("per sensor"));

    // Protocol filter.
    let udp = get(app, "/api/v1/ports.json?mode=total&proto=udp&top=3", an)
        .await
        .json();
    let top_udp = &udp["series"][0];
    let port = top_udp["name"].as_str().unwrap();
    let raw = count(
        &env.ch,
        &format!(
            "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
             AND ts < toDateTime({to}) AND dport = {port} AND proto = 17"
        ),
    );
    assert_eq!(sum(top_udp), raw);
    assert_eq!(port, "53", "DNS leads UDP");
    let tcp = get(app, "/api/v1/ports.json?mode=total&proto=tcp&top=1", an)
        .await
        .json();
    assert_eq!(tcp["series"][0]["name"], "8728", "the surge is TCP");
    let icmp = get(app, "/api/v1/ports.json?mode=total&proto=icmp&top=3", an)
        .await
        .json();
    let icmp_series = icmp["series"].as_array().unwrap();
    assert_eq!(icmp_series.len(), 1, "ICMP has no ports: {icmp}");
    let raw_icmp = count(
        &env.ch,
        &format!(
            "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
             AND ts < toDateTime({to}) AND proto IN (1, 58)"
        ),
    );
    assert_eq!(sum(&icmp_series[0]), raw_icmp);

    // Sensor and group filters.
    let one = get(
        app,
        "/api/v1/ports.json?mode=total&sensor=osaka-1&top=1",
        an,
    )
    .await
    .json();
    let p = one["series"][0]["name"].as_str().unwrap().to_owned();
    let raw = count(
        &env.ch,
        &format!(
            "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
             AND ts < toDateTime({to}) AND dport = {p} AND sensor_id = 'osaka-1'"
        ),
    );
    assert_eq!(sum(&one["series"][0]), raw);
    assert_eq!(one["sensors"], "sensor osaka-1");
    let grp = get(app, "/api/v1/ports.json?mode=total&group=north&top=1", an)
        .await
        .json();
    let raw = count(
        &env.ch,
        &format!(
            "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
             AND ts < toDateTime({to}) AND dport = {} AND sensor_id IN ('osaka-1', 'sapporo-1')",
            grp["series"][0]["name"].as_str().unwrap()
        ),
    );
    assert_eq!(sum(&grp["series"][0]), raw);

    // A month reads the hourly rollup; a custom span of 3 days too.
    let month = get(app, "/api/v1/ports.json?period=1m&mode=total&top=2", an)
        .await
        .json();
    assert_eq!(month["step"], 3600);
    assert_eq!(month["times"].as_array().unwrap().len(), 720);
    let (mf, mt) = (
        month["from"].as_i64().unwrap(),
        month["to"].as_i64().unwrap(),
    );
    let raw = count(
        &env.ch,
        &format!(
            "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({mf}) \
             AND ts < toDateTime({mt}) AND dport = {}",
            month["series"][0]["name"].as_str().unwrap()
        ),
    );
    assert_eq!(sum(&month["series"][0]), raw);
    let year = get(app, "/api/v1/ports.json?period=1y&top=2", an)
        .await
        .json();
    assert_eq!(year["step"], 86_400);

    // Regions: top N plus others add up to every packet.
    let r = get(app, "/api/v1/regions.json?mode=total&top=3", an)
        .await
        .json();
    let all = all_series(&r);
    let raw = count(
        &env.ch,
        &format!(
            "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
             AND ts < toDateTime({to})"
        ),
    );
    assert_eq!(all, raw);
    assert_eq!(r["series"].as_array().unwrap().len(), 4);
    assert_eq!(r["series"][3]["name"], "others");
    // The surge's sources are all in VN; of the steady traffic CN sends most.
    assert_eq!(r["series"][0]["name"], "VN");
    assert_eq!(r["series"][1]["name"], "CN");

    // Per port: packets by region add up; unique sources over all regions match uniqExact
    // within the approximation of uniq.
    let pp = get(app, "/api/v1/port.json?port=23&mode=total&top=3", an)
        .await
        .json();
    let port23 = |from: i64, to: i64| {
        count(
            &env.ch,
            &format!(
                "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({from}) \
                 AND ts < toDateTime({to}) AND dport = 23"
            ),
        )
    };
    assert_eq!(all_series(&pp["packets"]), port23(from, to));
    let srcs = series(&pp["sources"], "all regions");
    let peak_bucket = srcs["values"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
        .unwrap();
    let t = pp["sources"]["times"][peak_bucket.0].as_i64().unwrap();
    let exact = count(
        &env.ch,
        &format!(
            "SELECT uniqExact(src) FROM {DB}.scan_events WHERE ts >= toDateTime({t}) \
             AND ts < toDateTime({}) AND dport = 23",
            t + 300
        ),
    );
    let got = peak_bucket.1.as_f64().unwrap();
    assert!(
        exact > 0.0 && (got - exact).abs() <= exact * 0.03 + 1.0,
        "{got} vs {exact}"
    );

    // Per port over a month: hourly packets from the packets-only rollup add up to the raw
    // count; unique sources are daily (HyperLogLog states), within 5% of uniqExact, over all
    // regions and for one country, without and with a sensor filter.
    let pm = get(
        app,
        "/api/v1/port.json?port=23&period=1m&mode=total&top=3",
        an,
    )
    .await
    .json();
    assert_eq!(pm["packets"]["step"], 3600);
    let (mf, mt) = (
        pm["packets"]["from"].as_i64().unwrap(),
        pm["packets"]["to"].as_i64().unwrap(),
    );
    assert_eq!(all_series(&pm["packets"]), port23(mf, mt));
    assert_eq!(pm["sources"]["step"], 86_400);
    assert!(pm["sources"]["unit"]
        .as_str()
        .unwrap()
        .contains("unique sources per day"));
    let day = pm["sources"]["times"][10].as_i64().unwrap();
    assert_eq!(day % 86_400, 0);
    let exact_day = |extra: &str| {
        count(
            &env.ch,
            &format!(
                "SELECT uniqExact(src) FROM {DB}.scan_events WHERE ts >= toDateTime({day}) \
                 AND ts < toDateTime({}) AND dport = 23{extra}",
                day + 86_400
            ),
        )
    };
    let near = |got: f64, exact: f64, what: &str| {
        assert!(
            exact > 100.0 && (got - exact).abs() <= exact * 0.05,
            "{what}: {got} vs {exact}"
        );
    };
    let value = |g: &Value, name: &str| series(g, name)["values"][10].as_f64().unwrap();
    near(
        value(&pm["sources"], "all regions"),
        exact_day(""),
        "all regions",
    );
    near(
        value(&pm["sources"], "CN"),
        exact_day(" AND country = 'CN'"),
        "CN",
    );
    let ps = get(
        app,
        "/api/v1/port.json?port=23&period=1m&sensor=osaka-1",
        an,
    )
    .await
    .json();
    near(
        value(&ps["sources"], "all regions"),
        exact_day(" AND sensor_id = 'osaka-1'"),
        "osaka-1",
    );
    // The CSV has the hourly rows; the daily sources fill the midnight rows only.
    let mcsv = get(app, "/api/v1/port.csv?port=23&period=1m&top=2", an)
        .await
        .text();
    let midnight = mcsv
        .lines()
        .find(|l| l.contains("T00:00:00Z"))
        .unwrap()
        .to_owned();
    let one_am = mcsv.lines().find(|l| l.contains("T01:00:00Z")).unwrap();
    assert!(!midnight.ends_with(','), "{midnight}");
    assert!(one_am.ends_with(','), "{one_am}");

    // Trends: the surge on 8728 stands out against its 30-day baseline.
    let tr = get(app, "/api/v1/trends.json", an).await.json();
    let rising = tr["rising"].as_array().unwrap();
    assert_eq!(rising[0]["port"], 8728, "{tr}");
    assert_eq!(rising[0]["proto"], "tcp");
    assert!(
        rising.iter().all(|r| r["port"] != 23),
        "steady ports do not rise: {tr}"
    );
    let front = get(app, "/", an).await;
    assert_eq!(front.status, 200);
    assert!(front.text().contains("id=\"trends\"") && front.text().contains(">8728/tcp<"));

    // CSV: one row per bucket plus the header.
    let csv = get(app, "/api/v1/ports.csv?top=5&mode=total", an).await;
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text();
    assert_eq!(text.lines().count(), 289);
    assert!(text.starts_with("time,"));
    let pcsv = get(app, "/api/v1/port.csv?port=23&top=2", an).await.text();
    assert!(pcsv.lines().next().unwrap().contains("sources all regions"));

    // Charts.
    let png = get(app, "/chart/ports.png?top=5", an).await;
    assert_eq!(png.status, 200);
    assert_eq!(png.headers["content-type"], "image/png");
    assert_eq!(&png.body[1..4], b"PNG");
    let svg = get(app, "/chart/regions.svg?top=3", an).await;
    assert_eq!(svg.headers["content-type"], "image/svg+xml");
    assert!(svg.text().contains("\nCN\n</text>"));
    for c in ["port-packets", "port-sources"] {
        let a = get(app, &format!("/chart/{c}.svg?port=23"), an).await;
        assert_eq!(a.status, 200, "{c}: {}", a.text());
    }

    // Nothing public shows a sensor address (198.18.x.y) or a raw source address.
    let sample_src = env
        .ch
        .query(&format!(
            "SELECT replaceRegexpOne(IPv6NumToString(src), '^::ffff:', '') FROM {DB}.scan_events \
             WHERE dport = 23 LIMIT 1"
        ))
        .unwrap();
    let sample_src = sample_src.trim();
    for uri in [
        "/",
        "/regions",
        "/port?port=23",
        "/api/v1/ports.json",
        "/api/v1/regions.csv",
        "/api/v1/port.json?port=23",
        "/api/v1/trends.json",
        "/chart/ports.svg",
        "/chart/port-sources.svg?port=23",
        "/api",
    ] {
        let a = get(app, uri, None).await;
        assert_eq!(a.status, 200, "{uri}");
        let text = a.text();
        assert!(!text.contains("198.18."), "{uri} shows a sensor address");
        assert!(
            !text.contains(sample_src),
            "{uri} shows source {sample_src}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_and_the_cache_outlives_an_outage() {
    let mut env = start(20_000);
    let app = &env.app;
    let cookie = common::analyst_cookie(&env);
    for (uri, message) in [
        (
            "/api/v1/ports.json?top=1000000",
            "top: \"1000000\" is not a number from 1 to 20",
        ),
        (
            "/api/v1/ports.json?from=2025-02-30&to=2025-03-01",
            "from: \"2025-02-30\" is not a date",
        ),
        (
            "/api/v1/ports.json?from=2025-03-02&to=2025-03-01",
            "must be before",
        ),
        (
            "/api/v1/ports.json?sensor=mars-1",
            "sensor: unknown sensor \"mars-1\"",
        ),
        (
            "/api/v1/ports.json?sensor=x%27)%20OR%201%3D1%20--",
            "unknown sensor",
        ),
        ("/api/v1/ports.json?group=south", "unknown sensor group"),
        (
            "/api/v1/port.json?port=70000",
            "port: \"70000\" is not a port number",
        ),
        ("/chart/port-packets.png?port=http", "not a port number"),
        ("/api/v1/port.json", "port: missing"),
        ("/chart/ports.png?proto=sctp", "proto"),
        ("/regions?period=2y", "period"),
        ("/?x=1", "unknown field `x`"),
    ] {
        let a = get(app, uri, Some(&cookie)).await;
        assert_eq!(a.status, 400, "{uri}: {}", a.text());
        assert!(a.text().contains(message), "{uri}: {}", a.text());
    }
    // Selections without packets draw an empty chart (18.16 refuses `has([], x)`).
    for uri in [
        "/chart/port-packets.png?port=23&proto=udp",
        "/chart/port-sources.svg?port=23&proto=udp",
        "/chart/regions.png?proto=icmp&sensor=tokyo-1&period=custom&from=2020-01-01&to=2020-01-02",
        "/chart/ports.svg?period=custom&from=2020-01-01&to=2020-01-02",
    ] {
        let a = get(app, uri, Some(&cookie)).await;
        assert_eq!(a.status, 200, "{uri}: {}", a.text());
    }
    let empty = get(app, "/api/v1/port.json?port=23&proto=udp", Some(&cookie))
        .await
        .json();
    assert_eq!(empty["packets"]["series"], serde_json::json!([]));
    assert_eq!(empty["published"], true, "analysts see every port");
    // The injection attempt changed nothing.
    assert_eq!(
        count(&env.ch, &format!("SELECT count() FROM {DB}.sensors")),
        4.0
    );

    // Cached answers survive a ClickHouse outage; new queries fail cleanly.
    let first = get(app, "/chart/ports.svg?period=1w", None).await;
    assert_eq!(first.status, 200);
    let trends = get(app, "/api/v1/trends.json", None).await;
    assert_eq!(trends.status, 200);
    env.ch.kill();
    let again = get(app, "/chart/ports.svg?period=1w", None).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "served from the cache");
    let trends_again = get(app, "/api/v1/trends.json", None).await;
    assert_eq!(trends_again.status, 200);
    assert_eq!(trends_again.body, trends.body, "the latest trends");
    let fresh = get(app, "/api/v1/ports.json?period=1w&proto=udp", None).await;
    assert_eq!(fresh.status, 503, "{}", fresh.text());
    assert!(!fresh.text().contains("ClickHouse") && !fresh.text().contains("127.0.0.1"));
    env.ch.restart().unwrap();
    let back = get(app, "/api/v1/ports.json?period=1w&proto=udp", None).await;
    assert_eq!(back.status, 200);
    drop(env.state);
}

/// Marked probes (the probe response attack): `n` TCP SYNs to `port` from `sources` sources
/// (from 192.0.2.1 up) at `t`, to the given sensors in turn.
fn probes_sql(port: u16, n: u64, sources: u64, sensors: &[&str], t: i64) -> String {
    let list = sensors
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "INSERT INTO {DB}.scan_events (sensor_id, epoch, batch_seq, idx, ts, usec, proto, src, \
         dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country) \
         SELECT arrayElement([{list}], 1 + number % {ns}), 424242 + {t}, {port}, toUInt32(number), \
           toDateTime({t}), 0, toUInt8(6), \
           toFixedString(IPv6StringToNum(concat('::ffff:', IPv4NumToString(toUInt32(3221225985 + number % {sources})))), 16), \
           toFixedString(IPv6StringToNum('::ffff:198.18.0.77'), 16), toUInt16(40000), \
           toUInt16({port}), toUInt16(2), toUInt8(50), toUInt32(0), toUInt32(40), toUInt32(0), \
           toUInt16(1024), 'scan', toUInt8(0), toFixedString('AU', 2) FROM numbers({n})",
        ns = sensors.len()
    )
}

/// The public pages and API against the probe response attack: marked probes to a port nothing
/// else uses change no public byte (today's, or yesterday's below the threshold); above it, the
/// port is shown for the days that are over, in hours; a port below the threshold and one never
/// seen get the same answer; analysts see the probes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_views_follow_the_rules() {
    // No cache and trends computed when asked: every answer below is read afresh.
    let env = start_with(
        100_000,
        "[cache]\nttl_secs = 0\n\n[trends]\nrefresh_secs = 0\n",
    );
    let app = &env.app;
    let cookie = common::analyst_cookie(&env);
    let midnight = today();
    // A port no generated event uses, and another one.
    let free = |p: u16| {
        count(
            &env.ch,
            &format!("SELECT count() FROM {DB}.scan_events WHERE dport = {p}"),
        ) == 0.0
    };
    let marked = (47_000..48_000).find(|p| free(*p)).unwrap();
    let never = (marked + 1..48_000).find(|p| free(*p)).unwrap();

    // The rules are stated: in JSON, headers, pages.
    let a = get(app, "/api/v1/ports.json?top=20&mode=total", None).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let g = a.json();
    assert_eq!(
        (g["to"].as_i64(), g["step"].as_i64()),
        (Some(midnight), Some(3600))
    );
    assert_eq!(g["from"].as_i64(), Some(midnight - DAY));
    assert_eq!(g["public"]["until"].as_i64(), Some(midnight));
    assert_eq!(g["public"]["delay"], "whole UTC days that are over");
    assert_eq!(g["public"]["min_sources"], 10);
    assert_eq!(a.headers["x-teiten-public-grain"], "3600");
    assert_eq!(a.headers["cache-control"], "public, max-age=60");
    assert_eq!(a.headers["vary"], "Cookie");
    assert!(g["series"].as_array().unwrap().len() >= 10, "{g}");
    let regions = get(app, "/api/v1/regions.json?mode=total", None)
        .await
        .json();
    assert!(
        !regions["series"].as_array().unwrap().is_empty(),
        "{regions}"
    );
    // Each public port cleared the threshold (exact counts over the raw events: at least the
    // HyperLogLog estimate's 10, with room for its error) and its numbers are the raw ones.
    for s in g["series"].as_array().unwrap() {
        let port = s["name"].as_str().unwrap();
        let range = format!(
            "ts >= toDateTime({}) AND ts < toDateTime({midnight}) AND dport = {port}",
            midnight - DAY
        );
        let sensors = count(
            &env.ch,
            &format!("SELECT uniqExact(sensor_id) FROM {DB}.scan_events WHERE {range}"),
        );
        let sources = count(
            &env.ch,
            &format!("SELECT uniqExact(src) FROM {DB}.scan_events WHERE {range}"),
        );
        assert!(
            sensors >= 2.0 && sources >= 9.0,
            "port {port}: {sources} sources on {sensors} sensors"
        );
        let raw = count(
            &env.ch,
            &format!("SELECT count() FROM {DB}.scan_events WHERE {range}"),
        );
        assert_eq!(s["total"].as_f64(), Some(raw), "port {port}");
    }
    let front = get(app, "/", None).await.text();
    assert!(
        front.contains("id=\"public\"") && !front.contains("id=\"sensor\""),
        "{front}"
    );
    // Sensor and group filters, finer or later data: the same 400 for any value.
    for uri in [
        "/api/v1/ports.json?sensor=tokyo-1",
        "/api/v1/ports.json?sensor=mars-1",
        "/chart/ports.png?group=north",
        "/port?port=23&sensor=naha-1",
    ] {
        let a = get(app, uri, None).await;
        assert_eq!(a.status, 400, "{uri}");
        assert!(
            a.text().contains("filters are for analysts"),
            "{uri}: {}",
            a.text()
        );
    }
    let late = format!(
        "/api/v1/ports.json?from={}&to={}",
        midnight + 600,
        midnight + 3600
    );
    let a = get(app, &late, None).await;
    assert_eq!(a.status, 400);
    assert!(
        a.text().starts_with("from (") && a.text().contains("public data ends at"),
        "{}",
        a.text()
    );
    // A custom range into today is cut at midnight, in hours.
    let cut = get(
        app,
        &format!(
            "/api/v1/ports.json?from={}&to={}",
            midnight - 7200,
            midnight + 7200
        ),
        None,
    )
    .await
    .json();
    assert_eq!(
        (cut["to"].as_i64(), cut["step"].as_i64()),
        (Some(midnight), Some(3600))
    );

    let uris: Vec<String> = [
        "/",
        "/regions",
        "/port?port={m}",
        "/?period=1w&top=20",
        "/api/v1/ports.json?top=20",
        "/api/v1/ports.json?top=20&mode=total&proto=tcp",
        "/api/v1/ports.csv?top=20",
        "/api/v1/regions.json?top=20",
        "/api/v1/regions.json?top=20&mode=total",
        "/api/v1/regions.csv?period=1w",
        "/api/v1/port.json?port={m}",
        "/api/v1/port.csv?port={m}",
        "/api/v1/port.json?port={m}&period=1w",
        "/api/v1/trends.json",
        "/chart/ports.png?top=20",
        "/chart/ports.svg?period=1m&top=20",
        "/chart/regions.svg",
        "/chart/port-packets.svg?port={m}",
        "/chart/port-sources.png?port={m}",
        "/chart/port-packets.png?port={m}&period=custom&from={f}&to={t}",
    ]
    .iter()
    .map(|u| {
        u.replace("{m}", &marked.to_string())
            .replace("{f}", &(midnight - 30 * DAY).to_string())
            .replace("{t}", &(midnight + DAY).to_string())
    })
    .collect();
    let read_all = || async {
        let mut out = Vec::new();
        for u in &uris {
            let a = get(app, u, None).await;
            assert_eq!(a.status, 200, "{u}: {}", a.text());
            out.push(a.body);
        }
        out
    };
    let before = read_all().await;

    // Phase 1: 7 marked SYNs to one sensor today, and 7 more yesterday (still below the
    // threshold: one source, one sensor).
    env.ch
        .query(&probes_sql(
            marked,
            7,
            1,
            &["tokyo-1"],
            teiten_dashboard::now() - 60,
        ))
        .unwrap();
    env.ch
        .query(&probes_sql(marked, 7, 1, &["tokyo-1"], midnight - 5 * 3600))
        .unwrap();
    let after = read_all().await;
    for (u, (b, a)) in uris.iter().zip(before.iter().zip(&after)) {
        assert!(b == a, "{u} changed after the marked probes");
    }
    // A port below the threshold and one never seen: the same answer, the port aside.
    for (path, ext) in [
        ("/api/v1/port", "json"),
        ("/api/v1/port", "csv"),
        ("/chart/port-packets", "svg"),
        ("/chart/port-sources", "svg"),
        ("/port", ""),
    ] {
        let u = |p: u16| {
            if ext.is_empty() {
                format!("{path}?port={p}")
            } else {
                format!("{path}.{ext}?port={p}")
            }
        };
        let a = get(app, &u(marked), None).await;
        let b = get(app, &u(never), None).await;
        assert_eq!(a.status, b.status, "{path}");
        assert_eq!(
            a.text().replace(&marked.to_string(), "P"),
            b.text().replace(&never.to_string(), "P"),
            "{path}.{ext}"
        );
    }
    let np = get(app, &format!("/api/v1/port.json?port={marked}"), None)
        .await
        .json();
    assert_eq!(np["published"], false);
    assert_eq!(np["packets"]["series"], serde_json::json!([]));
    let page = get(app, &format!("/port?port={marked}"), None).await.text();
    assert!(page.contains("is not published for this period"), "{page}");
    // The analyst sees both at once, per sensor, in 5-minute buckets.
    let an = get(
        app,
        &format!(
            "/api/v1/port.json?port={marked}&period=custom&from={}&to={}&mode=total&sensor=tokyo-1",
            midnight - DAY,
            teiten_dashboard::now() + 300
        ),
        Some(&cookie),
    )
    .await;
    assert_eq!(an.headers["cache-control"], "private, no-store");
    let an = an.json();
    assert_eq!(an["public"], serde_json::Value::Null);
    assert_eq!(all_series(&an["packets"]), 14.0, "{an}");
    let today_an = get(
        app,
        &format!("/api/v1/port.json?port={marked}&mode=total"),
        Some(&cookie),
    )
    .await
    .json();
    assert_eq!(today_an["packets"]["step"], 300);
    assert!(all_series(&today_an["packets"]) >= 7.0);

    // Phase 2: yesterday, 12 sources on 2 sensors: the port clears the threshold and is shown
    // for yesterday, in hours, with every one of yesterday's probes and none of today's.
    env.ch
        .query(&probes_sql(
            marked,
            24,
            12,
            &["osaka-1", "naha-1"],
            midnight - 3 * 3600,
        ))
        .unwrap();
    let p = get(
        app,
        &format!("/api/v1/port.json?port={marked}&mode=total"),
        None,
    )
    .await
    .json();
    assert_eq!(p["published"], true, "{p}");
    assert_eq!(p["packets"]["step"], 3600);
    assert_eq!(all_series(&p["packets"]), 31.0, "{p}");
    let top = get(app, "/api/v1/ports.json?top=20&mode=total", None)
        .await
        .json();
    let shown = top["series"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == marked.to_string().as_str());
    // Its rank among yesterday's ports: shown when fewer than 20 have more packets and it
    // does not share the 20th place with others (a tie at the cut may go either way).
    let ports_with = |having: &str| {
        count(&env.ch, &format!("SELECT count() FROM (SELECT dport, count() AS c FROM {DB}.scan_events WHERE ts >= toDateTime({}) AND ts < toDateTime({midnight}) GROUP BY dport HAVING c {having})", midnight - DAY))
    };
    let (above, at_least) = (ports_with("> 31"), ports_with(">= 31"));
    if at_least <= 20.0 {
        assert!(
            shown,
            "{above} ports above it, {at_least} with as many: {top}"
        );
    } else if above >= 20.0 {
        assert!(!shown, "{above} ports above it: {top}");
    }
}

/// The network graph and table (analysts only): each source AS's packets and unique sources
/// equal a direct count over the raw events of the hour-aligned period, the names come from
/// `as_names` (the latest version), the main country is the one with the most packets, and
/// the public gets a 403 (API, chart) or the login page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_match_the_raw_events() {
    let env = start(200_000);
    let app = &env.app;
    env.ch
        .query(&format!(
            "INSERT INTO {DB}.as_names (asn, name, version) VALUES \
             (64496, 'OLD-NAME', 1), (64496, 'EXAMPLE-NET', 2), (64497, 'Ex<ample> & Co', 1)"
        ))
        .unwrap();
    let cookie = common::analyst_cookie(&env);
    let an = Some(cookie.as_str());
    let a = get(app, "/api/v1/networks.json?mode=total&top=5", an).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let g = a.json();
    assert_eq!(g["step"], 3600, "read hourly whatever the period");
    let (from, to) = (g["from"].as_i64().unwrap(), g["to"].as_i64().unwrap());
    assert_eq!((from % 3600, to % 3600), (0, 0));
    let rows = g["networks"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{g}");
    let range = format!("ts >= toDateTime({from}) AND ts < toDateTime({to})");
    let raw: Vec<(u64, u64)> = env
        .ch
        .query(&format!(
            "SELECT src_asn, count() AS n FROM {DB}.scan_events WHERE {range} \
             GROUP BY src_asn ORDER BY n DESC, src_asn LIMIT 5"
        ))
        .unwrap()
        .lines()
        .map(|l| {
            let (a, n) = l.split_once('\t').unwrap();
            (a.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    for (row, (asn, packets)) in rows.iter().zip(&raw) {
        assert_eq!(row["asn"], *asn, "{g}");
        assert_eq!(row["packets"], *packets, "AS{asn}");
        let sources = count(
            &env.ch,
            &format!(
                "SELECT uniqExact(src) FROM {DB}.scan_events WHERE {range} AND src_asn = {asn} \
                 AND withheld = 0"
            ),
        );
        let got = row["sources"].as_f64().unwrap();
        assert!(
            (got - sources).abs() <= sources * 0.02,
            "AS{asn}: {got} unique sources against {sources}"
        );
        let country = env
            .ch
            .query(&format!(
                "SELECT toString(country) AS c, count() AS n FROM {DB}.scan_events \
                 WHERE {range} AND src_asn = {asn} GROUP BY c ORDER BY n DESC, c LIMIT 1"
            ))
            .unwrap();
        assert_eq!(
            row["country"].as_str().unwrap(),
            country.split('\t').next().unwrap(),
            "AS{asn}"
        );
        let name = match asn {
            64496 => "EXAMPLE-NET",
            64497 => "Ex<ample> & Co",
            _ => "",
        };
        assert_eq!(row["name"], name, "AS{asn}");
    }
    // The series: one per AS in the table's order, plus others; each sums to its packets.
    let series = g["series"].as_array().unwrap();
    for (s, row) in series.iter().zip(rows) {
        assert_eq!(sum(s), row["packets"].as_f64().unwrap(), "{}", s["name"]);
        // The surge's events have no AS (0).
        let label = match row["asn"].as_u64().unwrap() {
            0 => "unknown AS (".to_owned(),
            a => format!("AS{a} "),
        };
        assert!(
            s["name"].as_str().unwrap().starts_with(&label),
            "{}",
            s["name"]
        );
    }
    let total = count(
        &env.ch,
        &format!("SELECT count() FROM {DB}.scan_events WHERE {range}"),
    );
    assert_eq!(all_series(&g), total, "the ASes and others add up");
    assert!(
        series.iter().any(|s| s["name"]
            .as_str()
            .unwrap()
            .starts_with("AS64496 EXAMPLE-NET (")),
        "{g}"
    );

    // Filters: a protocol and a sensor.
    let udp = get(
        app,
        "/api/v1/networks.json?mode=total&top=3&proto=udp&sensor=osaka-1",
        an,
    )
    .await
    .json();
    let first = &udp["networks"][0];
    let asn = first["asn"].as_u64().unwrap();
    let (f2, t2) = (udp["from"].as_i64().unwrap(), udp["to"].as_i64().unwrap());
    let raw = count(
        &env.ch,
        &format!(
            "SELECT count() FROM {DB}.scan_events WHERE ts >= toDateTime({f2}) \
             AND ts < toDateTime({t2}) AND src_asn = {asn} AND proto = 17 AND sensor_id = 'osaka-1'"
        ),
    );
    assert_eq!(first["packets"].as_f64().unwrap(), raw, "{udp}");

    // The page, its table (names escaped) and the CSV.
    let page = get(app, "/networks?top=20", an).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("id=\"networks-table\""), "{html}");
    assert!(html.contains("Ex&lt;ample&gt; &amp; Co"), "{html}");
    assert!(html.contains("/chart/networks.png?"));
    let csv = get(app, "/api/v1/networks.csv?top=5", an).await;
    assert_eq!(csv.status, 200);
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("asn,name,country,packets,sources"));
    assert_eq!(lines.count(), 5, "{text}");
    let png = get(app, "/chart/networks.png?top=5", an).await;
    assert_eq!(png.status, 200);

    // Not for the public.
    for uri in [
        "/api/v1/networks.json",
        "/api/v1/networks.csv",
        "/chart/networks.svg",
    ] {
        assert_eq!(get(app, uri, None).await.status, 403, "{uri}");
    }
    let public_page = get(app, "/networks", None).await;
    assert_eq!(public_page.status, 303);
}
