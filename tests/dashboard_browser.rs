//! The dashboard in a real browser: the `teiten-dashboard` binary over a private ClickHouse
//! 18.16 with generated data, driven by headless Chromium (Debian `chromium`) through the
//! DevTools protocol over a pipe (`--remote-debugging-pipe`, std only). Checks that pages load,
//! charts render (the loaded image's pixels), changing a filter in the form changes the chart,
//! login protects the analyst pages, and public pages contain no sensor address. Screenshots
//! are kept in `target/test-artifacts/`.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aggregator_common::Agg;
use serde_json::{json, Value};
use teiten::clickhouse::{free_port, Server};
use teiten_dashboard::testdata::{sensor_address, Synth};
use teiten_store::schema::{create_sql, Layout};

mod aggregator_common;

const DB: &str = "dash";
const PASSWORD: &str = "browser-test password";
/// The port of the marked probes.
const MARKED: u16 = 47_331;

/// Kills a child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifacts() -> PathBuf {
    let dir = teiten::root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless Chromium speaking CDP over fds 3 (commands in) and 4 (answers out).
struct Browser {
    _child: Guard,
    _profile: tempfile::TempDir,
    to: std::fs::File,
    from: BufReader<std::fs::File>,
    next_id: u64,
    session: String,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    fn start() -> Browser {
        teiten::require_tool("chromium", "chromium");
        let profile = tempfile::tempdir().unwrap();
        let (cmd_r, cmd_w) = pipe();
        let (ans_r, ans_w) = pipe();
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-pipe",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move the child's ends above 4 and close every original first, so that no
                // close or dup2 below hits fd 3 or 4 after they are set.
                let a = libc::fcntl(cmd_r, libc::F_DUPFD, 10);
                let b = libc::fcntl(ans_w, libc::F_DUPFD, 10);
                if a < 0 || b < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for fd in [cmd_r, cmd_w, ans_r, ans_w] {
                    libc::close(fd);
                }
                if libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(a);
                libc::close(b);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .expect("start chromium (apt-get install chromium)");
        // SAFETY: the fds come from pipe() above and are owned here from now on.
        let (to, from) = unsafe {
            libc::close(cmd_r);
            libc::close(ans_w);
            (
                std::fs::File::from_raw_fd(cmd_w),
                std::fs::File::from_raw_fd(ans_r),
            )
        };
        let mut b = Browser {
            _child: Guard(child),
            _profile: profile,
            to,
            from: BufReader::new(from),
            next_id: 0,
            session: String::new(),
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}), false);
        let id = target["targetId"].as_str().unwrap().to_owned();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
            false,
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.call("Page.enable", json!({}), true);
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": false}),
            true,
        );
        b
    }

    /// Sends a command (to the page session when `page`) and returns its result.
    fn call(&mut self, method: &str, params: Value, page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if page {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("chromium closed its pipe");
        loop {
            let mut buf = Vec::new();
            let n = self.from.read_until(0, &mut buf).unwrap();
            assert!(n > 0, "chromium exited while waiting for {method}");
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns the value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
            true,
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("`{expr}` threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Marks the current document, so that [`Browser::wait_new`] sees when another replaced it.
    fn mark(&mut self) {
        self.eval("window.__teiten_old = 1; true");
    }

    /// Waits until a new document (without the mark) has loaded.
    fn wait_new(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = self.eval("!window.__teiten_old && document.readyState === 'complete'");
            if done == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page did not load: {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn goto(&mut self, url: &str) {
        self.mark();
        self.call("Page.navigate", json!({"url": url}), true);
        self.wait_new();
    }

    fn url(&mut self) -> String {
        self.eval("location.href").as_str().unwrap_or("").to_owned()
    }

    fn html(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Clicks an element (a submit button) and waits for the next page.
    fn click(&mut self, selector: &str) {
        self.mark();
        self.eval(&format!(
            "document.querySelector({selector:?}).click(); true"
        ));
        self.wait_new();
    }

    fn set(&mut self, selector: &str, value: &str) {
        self.eval(&format!(
            "document.querySelector({selector:?}).value = {value:?}; true"
        ));
    }

    /// Pixels of a loaded chart image: width, height, non-white pixels, a hash.
    fn chart(&mut self, selector: &str) -> (u64, u64, u64, u64) {
        let v = self.eval(&format!(
            "(async () => {{ const i = document.querySelector({selector:?}); \
             if (!i.complete) await new Promise(r => {{ i.onload = r; i.onerror = r; }}); \
             if (!i.naturalWidth) return [0, 0, 0, 0]; \
             const c = document.createElement('canvas'); c.width = i.naturalWidth; \
             c.height = i.naturalHeight; const x = c.getContext('2d'); x.drawImage(i, 0, 0); \
             const d = x.getImageData(0, 0, c.width, c.height).data; let h = 0, n = 0; \
             for (let k = 0; k < d.length; k += 4) {{ \
               if (d[k] < 245 || d[k + 1] < 245 || d[k + 2] < 245) n++; \
               h = (Math.imul(h, 31) + d[k] + 7 * d[k + 1] + 13 * d[k + 2]) >>> 0; }} \
             return [i.naturalWidth, i.naturalHeight, n, h]; }})()"
        ));
        let a: Vec<u64> = v
            .as_array()
            .unwrap_or_else(|| panic!("chart {selector}: {v}"))
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        (a[0], a[1], a[2], a[3])
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}), true);
        let bytes = base64_decode(r["data"].as_str().unwrap());
        assert_eq!(&bytes[1..4], b"PNG");
        let path = artifacts().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}

/// Starts the aggregator the report form files through, with the dashboard's reporter token
/// in `<its dir>/dashboard.token`.
fn start_aggregator(ch: &Server) -> Agg {
    let token = "tt_browser-dashboard";
    let agg = Agg::start(
        ch,
        DB,
        &format!(
            "[[exchange.reporter]]\nname = \"dashboard\"\ntoken_sha256 = \"{}\"\noutbox = true\n",
            aggregator_common::token_hash(token)
        ),
    );
    std::fs::write(agg.dir.path().join("dashboard.token"), format!("{token}\n")).unwrap();
    agg
}

/// Starts the dashboard binary (filing reports through `aggregator`) and waits until
/// `/health` answers.
fn start_dashboard(ch: &Server, dir: &std::path::Path, aggregator: &Agg) -> (Guard, String) {
    let port = free_port().unwrap();
    let hash = teiten_dashboard::auth::hash_password(PASSWORD).unwrap();
    let config = dir.join("dashboard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{DB}\"\n\
             [groups]\nnorth = [\"sapporo-1\", \"osaka-1\"]\n[analyst.users]\nalice = \"{hash}\"\n\
             [reports]\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            ch.url(),
            aggregator.url,
            aggregator.dir.path().join("dashboard.token").display(),
        ),
    )
    .unwrap();
    let bin = teiten::bin("teiten-dashboard");
    teiten::run_ok(
        Command::new(&bin)
            .args(["serve", "--check-config", "--config"])
            .arg(&config),
    );
    let log = std::fs::File::create(dir.join("dashboard.log")).unwrap();
    let child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = Guard(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "dashboard did not start: {}",
            std::fs::read_to_string(dir.join("dashboard.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, url)
}

#[test]
fn dashboard_in_headless_chromium() {
    let ch = Server::start().expect("private clickhouse-server");
    ch.query_all(create_sql(DB, &Layout::Single)).unwrap();
    let now = teiten_dashboard::now();
    let synth = Synth::month(DB, now, 300_000, 11);
    ch.query_all(synth.load_sql()).unwrap();
    // The surge ends at the start of today (UTC): the public pages show the days that are
    // over, analysts the last 24 hours.
    let today = now / 86_400 * 86_400;
    let surge = Synth {
        to: today,
        ..synth.clone()
    };
    ch.query(&surge.surge_sql(8728, 30_000, 3_000, 20)).unwrap();
    // Marked probes (the probe response attack): 7 SYNs to one sensor on a port nothing else
    // uses, yesterday and in the last minutes.
    for t in [today - 5 * 3600, now - 120] {
        ch.query(&format!(
            "INSERT INTO {DB}.scan_events (sensor_id, epoch, batch_seq, idx, ts, usec, proto, src, \
             dst, sport, dport, tcp_flags, ttl, ip_id, ip_len, tcp_seq, window, class, tags, country) \
             SELECT 'tokyo-1', 777 + {t}, 1, toUInt32(number), toDateTime({t}), 0, 6, \
             toFixedString(IPv6StringToNum('::ffff:192.0.2.9'), 16), \
             toFixedString(IPv6StringToNum('::ffff:198.18.0.77'), 16), 40000, {MARKED}, 2, 50, 0, 40, \
             0, 1024, 'scan', 0, toFixedString('AU', 2) FROM numbers(7)"
        ))
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let aggregator = start_aggregator(&ch);
    let (_dash, url) = start_dashboard(&ch, dir.path(), &aggregator);

    let mut b = Browser::start();
    let no_sensor_address = |page: &str, html: &str| {
        for i in 0..synth.sensors.len() {
            let prefix = sensor_address(i, 0);
            let prefix = prefix.trim_end_matches('0');
            assert!(
                !html.contains(prefix),
                "{page} shows a sensor address ({prefix}*)"
            );
        }
    };

    // Front page: trends, the port chart drawn, its table, no sensor address.
    b.goto(&format!("{url}/"));
    let html = b.html();
    assert!(
        html.contains("Rising ports") && html.contains(">8728/tcp<"),
        "{html}"
    );
    assert!(html.contains("class=\"summary\""));
    no_sensor_address("/", &html);
    let (w, h, ink, tcp_hash) = b.chart("#chart-ports");
    assert_eq!((w, h), (1000, 480));
    assert!(
        ink > 10_000,
        "the chart has lines and text ({ink} non-white pixels)"
    );
    b.screenshot("dashboard-front.png");

    // Change the protocol and N in the form: the chart changes.
    b.set("#proto", "udp");
    b.set("#top", "3");
    b.click("#apply");
    let u = b.url();
    assert!(u.contains("proto=udp") && u.contains("top=3"), "{u}");
    let (w2, _, ink2, udp_hash) = b.chart("#chart-ports");
    assert_eq!(w2, 1000);
    assert!(ink2 > 5_000);
    assert_ne!(tcp_hash, udp_hash, "a filter change redraws the chart");
    let html = b.html();
    assert!(html.contains("protocol udp"));
    b.screenshot("dashboard-front-udp-top3.png");

    // Periods: a week and a custom range render too.
    b.set("#period", "1w");
    b.click("#apply");
    let (_, _, ink_week, week_hash) = b.chart("#chart-ports");
    assert!(ink_week > 5_000);
    assert_ne!(week_hash, udp_hash);
    b.screenshot("dashboard-front-week.png");

    // Regions and per port.
    b.goto(&format!("{url}/regions?period=1m&top=5"));
    let (w, _, ink, _) = b.chart("#chart-regions");
    assert!(w == 1000 && ink > 10_000);
    no_sensor_address("/regions", &b.html());
    b.screenshot("dashboard-regions-month.png");
    b.goto(&format!("{url}/port?port=23&top=4"));
    for sel in ["#chart-port-packets", "#chart-port-sources"] {
        let (w, _, ink, _) = b.chart(sel);
        assert!(w == 1000 && ink > 10_000, "{sel}");
    }
    no_sensor_address("/port", &b.html());
    b.screenshot("dashboard-port-23.png");

    // The port of the marked probes is not published; the page says so, as for any port
    // below the threshold.
    b.goto(&format!("{url}/port?port={MARKED}"));
    let html = b.html();
    assert!(
        html.contains("is not published for this period") && html.contains("id=\"public\""),
        "{html}"
    );
    assert!(
        !html.contains("id=\"sensor\""),
        "no sensor filter in public"
    );
    let (w, _, ink, _) = b.chart("#chart-port-packets");
    assert!(w == 1000 && ink > 1_000, "the chart says why it is empty");
    b.screenshot("dashboard-port-unpublished.png");

    // A bad parameter gets a clear message.
    b.goto(&format!("{url}/?top=5000"));
    let body = b.eval("document.body.innerText");
    assert!(
        body.as_str()
            .unwrap()
            .contains("top: \"5000\" is not a number from 1 to 20"),
        "{body}"
    );

    // Analyst pages need a login.
    b.goto(&format!("{url}/analyst"));
    assert!(b.url().ends_with("/login"), "{}", b.url());
    b.set("#user", "alice");
    b.set("#password", "wrong");
    b.click("#submit");
    assert!(b.html().contains("Wrong user name or password"));
    b.set("#user", "alice");
    b.set("#password", PASSWORD);
    b.click("#submit");
    assert!(b.url().ends_with("/analyst"), "{}", b.url());
    let html = b.html();
    assert!(html.contains("id=\"health\"") && html.contains(">naha-1<"));
    assert_eq!(
        b.eval("document.cookie.includes('teiten_session')"),
        json!(false),
        "the session cookie is HttpOnly"
    );
    b.screenshot("dashboard-analyst-sensors.png");
    // The analyst sees the marked probes at once, per sensor, in 5-minute buckets.
    b.goto(&format!(
        "{url}/port?port={MARKED}&sensor=tokyo-1&mode=total"
    ));
    let html = b.html();
    assert!(
        html.contains("id=\"analyst-view\"") && html.contains("300-second buckets"),
        "{html}"
    );
    assert!(!html.contains("is not published"), "{html}");
    let (_, _, ink, _) = b.chart("#chart-port-packets");
    assert!(ink > 10_000);
    b.screenshot("dashboard-port-analyst.png");
    b.goto(&format!("{url}/analyst/events?port=8728&rows=20"));
    let html = b.html();
    assert!(
        html.contains(">8728<") && html.contains("198.18."),
        "analysts see sensors"
    );
    b.screenshot("dashboard-analyst-events.png");
    // The IODEF exchange and the address page, over rows as the aggregator writes them.
    ch.query(&format!(
        "INSERT INTO {DB}.exchange_log VALUES \
         ('kr-cert', toYYYYMMDD(today() - 1), 1, 'teiten-kr-cert.xml', 'ab', 1234, 56, 1, 800000, \
          now(), 'failed', 3, 'https://iodef.kr.example/upload answered 503: busy', \
          toUInt64(toUInt32(now())) * 1000000), \
         ('au-cert', toYYYYMMDD(today() - 1), 2, 'teiten-au-cert.xml', 'cd', 321, 12, 0, 200000, \
          now(), 'delivered', 1, '', toUInt64(toUInt32(now()) - 3600) * 1000000)"
    ))
    .unwrap();
    ch.query(&format!(
        "INSERT INTO {DB}.internal_reports VALUES \
         ('r1', now(), now() - 600, 'ids-1', 'ids', '192.0.2.10', 'intrusion', 'web shell', \
          ['1.0.0.1'], ['AU'], [22], 6, [], [], 'amber', 'red', 'intrusion-is-red'), \
         ('r2', now(), now() - 300, 'av-1', 'antivirus', '192.0.2.20', 'malware', 'trojan', \
          ['1.0.16.10'], ['JP'], [], 6, [], [], 'green', 'yellow', 'malware-or-dos-is-yellow')"
    ))
    .unwrap();
    b.click("header a[href='/analyst/exchange']");
    assert!(b.url().ends_with("/analyst/exchange"), "{}", b.url());
    let html = b.html();
    assert!(
        html.contains("<b>failed</b>") && html.contains("answered 503"),
        "{html}"
    );
    assert!(html.contains("triage-red") && html.contains("triage-yellow"));
    b.screenshot("dashboard-analyst-exchange.png");
    b.click("a[href='/analyst/address?addr=1.0.0.1']");
    let html = b.html();
    assert!(
        html.contains("id=\"report-hits\"") && html.contains(">r1<"),
        "{html}"
    );
    b.screenshot("dashboard-analyst-address.png");
    // A source the sensors saw (the synthetic month's busiest, 1.0.0.0): its AS and country
    // as stored.
    b.goto(&format!("{url}/analyst/address?addr=1.0.0.0"));
    let html = b.html();
    assert!(html.contains("<p id=\"origin\">From AS64496 in "), "{html}");
    b.screenshot("dashboard-analyst-address-seen.png");
    // The source networks, from the menu: the chart and the table with names from as_names.
    ch.query(&format!(
        "INSERT INTO {DB}.as_names VALUES (64496, 'EXAMPLE-NET-A', 1), (64497, 'EXAMPLE-NET-B', 1)"
    ))
    .unwrap();
    b.click("header a[href='/networks']");
    assert!(b.url().ends_with("/networks"), "{}", b.url());
    let (w, _, ink, _) = b.chart("#chart-networks");
    assert!(
        w == 1000 && ink > 10_000,
        "the network chart is drawn ({ink})"
    );
    let html = b.html();
    assert!(
        html.contains("id=\"networks-table\"") && html.contains(">EXAMPLE-NET-A<"),
        "{html}"
    );
    b.screenshot("dashboard-analyst-networks.png");
    // File an internal report with the form: filed through the aggregator's API (as reporter
    // `dashboard`), triaged by its rules.
    b.goto(&format!("{url}/analyst/exchange"));
    b.eval(
        "(() => { const f = document.querySelector('#report-form'); \
         f.detected.value = '2026-11-30T08:15'; f.host.value = '192.0.2.44'; \
         f.category.value = 'intrusion'; f.addresses.value = '203.0.113.7'; \
         f.ports.value = '22'; f.protocol.value = 'tcp'; \
         f.description.value = 'ssh brute force seen by staff'; return true; })()",
    );
    b.screenshot("dashboard-analyst-report-form.png");
    b.click("#report-form button");
    let html = b.html();
    assert!(
        html.contains("id=\"filed\"") && html.contains("triage-red"),
        "{html}"
    );
    b.screenshot("dashboard-analyst-report-filed.png");
    let stored = ch
        .query(&format!(
            "SELECT count() FROM {DB}.internal_reports WHERE reporter = 'dashboard' \
             AND host = '192.0.2.44' AND colour = 'red'"
        ))
        .unwrap();
    assert_eq!(stored.trim(), "1", "stored by the aggregator");
    // Log out: the analyst pages are closed again.
    b.click("header button");
    assert!(b.url().ends_with('/'), "{}", b.url());
    b.goto(&format!("{url}/analyst/events"));
    assert!(b.url().ends_with("/login"));
}
