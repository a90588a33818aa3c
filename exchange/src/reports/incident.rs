//! A stored report as IODEF v2: an Incident for a partner's file or our own, or a document
//! of its own.

use std::net::IpAddr;

use super::StoredReport;
use crate::config::Tlp;
use crate::ExchangeError;

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
        // Ids are per reporter.
        let id = format!("report-{}/{}", self.reporter, self.id);
        let mut incident = iodef::ScanReport::new(csirt, &id, time(self.received)?)
            .restriction(restriction)
            .category(&self.category)
            .incident();
        incident.detect_time = Some(time(self.detected)?);
        incident.report_time = Some(time(self.received)?);
        incident.description = if self.description.is_empty() {
            vec![]
        } else if disclose_host {
            vec![ml(&self.description)]
        } else {
            // The reporter's text may name our host: it stays with us.
            vec![ml(&self.description.replace(&self.host, "[our host]"))]
        };
        if has_event {
            incident.event_data = vec![event];
        }
        Ok(incident)
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
