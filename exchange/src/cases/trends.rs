//! Monthly trends of the internal detections: how many, by colour (after the answers and any
//! override), source, category, the employee's department, and the route and cause of each
//! infection as the employees answered them (each choice question of each questionnaire:
//! for the default one, who owns the medium, where it was used and whether it was scanned).
//! Counted in ClickHouse by month and read as a stream, so memory stays with the number of
//! distinct labels, not of reports.
//!
//! The analyst pages draw them ([`Trends`] as JSON from the aggregator), the CSV download is
//! [`Trends::csv`], and the monthly summary mail [`Trends::summary`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::config::{QuestionKind, Questionnaire};
use crate::ExchangeError;
use teiten_store::queries;

/// The longest period asked for.
pub const MAX_MONTHS: usize = 36;
/// Most groups (month, source, category, colour, department, answers) read.
const MAX_GROUPS: u32 = 1_000_000;

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || {
            format!(
                "`{}` is not a month (YYYY-MM)",
                s.chars().take(32).collect::<String>()
            )
        };
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// The month of a time (Unix seconds, UTC).
    pub fn of(ts: i64) -> Month {
        let d = teiten_store::time::date_of(ts);
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    /// Its first second (Unix seconds, UTC).
    pub fn start(self) -> i64 {
        let d = NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a checked month");
        Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .timestamp()
    }

    /// The month after.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                month: self.month + 1,
                ..self
            }
        }
    }

    /// The month before.
    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                month: self.month - 1,
                ..self
            }
        }
    }

    /// `YYYYMM`, as ClickHouse's `toYYYYMM`.
    pub fn number(self) -> u32 {
        self.year as u32 * 100 + self.month
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The months of a trend, first and last included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// The first month.
    pub from: Month,
    /// The last month.
    pub to: Month,
}

impl Period {
    /// `from` and `to` as `YYYY-MM`; by default the twelve months up to the current one.
    /// Errors name the parameter.
    pub fn parse(from: Option<&str>, to: Option<&str>, now: i64) -> Result<Period, String> {
        let to = match to {
            Some(t) => Month::parse(t).map_err(|e| format!("to: {e}"))?,
            None => Month::of(now),
        };
        let from = match from {
            Some(f) => Month::parse(f).map_err(|e| format!("from: {e}"))?,
            None => (0..11).fold(to, |m, _| m.prev()),
        };
        if from > to {
            return Err(format!("from: {from} is after to ({to})"));
        }
        let p = Period { from, to };
        if p.months().len() > MAX_MONTHS {
            return Err(format!("from, to: at most {MAX_MONTHS} months"));
        }
        Ok(p)
    }

    /// One month.
    pub fn month(m: Month) -> Period {
        Period { from: m, to: m }
    }

    /// Its months, in order.
    pub fn months(&self) -> Vec<Month> {
        let mut out = vec![self.from];
        while *out.last().expect("one") < self.to && out.len() <= MAX_MONTHS {
            let n = out.last().expect("one").next();
            out.push(n);
        }
        out
    }
}

/// One group of [`queries::cases_monthly`].
#[derive(Debug, Clone, Row, Deserialize)]
struct MonthlyRow {
    month: u32,
    source: String,
    category: String,
    colour: String,
    department: String,
    questionnaire: String,
    answers: String,
    reports: u64,
}

/// The trends of a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trends {
    /// The months, `YYYY-MM`.
    pub months: Vec<String>,
    /// Reports per month.
    pub total: Vec<u64>,
    /// The breakdowns: colour, source, category, department, then each choice question.
    pub breakdowns: Vec<Breakdown>,
}

/// Reports per month by one property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    /// `colour`, `source`, `category`, `department` or `answer:<questionnaire>.<question>`.
    pub key: String,
    /// What it counts, for people.
    pub title: String,
    /// For a multiple-choice question: a report counts once for each choice picked.
    pub multiple: bool,
    /// Its values, most reports first (colours in their order; "not answered" last).
    pub series: Vec<Series>,
}

/// Reports per month of one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// The stored value (a colour, a source, a choice id; empty: none).
    pub value: String,
    /// What people read.
    pub label: String,
    /// Reports per month.
    pub counts: Vec<u64>,
    /// Reports in the period.
    pub total: u64,
}

/// Label of an answer-less value in a breakdown.
const NOT_ANSWERED: &str = "(not answered)";

/// Counts the internal reports detected in `period`. `questionnaires` give the questions'
/// kinds and texts (for a questionnaire no longer configured, the ids are the labels).
pub async fn monthly(
    client: &Client,
    db: &str,
    questionnaires: &[Questionnaire],
    period: Period,
) -> Result<Trends, ExchangeError> {
    let months = period.months();
    let mut acc = Acc::new(&months, questionnaires);
    let mut cursor = queries::cases_monthly(
        db,
        period.from.start(),
        period.to.next().start(),
        MAX_GROUPS,
    )
    .query(client)
    .and_then(|q| q.fetch::<MonthlyRow>())
    .map_err(|e| ExchangeError::ch("reading the monthly trends", e))?;
    while let Some(row) = cursor
        .next()
        .await
        .map_err(|e| ExchangeError::ch("reading the monthly trends", e))?
    {
        acc.add(&row);
    }
    Ok(acc.finish())
}

/// The choice answers of one case: question id to the choices picked.
type Picked = BTreeMap<String, Vec<String>>;

/// Counters by breakdown key, value and month index.
struct Acc<'a> {
    questionnaires: &'a [Questionnaire],
    months: Vec<Month>,
    total: Vec<u64>,
    counts: BTreeMap<String, BTreeMap<String, Vec<u64>>>,
    /// Reports by questionnaire, month index and choice answers (empty: not answered). Free
    /// text is left out, so this holds one entry per combination of choices, not per report.
    answered: BTreeMap<(String, usize, Picked), u64>,
}

impl<'a> Acc<'a> {
    fn new(months: &[Month], questionnaires: &'a [Questionnaire]) -> Acc<'a> {
        Acc {
            questionnaires,
            months: months.to_vec(),
            total: vec![0; months.len()],
            counts: BTreeMap::new(),
            answered: BTreeMap::new(),
        }
    }

    fn questionnaire(&self, name: &str) -> Option<&'a Questionnaire> {
        self.questionnaires.iter().find(|q| q.name == name)
    }

    fn bump(&mut self, key: &str, value: &str, i: usize, n: u64) {
        let months = self.total.len();
        let v = self
            .counts
            .entry(key.to_owned())
            .or_default()
            .entry(value.to_owned())
            .or_insert_with(|| vec![0; months]);
        v[i] += n;
    }

    fn add(&mut self, r: &MonthlyRow) {
        let Some(i) = self.months.iter().position(|m| m.number() == r.month) else {
            return;
        };
        let n = r.reports;
        self.total[i] += n;
        self.bump("colour", &r.colour, i, n);
        self.bump("source", &r.source, i, n);
        self.bump("category", &r.category, i, n);
        self.bump("department", &r.department, i, n);
        if r.questionnaire.is_empty() {
            return;
        }
        // `{"question": ["choice", ...]}`, as `store::answer` writes it.
        let mut picked: Picked = serde_json::from_str(&r.answers).unwrap_or_default();
        if let Some(q) = self.questionnaire(&r.questionnaire) {
            picked.retain(|id, _| q.question(id).is_some_and(|x| x.kind != QuestionKind::Text));
        }
        *self
            .answered
            .entry((r.questionnaire.clone(), i, picked))
            .or_default() += n;
    }

    fn finish(mut self) -> Trends {
        let zero = vec![0; self.total.len()];
        let mut breakdowns = Vec::new();
        for (key, title, order) in [
            (
                "colour",
                "Colour (after the answers and overrides)",
                &["green", "yellow", "red"][..],
            ),
            ("source", "Source", &[][..]),
            ("category", "Category", &[][..]),
            ("department", "Department", &[][..]),
        ] {
            let mut values = self.counts.remove(key).unwrap_or_default();
            for c in order {
                values
                    .entry((*c).to_owned())
                    .or_insert_with(|| zero.clone());
            }
            let none = format!("(no {key})");
            let label = |v: &str| {
                if v.is_empty() {
                    none.clone()
                } else {
                    v.to_owned()
                }
            };
            breakdowns.push(Breakdown {
                key: key.to_owned(),
                title: title.to_owned(),
                multiple: false,
                series: series(values, &label, order),
            });
        }
        // Each questionnaire's choice questions (in its order when it is configured): every
        // report asked it counts, under its choices or as not answered.
        let names: Vec<String> = {
            let mut n: Vec<String> = self.answered.keys().map(|k| k.0.clone()).collect();
            n.dedup();
            n
        };
        for name in names {
            let q = self.questionnaire(&name);
            let entries: Vec<(usize, &Picked, u64)> = self
                .answered
                .iter()
                .filter(|(k, _)| k.0 == name)
                .map(|(k, n)| (k.1, &k.2, *n))
                .collect();
            let ids: Vec<String> = match q {
                Some(q) => q
                    .questions
                    .iter()
                    .filter(|x| x.kind != QuestionKind::Text)
                    .map(|x| x.id.clone())
                    .collect(),
                None => {
                    let mut ids: Vec<String> =
                        entries.iter().flat_map(|e| e.1.keys().cloned()).collect();
                    ids.sort();
                    ids.dedup();
                    ids
                }
            };
            for id in ids {
                let question = q.and_then(|q| q.question(&id));
                let mut values: BTreeMap<String, Vec<u64>> = BTreeMap::new();
                // Every choice is shown, picked or not; answers of a choice since removed stay
                // under their id.
                for c in question.map(|x| &x.choices[..]).unwrap_or_default() {
                    values.insert(c.id.clone(), zero.clone());
                }
                for (i, picked, n) in &entries {
                    let chosen: &[String] = picked.get(&id).map(|v| &v[..]).unwrap_or(&[]);
                    let chosen = if chosen.is_empty() {
                        &[String::new()][..]
                    } else {
                        chosen
                    };
                    for c in chosen {
                        values.entry(c.clone()).or_insert_with(|| zero.clone())[*i] += n;
                    }
                }
                let label = |v: &str| {
                    if v.is_empty() {
                        return NOT_ANSWERED.to_owned();
                    }
                    question
                        .and_then(|x| x.choices.iter().find(|c| c.id == v))
                        .map(|c| c.text.clone())
                        .unwrap_or_else(|| v.to_owned())
                };
                let order: Vec<&str> = question
                    .map(|x| x.choices.iter().map(|c| c.id.as_str()).collect())
                    .unwrap_or_default();
                breakdowns.push(Breakdown {
                    title: match question {
                        Some(x) => format!("{name}: {}", x.text),
                        None => format!("{name}: {id}"),
                    },
                    key: format!("answer:{name}.{id}"),
                    multiple: question.is_some_and(|x| x.kind == QuestionKind::Multiple),
                    series: series(values, &label, &order),
                });
            }
        }
        Trends {
            months: self.months.iter().map(|m| m.to_string()).collect(),
            total: self.total,
            breakdowns,
        }
    }
}

/// The series of a breakdown: the values in `order` first, the others by reports, none last.
fn series(
    values: BTreeMap<String, Vec<u64>>,
    label: &dyn Fn(&str) -> String,
    order: &[&str],
) -> Vec<Series> {
    let mut out: Vec<Series> = values
        .into_iter()
        .map(|(value, counts)| Series {
            label: label(&value),
            total: counts.iter().sum(),
            value,
            counts,
        })
        .collect();
    let rank = |s: &Series| {
        (
            s.value.is_empty(),
            order
                .iter()
                .position(|o| *o == s.value)
                .unwrap_or(order.len()),
            std::cmp::Reverse(s.total),
        )
    };
    out.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.value.cmp(&b.value)));
    out
}

/// A text cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab or
/// carriage return first: a department name from the directory, say) gets a `'` in front.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

impl Trends {
    /// Reports in the period.
    pub fn reports(&self) -> u64 {
        self.total.iter().sum()
    }

    /// The breakdown of a key.
    pub fn breakdown(&self, key: &str) -> Option<&Breakdown> {
        self.breakdowns.iter().find(|b| b.key == key)
    }

    /// Long-format CSV: `month,breakdown,value,label,reports`, one line for each month, breakdown
    /// and value (zeros included), the months' totals as breakdown `total`; no cell starts a
    /// spreadsheet formula ([`cell`]).
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let rec = |w: &mut csv::Writer<Vec<u8>>, f: [&str; 5]| {
            w.write_record(f).expect("CSV into memory");
        };
        rec(&mut w, ["month", "breakdown", "value", "label", "reports"]);
        for (i, m) in self.months.iter().enumerate() {
            rec(&mut w, [m, "total", "", "", &self.total[i].to_string()]);
            for b in &self.breakdowns {
                for s in &b.series {
                    rec(
                        &mut w,
                        [
                            m,
                            &b.key,
                            &cell(&s.value),
                            &cell(&s.label),
                            &s.counts[i].to_string(),
                        ],
                    );
                }
            }
        }
        String::from_utf8(w.into_inner().expect("CSV into memory")).expect("CSV of strings")
    }

    /// The plain-text summary of the mail: the totals and each breakdown's values with their
    /// reports per month (values without reports left out).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let months = self.months.join(", ");
        out.push_str(&format!(
            "Internal detections, {months}: {} report(s).\n",
            self.reports()
        ));
        if self.months.len() > 1 {
            for (m, n) in self.months.iter().zip(&self.total) {
                out.push_str(&format!("  {m}: {n}\n"));
            }
        }
        for b in &self.breakdowns {
            let shown: Vec<&Series> = b.series.iter().filter(|s| s.total > 0).collect();
            if shown.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "\n{}{}\n",
                b.title,
                if b.multiple {
                    " (a report counts for each choice)"
                } else {
                    ""
                }
            ));
            for s in shown {
                let per = if self.months.len() > 1 {
                    format!(
                        "  ({})",
                        s.counts
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(" / ")
                    )
                } else {
                    String::new()
                };
                out.push_str(&format!("  {:>6}  {}{per}\n", s.total, s.label));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::default_questionnaires;

    fn row(month: u32, colour: &str, dept: &str, q: &str, answers: &str, n: u64) -> MonthlyRow {
        MonthlyRow {
            month,
            source: "antivirus".into(),
            category: "malware".into(),
            colour: colour.into(),
            department: dept.into(),
            questionnaire: q.into(),
            answers: answers.into(),
            reports: n,
        }
    }

    #[test]
    fn months_parse_and_step() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(
            (m.next().to_string(), m.prev().to_string()),
            ("2027-01".into(), "2026-11".into())
        );
        assert_eq!(m.start(), 1_796_083_200);
        assert_eq!(Month::of(1_796_083_199).to_string(), "2026-11");
        assert_eq!(m.number(), 202_612);
        for bad in [
            "2026-13",
            "2026-1",
            "26-12",
            "2026/12",
            "",
            "2026-00",
            "x".repeat(100).as_str(),
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let p = Period::parse(None, None, m.start() + 5).unwrap();
        assert_eq!(
            (p.from.to_string(), p.months().len()),
            ("2026-01".into(), 12)
        );
        assert!(Period::parse(Some("2026-12"), Some("2026-11"), 0)
            .unwrap_err()
            .contains("after"));
        assert!(Period::parse(Some("2020-01"), Some("2026-11"), 0)
            .unwrap_err()
            .contains("at most 36"));
        assert!(Period::parse(Some("2026-1"), None, 0)
            .unwrap_err()
            .starts_with("from: "));
    }

    #[test]
    fn answers_become_routes_and_causes() {
        let months = [
            Month::parse("2026-11").unwrap(),
            Month::parse("2026-12").unwrap(),
        ];
        let qs = default_questionnaires();
        let mut acc = Acc::new(&months, &qs);
        acc.add(&row(
            202_611,
            "green",
            "Sales",
            "usb",
            r#"{"owner":["company"],"places":["office"],"scanned":["yes"],"notes":["x"]}"#,
            1,
        ));
        acc.add(&row(
            202_612,
            "red",
            "Sales",
            "usb",
            r#"{"owner":["private"],"places":["home","customer"],"scanned":["no"]}"#,
            1,
        ));
        acc.add(&row(202_612, "yellow", "Engineering", "usb", "", 2));
        acc.add(&row(202_612, "yellow", "", "", "", 1));
        acc.add(&row(202_501, "red", "", "", "", 9)); // outside the period: not counted
        let t = acc.finish();
        assert_eq!(t.total, [1, 4]);
        let colour = t.breakdown("colour").unwrap();
        let c: Vec<(&str, &[u64])> = colour
            .series
            .iter()
            .map(|s| (s.value.as_str(), &s.counts[..]))
            .collect();
        assert_eq!(
            c,
            [
                ("green", &[1, 0][..]),
                ("yellow", &[0, 3][..]),
                ("red", &[0, 1][..])
            ]
        );
        let d = t.breakdown("department").unwrap();
        assert_eq!(d.series.last().unwrap().label, "(no department)");
        let places = t.breakdown("answer:usb.places").unwrap();
        let p: Vec<(&str, u64)> = places
            .series
            .iter()
            .map(|s| (s.value.as_str(), s.total))
            .collect();
        assert_eq!(
            p,
            [
                ("office", 1),
                ("home", 1),
                ("customer", 1),
                ("other", 0),
                ("", 2)
            ],
            "the choices in the questionnaire's order, then the unanswered"
        );
        let owner = t.breakdown("answer:usb.owner").unwrap();
        assert_eq!(
            owner.series[0].label,
            "The company (issued to me or my team)"
        );
        assert!(places.multiple && !owner.multiple);
        assert!(
            t.breakdown("answer:usb.notes").is_none(),
            "free text is not a trend"
        );
        assert!(t
            .csv()
            .contains("2026-12,answer:usb.places,,(not answered),2\n"));
        assert!(t
            .csv()
            .starts_with("month,breakdown,value,label,reports\n2026-11,total,,,1\n"));
        let s = t.summary();
        assert!(s.contains("2026-11, 2026-12: 5 report(s)"), "{s}");
        assert!(s.contains("     3  yellow  (0 / 3)"), "{s}");
    }
}
