//! Source country lookup: Debian's `tor-geoipdb` files by default, a MaxMind `.mmdb` when
//! configured. The database in use is swapped atomically on reload (SIGHUP), so lookups in
//! flight finish on the old one and no event goes without a lookup.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::{Error, Result};
use serde::Deserialize;

/// `[geo]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// Tor-format IPv4 ranges (`start,end,CC`, integers). Default `/usr/share/tor/geoip`.
    #[serde(default = "default_geoip4")]
    pub ipv4: PathBuf,
    /// Tor-format IPv6 ranges. Default `/usr/share/tor/geoip6`.
    #[serde(default = "default_geoip6")]
    pub ipv6: PathBuf,
    /// A MaxMind-format `.mmdb` (GeoLite2-Country or compatible); when set it is used instead
    /// of the tor files. Default none.
    #[serde(default)]
    pub mmdb: Option<PathBuf>,
}

impl Default for GeoConfig {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

fn default_geoip4() -> PathBuf {
    "/usr/share/tor/geoip".into()
}
fn default_geoip6() -> PathBuf {
    "/usr/share/tor/geoip6".into()
}

/// Stored for addresses no range covers (and for tor's own `??`): [`crate::proto::UNKNOWN_COUNTRY`].
pub const UNKNOWN: [u8; 2] = crate::proto::UNKNOWN_COUNTRY;

/// A loaded IP-to-country database.
pub enum GeoDb {
    /// Sorted, non-overlapping ranges from the tor files.
    Tor {
        /// IPv4 ranges `(start, end, country)`.
        v4: Vec<(u32, u32, [u8; 2])>,
        /// IPv6 ranges.
        v6: Vec<(u128, u128, [u8; 2])>,
    },
    /// A MaxMind-format database.
    Mmdb(maxminddb::Reader<Vec<u8>>),
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GeoDb::Tor { v4, v6 } => {
                write!(f, "GeoDb::Tor({} v4, {} v6 ranges)", v4.len(), v6.len())
            }
            GeoDb::Mmdb(_) => f.write_str("GeoDb::Mmdb"),
        }
    }
}

fn country_code(s: &str) -> Option<[u8; 2]> {
    let b = s.as_bytes();
    (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic))
        .then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

/// Parses one tor geoip file: `#` comments, then `start,end,CC` lines, where start and end are
/// integers (IPv4 file) or IPv6 addresses (IPv6 file).
fn parse_tor<T: Ord + Copy>(
    path: &Path,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<(T, T, [u8; 2])>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Geo {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || Error::Geo {
            path: path.to_owned(),
            reason: format!("line {}: expected `start,end,CC`, found `{line}`", n + 1),
        };
        let mut f = line.split(',');
        let (Some(a), Some(b), Some(cc), None) = (f.next(), f.next(), f.next(), f.next()) else {
            return Err(bad());
        };
        let (a, b) = (parse(a).ok_or_else(bad)?, parse(b).ok_or_else(bad)?);
        if a > b {
            return Err(bad());
        }
        // `??` and other non-codes: the range is known to be unassigned; store nothing.
        if let Some(cc) = country_code(cc) {
            out.push((a, b, cc));
        }
    }
    out.sort_unstable_by_key(|r| r.0);
    Ok(out)
}

fn find<T: Ord + Copy>(ranges: &[(T, T, [u8; 2])], x: T) -> Option<[u8; 2]> {
    let i = ranges.partition_point(|r| r.0 <= x);
    let r = ranges.get(i.checked_sub(1)?)?;
    (x <= r.1).then_some(r.2)
}

impl GeoDb {
    /// Loads the database the config names.
    pub fn load(cfg: &GeoConfig) -> Result<GeoDb> {
        if let Some(path) = &cfg.mmdb {
            let reader = maxminddb::Reader::open_readfile(path).map_err(|e| Error::Geo {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            return Ok(GeoDb::Mmdb(reader));
        }
        let v4 = parse_tor(&cfg.ipv4, |s| s.trim().parse::<u32>().ok())?;
        let v6 = parse_tor(&cfg.ipv6, |s| {
            s.trim().parse::<Ipv6Addr>().ok().map(u128::from)
        })?;
        if v4.is_empty() && v6.is_empty() {
            return Err(Error::Geo {
                path: cfg.ipv4.clone(),
                reason: "no ranges in the IPv4 and IPv6 files".into(),
            });
        }
        Ok(GeoDb::Tor { v4, v6 })
    }

    /// The country of an address, if the database knows it. IPv4-mapped IPv6 addresses are
    /// looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match self {
            GeoDb::Tor { v4, v6 } => match ip {
                IpAddr::V4(a) => find(v4, u32::from(a)),
                IpAddr::V6(a) => find(v6, u128::from(a)),
            },
            GeoDb::Mmdb(r) => r
                .lookup::<maxminddb::geoip2::Country>(ip)
                .ok()
                .and_then(|c| c.country?.iso_code)
                .and_then(country_code),
        }
    }
}

/// The database in use, swappable at run time.
#[derive(Debug, Clone)]
pub struct Geo {
    db: Arc<ArcSwap<GeoDb>>,
}

impl Geo {
    /// Wraps a loaded database.
    pub fn new(db: GeoDb) -> Geo {
        Geo {
            db: Arc::new(ArcSwap::from_pointee(db)),
        }
    }

    /// Reloads from the config; on error the current database stays in use.
    pub fn reload(&self, cfg: &GeoConfig) -> Result<()> {
        let db = GeoDb::load(cfg)?;
        self.db.store(Arc::new(db));
        Ok(())
    }

    /// The database in use now (hold it for a whole batch).
    pub fn current(&self) -> Arc<GeoDb> {
        self.db.load_full()
    }
}

/// An IPv4 address as stored (IPv4-mapped IPv6, 16 bytes).
pub fn address_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Inverse of [`address_bytes`].
pub fn address_from_bytes(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tor_files(v4: &str, v6: &str) -> (tempfile::NamedTempFile, tempfile::NamedTempFile) {
        let mut a = tempfile::NamedTempFile::new().unwrap();
        a.write_all(v4.as_bytes()).unwrap();
        let mut b = tempfile::NamedTempFile::new().unwrap();
        b.write_all(v6.as_bytes()).unwrap();
        (a, b)
    }

    #[test]
    fn tor_format_lookup_and_edges() {
        let (a, b) = tor_files(
            "# c\n16777216,16777471,AU\n16777472,16778239,CN\n15726992,15726999,??\n",
            "2001:2::,2001:2:0:ffff:ffff:ffff:ffff:ffff,JP\n",
        );
        let cfg = GeoConfig {
            ipv4: a.path().into(),
            ipv6: b.path().into(),
            mmdb: None,
        };
        let db = GeoDb::load(&cfg).unwrap();
        assert_eq!(db.lookup("1.0.0.0".parse().unwrap()), Some(*b"AU"));
        assert_eq!(db.lookup("1.0.0.255".parse().unwrap()), Some(*b"AU"));
        assert_eq!(db.lookup("1.0.1.0".parse().unwrap()), Some(*b"CN"));
        assert_eq!(db.lookup("::ffff:1.0.1.0".parse().unwrap()), Some(*b"CN"));
        assert_eq!(db.lookup("0.239.248.144".parse().unwrap()), None);
        assert_eq!(db.lookup("9.9.9.9".parse().unwrap()), None);
        assert_eq!(db.lookup("2001:2::1".parse().unwrap()), Some(*b"JP"));
        assert_eq!(db.lookup("2001:3::1".parse().unwrap()), None);
    }

    #[test]
    fn tor_format_errors_name_the_line() {
        let (a, b) = tor_files("1,2,AU\n5,3,CN\n", "");
        let cfg = GeoConfig {
            ipv4: a.path().into(),
            ipv6: b.path().into(),
            mmdb: None,
        };
        let err = GeoDb::load(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("line 2: expected `start,end,CC`, found `5,3,CN`"),
            "{err}"
        );
    }

    /// A minimal MaxMind DB (format 2.0, IPv4 tree, 24-bit records) mapping one /24 to a
    /// country, written by hand from the format specification.
    fn tiny_mmdb(prefix: [u8; 3], iso: &str) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.push((2 << 5) | s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
        fn uint(out: &mut Vec<u8>, ty: u8, v: u64) {
            let bytes: Vec<u8> = v
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect();
            if ty < 8 {
                out.push((ty << 5) | bytes.len() as u8);
            } else {
                out.push(bytes.len() as u8);
                out.push(ty - 7);
            }
            out.extend_from_slice(&bytes);
        }
        let nodes = 24u32;
        let mut tree = Vec::new();
        let data_ptr = nodes + 16;
        for depth in 0..24 {
            let bit = (prefix[depth / 8] >> (7 - depth % 8)) & 1;
            let next = if depth == 23 {
                data_ptr
            } else {
                depth as u32 + 1
            };
            let (l, r) = if bit == 0 {
                (next, nodes)
            } else {
                (nodes, next)
            };
            tree.extend_from_slice(&l.to_be_bytes()[1..]);
            tree.extend_from_slice(&r.to_be_bytes()[1..]);
        }
        let mut out = tree;
        out.extend_from_slice(&[0u8; 16]);
        // {"country": {"iso_code": iso}}
        out.push((7 << 5) | 1);
        string(&mut out, "country");
        out.push((7 << 5) | 1);
        string(&mut out, "iso_code");
        string(&mut out, iso);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        out.push((7 << 5) | 9);
        string(&mut out, "node_count");
        uint(&mut out, 6, nodes.into());
        string(&mut out, "record_size");
        uint(&mut out, 5, 24);
        string(&mut out, "ip_version");
        uint(&mut out, 5, 4);
        string(&mut out, "database_type");
        string(&mut out, "GeoLite2-Country");
        string(&mut out, "languages");
        out.extend_from_slice(&[1, 4]); // array (extended type 11) of one
        string(&mut out, "en");
        string(&mut out, "binary_format_major_version");
        uint(&mut out, 5, 2);
        string(&mut out, "binary_format_minor_version");
        out.push(5 << 5); // uint16 0
        string(&mut out, "build_epoch");
        uint(&mut out, 9, 1_700_000_000);
        string(&mut out, "description");
        out.push((7 << 5) | 1);
        string(&mut out, "en");
        string(&mut out, "teiten test");
        out
    }

    #[test]
    fn mmdb_lookup() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&tiny_mmdb([1, 0, 0], "AU")).unwrap();
        let cfg = GeoConfig {
            ipv4: "/nonexistent".into(),
            ipv6: "/nonexistent".into(),
            mmdb: Some(f.path().into()),
        };
        let db = GeoDb::load(&cfg).unwrap();
        assert!(matches!(db, GeoDb::Mmdb(_)));
        assert_eq!(db.lookup("1.0.0.7".parse().unwrap()), Some(*b"AU"));
        assert_eq!(db.lookup("::ffff:1.0.0.7".parse().unwrap()), Some(*b"AU"));
        assert_eq!(db.lookup("1.0.1.7".parse().unwrap()), None);
        assert_eq!(db.lookup("200.0.0.1".parse().unwrap()), None);
        // A file that is not a MaxMind DB is an error naming it.
        let mut bad = tempfile::NamedTempFile::new().unwrap();
        bad.write_all(b"not a database").unwrap();
        let cfg = GeoConfig {
            mmdb: Some(bad.path().into()),
            ..cfg
        };
        let err = GeoDb::load(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("geo database {}", bad.path().display())),
            "{err}"
        );
    }

    #[test]
    fn address_round_trip() {
        for s in ["192.0.2.1", "2001:db8::1", "::1"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(address_from_bytes(address_bytes(ip)), ip);
        }
    }
}
