//! The `teiten-iodef` binary: exit status, output, conversion validated by xmllint.

mod common;

use std::process::Command;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_teiten-iodef"))
}

fn example(rel: &str) -> std::path::PathBuf {
    common::examples().join(rel)
}

#[test]
fn validate_exit_status() {
    let ok = cli()
        .args(["validate", "--no-progress"])
        .arg(example("rfc7970/rfc7970-7.1-minimal.xml"))
        .arg(example("rfc5070/rfc5070-7.2-reconnaissance.xml"))
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.contains("valid IODEF v2"), "{out}");
    assert!(out.contains("valid IODEF v1"), "{out}");

    let bad = cli()
        .arg("validate")
        .arg(example("rfc7970/rfc7970-7.2-campaign-indicators.xml"))
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("line 12, column 10"), "{out}");
    assert!(out.contains("missing required element `URL`"), "{out}");

    let v1_as_v2 = cli()
        .args(["validate", "--expect", "v2"])
        .arg(example("rfc5070/rfc5070-7.1-worm.xml"))
        .output()
        .expect("run");
    assert_eq!(v1_as_v2.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v1_as_v2.stdout).contains("expected IODEF v2"));

    let missing = cli()
        .args(["validate", "/nonexistent/file.xml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open"));
}

#[test]
fn convert_both_ways() {
    let dir = tempfile::tempdir().expect("temp dir");
    let v2 = dir.path().join("v2.xml");
    let st = cli()
        .args(["convert", "--to", "v2", "-o"])
        .arg(&v2)
        .arg(example("rfc5070/rfc5070-7.2-reconnaissance.xml"))
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(String::from_utf8_lossy(&st.stderr).contains("recon"));
    common::xmllint(iodef::Version::V2, &v2).expect("converted v2 validates");

    let v1 = dir.path().join("v1.xml");
    let st = cli()
        .args(["convert", "--to", "v1", "-o"])
        .arg(&v1)
        .arg(example("rfc8274/rfc8274-B.5-iot-malware.xml"))
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    common::xmllint(iodef::Version::V1, &v1).expect("converted v1 validates");
}

#[test]
fn summarize_prints_incidents_events_span_addresses() {
    let out = cli()
        .args(["summarize", "--no-progress"])
        .arg(example("rfc8274/rfc8274-B.2-ddos.xml"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("incident csirt.example.com:189701"), "{text}");
    assert!(text.contains("1 event(s)"), "{text}");
    assert!(
        text.contains("2013-02-05T00:34:45+00:00 .. 2013-02-05T01:15:45+00:00"),
        "{text}"
    );
    assert!(text.contains("192.0.2.104"), "{text}");
}
