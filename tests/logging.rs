//! One log convention for the three binaries: `--log-format json` writes JSON lines on standard
//! error, `TEITEN_LOG` filters them (default `info`), the deprecated flags still work and warn,
//! and a bad config value is reported under its own key. Each binary runs a quick job (a
//! config check, or reading a small capture).

use std::path::Path;
use std::process::{Command, Output};

use teiten::bin;
use teiten::pcapgen::{frame, scan_mix, write_pcap};

/// Runs `program args` with `TEITEN_LOG` set to `filter` (unset when `None`; `RUST_LOG` set to
/// `trace` to prove it is not read).
fn run(program: &str, args: &[&str], filter: Option<&str>) -> Output {
    let mut cmd = Command::new(bin(program));
    cmd.args(args)
        .env("RUST_LOG", "trace")
        .env_remove("TEITEN_LOG");
    if let Some(f) = filter {
        cmd.env("TEITEN_LOG", f);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every line of standard error as JSON; panics on a line that is not.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn levels(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["level"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn has_message(lines: &[serde_json::Value], part: &str) -> bool {
    lines.iter().any(|l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(part))
    })
}

/// Checks the convention on `program args` (a quick job that logs `info_message` at INFO).
fn convention(program: &str, args: &[&str], info_message: &str) {
    let json: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--log-format", "json"])
        .collect();
    // Default filter: info, as JSON lines; RUST_LOG=trace is ignored (no DEBUG/TRACE lines).
    let out = run(program, &json, None);
    let lines = json_lines(&out);
    assert!(has_message(&lines, info_message), "{program}: {lines:?}");
    assert!(
        levels(&lines)
            .iter()
            .all(|l| l == "INFO" || l == "WARN" || l == "ERROR"),
        "{program}: RUST_LOG must not be read: {lines:?}"
    );
    // TEITEN_LOG=warn: the info line is gone.
    let out = run(program, &json, Some("warn"));
    let lines = json_lines(&out);
    assert!(!has_message(&lines, info_message), "{program}: {lines:?}");
    assert!(
        levels(&lines).iter().all(|l| l == "WARN" || l == "ERROR"),
        "{program}: {lines:?}"
    );
    // A finer filter by target works too.
    let target = program.replace('-', "_");
    let out = run(program, &json, Some(&format!("warn,{target}=info")));
    assert!(has_message(&json_lines(&out), info_message), "{program}");
    // Text is the default: the same line, not JSON.
    let out = run(program, args, None);
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains(info_message))
        .unwrap_or_else(|| panic!("{program}: no `{info_message}` in {text:?}"));
    assert!(line.contains("INFO") && !line.starts_with('{'), "{line:?}");
    assert!(
        !line.contains('\u{1b}'),
        "no colours off a terminal: {line:?}"
    );
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

#[test]
fn aggregator_logs_by_the_convention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir.path().join("aggregator.toml"), "");
    convention(
        "teiten-aggregator",
        &["--config", &cfg, "--check-config"],
        "config is valid",
    );
    // The flag is global: after a subcommand too.
    let out = run(
        "teiten-aggregator",
        &[
            "--config",
            &cfg,
            "--check-config",
            "serve",
            "--log-format",
            "json",
        ],
        None,
    );
    assert!(has_message(&json_lines(&out), "config is valid"));
    // Deprecated --log-json: JSON, with a warning that passes a warn filter.
    let out = run(
        "teiten-aggregator",
        &["--config", &cfg, "--check-config", "--log-json"],
        Some("warn"),
    );
    let lines = json_lines(&out);
    assert_eq!(levels(&lines), ["WARN"], "{lines:?}");
    assert!(has_message(&lines, "--log-format json"), "{lines:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{cfg}: ok\n"));
}

#[test]
fn aggregator_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        (
            "[ingest]\nretry_after_secs = 0\n",
            "ingest.retry_after_secs",
        ),
        (
            "[ingest]\nack_timeout_secs = 0\n",
            "ingest.ack_timeout_secs",
        ),
        ("[insert]\ntimeout_secs = 0\n", "insert.timeout_secs"),
        ("[retention]\nrollup_days = 0\n", "retention.rollup_days"),
        (
            "[exchange]\ndelivery_timeout_secs = 0\n",
            "exchange.delivery_timeout_secs",
        ),
    ] {
        let cfg = write(&dir.path().join("bad.toml"), text);
        let out = Command::new(bin("teiten-aggregator"))
            .args(["--config", &cfg, "--check-config", "--log-format", "json"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text:?} passed the check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("config field `{key}` is invalid")) && err.contains(&cfg),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn dashboard_logs_by_the_convention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir.path().join("dashboard.toml"), "");
    convention(
        "teiten-dashboard",
        &["serve", "--config", &cfg, "--check-config"],
        "config is valid",
    );
    // Before the subcommand too.
    let out = run(
        "teiten-dashboard",
        &[
            "--log-format",
            "json",
            "serve",
            "--config",
            &cfg,
            "--check-config",
        ],
        None,
    );
    assert!(has_message(&json_lines(&out), "config is valid"));
    let out = run(
        "teiten-dashboard",
        &["serve", "--config", &cfg, "--check-config", "--json-log"],
        Some("warn"),
    );
    let lines = json_lines(&out);
    assert_eq!(levels(&lines), ["WARN"], "{lines:?}");
    assert!(has_message(&lines, "--log-format json"), "{lines:?}");
    // A bad key is named.
    let bad = write(&dir.path().join("bad.toml"), "[public]\nmin_sensors = 0\n");
    let out = Command::new(bin("teiten-dashboard"))
        .args(["serve", "--config", &bad, "--check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public.min_sensors: at least 1"), "{err}");
}

#[test]
fn sensor_logs_by_the_convention() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("small.pcap");
    write_pcap(
        &pcap,
        (0..2000u64).map(|i| (1_700_000_000_000_000 + i as i64, frame(&scan_mix(i)))),
    )
    .unwrap();
    let pcap = pcap.display().to_string();
    convention("teiten-sensor", &["--read", &pcap, "--count"], "Done");
    // The count on standard output is the same with any log set-up (and no progress bar
    // off a terminal).
    let a = run("teiten-sensor", &["--read", &pcap, "--count"], Some("warn"));
    let b = run(
        "teiten-sensor",
        &["--read", &pcap, "--count", "--log-format", "json"],
        None,
    );
    assert_eq!(a.stdout, b.stdout);
    let summary: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(summary["packets"], 2000, "{summary}");
    assert!(
        a.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    // A bad key is named.
    let bad = write(
        &dir.path().join("sensor.toml"),
        "sensor_id = \"s\"\nmonitored_prefixes = [\"198.18.1.0/24\"]\n[capture]\nsnaplen = 10\n",
    );
    let out = Command::new(bin("teiten-sensor"))
        .args(["--config", &bad, "--check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("capture.snaplen: 10 is not between 64 and 65535"),
        "{err}"
    );
}
