//! Scan reports: the Incident and EventData a CSIRT sends a partner about scanning sources.
//!
//! # The target is never disclosed
//!
//! A destination port needs a target `System` with a `Node`, and a `Node` must hold an
//! `Address` (RFC 7970 text and erratum). The sensor addresses must stay secret, so the target
//! is written as the covering network of the source's family: `Address category="ipv4-net"`
//! with value [`UNDISCLOSED_V4`] (`0.0.0.0/0`), or `category="ipv6-net"` with
//! [`UNDISCLOSED_V6`] (`::/0`). That is a true statement (the target is somewhere in the
//! Internet), valid against the schema and the text, parsed as a network by any consumer, and
//! it reveals nothing. The target System also carries a Description saying so.
//!
//! Each event is one `EventData`: `DetectTime`, and a `Flow` with a source System (address,
//! `Service ip-protocol` with the source port) and the target System (undisclosed address,
//! `Service ip-protocol` with the destination port). Events of one source can be grouped under
//! one parent `EventData` holding the source, the time span and one child `EventData` per
//! event ([`ScanEvent::grouped`]).

use std::net::IpAddr;

use crate::types::DateTime;
use crate::v2;

/// Target address written for an IPv4 source: the sensor address is not disclosed.
pub const UNDISCLOSED_V4: &str = "0.0.0.0/0";
/// Target address written for an IPv6 source: the sensor address is not disclosed.
pub const UNDISCLOSED_V6: &str = "::/0";

const WITHHELD: &str = "Target address withheld by the reporting CSIRT";

/// Builder of the Incident header of a scan report (everything but the EventData).
#[derive(Debug, Clone)]
pub struct ScanReport {
    incident: v2::Incident,
}

impl ScanReport {
    /// A scan report by the CSIRT `csirt` (its name, also the IncidentID namespace, e.g.
    /// `csirt.example.org`) with incident number `incident_id`, generated at `generated`.
    pub fn new(csirt: &str, incident_id: &str, generated: DateTime) -> Self {
        let incident = v2::Incident {
            purpose: Some(v2::IncidentPurpose::Reporting),
            incident_id: Some(v2::IncidentID {
                name: Some(csirt.to_owned()),
                value: incident_id.to_owned(),
                ..Default::default()
            }),
            generation_time: Some(generated),
            description: vec![ml("Network scanning observed by our sensors")],
            assessment: vec![v2::Assessment {
                incident_category: vec![ml("scanning")],
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
            ..Default::default()
        };
        ScanReport { incident }
    }

    /// Add the CSIRT's e-mail address to its Contact.
    pub fn csirt_email(mut self, email: &str) -> Self {
        if let Some(c) = self.incident.contact.first_mut() {
            c.email.push(v2::Email {
                email_to: Some(email.to_owned()),
                ..Default::default()
            });
        }
        self
    }

    /// Replace the Contact (role, type and at least a name are expected).
    pub fn contact(mut self, contact: v2::Contact) -> Self {
        self.incident.contact = vec![contact];
        self
    }

    /// Set the Incident's `restriction`.
    pub fn restriction(mut self, r: v2::Restriction) -> Self {
        self.incident.restriction = Some(r);
        self
    }

    /// Set the restriction from a TLP label (`clear`, `white`, `green`, `amber`,
    /// `amber+strict`, `red`; case-insensitive, `TLP:` prefix allowed). TLP 1.0 colours map to
    /// the schema's values; TLP 2.0 `clear` and `amber+strict` are written as
    /// `restriction="ext-value" ext-restriction="..."`. `None` for an unknown label.
    pub fn tlp(self, label: &str) -> Option<Self> {
        let l = label.trim().to_ascii_lowercase();
        let l = l.strip_prefix("tlp:").unwrap_or(&l);
        let r = match l {
            "white" => v2::Restriction::White,
            "green" => v2::Restriction::Green,
            "amber" => v2::Restriction::Amber,
            "red" => v2::Restriction::Red,
            "clear" | "amber+strict" => v2::Restriction::Ext(l.to_owned()),
            _ => return None,
        };
        Some(self.restriction(r))
    }

    /// Replace the Incident's Description.
    pub fn description(mut self, text: &str) -> Self {
        self.incident.description = vec![ml(text)];
        self
    }

    /// Replace the Assessment's IncidentCategory (default `scanning`).
    pub fn category(mut self, text: &str) -> Self {
        if let Some(a) = self.incident.assessment.first_mut() {
            a.incident_category = vec![ml(text)];
        }
        self
    }

    /// Set the Incident's StartTime and EndTime (e.g. the day covered by the report).
    pub fn time_span(mut self, start: DateTime, end: DateTime) -> Self {
        self.incident.start_time = Some(start);
        self.incident.end_time = Some(end);
        self
    }

    /// The Incident header, without EventData: pass it to
    /// [`crate::StreamWriter::begin_incident`], then write one EventData per event or source.
    pub fn incident(&self) -> v2::Incident {
        self.incident.clone()
    }
}

/// One source's probes of one protocol and destination port over a span of time (a partner's
/// aggregated records): an `EventData` with StartTime and EndTime (the first and last probe),
/// the source System with a `Counter` of unit `packet` (type `counter`), and the undisclosed
/// target System with a `Counter` of unit `host`: how many distinct destinations were probed,
/// never which. Under RFC 5070 the counters become `Counter type="packet"` and `type="host"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanAggregate {
    /// Source address (the scanner).
    pub source: IpAddr,
    /// The autonomous system announcing the source, if known: a second `Address` of the
    /// source Node, `category="asn"`.
    pub asn: Option<u32>,
    /// IANA protocol number.
    pub protocol: u8,
    /// Destination port (TCP/UDP), if any.
    pub destination_port: Option<u16>,
    /// The first probe.
    pub first: DateTime,
    /// The last probe.
    pub last: DateTime,
    /// Probes (packets).
    pub packets: u64,
    /// Distinct destinations probed.
    pub destinations: u64,
}

impl ScanAggregate {
    /// The EventData of this aggregate.
    pub fn event_data(&self) -> v2::EventData {
        let counter = |unit, value: u64| v2::Counter {
            kind: Some(v2::CounterType::Counter),
            unit: Some(unit),
            value: Some(crate::types::Float(value as f64)),
            ..Default::default()
        };
        let mut source = source_system(self.source, self.asn, self.protocol, None);
        source.counter = vec![counter(v2::CounterUnit::Packet, self.packets)];
        let mut target = target_system(self.source, self.protocol, self.destination_port);
        target.counter = vec![counter(v2::CounterUnit::Host, self.destinations)];
        v2::EventData {
            start_time: Some(self.first.clone()),
            end_time: Some(self.last.clone()),
            flow: vec![v2::Flow {
                system: vec![source, target],
            }],
            ..Default::default()
        }
    }
}

/// One observed scan packet or probe: source address and port, destination port, protocol,
/// time. The destination address is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEvent {
    /// Source address (the scanner).
    pub source: IpAddr,
    /// The autonomous system announcing the source, if known: a second `Address` of the
    /// source Node, `category="asn"` (RFC 7970 3.18.1, RFC 5070 3.16.1).
    pub asn: Option<u32>,
    /// Source port (TCP/UDP), if any.
    pub source_port: Option<u16>,
    /// Destination port (TCP/UDP), if any.
    pub destination_port: Option<u16>,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub protocol: u8,
    /// When the event was seen.
    pub time: DateTime,
}

impl ScanEvent {
    /// A TCP probe.
    pub fn tcp(source: IpAddr, source_port: u16, destination_port: u16, time: DateTime) -> Self {
        ScanEvent {
            source,
            asn: None,
            source_port: Some(source_port),
            destination_port: Some(destination_port),
            protocol: 6,
            time,
        }
    }

    /// A UDP probe.
    pub fn udp(source: IpAddr, source_port: u16, destination_port: u16, time: DateTime) -> Self {
        ScanEvent {
            protocol: 17,
            ..Self::tcp(source, source_port, destination_port, time)
        }
    }

    /// The EventData for this single event.
    pub fn event_data(&self) -> v2::EventData {
        v2::EventData {
            detect_time: Some(self.time.clone()),
            flow: vec![v2::Flow {
                system: vec![
                    source_system(self.source, self.asn, self.protocol, self.source_port),
                    target_system(self.source, self.protocol, self.destination_port),
                ],
            }],
            ..Default::default()
        }
    }

    /// [`ScanEvent::event_data`] of an ICMP event, with its type and code as the target
    /// Service's `ProtoType` and `ProtoCode` (what was sent to the sensor).
    pub fn icmp_event_data(&self, kind: u16, code: u16) -> v2::EventData {
        let mut e = self.event_data();
        for s in e.flow.iter_mut().flat_map(|f| &mut f.system) {
            if s.category == Some(v2::SystemCategory::Target) {
                for svc in &mut s.service {
                    svc.proto_type = Some(i64::from(kind));
                    svc.proto_code = Some(i64::from(code));
                }
            }
        }
        e
    }

    /// The scan events an EventData describes (the inverse of [`ScanEvent::event_data`] and
    /// [`ScanEvent::grouped`], and a convenient reading of partners' reports): one event per
    /// IP source address of each Flow, with the source's first Port, the target's Port (one
    /// event per port of a target Portlist, at most 65,536), `ip-protocol`, and the time
    /// (DetectTime, else StartTime, else the enclosing EventData's). Nested EventData are
    /// included; sources that are not IP addresses and flows without a time are skipped, and so
    /// is a target-less Flow of an EventData that has children (the head of a group).
    pub fn from_event_data(e: &v2::EventData) -> Vec<ScanEvent> {
        let mut out = Vec::new();
        collect(e, None, &mut out);
        out
    }

    /// The scan events of a whole Incident: [`ScanEvent::from_event_data`] over its EventData,
    /// with the Incident's DetectTime, StartTime, ReportTime or GenerationTime (in that order)
    /// for EventData that carry no time of their own.
    pub fn from_incident(i: &v2::Incident) -> Vec<ScanEvent> {
        let time = i
            .detect_time
            .as_ref()
            .or(i.start_time.as_ref())
            .or(i.report_time.as_ref())
            .or(i.generation_time.as_ref());
        let mut out = Vec::new();
        for e in &i.event_data {
            collect(e, time, &mut out);
        }
        out
    }

    /// One EventData for a source: its address, the time span of `events`, and one child
    /// EventData per event (in the given order). Events from other sources are skipped.
    /// `None` when no event has that source.
    pub fn grouped(source: IpAddr, events: &[ScanEvent]) -> Option<v2::EventData> {
        let mine: Vec<&ScanEvent> = events.iter().filter(|e| e.source == source).collect();
        let start = mine.iter().map(|e| &e.time).min_by_key(|t| t.to_utc())?;
        let end = mine.iter().map(|e| &e.time).max_by_key(|t| t.to_utc())?;
        // The AS of the group's source, if its events agree on one.
        let asn = mine[0]
            .asn
            .filter(|a| mine.iter().all(|e| e.asn == Some(*a)));
        let mut system = source_system(source, asn, 0, None);
        system.service.clear();
        Some(v2::EventData {
            description: vec![ml(&format!("{} scan events from {source}", mine.len()))],
            start_time: Some(start.clone()),
            end_time: Some(end.clone()),
            flow: vec![v2::Flow {
                system: vec![system],
            }],
            event_data: mine.iter().map(|e| e.event_data()).collect(),
            ..Default::default()
        })
    }
}

/// Writes `ev` as [`ScanEvent::event_data`] (or [`ScanEvent::icmp_event_data`] with `icmp`)
/// would be written, element by element, without building it: the per-packet hot path of
/// [`crate::StreamWriter::write_scan_event`]. `ip_protocol` is the Service attribute's name
/// of the document's version (`ip-protocol`, RFC 5070's `ip_protocol`), the only difference
/// between the two versions' bytes of a scan event.
pub(crate) fn write_scan_event<W: std::io::Write>(
    w: &mut crate::write::XmlOut<W>,
    ev: &ScanEvent,
    icmp: Option<(u16, u16)>,
    ip_protocol: &str,
) -> std::io::Result<()> {
    let protocol = i64::from(ev.protocol);
    let service = |w: &mut crate::write::XmlOut<W>, port: Option<u16>, icmp: Option<(u16, u16)>| {
        w.start("Service")?;
        w.attr_display(ip_protocol, &protocol)?;
        if let Some(p) = port {
            w.leaf_display("Port", &p)?;
        }
        if let Some((kind, code)) = icmp {
            w.leaf_display("ProtoType", &i64::from(kind))?;
            w.leaf_display("ProtoCode", &i64::from(code))?;
        }
        w.end("Service")
    };
    let address = |w: &mut crate::write::XmlOut<W>, category: &str, value: &str| {
        w.start("Address")?;
        w.attr("category", category)?;
        w.text(value)?;
        w.end("Address")
    };
    w.start("EventData")?;
    w.leaf_display("DetectTime", &ev.time)?;
    w.start("Flow")?;
    w.start("System")?;
    w.attr("category", v2::SystemCategory::Source.as_str())?;
    // The address's text on the stack: no allocation per event.
    let mut text = [0u8; 45];
    let len = {
        let mut cur = std::io::Cursor::new(&mut text[..]);
        std::io::Write::write_fmt(&mut cur, format_args!("{}", ev.source))?;
        cur.position() as usize
    };
    let category = match ev.source {
        IpAddr::V4(_) => v2::AddressCategory::Ipv4Addr,
        IpAddr::V6(_) => v2::AddressCategory::Ipv6Addr,
    };
    let value = std::str::from_utf8(&text[..len]).unwrap_or_default();
    w.start("Node")?;
    address(w, category.as_str(), value)?;
    if let Some(asn) = ev.asn {
        w.start("Address")?;
        w.attr("category", v2::AddressCategory::Asn.as_str())?;
        w.text_display(&asn)?;
        w.end("Address")?;
    }
    w.end("Node")?;
    service(w, ev.source_port, None)?;
    w.end("System")?;
    w.start("System")?;
    w.attr("category", v2::SystemCategory::Target.as_str())?;
    let (category, value) = undisclosed(ev.source);
    w.start("Node")?;
    address(w, category.as_str(), value)?;
    w.end("Node")?;
    service(w, ev.destination_port, icmp)?;
    w.start("Description")?;
    w.text(WITHHELD)?;
    w.end("Description")?;
    w.end("System")?;
    w.end("Flow")?;
    w.end("EventData")
}

fn collect(e: &v2::EventData, inherited: Option<&DateTime>, out: &mut Vec<ScanEvent>) {
    let time = e
        .detect_time
        .as_ref()
        .or(e.start_time.as_ref())
        .or(inherited);
    if let Some(time) = time {
        for f in &e.flow {
            let is = |s: &v2::System, c: v2::SystemCategory| s.category.as_ref() == Some(&c);
            let target = f.system.iter().find(|s| is(s, v2::SystemCategory::Target));
            if target.is_none() && !e.event_data.is_empty() {
                // The parent of a group names the source only; its children are the events.
                continue;
            }
            let tservice = target.and_then(|t| t.service.first());
            let mut dports: Vec<Option<u16>> = match tservice {
                Some(s) => match (&s.port, &s.portlist) {
                    (Some(p), _) => vec![Some(*p)],
                    (None, Some(l)) => l
                        .ranges()
                        .iter()
                        .flat_map(|&(a, b)| a..=b)
                        .take(1 << 16)
                        .map(Some)
                        .collect(),
                    (None, None) => vec![None],
                },
                None => vec![None],
            };
            if dports.is_empty() {
                dports.push(None);
            }
            for src in f
                .system
                .iter()
                .filter(|s| is(s, v2::SystemCategory::Source))
            {
                let sservice = src.service.first();
                let protocol = tservice
                    .and_then(|s| s.ip_protocol)
                    .or(sservice.and_then(|s| s.ip_protocol))
                    .and_then(|p| u8::try_from(p).ok())
                    .unwrap_or(0);
                let sport = sservice.and_then(|s| s.port);
                let Some(node) = &src.node else { continue };
                // The node's AS, where it names one (`Address category="asn"`).
                let asn = node.choice.iter().find_map(|c| match c {
                    v2::NodeChoice::Address(a) if a.category == v2::AddressCategory::Asn => {
                        a.value.trim().parse::<u32>().ok()
                    }
                    _ => None,
                });
                for c in &node.choice {
                    let v2::NodeChoice::Address(a) = c else {
                        continue;
                    };
                    let Ok(ip) = a.value.trim().parse::<IpAddr>() else {
                        continue;
                    };
                    for d in &dports {
                        out.push(ScanEvent {
                            source: ip,
                            asn,
                            source_port: sport,
                            destination_port: *d,
                            protocol,
                            time: time.clone(),
                        });
                    }
                }
            }
        }
    }
    for child in &e.event_data {
        collect(child, time, out);
    }
}

fn ml(s: &str) -> v2::MLString {
    v2::MLString {
        value: s.to_owned(),
        ..Default::default()
    }
}

fn address(a: IpAddr) -> v2::Address {
    v2::Address {
        category: match a {
            IpAddr::V4(_) => v2::AddressCategory::Ipv4Addr,
            IpAddr::V6(_) => v2::AddressCategory::Ipv6Addr,
        },
        value: match a {
            IpAddr::V4(v4) => ipv4_text(v4),
            IpAddr::V6(v6) => v6.to_string(),
        },
        ..Default::default()
    }
}

/// Dotted-quad text of an IPv4 address (the same as `Display`, without `fmt`).
fn ipv4_text(a: std::net::Ipv4Addr) -> String {
    let mut s = String::with_capacity(15);
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

fn service(protocol: u8, port: Option<u16>) -> v2::Service {
    v2::Service {
        ip_protocol: Some(i64::from(protocol)),
        port,
        ..Default::default()
    }
}

fn source_system(a: IpAddr, asn: Option<u32>, protocol: u8, port: Option<u16>) -> v2::System {
    let mut choice = vec![v2::NodeChoice::Address(address(a))];
    if let Some(asn) = asn {
        choice.push(v2::NodeChoice::Address(v2::Address {
            category: v2::AddressCategory::Asn,
            value: asn.to_string(),
            ..Default::default()
        }));
    }
    v2::System {
        category: Some(v2::SystemCategory::Source),
        node: Some(v2::Node {
            choice,
            ..Default::default()
        }),
        service: vec![service(protocol, port)],
        ..Default::default()
    }
}

/// The target address written for a source of that family: its covering network.
fn undisclosed(source: IpAddr) -> (v2::AddressCategory, &'static str) {
    match source {
        IpAddr::V4(_) => (v2::AddressCategory::Ipv4Net, UNDISCLOSED_V4),
        IpAddr::V6(_) => (v2::AddressCategory::Ipv6Net, UNDISCLOSED_V6),
    }
}

fn target_system(source: IpAddr, protocol: u8, port: Option<u16>) -> v2::System {
    let (category, value) = undisclosed(source);
    v2::System {
        category: Some(v2::SystemCategory::Target),
        node: Some(v2::Node {
            choice: vec![v2::NodeChoice::Address(v2::Address {
                category,
                value: value.to_owned(),
                ..Default::default()
            })],
            ..Default::default()
        }),
        service: vec![service(protocol, port)],
        description: vec![ml(WITHHELD)],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv4_text_matches_display() {
        let mut x: u32 = 0;
        for _ in 0..200_000 {
            let a = std::net::Ipv4Addr::from(x);
            assert_eq!(super::ipv4_text(a), a.to_string());
            x = x.wrapping_mul(2_654_435_761).wrapping_add(12_345);
        }
        for a in [[0, 0, 0, 0], [255, 255, 255, 255], [10, 100, 9, 99]] {
            let a = std::net::Ipv4Addr::from(a);
            assert_eq!(super::ipv4_text(a), a.to_string());
        }
    }
}
