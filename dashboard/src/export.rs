//! CSV downloads of the graph tables (JSON is the serde form of [`crate::data`]).

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

/// The per-port table: `packets <region>` columns, then `sources <region>` columns.
pub fn port_csv(p: &PortData) -> String {
    csv_of(&[("packets ", &p.packets), ("sources ", &p.sources)])
}

fn csv_of(parts: &[(&str, &GraphData)]) -> String {
    let mut out = String::from("time");
    for (prefix, g) in parts {
        for s in &g.series {
            out.push(',');
            out.push_str(&field(&format!("{prefix}{}", s.name)));
        }
    }
    out.push_str("\r\n");
    let times = parts
        .first()
        .map(|(_, g)| g.times.as_slice())
        .unwrap_or(&[]);
    for (i, t) in times.iter().enumerate() {
        out.push_str(&iso(*t));
        for (_, g) in parts {
            for s in &g.series {
                let _ = write!(out, ",{}", num(s.values.get(i).copied().unwrap_or(0.0)));
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
}
