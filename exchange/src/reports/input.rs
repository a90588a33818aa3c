//! A report as filed: its fields checked, its id.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Tlp, CATEGORIES, SOURCES};
use crate::ExchangeError;
use teiten_store::proto::Proto;

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

fn invalid(field: &str, reason: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Invalid(format!("`{field}`: {reason}"))
}

/// A report checked, before triage.
#[derive(Debug, Clone)]
pub struct Checked {
    pub(super) input: ReportInput,
    pub(super) detected: i64,
    pub(super) host_ip: Option<IpAddr>,
    pub(super) protocol: u8,
    pub(super) tlp: Tlp,
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
        let protocol = match i.protocol.as_deref().map(|p| (p, Proto::parse(p))) {
            None => Proto::Tcp.number(),
            Some((_, Some(p @ (Proto::Tcp | Proto::Udp | Proto::Icmp)))) => p.number(),
            Some((p, _)) => {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) fn input(category: &str, host: &str) -> ReportInput {
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
}
