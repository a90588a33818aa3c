//! HTML pages, written by hand; every value goes through [`esc`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::chart::colour;
use crate::data::{GraphData, Trends};
use crate::export::num;
use crate::params::{iso, GraphQuery, Mode, Period, Proto, Public, Sensors};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#222}\
header{background:#1f3b5a;color:#fff;padding:8px 16px}header a{color:#fff;margin-right:16px}\
main{padding:12px 16px;max-width:1100px}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f0f0f0}\
td.l,th.l{text-align:left}form.filters label{margin-right:10px}img.chart{border:1px solid #ddd;max-width:100%}\
.trend{background:#fff3cd;border:1px solid #e0b400;padding:8px;margin:8px 0}\
.err{color:#a00}.sw{display:inline-block;width:12px;height:12px;margin-right:4px}\
.downloads a{margin-right:10px}.triage-red{color:#b00}.triage-yellow{color:#a60}.triage-green{color:#070}";

/// A whole page. `user`: the logged-in analyst (shows the analyst menu and a logout form with
/// its CSRF token).
pub fn page(title: &str, user: Option<(&str, &str)>, body: &str) -> String {
    let mut nav = String::from(
        "<a href=\"/\">Ports</a><a href=\"/regions\">Regions</a><a href=\"/port\">Per port</a>\
         <a href=\"/api\">API</a>",
    );
    match user {
        Some((name, csrf)) => {
            let _ = write!(
                nav,
                "<a href=\"/networks\">Networks</a>\
                 <a href=\"/analyst\">Sensors</a><a href=\"/analyst/events\">Event search</a>\
                 <a href=\"/analyst/exchange\">Exchange</a><a href=\"/analyst/address\">Address</a>\
                 <a href=\"/analyst/withheld\">Withheld</a>\
                 <a href=\"/analyst/trends\">Detections</a>\
                 <form method=\"post\" action=\"/logout\" style=\"display:inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Log out {}</button></form>",
                esc(csrf),
                esc(name)
            );
        }
        None => nav.push_str("<a href=\"/login\">Analyst login</a>"),
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t} — teiten</title><style>{STYLE}</style></head><body>\
         <header><strong>teiten</strong> &nbsp; {nav}</header><main><h1>{t}</h1>{body}</main>\
         </body></html>",
        t = esc(title)
    )
}

/// A page without the dashboard's menu (the employees' questionnaire pages).
pub fn bare_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{t}</title><style>{STYLE}fieldset{{margin:10px 0}}</style></head><body>\
         <header><strong>CSIRT</strong></header><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

fn option(value: &str, label: &str, selected: bool) -> String {
    format!(
        "<option value=\"{}\"{}>{}</option>",
        esc(value),
        if selected { " selected" } else { "" },
        esc(label)
    )
}

/// The filter form of a graph page (GET; it changes nothing, so it needs no CSRF token).
pub fn filters(
    action: &str,
    q: &GraphQuery,
    sensors: &BTreeSet<String>,
    groups: &[String],
    max_top: u32,
) -> String {
    let mut f = format!(
        "<form class=\"filters\" method=\"get\" action=\"{}\">",
        esc(action)
    );
    if let Some(p) = q.port {
        let _ = write!(
            f,
            "<label>Port <input name=\"port\" id=\"port\" size=\"6\" value=\"{p}\"></label>"
        );
    }
    f.push_str("<label>Period <select name=\"period\" id=\"period\">");
    for p in Period::NAMED {
        f.push_str(&option(p.name(), p.label(), q.period == p));
    }
    f.push_str(&option("custom", "custom", q.period == Period::Custom));
    let (from, to) = if q.period == Period::Custom {
        (iso(q.from), iso(q.to))
    } else {
        (String::new(), String::new())
    };
    let _ = write!(
        f,
        "</select></label><label>From <input name=\"from\" id=\"from\" size=\"20\" \
         placeholder=\"YYYY-MM-DD\" value=\"{}\"></label><label>To <input name=\"to\" id=\"to\" \
         size=\"20\" placeholder=\"YYYY-MM-DD\" value=\"{}\"></label>",
        esc(&from),
        esc(&to)
    );
    f.push_str("<label>Protocol <select name=\"proto\" id=\"proto\">");
    for p in Proto::ALL {
        f.push_str(&option(p.name(), p.name(), q.proto == p));
    }
    f.push_str("</select></label>");
    // The sensor and group filters are for analysts only.
    if q.public.is_none() {
        f.push_str("<label>Sensor <select name=\"sensor\" id=\"sensor\">");
        f.push_str(&option("", "all", !matches!(q.sensors, Sensors::One(_))));
        for s in sensors {
            f.push_str(&option(s, s, q.sensors == Sensors::One(s.clone())));
        }
        f.push_str("</select></label><label>Group <select name=\"group\" id=\"group\">");
        f.push_str(&option(
            "",
            "none",
            !matches!(q.sensors, Sensors::Group(..)),
        ));
        for g in groups {
            f.push_str(&option(
                g,
                g,
                matches!(&q.sensors, Sensors::Group(x, _) if x == g),
            ));
        }
        f.push_str("</select></label>");
    }
    let _ = write!(
        f,
        "<label>Top <input name=\"top\" id=\"top\" type=\"number\" min=\"1\" \
         max=\"{max_top}\" value=\"{}\"></label><label>Values <select name=\"mode\" id=\"mode\">{}{}</select></label>\
         <button type=\"submit\" id=\"apply\">Show</button></form>",
        q.top,
        option("avg", "per sensor (average)", q.mode == Mode::PerSensor),
        option("total", "total", q.mode == Mode::Total),
    );
    f
}

/// What a graph page shows: the public rules, or that an analyst sees everything.
pub fn audience(public: Option<&Public>) -> String {
    match public {
        Some(p) => format!(
            "<p class=\"public\" id=\"public\">Public view: data up to {} UTC (delay: {}), in \
             buckets of at least {} seconds, over all sensors; ports and source regions are shown \
             only when seen from at least {} sources on at least {} sensors in the period. \
             Analysts (<a href=\"/login\">log in</a>) see today's traffic, per sensor.</p>",
            esc(&iso(p.until)),
            esc(&p.delay),
            p.grain_secs,
            p.min_sources,
            p.min_sensors
        ),
        None => "<p class=\"public\" id=\"analyst-view\">Analyst view: every port, sensor \
                 and bucket, up to now.</p>"
            .to_owned(),
    }
}

/// A chart image with its downloads and the table of numbers behind it.
/// The network graph's table: each source AS with its name, main country, packets and unique
/// sources.
pub fn networks_table(g: &GraphData) -> String {
    let rows = g.networks.as_deref().unwrap_or_default();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<table class=\"summary\" id=\"networks-table\"><tr><th class=\"l\">AS</th>\
         <th class=\"l\">Name</th><th class=\"l\">Country</th><th>Packets</th>\
         <th>Unique sources</th></tr>",
    );
    for r in rows {
        let asn = if r.asn == 0 {
            "unknown".to_owned()
        } else {
            format!("AS{}", r.asn)
        };
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td>{}</td><td>{}</td></tr>",
            esc(&asn),
            esc(&r.name),
            esc(&r.country),
            num(r.packets as f64),
            num(r.sources as f64)
        );
    }
    s.push_str("</table>");
    s
}

pub fn graph(g: &GraphData, chart: &str, api: &str, qs: &str) -> String {
    let qs = esc(qs);
    let mut s = format!(
        "<section id=\"{chart}\"><img class=\"chart\" id=\"chart-{chart}\" src=\"/chart/{chart}.png?{qs}\" \
         width=\"1000\" height=\"480\" alt=\"{}\"><div class=\"downloads\">Download: \
         <a href=\"/chart/{chart}.png?{qs}\" download>PNG</a><a href=\"/chart/{chart}.svg?{qs}\" download>SVG</a>\
         <a href=\"/api/v1/{api}.csv?{qs}\">CSV</a><a href=\"/api/v1/{api}.json?{qs}\">JSON</a></div>",
        esc(&g.title)
    );
    let _ = write!(
        s,
        "<p>{} — {}, protocol {}, {}, {} to {} (UTC), {}-second buckets.</p>",
        esc(&g.title),
        esc(&g.unit),
        esc(g.proto),
        esc(&g.sensors),
        esc(&iso(g.from)),
        esc(&iso(g.to)),
        g.step
    );
    if !g.published {
        let _ = write!(
            s,
            "<p class=\"unpublished\">{}</p></section>",
            esc(&not_published_text(g))
        );
        return s;
    }
    if g.series.is_empty() {
        s.push_str("<p>No packets for this selection.</p></section>");
        return s;
    }
    s.push_str(
        "<table class=\"summary\"><tr><th class=\"l\">Series</th><th>Total</th><th>Peak</th>\
         <th>Last</th></tr>",
    );
    for (i, series) in g.series.iter().enumerate() {
        let (r, gr, b) = colour(i);
        let peak = series.values.iter().copied().fold(0.0f64, f64::max);
        let last = series.values.last().copied().unwrap_or(0.0);
        let _ = write!(
            s,
            "<tr><td class=\"l\"><span class=\"sw\" style=\"background:rgb({r},{gr},{b})\"></span>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&series.name),
            series.total.map(num).unwrap_or_else(|| "—".into()),
            num(peak),
            num(last)
        );
    }
    s.push_str("</table><details><summary>Every bucket</summary><table class=\"buckets\"><tr><th class=\"l\">Time (UTC)</th>");
    for series in &g.series {
        let _ = write!(s, "<th>{}</th>", esc(&series.name));
    }
    s.push_str("</tr>");
    for (i, t) in g.times.iter().enumerate() {
        let _ = write!(s, "<tr><td class=\"l\">{}</td>", esc(&iso(*t)));
        for series in &g.series {
            let _ = write!(
                s,
                "<td>{}</td>",
                num(series.values.get(i).copied().unwrap_or(0.0))
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></details></section>");
    s
}

/// Why a per-port graph shows nothing: the same text for a port below the threshold and one
/// never seen.
pub fn not_published_text(g: &GraphData) -> String {
    let (n, k) = g
        .public
        .as_ref()
        .map_or((0, 0), |p| (p.min_sources, p.min_sensors));
    format!(
        "Port {} is not published for this period: public per-port data is shown only for ports \
         seen from at least {n} sources on at least {k} sensors.",
        g.port.unwrap_or(0)
    )
}

/// The trends box.
pub fn trends(t: &Trends) -> String {
    let mut s = format!(
        "<div class=\"trend\" id=\"trends\"><h2>Rising ports</h2><p>Last 24 hours to {} against \
         the daily mean of the {} days before{}.</p>",
        esc(&iso(t.to)),
        t.baseline_days,
        if t.public.is_some() {
            " (public: ports that cleared the threshold over those 24 hours)"
        } else {
            ""
        }
    );
    if t.rising.is_empty() {
        s.push_str("<p>No port rose unusually.</p></div>");
        return s;
    }
    s.push_str(
        "<table><tr><th class=\"l\">Port</th><th>Last 24 h</th><th>Daily mean</th>\
         <th>Ratio</th><th>Score (σ)</th></tr>",
    );
    for r in &t.rising {
        let proto = if r.proto == "icmpv6" {
            "icmp"
        } else {
            &r.proto
        };
        let proto = if ["tcp", "udp", "icmp"].contains(&proto) {
            proto
        } else {
            "all"
        };
        let _ = write!(
            s,
            "<tr><td class=\"l\"><a href=\"/port?port={p}&amp;proto={proto}&amp;period=1m\">{p}/{}</a></td>\
             <td>{}</td><td>{}</td><td>{:.1}×</td><td>{:.1}</td></tr>",
            esc(&r.proto),
            r.last_day,
            num((r.baseline_mean * 10.0).round() / 10.0),
            r.ratio,
            r.score,
            p = r.port,
        );
    }
    s.push_str("</table></div>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn logout_form_carries_csrf() {
        let p = page("T", Some(("alice", "tok123")), "");
        assert!(p.contains("name=\"csrf\" value=\"tok123\""));
        assert!(!page("T", None, "").contains("csrf"));
    }
}
