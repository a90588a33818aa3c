//! The daily file of one partner: that day's scan events whose source is in the partner's
//! countries, streamed from ClickHouse into an IODEF document on disk, in constant memory.
//!
//! # The file
//! `<outbox>/<partner>/teiten-<partner>-<YYYY-MM-DD>.xml` (`.xml.gz` with `gzip`), IODEF v2 or
//! v1 as the partner asks, one document per partner per day:
//! - one scan Incident (`IncidentID` `<partner>-<date>` in our CSIRT's namespace, our CSIRT as
//!   Contact, the partner's TLP as `restriction`, StartTime/EndTime the partner's day, and
//!   GenerationTime the end of that day, so that the bytes depend on the data only);
//! - inside it one `EventData` per scan event, ordered by source address, then time: DetectTime
//!   (microseconds), the source System (address, and a Service with the protocol and source
//!   port) and a target System whose address is the covering network `0.0.0.0/0` or `::/0`:
//!   the sensor address is never written (see [`iodef::ScanReport`]). ICMP events carry the
//!   ICMP type and code as `ProtoType`/`ProtoCode`;
//! - then one Incident per internal report of that day that the partner may receive (its TLP
//!   at or below the partner's ceiling and one of its indicator addresses in the partner's
//!   countries), without our affected host.
//!
//! Beside it, `<file>.manifest.json` ([`Manifest`]). Both are written to a temporary file,
//! synced and renamed, so a reader never sees half a file. Exporting the same day twice gives
//! the same bytes; when late events changed the day, the new file replaces the old one, its
//! revision goes up and the manifest says how many events were added.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{Countries, Exchange, Partner};
use super::reports::{self, StoredReport};
use super::ExchangeError;
use teiten_store::geo::address_from_bytes;
use teiten_store::queries;
use teiten_store::time;

/// One partner's day in UTC seconds: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayWindow {
    /// The date in the partner's time zone.
    pub date: NaiveDate,
    /// Local midnight starting the day.
    pub from: i64,
    /// Local midnight ending it.
    pub to: i64,
}

/// The first instant of a local date (the first existing hour when midnight falls in a DST gap).
fn start_of(date: NaiveDate, tz: Tz) -> i64 {
    (0..24)
        .find_map(|h| {
            tz.from_local_datetime(&date.and_hms_opt(h, 0, 0)?)
                .earliest()
        })
        .map(|t| t.timestamp())
        .unwrap_or_else(|| {
            date.and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp()
        })
}

/// The day `date` in time zone `tz`.
pub fn day_window(date: NaiveDate, tz: Tz) -> DayWindow {
    let next = date.succ_opt().unwrap_or(date);
    DayWindow {
        date,
        from: start_of(date, tz),
        to: start_of(next, tz),
    }
}

/// The date in `tz` at Unix time `t`.
pub fn local_date(t: i64, tz: Tz) -> NaiveDate {
    tz.timestamp_opt(t, 0)
        .single()
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

/// What is recorded beside each daily file (`<file>.manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The partner id.
    pub partner: String,
    /// The day, `YYYY-MM-DD`, in the partner's time zone.
    pub date: String,
    /// The time zone of the day.
    pub timezone: String,
    /// The day's bounds, RFC 3339 in UTC.
    pub window: [String; 2],
    /// The file name (in the same directory).
    pub file: String,
    /// IODEF version (1 or 2).
    pub iodef_version: u8,
    /// Scan events in the file.
    pub events: u64,
    /// Distinct source addresses among them.
    pub sources: u64,
    /// Internal reports included.
    pub reports: u32,
    /// File size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// When this revision was generated, RFC 3339 UTC.
    pub generated: String,
    /// 1 for the first file of the day, then one more for every changed re-export.
    pub revision: u32,
    /// What changed against the previous revision, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// How a re-export differs from the revision before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The previous revision's SHA-256.
    pub previous_sha256: String,
    /// Its event count.
    pub previous_events: u64,
    /// Events now minus events then (late events arrived: positive; retention: negative).
    pub events_delta: i64,
    /// Distinct sources now minus then.
    pub sources_delta: i64,
    /// Internal reports now minus then.
    pub reports_delta: i64,
}

/// The result of one export.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The file.
    pub path: PathBuf,
    /// Its manifest (the previous one when nothing changed).
    pub manifest: Manifest,
    /// False when the day was exported before with the same bytes (nothing was rewritten).
    pub changed: bool,
}

#[derive(Debug, Row, Deserialize)]
struct ExportRow {
    src: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
    t: u32,
    usec: u32,
}

/// The file name of a partner's day.
pub fn file_name(partner: &str, date: NaiveDate, gzip: bool) -> String {
    format!(
        "teiten-{partner}-{}.xml{}",
        date.format("%Y-%m-%d"),
        if gzip { ".gz" } else { "" }
    )
}

/// The manifest path of a daily file.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    file.with_file_name(name)
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> ExchangeError {
    move |source| ExchangeError::Io { what, source }
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn iodef_time(secs: i64, micros: u32) -> Result<iodef::DateTime, ExchangeError> {
    iodef::DateTime::from_unix(secs, micros.min(999_999) * 1000)
        .ok_or_else(|| ExchangeError::Invalid(format!("time {secs} is out of range")))
}

/// One stored event as an IODEF EventData (no destination address).
fn event_data(row: &ExportRow) -> Result<iodef::v2::EventData, ExchangeError> {
    let src: IpAddr = address_from_bytes(row.src);
    let time = iodef_time(i64::from(row.t), row.usec)?;
    let icmp = matches!(row.proto, 1 | 58);
    let ev = iodef::ScanEvent {
        source: src,
        source_port: (!icmp).then_some(row.sport),
        destination_port: (!icmp).then_some(row.dport),
        protocol: row.proto,
        time,
    };
    let mut e = ev.event_data();
    if icmp {
        // The sensor stores the ICMP type and code in the port columns.
        for f in &mut e.flow {
            for s in &mut f.system {
                if s.category == Some(iodef::v2::SystemCategory::Target) {
                    for svc in &mut s.service {
                        svc.proto_type = Some(i64::from(row.sport));
                        svc.proto_code = Some(i64::from(row.dport));
                    }
                }
            }
        }
    }
    Ok(e)
}

/// Either the file itself or a gzip stream into it.
enum Sink {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}

impl Sink {
    /// Ends the stream and syncs the file to disk.
    fn close(self) -> std::io::Result<()> {
        let w = match self {
            Sink::Plain(w) => w,
            Sink::Gzip(g) => g.finish()?,
        };
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    }
}

/// SHA-256 and size of a file, read in constant memory.
pub fn file_digest(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

/// Reads a manifest, if one is there and readable.
pub fn read_manifest(file: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(manifest_path(file)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the daily file of `partner` for `date` (in its time zone), with its manifest.
pub async fn export_day(
    client: &Client,
    db: &str,
    x: &Exchange,
    partner: &Partner,
    date: NaiveDate,
) -> Result<Exported, ExchangeError> {
    let window = day_window(date, partner.timezone);
    let dir = x.config.outbox.join(&partner.id);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let name = file_name(&partner.id, date, x.config.gzip);
    let path = dir.join(&name);
    let tmp = tmp_path(&path);

    let reports = reports::for_partner(client, db, partner, window.from, window.to).await?;

    let file = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    let sink = if x.config.gzip {
        Sink::Gzip(flate2::write::GzEncoder::new(
            BufWriter::with_capacity(1 << 16, file),
            flate2::Compression::default(),
        ))
    } else {
        Sink::Plain(BufWriter::with_capacity(1 << 16, file))
    };
    let result = write_document(client, db, x, partner, &window, &reports, sink).await;
    let (events, sources) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let (sha256, bytes) =
        file_digest(&tmp).map_err(io_err(format!("reading back {}", tmp.display())))?;

    let previous = read_manifest(&path).filter(|_| path.exists());
    if let Some(prev) = &previous {
        if prev.sha256 == sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Ok(Exported {
                path,
                manifest: prev.clone(),
                changed: false,
            });
        }
    }
    std::fs::rename(&tmp, &path).map_err(io_err(format!("renaming to {}", path.display())))?;
    let manifest = Manifest {
        partner: partner.id.clone(),
        date: date.format("%Y-%m-%d").to_string(),
        timezone: partner.timezone.name().to_owned(),
        window: [rfc3339(window.from), rfc3339(window.to)],
        file: name,
        iodef_version: match partner.version {
            iodef::Version::V1 => 1,
            iodef::Version::V2 => 2,
        },
        events,
        sources,
        reports: reports.len() as u32,
        bytes,
        sha256,
        generated: rfc3339(time::now()),
        revision: previous.as_ref().map_or(1, |p| p.revision + 1),
        change: previous.as_ref().map(|p| Change {
            previous_sha256: p.sha256.clone(),
            previous_events: p.events,
            events_delta: events as i64 - p.events as i64,
            sources_delta: sources as i64 - p.sources as i64,
            reports_delta: i64::from(reports.len() as u32) - i64::from(p.reports),
        }),
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let mpath = manifest_path(&path);
    write_atomic(&mpath, &json).map_err(io_err(format!("writing {}", mpath.display())))?;
    if let Some(c) = &manifest.change {
        tracing::info!(
            partner = %partner.id, date = %manifest.date, revision = manifest.revision,
            events_delta = c.events_delta, sources_delta = c.sources_delta,
            "Daily file changed since the last export"
        );
    }
    Ok(Exported {
        path,
        manifest,
        changed: true,
    })
}

/// Streams the document into `sink`; returns (events, distinct sources).
async fn write_document(
    client: &Client,
    db: &str,
    x: &Exchange,
    partner: &Partner,
    window: &DayWindow,
    reports: &[StoredReport],
    sink: Sink,
) -> Result<(u64, u64), ExchangeError> {
    let date = window.date.format("%Y-%m-%d").to_string();
    let xerr = |e: iodef::Error| ExchangeError::Iodef {
        what: format!("writing the file of {} for {date}", partner.id),
        source: e,
    };
    let header = iodef::v2::Document {
        lang: Some("en".into()),
        ..Default::default()
    };
    let mut w = iodef::StreamWriter::with_version(
        sink,
        &header,
        partner.version,
        iodef::WriteOptions::default(),
    )
    .map_err(xerr)?;
    let end = iodef_time(window.to, 0)?;
    let mut report = iodef::ScanReport::new(
        &x.config.csirt,
        &format!("{}-{date}", partner.id),
        end.clone(),
    )
    .time_span(iodef_time(window.from, 0)?, end)
    .description(&format!(
        "Scans from {} observed by our sensors on {date} ({}); sensor addresses withheld",
        match &partner.countries {
            Countries::All => "all countries".to_owned(),
            Countries::Only(c) => c.join(", "),
        },
        partner.timezone.name()
    ));
    if let Some(email) = &x.config.csirt_email {
        report = report.csirt_email(email);
    }
    let report = report
        .tlp(partner.tlp.label())
        .expect("every Tlp label is known to the iodef crate");
    w.begin_incident(&report.incident()).map_err(xerr)?;

    let countries = match &partner.countries {
        Countries::All => None,
        Countries::Only(list) => Some(list.as_slice()),
    };
    let st = queries::export_events(db, window.from, window.to, countries);
    let what = || format!("reading the events of {} for {date}", partner.id);
    let mut cursor = st
        .query(client)
        .and_then(|q| q.fetch::<ExportRow>())
        .map_err(|e| ExchangeError::ch(what(), e))?;
    let (mut events, mut sources) = (0u64, 0u64);
    let mut last_src: Option<[u8; 16]> = None;
    while let Some(row) = cursor
        .next()
        .await
        .map_err(|e| ExchangeError::ch(what(), e))?
    {
        if last_src != Some(row.src) {
            sources += 1;
            last_src = Some(row.src);
        }
        events += 1;
        w.write_event_data(&event_data(&row)?).map_err(xerr)?;
    }
    w.end_incident().map_err(xerr)?;
    for r in reports {
        w.write_incident(&r.incident(&x.config.csirt, false)?)
            .map_err(xerr)?;
    }
    let sink = w.finish().map_err(xerr)?;
    sink.close().map_err(io_err(format!(
        "finishing the file of {} for {date}",
        partner.id
    )))?;
    Ok((events, sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_windows_follow_the_time_zone() {
        let d = NaiveDate::from_ymd_opt(2025, 11, 21).unwrap();
        let utc = day_window(d, Tz::UTC);
        assert_eq!(utc.from, 1_763_683_200);
        assert_eq!(utc.to - utc.from, 86_400);
        let jst = day_window(d, Tz::Asia__Tokyo);
        assert_eq!(jst.from, 1_763_683_200 - 9 * 3600);
        // A day with a DST change is 23 or 25 hours long.
        let spring = day_window(
            NaiveDate::from_ymd_opt(2025, 3, 30).unwrap(),
            Tz::Europe__Berlin,
        );
        assert_eq!(spring.to - spring.from, 23 * 3600);
        let autumn = day_window(
            NaiveDate::from_ymd_opt(2025, 10, 26).unwrap(),
            Tz::Europe__Berlin,
        );
        assert_eq!(autumn.to - autumn.from, 25 * 3600);
        assert_eq!(local_date(jst.from, Tz::Asia__Tokyo), d);
        assert_eq!(teiten_store::time::date_number(d), 20_251_121);
    }

    #[test]
    fn names() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        assert_eq!(file_name("kr", d, false), "teiten-kr-2025-01-02.xml");
        let p = Path::new("/o/kr").join(file_name("kr", d, true));
        assert_eq!(
            manifest_path(&p),
            Path::new("/o/kr/teiten-kr-2025-01-02.xml.gz.manifest.json")
        );
        assert_eq!(
            tmp_path(&p),
            Path::new("/o/kr/.teiten-kr-2025-01-02.xml.gz.tmp")
        );
    }

    #[test]
    fn icmp_events_carry_type_and_code_and_never_the_destination() {
        let row = ExportRow {
            src: teiten_store::geo::address_bytes("1.0.0.9".parse().unwrap()),
            sport: 8,
            dport: 0,
            proto: 1,
            t: 1_763_700_000,
            usec: 250_000,
        };
        let e = event_data(&row).unwrap();
        let mut doc = iodef::v2::Document {
            lang: Some("en".into()),
            ..Default::default()
        };
        let mut inc = iodef::ScanReport::new(
            "c",
            "1",
            iodef::DateTime::from_unix(1_763_700_000, 0).unwrap(),
        )
        .incident();
        inc.event_data.push(e);
        doc.incident.push(inc);
        let mut out = Vec::new();
        iodef::Document::V2(doc)
            .write(&mut out, iodef::WriteOptions::default())
            .unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(xml.contains("<ProtoType>8</ProtoType>"), "{xml}");
        assert!(xml.contains("<ProtoCode>0</ProtoCode>"), "{xml}");
        assert!(xml.contains("2025-11-21T04:40:00.25"), "{xml}");
        assert!(!xml.contains("<Port>"), "{xml}");
    }
}
