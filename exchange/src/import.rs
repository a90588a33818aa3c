//! Imports partner IODEF files (v1 and v2): from the inbox, the CLI and the upload endpoint.
//!
//! Each file is identified by the SHA-256 of its bytes. It is first validated in one streaming
//! pass ([`iodef::validate`]): a file that is not well-formed, not valid per the schema, over
//! a cap or that cannot be stored is quarantined (moved to `<quarantine>/<partner>/` with a
//! `.reason.txt` listing every error with its element path and line) and recorded as such. A
//! schema-valid file whose only problems are rules of the RFC text beyond the schema (a
//! `Node` with neither Address nor DomainData, as in RFC 8274's own example B.2) is stored,
//! its problems recorded as warnings in the import's `reason` and answered to the sender.
//! A valid file is streamed a second time, one Incident at a time (v1 converted to the v2
//! model), and every address it names becomes one row of `iodef_indicators` (incident, restriction, category, time, role, protocol and ports).
//! The `iodef_imports` row is written last: a file whose import died half-way is completed on
//! the next attempt (the indicators already stored are skipped by number), and a file imported
//! before is answered as a duplicate.
//!
//! Memory is bounded whatever the document (aggregator README, "Exchange"): every pass streams
//! one unit at a time (a top-level EventData, or an Incident without its EventData), each unit
//! capped in bytes and elements (`import_max_unit_bytes`, `import_max_unit_elements`); the rows
//! are produced per EventData and sent in chunks of [`CHUNK_ROWS`] through a channel of two,
//! the strings of an Incident shared by its rows, not copied; every stored string is capped
//! (`import_max_string_bytes`) and so is the number of rows (`import_max_indicators`), checked
//! in a pass of their own before anything is stored, so a document over a cap is quarantined
//! whole with the element named. Uploads are spooled to a file, not held in memory.

use std::io::BufRead;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::config::Exchange;
use super::ExchangeError;
use teiten_store::geo::address_bytes;
use teiten_store::queries;
use teiten_store::time;

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
        /// Rules of the RFC text the file breaks, each with its element path and line: stored
        /// all the same (the schema accepts it).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
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

/// One row of `iodef_indicators`, borrowed from a [`Chunk`].
#[derive(Debug, Clone, Row, Serialize)]
struct IndicatorRow<'a> {
    sha256: &'a str,
    n: u32,
    partner: &'a str,
    incident: &'a str,
    restriction: &'a str,
    category: &'a str,
    time: u32,
    role: i8,
    address: &'a str,
    addr: [u8; 16],
    proto: u8,
    ports: &'a str,
}

/// Rows sent to ClickHouse at a time (and the most a [`Chunk`] holds).
pub const CHUNK_ROWS: usize = 1000;

/// What the rows of one Incident share, stored once.
#[derive(Debug, Default)]
struct Shared {
    incident: String,
    restriction: String,
    category: String,
}

/// One address of an EventData.
#[derive(Debug)]
struct Indicator {
    n: u32,
    time: u32,
    role: i8,
    address: Box<str>,
    addr: [u8; 16],
    proto: u8,
    /// Shared by the addresses of one System.
    ports: Arc<str>,
}

/// Up to [`CHUNK_ROWS`] rows of one Incident.
#[derive(Debug)]
struct Chunk {
    shared: Arc<Shared>,
    rows: Vec<Indicator>,
}

/// The caps of an import (from `[exchange]`).
#[derive(Debug, Clone, Copy)]
struct Caps {
    max_string: usize,
    max_rows: u32,
}

/// Why a document was not walked to its end.
#[derive(Debug)]
enum WalkError {
    /// Reading failed (cap of the reader, malformed XML, I/O).
    Iodef(iodef::Error),
    /// A cap of the import: the message names the element and the config field.
    Cap(String),
    /// The receiver of the rows went away.
    Stopped,
}

impl From<iodef::Error> for WalkError {
    fn from(e: iodef::Error) -> Self {
        WalkError::Iodef(e)
    }
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
    /// Why it was quarantined, or the warnings of a stored file (rules of the RFC text it
    /// breaks).
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
    queries::imports_recent(db, limit)
        .fetch_all(client)
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

/// `value` if it is within the string cap; else the error naming `what`.
fn capped(value: &str, caps: Caps, what: impl FnOnce() -> String) -> Result<(), WalkError> {
    if value.len() > caps.max_string {
        return Err(WalkError::Cap(format!(
            "{}: {} bytes, more than exchange.import_max_string_bytes ({})",
            what(),
            value.len(),
            caps.max_string
        )));
    }
    Ok(())
}

/// What the rows of Incident number `k` (1-based) share, and their default time.
fn shared_of(i: &iodef::v2::Incident, k: u32, caps: Caps) -> Result<(Shared, u32), WalkError> {
    let at = |e: &str| format!("/IODEF-Document/Incident[{k}]{e}");
    if let Some(id) = &i.incident_id {
        let len = id.value.len() + id.name.as_ref().map_or(0, |n| n.len() + 1);
        if len > caps.max_string {
            return Err(WalkError::Cap(format!(
                "{}: {len} bytes (name and value), more than exchange.import_max_string_bytes ({})",
                at("/IncidentID"),
                caps.max_string
            )));
        }
    }
    let incident = i
        .incident_id
        .as_ref()
        .map(|id| match &id.name {
            Some(name) => format!("{name}:{}", id.value),
            None => id.value.clone(),
        })
        .unwrap_or_default();
    let restriction = restriction(i.restriction.as_ref());
    capped(&restriction, caps, || at("/@restriction"))?;
    let category = incident_category(i);
    capped(&category, caps, || {
        at("/Assessment (the incident categories)")
    })?;
    let time = unix(i.detect_time.as_ref())
        .or_else(|| unix(i.start_time.as_ref()))
        .or_else(|| unix(i.report_time.as_ref()))
        .or_else(|| unix(i.generation_time.as_ref()))
        .unwrap_or(0);
    Ok((
        Shared {
            incident,
            restriction,
            category,
        },
        time,
    ))
}

/// Every address of one top-level EventData (number `ev` of Incident `k`, nested EventData
/// included) as rows numbered from `*n`, handed to `emit` one at a time.
fn event_rows(
    e: &iodef::v2::EventData,
    incident_time: u32,
    (k, ev): (u32, u32),
    caps: Caps,
    n: &mut u32,
    emit: &mut dyn FnMut(Indicator) -> Result<(), WalkError>,
) -> Result<(), WalkError> {
    let at = || format!("/IODEF-Document/Incident[{k}]/EventData[{ev}]");
    let mut stack: Vec<(&iodef::v2::EventData, u32)> = vec![(e, incident_time)];
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
                capped(&ports, caps, || {
                    format!("{}/Flow/System/Service/Portlist", at())
                })?;
                let ports: Arc<str> = ports.into();
                let Some(node) = &s.node else { continue };
                for c in &node.choice {
                    let iodef::v2::NodeChoice::Address(a) = c else {
                        continue;
                    };
                    let value = a.value.trim();
                    capped(value, caps, || format!("{}/Flow/System/Node/Address", at()))?;
                    if *n >= caps.max_rows {
                        return Err(WalkError::Cap(format!(
                            "{}/Flow/System/Node/Address: more than exchange.import_max_indicators ({}) addresses in the document",
                            at(),
                            caps.max_rows
                        )));
                    }
                    let ip: Option<IpAddr> = value.parse().ok();
                    emit(Indicator {
                        n: *n,
                        time: t,
                        role,
                        address: ip
                            .map_or_else(|| value.to_owned(), super::reports::canonical)
                            .into(),
                        addr: ip.map_or([0; 16], address_bytes),
                        proto,
                        ports: ports.clone(),
                    })?;
                    *n += 1;
                }
            }
        }
        stack.extend(e.event_data.iter().rev().map(|c| (c, t)));
    }
    Ok(())
}

/// Sends the rows gathered so far, if any.
fn flush(
    sink: &mut dyn FnMut(Chunk) -> bool,
    shared: &Arc<Shared>,
    rows: &mut Vec<Indicator>,
) -> Result<(), WalkError> {
    if rows.is_empty() {
        return Ok(());
    }
    let chunk = Chunk {
        shared: shared.clone(),
        rows: std::mem::replace(rows, Vec::with_capacity(CHUNK_ROWS)),
    };
    if sink(chunk) {
        Ok(())
    } else {
        Err(WalkError::Stopped)
    }
}

/// Streams a document and hands its rows to `sink` in chunks of at most [`CHUNK_ROWS`]
/// (`sink` answers false to stop: [`WalkError::Stopped`]). Returns the incidents and rows.
fn walk(
    input: impl BufRead,
    opts: &iodef::ReadOptions,
    caps: Caps,
    sink: &mut dyn FnMut(Chunk) -> bool,
) -> Result<(u32, u32), WalkError> {
    let mut r = iodef::StreamReader::new(input, opts)?;
    let (mut incidents, mut n, mut events, mut time) = (0u32, 0u32, 0u32, 0u32);
    let mut shared = Arc::new(Shared::default());
    let mut rows: Vec<Indicator> = Vec::new();
    while let Some(item) = r.next_item()? {
        match item {
            iodef::StreamItem::Incident(i) => {
                let (s, t) = shared_of(&i, incidents + 1, caps)?;
                flush(sink, &shared, &mut rows)?;
                shared = Arc::new(s);
                time = t;
                events = 0;
            }
            iodef::StreamItem::EventData(e) => {
                events += 1;
                let mut emit = |row: Indicator| -> Result<(), WalkError> {
                    rows.push(row);
                    if rows.len() >= CHUNK_ROWS {
                        flush(sink, &shared, &mut rows)?;
                    }
                    Ok(())
                };
                event_rows(&e, time, (incidents + 1, events), caps, &mut n, &mut emit)?;
            }
            iodef::StreamItem::IncidentEnd(_) => incidents += 1,
        }
    }
    flush(sink, &shared, &mut rows)?;
    Ok((incidents, n))
}

/// The reader's caps for imports: the file size, and the unit caps that bound its memory.
fn read_options(x: &Exchange) -> iodef::ReadOptions {
    let c = &x.config;
    iodef::ReadOptions {
        lenient: false,
        limits: iodef::Limits {
            max_bytes: c.max_upload_bytes as u64,
            // A stored string is at most 64 KiB; a text value four times that is refused.
            max_token_bytes: 1 << 18,
            max_unit_bytes: c.import_max_unit_bytes,
            max_unit_elements: c.import_max_unit_elements,
            // Diagnostics name values and paths (shortened); 200 are plenty for a reason.
            max_diagnostics: 200,
            ..iodef::Limits::default()
        },
    }
}

/// Indicator numbers already stored for `sha256`, as a bit set (numbers at or past the row cap
/// are not kept: no row of ours has one).
async fn stored_rows(
    client: &Client,
    db: &str,
    sha256: &str,
    max_rows: u32,
) -> Result<Vec<u64>, ExchangeError> {
    let what = || format!("checking import {sha256}");
    let mut cur = queries::import_stored_indicators(db, sha256)
        .query(client)
        .and_then(|q| q.fetch::<u32>())
        .map_err(|e| ExchangeError::ch(what(), e))?;
    let mut bits: Vec<u64> = Vec::new();
    while let Some(n) = cur.next().await.map_err(|e| ExchangeError::ch(what(), e))? {
        if n < max_rows {
            let w = (n / 64) as usize;
            if bits.len() <= w {
                bits.resize(w + 1, 0);
            }
            bits[w] |= 1 << (n % 64);
        }
    }
    Ok(bits)
}

fn is_stored(bits: &[u64], n: u32) -> bool {
    bits.get((n / 64) as usize)
        .is_some_and(|w| w & (1 << (n % 64)) != 0)
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
    let previous: Option<PreviousRow> = queries::import_by_sha(db, &sha256)
        .fetch_optional(client)
        .await
        .map_err(|e| ExchangeError::ch(format!("looking up import {sha256}"), e))?;
    if let Some(p) = previous {
        return Ok(Imported::Duplicate {
            sha256,
            previous: p.status,
        });
    }

    // Pass 1: validate (with the import's caps: the reader's errors name the element).
    let ropts = read_options(x);
    let caps = Caps {
        max_string: x.config.import_max_string_bytes,
        max_rows: x.config.import_max_indicators,
    };
    let s = src.clone();
    let vopts = iodef::ValidateOptions {
        expect: None,
        limits: ropts.limits,
    };
    let report = tokio::task::spawn_blocking(move || s.open().map(|r| iodef::validate(r, &vopts)))
        .await
        .expect("the validator does not panic")
        .map_err(io(format!("reading {name}")))?;
    let version = match report.version {
        Some(iodef::Version::V1) => 1,
        Some(iodef::Version::V2) => 2,
        None => 0,
    };
    let mut reason = String::new();
    let mut warnings = Vec::new();
    if !report.is_valid() {
        let mut lines: Vec<String> = report.errors().map(ToString::to_string).collect();
        if report.dropped > 0 {
            lines.push(format!("... and {} more", report.dropped));
        }
        if lines.is_empty() {
            lines.push("not an IODEF document".into());
        }
        if report.is_schema_valid() && report.version.is_some() {
            // The schema accepts it: stored, with what the RFC text says is wrong.
            warnings = report
                .errors()
                .map(|d| format!("warning: {}: {}", d.location, d.message))
                .chain((report.dropped > 0).then(|| format!("... and {} more", report.dropped)))
                .collect();
        } else {
            reason = lines.join("\n");
        }
    }
    drop(report);

    // Pass 2: the import's own caps (string lengths, rows), before anything is stored.
    if reason.is_empty() {
        let (s, o) = (src.clone(), ropts.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let r = s.open().map_err(|e| WalkError::Iodef(e.into()))?;
            walk(r, &o, caps, &mut |_| true)
        })
        .await
        .expect("the import check does not panic");
        match checked {
            Ok(_) => {}
            Err(WalkError::Cap(m)) => reason = m,
            Err(WalkError::Iodef(iodef::Error::Io(e))) => {
                return Err(ExchangeError::Io {
                    what: format!("reading {name}"),
                    source: e,
                })
            }
            Err(WalkError::Iodef(e)) => reason = e.to_string(),
            Err(WalkError::Stopped) => unreachable!("the check's sink never stops"),
        }
    }
    if !reason.is_empty() {
        quarantine(x, partner, name, &sha256, src.as_ref(), &reason)?;
        record(
            client, db, &sha256, partner, name, version, 1, &reason, 0, 0,
        )
        .await?;
        tracing::warn!(partner, file = name, %sha256, reason = %reason.lines().next().unwrap_or(""), "IODEF import quarantined");
        return Ok(Imported::Quarantined { sha256, reason });
    }

    // Pass 3: indicators, streamed to ClickHouse in chunks; a partly stored file is completed.
    let stored = stored_rows(client, db, &sha256, caps.max_rows).await?;
    let (tx, mut rx) = mpsc::channel::<Chunk>(2);
    let s = src.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<(u32, u32), WalkError> {
        let r = s.open().map_err(|e| WalkError::Iodef(e.into()))?;
        walk(r, &ropts, caps, &mut |c| tx.blocking_send(c).is_ok())
    });
    let what = || format!("storing the indicators of {name}");
    let mut insert = client
        .insert::<IndicatorRow>("iodef_indicators")
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    while let Some(chunk) = rx.recv().await {
        let sh = &chunk.shared;
        for r in chunk.rows.iter().filter(|r| !is_stored(&stored, r.n)) {
            let row = IndicatorRow {
                sha256: &sha256,
                n: r.n,
                partner,
                incident: &sh.incident,
                restriction: &sh.restriction,
                category: &sh.category,
                time: r.time,
                role: r.role,
                address: &r.address,
                addr: r.addr,
                proto: r.proto,
                ports: &r.ports,
            };
            insert
                .write(&row)
                .await
                .map_err(|e| ExchangeError::ch(what(), e))?;
        }
    }
    let (incidents, total) = match reader.await.expect("the reader does not panic") {
        Ok(x) => x,
        Err(WalkError::Iodef(e)) => {
            return Err(ExchangeError::Iodef {
                what: format!("reading {name}"),
                source: e,
            })
        }
        Err(WalkError::Cap(m)) => return Err(ExchangeError::Invalid(m)),
        Err(WalkError::Stopped) => {
            return Err(ExchangeError::Invalid(format!(
                "storing the indicators of {name} stopped"
            )))
        }
    };
    insert
        .end()
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?;
    let noted = warnings.join("\n");
    record(
        client, db, &sha256, partner, name, version, 0, &noted, incidents, total,
    )
    .await?;
    if warnings.is_empty() {
        tracing::info!(partner, file = name, %sha256, incidents, indicators = total, "IODEF file imported");
    } else {
        tracing::warn!(partner, file = name, %sha256, incidents, indicators = total, warnings = warnings.len(), first = %warnings[0], "IODEF file imported with warnings: rules of the RFC text broken");
    }
    Ok(Imported::Stored {
        sha256,
        incidents,
        indicators: total,
        warnings,
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
        received: time::now() as u32,
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

/// The attempts file of an inbox file: `<dir>/.<name>.attempts`, holding the number of
/// attempts started and, on the next line, why the last one did not finish.
fn attempts_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.attempts"))
}

fn read_attempts(p: &Path) -> (u32, String) {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let (count, reason) = text.split_once('\n').unwrap_or((&text, ""));
    (count.trim().parse().unwrap_or(0), reason.trim().to_owned())
}

fn write_attempts(p: &Path, count: u32, reason: &str) -> std::io::Result<()> {
    super::export::write_atomic(p, format!("{count}\n{reason}\n").as_bytes())
}

/// What an attempt that never reported back is taken to have been.
const INTERRUPTED: &str =
    "interrupted: the aggregator stopped or died while importing this file (killed, out of memory?)";

/// Quarantines an inbox file that failed or was interrupted `count` times.
#[allow(clippy::too_many_arguments)]
async fn give_up(
    client: &Client,
    db: &str,
    x: &Exchange,
    partner: &str,
    name: &str,
    path: &Path,
    count: u32,
    last: &str,
) -> Result<Imported, ExchangeError> {
    let src = path.to_path_buf();
    let sha256 = digest(&src).map_err(|source| ExchangeError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    let last = if last.is_empty() { INTERRUPTED } else { last };
    let reason = format!("import failed or was interrupted {count} times; the last time: {last}");
    quarantine(x, partner, name, &sha256, &src, &reason)?;
    record(client, db, &sha256, partner, name, 0, 1, &reason, 0, 0).await?;
    tracing::warn!(partner, file = name, %sha256, %reason, "Inbox file quarantined after repeated failures");
    Ok(Imported::Quarantined { sha256, reason })
}

/// Imports every file waiting in `<inbox>/<partner>/`, moving each to `done/` once imported
/// or quarantined. A file whose import failed stays for the next run, except that a file
/// whose import failed or was interrupted `import_attempts` times is quarantined with the
/// last reason (failures because ClickHouse is unavailable do not count). Each import takes
/// one of the `max_concurrent_imports` slots, waiting for one if need be.
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
            let Ok(_slot) = x.imports.acquire().await else {
                break;
            };
            let marker = attempts_path(&dir, &name);
            let (count, last) = read_attempts(&marker);
            let result = if count >= x.config.import_attempts {
                give_up(client, db, x, &p.id, &name, &f, count, &last).await
            } else {
                // Counted before it starts: an attempt that kills the process counts too.
                if let Err(e) = write_attempts(&marker, count + 1, INTERRUPTED) {
                    tracing::error!(file = %marker.display(), error = %e, "Cannot record an import attempt");
                }
                let r = import(client, db, x, &p.id, &name, f.clone()).await;
                if let Err(e) = &r {
                    if matches!(e, ExchangeError::ClickHouse { .. }) {
                        // Not the file's fault: this attempt does not count.
                        let _ = if count == 0 {
                            std::fs::remove_file(&marker)
                        } else {
                            write_attempts(&marker, count, &last)
                        };
                    } else {
                        let _ = write_attempts(&marker, count + 1, &e.to_string());
                    }
                }
                r
            };
            if result.is_ok() {
                let done = dir.join("done");
                let moved = std::fs::create_dir_all(&done)
                    .and_then(|()| std::fs::rename(&f, done.join(&name)));
                if let Err(e) = moved {
                    tracing::error!(file = %f.display(), error = %e, "Cannot move an imported file to done/");
                }
                let _ = std::fs::remove_file(&marker);
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
    fn import_rows_have_the_store_columns() {
        // The row type and the store's column list (the sample rows) agree.
        assert_eq!(
            <ImportRow<'static> as clickhouse::Row>::COLUMN_NAMES.join(", "),
            teiten_store::queries::IODEF_IMPORTS_INSERT_COLUMNS
        );
    }

    #[test]
    fn indicator_rows_have_the_store_columns() {
        // The row type and the store's column list (the sample rows) agree.
        assert_eq!(
            <IndicatorRow<'static> as clickhouse::Row>::COLUMN_NAMES.join(", "),
            teiten_store::queries::IODEF_INDICATORS_INSERT_COLUMNS
        );
    }

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
        let caps = Caps {
            max_string: 1024,
            max_rows: 100,
        };
        let mut chunks = Vec::new();
        let (incidents, n) = walk(&doc[..], &iodef::ReadOptions::strict(), caps, &mut |c| {
            chunks.push(c);
            true
        })
        .unwrap();
        assert_eq!(incidents, 1);
        assert_eq!(chunks.len(), 1);
        let sh = chunks[0].shared.clone();
        let rows = &chunks[0].rows;
        type Row<'a> = (u32, &'a str, i8, u8, &'a str, u32, &'a str, &'a str);
        let got: Vec<Row> = rows
            .iter()
            .map(|r| {
                (
                    r.n,
                    &*r.address,
                    r.role,
                    r.proto,
                    &*r.ports,
                    r.time,
                    sh.restriction.as_str(),
                    sh.incident.as_str(),
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
        assert_eq!(sh.category, "scanning");
    }

    /// A document of `addresses` Address elements in one Node, with an IncidentID of
    /// `id_len` bytes.
    fn many_addresses(id_len: usize, addresses: usize) -> Vec<u8> {
        let mut d = format!(
            "<IODEF-Document version=\"2.00\" xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\">\
             <Incident purpose=\"reporting\"><IncidentID name=\"c.example\">{}</IncidentID>\
             <GenerationTime>2026-01-01T00:00:00Z</GenerationTime>\
             <Contact role=\"creator\" type=\"organization\"/><EventData><Flow>\
             <System category=\"source\"><Node>",
            "x".repeat(id_len)
        );
        for i in 0..addresses {
            d.push_str(&format!(
                "<Address category=\"ipv4-addr\">10.{}.{}.{}</Address>",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            ));
        }
        d.push_str("</Node></System></Flow></EventData></Incident></IODEF-Document>");
        d.into_bytes()
    }

    #[test]
    fn rows_come_in_chunks_sharing_the_incident_and_caps_name_the_element() {
        let caps = Caps {
            max_string: 1024,
            max_rows: 10_000,
        };
        let doc = many_addresses(1000, 2500);
        let mut sizes = Vec::new();
        let mut first: Option<Arc<Shared>> = None;
        let (_, n) = walk(&doc[..], &iodef::ReadOptions::strict(), caps, &mut |c| {
            sizes.push(c.rows.len());
            let f = first.get_or_insert_with(|| c.shared.clone());
            assert!(
                Arc::ptr_eq(f, &c.shared),
                "one copy of the incident's strings"
            );
            true
        })
        .unwrap();
        assert_eq!(n, 2500);
        assert_eq!(
            sizes,
            [1000, 1000, 500],
            "flushed as produced, within one EventData"
        );

        // The receiver going away stops the walk.
        let mut calls = 0;
        let r = walk(&doc[..], &iodef::ReadOptions::strict(), caps, &mut |_| {
            calls += 1;
            false
        });
        assert!(matches!(r, Err(WalkError::Stopped)), "{r:?}");
        assert_eq!(calls, 1);

        let e = match walk(
            &many_addresses(1100, 3)[..],
            &iodef::ReadOptions::strict(),
            caps,
            &mut |_| true,
        ) {
            Err(WalkError::Cap(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            e.contains("/IODEF-Document/Incident[1]/IncidentID")
                && e.contains("import_max_string_bytes (1024)"),
            "{e}"
        );
        let few = Caps {
            max_rows: 2000,
            ..caps
        };
        let e = match walk(&doc[..], &iodef::ReadOptions::strict(), few, &mut |_| true) {
            Err(WalkError::Cap(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            e.contains("Incident[1]/EventData[1]/Flow/System/Node/Address")
                && e.contains("import_max_indicators (2000)"),
            "{e}"
        );
    }

    #[test]
    fn stored_rows_are_a_bit_set() {
        let bits = vec![0b101u64, 1 << 63];
        assert!(is_stored(&bits, 0) && !is_stored(&bits, 1) && is_stored(&bits, 2));
        assert!(is_stored(&bits, 127) && !is_stored(&bits, 128) && !is_stored(&bits, 100_000));
    }

    #[test]
    fn attempts_are_counted_in_a_hidden_file() {
        let d = tempfile::tempdir().unwrap();
        let p = attempts_path(d.path(), "a.xml");
        assert_eq!(p.file_name().unwrap(), ".a.xml.attempts");
        assert_eq!(read_attempts(&p), (0, String::new()));
        write_attempts(&p, 2, "reading a.xml: limit exceeded").unwrap();
        assert_eq!(
            read_attempts(&p),
            (2, "reading a.xml: limit exceeded".into())
        );
    }
}
