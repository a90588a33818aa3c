//! The operations kit stays true to the binaries: every command line in the systemd units is
//! accepted by the binary it names (clap refuses unknown flags before it honours `--help`),
//! each service runs as its own user, and only the sensor gets CAP_NET_RAW. The units carry
//! the hardening of issue 14 (system call filter, namespaces, clock, hostname, kernel logs,
//! realtime, umask, memory, tasks and file descriptor limits), take their secrets through
//! `LoadCredential=`, the sensor reaches only its aggregators, and `systemd-analyze verify`
//! accepts them without a warning. The example configs pass `--check-config`.

use std::process::Command;

use teiten::{bin, root};

#[test]
fn systemd_units_use_real_flags_and_least_privilege() {
    let dir = root().join("deploy/systemd");
    for unit in ["teiten-sensor", "teiten-aggregator", "teiten-dashboard"] {
        let text = std::fs::read_to_string(dir.join(format!("{unit}.service"))).unwrap();
        assert!(text.contains("DynamicUser=yes"), "{unit}: own user");
        assert!(text.contains(&format!("User={unit}")), "{unit}: named user");
        let raw = text.contains("CAP_NET_RAW");
        assert_eq!(raw, unit == "teiten-sensor", "{unit}: CAP_NET_RAW");
        let mut commands = 0;
        for line in text.lines() {
            let Some(cmd) = line
                .strip_prefix("ExecStart=")
                .or_else(|| line.strip_prefix("ExecStartPre="))
            else {
                continue;
            };
            let mut words = cmd.split_whitespace();
            let program = words.next().unwrap();
            assert_eq!(program, format!("/usr/bin/{unit}"), "{line}");
            let out = Command::new(bin(unit))
                .args(words)
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{unit}: `{cmd}` is refused: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            commands += 1;
        }
        assert!(commands >= 2, "{unit}: ExecStartPre check and ExecStart");
    }
}

/// The value of every `key=` line of a unit.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_units_are_hardened_and_take_secrets_as_credentials() {
    let dir = root().join("deploy/systemd");
    for unit in ["teiten-sensor", "teiten-aggregator", "teiten-dashboard"] {
        let text = std::fs::read_to_string(dir.join(format!("{unit}.service"))).unwrap();
        for (key, want) in [
            ("SystemCallFilter", "@system-service"),
            ("RestrictNamespaces", "yes"),
            ("ProtectClock", "yes"),
            ("ProtectHostname", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("RestrictRealtime", "yes"),
            ("UMask", "0077"),
            ("NoNewPrivileges", "yes"),
        ] {
            assert_eq!(values(&text, key), [want], "{unit}: {key}");
        }
        for key in ["MemoryMax", "TasksMax", "LimitNOFILE"] {
            let v = values(&text, key);
            assert_eq!(v.len(), 1, "{unit}: one {key}");
            assert!(
                v[0] != "infinity" && !v[0].is_empty(),
                "{unit}: {key} bounded"
            );
        }
        let nofile: u64 = values(&text, "LimitNOFILE")[0].parse().unwrap();
        if unit != "teiten-sensor" {
            // [server] max_connections defaults to 1024, and each needs a descriptor.
            assert!(nofile >= 4 * 1024, "{unit}: LimitNOFILE {nofile}");
        }
        // Secrets come as credentials: the configs holding them (aggregator, dashboard) are
        // read from the credentials directory, never from /etc directly; the sensor's config
        // holds none (its token is the credential).
        let creds = values(&text, "LoadCredential");
        assert!(!creds.is_empty(), "{unit}: LoadCredential");
        for line in text.lines().filter(|l| l.starts_with("ExecStart")) {
            if unit != "teiten-sensor" {
                assert!(
                    !line.contains(" /etc/"),
                    "{unit}: `{line}` reads a file in /etc directly"
                );
                assert!(
                    line.contains("--config ${CREDENTIALS_DIRECTORY}/"),
                    "{unit}: `{line}`"
                );
            }
        }
        let families = values(&text, "RestrictAddressFamilies").join(" ");
        if unit == "teiten-sensor" {
            // Capture needs AF_PACKET; shipping is limited to the aggregators.
            assert!(families.contains("AF_PACKET"), "{families}");
            assert_eq!(creds, ["token:/etc/teiten-sensor/token"]);
            assert_eq!(values(&text, "IPAddressDeny"), ["any"]);
            assert!(values(&text, "IPAddressAllow").contains(&"localhost"));
        } else {
            assert!(!families.contains("AF_PACKET"), "{unit}: {families}");
        }
    }
}

/// `systemd-analyze verify` accepts the units (with the paths of the binaries built here) and
/// prints no warning; a misspelt key would be one.
#[test]
fn systemd_analyze_verifies_the_units() {
    teiten::require_tool("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for unit in ["teiten-sensor", "teiten-aggregator", "teiten-dashboard"] {
        let text =
            std::fs::read_to_string(root().join(format!("deploy/systemd/{unit}.service"))).unwrap();
        let text = text.replace(
            &format!("/usr/bin/{unit}"),
            &bin(unit).display().to_string(),
        );
        let path = dir.path().join(format!("{unit}.service"));
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let mut bad = dir.path().join("teiten-sensor.service");
    bad.set_file_name("teiten-misspelt.service");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&units[0])
            .unwrap()
            .replace("UMask=", "UMsak="),
    )
    .unwrap();
    let verify = |path: &std::path::Path| {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(path)
            .current_dir(dir.path())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let warned = verify(&bad);
    assert!(
        warned.contains("Unknown key"),
        "the check sees a bad key: {warned}"
    );
    for path in &units {
        let said = verify(path);
        assert!(said.trim().is_empty(), "{}: {said}", path.display());
    }
}

#[test]
fn example_configs_pass_check_config() {
    let r = root();
    for (binary, args) in [
        (
            "teiten-sensor",
            vec![
                "--config",
                "sensor/teiten-sensor.example.toml",
                "--check-config",
            ],
        ),
        (
            "teiten-aggregator",
            vec![
                "--config",
                "aggregator/aggregator.example.toml",
                "--check-config",
            ],
        ),
        (
            "teiten-dashboard",
            vec![
                "serve",
                "--config",
                "dashboard/dashboard.example.toml",
                "--check-config",
            ],
        ),
    ] {
        let out = Command::new(bin(binary))
            .current_dir(&r)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{binary} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
