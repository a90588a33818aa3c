//! Triage: the configured rules colour a checked report green, yellow or red.

use super::Checked;
use crate::config::{Action, Colour, Rule};

/// Whether a rule's conditions, other than repetition, hold.
pub(super) fn matches_static(rule: &Rule, r: &Checked) -> bool {
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
}
