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
    // (target version, input example, what stderr mentions)
    let cases = [
        (
            iodef::Version::V2,
            "rfc5070/rfc5070-7.2-reconnaissance.xml",
            Some("recon"),
        ),
        (
            iodef::Version::V1,
            "rfc8274/rfc8274-B.5-iot-malware.xml",
            None,
        ),
    ];
    for (to, input, mentions) in cases {
        let name = match to {
            iodef::Version::V1 => "v1",
            iodef::Version::V2 => "v2",
        };
        let out = dir.path().join(format!("{name}.xml"));
        let st = cli()
            .args(["convert", "--to", name, "-o"])
            .arg(&out)
            .arg(example(input))
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&st.stderr);
        assert!(st.status.success(), "{input}: {stderr}");
        if let Some(m) = mentions {
            assert!(stderr.contains(m), "{input}: {stderr}");
        }
        common::xmllint(to, &out).unwrap_or_else(|e| panic!("{input} converted to {name}: {e}"));
    }
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
