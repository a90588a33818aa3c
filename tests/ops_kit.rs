//! The operations kit stays true to the binaries: every command line in the systemd units is
//! accepted by the binary it names (clap refuses unknown flags before it honours `--help`),
//! each service runs as its own user, and only the sensor gets CAP_NET_RAW. The example
//! configs pass `--check-config`.

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
