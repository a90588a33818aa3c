//! The daily files of one partner: that day's scan events whose source is in the partner's
//! countries, streamed from ClickHouse into one file per format on disk, in constant memory.
//!
//! # The files
//! In `<outbox>/<partner>/`, one file per format the partner receives ([`file_name`]), each
//! gzipped with `gzip`:
//! - **IODEF** (`iodef2`, `iodef1`): `teiten-<partner>-<YYYY-MM-DD>.xml`, one document: one
//!   scan Incident (`IncidentID` `<partner>-<date>` in our CSIRT's namespace, our CSIRT as
//!   Contact, the partner's TLP as `restriction`, StartTime/EndTime the partner's day, and
//!   GenerationTime the end of that day, so that the bytes depend on the data only); inside it
//!   one `EventData` per record, ordered by source address, then time. A packet record has
//!   DetectTime (microseconds), the source System (address, and a Service with the protocol
//!   and source port) and a target System whose address is the covering network `0.0.0.0/0`
//!   or `::/0`: the sensor address is never written (see [`iodef::ScanReport`]). ICMP events
//!   carry the ICMP type and code as `ProtoType`/`ProtoCode`. An aggregate record
//!   ([`iodef::ScanAggregate`]) has StartTime/EndTime (first and last seen), a `Counter` of
//!   unit `packet` in the source System and one of unit `host` (distinct destinations) in the
//!   target System. Then one Incident per internal report of that day that the partner may
//!   receive (its TLP at or below the partner's ceiling and one of its indicator addresses in
//!   the partner's countries), without our affected host.
//! - **IntelMQ** (`intelmq`): `teiten-<partner>-<YYYY-MM-DD>.intelmq.jsonl`, one event a line
//!   ([`formats`]).
//! - **CSV** (`csv`): `<YYYY-MM-DD>-event4_honeypot_darknet-<partner>-<geo|all>.csv`,
//!   Shadowserver's darknet report layout ([`formats`]).
//!
//! Records are per packet, or (`records = "aggregate"`) one per source address, protocol and
//! destination port of the day, grouped by ClickHouse and streamed. Beside each file,
//! `<file>.manifest.json` ([`Manifest`]), and for the day `teiten-<partner>-<date>.index.json`
//! ([`DayIndex`]: every file with its SHA-256). With `exchange.signing_key`, each file and the
//! index get a detached OpenPGP signature `<name>.asc` ([`sign`]). All are written to a temporary file, synced and
//! renamed, so a reader never sees half a file. Exporting the same day twice gives the same
//! bytes; when late events changed the day, the new file replaces the old one, its revision
//! goes up and the manifest says how many events were added.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{Countries, Exchange, Format, Partner, Records};
use super::formats::{self, Cc, Feed, Record};
use super::reports::{self, StoredReport};
use super::sign;
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
    /// The format (`exchange.partner.formats`): `iodef2`, `iodef1`, `intelmq` or `csv`.
    #[serde(default = "default_format")]
    pub format: String,
    /// What a record stands for: `packet` or `aggregate` (`exchange.partner.records`).
    #[serde(default = "default_records")]
    pub records: String,
    /// IODEF version (1 or 2), for the IODEF formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iodef_version: Option<u8>,
    /// Scan events (packets) the file covers.
    pub events: u64,
    /// Records written: one per event, or one per source, protocol and port of the day.
    #[serde(default)]
    pub record_count: u64,
    /// Distinct source addresses among them.
    pub sources: u64,
    /// Internal reports included (IODEF only: the other formats carry scans alone).
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
    /// The detached OpenPGP signature beside the file (`<file>.asc`), when
    /// `exchange.signing_key` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Fingerprint of the key that made it (upper-case hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

fn default_format() -> String {
    Format::Iodef2.name().to_owned()
}

fn default_records() -> String {
    Records::Packet.name().to_owned()
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

/// The result of exporting one file.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The file.
    pub path: PathBuf,
    /// Its manifest (the previous one when nothing changed).
    pub manifest: Manifest,
    /// False when the day was exported before with the same bytes (nothing was rewritten).
    pub changed: bool,
}

/// Every file of a partner's day, in `exchange.partner.formats` order (`<partner>/` of the
/// outbox, `teiten-<partner>-<date>.index.json`): what a partner that downloads its files
/// reads first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayIndex {
    /// The partner id.
    pub partner: String,
    /// The day, `YYYY-MM-DD`, in the partner's time zone.
    pub date: String,
    /// The files.
    pub files: Vec<IndexEntry>,
}

/// One file of a [`DayIndex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The file name.
    pub file: String,
    /// Its format.
    pub format: String,
    /// `packet` or `aggregate`.
    pub records: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its revision.
    pub revision: u32,
    /// Its detached OpenPGP signature (`<file>.asc`), when files are signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A scan event as the export query reads it (the destination address is not selected).
#[derive(Debug, Row, Deserialize)]
struct ExportRow {
    src: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
    t: u32,
    usec: u32,
    country: [u8; 2],
    src_asn: u32,
}

/// One source, protocol and destination port of the day, as the aggregate query reads it.
#[derive(Debug, Row, Deserialize)]
struct AggregateRow {
    src: [u8; 16],
    proto: u8,
    port: u16,
    cc: [u8; 2],
    asn: u32,
    packets: u64,
    first_us: u64,
    last_us: u64,
    destinations: u64,
}

impl From<&ExportRow> for Record {
    fn from(row: &ExportRow) -> Record {
        let icmp = matches!(row.proto, 1 | 58);
        let us = i64::from(row.t) * 1_000_000 + i64::from(row.usec.min(999_999));
        Record {
            source: address_from_bytes(row.src),
            proto: row.proto,
            // The sensor stores the ICMP type and code in the port columns.
            source_port: (!icmp).then_some(row.sport),
            destination_port: (!icmp).then_some(row.dport),
            icmp: icmp.then_some((row.sport, row.dport)),
            country: Cc::new(row.country),
            asn: (row.src_asn != 0).then_some(row.src_asn),
            first_us: us,
            last_us: us,
            packets: 1,
            destinations: None,
        }
    }
}

impl From<&AggregateRow> for Record {
    fn from(row: &AggregateRow) -> Record {
        let icmp = matches!(row.proto, 1 | 58);
        Record {
            source: address_from_bytes(row.src),
            proto: row.proto,
            source_port: None,
            destination_port: (!icmp).then_some(row.port),
            icmp: None,
            country: Cc::new(row.cc),
            asn: (row.asn != 0).then_some(row.asn),
            first_us: row.first_us as i64,
            last_us: row.last_us as i64,
            packets: row.packets,
            destinations: Some(row.destinations),
        }
    }
}

/// The file name of a partner's day in one format: `teiten-<partner>-<YYYY-MM-DD>.xml` for
/// the first IODEF format the partner receives (`.iodef1.xml` / `.iodef2.xml` for a second),
/// `teiten-<partner>-<YYYY-MM-DD>.intelmq.jsonl` for IntelMQ, and Shadowserver's convention
/// `<YYYY-MM-DD>-event4_honeypot_darknet-<partner>-<filter>.csv` for the CSV (filter `geo`
/// for a partner of listed countries, `all` for one of every country); `.gz` appended with
/// `gzip`.
pub fn file_name(partner: &Partner, format: Format, date: NaiveDate, gzip: bool) -> String {
    let d = date.format("%Y-%m-%d");
    let id = &partner.id;
    let mut name = match format {
        Format::Iodef1 | Format::Iodef2 => {
            let first = partner.formats.iter().find(|f| f.iodef().is_some()) == Some(&format);
            if first {
                format!("teiten-{id}-{d}.xml")
            } else {
                format!("teiten-{id}-{d}.{}.xml", format.name())
            }
        }
        Format::Intelmq => format!("teiten-{id}-{d}.intelmq.jsonl"),
        Format::Csv => format!(
            "{d}-{}-{id}-{}.csv",
            formats::CSV_REPORT,
            match partner.countries {
                Countries::All => "all",
                Countries::Only(_) => "geo",
            }
        ),
    };
    if gzip {
        name.push_str(".gz");
    }
    name
}

/// The index of a partner's day ([`DayIndex`]) in its outbox directory.
pub fn index_name(partner: &str, date: NaiveDate) -> String {
    format!("teiten-{partner}-{}.index.json", date.format("%Y-%m-%d"))
}

/// The manifest path of a daily file.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    file.with_file_name(name)
}

/// Rows read ahead of the writer, per batch, and batches in flight: memory stays at a few
/// thousand rows whatever the day's size.
const READ_BATCH: usize = 4096;
const BATCHES_AHEAD: usize = 4;

/// Reads the rows of `st` and hands each to `write` as a [`Record`]. The rows are read (HTTP,
/// RowBinary decoding) by a task of their own, a few batches ahead of the writer (formatting,
/// hashing, the file), so the two run on two cores; the bounded channel between them keeps
/// memory constant.
async fn stream_records<R>(
    st: teiten_store::statement::Statement,
    client: &Client,
    what: impl Fn() -> String,
    write: &mut impl FnMut(&Record) -> Result<(), ExchangeError>,
) -> Result<(), ExchangeError>
where
    R: clickhouse::RowOwned + clickhouse::RowRead + Send + 'static,
    for<'a> Record: From<&'a R>,
{
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Vec<R>, clickhouse::error::Error>>(BATCHES_AHEAD);
    let client = client.clone();
    let reader = tokio::spawn(async move {
        let mut cursor = match st.query(&client).and_then(|q| q.fetch::<R>()) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut batch = Vec::with_capacity(READ_BATCH);
        loop {
            match cursor.next().await {
                Ok(Some(row)) => {
                    batch.push(row);
                    if batch.len() == READ_BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_BATCH));
                        if tx.send(Ok(full)).await.is_err() {
                            return; // the writer stopped
                        }
                    }
                }
                Ok(None) => {
                    if !batch.is_empty() {
                        let _ = tx.send(Ok(batch)).await;
                    }
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    // Dropped on an early return: the reader's next send fails and it stops.
    let _reader = crate::AbortOnDrop(reader);
    while let Some(batch) = rx.recv().await {
        for row in &batch.map_err(|e| ExchangeError::ch(what(), e))? {
            write(&Record::from(row))?;
        }
    }
    Ok(())
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

fn iodef_time_us(us: i64) -> Result<iodef::DateTime, ExchangeError> {
    iodef_time(us.div_euclid(1_000_000), us.rem_euclid(1_000_000) as u32)
}

/// A packet as IODEF writes it: the event and its ICMP type and code.
type Packet = (iodef::ScanEvent, Option<(u16, u16)>);

/// A packet record as an [`iodef::ScanEvent`] with its ICMP type and code; `None` for an
/// aggregate.
fn scan_event(r: &Record) -> Result<Option<Packet>, ExchangeError> {
    if r.destinations.is_some() {
        return Ok(None);
    }
    let ev = iodef::ScanEvent {
        source: r.source,
        asn: r.asn,
        source_port: r.source_port,
        destination_port: r.destination_port,
        protocol: r.proto,
        time: iodef_time_us(r.first_us)?,
    };
    Ok(Some((ev, r.icmp)))
}

/// One record as an IODEF EventData (no destination address): a packet as a
/// [`iodef::ScanEvent`] (ICMP with its type and code as `ProtoType`/`ProtoCode`), an aggregate
/// as a [`iodef::ScanAggregate`]. Packets are written by [`iodef::StreamWriter::write_scan_event`]
/// instead, with the same bytes.
fn event_data(r: &Record) -> Result<iodef::v2::EventData, ExchangeError> {
    match scan_event(r)? {
        Some((ev, Some((kind, code)))) => Ok(ev.icmp_event_data(kind, code)),
        Some((ev, None)) => Ok(ev.event_data()),
        None => Ok(iodef::ScanAggregate {
            source: r.source,
            asn: r.asn,
            protocol: r.proto,
            destination_port: r.destination_port,
            first: iodef_time_us(r.first_us)?,
            last: iodef_time_us(r.last_us)?,
            packets: r.packets,
            destinations: r.destinations.unwrap_or_default(),
        }
        .event_data()),
    }
}

/// The file under a [`Sink`]: hashes and counts the bytes as they are written, so the
/// manifest's SHA-256 and size need no second read of the file.
struct Hashed {
    file: File,
    sha: Sha256,
    bytes: u64,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Either the file itself or a gzip stream into it.
enum FileSink {
    Plain(BufWriter<Hashed>),
    Gzip(Box<flate2::write::GzEncoder<BufWriter<Hashed>>>),
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            FileSink::Plain(w) => w.write(buf),
            FileSink::Gzip(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            FileSink::Plain(w) => w.write_all(buf),
            FileSink::Gzip(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            FileSink::Plain(w) => w.flush(),
            FileSink::Gzip(w) => w.flush(),
        }
    }
}

impl FileSink {
    /// A sink into a new file, gzipped or not.
    fn create(path: &Path, gzip: bool) -> std::io::Result<FileSink> {
        let file = Hashed {
            file: File::create(path)?,
            sha: Sha256::new(),
            bytes: 0,
        };
        let file = BufWriter::with_capacity(1 << 16, file);
        Ok(if gzip {
            FileSink::Gzip(Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )))
        } else {
            FileSink::Plain(file)
        })
    }

    /// Writes what is buffered (not what the gzip stream holds back: its bytes stay as they
    /// would be) and has the kernel put the file on disk so far, so that the final sync finds
    /// little left to do.
    fn sync_so_far(&mut self) -> std::io::Result<()> {
        let w = match self {
            FileSink::Plain(w) => w,
            FileSink::Gzip(g) => g.get_mut(),
        };
        w.flush()?;
        w.get_ref().file.sync_data()
    }

    /// Ends the stream, syncs the file to disk and returns the SHA-256 (hex) and size of what
    /// it holds.
    fn close(self) -> std::io::Result<(String, u64)> {
        let w = match self {
            FileSink::Plain(w) => w,
            FileSink::Gzip(g) => g.finish()?,
        };
        let h = w.into_inner().map_err(|e| e.into_error())?;
        h.file.sync_all()?;
        Ok((hex::encode(h.sha.finalize()), h.bytes))
    }
}

/// Bytes handed to the file's thread at a time, chunks in flight, and bytes written between
/// two syncs of the file so far.
const CHUNK: usize = 256 << 10;
const CHUNKS_AHEAD: usize = 8;
const SYNC_EVERY: u64 = 64 << 20;

/// A daily file being written: the formats write into memory, and a thread of its own
/// compresses (when gzipped), hashes and writes the chunks to the file and syncs it as it
/// goes, so the format's work and the file's run on two cores. Memory: a few chunks.
struct Sink {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<(String, u64)>>>,
}

impl Sink {
    /// A sink into a new file, gzipped or not.
    fn create(path: &Path, gzip: bool) -> std::io::Result<Sink> {
        let mut file = FileSink::create(path, gzip)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_AHEAD);
        let thread = std::thread::Builder::new()
            .name("teiten-export-file".into())
            .spawn(move || {
                let mut since_sync = 0u64;
                for chunk in rx {
                    file.write_all(&chunk)?;
                    since_sync += chunk.len() as u64;
                    if since_sync >= SYNC_EVERY {
                        file.sync_so_far()?;
                        since_sync = 0;
                    }
                }
                file.close()
            })?;
        Ok(Sink {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands the buffer to the file's thread; its error when it stopped.
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped: it has the error.
        self.tx = None;
        Err(self
            .join()
            .err()
            .unwrap_or_else(|| std::io::Error::other("the file's writer stopped")))
    }

    fn join(&mut self) -> std::io::Result<(String, u64)> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the file's writer panicked"))),
            None => Err(std::io::Error::other("the file's writer stopped")),
        }
    }

    /// Ends the file: the rest written, the file synced; its SHA-256 (hex) and size.
    fn close(mut self) -> std::io::Result<(String, u64)> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None;
        self.join()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // An abandoned file (an error on the way): the thread ends with the channel.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

/// Writes the daily files of `partner` for `date` (in its time zone), one per format in
/// `exchange.partner.formats` order, each with its manifest, then the day's [`DayIndex`].
/// The first file is the one delivered.
pub async fn export_day(
    client: &Client,
    db: &str,
    x: &Exchange,
    partner: &Partner,
    date: NaiveDate,
) -> Result<Vec<Exported>, ExchangeError> {
    let window = day_window(date, partner.timezone);
    let dir = x.config.outbox.join(&partner.id);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let reports = if partner.formats.iter().any(|f| f.iodef().is_some()) {
        reports::for_partner(client, db, partner, window.from, window.to).await?
    } else {
        Vec::new()
    };
    let mut files = Vec::with_capacity(partner.formats.len());
    for &format in &partner.formats {
        let job = FileJob {
            client,
            db,
            x,
            partner,
            window: &window,
            format,
            reports: &reports,
        };
        files.push(export_file(&job).await?);
    }
    let index = DayIndex {
        partner: partner.id.clone(),
        date: date.format("%Y-%m-%d").to_string(),
        files: files
            .iter()
            .map(|e| IndexEntry {
                file: e.manifest.file.clone(),
                format: e.manifest.format.clone(),
                records: e.manifest.records.clone(),
                sha256: e.manifest.sha256.clone(),
                bytes: e.manifest.bytes,
                revision: e.manifest.revision,
                signature: e.manifest.signature.clone(),
            })
            .collect(),
    };
    let ipath = dir.join(index_name(&partner.id, date));
    let json = serde_json::to_vec_pretty(&index).expect("an index serialises");
    let same = std::fs::read(&ipath).ok().as_deref() == Some(&json[..]);
    if !same {
        write_atomic(&ipath, &json).map_err(io_err(format!("writing {}", ipath.display())))?;
    }
    if let Some(signer) = &x.signer {
        if !same || !sign::signature_path(&ipath).exists() {
            signer.sign_file(&ipath)?;
        }
    }
    Ok(files)
}

/// What one file holds.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    events: u64,
    records: u64,
    sources: u64,
}

/// One file of a partner's day to write: where from, for whom, in which format.
#[derive(Clone, Copy)]
struct FileJob<'a> {
    client: &'a Client,
    db: &'a str,
    x: &'a Exchange,
    partner: &'a Partner,
    window: &'a DayWindow,
    format: Format,
    /// The internal reports shared with the partner that day (IODEF only).
    reports: &'a [StoredReport],
}

/// Writes one file of a partner's day, with its manifest.
async fn export_file(job: &FileJob<'_>) -> Result<Exported, ExchangeError> {
    let FileJob {
        x,
        partner,
        window,
        format,
        ..
    } = *job;
    let date = window.date;
    let dir = x.config.outbox.join(&partner.id);
    let name = file_name(partner, format, date, x.config.gzip);
    let path = dir.join(&name);
    let tmp = tmp_path(&path);
    // Internal reports go into IODEF files only.
    let job = FileJob {
        reports: if format.iodef().is_some() {
            job.reports
        } else {
            &[]
        },
        ..*job
    };

    let sink =
        Sink::create(&tmp, x.config.gzip).map_err(io_err(format!("creating {}", tmp.display())))?;
    let result = write_file(&job, sink).await;
    let (counts, (sha256, bytes)) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };

    let previous = read_manifest(&path).filter(|_| path.exists());
    if let Some(prev) = &previous {
        if prev.sha256 == sha256 {
            let _ = std::fs::remove_file(&tmp);
            let manifest = sign_unchanged(x, &path, prev)?;
            return Ok(Exported {
                path,
                manifest,
                changed: false,
            });
        }
    }
    // Signed before it takes the file's place, so that a signature beside a file is never
    // older than the file for longer than one rename.
    let signature = match &x.signer {
        Some(signer) => {
            let asc = signer.sign_file(&tmp)?;
            let dest = sign::signature_path(&path);
            std::fs::rename(&asc, &dest)
                .map_err(io_err(format!("renaming to {}", dest.display())))?;
            Some((dest, signer.fingerprint().to_owned()))
        }
        None => {
            let _ = std::fs::remove_file(sign::signature_path(&path));
            None
        }
    };
    std::fs::rename(&tmp, &path).map_err(io_err(format!("renaming to {}", path.display())))?;
    let manifest = Manifest {
        partner: partner.id.clone(),
        date: date.format("%Y-%m-%d").to_string(),
        timezone: partner.timezone.name().to_owned(),
        window: [rfc3339(window.from), rfc3339(window.to)],
        file: name,
        format: format.name().to_owned(),
        records: partner.records.name().to_owned(),
        iodef_version: format.iodef().map(|v| match v {
            iodef::Version::V1 => 1,
            iodef::Version::V2 => 2,
        }),
        events: counts.events,
        record_count: counts.records,
        sources: counts.sources,
        reports: job.reports.len() as u32,
        bytes,
        sha256,
        generated: rfc3339(time::now()),
        revision: previous.as_ref().map_or(1, |p| p.revision + 1),
        change: previous.as_ref().map(|p| Change {
            previous_sha256: p.sha256.clone(),
            previous_events: p.events,
            events_delta: counts.events as i64 - p.events as i64,
            sources_delta: counts.sources as i64 - p.sources as i64,
            reports_delta: i64::from(job.reports.len() as u32) - i64::from(p.reports),
        }),
        signature: signature.as_ref().map(|(p, _)| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        }),
        signer: signature.map(|(_, f)| f),
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let mpath = manifest_path(&path);
    write_atomic(&mpath, &json).map_err(io_err(format!("writing {}", mpath.display())))?;
    if let Some(c) = &manifest.change {
        tracing::info!(
            partner = %partner.id, date = %manifest.date, file = %manifest.file,
            revision = manifest.revision, events_delta = c.events_delta,
            sources_delta = c.sources_delta, "Daily file changed since the last export"
        );
    }
    Ok(Exported {
        path,
        manifest,
        changed: true,
    })
}

/// The manifest of a file exported before with the same bytes: as it was, or, when the key
/// that signs changed or the signature is missing, with a new signature.
fn sign_unchanged(x: &Exchange, path: &Path, prev: &Manifest) -> Result<Manifest, ExchangeError> {
    let Some(signer) = &x.signer else {
        return Ok(prev.clone());
    };
    let asc = sign::signature_path(path);
    if prev.signer.as_deref() == Some(signer.fingerprint()) && asc.exists() {
        return Ok(prev.clone());
    }
    signer.sign_file(path)?;
    let manifest = Manifest {
        signature: Some(
            asc.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        ),
        signer: Some(signer.fingerprint().to_owned()),
        ..prev.clone()
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let mpath = manifest_path(path);
    write_atomic(&mpath, &json).map_err(io_err(format!("writing {}", mpath.display())))?;
    Ok(manifest)
}

/// The writer of one format.
enum Out {
    Iodef(Box<iodef::StreamWriter<Sink>>),
    Intelmq(Sink),
    Csv(Box<csv::Writer<Sink>>),
}

/// Streams one file into `sink`: the records of the day (per packet or aggregated, as the
/// partner asks) in `format`, and for IODEF the internal reports after them. Returns what the
/// file holds and its SHA-256 and size.
async fn write_file(
    job: &FileJob<'_>,
    sink: Sink,
) -> Result<(Counts, (String, u64)), ExchangeError> {
    let FileJob {
        client,
        db,
        x,
        partner,
        window,
        format,
        reports,
    } = *job;
    let date = window.date.format("%Y-%m-%d").to_string();
    let xerr = |e: iodef::Error| ExchangeError::Iodef {
        what: format!("writing the file of {} for {date}", partner.id),
        source: e,
    };
    let werr = || {
        format!(
            "writing the {} file of {} for {date}",
            format.name(),
            partner.id
        )
    };
    let csv_err = |e: csv::Error| ExchangeError::Io {
        what: werr(),
        source: e.into(),
    };
    let mut out = match format.iodef() {
        Some(version) => {
            let header = iodef::v2::Document {
                lang: Some("en".into()),
                ..Default::default()
            };
            let mut w = iodef::StreamWriter::with_version(
                sink,
                &header,
                version,
                iodef::WriteOptions::default(),
            )
            .map_err(xerr)?;
            w.begin_incident(&scan_incident(x, partner, window, &date)?.incident())
                .map_err(xerr)?;
            Out::Iodef(Box::new(w))
        }
        None if format == Format::Csv => {
            Out::Csv(Box::new(formats::csv_writer(sink).map_err(csv_err)?))
        }
        None => Out::Intelmq(sink),
    };
    let feed = Feed {
        name: formats::FEED_NAME,
        provider: &x.config.csirt,
    };
    let mut counts = Counts::default();
    let mut last_src: Option<IpAddr> = None;
    let what = || format!("reading the events of {} for {date}", partner.id);
    let constituency = partner.constituency();
    let mut row = formats::CsvRow::default();
    let mut write = |r: &Record| -> Result<(), ExchangeError> {
        if last_src != Some(r.source) {
            counts.sources += 1;
            last_src = Some(r.source);
        }
        counts.events += r.packets;
        counts.records += 1;
        match &mut out {
            Out::Iodef(w) => match scan_event(r)? {
                Some((ev, icmp)) => w.write_scan_event(&ev, icmp).map_err(xerr),
                None => w.write_event_data(&event_data(r)?).map_err(xerr),
            },
            Out::Intelmq(w) => formats::write_intelmq(w, r, feed).map_err(io_err(werr())),
            Out::Csv(w) => w.write_record(row.fill(r)).map_err(csv_err),
        }
    };
    let (c, r) = (constituency.as_ref(), partner.research);
    let (from, to) = (window.from, window.to);
    match partner.records {
        Records::Packet => {
            let st = queries::export_events(db, from, to, c, r);
            stream_records::<ExportRow>(st, client, what, &mut write).await?;
        }
        Records::Aggregate => {
            let st = queries::export_aggregates(db, from, to, c, r);
            stream_records::<AggregateRow>(st, client, what, &mut write).await?;
        }
    }
    let sink = match out {
        Out::Iodef(w) => {
            let mut w = *w;
            w.end_incident().map_err(xerr)?;
            for r in reports {
                w.write_incident(&r.incident(&x.config.csirt, false)?)
                    .map_err(xerr)?;
            }
            w.finish().map_err(xerr)?
        }
        Out::Intelmq(w) => w,
        Out::Csv(w) => w.into_inner().map_err(|e| ExchangeError::Io {
            what: werr(),
            source: e.into_error(),
        })?,
    };
    let digest = sink.close().map_err(io_err(format!(
        "finishing the file of {} for {date}",
        partner.id
    )))?;
    Ok((counts, digest))
}

/// The scan Incident's header of a partner's day.
fn scan_incident(
    x: &Exchange,
    partner: &Partner,
    window: &DayWindow,
    date: &str,
) -> Result<iodef::ScanReport, ExchangeError> {
    let end = iodef_time(window.to, 0)?;
    let mut report = iodef::ScanReport::new(
        &x.config.csirt,
        &format!("{}-{date}", partner.id),
        end.clone(),
    )
    .time_span(iodef_time(window.from, 0)?, end)
    .description(&format!(
        "Scans from {} observed by our sensors on {date} ({}){}; sensor addresses withheld",
        partner.constituency_words(),
        partner.timezone.name(),
        match partner.records {
            Records::Packet => "",
            Records::Aggregate => {
                ", one EventData per source, protocol and destination port with its packets \
                 and distinct destinations"
            }
        }
    ));
    if let Some(email) = &x.config.csirt_email {
        report = report.csirt_email(email);
    }
    Ok(report
        .tlp(partner.tlp.label())
        .expect("every Tlp label is known to the iodef crate"))
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

    fn partner(countries: &str, formats: &str) -> Partner {
        let toml =
            format!("[[partner]]\nid = \"kr\"\ncountries = {countries}\nformats = {formats}\n");
        let c: crate::config::ExchangeConfig = toml::from_str(&toml).unwrap();
        c.validate().unwrap().partners.remove(0)
    }

    #[test]
    fn names() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        let kr = partner("[\"KR\"]", "[\"iodef2\", \"intelmq\", \"csv\", \"iodef1\"]");
        let all = partner("[\"all\"]", "[\"csv\", \"iodef1\"]");
        for (p, format, gzip, name) in [
            (&kr, Format::Iodef2, false, "teiten-kr-2025-01-02.xml"),
            (
                &kr,
                Format::Iodef1,
                false,
                "teiten-kr-2025-01-02.iodef1.xml",
            ),
            (
                &kr,
                Format::Intelmq,
                true,
                "teiten-kr-2025-01-02.intelmq.jsonl.gz",
            ),
            (
                &kr,
                Format::Csv,
                false,
                "2025-01-02-event4_honeypot_darknet-kr-geo.csv",
            ),
            (
                &all,
                Format::Csv,
                false,
                "2025-01-02-event4_honeypot_darknet-kr-all.csv",
            ),
            // The partner's only IODEF format takes the plain name.
            (&all, Format::Iodef1, false, "teiten-kr-2025-01-02.xml"),
        ] {
            assert_eq!(file_name(p, format, d, gzip), name, "{format:?}");
        }
        assert_eq!(index_name("kr", d), "teiten-kr-2025-01-02.index.json");
        let p = Path::new("/o/kr").join(file_name(&kr, Format::Iodef2, d, true));
        assert_eq!(
            manifest_path(&p),
            Path::new("/o/kr/teiten-kr-2025-01-02.xml.gz.manifest.json")
        );
        assert_eq!(
            tmp_path(&p),
            Path::new("/o/kr/.teiten-kr-2025-01-02.xml.gz.tmp")
        );
    }

    fn write_one(e: iodef::v2::EventData, version: iodef::Version) -> String {
        let mut inc = iodef::ScanReport::new(
            "c",
            "1",
            iodef::DateTime::from_unix(1_763_700_000, 0).unwrap(),
        )
        .incident();
        inc.event_data.push(e);
        let doc = iodef::v2::Document {
            lang: Some("en".into()),
            incident: vec![inc],
            ..Default::default()
        };
        let doc = match version {
            iodef::Version::V2 => iodef::Document::V2(doc),
            iodef::Version::V1 => iodef::Document::V1(iodef::to_v1(&doc).value),
        };
        let mut out = Vec::new();
        doc.write(&mut out, iodef::WriteOptions::default()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn aggregates_carry_span_packets_and_destination_count_in_both_versions() {
        let row = AggregateRow {
            src: teiten_store::geo::address_bytes("1.0.0.9".parse().unwrap()),
            proto: 6,
            port: 23,
            cc: *b"AU",
            asn: 13335,
            packets: 1234,
            first_us: 1_763_700_000_250_000,
            last_us: 1_763_703_600_000_000,
            destinations: 17,
        };
        let r = Record::from(&row);
        assert_eq!(r.country.as_ref().map(Cc::as_str), Some("AU"));
        let v2 = write_one(event_data(&r).unwrap(), iodef::Version::V2);
        for want in [
            "<StartTime>2025-11-21T04:40:00.25",
            "<EndTime>2025-11-21T05:40:00",
            "<Counter type=\"counter\" unit=\"packet\">1234.0</Counter>",
            "<Counter type=\"counter\" unit=\"host\">17.0</Counter>",
            "<Port>23</Port>",
            "0.0.0.0/0",
        ] {
            assert!(v2.contains(want), "{want} in {v2}");
        }
        assert!(!v2.contains("DetectTime"), "{v2}");
        let v1 = write_one(event_data(&r).unwrap(), iodef::Version::V1);
        for want in [
            "<Counter type=\"packet\">1234.0</Counter>",
            "<Counter type=\"host\">17.0</Counter>",
        ] {
            assert!(v1.contains(want), "{want} in {v1}");
        }
        let unknown = Record::from(&AggregateRow { cc: *b"??", ..row });
        assert_eq!(unknown.country, None);
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
            country: *b"AU",
            src_asn: 0,
        };
        let xml = write_one(event_data(&Record::from(&row)).unwrap(), iodef::Version::V2);
        assert!(xml.contains("<ProtoType>8</ProtoType>"), "{xml}");
        assert!(xml.contains("<ProtoCode>0</ProtoCode>"), "{xml}");
        assert!(xml.contains("2025-11-21T04:40:00.25"), "{xml}");
        assert!(!xml.contains("<Port>"), "{xml}");
    }
}
