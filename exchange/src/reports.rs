//! The organisation's own detection reports (IDS alerts, antivirus detections, staff reports):
//! checked, triaged green / yellow / red by the configured rules, stored once, exportable as
//! IODEF and shared with partners when their TLP allows.
//!
//! A report arrives as JSON ([`ReportInput`], `POST /api/v1/reports` or `teiten-aggregator
//! report add`). Its id is the one given, or a digest of its content, so the same report filed
//! twice is stored once. Ids are per reporter: a report is found by (reporter, id), so one
//! reporter using another's id neither hits the other's report (as a "duplicate" that would
//! show its colour and rules) nor pre-empts it; both are stored, and their IODEF IncidentIDs
//! differ (`report-<reporter>/<id>`). Triage: the first rule whose conditions all hold sets the colour
//! (green without one), then every matching `escalate` rule raises it one step; the names of
//! the rules that fired are stored with the report.

use std::net::IpAddr;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{Action, Colour, Countries, Exchange, Partner, Rule, Tlp, CATEGORIES, SOURCES};
use super::ExchangeError;
use teiten_store::geo::GeoDb;
use teiten_store::queries;
use teiten_store::time;

/// A report as filed (JSON).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// The reporter's own id for it (1 to 128 characters). Default: a digest of the content.
    #[serde(default)]
    pub id: Option<String>,
    /// Detection time, RFC 3339 (`2025-11-21T09:30:00+09:00`).
    pub detected: String,
    /// `ids`, `antivirus`, `staff` or `other`.
    pub source: String,
    /// The affected host of ours: an address or a host name.
    pub host: String,
    /// `scan`, `abuse`, `forged`, `intrusion`, `dos`, `malware` or `other`.
    pub category: String,
    /// What was seen.
    #[serde(default)]
    pub description: String,
    /// What identifies the other side.
    #[serde(default)]
    pub indicators: Indicators,
    /// TLP label: `clear`, `white`, `green`, `amber`, `amber+strict`, `red`. Default `amber`.
    #[serde(default = "default_tlp")]
    pub tlp: String,
}

fn default_tlp() -> String {
    "amber".into()
}

/// Indicators of a report.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Indicators {
    /// Addresses of the other side (attacker, C2, scanner).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// Ports involved.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Protocol of the ports: `tcp`, `udp` or `icmp`. Default `tcp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// File hashes (hex MD5, SHA-1 or SHA-256).
    #[serde(default)]
    pub hashes: Vec<String>,
    /// URLs.
    #[serde(default)]
    pub urls: Vec<String>,
}

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

/// The outcome of filing a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

fn invalid(field: &str, reason: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Invalid(format!("`{field}`: {reason}"))
}

/// A report checked, before triage.
#[derive(Debug, Clone)]
pub struct Checked {
    input: ReportInput,
    detected: i64,
    host_ip: Option<IpAddr>,
    protocol: u8,
    tlp: Tlp,
}

impl ReportInput {
    /// Checks every field; the error names the field and what is wrong.
    pub fn check(self) -> Result<Checked, ExchangeError> {
        let detected = chrono::DateTime::parse_from_rfc3339(self.detected.trim())
            .map_err(|e| {
                invalid(
                    "detected",
                    format!("`{}` is not RFC 3339: {e}", self.detected),
                )
            })?
            .timestamp();
        if !(0..=i64::from(u32::MAX)).contains(&detected) {
            return Err(invalid("detected", "outside 1970-2106"));
        }
        if !SOURCES.contains(&self.source.as_str()) {
            return Err(invalid(
                "source",
                format!("`{}` is not one of {}", self.source, SOURCES.join(", ")),
            ));
        }
        if !CATEGORIES.contains(&self.category.as_str()) {
            return Err(invalid(
                "category",
                format!(
                    "`{}` is not one of {}",
                    self.category,
                    CATEGORIES.join(", ")
                ),
            ));
        }
        let host = self.host.trim();
        if host.is_empty() || host.len() > 255 || host.chars().any(char::is_control) {
            return Err(invalid("host", "1 to 255 printable characters"));
        }
        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                return Err(invalid("id", "1 to 128 printable characters"));
            }
        }
        if self.description.len() > 64 << 10 {
            return Err(invalid("description", "longer than 64 KiB"));
        }
        let i = &self.indicators;
        if i.addresses.len() + i.ports.len() + i.hashes.len() + i.urls.len() > 10_000 {
            return Err(invalid("indicators", "more than 10,000"));
        }
        for h in &i.hashes {
            if !matches!(h.len(), 32 | 40 | 64) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    "indicators.hashes",
                    format!("`{h}` is not a hex MD5, SHA-1 or SHA-256"),
                ));
            }
        }
        for u in &i.urls {
            if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("ftp://"))
                || u.len() > 2048
                || u.chars().any(|c| c.is_control() || c == ' ')
            {
                return Err(invalid("indicators.urls", format!("`{u}` is not a URL")));
            }
        }
        let protocol = match i.protocol.as_deref() {
            None | Some("tcp") => 6,
            Some("udp") => 17,
            Some("icmp") => 1,
            Some(p) => {
                return Err(invalid(
                    "indicators.protocol",
                    format!("`{p}` is not tcp, udp or icmp"),
                ))
            }
        };
        let tlp = Tlp::parse(&self.tlp).ok_or_else(|| {
            invalid(
                "tlp",
                format!(
                    "`{}` is not clear, white, green, amber, amber+strict or red",
                    self.tlp
                ),
            )
        })?;
        Ok(Checked {
            host_ip: host.parse().ok(),
            input: ReportInput {
                host: host.to_owned(),
                ..self
            },
            detected,
            protocol,
            tlp,
        })
    }
}

impl Checked {
    /// The id given, or a digest of the content.
    pub fn id(&self, reporter: &str) -> String {
        if let Some(id) = &self.input.id {
            return id.clone();
        }
        let mut h = Sha256::new();
        let content = serde_json::to_vec(&(reporter, self.detected, &self.input))
            .expect("a report serialises");
        h.update(&content);
        hex::encode(&h.finalize()[..16])
    }
}

/// Whether a rule's conditions, other than repetition, hold.
fn matches_static(rule: &Rule, r: &Checked) -> bool {
    (rule.categories.is_empty() || rule.categories.contains(&r.input.category))
        && (rule.sources.is_empty() || rule.sources.contains(&r.input.source))
        && (rule.hosts.is_empty()
            || r.host_ip
                .is_some_and(|ip| rule.hosts.iter().any(|n| n.contains(&ip))))
}

/// Applies the rules. `repeats(window_secs)` counts the earlier reports on the same host in the
/// window before the detection time.
pub fn triage(
    rules: &[Rule],
    r: &Checked,
    mut repeats: impl FnMut(u32) -> u64,
) -> (Colour, Vec<String>) {
    let mut colour = None;
    let mut fired = Vec::new();
    for rule in rules {
        if !matches_static(rule, r) {
            continue;
        }
        if let Some((n, window)) = rule.repeated {
            if repeats(window) + 1 < u64::from(n) {
                continue;
            }
        }
        match rule.action {
            Action::Set(c) if colour.is_none() => {
                colour = Some(c);
                fired.push(rule.name.clone());
            }
            Action::Set(_) => {}
            Action::Escalate => {
                colour = Some(colour.unwrap_or(Colour::Green).escalated());
                fired.push(rule.name.clone());
            }
        }
    }
    (colour.unwrap_or(Colour::Green), fired)
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
    let exists: u64 = client
        .query(&queries::sql(queries::REPORT_EXISTS, db))
        .bind(reporter)
        .bind(&id)
        .fetch_one()
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
    // Repetition counts, one query per distinct window, before anything is written.
    let mut counts: Vec<(u32, u64)> = Vec::new();
    for rule in &x.rules {
        if let Some((_, window)) = rule.repeated {
            if !counts.iter().any(|(w, _)| *w == window) && matches_static(rule, &r) {
                let since = (r.detected - i64::from(window)).max(0);
                let n: u64 = client
                    .query(&queries::sql(queries::HOST_REPORTS_SINCE, db))
                    .bind(&r.input.host)
                    .bind(since)
                    .fetch_one()
                    .await
                    .map_err(|e| {
                        ExchangeError::ch(format!("counting reports on {}", r.input.host), e)
                    })?;
                counts.push((window, n));
            }
        }
    }
    let (colour, fired) = triage(&x.rules, &r, |w| {
        counts
            .iter()
            .find(|(cw, _)| *cw == w)
            .map_or(0, |(_, n)| *n)
    });
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
    client
        .query(&queries::sql(queries::REPORTS_RECENT, db))
        .bind(limit)
        .fetch_all()
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
    client
        .query(&queries::sql(queries::REPORT_BY_ID, db))
        .bind(reporter)
        .bind(id)
        .fetch_optional()
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
    let rows: Vec<StoredReport> = client
        .query(&queries::sql(queries::EXPORT_REPORTS, db))
        .bind(from)
        .bind(to)
        .bind(&allowed)
        .fetch_all()
        .await
        .map_err(|e| ExchangeError::ch(format!("reading reports for {}", partner.id), e))?;
    Ok(rows
        .into_iter()
        .filter(|r| match &partner.countries {
            Countries::All => !r.addresses.is_empty(),
            Countries::Only(_) => r.countries.iter().any(|c| partner.countries.includes(c)),
        })
        .collect())
}

fn ml(s: &str) -> iodef::v2::MLString {
    iodef::v2::MLString {
        value: s.to_owned(),
        ..Default::default()
    }
}

fn address_system(
    a: &str,
    category: iodef::v2::SystemCategory,
    protocol: u8,
    ports: &[u16],
) -> iodef::v2::System {
    use iodef::v2;
    let ip: Option<IpAddr> = a.parse().ok();
    let (cat, choice) = match ip {
        Some(IpAddr::V4(_)) => (v2::AddressCategory::Ipv4Addr, true),
        Some(IpAddr::V6(_)) => (v2::AddressCategory::Ipv6Addr, true),
        None => (v2::AddressCategory::Ipv4Addr, false),
    };
    let node = if choice {
        v2::NodeChoice::Address(v2::Address {
            category: cat,
            value: a.to_owned(),
            ..Default::default()
        })
    } else {
        v2::NodeChoice::DomainData(v2::DomainData {
            name: Some(a.to_owned()),
            ..Default::default()
        })
    };
    let mut ranges: Vec<(u16, u16)> = ports.iter().map(|p| (*p, *p)).collect();
    ranges.sort_unstable();
    ranges.dedup();
    v2::System {
        category: Some(category),
        node: Some(v2::Node {
            choice: vec![node],
            ..Default::default()
        }),
        service: if ranges.is_empty() {
            vec![]
        } else {
            vec![v2::Service {
                ip_protocol: Some(i64::from(protocol)),
                portlist: iodef::Portlist::from_ranges(ranges),
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

fn extension(meaning: &str, value: &str) -> iodef::v2::ExtensionData {
    iodef::v2::ExtensionData {
        dtype: Some(iodef::v2::Dtype::String),
        meaning: Some(meaning.to_owned()),
        content: vec![iodef::ExtensionContent::Text(value.to_owned())],
        ..Default::default()
    }
}

impl StoredReport {
    /// The report as an IODEF v2 Incident. `disclose_host` writes our affected host as the
    /// target System (for our own use); partners' files leave it out, and it is replaced by
    /// `[our host]` in the description.
    pub fn incident(
        &self,
        csirt: &str,
        disclose_host: bool,
    ) -> Result<iodef::v2::Incident, ExchangeError> {
        use iodef::v2;
        let time = |t: u32| {
            iodef::DateTime::from_unix(i64::from(t), 0)
                .ok_or_else(|| ExchangeError::Invalid(format!("time {t} out of range")))
        };
        let mut systems: Vec<v2::System> = self
            .addresses
            .iter()
            .map(|a| address_system(a, v2::SystemCategory::Source, self.protocol, &[]))
            .collect();
        if disclose_host {
            systems.push(address_system(
                &self.host,
                v2::SystemCategory::Target,
                self.protocol,
                &self.ports,
            ));
        }
        let mut additional: Vec<v2::ExtensionData> = self
            .hashes
            .iter()
            .map(|h| {
                let kind = match h.len() {
                    32 => "md5",
                    40 => "sha1",
                    _ => "sha256",
                };
                extension(&format!("file hash ({kind})"), h)
            })
            .collect();
        additional.extend(self.urls.iter().map(|u| extension("url", u)));
        if !disclose_host && !self.ports.is_empty() {
            let list: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            additional.push(extension("targeted ports", &list.join(",")));
        }
        let event = v2::EventData {
            detect_time: Some(time(self.detected)?),
            flow: if systems.is_empty() {
                vec![]
            } else {
                vec![v2::Flow { system: systems }]
            },
            additional_data: additional,
            ..Default::default()
        };
        let restriction = match Tlp::parse(&self.tlp).unwrap_or(Tlp::Amber) {
            Tlp::Clear => v2::Restriction::Ext("clear".into()),
            Tlp::Green => v2::Restriction::Green,
            Tlp::Amber => v2::Restriction::Amber,
            Tlp::AmberStrict => v2::Restriction::Ext("amber+strict".into()),
            Tlp::Red => v2::Restriction::Red,
        };
        let has_event = !event.flow.is_empty() || !event.additional_data.is_empty();
        Ok(v2::Incident {
            purpose: Some(v2::IncidentPurpose::Reporting),
            restriction: Some(restriction),
            incident_id: Some(v2::IncidentID {
                name: Some(csirt.to_owned()),
                // Ids are per reporter.
                value: format!("report-{}/{}", self.reporter, self.id),
                ..Default::default()
            }),
            detect_time: Some(time(self.detected)?),
            report_time: Some(time(self.received)?),
            generation_time: Some(time(self.received)?),
            description: if self.description.is_empty() {
                vec![]
            } else if disclose_host {
                vec![ml(&self.description)]
            } else {
                // The reporter's text may name our host: it stays with us.
                vec![ml(&self.description.replace(&self.host, "[our host]"))]
            },
            assessment: vec![v2::Assessment {
                incident_category: vec![ml(&self.category)],
                choice: vec![v2::AssessmentChoice::SystemImpact(v2::SystemImpact {
                    kind: Some(v2::SystemimpactType::Unknown),
                    ..Default::default()
                })],
                ..Default::default()
            }],
            contact: vec![v2::Contact {
                role: Some(v2::ContactRole::Creator),
                kind: Some(v2::ContactType::Organization),
                contact_name: vec![ml(csirt)],
                ..Default::default()
            }],
            event_data: if has_event { vec![event] } else { vec![] },
            ..Default::default()
        })
    }

    /// The report alone as an IODEF v2 document, our host included (for our own tools).
    pub fn document(&self, csirt: &str) -> Result<Vec<u8>, ExchangeError> {
        let doc = iodef::v2::Document {
            lang: Some("en".into()),
            incident: vec![self.incident(csirt, true)?],
            ..Default::default()
        };
        let mut out = Vec::new();
        iodef::Document::V2(doc)
            .write(&mut out, iodef::WriteOptions::default())
            .map_err(|e| ExchangeError::Iodef {
                what: format!("writing report {}", self.id),
                source: e,
            })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExchangeConfig;

    fn input(category: &str, host: &str) -> ReportInput {
        serde_json::from_value(serde_json::json!({
            "detected": "2025-11-21T09:30:00+09:00",
            "source": "ids",
            "host": host,
            "category": category,
            "description": "alert",
            "indicators": {"addresses": ["1.0.0.1"], "ports": [22]},
        }))
        .unwrap()
    }

    fn rules(toml_text: &str) -> Vec<Rule> {
        let c: ExchangeConfig = toml::from_str(toml_text).unwrap();
        c.validate().unwrap().rules
    }

    #[test]
    fn default_rules_colour_by_category_and_escalate_repeats() {
        let r = rules("");
        let t = |cat, repeats| {
            let (c, fired) = triage(&r, &input(cat, "192.0.2.10").check().unwrap(), |_| repeats);
            (c, fired.join(","))
        };
        assert_eq!(t("intrusion", 0), (Colour::Red, "intrusion-is-red".into()));
        assert_eq!(
            t("malware", 0),
            (Colour::Yellow, "malware-or-dos-is-yellow".into())
        );
        assert_eq!(t("scan", 0), (Colour::Green, String::new()));
        assert_eq!(t("scan", 1), (Colour::Green, String::new()));
        assert_eq!(
            t("scan", 2),
            (Colour::Yellow, "repeated-host-escalates".into())
        );
        assert_eq!(
            t("malware", 5),
            (
                Colour::Red,
                "malware-or-dos-is-yellow,repeated-host-escalates".into()
            )
        );
    }

    #[test]
    fn host_networks_and_first_setting_rule_wins() {
        let r = rules(
            "[[triage]]\nname = \"customer-facing\"\nhosts = [\"203.0.113.0/24\"]\ncolour = \"red\"\n\
             [[triage]]\nname = \"ids-yellow\"\nsources = [\"ids\"]\ncolour = \"yellow\"\n",
        );
        let (c, f) = triage(&r, &input("scan", "203.0.113.5").check().unwrap(), |_| 0);
        assert_eq!((c, f), (Colour::Red, vec!["customer-facing".to_owned()]));
        let (c, f) = triage(&r, &input("scan", "198.51.100.1").check().unwrap(), |_| 0);
        assert_eq!((c, f), (Colour::Yellow, vec!["ids-yellow".to_owned()]));
        let (c, _) = triage(&r, &input("scan", "web01.example").check().unwrap(), |_| 0);
        assert_eq!(c, Colour::Yellow, "a host name matches no network");
    }

    #[test]
    fn bad_reports_name_the_field() {
        let bad = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = serde_json::to_value(input("scan", "h")).unwrap();
            f(&mut v);
            let r: ReportInput = serde_json::from_value(v).unwrap();
            r.check().unwrap_err().to_string()
        };
        assert!(bad(&|v| v["detected"] = "yesterday".into()).contains("`detected`"));
        assert!(bad(&|v| v["category"] = "spam".into()).contains("`category`: `spam`"));
        assert!(bad(&|v| v["source"] = "x".into()).contains("`source`"));
        assert!(bad(&|v| v["host"] = "".into()).contains("`host`"));
        assert!(bad(&|v| v["tlp"] = "pink".into()).contains("`tlp`"));
        assert!(
            bad(&|v| v["indicators"]["hashes"] = serde_json::json!(["xyz"]))
                .contains("indicators.hashes")
        );
        assert!(
            bad(&|v| v["indicators"]["urls"] = serde_json::json!(["javascript:x"]))
                .contains("indicators.urls")
        );
        let unknown = serde_json::from_value::<ReportInput>(serde_json::json!({
            "detected": "2025-11-21T00:00:00Z", "source": "ids", "host": "h",
            "category": "scan", "colour": "red"
        }))
        .unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `colour`"),
            "{unknown}"
        );
    }

    #[test]
    fn ids_are_stable_digests_unless_given() {
        let a = input("scan", "h").check().unwrap();
        assert_eq!(
            a.id("ids-1"),
            input("scan", "h").check().unwrap().id("ids-1")
        );
        assert_ne!(a.id("ids-1"), a.id("av-1"));
        assert_ne!(
            a.id("ids-1"),
            input("dos", "h").check().unwrap().id("ids-1")
        );
        let mut given = input("scan", "h");
        given.id = Some("IDS-4711".into());
        assert_eq!(given.check().unwrap().id("ids-1"), "IDS-4711");
    }

    #[test]
    fn reports_export_as_valid_iodef_and_hide_our_host_from_partners() {
        let r = StoredReport {
            id: "r1".into(),
            received: 1_763_700_100,
            detected: 1_763_700_000,
            reporter: "ids-1".into(),
            source: "ids".into(),
            host: "192.0.2.10".into(),
            category: "intrusion".into(),
            description: "web shell on 192.0.2.10".into(),
            addresses: vec!["1.0.0.1".into(), "2001:db8::7".into()],
            countries: vec!["AU".into(), "??".into()],
            ports: vec![443, 22],
            protocol: 6,
            hashes: vec!["d41d8cd98f00b204e9800998ecf8427e".into()],
            urls: vec!["http://bad.example/x".into()],
            tlp: "amber+strict".into(),
            colour: "red".into(),
            rules: "intrusion-is-red".into(),
        };
        let doc = String::from_utf8(r.document("csirt.example.org").unwrap()).unwrap();
        assert!(
            doc.contains("192.0.2.10") && doc.contains("<Portlist>22,443</Portlist>"),
            "{doc}"
        );
        assert!(doc.contains(r#"ext-restriction="amber+strict""#), "{doc}");
        let shared = r.incident("csirt.example.org", false).unwrap();
        let mut out = Vec::new();
        iodef::Document::V2(iodef::v2::Document {
            lang: Some("en".into()),
            incident: vec![shared],
            ..Default::default()
        })
        .write(&mut out, iodef::WriteOptions::default())
        .unwrap();
        let shared = String::from_utf8(out).unwrap();
        assert!(!shared.contains("192.0.2.10"), "{shared}");
        assert!(shared.contains("2001:db8::7") && shared.contains("file hash (md5)"));
    }
}
