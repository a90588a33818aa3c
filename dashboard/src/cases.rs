//! The analyst pages of the investigation loop, with the data from the aggregator's cases
//! API: the monthly trends of the internal detections (a stacked bar chart and a table for
//! each breakdown, with the CSV download) and a case's history with the override form.

use std::fmt::Write;

use teiten_exchange::cases::store::HistoryStep;
use teiten_exchange::cases::trends::{Breakdown, Period, Trends};

use crate::chart;
use crate::error::Result;
use crate::html::esc;
use crate::params::iso;

/// Height of a breakdown's chart.
const CHART_HEIGHT: u32 = 260;

/// The colours of the triage, as the pages show them.
fn triage_rgb(value: &str) -> Option<(u8, u8, u8)> {
    match value {
        "green" => Some((0, 140, 60)),
        "yellow" => Some((230, 170, 0)),
        "red" => Some((200, 20, 30)),
        _ => None,
    }
}

/// The period form, shared by the page and its errors.
pub fn period_form(from: &str, to: &str) -> String {
    format!(
        "<form class=\"filters\" method=\"get\" action=\"/analyst/trends\" id=\"period\">\
         <label>From <input type=\"month\" name=\"from\" value=\"{}\"></label>\
         <label>To <input type=\"month\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button></form>",
        esc(from),
        esc(to)
    )
}

/// The trends page's body.
pub fn trends_html(t: &Trends, period: &Period) -> Result<String> {
    let (from, to) = (period.from.to_string(), period.to.to_string());
    let mut s = period_form(&from, &to);
    let _ = write!(
        s,
        "<p class=\"downloads\"><a id=\"csv\" href=\"/analyst/trends.csv?from={from}&amp;to={to}\">\
         CSV</a> (month, breakdown, value, label, reports)</p>\
         <p id=\"total\">{} internal report(s) detected from {from} to {to}.</p>",
        t.reports()
    );
    s.push_str("<table id=\"months\"><tr><th class=\"l\">Month</th>");
    for m in &t.months {
        let _ = write!(s, "<th>{}</th>", esc(m));
    }
    s.push_str("<th>All</th></tr><tr><td class=\"l\">Reports</td>");
    for n in &t.total {
        let _ = write!(s, "<td>{n}</td>");
    }
    let _ = write!(s, "<td>{}</td></tr></table>", t.reports());
    for b in &t.breakdowns {
        s.push_str(&breakdown_html(t, b)?);
    }
    Ok(s)
}

fn breakdown_html(t: &Trends, b: &Breakdown) -> Result<String> {
    let id = b.key.replace([':', '.'], "-");
    let mut s = format!("<section id=\"{}\"><h2>{}</h2>", esc(&id), esc(&b.title));
    if b.multiple {
        s.push_str("<p>A report counts once for each choice picked.</p>");
    }
    let series: Vec<chart::Stack> = b
        .series
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let rgb = if b.key == "colour" {
                triage_rgb(&x.value).unwrap_or((127, 127, 127))
            } else if x.value.is_empty() {
                (190, 190, 190)
            } else {
                chart::colour(i)
            };
            (x.label.clone(), rgb, x.counts.clone())
        })
        .collect();
    s.push_str(&chart::stacked_bars_svg(
        &b.title,
        &t.months,
        &series,
        CHART_HEIGHT,
    )?);
    let _ = write!(
        s,
        "<table class=\"trend-table\" data-key=\"{}\"><tr><th class=\"l\">Value</th>",
        esc(&b.key)
    );
    for m in &t.months {
        let _ = write!(s, "<th>{}</th>", esc(m));
    }
    s.push_str("<th>All</th></tr>");
    for x in &b.series {
        let _ = write!(
            s,
            "<tr data-value=\"{}\"><td class=\"l\">{}</td>",
            esc(&x.value),
            esc(&x.label)
        );
        for n in &x.counts {
            let _ = write!(s, "<td>{n}</td>");
        }
        let _ = write!(s, "<td>{}</td></tr>", x.total);
    }
    s.push_str("</table></section>");
    Ok(s)
}

/// A case's page: the steps, oldest first, and the override form.
pub fn case_html(reporter: &str, id: &str, steps: &[HistoryStep], csrf: &str) -> String {
    let mut s = format!(
        "<p>Report <code>{}</code> of <code>{}</code>.</p>",
        esc(id),
        esc(reporter)
    );
    if steps.is_empty() {
        s.push_str("<p id=\"no-case\">No case for this report (yet): a case is opened within a round of the aggregator's investigation loop once the report is stored.</p>");
    } else {
        // As the aggregator reads it: the newest override, else the first answer, else the
        // opening's.
        let last = |e: &str| steps.iter().rev().find(|x| x.case_event == e);
        let first = |e: &str| steps.iter().find(|x| x.case_event == e);
        let colour = last("overridden")
            .or_else(|| first("answered"))
            .or_else(|| first("opened"))
            .map(|x| x.case_colour.as_str())
            .unwrap_or("");
        let _ = write!(
            s,
            "<p id=\"colour\">Colour now: <b class=\"triage-{c}\">{c}</b></p>",
            c = esc(colour)
        );
        s.push_str(
            "<table id=\"steps\"><tr><th class=\"l\">When (UTC)</th><th class=\"l\">Step</th>\
             <th class=\"l\">Colour</th><th class=\"l\">Who</th><th class=\"l\">Rules</th>\
             <th class=\"l\">Note</th><th class=\"l\">Answers</th></tr>",
        );
        for x in steps {
            let who = match x.case_event.as_str() {
                "opened" if !x.employee.is_empty() => format!(
                    "{} &lt;{}&gt; ({}), manager {}",
                    esc(&x.name),
                    esc(&x.email),
                    esc(&x.department),
                    esc(&x.manager)
                ),
                "requested" => format!("link valid until {}", iso(i64::from(x.case_expires))),
                _ => esc(&x.actor),
            };
            let _ = write!(
                s,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td class=\"l triage-{c}\">{c}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
                iso(i64::from(x.case_at)),
                esc(&x.case_event),
                who,
                esc(&x.rules),
                esc(&x.note),
                esc(&x.answers),
                c = esc(&x.case_colour),
            );
        }
        s.push_str("</table>");
    }
    let _ = write!(
        s,
        "<h2>Override the colour</h2><form method=\"post\" action=\"/analyst/case\" id=\"override\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"reporter\" value=\"{}\">\
         <input type=\"hidden\" name=\"id\" value=\"{}\">\
         <label>Colour <select name=\"colour\"><option>green</option><option>yellow</option>\
         <option>red</option></select></label> \
         <label>Reason <input name=\"reason\" size=\"60\" maxlength=\"1000\" required></label> \
         <button type=\"submit\" id=\"override-send\">Override</button></form>\
         <p>The override is kept in the history with your name and the reason; an alert already \
         sent is not taken back.</p>",
        esc(csrf),
        esc(reporter),
        esc(id)
    );
    s
}
