//! The intake's configuration (TOML): the aggregator to file with and the files to follow.
//!
//! ```toml
//! [aggregator]
//! url = "https://aggregator.example:8443"
//! token_file = "/etc/teiten/intake.token"   # a reporter token ([[exchange.reporter]])
//!
//! [[eve]]
//! path = "/var/log/suricata/eve.json"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::eve::Mapping;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where reports are filed.
    pub aggregator: AggregatorConfig,
    /// Directory of the position files of the followed files. Default
    /// `/var/lib/teiten-intake`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// How often the files are looked at, in milliseconds. Default 500.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Suricata EVE JSON files (`[[eve]]`).
    #[serde(default)]
    pub eve: Vec<EveConfig>,
    /// ClamAV detections spooled by clamd's `VirusEvent` (`[clamav]`).
    #[serde(default)]
    pub clamav: Option<ClamavConfig>,
}

/// `[clamav]`: the spool that `teiten-intake clamav-event` (clamd's `VirusEvent`) writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClamavConfig {
    /// The spool directory; the hook's `--spool`. Default `/var/spool/teiten-intake/clamav`.
    #[serde(default = "default_spool")]
    pub spool: PathBuf,
    /// TLP label of the reports. Default `amber`.
    #[serde(default)]
    pub tlp: Option<String>,
}

fn default_spool() -> PathBuf {
    PathBuf::from("/var/spool/teiten-intake/clamav")
}

impl ClamavConfig {
    /// How its events become reports.
    pub fn mapping(&self) -> crate::clamav::Mapping {
        crate::clamav::Mapping {
            tlp: self
                .tlp
                .clone()
                .unwrap_or_else(|| crate::clamav::Mapping::default().tlp),
        }
    }
}

/// `[aggregator]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Its base URL (`https://host:port`). Required.
    pub url: String,
    /// A file whose first line is the reporter token. Required.
    pub token_file: PathBuf,
    /// Extra CA certificates (PEM) to trust. Default: the web PKI only.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds per request. Default 10.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// `[[eve]]`: one Suricata EVE JSON file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EveConfig {
    /// The file Suricata writes (`eve-log` `filename`). Required.
    pub path: PathBuf,
    /// The position file. Default: `<state_dir>/<the path, / as _>.position`.
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// Our networks (Suricata's HOME_NET): the affected host of an alert is its address in
    /// them. Default RFC 1918, 100.64.0.0/10 and fc00::/7.
    #[serde(default)]
    pub home_nets: Option<Vec<IpNet>>,
    /// Alerts of a higher (less severe) severity are skipped; 1 is Suricata's highest.
    /// Default: none skipped.
    #[serde(default)]
    pub max_severity: Option<u8>,
    /// TLP label of the reports. Default `amber`.
    #[serde(default)]
    pub tlp: Option<String>,
    /// Report categories for classtype descriptions, over the built-in map
    /// (`"Potentially Bad Traffic" = "intrusion"`).
    #[serde(default)]
    pub categories: BTreeMap<String, String>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/teiten-intake")
}
fn default_poll_ms() -> u64 {
    500
}
fn default_timeout() -> u64 {
    10
}

/// A config error: the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key (`eve[0].tlp`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn bad(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Parses and checks a config; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| bad(origin, e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    /// Reads, parses and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(path.display().to_string(), e.to_string()))?;
        Config::parse(&text, &path.display().to_string())
    }

    fn check(&self) -> Result<(), ConfigError> {
        let u = &self.aggregator.url;
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(bad(
                "aggregator.url",
                format!("`{u}` is not an http(s) URL"),
            ));
        }
        if self.aggregator.timeout_secs == 0 {
            return Err(bad("aggregator.timeout_secs", "must be at least 1"));
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            return Err(bad("poll_ms", "must be 10 to 60000"));
        }
        if self.eve.is_empty() && self.clamav.is_none() {
            return Err(bad(
                "eve",
                "nothing to take in: no file to follow ([[eve]] with a path) and no [clamav]",
            ));
        }
        if let Some(t) = self.clamav.as_ref().and_then(|c| c.tlp.as_ref()) {
            if teiten_exchange::config::Tlp::parse(t).is_none() {
                return Err(bad("clamav.tlp", format!("`{t}` is not a TLP label")));
            }
        }
        let mut states = Vec::new();
        for (i, e) in self.eve.iter().enumerate() {
            let key = |k: &str| format!("eve[{i}].{k}");
            if let Some(t) = &e.tlp {
                if teiten_exchange::config::Tlp::parse(t).is_none() {
                    return Err(bad(key("tlp"), format!("`{t}` is not a TLP label")));
                }
            }
            for (classtype, c) in &e.categories {
                if !teiten_exchange::config::CATEGORIES.contains(&c.as_str()) {
                    return Err(bad(
                        key("categories"),
                        format!(
                            "`{classtype}` = `{c}`: not one of {}",
                            teiten_exchange::config::CATEGORIES.join(", ")
                        ),
                    ));
                }
            }
            if e.max_severity == Some(0) {
                return Err(bad(key("max_severity"), "1 (Suricata's highest) or more"));
            }
            let s = self.state_of(e);
            if states.contains(&s) {
                return Err(bad(
                    key("state"),
                    format!("{} is the position file of another [[eve]]", s.display()),
                ));
            }
            states.push(s);
        }
        Ok(())
    }

    /// The position file of a followed file.
    pub fn state_of(&self, e: &EveConfig) -> PathBuf {
        e.state.clone().unwrap_or_else(|| {
            let name: String = e
                .path
                .to_string_lossy()
                .trim_start_matches('/')
                .chars()
                .map(|c| if c == '/' { '_' } else { c })
                .collect();
            self.state_dir.join(format!("{name}.position"))
        })
    }
}

impl EveConfig {
    /// How its alerts become reports.
    pub fn mapping(&self) -> Mapping {
        let d = Mapping::default();
        Mapping {
            home_nets: self.home_nets.clone().unwrap_or(d.home_nets),
            max_severity: self.max_severity.unwrap_or(d.max_severity),
            tlp: self.tlp.clone().unwrap_or(d.tlp),
            categories: self.categories.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[aggregator]\nurl = \"https://a:8443\"\ntoken_file = \"/t\"\n\n[[eve]]\npath = \"/var/log/suricata/eve.json\"\n";

    #[test]
    fn defaults() {
        let c = Config::parse(MIN, "test").unwrap();
        assert_eq!(c.poll_ms, 500);
        assert_eq!(
            c.state_of(&c.eve[0]),
            Path::new("/var/lib/teiten-intake/var_log_suricata_eve.json.position")
        );
        let m = c.eve[0].mapping();
        assert_eq!(
            (m.tlp.as_str(), m.max_severity, m.home_nets.len()),
            ("amber", 255, 5)
        );
    }

    #[test]
    fn the_example_is_the_defaults() {
        let c = Config::parse(include_str!("../teiten-intake.example.toml"), "example").unwrap();
        let d = Config::parse(MIN, "test").unwrap();
        assert_eq!((c.poll_ms, &c.state_dir), (d.poll_ms, &d.state_dir));
        assert_eq!(c.aggregator.timeout_secs, d.aggregator.timeout_secs);
        let (m, n) = (c.eve[0].mapping(), d.eve[0].mapping());
        assert_eq!(
            (m.home_nets, m.tlp, m.max_severity),
            (n.home_nets, n.tlp, n.max_severity)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = |extra: &str| {
            Config::parse(&format!("{MIN}{extra}"), "test")
                .unwrap_err()
                .to_string()
        };
        assert!(err("tlp = \"pink\"\n").starts_with("eve[0].tlp: `pink`"));
        assert!(err("max_severity = 0\n").starts_with("eve[0].max_severity"));
        assert!(err("[eve.categories]\n\"Misc activity\" = \"spam\"\n")
            .contains("eve[0].categories: `Misc activity` = `spam`"));
        assert!(
            err("\n[[eve]]\npath = \"/var/log/suricata/eve.json\"\n").starts_with("eve[1].state")
        );
        assert!(err("colour = 1\n").contains("unknown field `colour`"));
        let no_eve = Config::parse(
            "[aggregator]\nurl = \"https://a\"\ntoken_file = \"/t\"\n",
            "x",
        )
        .unwrap_err();
        assert!(no_eve.to_string().starts_with("eve: nothing to take in"));
        let clamav_only = "[aggregator]\nurl = \"https://a\"\ntoken_file = \"/t\"\n[clamav]\n";
        let c = Config::parse(clamav_only, "x").unwrap();
        assert_eq!(
            c.clamav.as_ref().unwrap().spool,
            Path::new("/var/spool/teiten-intake/clamav")
        );
        assert_eq!(c.clamav.unwrap().mapping().tlp, "amber");
        let bad_tlp = Config::parse(&format!("{clamav_only}tlp = \"x\"\n"), "x").unwrap_err();
        assert!(bad_tlp.to_string().starts_with("clamav.tlp: `x`"));
    }
}
