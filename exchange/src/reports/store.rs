//! Reports in ClickHouse: filed once (checked, triaged, stored), listed, read back and
//! selected for a partner.

use std::net::IpAddr;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::triage::{matches_static, triage, Facts};
use super::ReportInput;
use crate::config::{Countries, Exchange, Partner, Tlp};
use crate::ExchangeError;
use teiten_store::geo::GeoDb;
use teiten_store::queries;
use teiten_store::time;

/// A stored report (also what the listing queries return).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StoredReport {
    /// Id.
    pub id: String,
    /// When we received it (Unix seconds).
    pub received: u32,
    /// When it was detected (Unix seconds).
    pub detected: u32,
    /// The reporter (from its token).
    pub reporter: String,
    /// `ids`, `antivirus`, `staff`, `other`.
    pub source: String,
    /// Our affected host.
    pub host: String,
    /// Category.
    pub category: String,
    /// Description.
    pub description: String,
    /// Indicator addresses, canonical text.
    pub addresses: Vec<String>,
    /// Their countries (`??` unknown), same order.
    pub countries: Vec<String>,
    /// Ports.
    pub ports: Vec<u16>,
    /// IANA protocol number of the ports.
    pub protocol: u8,
    /// Hashes.
    pub hashes: Vec<String>,
    /// URLs.
    pub urls: Vec<String>,
    /// TLP label.
    pub tlp: String,
    /// Triage colour.
    pub colour: String,
    /// Rules that fired, comma-separated.
    pub rules: String,
}

/// The insert shape of [`StoredReport`] (the colour as its Enum8 value).
#[derive(Debug, Row, Serialize)]
struct ReportRow<'a> {
    id: &'a str,
    received: u32,
    detected: u32,
    reporter: &'a str,
    source: &'a str,
    host: &'a str,
    category: &'a str,
    description: &'a str,
    addresses: &'a [String],
    countries: &'a [String],
    ports: &'a [u16],
    protocol: u8,
    hashes: &'a [String],
    urls: &'a [String],
    tlp: &'a str,
    colour: i8,
    rules: &'a str,
}

/// The outcome of filing a report (the JSON answer of `POST /api/v1/reports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filed {
    /// The report's id.
    pub id: String,
    /// Its colour.
    pub colour: String,
    /// The rules that fired.
    pub rules: Vec<String>,
    /// True when it was stored before (nothing was written now).
    pub duplicate: bool,
}

/// Checks, triages and stores a report from `reporter`.
pub async fn file(
    client: &Client,
    db: &str,
    x: &Exchange,
    geo: &GeoDb,
    reporter: &str,
    input: ReportInput,
) -> Result<Filed, ExchangeError> {
    let r = input.check()?;
    let id = r.id(reporter);
    let exists: u64 = queries::report_exists(db, reporter, &id)
        .fetch_one(client)
        .await
        .map_err(|e| ExchangeError::ch(format!("looking up report {id}"), e))?;
    if exists > 0 {
        let stored = by_id(client, db, reporter, &id).await?;
        return Ok(Filed {
            id,
            colour: stored
                .as_ref()
                .map_or("green", |s| s.colour.as_str())
                .to_owned(),
            rules: stored
                .map(|s| {
                    s.rules
                        .split(',')
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            duplicate: true,
        });
    }
    let (colour, fired) = triage_with_counts(
        client,
        db,
        &x.rules,
        &Facts::of(&r),
        &r.input.host,
        r.detected,
    )
    .await?;
    let i = &r.input.indicators;
    let addresses: Vec<String> = i.addresses.iter().map(|a| canonical(*a)).collect();
    let countries: Vec<String> = i
        .addresses
        .iter()
        .map(|a| {
            let cc = geo.lookup(*a).unwrap_or(teiten_store::geo::UNKNOWN);
            String::from_utf8_lossy(&cc).into_owned()
        })
        .collect();
    let rules = fired.join(",");
    let row = ReportRow {
        id: &id,
        received: time::now() as u32,
        detected: r.detected as u32,
        reporter,
        source: &r.input.source,
        host: &r.input.host,
        category: &r.input.category,
        description: &r.input.description,
        addresses: &addresses,
        countries: &countries,
        ports: &i.ports,
        protocol: r.protocol,
        hashes: &i.hashes,
        urls: &i.urls,
        tlp: r.tlp.label(),
        colour: colour as i8,
        rules: &rules,
    };
    let what = || format!("storing report {id}");
    let mut ins = client
        .insert::<ReportRow>("internal_reports")
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    ins.write(&row)
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    ins.end().await.map_err(|e| ExchangeError::ch(what(), e))?;
    tracing::info!(%id, reporter, colour = colour.name(), rules = %rules, "Internal report filed");
    Ok(Filed {
        id,
        colour: colour.name().to_owned(),
        rules: fired,
        duplicate: false,
    })
}

/// Triage with the repetition counts read from ClickHouse (one query per distinct window of
/// the rules that otherwise match), before anything is written.
pub(crate) async fn triage_with_counts(
    client: &Client,
    db: &str,
    rules: &[crate::config::Rule],
    facts: &Facts<'_>,
    host: &str,
    detected: i64,
) -> Result<(crate::config::Colour, Vec<String>), ExchangeError> {
    let mut counts: Vec<(u32, u64)> = Vec::new();
    for rule in rules {
        if let Some((_, window)) = rule.repeated {
            if !counts.iter().any(|(w, _)| *w == window) && matches_static(rule, facts) {
                let since = (detected - i64::from(window)).max(0);
                let n: u64 = queries::host_reports_since(db, host, since)
                    .fetch_one(client)
                    .await
                    .map_err(|e| ExchangeError::ch(format!("counting reports on {host}"), e))?;
                counts.push((window, n));
            }
        }
    }
    Ok(triage(rules, facts, |w| {
        counts
            .iter()
            .find(|(cw, _)| *cw == w)
            .map_or(0, |(_, n)| *n)
    }))
}

/// An address as stored and searched (IPv4 dotted, IPv6 compressed; IPv4-mapped as IPv4).
pub fn canonical(a: IpAddr) -> String {
    match a {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

/// The newest reports.
pub async fn recent(
    client: &Client,
    db: &str,
    limit: u32,
) -> Result<Vec<StoredReport>, ExchangeError> {
    queries::reports_recent(db, limit)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch("listing internal reports", e))
}

/// One report of one reporter.
pub async fn by_id(
    client: &Client,
    db: &str,
    reporter: &str,
    id: &str,
) -> Result<Option<StoredReport>, ExchangeError> {
    queries::report_by_id(db, reporter, id)
        .fetch_optional(client)
        .await
        .map_err(|e| ExchangeError::ch(format!("reading report {id} of {reporter}"), e))
}

/// The reports of `[from, to)` a partner may receive: TLP at or below its ceiling and an
/// indicator address in its countries.
pub async fn for_partner(
    client: &Client,
    db: &str,
    partner: &Partner,
    from: i64,
    to: i64,
) -> Result<Vec<StoredReport>, ExchangeError> {
    let allowed: Vec<&str> = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ]
    .into_iter()
    .filter(|t| *t <= partner.tlp)
    .map(Tlp::label)
    .collect();
    let rows: Vec<StoredReport> = queries::export_reports(db, from, to, &allowed)
        .fetch_all(client)
        .await
        .map_err(|e| ExchangeError::ch(format!("reading reports for {}", partner.id), e))?;
    Ok(rows
        .into_iter()
        .filter(|r| match &partner.countries {
            Countries::All => !r.addresses.is_empty(),
            Countries::Only(_) => {
                r.countries.iter().any(|c| partner.countries.includes(c))
                    || r.addresses
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .any(|ip| partner.covers_address(ip))
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_rows_have_the_store_columns() {
        // The row type and the store's column list (the sample rows) agree.
        assert_eq!(
            <ReportRow<'static> as clickhouse::Row>::COLUMN_NAMES.join(", "),
            teiten_store::queries::INTERNAL_REPORTS_INSERT_COLUMNS
        );
    }
}
