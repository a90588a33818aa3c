//! The analyst pages of the IODEF exchange: the status of every partner-day, the partner files
//! imported, the internal reports with their triage colour, and the address page that
//! correlates sensor sightings with imported and internal reports. The data comes from the
//! aggregator's exchange tables through `teiten_exchange`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use teiten_exchange::config::{Exchange, CATEGORIES, SOURCES};
use teiten_exchange::reports::{Filed, Indicators, ReportInput};
use teiten_exchange::{self as exchange, ExchangeError};
use teiten_store::GeoDb;

use crate::data::{proto_name, Reader};
use crate::error::{Error, HttpError, Result};
use crate::html::esc;
use crate::params::iso;

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

/// What filing internal reports from the exchange page needs: the aggregator's triage rules
/// and its geo database, from the aggregator's own config file (`analyst.aggregator_config`),
/// so that a report filed here is checked, triaged and stored exactly as one sent to the
/// aggregator's `/api/v1/reports`.
pub struct Filing {
    exchange: Exchange,
    geo: GeoDb,
    /// The client that writes the reports, when the reader's may not (`query.user`).
    writer: Option<clickhouse::Client>,
}

impl std::fmt::Debug for Filing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filing")
            .field("rules", &self.exchange.rules.len())
            .finish()
    }
}

impl Filing {
    /// Reads and checks the aggregator's config and loads its geo database.
    pub fn load(path: &Path) -> Result<Filing> {
        let what = format!("analyst.aggregator_config {}", path.display());
        let bad = |message: String| Error::Config {
            what: what.clone(),
            message,
        };
        let settings = teiten_aggregator::Config::load(path)
            .and_then(|c| c.validate())
            .map_err(|e| bad(e.to_string()))?;
        let geo = GeoDb::load(&settings.config.geo).map_err(|e| bad(e.to_string()))?;
        Ok(Filing {
            exchange: settings.exchange,
            geo,
            writer: None,
        })
    }

    /// The same, writing reports with `client` rather than the reader's.
    pub fn with_writer(mut self, client: clickhouse::Client) -> Filing {
        self.writer = Some(client);
        self
    }
}

/// The report form as posted (every field a string, checked by [`ReportForm::input`] and then
/// by the aggregator's own checks).
#[derive(Debug, Deserialize)]
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

/// Files a report from the form for analyst `user`: a 400 names the field that is wrong.
pub async fn file_report(
    reader: &Reader,
    filing: &Filing,
    user: &str,
    form: &ReportForm,
) -> Result<Filed, HttpError> {
    let input = form.input().map_err(HttpError::BadRequest)?;
    exchange::reports::file(
        filing.writer.as_ref().unwrap_or(reader.client()),
        reader.db(),
        &filing.exchange,
        &filing.geo,
        &format!("analyst {user}"),
        input,
    )
    .await
    .map_err(|e| match e {
        ExchangeError::Invalid(m) => HttpError::BadRequest(m),
        other => HttpError::from(from_exchange(other)),
    })
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

fn form_html(csrf: &str) -> String {
    let select = |name: &str, values: &[&str], default: &str| {
        let mut s = format!("<select name=\"{name}\">");
        for v in values {
            let sel = if *v == default { " selected" } else { "" };
            let _ = write!(s, "<option value=\"{v}\"{sel}>{v}</option>");
        }
        s.push_str("</select>");
        s
    };
    format!(
        "<h2>File an internal report</h2><form method=\"post\" action=\"/analyst/reports\" \
         id=\"report-form\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Detected (UTC) <input type=\"datetime-local\" name=\"detected\" required></label> \
         <label>Source {}</label> <label>Category {}</label> \
         <label>Our host <input name=\"host\" required placeholder=\"address or host name\"></label><br>\
         <label>Other side's addresses <input name=\"addresses\" size=\"40\" \
         placeholder=\"comma or space separated\"></label> \
         <label>Ports <input name=\"ports\" size=\"12\"></label> \
         <label>Protocol {}</label> <label>TLP {}</label><br>\
         <label>Description <textarea name=\"description\" rows=\"3\" cols=\"80\"></textarea></label><br>\
         <button type=\"submit\">File and triage</button></form>",
        esc(csrf),
        select("source", SOURCES, "staff"),
        select("category", CATEGORIES, "scan"),
        select("protocol", &["", "tcp", "udp", "icmp"], ""),
        select(
            "tlp",
            &["clear", "green", "amber", "amber+strict", "red"],
            "amber"
        ),
    )
}

/// A partner's daily file from the outbox (`file` as logged, a plain file name): its path, or
/// `None` when the log names no such file.
pub async fn outbox_file(
    reader: &Reader,
    outbox: &Path,
    partner: &str,
    day: u32,
) -> Result<Option<PathBuf>, HttpError> {
    let days = exchange::deliver::status(reader.client(), reader.db(), day, day)
        .await
        .map_err(|e| HttpError::from(from_exchange(e)))?;
    let Some(d) = days.into_iter().find(|d| d.partner == partner) else {
        return Ok(None);
    };
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']);
    if !plain(&d.partner) || !plain(&d.file) {
        return Ok(None);
    }
    Ok(Some(outbox.join(&d.partner).join(&d.file)))
}

/// The exchange page: partner-days of the last 14 days, imports, internal reports, and the form
/// to file one (when `form` carries the session's CSRF token).
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
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">\
             <a href=\"/analyst/exchange/file?partner={}&amp;day={}\">{}</a></td></tr>",
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
            esc(&d.partner),
            d.day,
            esc(&d.file),
            st = esc(&d.status),
        );
    }
    s.push_str("</table>");

    s.push_str(
        "<h2>Partner files imported</h2><table id=\"imports\"><tr><th class=\"l\">Received (UTC)</th>\
         <th class=\"l\">Partner</th><th class=\"l\">File</th><th>IODEF</th>\
         <th class=\"l\">Status</th><th>Incidents</th><th>Indicators</th>\
         <th class=\"l\">Reason</th></tr>",
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
            "<tr><td class=\"l triage-{c}\"><b>{c}</b></td><td class=\"l\">{}</td>\
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
        );
    }
    s.push_str("</table>");
    if let Some(csrf) = form {
        s.push_str(&form_html(csrf));
    }
    Ok(s)
}

/// The address form and, for an address, everything known about it.
pub async fn address_html(reader: &Reader, addr: Option<&str>) -> Result<String, HttpError> {
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
    let c = exchange::correlate::correlate(reader.client(), reader.db(), ip)
        .await
        .map_err(|e| HttpError::from(from_exchange(e)))?;
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
             {} UTC, last seen {} UTC.</p><table id=\"ports\"><tr><th class=\"l\">Protocol</th>\
             <th>Port</th><th>Packets</th></tr>",
            sg.packets,
            sg.ports,
            sg.sensors,
            iso(i64::from(sg.first_seen)),
            iso(i64::from(sg.last_seen))
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
