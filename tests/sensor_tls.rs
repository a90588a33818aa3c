//! Shipping over TLS: with an `https://` URL the sensor verifies the aggregator's certificate
//! against the configured CA (`aggregator.ca_file`) and delivers; a certificate it cannot
//! verify is refused and the batches stay spooled. TLS is terminated by socat in front of the
//! harness receiver, with a CA and a server certificate made by openssl for the test.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use teiten::pcapgen::{frame, scan_mix, write_pcap};
use teiten::receiver::Receiver;
use teiten::tls::{certificates, tls_front};
use teiten::{configured, require_tool, run_ok};

const TOKEN: &str = "tls-test-token";

fn config(dir: &Path, port: u16, ca: bool) -> std::path::PathBuf {
    let path = dir.join(format!("sensor-{ca}.toml"));
    let ca_line = if ca {
        format!("ca_file = \"{}\"\n", dir.join("ca.pem").display())
    } else {
        String::new()
    };
    std::fs::write(
        &path,
        format!(
            "sensor_id = \"tls-test\"\nmonitored_prefixes = [\"198.18.1.0/24\"]\n\
             [aggregator]\nurls = [\"https://127.0.0.1:{port}\"]\ntoken = \"{TOKEN}\"\n{ca_line}\
             retry_max_secs = 1\n[spool]\ndir = \"{}\"\n[metrics]\nlisten = \"\"\n",
            dir.join(format!("spool-{ca}")).display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn https_with_the_configured_ca_delivers_and_an_unknown_ca_does_not() {
    require_tool("openssl", "openssl");
    require_tool("socat", "socat");
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let rx = Receiver::start("127.0.0.1:0".parse().unwrap(), TOKEN);
    let (port, _front) = tls_front(dir.path(), rx.addr);
    let pcap = dir.path().join("scan.pcap");
    write_pcap(&pcap, (0..5000u64).map(|i| (i as i64, frame(&scan_mix(i))))).unwrap();

    run_ok(
        configured("teiten-sensor", &config(dir.path(), port, true))
            .arg("--read")
            .arg(&pcap),
    );
    assert_eq!(rx.received().events.len(), 5000);

    // Without the CA the certificate is refused: nothing delivered, everything kept.
    let mut child = configured("teiten-sensor", &config(dir.path(), port, false))
        .arg("--read")
        .arg(&pcap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: SIGTERM to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("UnknownIssuer") || log.contains("certificate"),
        "{log}"
    );
    assert_eq!(rx.received().events.len(), 5000, "nothing more delivered");
    let spooled = std::fs::read_dir(dir.path().join("spool-false"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".ttb")
        })
        .count();
    assert_eq!(spooled, 1, "the undelivered batch stays in the spool");
}
