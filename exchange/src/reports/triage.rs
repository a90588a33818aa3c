//! Triage: the configured rules colour a report green, yellow or red, from what was detected
//! and, once the employee answered the questionnaire, from the answers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Checked;
use crate::config::{Action, Colour, Rule};

/// The chosen choices of a questionnaire's answers, by question id.
pub type Choices = BTreeMap<String, Vec<String>>;

/// What the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The report's category.
    pub category: &'a str,
    /// Its source.
    pub source: &'a str,
    /// The affected host as an address, when it is one.
    pub host_ip: Option<IpAddr>,
    /// The answers' choices, once answered.
    pub answers: Option<&'a Choices>,
}

impl<'a> Facts<'a> {
    /// The facts of a report as filed (not answered yet).
    pub fn of(r: &'a Checked) -> Facts<'a> {
        Facts {
            category: &r.input.category,
            source: &r.input.source,
            host_ip: r.host_ip,
            answers: None,
        }
    }
}

/// Whether a rule's conditions, other than repetition, hold. A rule with `answers` holds only
/// once answered, when every question it names got one of its choices.
pub(crate) fn matches_static(rule: &Rule, f: &Facts<'_>) -> bool {
    (rule.categories.is_empty() || rule.categories.iter().any(|c| c == f.category))
        && (rule.sources.is_empty() || rule.sources.iter().any(|s| s == f.source))
        && (rule.hosts.is_empty()
            || f.host_ip
                .is_some_and(|ip| rule.hosts.iter().any(|n| n.contains(&ip))))
        && (rule.answers.is_empty()
            || f.answers.is_some_and(|a| {
                rule.answers.iter().all(|(q, wanted)| {
                    a.get(q)
                        .is_some_and(|got| got.iter().any(|g| wanted.contains(g)))
                })
            }))
}

/// Applies the rules. `repeats(window_secs)` counts the earlier reports on the same host in the
/// window before the detection time.
pub fn triage(
    rules: &[Rule],
    r: &Facts<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExchangeConfig;
    use crate::reports::input::tests::input;

    fn rules(toml_text: &str) -> Vec<Rule> {
        let c: ExchangeConfig = toml::from_str(toml_text).unwrap();
        c.validate().unwrap().rules
    }

    #[test]
    fn default_rules_colour_by_category_and_escalate_repeats() {
        let r = rules("");
        let t = |cat, repeats| {
            let checked = input(cat, "192.0.2.10").check().unwrap();
            let (c, fired) = triage(&r, &Facts::of(&checked), |_| repeats);
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
        let t = |host: &str| {
            let checked = input("scan", host).check().unwrap();
            triage(&r, &Facts::of(&checked), |_| 0)
        };
        let (c, f) = t("203.0.113.5");
        assert_eq!((c, f), (Colour::Red, vec!["customer-facing".to_owned()]));
        let (c, f) = t("198.51.100.1");
        assert_eq!((c, f), (Colour::Yellow, vec!["ids-yellow".to_owned()]));
        let (c, _) = t("web01.example");
        assert_eq!(c, Colour::Yellow, "a host name matches no network");
    }
}
