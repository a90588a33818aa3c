//! The public graphs against a real ClickHouse 18.16 with generated data: every number the API
//! answers is checked against a direct count over the raw events; filters, the rollup choice,
//! trends, 400s, the cache, and that nothing public shows a sensor address.

mod common;

use common::{count, get, start, DB};
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

    // Destination ports, last day, totals: each port's sum equals the raw count.
    let a = get(app, "/api/v1/ports.json?mode=total&top=5", None).await;
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
    let avg = get(app, "/api/v1/ports.json?top=5", None).await.json();
    assert_eq!(avg["mode"], "avg");
    let t23 = sum(series(&g, "23"));
    assert!((sum(series(&avg, "23")) - t23 / 4.0).abs() < 1e-6);
    assert!(avg["unit"].as_str().unwrap().contains("per sensor"));

    // Protocol filter.
    let udp = get(app, "/api/v1/ports.json?mode=total&proto=udp&top=3", None)
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
    let tcp = get(app, "/api/v1/ports.json?mode=total&proto=tcp&top=1", None)
        .await
        .json();
    assert_eq!(tcp["series"][0]["name"], "8728", "the surge is TCP");
    let icmp = get(app, "/api/v1/ports.json?mode=total&proto=icmp&top=3", None)
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
        None,
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
    let grp = get(app, "/api/v1/ports.json?mode=total&group=north&top=1", None)
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
    let month = get(app, "/api/v1/ports.json?period=1m&mode=total&top=2", None)
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
    let year = get(app, "/api/v1/ports.json?period=1y&top=2", None)
        .await
        .json();
    assert_eq!(year["step"], 86_400);

    // Regions: top N plus others add up to every packet.
    let r = get(app, "/api/v1/regions.json?mode=total&top=3", None)
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
    let pp = get(app, "/api/v1/port.json?port=23&mode=total&top=3", None)
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
        None,
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
        None,
    )
    .await
    .json();
    near(
        value(&ps["sources"], "all regions"),
        exact_day(" AND sensor_id = 'osaka-1'"),
        "osaka-1",
    );
    // The CSV has the hourly rows; the daily sources fill the midnight rows only.
    let mcsv = get(app, "/api/v1/port.csv?port=23&period=1m&top=2", None)
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
    let tr = get(app, "/api/v1/trends.json", None).await.json();
    let rising = tr["rising"].as_array().unwrap();
    assert_eq!(rising[0]["port"], 8728, "{tr}");
    assert_eq!(rising[0]["proto"], "tcp");
    assert!(
        rising.iter().all(|r| r["port"] != 23),
        "steady ports do not rise: {tr}"
    );
    let front = get(app, "/", None).await;
    assert_eq!(front.status, 200);
    assert!(front.text().contains("id=\"trends\"") && front.text().contains(">8728/tcp<"));

    // CSV: one row per bucket plus the header.
    let csv = get(app, "/api/v1/ports.csv?top=5&mode=total", None).await;
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text();
    assert_eq!(text.lines().count(), 289);
    assert!(text.starts_with("time,"));
    let pcsv = get(app, "/api/v1/port.csv?port=23&top=2", None)
        .await
        .text();
    assert!(pcsv.lines().next().unwrap().contains("sources all regions"));

    // Charts.
    let png = get(app, "/chart/ports.png?top=5", None).await;
    assert_eq!(png.status, 200);
    assert_eq!(png.headers["content-type"], "image/png");
    assert_eq!(&png.body[1..4], b"PNG");
    let svg = get(app, "/chart/regions.svg?top=3", None).await;
    assert_eq!(svg.headers["content-type"], "image/svg+xml");
    assert!(svg.text().contains("\nCN\n</text>"));
    for c in ["port-packets", "port-sources"] {
        let a = get(app, &format!("/chart/{c}.svg?port=23"), None).await;
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
        let a = get(app, uri, None).await;
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
        let a = get(app, uri, None).await;
        assert_eq!(a.status, 200, "{uri}: {}", a.text());
    }
    let empty = get(app, "/api/v1/port.json?port=23&proto=udp", None)
        .await
        .json();
    assert_eq!(empty["packets"]["series"], serde_json::json!([]));
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
