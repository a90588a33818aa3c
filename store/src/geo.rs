//! Source country and network lookup. By default IPFire's location database (Debian's
//! `libloc-database`, the `location.db` that `location update` keeps fresh): country and
//! autonomous system, IPv4 and IPv6, read through the `libloc` crate. Debian's `tor-geoipdb`
//! files (country only) or a MaxMind-format pair (a country `.mmdb`, optionally a GeoLite2-ASN
//! `.mmdb`) when configured. The database in use is swapped atomically on reload (SIGHUP), so
//! lookups in flight finish on the old one and no event goes without a lookup.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::{Error, Result};
use serde::Deserialize;

/// Which database `[geo]` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeoSource {
    /// IPFire's location database (`location`): country and AS.
    Location,
    /// tor-geoipdb's IPv4 and IPv6 files (`ipv4`, `ipv6`): country only.
    Tor,
    /// A MaxMind-format country database (`mmdb`), and an AS one (`asn_mmdb`) if set.
    Mmdb,
}

/// `[geo]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// The database to read. Default: `mmdb` when `mmdb` is set, `tor` when `ipv4` or `ipv6`
    /// is, else `location`.
    #[serde(default)]
    pub source: Option<GeoSource>,
    /// IPFire's location database. Default `/var/lib/location/database.db` (Debian's
    /// `location` package points it at `libloc-database`'s file, and `location update`
    /// replaces it with a fresh one).
    #[serde(default)]
    pub location: Option<PathBuf>,
    /// Tor-format IPv4 ranges (`start,end,CC`, integers). Default `/usr/share/tor/geoip`.
    #[serde(default)]
    pub ipv4: Option<PathBuf>,
    /// Tor-format IPv6 ranges. Default `/usr/share/tor/geoip6`.
    #[serde(default)]
    pub ipv6: Option<PathBuf>,
    /// A MaxMind-format country `.mmdb` (GeoLite2-Country or compatible). Default none.
    #[serde(default)]
    pub mmdb: Option<PathBuf>,
    /// A MaxMind-format AS `.mmdb` (GeoLite2-ASN or compatible), read beside `mmdb`. Default
    /// none (no AS numbers with `source = "mmdb"`).
    #[serde(default)]
    pub asn_mmdb: Option<PathBuf>,
    /// Seconds between two runs of `serve` that write the names of newly seen source ASes to
    /// `as_names` (what the dashboard names them by). Default 60.
    #[serde(default)]
    pub names_interval_secs: Option<u64>,
}

/// The default [`GeoConfig::names_interval_secs`].
pub const DEFAULT_NAMES_INTERVAL_SECS: u64 = 60;

/// The default [`GeoConfig::location`].
pub const DEFAULT_LOCATION_DB: &str = "/var/lib/location/database.db";

impl GeoConfig {
    /// How often `serve` names the newly seen source ASes.
    pub fn names_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.names_interval_secs
                .unwrap_or(DEFAULT_NAMES_INTERVAL_SECS)
                .max(1),
        )
    }

    /// The tor-format config of these two files.
    pub fn tor(ipv4: impl Into<PathBuf>, ipv6: impl Into<PathBuf>) -> GeoConfig {
        GeoConfig {
            source: Some(GeoSource::Tor),
            ipv4: Some(ipv4.into()),
            ipv6: Some(ipv6.into()),
            ..GeoConfig::default()
        }
    }

    /// The location-database config of this file.
    pub fn location(path: impl Into<PathBuf>) -> GeoConfig {
        GeoConfig {
            source: Some(GeoSource::Location),
            location: Some(path.into()),
            ..GeoConfig::default()
        }
    }

    /// The database read (see [`GeoConfig::source`]).
    pub fn source(&self) -> GeoSource {
        match self.source {
            Some(s) => s,
            None if self.mmdb.is_some() => GeoSource::Mmdb,
            None if self.ipv4.is_some() || self.ipv6.is_some() => GeoSource::Tor,
            None => GeoSource::Location,
        }
    }

    /// The location database's path.
    pub fn location_path(&self) -> PathBuf {
        self.location
            .clone()
            .unwrap_or_else(|| DEFAULT_LOCATION_DB.into())
    }

    fn tor_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.ipv4
                .clone()
                .unwrap_or_else(|| "/usr/share/tor/geoip".into()),
            self.ipv6
                .clone()
                .unwrap_or_else(|| "/usr/share/tor/geoip6".into()),
        )
    }
}

/// Where a source address comes from, as far as the database knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin {
    /// Its country (ISO 3166 alpha-2, upper case).
    pub country: Option<[u8; 2]>,
    /// The autonomous system announcing it.
    pub asn: Option<u32>,
}

/// A network of the location database: what [`GeoDb::network`] tells of an address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Network {
    /// The most specific network holding the address (`2.16.6.0/23`).
    pub prefix: String,
    /// Its country (ISO 3166 alpha-2), if any.
    pub country: Option<String>,
    /// The autonomous system announcing it.
    pub asn: Option<u32>,
    /// That AS's name.
    pub as_name: Option<String>,
    /// Announced from several places (anycast): the country says little.
    pub anycast: bool,
    /// Flagged as hosting anonymous proxies.
    pub anonymous_proxy: bool,
    /// A satellite provider's.
    pub satellite_provider: bool,
    /// On a "drop" list (hijacked or spam-only space).
    pub drop: bool,
}

/// How many addresses [`GeoDb::origins`] looks up through its memo before deciding whether
/// repeats make the memo worth keeping.
const MEMO_PROBE: usize = 1024;

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
    /// A MaxMind-format country database, and an AS one.
    Mmdb {
        /// Countries.
        country: maxminddb::Reader<Vec<u8>>,
        /// Autonomous systems, if configured.
        asn: Option<maxminddb::Reader<Vec<u8>>>,
    },
    /// IPFire's location database (memory-mapped).
    Location(libloc::Locations),
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GeoDb::Tor { v4, v6 } => {
                write!(f, "GeoDb::Tor({} v4, {} v6 ranges)", v4.len(), v6.len())
            }
            GeoDb::Mmdb { asn, .. } => {
                write!(f, "GeoDb::Mmdb(country, AS: {})", asn.is_some())
            }
            GeoDb::Location(l) => write!(
                f,
                "GeoDb::Location({}, {})",
                l.vendor(),
                l.description().lines().next().unwrap_or("")
            ),
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

/// Runs a call into the libloc crate, which panics on a corrupt database's bad indices
/// instead of returning an error: the panic's message as the error.
fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a lookup failed".into())
    })
}

/// Walks the tree for a spread of IPv4 and IPv6 addresses (every /8 and a fixed
/// pseudo-random sample), and the AS table, so that a corrupt file fails at load.
fn probe_location(l: &libloc::Locations) {
    let mut s = 0x9e37_79b9u32;
    for i in 0..4096u32 {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v4 = if i < 256 {
            (i << 24) | (s & 0xff_ffff)
        } else {
            s
        };
        let _ = l.lookup(IpAddr::V4(v4.into()));
        let v6 = (0x2000u128 << 112) | (u128::from(s) << 80) | u128::from(i);
        let _ = l.lookup(IpAddr::V6(v6.into()));
        let _ = l.as_(s % 400_000);
    }
}

fn find<T: Ord + Copy>(ranges: &[(T, T, [u8; 2])], x: T) -> Option<[u8; 2]> {
    let i = ranges.partition_point(|r| r.0 <= x);
    let r = ranges.get(i.checked_sub(1)?)?;
    (x <= r.1).then_some(r.2)
}

impl GeoDb {
    /// Loads the database the config names.
    pub fn load(cfg: &GeoConfig) -> Result<GeoDb> {
        let mmdb = |path: &Path| {
            maxminddb::Reader::open_readfile(path).map_err(|e| Error::Geo {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        };
        match cfg.source() {
            GeoSource::Mmdb => {
                let Some(path) = &cfg.mmdb else {
                    return Err(Error::ConfigInvalid {
                        field: "geo.mmdb",
                        reason: "source = \"mmdb\" needs the country database's path".into(),
                    });
                };
                let country = mmdb(path)?;
                let asn = cfg.asn_mmdb.as_deref().map(mmdb).transpose()?;
                Ok(GeoDb::Mmdb { country, asn })
            }
            GeoSource::Location => {
                let path = cfg.location_path();
                let l = libloc::Locations::open(&path).map_err(|e| Error::Geo {
                    path: path.clone(),
                    reason: format!(
                        "{e} (Debian: apt-get install libloc-database location; or set \
                         [geo] source = \"tor\" or \"mmdb\")"
                    ),
                })?;
                // A corrupt file (a broken download) opens, but the crate panics on the tree's
                // bad indices: walk a sample of the tree now, and refuse it.
                if let Err(reason) = guarded(|| probe_location(&l)) {
                    return Err(Error::Geo {
                        path,
                        reason: format!("the database is corrupt ({reason})"),
                    });
                }
                // A database that places nothing is a wrong file, not an empty world.
                let probe: IpAddr = "8.8.8.8".parse().expect("address");
                if l.lookup(probe).is_none() && l.as_(15169).is_none() {
                    return Err(Error::Geo {
                        path,
                        reason: "the database holds no networks".into(),
                    });
                }
                Ok(GeoDb::Location(l))
            }
            GeoSource::Tor => {
                let (p4, p6) = cfg.tor_paths();
                let v4 = parse_tor(&p4, |s| s.trim().parse::<u32>().ok())?;
                let v6 = parse_tor(&p6, |s| s.trim().parse::<Ipv6Addr>().ok().map(u128::from))?;
                if v4.is_empty() && v6.is_empty() {
                    return Err(Error::Geo {
                        path: p4,
                        reason: "no ranges in the IPv4 and IPv6 files".into(),
                    });
                }
                Ok(GeoDb::Tor { v4, v6 })
            }
        }
    }

    /// The country of an address, if the database knows it. IPv4-mapped IPv6 addresses are
    /// looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<[u8; 2]> {
        self.origin(ip).country
    }

    /// The country and autonomous system of an address, as far as the database knows them.
    /// IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn origin(&self, ip: IpAddr) -> Origin {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match self {
            GeoDb::Tor { v4, v6 } => Origin {
                country: match ip {
                    IpAddr::V4(a) => find(v4, u32::from(a)),
                    IpAddr::V6(a) => find(v6, u128::from(a)),
                },
                asn: None,
            },
            GeoDb::Mmdb { country, asn } => Origin {
                country: country
                    .lookup::<maxminddb::geoip2::Country>(ip)
                    .ok()
                    .and_then(|c| c.country?.iso_code)
                    .and_then(country_code),
                asn: asn.as_ref().and_then(|r| {
                    r.lookup::<maxminddb::geoip2::Asn>(ip)
                        .ok()?
                        .autonomous_system_number
                        .filter(|&n| n != 0)
                }),
            },
            // The sample walked at load cannot prove the whole tree sound: a panic of the
            // crate on a bad index is an unknown address, not a dead request.
            GeoDb::Location(l) => guarded(|| {
                l.lookup(ip).map(|n| Origin {
                    country: country_code(n.country_code()),
                    asn: Some(n.asn()).filter(|&a| a != 0),
                })
            })
            .ok()
            .flatten()
            .unwrap_or_default(),
        }
    }

    /// The origins of `addrs`, in order: [`GeoDb::origin`] of each. A batch of darknet
    /// traffic names few sources many times, and the tree walks of the location and MaxMind
    /// databases cost several times a tor range search, so for those each distinct address
    /// is looked up once per call, unless the first 1,024 addresses show too few
    /// repeats to pay for the memo (forged, all-different sources): then every address is
    /// looked up directly and the memo costs nothing more.
    pub fn origins(&self, addrs: impl IntoIterator<Item = IpAddr>) -> Vec<Origin> {
        let addrs = addrs.into_iter();
        let mut out = Vec::with_capacity(addrs.size_hint().0);
        if matches!(self, GeoDb::Tor { .. }) {
            out.extend(addrs.map(|a| self.origin(a)));
            return out;
        }
        let mut memo: std::collections::HashMap<IpAddr, Origin> = std::collections::HashMap::new();
        let mut use_memo = true;
        for (i, a) in addrs.enumerate() {
            if use_memo && i == MEMO_PROBE && memo.len() > MEMO_PROBE - MEMO_PROBE / 8 {
                // Fewer than one repeat in eight: the memo would cost more than it saves.
                use_memo = false;
                memo = std::collections::HashMap::new();
            }
            let o = if use_memo {
                *memo.entry(a).or_insert_with(|| self.origin(a))
            } else {
                self.origin(a)
            };
            out.push(o);
        }
        out
    }

    /// The network the database places `ip` in, with its AS's name and the network's flags:
    /// only the location database knows networks (`None` for the others, and for addresses
    /// it places nowhere).
    pub fn network(&self, ip: IpAddr) -> Option<Network> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let GeoDb::Location(l) = self else {
            return None;
        };
        guarded(|| {
            let n = l.lookup(ip)?;
            let asn = Some(n.asn()).filter(|&a| a != 0);
            Some(Network {
                prefix: n.addrs().to_string(),
                country: country_code(n.country_code())
                    .map(|c| String::from_utf8_lossy(&c).into_owned()),
                asn,
                as_name: asn.and_then(|a| self.as_name(a)).map(str::to_owned),
                anycast: n.is_anycast(),
                anonymous_proxy: n.is_anonymous_proxy(),
                satellite_provider: n.is_satellite_provider(),
                drop: n.is_drop(),
            })
        })
        .ok()
        .flatten()
    }

    /// The name of an autonomous system, where the database has names (the location
    /// database; a GeoLite2-ASN database names an AS only per network, not here).
    pub fn as_name(&self, asn: u32) -> Option<&str> {
        match self {
            GeoDb::Location(l) => {
                guarded(|| l.as_(asn).map(|a| a.name()).filter(|n| !n.is_empty()))
                    .ok()
                    .flatten()
            }
            _ => None,
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
        let cfg = GeoConfig::tor(a.path(), b.path());
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
        let cfg = GeoConfig::tor(a.path(), b.path());
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
            ipv4: Some("/nonexistent".into()),
            mmdb: Some(f.path().into()),
            ..GeoConfig::default()
        };
        let db = GeoDb::load(&cfg).unwrap();
        assert!(matches!(db, GeoDb::Mmdb { asn: None, .. }));
        assert_eq!(db.origin("1.0.0.7".parse().unwrap()).asn, None);
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
    fn origins_of_a_batch_are_each_addresss_origin() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&tiny_mmdb([1, 0, 0], "AU")).unwrap();
        let db = GeoDb::load(&GeoConfig {
            mmdb: Some(f.path().into()),
            ..GeoConfig::default()
        })
        .unwrap();
        let v4 = |i: u32| IpAddr::V4((0x0100_0000 + i).into());
        // Few sources, many times (the memo is kept), then all different (it is dropped
        // after the probe), and both mixed with unknown and IPv4-mapped addresses.
        let repeated: Vec<IpAddr> = (0..5_000u32).map(|i| v4((i * 7) % 300)).collect();
        let unique: Vec<IpAddr> = (0..5_000u32).map(|i| v4(i * 97)).collect();
        let mut mixed: Vec<IpAddr> = repeated.iter().chain(&unique).copied().collect();
        mixed.push("::ffff:1.0.0.7".parse().unwrap());
        mixed.push("200.0.0.1".parse().unwrap());
        for addrs in [repeated, unique, mixed, Vec::new()] {
            let one_by_one: Vec<Origin> = addrs.iter().map(|&a| db.origin(a)).collect();
            assert_eq!(db.origins(addrs.iter().copied()), one_by_one);
            assert!(one_by_one.iter().any(|o| o.country.is_some()) || one_by_one.len() < 2);
        }
    }

    #[test]
    fn a_corrupt_location_database_is_refused_at_load_instead_of_panicking_later() {
        let good = std::fs::read(DEFAULT_LOCATION_DB).unwrap_or_else(|e| {
            panic!("{DEFAULT_LOCATION_DB}: {e} (scripts/install-deps installs libloc-database)")
        });
        // The middle half of the file (the network tree and the networks) overwritten: the
        // header still opens, the tree's indices point anywhere.
        let mut bad = good.clone();
        let (a, b) = (bad.len() / 4, bad.len() * 3 / 4);
        for (i, x) in bad[a..b].iter_mut().enumerate() {
            *x = if i % 3 == 0 { 0xff } else { (i * 7919) as u8 };
        }
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bad).unwrap();
        let e = match GeoDb::load(&GeoConfig::location(f.path())) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a corrupt location database was accepted"),
        };
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(e.contains("the database is corrupt"), "{e}");
    }

    #[test]
    fn address_round_trip() {
        for s in ["192.0.2.1", "2001:db8::1", "::1"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(address_from_bytes(address_bytes(ip)), ip);
        }
    }
}
