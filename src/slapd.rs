//! A private LDAP server for tests: Debian's `slapd` (OpenLDAP) in the foreground on free
//! loopback ports, with its own directory, a `slapd.conf` made here (the stock schemas core,
//! cosine, inetorgperson and nis from `/etc/ldap/schema`, one mdb database for [`SUFFIX`]
//! with [`ROOT_DN`]) and the entries of the test's LDIF, loaded with `slapadd` before the
//! start. Nothing of the system's slapd (its config, its data, port 389) is used or touched.
//!
//! Access: passwords can only be used to bind; every entry is readable by a bound user and
//! by nobody else, as in a company directory.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::daemon;

/// The slapd binary (Debian `slapd`).
pub const SLAPD: &str = "/usr/sbin/slapd";
/// slapadd (Debian `slapd`).
pub const SLAPADD: &str = "/usr/sbin/slapadd";
/// The database's suffix; its entry (`dcObject`, `organization`) is made here.
pub const SUFFIX: &str = "dc=corp,dc=example";
/// The database's root DN (bypasses the access rules).
pub const ROOT_DN: &str = "cn=admin,dc=corp,dc=example";
/// Its password.
pub const ROOT_PASSWORD: &str = "slapd-root-pw";

/// A running slapd; killed on drop, its directory removed (kept when the test fails).
pub struct Slapd {
    child: Option<Child>,
    dir: PathBuf,
    /// Its `ldap://` port on 127.0.0.1 (StartTLS too, with TLS).
    pub port: u16,
    /// Its `ldaps://` port on 127.0.0.1, with TLS.
    pub tls_port: Option<u16>,
}

impl Slapd {
    /// Loads `ldif` (entries under [`SUFFIX`], without the suffix's own) and starts slapd.
    /// With `tls`, a directory holding [`crate::tls::certificates`] (`server.pem`,
    /// `server.key`, `ca.pem`), it also speaks StartTLS and listens for `ldaps://`.
    pub fn start(ldif: &str, tls: Option<&Path>) -> std::io::Result<Slapd> {
        assert!(
            Path::new(SLAPD).is_file() && Path::new(SLAPADD).is_file(),
            "{SLAPD} is not installed: `apt-get install slapd` (scripts/install-deps does this)"
        );
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("teiten-slapd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.as_path();
        std::fs::create_dir_all(d.join("db"))?;
        let schema = |s: &str| format!("include /etc/ldap/schema/{s}.schema\n");
        let mut conf: String = ["core", "cosine", "inetorgperson", "nis"]
            .iter()
            .map(|s| schema(s))
            .collect();
        conf += &format!(
            "modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {0}/slapd.pid\n\
             argsfile {0}/slapd.args\n",
            d.display()
        );
        if let Some(t) = tls {
            conf += &format!(
                "TLSCACertificateFile {0}/ca.pem\nTLSCertificateFile {0}/server.pem\n\
                 TLSCertificateKeyFile {0}/server.key\n",
                t.display()
            );
        }
        conf += &format!(
            "database mdb\nmaxsize 67108864\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PASSWORD}\ndirectory {}/db\n\
             access to attrs=userPassword\n  by anonymous auth\n  by * none\n\
             access to *\n  by users read\n  by anonymous auth\n",
            d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf)?;
        std::fs::write(
            d.join("data.ldif"),
            format!(
                "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\n\
                 o: corp\n\n{}\n",
                ldif.trim()
            ),
        )?;
        crate::try_run(
            Command::new(SLAPADD)
                .arg("-f")
                .arg(d.join("slapd.conf"))
                .arg("-l")
                .arg(d.join("data.ldif")),
        )
        .map_err(std::io::Error::other)?;
        let port = crate::clickhouse::free_port()?;
        let tls_port = match tls {
            Some(_) => Some(crate::clickhouse::free_port()?),
            None => None,
        };
        let mut slapd = Slapd {
            child: None,
            dir,
            port,
            tls_port,
        };
        slapd.run()?;
        Ok(slapd)
    }

    fn run(&mut self) -> std::io::Result<()> {
        let d = self.dir.as_path();
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(p) = self.tls_port {
            urls += &format!(" ldaps://127.0.0.1:{p}/");
        }
        let log = d.join("slapd.log");
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        let child = daemon::Start {
            what: "slapd",
            log: &log,
            timeout: Duration::from_secs(30),
            poll: Duration::from_millis(50),
        }
        .run(
            // -d: in the foreground; 256: a line per connection and operation.
            Command::new(SLAPD)
                .arg("-f")
                .arg(d.join("slapd.conf"))
                .args(["-h", &urls, "-d", "256"]),
            || {
                ports.iter().all(|p| {
                    TcpStream::connect_timeout(
                        &([127, 0, 0, 1], *p).into(),
                        Duration::from_millis(200),
                    )
                    .is_ok()
                })
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:<tls port>` (started with TLS).
    pub fn ldaps_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.tls_port.expect("slapd started with TLS")
        )
    }

    /// Kills it (as a crash would); the data stays for [`Slapd::restart`].
    pub fn stop(&mut self) {
        daemon::kill(&mut self.child);
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.run()
    }

    /// slapd's log so far (every start's).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        daemon::kill(&mut self.child);
        daemon::remove_dir("slapd", &self.dir);
    }
}
