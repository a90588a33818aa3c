//! CSV downloads of the graph tables (JSON is the serde form of [`crate::data`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::data::{GraphData, PortData};
use crate::params::iso;

/// A number for tables and CSV: integers without decimals, others with three.
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One row per bucket: `time` (UTC, ISO 8601) then one column per series.
pub fn csv(g: &GraphData) -> String {
    csv_of(&[("", g)])
}

/// The network table: one row per source AS of the graph, most packets first
/// (`asn,name,country,packets,sources`).
pub fn networks_csv(g: &GraphData) -> String {
    let mut out = String::from("asn,name,country,packets,sources\r\n");
    for r in g.networks.iter().flatten() {
        out.push_str(&format!(
            "{},{},{},{},{}\r\n",
            r.asn,
            field(&r.name),
            field(&r.country),
            r.packets,
            r.sources
        ));
    }
    out
}

/// The per-port table: `packets <region>` columns, then `sources <region>` columns. Over two
/// days the sources are daily: their cells are filled on the rows of midnight (UTC) only.
pub fn port_csv(p: &PortData) -> String {
    csv_of(&[("packets ", &p.packets), ("sources ", &p.sources)])
}

/// One row per bucket of any part (the union of their times), an empty cell where a part has
/// no bucket at that time.
fn csv_of(parts: &[(&str, &GraphData)]) -> String {
    let mut out = String::from("time");
    for (prefix, g) in parts {
        for s in &g.series {
            out.push(',');
            out.push_str(&field(&format!("{prefix}{}", s.name)));
        }
    }
    out.push_str("\r\n");
    let times: BTreeSet<i64> = parts
        .iter()
        .flat_map(|(_, g)| g.times.iter().copied())
        .collect();
    let index: Vec<HashMap<i64, usize>> = parts
        .iter()
        .map(|(_, g)| g.times.iter().enumerate().map(|(i, t)| (*t, i)).collect())
        .collect();
    for t in times {
        out.push_str(&iso(t));
        for ((_, g), at) in parts.iter().zip(&index) {
            let i = at.get(&t);
            for s in &g.series {
                out.push(',');
                if let Some(v) = i.and_then(|i| s.values.get(*i)) {
                    let _ = write!(out, "{}", num(*v));
                }
            }
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Series;

    #[test]
    fn csv_rows() {
        let g = GraphData {
            graph: "regions",
            title: "t".into(),
            unit: "u".into(),
            from: 0,
            to: 600,
            step: 300,
            mode: "total",
            proto: "all",
            sensors: "all sensors".into(),
            port: None,
            published: true,
            public: None,
            networks: None,
            times: vec![0, 300],
            series: vec![
                Series {
                    name: "JP".into(),
                    total: Some(3.0),
                    values: vec![1.0, 2.0],
                },
                Series {
                    name: "a,b".into(),
                    total: Some(0.5),
                    values: vec![0.25, 0.25],
                },
            ],
        };
        assert_eq!(
            csv(&g),
            "time,JP,\"a,b\"\r\n1970-01-01T00:00:00Z,1,0.250\r\n1970-01-01T00:05:00Z,2,0.250\r\n"
        );
    }

    #[test]
    fn port_csv_with_daily_sources() {
        let hourly = GraphData {
            graph: "port-packets",
            title: "t".into(),
            unit: "u".into(),
            from: 0,
            to: 3 * 86_400,
            step: 86_400 / 2,
            mode: "total",
            proto: "all",
            sensors: "all sensors".into(),
            port: Some(23),
            published: true,
            public: None,
            networks: None,
            times: vec![0, 43_200, 86_400],
            series: vec![Series {
                name: "JP".into(),
                total: Some(6.0),
                values: vec![1.0, 2.0, 3.0],
            }],
        };
        let daily = GraphData {
            graph: "port-sources",
            step: 86_400,
            times: vec![0, 86_400],
            series: vec![Series {
                name: "JP".into(),
                total: None,
                values: vec![7.0, 8.0],
            }],
            ..hourly.clone()
        };
        let p = PortData {
            published: true,
            packets: hourly,
            sources: daily,
        };
        assert_eq!(
            port_csv(&p),
            "time,packets JP,sources JP\r\n1970-01-01T00:00:00Z,1,7\r\n\
             1970-01-01T12:00:00Z,2,\r\n1970-01-02T00:00:00Z,3,8\r\n"
        );
    }
}
