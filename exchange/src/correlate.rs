//! Correlation: for one address, what our sensors saw of it and which partner files and
//! internal reports name it.

use std::net::IpAddr;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::reports::canonical;
use super::ExchangeError;
use teiten_store::queries;

/// What the sensors saw of a source address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Sightings {
    /// Packets (all classes).
    pub packets: u64,
    /// First seen (Unix seconds; 0 when never).
    pub first_seen: u32,
    /// Last seen.
    pub last_seen: u32,
    /// Distinct destination ports.
    pub ports: u64,
    /// Distinct sensors that saw it.
    pub sensors: u64,
    /// The gravest reason it was withheld from partners and public counts, as a
    /// [`teiten_store::sources::Withheld`] code (0: published).
    pub withheld: u8,
    /// The source's AS as stored with its last event (0: unknown).
    pub asn: u32,
    /// Its country as stored with its last event (`??`: unknown; empty when never seen).
    pub country: String,
}

impl Sightings {
    /// The name of [`Sightings::withheld`] (`published`, `spoof_suspect`, ...).
    pub fn withheld_reason(&self) -> &'static str {
        teiten_store::sources::Withheld::from_code(self.withheld).map_or("unknown", |w| w.name())
    }
}

/// A port the address probed.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PortCount {
    /// IANA protocol number.
    pub proto: u8,
    /// Destination port (ICMP: the code).
    pub dport: u16,
    /// Packets.
    pub packets: u64,
}

/// A partner file naming the address.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ImportHit {
    /// Partner.
    pub partner: String,
    /// Incident id (`name:value`).
    pub incident: String,
    /// Event time (Unix seconds).
    pub time: u32,
    /// Category.
    pub category: String,
    /// `source`, `target` or `other`.
    pub role: String,
    /// Ports.
    pub ports: String,
    /// Restriction.
    pub restriction: String,
}

/// An internal report naming the address.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ReportHit {
    /// Report id.
    pub id: String,
    /// Detection time.
    pub detected: u32,
    /// Category.
    pub category: String,
    /// Triage colour.
    pub colour: String,
    /// Our affected host.
    pub host: String,
    /// TLP.
    pub tlp: String,
}

/// Everything known about one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Correlation {
    /// The address, canonical text.
    pub address: String,
    /// Sensor sightings as a source.
    pub sightings: Sightings,
    /// Its most probed ports.
    pub top_ports: Vec<PortCount>,
    /// The network the geo database places it in now, with its AS's name and flags (the
    /// location database only; `None` without one, or when it places the address nowhere).
    pub network: Option<teiten_store::geo::Network>,
    /// Partner files naming it (newest first, at most 100).
    pub imports: Vec<ImportHit>,
    /// Internal reports naming it (newest first, at most 100).
    pub reports: Vec<ReportHit>,
}

/// Looks an address up everywhere.
pub async fn correlate(
    client: &Client,
    db: &str,
    addr: IpAddr,
    geo: Option<&teiten_store::GeoDb>,
) -> Result<Correlation, ExchangeError> {
    let text = canonical(addr);
    // Stored addresses are 16 bytes, IPv4 as IPv4-mapped IPv6.
    let stored = match addr {
        IpAddr::V4(v4) => format!("::ffff:{v4}"),
        IpAddr::V6(v6) => v6.to_string(),
    };
    let what = |w: &str| format!("correlating {text}: {w}");
    let sightings: Sightings = queries::correlate_sightings(db, &stored)
        .fetch_one(client)
        .await
        .map_err(|e| ExchangeError::ch(what("sightings"), e))?;
    let top_ports = queries::correlate_ports(db, &stored)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch(what("ports"), e))?;
    let imports = queries::correlate_imports(db, &stored)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch(what("imports"), e))?;
    let reports = queries::correlate_reports(db, &text)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch(what("reports"), e))?;
    Ok(Correlation {
        address: text,
        sightings: if sightings.packets == 0 {
            Sightings::default()
        } else {
            Sightings {
                country: sightings.country.trim_matches('\0').to_owned(),
                ..sightings
            }
        },
        network: geo.and_then(|g| g.network(addr)),
        top_ports,
        imports,
        reports,
    })
}
