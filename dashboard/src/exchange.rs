//! The analyst pages of the IODEF exchange: the status of every partner-day, the partner files
//! imported, the internal reports with their triage colour, and the address page that
//! correlates sensor sightings with imported and internal reports. The data comes from the
//! aggregator's exchange tables through `teiten_exchange` (read only); reports are filed and
//! daily files downloaded through the aggregator's API ([`crate::reports`]).

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Deserialize;
use teiten_exchange::config::{CATEGORIES, SOURCES};
use teiten_exchange::reports::{Filed, Indicators, ReportInput};
use teiten_exchange::{self as exchange, ExchangeError};

use crate::data::Reader;
use crate::error::{Error, HttpError, Result};
use crate::html::esc;
use crate::params::iso;
use teiten_store::proto_name;

fn from_exchange(e: ExchangeError) -> Error {
    match e {
        ExchangeError::ClickHouse { what, source } => Error::ClickHouse { what, source },
        other => Error::Io {
            what: "reading the exchange".into(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn day_text(day: u32) -> String {
    format!("{}-{:02}-{:02}", day / 10_000, day / 100 % 100, day % 100)
}

/// The report form as posted (every field a string, checked by [`ReportForm::input`] and then
/// by the aggregator's own checks when it is filed through its API).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportForm {
    /// The session's CSRF token.
    pub csrf: String,
    #[serde(default)]
    detected: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    addresses: String,
    #[serde(default)]
    ports: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    tlp: String,
}

fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|i| !i.is_empty())
}

impl ReportForm {
    /// The report: addresses and ports are lists separated by commas or spaces; a detection
    /// time without offset (`datetime-local`) is UTC.
    pub fn input(&self) -> std::result::Result<ReportInput, String> {
        let addresses = items(&self.addresses)
            .map(|a| {
                a.parse::<IpAddr>()
                    .map_err(|_| format!("addresses: `{a}` is not an IPv4 or IPv6 address"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ports = items(&self.ports)
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("ports: `{p}` is not a port (0-65535)"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let d = self.detected.trim();
        let detected = match d.len() {
            16 => format!("{d}:00Z"),
            19 => format!("{d}Z"),
            _ => d.to_owned(),
        };
        let tlp = match self.tlp.trim() {
            "" => "amber".to_owned(),
            t => t.to_owned(),
        };
        Ok(ReportInput {
            id: None,
            detected,
            source: self.source.trim().to_owned(),
            host: self.host.clone(),
            category: self.category.trim().to_owned(),
            description: self.description.clone(),
            indicators: Indicators {
                addresses,
                ports,
                protocol: Some(self.protocol.trim())
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
                hashes: Vec::new(),
                urls: Vec::new(),
            },
            tlp,
        })
    }
}

/// The page after filing.
pub fn filed_html(f: &Filed) -> String {
    format!(
        "<p id=\"filed\">Report <code>{}</code> {}: triage <b class=\"triage-{c}\">{c}</b>{}.</p>\
         <p><a href=\"/analyst/exchange#reports\">Back to the exchange page</a></p>",
        esc(&f.id),
        if f.duplicate {
            "was filed before (nothing stored now)"
        } else {
            "stored"
        },
        if f.rules.is_empty() {
            String::new()
        } else {
            format!(" (rules: {})", esc(&f.rules.join(", ")))
        },
        c = esc(&f.colour),
    )
}

/// The form to file a report, with the session's CSRF token, filled with `kept` (what the
/// analyst sent, when it could not be filed) or the defaults.
pub fn form_html(csrf: &str, kept: Option<&ReportForm>) -> String {
    let blank = ReportForm::default();
    let f = kept.unwrap_or(&blank);
    let or = |v: &str, default: &'static str| -> String {
        if v.trim().is_empty() {
            default.to_owned()
        } else {
            v.trim().to_owned()
        }
    };
    let select = |name: &str, values: &[&str], chosen: &str| {
        let mut s = format!("<select name=\"{name}\">");
        for v in values {
            let sel = if *v == chosen { " selected" } else { "" };
            let _ = write!(s, "<option value=\"{v}\"{sel}>{v}</option>");
        }
        s.push_str("</select>");
        s
    };
    format!(
        "<h2>File an internal report</h2><form method=\"post\" action=\"/analyst/reports\" \
         id=\"report-form\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Detected (UTC) <input type=\"datetime-local\" name=\"detected\" value=\"{}\" required></label> \
         <label>Source {}</label> <label>Category {}</label> \
         <label>Our host <input name=\"host\" value=\"{}\" required placeholder=\"address or host name\"></label><br>\
         <label>Other side's addresses <input name=\"addresses\" value=\"{}\" size=\"40\" \
         placeholder=\"comma or space separated\"></label> \
         <label>Ports <input name=\"ports\" value=\"{}\" size=\"12\"></label> \
         <label>Protocol {}</label> <label>TLP {}</label><br>\
         <label>Description <textarea name=\"description\" rows=\"3\" cols=\"80\">{}</textarea></label><br>\
         <button type=\"submit\">File and triage</button></form>",
        esc(csrf),
        esc(f.detected.trim()),
        select("source", SOURCES, &or(&f.source, "staff")),
        select("category", CATEGORIES, &or(&f.category, "scan")),
        esc(&f.host),
        esc(&f.addresses),
        esc(&f.ports),
        select("protocol", &["", "tcp", "udp", "icmp"], f.protocol.trim()),
        select(
            "tlp",
            &["clear", "green", "amber", "amber+strict", "red"],
            &or(&f.tlp, "amber")
        ),
        esc(&f.description),
    )
}

/// The exchange page: partner-days of the last 14 days, imports, internal reports, and the form
/// to file one (when `form` carries the session's CSRF token: `[reports]` is set, and the
/// daily files are then links to their download through the aggregator).
pub async fn page_html(reader: &Reader, now: i64, form: Option<&str>) -> Result<String> {
    let (c, db) = (reader.client(), reader.db());
    let today = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .date_naive();
    let from = today - chrono::Days::new(14);
    let days = exchange::deliver::status(
        c,
        db,
        teiten_store::time::date_number(from),
        teiten_store::time::date_number(today + chrono::Days::new(1)),
    )
    .await
    .map_err(from_exchange)?;
    let imports = exchange::import::recent(c, db, 50)
        .await
        .map_err(from_exchange)?;
    let reports = exchange::reports::recent(c, db, 50)
        .await
        .map_err(from_exchange)?;

    let mut s = String::from(
        "<h2>Daily files to partners (14 days)</h2><table id=\"exchange\"><tr>\
         <th class=\"l\">Partner</th><th class=\"l\">Day</th><th>Rev.</th><th>Events</th>\
         <th>Sources</th><th>Reports</th><th>Bytes</th><th class=\"l\">Status</th>\
         <th>Attempts</th><th class=\"l\">Updated (UTC)</th><th class=\"l\">Error</th>\
         <th class=\"l\">File</th></tr>",
    );
    if days.is_empty() {
        s.push_str("<tr><td class=\"l\" colspan=\"12\">No file generated yet.</td></tr>");
    }
    for d in &days {
        let _ = write!(
            s,
            "<tr class=\"{st}\"><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"l\"><b>{st}</b></td><td>{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&d.partner),
            day_text(d.day),
            d.revision,
            d.events,
            d.sources,
            d.reports,
            d.bytes,
            d.attempts,
            iso(i64::from(d.updated)),
            esc(&d.error),
            if form.is_some() {
                format!(
                    "<a href=\"/analyst/exchange/file?partner={}&amp;day={}\">{}</a>",
                    esc(&d.partner),
                    d.day,
                    esc(&d.file)
                )
            } else {
                esc(&d.file)
            },
            st = esc(&d.status),
        );
    }
    s.push_str("</table>");

    s.push_str(
        "<h2>Partner files imported</h2><table id=\"imports\"><tr><th class=\"l\">Received (UTC)</th>\
         <th class=\"l\">Partner</th><th class=\"l\">File</th><th>IODEF</th>\
         <th class=\"l\">Status</th><th>Incidents</th><th>Indicators</th>\
         <th class=\"l\">Reason or warnings</th></tr>",
    );
    if imports.is_empty() {
        s.push_str("<tr><td class=\"l\" colspan=\"8\">None yet.</td></tr>");
    }
    for i in &imports {
        let reason: String = i.reason.lines().take(3).collect::<Vec<_>>().join(" / ");
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td>v{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            iso(i64::from(i.received)),
            esc(&i.partner),
            esc(&i.name),
            i.iodef_version,
            esc(&i.status),
            i.incidents,
            i.indicators,
            esc(&reason),
        );
    }
    s.push_str("</table>");

    s.push_str(
        "<h2>Internal reports</h2><table id=\"reports\"><tr><th class=\"l\">Triage</th>\
         <th class=\"l\">Detected (UTC)</th><th class=\"l\">Reporter</th><th class=\"l\">Source</th>\
         <th class=\"l\">Host</th><th class=\"l\">Category</th><th class=\"l\">Indicators</th>\
         <th class=\"l\">TLP</th><th class=\"l\">Rules</th><th class=\"l\">Description</th></tr>",
    );
    if reports.is_empty() {
        s.push_str("<tr><td class=\"l\" colspan=\"10\">None yet.</td></tr>");
    }
    for r in &reports {
        let links: Vec<String> = r
            .addresses
            .iter()
            .map(|a| format!("<a href=\"/analyst/address?addr={0}\">{0}</a>", esc(a)))
            .collect();
        let _ = write!(
            s,
            "<tr><td class=\"l triage-{c}\"><a href=\"/analyst/case?{case}\" title=\"the case\">\
             <b>{c}</b></a></td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            iso(i64::from(r.detected)),
            esc(&r.reporter),
            esc(&r.source),
            esc(&r.host),
            esc(&r.category),
            links.join(" "),
            esc(&r.tlp),
            esc(&r.rules),
            esc(&r.description),
            c = esc(&r.colour),
            case = esc(
                &serde_urlencoded::to_string([("reporter", &r.reporter), ("id", &r.id)])
                    .unwrap_or_default()
            ),
        );
    }
    s.push_str("</table>");
    if let Some(csrf) = form {
        s.push_str(&form_html(csrf, None));
    }
    Ok(s)
}

/// The address form and, for an address, everything known about it.
pub async fn address_html(
    reader: &Reader,
    addr: Option<&str>,
    geo: Option<&teiten_store::GeoDb>,
) -> Result<String, HttpError> {
    let mut s = format!(
        "<form method=\"get\" action=\"/analyst/address\"><label>Address \
         <input name=\"addr\" value=\"{}\"></label> <button type=\"submit\">Look up</button></form>",
        esc(addr.unwrap_or(""))
    );
    let Some(text) = addr.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(s);
    };
    let ip: IpAddr = text
        .parse()
        .map_err(|_| HttpError::bad(format!("addr: `{text}` is not an IPv4 or IPv6 address")))?;
    let c = exchange::correlate::correlate(reader.client(), reader.db(), ip, geo)
        .await
        .map_err(|e| HttpError::from(from_exchange(e)))?;
    s.push_str("<h2>Network</h2>");
    match (&c.network, geo) {
        (Some(n), _) => {
            let flags: Vec<&str> = [
                (n.anycast, "anycast"),
                (n.anonymous_proxy, "anonymous proxy"),
                (n.satellite_provider, "satellite provider"),
                (n.drop, "on a drop list (hijacked or spam-only space)"),
            ]
            .iter()
            .filter(|f| f.0)
            .map(|f| f.1)
            .collect();
            let _ = write!(
                s,
                "<p id=\"network\">In <code>{}</code>, announced by {}{} in {}; flags: {}.</p>",
                esc(&n.prefix),
                n.asn
                    .map(|a| format!("AS{a}"))
                    .unwrap_or_else(|| "an unknown AS".into()),
                n.as_name
                    .as_deref()
                    .map(|name| format!(" ({})", esc(name)))
                    .unwrap_or_default(),
                esc(n.country.as_deref().unwrap_or("an unknown country")),
                if flags.is_empty() {
                    "none".to_owned()
                } else {
                    flags.join(", ")
                },
            );
        }
        (None, Some(_)) => s.push_str(
            "<p id=\"network\">The network database names no network for this address (only \
             IPFire's location database names networks).</p>",
        ),
        (None, None) => s.push_str(
            "<p id=\"network\">No network database is loaded (<code>[geo]</code> in the \
             dashboard's config).</p>",
        ),
    }
    let sg = &c.sightings;
    if sg.packets == 0 {
        let _ = write!(
            s,
            "<h2>Sensors</h2><p id=\"sightings\">Our sensors never saw {}.</p>",
            esc(&c.address)
        );
    } else {
        let _ = write!(
            s,
            "<h2>Sensors</h2><p id=\"sightings\">{} packets to {} ports on {} sensor(s), first seen \
             {} UTC, last seen {} UTC.</p>",
            sg.packets,
            sg.ports,
            sg.sensors,
            iso(i64::from(sg.first_seen)),
            iso(i64::from(sg.last_seen))
        );
        let asn = match sg.asn {
            0 => "an unknown AS".to_owned(),
            a => format!("AS{a}"),
        };
        let country = match sg.country.as_str() {
            "" | "??" => "an unknown country".to_owned(),
            cc => cc.to_owned(),
        };
        let _ = write!(
            s,
            "<p id=\"origin\">From {} in {} (as stored with its last packet).</p>\
             <table id=\"ports\"><tr><th class=\"l\">Protocol</th><th>Port</th>\
             <th>Packets</th></tr>",
            esc(&asn),
            esc(&country)
        );
        for p in &c.top_ports {
            let _ = write!(
                s,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
                proto_name(p.proto),
                p.dport,
                p.packets
            );
        }
        s.push_str("</table>");
    }
    s.push_str(
        "<h2>Partner reports</h2><table id=\"partner-hits\"><tr><th class=\"l\">Partner</th>\
         <th class=\"l\">Incident</th><th class=\"l\">Time (UTC)</th><th class=\"l\">Category</th>\
         <th class=\"l\">Role</th><th class=\"l\">Ports</th><th class=\"l\">Restriction</th></tr>",
    );
    if c.imports.is_empty() {
        s.push_str("<tr><td class=\"l\" colspan=\"7\">No partner file names it.</td></tr>");
    }
    for i in &c.imports {
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&i.partner),
            esc(&i.incident),
            iso(i64::from(i.time)),
            esc(&i.category),
            esc(&i.role),
            esc(&i.ports),
            esc(&i.restriction)
        );
    }
    s.push_str(
        "</table><h2>Internal reports</h2><table id=\"report-hits\"><tr><th class=\"l\">Triage</th>\
         <th class=\"l\">Detected (UTC)</th><th class=\"l\">Category</th><th class=\"l\">Host</th>\
         <th class=\"l\">TLP</th><th class=\"l\">Id</th></tr>",
    );
    if c.reports.is_empty() {
        s.push_str("<tr><td class=\"l\" colspan=\"6\">No internal report names it.</td></tr>");
    }
    for r in &c.reports {
        let _ = write!(
            s,
            "<tr><td class=\"l triage-{c}\"><b>{c}</b></td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            iso(i64::from(r.detected)),
            esc(&r.category),
            esc(&r.host),
            esc(&r.tlp),
            esc(&r.id),
            c = esc(&r.colour)
        );
    }
    s.push_str("</table>");
    Ok(s)
}
