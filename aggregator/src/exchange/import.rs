//! Imports partner IODEF files (v1 and v2): from the inbox, the CLI and the upload endpoint.
//!
//! Each file is identified by the SHA-256 of its bytes. It is first validated in one streaming
//! pass ([`iodef::validate`]): an invalid file is quarantined (moved to
//! `<quarantine>/<partner>/` with a `.reason.txt` listing every error with its element path and
//! line) and recorded as such. A valid file is streamed a second time, one Incident at a time
//! (v1 converted to the v2 model), and every address it names becomes one row of
//! `iodef_indicators` (incident, restriction, category, time, role, protocol and ports).
//! The `iodef_imports` row is written last: a file whose import died half-way is completed on
//! the next attempt (the indicators already stored are skipped by number), and a file imported
//! before is answered as a duplicate. Memory is bounded by one Incident.

use std::collections::HashSet;
use std::io::BufRead;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::config::Exchange;
use super::{now_unix, ExchangeError};
use crate::geo::address_bytes;
use crate::queries;

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Imported {
    /// Stored now.
    Stored {
        /// SHA-256 of the file.
        sha256: String,
        /// Incidents read.
        incidents: u32,
        /// Indicator rows stored.
        indicators: u32,
    },
    /// The same bytes were imported before (stored or quarantined): nothing was written.
    Duplicate {
        /// SHA-256 of the file.
        sha256: String,
        /// How it was imported then (`stored` or `quarantined`).
        previous: String,
    },
    /// Invalid: quarantined with the reasons.
    Quarantined {
        /// SHA-256 of the file.
        sha256: String,
        /// Every error, one per line, with path and line.
        reason: String,
    },
}

/// One row of `iodef_indicators`.
#[derive(Debug, Clone, Row, Serialize)]
struct IndicatorRow {
    sha256: String,
    n: u32,
    partner: String,
    incident: String,
    restriction: String,
    category: String,
    time: u32,
    role: i8,
    address: String,
    addr: [u8; 16],
    proto: u8,
    ports: String,
}

/// One row of `iodef_imports`.
#[derive(Debug, Row, Serialize)]
struct ImportRow<'a> {
    sha256: &'a str,
    partner: &'a str,
    name: &'a str,
    received: u32,
    iodef_version: u8,
    status: i8,
    reason: &'a str,
    incidents: u32,
    indicators: u32,
}

#[derive(Debug, Row, Deserialize)]
struct PreviousRow {
    status: String,
    #[allow(dead_code)]
    partner: String,
    #[allow(dead_code)]
    reason: String,
    #[allow(dead_code)]
    incidents: u32,
    #[allow(dead_code)]
    indicators: u32,
}

/// A listed import (dashboard, CLI).
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ImportListing {
    /// SHA-256 of the file.
    pub sha256: String,
    /// Partner.
    pub partner: String,
    /// File name as received.
    pub name: String,
    /// Unix seconds.
    pub received: u32,
    /// 1 or 2 (0: not recognised).
    pub iodef_version: u8,
    /// `stored` or `quarantined`.
    pub status: String,
    /// Why it was quarantined.
    pub reason: String,
    /// Incidents.
    pub incidents: u32,
    /// Indicator rows.
    pub indicators: u32,
}

/// The newest imports.
pub async fn recent(
    client: &Client,
    db: &str,
    limit: u32,
) -> Result<Vec<ImportListing>, ExchangeError> {
    client
        .query(&queries::sql(queries::IMPORTS_RECENT, db))
        .bind(limit)
        .fetch_all()
        .await
        .map_err(|e| ExchangeError::ch("listing imports", e))
}

/// Where an import's bytes come from: opened once per pass.
pub trait Source: Send + Sync + 'static {
    /// A fresh reader from the start.
    fn open(&self) -> std::io::Result<Box<dyn BufRead + Send>>;
}

impl Source for PathBuf {
    fn open(&self) -> std::io::Result<Box<dyn BufRead + Send>> {
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 16,
            std::fs::File::open(self)?,
        )))
    }
}

impl Source for bytes::Bytes {
    fn open(&self) -> std::io::Result<Box<dyn BufRead + Send>> {
        Ok(Box::new(std::io::Cursor::new(self.clone())))
    }
}

fn digest(src: &dyn Source) -> std::io::Result<String> {
    let mut r = src.open()?;
    let mut h = Sha256::new();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        h.update(buf);
        let n = buf.len();
        r.consume(n);
    }
    Ok(hex::encode(h.finalize()))
}

fn restriction(r: Option<&iodef::v2::Restriction>) -> String {
    match r {
        Some(r) => r.ext().unwrap_or(r.as_str()).to_owned(),
        None => String::new(),
    }
}

fn incident_category(i: &iodef::v2::Incident) -> String {
    let mut cats: Vec<&str> = Vec::new();
    for a in &i.assessment {
        cats.extend(a.incident_category.iter().map(|c| c.value.trim()));
        if a.incident_category.is_empty() {
            for c in &a.choice {
                if let iodef::v2::AssessmentChoice::SystemImpact(s) = c {
                    if let Some(k) = &s.kind {
                        cats.push(k.as_str());
                    }
                }
            }
        }
    }
    cats.retain(|c| !c.is_empty());
    cats.dedup();
    cats.join(",")
}

fn unix(t: Option<&iodef::DateTime>) -> Option<u32> {
    t.and_then(|t| t.to_utc())
        .and_then(|t| u32::try_from(t.timestamp()).ok())
}

/// Every address of an Incident as indicator rows (numbered from `*n`).
fn indicators(
    i: &iodef::v2::Incident,
    sha256: &str,
    partner: &str,
    n: &mut u32,
    out: &mut Vec<IndicatorRow>,
) {
    let incident = i
        .incident_id
        .as_ref()
        .map(|id| match &id.name {
            Some(name) => format!("{name}:{}", id.value),
            None => id.value.clone(),
        })
        .unwrap_or_default();
    let restriction = restriction(i.restriction.as_ref());
    let category = incident_category(i);
    let time = unix(i.detect_time.as_ref())
        .or_else(|| unix(i.start_time.as_ref()))
        .or_else(|| unix(i.report_time.as_ref()))
        .or_else(|| unix(i.generation_time.as_ref()))
        .unwrap_or(0);
    let mut stack: Vec<(&iodef::v2::EventData, u32)> =
        i.event_data.iter().rev().map(|e| (e, time)).collect();
    while let Some((e, inherited)) = stack.pop() {
        let t = unix(e.detect_time.as_ref())
            .or_else(|| unix(e.start_time.as_ref()))
            .unwrap_or(inherited);
        for f in &e.flow {
            for s in &f.system {
                let role = match s.category {
                    Some(iodef::v2::SystemCategory::Source) => 0,
                    Some(iodef::v2::SystemCategory::Target) => 1,
                    _ => 2,
                };
                let svc = s.service.first();
                let proto = svc
                    .and_then(|s| s.ip_protocol)
                    .and_then(|p| u8::try_from(p).ok())
                    .unwrap_or(0);
                let ports = svc
                    .map(|s| match (&s.port, &s.portlist) {
                        (Some(p), _) => p.to_string(),
                        (None, Some(l)) => l.to_string(),
                        _ => String::new(),
                    })
                    .unwrap_or_default();
                let Some(node) = &s.node else { continue };
                for c in &node.choice {
                    let iodef::v2::NodeChoice::Address(a) = c else {
                        continue;
                    };
                    let value = a.value.trim();
                    let ip: Option<IpAddr> = value.parse().ok();
                    out.push(IndicatorRow {
                        sha256: sha256.to_owned(),
                        n: *n,
                        partner: partner.to_owned(),
                        incident: incident.clone(),
                        restriction: restriction.clone(),
                        category: category.clone(),
                        time: t,
                        role,
                        address: ip.map_or_else(|| value.to_owned(), super::reports::canonical),
                        addr: ip.map_or([0; 16], address_bytes),
                        proto,
                        ports: ports.clone(),
                    });
                    *n += 1;
                }
            }
        }
        stack.extend(e.event_data.iter().rev().map(|c| (c, t)));
    }
}

/// Imports one file from `partner`. `name` is the file name as received (kept for the
/// listing). Invalid files are written to the quarantine directory.
pub async fn import(
    client: &Client,
    db: &str,
    x: &Exchange,
    partner: &str,
    name: &str,
    src: impl Source,
) -> Result<Imported, ExchangeError> {
    if x.partner(partner).is_none() {
        return Err(ExchangeError::Invalid(format!(
            "`{partner}` is not a configured partner"
        )));
    }
    let src = std::sync::Arc::new(src);
    let io = |what: String| move |source| ExchangeError::Io { what, source };
    let s = src.clone();
    let sha256 = tokio::task::spawn_blocking(move || digest(s.as_ref()))
        .await
        .expect("the digest task does not panic")
        .map_err(io(format!("reading {name}")))?;
    let previous: Option<PreviousRow> = client
        .query(&queries::sql(queries::IMPORT_BY_SHA, db))
        .bind(&sha256)
        .fetch_optional()
        .await
        .map_err(|e| ExchangeError::ch(format!("looking up import {sha256}"), e))?;
    if let Some(p) = previous {
        return Ok(Imported::Duplicate {
            sha256,
            previous: p.status,
        });
    }

    // Pass 1: validate.
    let s = src.clone();
    let report = tokio::task::spawn_blocking(move || {
        s.open()
            .map(|r| iodef::validate(r, &iodef::ValidateOptions::default()))
    })
    .await
    .expect("the validator does not panic")
    .map_err(io(format!("reading {name}")))?;
    let version = match report.version {
        Some(iodef::Version::V1) => 1,
        Some(iodef::Version::V2) => 2,
        None => 0,
    };
    if !report.is_valid() {
        let mut reason: Vec<String> = report.errors().map(ToString::to_string).collect();
        if report.dropped > 0 {
            reason.push(format!("... and {} more", report.dropped));
        }
        if reason.is_empty() {
            reason.push("not an IODEF document".into());
        }
        let reason = reason.join("\n");
        quarantine(x, partner, name, &sha256, src.as_ref(), &reason)?;
        record(
            client, db, &sha256, partner, name, version, 1, &reason, 0, 0,
        )
        .await?;
        tracing::warn!(partner, file = name, %sha256, errors = report.errors().count(), "IODEF import quarantined");
        return Ok(Imported::Quarantined { sha256, reason });
    }

    // Pass 2: indicators, streamed to ClickHouse in chunks; a partly stored file is completed.
    let stored: HashSet<u32> = client
        .query(&queries::sql(queries::IMPORT_STORED_INDICATORS, db))
        .bind(&sha256)
        .fetch_all::<u32>()
        .await
        .map_err(|e| ExchangeError::ch(format!("checking import {sha256}"), e))?
        .into_iter()
        .collect();
    let (tx, mut rx) = mpsc::channel::<Vec<IndicatorRow>>(4);
    let s = src.clone();
    let (sha, who) = (sha256.clone(), partner.to_owned());
    let reader = tokio::task::spawn_blocking(move || -> Result<(u32, u32), iodef::Error> {
        let mut r = iodef::StreamReader::new(s.open()?, &iodef::ReadOptions::strict())?;
        let (mut incidents, mut n) = (0u32, 0u32);
        let mut chunk = Vec::new();
        while let Some(i) = r.next_incident()? {
            incidents += 1;
            indicators(&i, &sha, &who, &mut n, &mut chunk);
            if chunk.len() >= 10_000 && tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                break;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        Ok((incidents, n))
    });
    let what = || format!("storing the indicators of {name}");
    let mut insert = client
        .insert::<IndicatorRow>("iodef_indicators")
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    while let Some(rows) = rx.recv().await {
        for row in rows.iter().filter(|r| !stored.contains(&r.n)) {
            insert
                .write(row)
                .await
                .map_err(|e| ExchangeError::ch(what(), e))?;
        }
    }
    let (incidents, total) = reader
        .await
        .expect("the reader does not panic")
        .map_err(|e| ExchangeError::Iodef {
            what: format!("reading {name}"),
            source: e,
        })?;
    insert
        .end()
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    record(
        client, db, &sha256, partner, name, version, 0, "", incidents, total,
    )
    .await?;
    tracing::info!(partner, file = name, %sha256, incidents, indicators = total, "IODEF file imported");
    Ok(Imported::Stored {
        sha256,
        incidents,
        indicators: total,
    })
}

#[allow(clippy::too_many_arguments)]
async fn record(
    client: &Client,
    db: &str,
    sha256: &str,
    partner: &str,
    name: &str,
    iodef_version: u8,
    status: i8,
    reason: &str,
    incidents: u32,
    indicators: u32,
) -> Result<(), ExchangeError> {
    let _ = db;
    let what = || format!("recording the import of {name}");
    let mut ins = client
        .insert::<ImportRow>("iodef_imports")
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    ins.write(&ImportRow {
        sha256,
        partner,
        name,
        received: now_unix() as u32,
        iodef_version,
        status,
        reason,
        incidents,
        indicators,
    })
    .await
    .map_err(|e| ExchangeError::ch(what(), e))?;
    ins.end().await.map_err(|e| ExchangeError::ch(what(), e))
}

/// A file name safe to create in our directories (path parts and odd characters replaced).
fn safe_name(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if clean.trim_matches('.').is_empty() {
        "upload".into()
    } else {
        clean
    }
}

/// Copies the bytes to `<quarantine>/<partner>/<sha-prefix>-<name>` with the reason beside.
fn quarantine(
    x: &Exchange,
    partner: &str,
    name: &str,
    sha256: &str,
    src: &dyn Source,
    reason: &str,
) -> Result<PathBuf, ExchangeError> {
    let dir = x.config.quarantine.join(partner);
    let io = |what: String| move |source| ExchangeError::Io { what, source };
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join(format!("{}-{}", &sha256[..12], safe_name(name)));
    let mut r = src.open().map_err(io(format!("reading {name}")))?;
    let mut f = std::fs::File::create(&path).map_err(io(format!("creating {}", path.display())))?;
    std::io::copy(&mut r, &mut f).map_err(io(format!("writing {}", path.display())))?;
    let mut rp = path.clone().into_os_string();
    rp.push(".reason.txt");
    super::export::write_atomic(Path::new(&rp), format!("{reason}\n").as_bytes())
        .map_err(io(format!("writing {}", Path::new(&rp).display())))?;
    Ok(path)
}

/// Imports every file waiting in `<inbox>/<partner>/`, moving each to `done/` once imported
/// or quarantined. Files whose import failed for a transient reason stay for the next run.
pub async fn scan_inbox(
    client: &Client,
    db: &str,
    x: &Exchange,
) -> Vec<(String, Result<Imported, ExchangeError>)> {
    let mut out = Vec::new();
    for p in &x.partners {
        let dir = x.config.inbox.join(&p.id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let result = import(client, db, x, &p.id, &name, f.clone()).await;
            if result.is_ok() {
                let done = dir.join("done");
                let moved = std::fs::create_dir_all(&done)
                    .and_then(|()| std::fs::rename(&f, done.join(&name)));
                if let Err(e) = moved {
                    tracing::error!(file = %f.display(), error = %e, "Cannot move an imported file to done/");
                }
            }
            out.push((format!("{}/{name}", p.id), result));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("a b;c.xml"), "a_b_c.xml");
        assert_eq!(safe_name(".."), "upload");
        assert_eq!(safe_name(""), "upload");
    }

    #[test]
    fn every_address_becomes_an_indicator_with_role_ports_and_time() {
        let t = |s: i64| iodef::DateTime::from_unix(1_763_700_000 + s, 0).unwrap();
        let mut inc = iodef::ScanReport::new("c.example", "X-1", t(0))
            .tlp("green")
            .unwrap()
            .incident();
        inc.event_data
            .push(iodef::ScanEvent::tcp("1.0.0.1".parse().unwrap(), 40_000, 22, t(5)).event_data());
        inc.event_data.push(
            iodef::ScanEvent::udp("2001:db8::9".parse().unwrap(), 53, 161, t(9)).event_data(),
        );
        let mut doc = Vec::new();
        iodef::Document::V2(iodef::v2::Document {
            lang: Some("en".into()),
            incident: vec![inc],
            ..Default::default()
        })
        .write(&mut doc, iodef::WriteOptions::default())
        .unwrap();
        let mut r = iodef::StreamReader::new(&doc[..], &iodef::ReadOptions::strict()).unwrap();
        let mut rows = Vec::new();
        let mut n = 0;
        while let Some(i) = r.next_incident().unwrap() {
            indicators(&i, "ab", "p", &mut n, &mut rows);
        }
        type Row<'a> = (u32, &'a str, i8, u8, &'a str, u32, &'a str, &'a str);
        let got: Vec<Row> = rows
            .iter()
            .map(|r| {
                let a = r.address.as_str();
                (
                    r.n,
                    a,
                    r.role,
                    r.proto,
                    r.ports.as_str(),
                    r.time,
                    r.restriction.as_str(),
                    r.incident.as_str(),
                )
            })
            .collect();
        let (t5, t9) = (1_763_700_005, 1_763_700_009);
        assert_eq!(
            got,
            [
                (0, "1.0.0.1", 0, 6, "40000", t5, "green", "c.example:X-1"),
                (1, "0.0.0.0/0", 1, 6, "22", t5, "green", "c.example:X-1"),
                (2, "2001:db8::9", 0, 17, "53", t9, "green", "c.example:X-1"),
                (3, "::/0", 1, 17, "161", t9, "green", "c.example:X-1"),
            ]
        );
        assert_eq!(n, 4);
        assert_eq!(rows[0].addr, address_bytes("1.0.0.1".parse().unwrap()));
        assert_eq!(rows[1].addr, [0; 16], "a network is kept as text only");
        assert_eq!(rows[0].category, "scanning");
    }
}
