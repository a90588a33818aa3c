//! Suricata's EVE JSON (`eve-log` output, one record per line, its kind in `event_type`):
//! alert records become internal reports ([`ReportInput`]); records of every other kind
//! (flow, dns, http, fileinfo, stats, ...) are skipped.
//!
//! The format is Suricata's "Eve JSON Format" page
//! (<https://docs.suricata.io/en/latest/output/eve/eve-json-format.html>): `timestamp` with the
//! offset written without a colon (`2017-04-07T22:24:37.251547+0100`), the flow's `src_ip`,
//! `src_port`, `dest_ip`, `dest_port`, `proto`, `flow_id`, and under `alert` the rule that
//! fired (`gid`, `signature_id`, `rev`, `signature`), its `category` (the classtype's
//! description) and `severity` (1 the highest).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use teiten_exchange::reports::{Indicators, ReportInput};

/// How alerts become reports (`[[eve]]` in the intake's config, less the file keys).
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Our networks: the affected host of an alert is its address inside them.
    pub home_nets: Vec<IpNet>,
    /// Alerts of a severity above this (less severe) are skipped.
    pub max_severity: u8,
    /// TLP label of the reports.
    pub tlp: String,
    /// Category overrides: a classtype description to one of the report categories.
    pub categories: BTreeMap<String, String>,
}

/// The networks an organisation's own hosts usually have: RFC 1918, shared address space
/// (RFC 6598) and unique local IPv6 (RFC 4193).
pub const DEFAULT_HOME_NETS: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            home_nets: DEFAULT_HOME_NETS
                .iter()
                .map(|n| n.parse().expect("a network"))
                .collect(),
            max_severity: u8::MAX,
            tlp: "amber".into(),
            categories: BTreeMap::new(),
        }
    }
}

/// Why a line is not a report.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Skip {
    /// Not an alert (another event type): nothing to report.
    #[error("not an alert")]
    NotAlert,
    /// An alert less severe than `max_severity`.
    #[error("severity {0} is above max_severity")]
    Minor(u8),
    /// Not an EVE record, or an alert without what a report needs.
    #[error("{0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct Record {
    event_type: Option<String>,
    timestamp: Option<String>,
    flow_id: Option<u64>,
    src_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dest_ip: Option<IpAddr>,
    dest_port: Option<u16>,
    proto: Option<String>,
    alert: Option<Alert>,
    http: Option<Http>,
}

#[derive(Deserialize)]
struct Alert {
    action: Option<String>,
    gid: Option<u64>,
    signature_id: Option<u64>,
    rev: Option<u64>,
    signature: Option<String>,
    category: Option<String>,
    severity: Option<u8>,
}

#[derive(Deserialize)]
struct Http {
    hostname: Option<String>,
    url: Option<String>,
}

/// The report category of a Suricata classtype description (Suricata's and Emerging
/// Threats' `classification.config`); `other` for the rest.
pub fn category_of(classtype: &str) -> &'static str {
    match classtype.trim().to_ascii_lowercase().as_str() {
        "detection of a network scan" | "attempted information leak" => "scan",
        "attempted denial of service"
        | "denial of service"
        | "detection of a denial of service attack" => "dos",
        "a network trojan was detected"
        | "malware command and control activity detected"
        | "exploit kit activity detected"
        | "crypto currency mining activity detected"
        | "possibly unwanted program detected"
        | "domain observed used for c2 detected"
        | "a suspicious filename was detected" => "malware",
        "attempted administrator privilege gain"
        | "successful administrator privilege gain"
        | "attempted user privilege gain"
        | "successful user privilege gain"
        | "unsuccessful user privilege gain"
        | "web application attack"
        | "executable code was detected"
        | "attempt to login by a default username and password"
        | "successful credential theft detected"
        | "targeted malicious activity was detected"
        | "large scale information leak"
        | "information leak" => "intrusion",
        "potential corporate privacy violation"
        | "potentially bad traffic"
        | "a suspicious string was detected"
        | "inappropriate content was detected"
        | "device retrieving external ip address detected" => "abuse",
        _ => "other",
    }
}

/// Suricata's timestamp as RFC 3339 (a timestamp without an offset, as very old versions
/// wrote, is taken as UTC).
fn rfc3339(ts: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat};
    DateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(ts))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, false))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true))
        })
}

impl Mapping {
    fn is_home(&self, ip: IpAddr) -> bool {
        self.home_nets.iter().any(|n| n.contains(&ip))
    }

    /// The report of one EVE line, or why there is none.
    pub fn report(&self, line: &[u8]) -> Result<ReportInput, Skip> {
        let r: Record = serde_json::from_slice(line)
            .map_err(|e| Skip::Malformed(format!("not an EVE JSON record: {e}")))?;
        if r.event_type.as_deref() != Some("alert") {
            return Err(Skip::NotAlert);
        }
        let missing = |what: &str| Skip::Malformed(format!("an alert without `{what}`"));
        let a = r.alert.ok_or_else(|| missing("alert"))?;
        let sid = a
            .signature_id
            .ok_or_else(|| missing("alert.signature_id"))?;
        let severity = a.severity.unwrap_or(3);
        if severity > self.max_severity {
            return Err(Skip::Minor(severity));
        }
        let ts = r.timestamp.ok_or_else(|| missing("timestamp"))?;
        let detected = rfc3339(&ts)
            .ok_or_else(|| Skip::Malformed(format!("timestamp `{ts}` is not Suricata's")))?;
        let src = r.src_ip.ok_or_else(|| missing("src_ip"))?;
        let dest = r.dest_ip.ok_or_else(|| missing("dest_ip"))?;
        // The affected host is ours; the other side is the indicator. Both ours (lateral
        // movement): the target. Neither: the destination, as the sensor saw it.
        let (host, other, other_port) = if self.is_home(src) && !self.is_home(dest) {
            (src, dest, r.dest_port)
        } else {
            (dest, src, r.dest_port)
        };
        let proto = r.proto.as_deref().map(str::to_ascii_lowercase);
        let (protocol, ports) = match proto.as_deref() {
            Some(p @ ("tcp" | "udp")) => (Some(p.to_owned()), other_port.into_iter().collect()),
            Some("icmp") => (Some("icmp".to_owned()), Vec::new()),
            _ => (None, Vec::new()),
        };
        let classtype = a.category.unwrap_or_default();
        let category = self
            .categories
            .get(&classtype)
            .map(String::as_str)
            .unwrap_or_else(|| category_of(&classtype))
            .to_owned();
        let gid = a.gid.unwrap_or(1);
        let rev = a.rev.unwrap_or(0);
        let signature = a.signature.unwrap_or_default();
        let endpoint = |ip: IpAddr, port: Option<u16>| match port {
            Some(p) if ip.is_ipv6() => format!("[{ip}]:{p}"),
            Some(p) => format!("{ip}:{p}"),
            None => ip.to_string(),
        };
        let description = format!(
            "Suricata alert [{gid}:{sid}:{rev}] {signature} ({}, severity {severity}, {}): {} -> {} {}",
            if classtype.is_empty() { "no classtype" } else { &classtype },
            a.action.as_deref().unwrap_or("allowed"),
            endpoint(src, r.src_port),
            endpoint(dest, r.dest_port),
            proto.as_deref().unwrap_or("?"),
        );
        let urls = r
            .http
            .and_then(|h| Some(format!("http://{}{}", h.hostname?, h.url?)))
            .filter(|u| u.len() <= 2048 && !u.chars().any(|c| c.is_control() || c == ' '))
            .into_iter()
            .collect();
        Ok(ReportInput {
            // One flow's alert of one rule at one instant is one report, however often the
            // line is read.
            id: r
                .flow_id
                .map(|f| format!("eve-{f}-{gid}-{sid}-{rev}-{}", detected)),
            detected,
            source: "ids".into(),
            host: host.to_string(),
            category,
            description,
            indicators: Indicators {
                addresses: vec![other],
                ports,
                protocol,
                hashes: Vec::new(),
                urls,
            },
            tlp: self.tlp.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alert of Suricata's "Eve JSON Format" page.
    const DOC_ALERT: &str = r#"{"timestamp":"2017-04-07T22:24:37.251547+0100","flow_id":586497171462735,"pcap_cnt":53381,"event_type":"alert","src_ip":"192.168.2.14","src_port":50096,"dest_ip":"209.53.113.5","dest_port":80,"proto":"TCP","metadata":{"flowbits":["http.dottedquadhost"]},"tx_id":4,"alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,"signature":"ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1","category":"Potentially Bad Traffic","severity":2},"app_proto":"http"}"#;

    #[test]
    fn the_documented_alert_becomes_a_report() {
        let r = Mapping::default().report(DOC_ALERT.as_bytes()).unwrap();
        assert_eq!(r.detected, "2017-04-07T22:24:37.251547+01:00");
        assert_eq!(r.host, "192.168.2.14", "the home address");
        assert_eq!(
            r.indicators.addresses,
            ["209.53.113.5".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.indicators.ports, [80]);
        assert_eq!(r.indicators.protocol.as_deref(), Some("tcp"));
        assert_eq!(r.category, "abuse");
        assert_eq!(r.source, "ids");
        assert!(
            r.description.contains("[1:2018358:10] ET HUNTING"),
            "{}",
            r.description
        );
        assert!(r.description.contains("severity 2"));
        assert_eq!(
            r.id.as_deref(),
            Some("eve-586497171462735-1-2018358-10-2017-04-07T22:24:37.251547+01:00")
        );
        // What the aggregator checks, it accepts.
        r.check().expect("a valid report");
    }

    #[test]
    fn other_records_and_minor_alerts_are_skipped() {
        let m = Mapping {
            max_severity: 2,
            ..Mapping::default()
        };
        for line in [
            r#"{"timestamp":"2017-04-07T22:24:37.251547+0100","event_type":"flow","src_ip":"1.1.1.1","dest_ip":"10.0.0.1"}"#,
            r#"{"timestamp":"2017-04-07T22:24:37.251547+0100","event_type":"stats","stats":{}}"#,
        ] {
            assert_eq!(m.report(line.as_bytes()).unwrap_err(), Skip::NotAlert);
        }
        let minor = DOC_ALERT.replace(r#""severity":2"#, r#""severity":3"#);
        assert_eq!(m.report(minor.as_bytes()).unwrap_err(), Skip::Minor(3));
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let m = Mapping::default();
        let err = |l: &str| m.report(l.as_bytes()).unwrap_err().to_string();
        assert!(err("{not json").contains("not an EVE JSON record"));
        assert!(err(r#"{"event_type":"alert"}"#).contains("`alert`"));
        assert!(err(&DOC_ALERT.replace("2017-04-07T22", "yesterday")).contains("timestamp"));
        assert!(err(&DOC_ALERT.replace("\"192.168.2.14\"", "\"x\"")).contains("not an EVE"));
    }

    #[test]
    fn the_affected_host_is_ours() {
        let m = Mapping::default();
        // Inbound: the destination is ours.
        let inbound = DOC_ALERT
            .replace("192.168.2.14", "203.0.113.9")
            .replace("209.53.113.5", "10.1.2.3");
        let r = m.report(inbound.as_bytes()).unwrap();
        assert_eq!(
            (r.host.as_str(), r.indicators.addresses[0].to_string()),
            ("10.1.2.3", "203.0.113.9".into())
        );
        // Categories: the built-in map and an override.
        let trojan = DOC_ALERT.replace("Potentially Bad Traffic", "A Network Trojan was detected");
        assert_eq!(m.report(trojan.as_bytes()).unwrap().category, "malware");
        let m2 = Mapping {
            categories: [(
                "A Network Trojan was detected".to_owned(),
                "intrusion".to_owned(),
            )]
            .into(),
            ..Mapping::default()
        };
        assert_eq!(m2.report(trojan.as_bytes()).unwrap().category, "intrusion");
    }
}
