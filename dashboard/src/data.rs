//! The numbers behind the graphs, read from the rollups.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use clickhouse::Client;
use serde::Serialize;

use crate::config::TrendsConfig;
use crate::error::{Error, Result};
use crate::params::{GraphQuery, Mode, Period, Proto, Public, Sensors};
use teiten_store::proto::{proto_name, UNKNOWN_COUNTRY_TEXT};
use teiten_store::reads::{self, Filter, Rollup, Threshold, TrendsWindow};
use teiten_store::statement::Statement;

/// One line of a graph.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    /// Port number, country code, `others`, `unknown` or `all regions`.
    pub name: String,
    /// Sum over the period (`null` for unique sources, which do not add up).
    pub total: Option<f64>,
    /// One value per entry of [`GraphData::times`].
    pub values: Vec<f64>,
}

/// A graph's numbers: the table under it, the JSON API's answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GraphData {
    /// `ports`, `regions`, `port-packets` or `port-sources`.
    pub graph: &'static str,
    /// Human title.
    pub title: String,
    /// What the values count.
    pub unit: String,
    /// Start (Unix seconds, inclusive).
    pub from: i64,
    /// End (Unix seconds, exclusive).
    pub to: i64,
    /// Bucket width in seconds.
    pub step: u32,
    /// `avg` or `total`.
    pub mode: &'static str,
    /// `all`, `tcp`, `udp` or `icmp`.
    pub proto: &'static str,
    /// Which sensors.
    pub sensors: String,
    /// The port (per-port graphs).
    pub port: Option<u16>,
    /// Bucket starts (Unix seconds).
    pub times: Vec<i64>,
    /// The lines, largest first (`others` last).
    pub series: Vec<Series>,
    /// `false` only for a per-port graph of a port that is not public in the period (below the
    /// threshold or never seen: the same answer).
    pub published: bool,
    /// The public rules this answer follows (`null`: an analyst's answer, in full detail).
    pub public: Option<Public>,
    /// The network graph's table: its source ASes with their counts (absent from the other
    /// graphs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkRow>>,
}

/// A source autonomous system of the network graph.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NetworkRow {
    /// Its number (0: the network database knows none).
    pub asn: u32,
    /// Its name (`as_names`), empty when none is known yet.
    pub name: String,
    /// The source country most of its packets came from.
    pub country: String,
    /// Packets in the period.
    pub packets: u64,
    /// Unique published source addresses in the period.
    pub sources: u64,
}

impl NetworkRow {
    /// How the graph names it: `AS13335 CLOUDFLARENET (US)`, `unknown AS (JP)`.
    pub fn label(&self) -> String {
        let country = region_name(&self.country);
        match (self.asn, self.name.is_empty()) {
            (0, _) => format!("unknown AS ({country})"),
            (a, true) => format!("AS{a} ({country})"),
            (a, false) => format!("AS{a} {} ({country})", self.name),
        }
    }
}

/// The request read hourly (the network rollup's grain): buckets of at least an hour, the
/// period widened to whole ones.
fn hourly(q: &GraphQuery) -> GraphQuery {
    let mut h = q.clone();
    if h.step < 3600 {
        h.step = 3600;
    }
    let step = i64::from(h.step);
    h.from = h.from.div_euclid(step) * step;
    h.to = (h.to + step - 1).div_euclid(step) * step;
    h.rollup = Rollup::Hour;
    h
}

/// The per-port graph: packets and unique sources by region.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PortData {
    /// Whether the port is public in the period (always for analysts).
    pub published: bool,
    /// Packets by source region.
    pub packets: GraphData,
    /// Unique source addresses by region, and over all regions.
    pub sources: GraphData,
}

/// A port whose last day rose against its baseline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trend {
    /// `tcp`, `udp`, `icmp`, `icmpv6` or the protocol number.
    pub proto: String,
    /// Destination port.
    pub port: u16,
    /// Packets in the last 24 hours.
    pub last_day: u64,
    /// Mean packets per day over the baseline.
    pub baseline_mean: f64,
    /// Last day / baseline mean (baseline mean floored at 1).
    pub ratio: f64,
    /// Standard deviations above the mean (deviation floored at sqrt(mean) + 1).
    pub score: f64,
}

/// The trends box: rising ports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trends {
    /// End of the last day (Unix seconds, hour-aligned).
    pub to: i64,
    /// Days of baseline.
    pub baseline_days: u32,
    /// Rising ports, highest score first.
    pub rising: Vec<Trend>,
    /// The public rules (`null`: an analyst's trends, up to now): public trends end at the
    /// public end and list only ports public over their last day.
    pub public: Option<Public>,
}

/// Country label: `??` (unknown) becomes `unknown`, `''` (folded) `others`.
fn region_name(c: &str) -> String {
    match c {
        "" => "others".into(),
        UNKNOWN_COUNTRY_TEXT => "unknown".into(),
        c => c.to_owned(),
    }
}

/// The graph filter of a request (its period, protocols and sensors).
fn filter(q: &GraphQuery) -> Filter {
    Filter {
        from: q.from,
        to: q.to,
        protos: q.proto.numbers(),
        sensors: q.sensors.ids(),
    }
}

/// Seconds in a day (UTC days: the daily rollups' and the digests' buckets).
use teiten_store::time::DAY;

/// The rollup of a public threshold: per-day unique sources when the period ends on a UTC day
/// (its first day counted whole: only earlier, public data is added), else the 5-minute ones
/// (never a day that goes past the public end).
fn threshold_rollup(q: &GraphQuery) -> (Rollup, i64) {
    if q.rollup == Rollup::Hour && q.to % DAY == 0 {
        (Rollup::Hour, q.from.div_euclid(DAY) * DAY)
    } else {
        (Rollup::FiveMinutes, q.from)
    }
}

/// The public threshold of a request.
fn threshold(p: &Public, sources_from: i64) -> Threshold {
    Threshold {
        min_sensors: p.min_sensors,
        min_sources: p.min_sources,
        sources_from,
    }
}

/// Rows of [`reads::digest_top_ports`] read: the ports with the largest upper bounds.
const DIGEST_CANDIDATE_ROWS: u32 = 256;

/// The top ports query's answer: the top N with their packets, or candidates that include
/// them, to be counted exactly.
enum Top {
    Exact(Vec<(u16, u64)>),
    Candidates(Vec<u16>),
}

/// The candidates for the top `n` (see [`Reader::digest_candidates`]) from the digest rows
/// `(port, lo, hi)` sorted by `hi` and the bound, or `None`.
fn candidates(rows: &[(u16, u64, u64)], bound: u64, n: usize) -> Option<Vec<u16>> {
    if n == 0 || rows.len() < n {
        return None;
    }
    let mut lo: Vec<u64> = rows.iter().map(|r| r.1).collect();
    lo.sort_unstable_by(|a, b| b.cmp(a));
    let l = lo[n - 1];
    let beyond = if rows.len() as u32 >= DIGEST_CANDIDATE_ROWS {
        rows.last().map_or(0, |r| r.2)
    } else {
        0
    };
    if l == 0 || beyond.saturating_add(bound) >= l {
        return None;
    }
    let ports: Vec<u16> = rows
        .iter()
        .filter(|r| r.2.saturating_add(bound) >= l)
        .map(|r| r.0)
        .collect();
    // Each candidate costs its series' rows: beyond twice N, the rollups are cheaper.
    (ports.len() <= 2 * n + 8).then_some(ports)
}

/// Reads graphs from ClickHouse.
#[derive(Clone)]
pub struct Reader {
    client: Client,
    db: String,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("db", &self.db).finish()
    }
}

impl Reader {
    /// A reader of database `db` (a checked identifier).
    pub fn new(client: Client, db: &str) -> Reader {
        Reader {
            client,
            db: db.to_owned(),
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The database.
    pub fn db(&self) -> &str {
        &self.db
    }

    fn times(q: &GraphQuery) -> Vec<i64> {
        (q.from..q.to).step_by(q.step as usize).collect()
    }

    fn index(q: &GraphQuery, t: u32) -> Option<usize> {
        let t = i64::from(t);
        (t >= q.from && t < q.to).then(|| ((t - q.from) / i64::from(q.step)) as usize)
    }

    /// The ports public in the period of a public request, with their packets, most first
    /// ([`reads::public_ports`]); empty for analysts' requests.
    pub async fn published_ports(&self, q: &GraphQuery) -> Result<Vec<(u16, u64)>> {
        let Some(p) = &q.public else {
            return Ok(Vec::new());
        };
        let (rollup, sources_from) = threshold_rollup(q);
        reads::public_ports(&self.db, rollup, &filter(q), &threshold(p, sources_from))
            .fetch_all(&self.client)
            .await
            .map_err(Error::ch("reading the public ports"))
    }

    /// The source countries public in the period of the traffic to `ports` (published ones),
    /// top N with their packets.
    async fn public_countries(&self, q: &GraphQuery, ports: &[u16]) -> Result<Vec<String>> {
        let Some(p) = &q.public else {
            return Ok(Vec::new());
        };
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let (rollup, sources_from) = threshold_rollup(q);
        let st = reads::public_countries(
            &self.db,
            rollup,
            &filter(q),
            &threshold(p, sources_from),
            ports,
            q.top,
        );
        let rows: Vec<(String, u64)> = st
            .fetch_all(&self.client)
            .await
            .map_err(Error::ch("reading the public countries"))?;
        Ok(rows.into_iter().map(|(c, _)| c).collect())
    }

    /// Active sensors per bucket, for the per-sensor average. Public requests (with the
    /// published ports) count only the sensors that saw a published port.
    async fn divisors(
        &self,
        q: &GraphQuery,
        published: Option<&[u16]>,
    ) -> Result<Option<Vec<f64>>> {
        if q.mode == Mode::Total {
            return Ok(None);
        }
        let rows: Vec<(u32, u64)> = match published {
            None => reads::active_sensors(&self.db, q.rollup, &filter(q), q.step)
                .fetch_all(&self.client)
                .await
                .map_err(Error::ch("reading active sensors"))?,
            Some([]) => Vec::new(),
            Some(ports) => {
                reads::public_active_sensors(&self.db, q.rollup, &filter(q), q.step, ports)
                    .fetch_all(&self.client)
                    .await
                    .map_err(Error::ch("reading active sensors"))?
            }
        };
        let mut out = vec![0.0; Self::times(q).len()];
        for (t, n) in rows {
            if let Some(i) = Self::index(q, t) {
                out[i] = n as f64;
            }
        }
        Ok(Some(out))
    }

    fn apply_divisors(series: &mut [Series], div: &Option<Vec<f64>>) {
        if let Some(div) = div {
            for s in series {
                for (v, d) in s.values.iter_mut().zip(div) {
                    *v = if *d > 0.0 { *v / d } else { 0.0 };
                }
                s.total = s.total.map(|_| s.values.iter().sum());
            }
        }
    }

    fn unit(q: &GraphQuery, what: &str) -> String {
        let step = match q.step {
            300 => "5 minutes".to_owned(),
            3600 => "hour".to_owned(),
            86_400 => "day".to_owned(),
            s => format!("{} hours", s / 3600),
        };
        match q.mode {
            Mode::PerSensor => format!("{what} per sensor per {step}"),
            Mode::Total => format!("{what} per {step}"),
        }
    }

    fn base(q: &GraphQuery, graph: &'static str, title: String, unit: String) -> GraphData {
        GraphData {
            graph,
            title,
            unit,
            from: q.from,
            to: q.to,
            step: q.step,
            mode: q.mode.name(),
            proto: q.proto.name(),
            sensors: q.sensors.label(),
            port: q.port,
            times: Self::times(q),
            series: Vec::new(),
            published: true,
            public: q.public.clone(),
            networks: None,
        }
    }

    /// The answer for a port that is not public in the period: the same whether it is below
    /// the threshold or was never seen.
    fn not_published(mut g: GraphData, port: u16) -> GraphData {
        g.title = format!("Port {port}: not published");
        g.published = false;
        g.series.clear();
        g
    }

    /// The destination port graph.
    pub async fn ports(&self, q: &GraphQuery) -> Result<GraphData> {
        let (top, divisors) = if q.public.is_some() {
            // Public: the top N of the ports that cleared the threshold.
            let published = self.published_ports(q).await?;
            let ports: Vec<u16> = published.iter().map(|(p, _)| *p).collect();
            let divisors = self.divisors(q, Some(&ports)).await?;
            let mut top = published;
            top.truncate(q.top as usize);
            (Top::Exact(top), divisors)
        } else {
            // The divisors do not depend on the top N: read both at once.
            tokio::try_join!(self.top_ports(q), self.divisors(q, None))?
        };
        let ports: Vec<u16> = match &top {
            Top::Exact(top) => top.iter().map(|(p, _)| *p).collect(),
            Top::Candidates(ports) => ports.clone(),
        };
        let n = Self::times(q).len();
        let mut values: HashMap<u16, (u64, Vec<f64>)> =
            ports.iter().map(|p| (*p, (0, vec![0.0; n]))).collect();
        if !ports.is_empty() {
            let rows: Vec<(u32, u16, u64)> =
                reads::port_series(&self.db, q.rollup, &filter(q), q.step, &ports)
                    .fetch_all(&self.client)
                    .await
                    .map_err(Error::ch("reading the port series"))?;
            for (t, port, packets) in rows {
                if let (Some(i), Some((total, v))) = (Self::index(q, t), values.get_mut(&port)) {
                    v[i] += packets as f64;
                    *total += packets;
                }
            }
        }
        let top = match top {
            Top::Exact(top) => top,
            // The series are the candidates' exact packets over the period: rank them.
            Top::Candidates(_) => {
                let mut top: Vec<(u16, u64)> = values
                    .iter()
                    .filter(|(_, (total, _))| *total > 0)
                    .map(|(p, (total, _))| (*p, *total))
                    .collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                top.truncate(q.top as usize);
                top
            }
        };
        let mut series: Vec<Series> = top
            .iter()
            .map(|(port, total)| Series {
                name: port.to_string(),
                total: Some(*total as f64),
                values: values
                    .remove(port)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| vec![0.0; n]),
            })
            .collect();
        Self::apply_divisors(&mut series, &divisors);
        let mut g = Self::base(
            q,
            "ports",
            format!("Top {} destination ports", q.top),
            Self::unit(q, "packets"),
        );
        g.series = series;
        Ok(g)
    }

    /// The top ports (or ports that include them) of a request.
    async fn top_ports(&self, q: &GraphQuery) -> Result<Top> {
        let first_day = (q.from + DAY - 1).div_euclid(DAY) * DAY;
        let last_day = q.to.div_euclid(DAY) * DAY;
        let st = if q.rollup == Rollup::Hour && last_day > first_day {
            if let Some(candidates) = self.digest_candidates(q, first_day, last_day).await? {
                return Ok(Top::Candidates(candidates));
            }
            // Over whole days from the daily rollup, the hours at the ends from the 5-minute one.
            reads::top_ports_days(&self.db, &filter(q), first_day, last_day, q.top)
        } else {
            reads::top_ports(&self.db, q.rollup, &filter(q), q.top)
        };
        Ok(Top::Exact(
            st.fetch_all::<(u16, u64)>(&self.client)
                .await
                .map_err(Error::ch("reading the top ports"))?,
        ))
    }

    /// From the port digests of the days the period touches: the ports that can be among its
    /// top N, or `None` when the digests cannot tell (the rollups are read then).
    ///
    /// Each port's packets in the period lie between `lo` (what the digests of the whole days
    /// inside it list) and `hi + bound` (`hi`: what the digests of every day it touches list,
    /// the end days whole; `bound`: what a port can have beyond its listing). With `l` the N-th
    /// largest `lo`, a port whose `hi + bound < l` cannot be in the top N. The ports not returned
    /// (beyond the first [`DIGEST_CANDIDATE_ROWS`] by `hi`, or in no digest) have at most the
    /// last row's `hi` (or none) plus `bound`: when that reaches `l`, or when the candidates are
    /// too many to count cheaply, the answer is `None`.
    async fn digest_candidates(
        &self,
        q: &GraphQuery,
        first_day: i64,
        last_day: i64,
    ) -> Result<Option<Vec<u16>>> {
        let touched = (
            q.from.div_euclid(DAY) * DAY,
            (q.to + DAY - 1).div_euclid(DAY) * DAY,
        );
        let touched = filter(q).range(touched.0, touched.1);
        let rows = async {
            reads::digest_top_ports(
                &self.db,
                &touched,
                first_day,
                last_day,
                DIGEST_CANDIDATE_ROWS,
            )
            .fetch_all::<(u16, u64, u64)>(&self.client)
            .await
            .map_err(Error::ch("reading the port digests"))
        };
        let bound = async {
            reads::digest_bound(&self.db, &touched)
                .fetch_one::<u64>(&self.client)
                .await
                .map_err(Error::ch("reading the port digests' bound"))
        };
        let (rows, bound) = tokio::try_join!(rows, bound)?;
        Ok(candidates(&rows, bound, q.top as usize))
    }
    async fn top_countries(&self, q: &GraphQuery) -> Result<Vec<(String, u64)>> {
        let st = match q.port {
            None => reads::top_countries(&self.db, q.rollup, &filter(q), q.top),
            Some(port) => reads::top_port_countries(&self.db, q.rollup, &filter(q), port, q.top),
        };
        st.fetch_all(&self.client)
            .await
            .map_err(Error::ch("reading the top countries"))
    }

    /// The source region graph: top N countries plus others.
    pub async fn regions(&self, q: &GraphQuery) -> Result<GraphData> {
        if q.public.is_some() {
            return self.public_regions(q).await;
        }
        let (top, divisors) = tokio::try_join!(self.top_countries(q), self.divisors(q, None))?;
        if top.is_empty() {
            return Ok(self.regions_base(q));
        }
        let names: Vec<String> = top.iter().map(|(c, _)| c.clone()).collect();
        let st = reads::country_series(&self.db, q.rollup, &filter(q), q.step, &names);
        let mut g = self.regions_base(q);
        g.series = self
            .region_packets(q, &names, st, "reading the country series", &divisors)
            .await?;
        Ok(g)
    }

    /// The source network graph (analysts only): the top N source ASes by packets, with their
    /// table, plus others; hourly.
    pub async fn networks(&self, q: &GraphQuery) -> Result<GraphData> {
        let q = &hourly(q);
        let mut g = Self::base(
            q,
            "networks",
            format!("Top {} source networks and others", q.top),
            Self::unit(q, "packets"),
        );
        let top = async {
            reads::top_networks(&self.db, &filter(q), q.top)
                .fetch_all::<(u32, u64, u64, String, String)>(&self.client)
                .await
                .map_err(Error::ch("reading the top networks"))
        };
        let (top, divisors) = tokio::try_join!(top, self.divisors(q, None))?;
        let rows: Vec<NetworkRow> = top
            .into_iter()
            .map(|(asn, packets, sources, country, name)| NetworkRow {
                asn,
                name,
                country,
                packets,
                sources,
            })
            .collect();
        if !rows.is_empty() {
            let names: Vec<String> = rows.iter().map(|r| r.asn.to_string()).collect();
            let st = reads::network_series(&self.db, &filter(q), q.step, &names);
            g.series = self
                .region_packets(q, &names, st, "reading the network series", &divisors)
                .await?;
            for (s, r) in g.series.iter_mut().zip(&rows) {
                s.name = r.label();
            }
        }
        g.networks = Some(rows);
        Ok(g)
    }

    /// The published ports' numbers (as [`Self::published_ports`]).
    async fn published_port_numbers(&self, q: &GraphQuery) -> Result<Vec<u16>> {
        Ok(self
            .published_ports(q)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// The public region graph: the traffic to the published ports only, by the countries that
    /// cleared the threshold, the others folded into `others`.
    async fn public_regions(&self, q: &GraphQuery) -> Result<GraphData> {
        let ports = self.published_port_numbers(q).await?;
        let mut g = self.regions_base(q);
        if ports.is_empty() {
            return Ok(g);
        }
        let (names, divisors) = tokio::try_join!(
            self.public_countries(q, &ports),
            self.divisors(q, Some(&ports))
        )?;
        let st =
            reads::public_country_series(&self.db, q.rollup, &filter(q), q.step, &names, &ports);
        g.series = self
            .region_packets(
                q,
                &names,
                st,
                "reading the public country series",
                &divisors,
            )
            .await?;
        Ok(g)
    }

    fn regions_base(&self, q: &GraphQuery) -> GraphData {
        Self::base(
            q,
            "regions",
            format!("Top {} source regions and others", q.top),
            Self::unit(q, "packets"),
        )
    }

    /// Runs `st`, whose rows are `(t, country, value)`, and folds them as [`Self::fold_regions`].
    /// `what` names the read in the error.
    async fn region_series(
        &self,
        q: &GraphQuery,
        names: &[String],
        st: Statement,
        what: &'static str,
    ) -> Result<Vec<Series>> {
        let rows: Vec<(u32, String, u64)> =
            st.fetch_all(&self.client).await.map_err(Error::ch(what))?;
        Ok(self.fold_regions(
            q,
            names,
            rows.iter().map(|(t, c, v)| (*t, c.as_str(), *v as f64)),
        ))
    }

    /// The packets per region (as [`Self::region_series`]), each with its total, per sensor
    /// where `divisors` says so.
    async fn region_packets(
        &self,
        q: &GraphQuery,
        names: &[String],
        st: Statement,
        what: &'static str,
        divisors: &Option<Vec<f64>>,
    ) -> Result<Vec<Series>> {
        let mut series = self.region_series(q, names, st, what).await?;
        for s in &mut series {
            s.total = Some(s.values.iter().sum());
        }
        Self::apply_divisors(&mut series, divisors);
        Ok(series)
    }

    /// Series per region in the order of `names`, then `others` if it has any value.
    fn fold_regions<'a>(
        &self,
        q: &GraphQuery,
        names: &[String],
        rows: impl Iterator<Item = (u32, &'a str, f64)>,
    ) -> Vec<Series> {
        let n = Self::times(q).len();
        let mut by: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for (t, c, v) in rows {
            if let Some(i) = Self::index(q, t) {
                by.entry(c).or_insert_with(|| vec![0.0; n])[i] += v;
            }
        }
        let mut out: Vec<Series> = names
            .iter()
            .map(|c| Series {
                name: region_name(c),
                total: None,
                values: by.remove(c.as_str()).unwrap_or_else(|| vec![0.0; n]),
            })
            .collect();
        if let Some(values) = by.remove("") {
            out.push(Series {
                name: region_name(""),
                total: None,
                values,
            });
        }
        out
    }

    /// The port's top N source countries by packets, and whether it had any packets.
    /// Public requests: the port's countries that cleared the threshold (the port is
    /// published: it had packets).
    async fn port_countries(&self, q: &GraphQuery) -> Result<(Vec<String>, bool)> {
        let (names, any) = if q.public.is_some() {
            let names = self.public_countries(q, &[q.port.unwrap_or(0)]).await?;
            (names, true)
        } else {
            let top = self.top_countries(q).await?;
            let any = !top.is_empty();
            (top.into_iter().map(|(c, _)| c).collect(), any)
        };
        Ok((names, any))
    }

    /// Public requests: whether the port is published, and the published ports (the divisor's
    /// ports). `None` for analysts.
    async fn port_publication(&self, q: &GraphQuery) -> Result<Option<(bool, Vec<u16>)>> {
        if q.public.is_none() {
            return Ok(None);
        }
        let ports = self.published_port_numbers(q).await?;
        Ok(Some((ports.contains(&q.port.unwrap_or(0)), ports)))
    }

    /// One port's packets by source region.
    pub async fn port_packets(&self, q: &GraphQuery) -> Result<GraphData> {
        let port = q.port.unwrap_or(0);
        let mut p = Self::base(
            q,
            "port-packets",
            format!("Port {port}: packets by source region"),
            Self::unit(q, "packets"),
        );
        let publication = self.port_publication(q).await?;
        if let Some((false, _)) = publication {
            return Ok(Self::not_published(p, port));
        }
        let published = publication.as_ref().map(|(_, ports)| ports.as_slice());
        let ((names, any), divisors) =
            tokio::try_join!(self.port_countries(q), self.divisors(q, published))?;
        if !any {
            return Ok(p);
        }
        let st = reads::one_port_series(
            reads::PortMeasure::Packets,
            &self.db,
            q.rollup,
            &filter(q),
            q.step,
            &names,
            port,
        );
        p.series = self
            .region_packets(q, &names, st, "reading the per-port packets", &divisors)
            .await?;
        Ok(p)
    }

    /// One port's unique sources by source region and over all regions: per 5-minute step up
    /// to two days, per day (UTC) beyond, where a month of hourly states would take seconds to
    /// merge.
    pub async fn port_sources(&self, q: &GraphQuery) -> Result<GraphData> {
        let port = q.port.unwrap_or(0);
        let publication = self.port_publication(q).await?;
        let qs = if q.public.is_some() && (q.rollup == Rollup::FiveMinutes || q.to % DAY != 0) {
            // Public, not ending on a UTC day: the 5-minute states at the public step (a
            // daily state would count sources after the public end).
            GraphQuery {
                mode: Mode::Total,
                rollup: Rollup::FiveMinutes,
                ..q.clone()
            }
        } else if q.rollup != Rollup::FiveMinutes {
            // Daily HyperLogLog states beyond two days: whole days.
            GraphQuery {
                from: q.from.div_euclid(DAY) * DAY,
                to: (q.to + DAY - 1).div_euclid(DAY) * DAY,
                step: DAY as u32,
                mode: Mode::Total,
                ..q.clone()
            }
        } else {
            GraphQuery {
                mode: Mode::Total,
                ..q.clone()
            }
        };
        let mut s = Self::base(
            &qs,
            "port-sources",
            format!("Port {port}: unique sources by source region"),
            Self::unit(&qs, "unique sources"),
        );
        if let Some((false, _)) = publication {
            return Ok(Self::not_published(s, port));
        }
        // Over all regions does not need the top regions: read it beside them.
        let all = async {
            reads::port_sources_all(&self.db, qs.rollup, &filter(&qs), qs.step, port)
                .fetch_all::<(u32, u64)>(&self.client)
                .await
                .map_err(Error::ch("reading the per-port unique sources"))
        };
        let ((names, any), all) = tokio::try_join!(self.port_countries(q), all)?;
        if !any {
            return Ok(s);
        }
        let st = reads::one_port_series(
            reads::PortMeasure::Sources,
            &self.db,
            qs.rollup,
            &filter(&qs),
            qs.step,
            &names,
            port,
        );
        let mut sources = self
            .region_series(
                &qs,
                &names,
                st,
                "reading the per-port unique sources by region",
            )
            .await?;
        let mut values = vec![0.0; Self::times(&qs).len()];
        for (t, n) in all {
            if let Some(i) = Self::index(&qs, t) {
                values[i] = n as f64;
            }
        }
        // Last, so that each region keeps the colour it has in the packets chart.
        sources.push(Series {
            name: "all regions".into(),
            total: None,
            values,
        });
        s.series = sources;
        Ok(s)
    }

    /// Rising ports: the last 24 hours before `now` (rounded up to the hour) against the daily
    /// mean of the whole UTC days of the baseline before them (the hours between the last whole
    /// day and the last 24 hours are in neither).
    ///
    /// Public trends (`public`) end at the public end (rounded down to the hour) and list only
    /// the ports public over their last day.
    pub async fn trends(
        &self,
        cfg: &TrendsConfig,
        now: i64,
        public: Option<&Public>,
    ) -> Result<Trends> {
        let to = match public {
            Some(p) => p.until.div_euclid(3600) * 3600,
            None => (now + 3599).div_euclid(3600) * 3600,
        };
        let recent_from = to - DAY;
        let days = i64::from(cfg.baseline_days);
        let base_to = recent_from.div_euclid(DAY) * DAY;
        let start = base_to - days * DAY;
        let window = TrendsWindow {
            baseline_days: cfg.baseline_days,
            start,
            base_to,
            recent_from,
            to,
            min_packets: cfg.min_packets,
            limit: 5000,
        };
        let rows: Vec<(u8, u16, u64, u64, f64)> = reads::trends(&self.db, &window)
            .fetch_all(&self.client)
            .await
            .map_err(Error::ch("reading trends"))?;
        let mut rising: Vec<Trend> = rows
            .into_iter()
            .filter_map(|(proto, port, recent, base, base_sq)| {
                let mean = base as f64 / days as f64;
                let var = (base_sq / days as f64 - mean * mean).max(0.0);
                let sd = var.sqrt().max(mean.sqrt() + 1.0);
                let score = (recent as f64 - mean) / sd;
                let ratio = recent as f64 / mean.max(1.0);
                (ratio >= cfg.min_ratio && score >= cfg.min_score).then(|| Trend {
                    proto: proto_name(proto),
                    port,
                    last_day: recent,
                    baseline_mean: mean,
                    ratio,
                    score,
                })
            })
            .collect();
        rising.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.port.cmp(&b.port))
                .then(a.proto.cmp(&b.proto))
        });
        if let Some(p) = public {
            let last_day = GraphQuery {
                period: Period::Custom,
                from: recent_from,
                to,
                step: 3600,
                rollup: Rollup::Hour,
                proto: Proto::All,
                sensors: Sensors::All,
                top: 1,
                mode: Mode::Total,
                port: None,
                public: Some(p.clone()),
            };
            let published: BTreeSet<u16> = self
                .published_ports(&last_day)
                .await?
                .into_iter()
                .map(|(port, _)| port)
                .collect();
            rising.retain(|t| published.contains(&t.port));
        }
        rising.truncate(cfg.max_rows as usize);
        Ok(Trends {
            to,
            baseline_days: cfg.baseline_days,
            rising,
            public: public.cloned(),
        })
    }

    /// Known sensor ids.
    pub async fn sensor_ids(&self) -> Result<BTreeSet<String>> {
        let ids: Vec<String> = reads::sensor_ids(&self.db)
            .fetch_all(&self.client)
            .await
            .map_err(Error::ch("reading sensor ids"))?;
        Ok(ids.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_candidates_are_the_ports_that_can_reach_the_top() {
        // (port, lo, hi), sorted by hi.
        let rows = [
            (23, 900, 1000),
            (445, 500, 560),
            (22, 480, 520),
            (80, 100, 130),
        ];
        // Top 2: the 2nd lo is 500; 22 can reach it (520 + 0), 80 cannot.
        assert_eq!(candidates(&rows, 0, 2), Some(vec![23, 445, 22]));
        // A bound of 400 lets 80 reach it too (130 + 400 >= 500).
        assert_eq!(candidates(&rows, 400, 2), Some(vec![23, 445, 22, 80]));
        // A port in no digest can have up to the bound: 500 reaches 500, so no answer.
        assert_eq!(candidates(&rows, 500, 2), None);
        // Top 1 with bound 60: 445 can have 620 < 900, out.
        assert_eq!(candidates(&rows, 60, 1), Some(vec![23]));
        // Fewer ports than N, or an N-th lo of 0: no answer.
        assert_eq!(candidates(&rows, 0, 5), None);
        assert_eq!(candidates(&[(23, 0, 10), (22, 0, 5)], 0, 2), None);
        // A full page of rows: the ports beyond it have up to the last row's hi.
        let mut page: Vec<(u16, u64, u64)> = vec![(23, 10_000, 10_000)];
        page.extend((1..DIGEST_CANDIDATE_ROWS as u16).map(|p| (1000 + p, 1, 50)));
        assert_eq!(candidates(&page, 9_950, 1), None);
        assert_eq!(candidates(&page, 9_000, 1), Some(vec![23]));
        assert_eq!(candidates(&page, 100, 1), Some(vec![23]));
        // Too many candidates to count cheaply: no answer.
        let flat: Vec<(u16, u64, u64)> = (0..40).map(|p| (p, 100, 100)).collect();
        assert_eq!(candidates(&flat, 0, 4), None);
    }

    #[test]
    fn region_names() {
        assert_eq!(region_name(""), "others");
        assert_eq!(region_name("??"), "unknown");
        assert_eq!(region_name("JP"), "JP");
        assert_eq!(proto_name(58), "icmpv6");
    }
}
