//! Shipping over TLS: with an `https://` URL the sensor verifies the aggregator's certificate
//! against the configured CA (`aggregator.ca_file`) and delivers; a certificate it cannot
//! verify is refused and the batches stay spooled. TLS is terminated by socat in front of the
//! harness receiver, with a CA and a server certificate made by openssl for the test.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use teiten::pcapgen::{frame, scan_mix, write_pcap};
use teiten::receiver::Receiver;
use teiten::{bin, require_tool, run_ok};

const TOKEN: &str = "tls-test-token";

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").current_dir(dir).args(args));
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=teiten test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
}

struct Socat(Child);

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_front(dir: &Path, backend: std::net::SocketAddr) -> (u16, Socat) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("socat")
        .current_dir(dir)
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert=server.pem,key=server.key,verify=0"
        ))
        .arg(format!("TCP:{backend}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat starts");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "socat did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (port, Socat(child))
}

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

    let out = Command::new(bin("teiten-sensor"))
        .arg("--config")
        .arg(config(dir.path(), port, true))
        .arg("--read")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rx.received().events.len(), 5000);

    // Without the CA the certificate is refused: nothing delivered, everything kept.
    let mut child = Command::new(bin("teiten-sensor"))
        .arg("--config")
        .arg(config(dir.path(), port, false))
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
