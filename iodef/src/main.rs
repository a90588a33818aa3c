//! `teiten-iodef`: validate, convert and summarize IODEF documents.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use iodef::{
    v2, Limits, ReadOptions, Severity, StreamItem, StreamReader, StreamWriter, ValidateOptions,
    Version, WriteOptions,
};

#[derive(Parser)]
#[command(
    name = "teiten-iodef",
    version,
    about = "Validate, convert and summarize IODEF (RFC 7970 v2, RFC 5070 v1) documents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Largest accepted input, in bytes (default: no limit; reading is streaming).
    #[arg(long, global = true)]
    max_bytes: Option<u64>,
    /// Deepest accepted element nesting (default 64).
    #[arg(long, global = true)]
    max_depth: Option<u32>,
    /// Never show a progress bar.
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Check structure and semantics; exit status 0 when every file is valid, 1 otherwise.
    Validate {
        /// Require this version (a v1 document never passes as v2).
        #[arg(long, value_enum)]
        expect: Option<Ver>,
        /// Also print warnings.
        #[arg(long)]
        warnings: bool,
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Convert to v1 or v2 (streaming); what cannot be carried is reported on stderr.
    Convert {
        /// Target version.
        #[arg(long, value_enum)]
        to: Ver,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Load what can be loaded from an invalid input instead of stopping.
        #[arg(long)]
        lenient: bool,
        /// Input file.
        file: PathBuf,
    },
    /// Print incidents, event counts, time span and source addresses.
    Summarize {
        /// Load what can be loaded from invalid input.
        #[arg(long)]
        lenient: bool,
        /// How many addresses to list per file.
        #[arg(long, default_value_t = 20)]
        addresses: usize,
        /// Files to summarize.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Ver {
    V1,
    V2,
}

impl From<Ver> for Version {
    fn from(v: Ver) -> Self {
        match v {
            Ver::V1 => Version::V1,
            Ver::V2 => Version::V2,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("teiten-iodef: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn limits(cli: &Cli) -> Limits {
    let mut l = Limits::default();
    if let Some(b) = cli.max_bytes {
        l.max_bytes = b;
    }
    if let Some(d) = cli.max_depth {
        l.max_depth = d;
    }
    l
}

/// Open a file for reading, with a progress bar on large files when stderr is a terminal.
fn open(cli: &Cli, path: &Path) -> Result<(BufReader<Box<dyn Read>>, indicatif::ProgressBar)> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = if cli.no_progress || len < (16 << 20) {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new(len);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(path.display().to_string());
        pb
    };
    let r: Box<dyn Read> = Box::new(pb.wrap_read(f));
    Ok((BufReader::with_capacity(1 << 16, r), pb))
}

fn run(cli: &Cli) -> Result<bool> {
    match &cli.command {
        Command::Validate {
            expect,
            warnings,
            files,
        } => {
            let mut all_ok = true;
            for path in files {
                let (input, pb) = open(cli, path)?;
                let opts = ValidateOptions {
                    expect: expect.map(Version::from),
                    limits: limits(cli),
                };
                let report = iodef::validate(input, &opts);
                pb.finish_and_clear();
                let name = path.display();
                for d in &report.diagnostics {
                    if d.severity == Severity::Error || *warnings {
                        println!("{name}: {d}");
                    }
                }
                if report.dropped > 0 {
                    println!("{name}: {} more problem(s) not shown", report.dropped);
                }
                let version = report
                    .version
                    .map_or_else(|| "not IODEF".to_string(), |v| v.to_string());
                if report.is_valid() {
                    println!(
                        "{name}: valid {version}: {} incident(s), {} event(s)",
                        report.incidents, report.event_data
                    );
                } else {
                    all_ok = false;
                    let schema = if report.is_schema_valid() {
                        " (schema-valid: only rules of the RFC text are broken)"
                    } else {
                        ""
                    };
                    println!(
                        "{name}: INVALID {version}: {} error(s){schema}",
                        report.errors().count() as u64 + report.dropped
                    );
                }
            }
            Ok(all_ok)
        }
        Command::Convert {
            to,
            output,
            lenient,
            file,
        } => {
            let (input, pb) = open(cli, file)?;
            let opts = ReadOptions {
                lenient: *lenient,
                limits: limits(cli),
            };
            let mut r = StreamReader::new(input, &opts)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let out: Box<dyn Write> = match output {
                Some(p) => Box::new(BufWriter::new(
                    File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => Box::new(BufWriter::new(io::stdout().lock())),
            };
            let target = Version::from(*to);
            let mut w =
                StreamWriter::with_version(out, &r.header(), target, WriteOptions::default())?;
            let mut open_incident = false;
            let mut notes = 0usize;
            loop {
                let item = r
                    .next_item()
                    .with_context(|| format!("cannot read {}", file.display()))?;
                for d in r.take_diagnostics() {
                    eprintln!("{}: {d}", file.display());
                }
                let Some(item) = item else { break };
                match item {
                    StreamItem::Incident(i) => {
                        w.begin_incident(&i)?;
                        open_incident = true;
                    }
                    StreamItem::EventData(e) => w.write_event_data(&e)?,
                    StreamItem::IncidentEnd(_) => {
                        if open_incident {
                            w.end_incident()?;
                            open_incident = false;
                        }
                    }
                }
                for n in &w.conversion_notes()[notes..] {
                    eprintln!("{}: {n}", file.display());
                }
                notes = w.conversion_notes().len();
            }
            for a in r.header().additional_data {
                w.add_document_data(a)?;
            }
            for n in &w.conversion_notes()[notes..] {
                eprintln!("{}: {n}", file.display());
            }
            let mut out = w.finish()?;
            out.flush()?;
            pb.finish_and_clear();
            Ok(true)
        }
        Command::Summarize {
            lenient,
            addresses,
            files,
        } => {
            let mut all_ok = true;
            for path in files {
                let (input, pb) = open(cli, path)?;
                let opts = ReadOptions {
                    lenient: *lenient,
                    limits: limits(cli),
                };
                match summarize(input, &opts, path, *addresses) {
                    Ok(()) => {}
                    Err(e) => {
                        all_ok = false;
                        println!("{}: {e:#}", path.display());
                    }
                }
                pb.finish_and_clear();
            }
            Ok(all_ok)
        }
    }
}

#[derive(Default)]
struct Span {
    min: Option<chrono::DateTime<chrono::Utc>>,
    max: Option<chrono::DateTime<chrono::Utc>>,
}

impl Span {
    fn add(&mut self, t: &Option<iodef::DateTime>) {
        if let Some(t) = t.as_ref().and_then(|t| t.to_utc()) {
            self.min = Some(self.min.map_or(t, |m| m.min(t)));
            self.max = Some(self.max.map_or(t, |m| m.max(t)));
        }
    }
    fn show(&self) -> String {
        match (self.min, self.max) {
            (Some(a), Some(b)) => format!("{} .. {}", a.to_rfc3339(), b.to_rfc3339()),
            _ => "no timestamps".into(),
        }
    }
}

/// Addresses are collected up to a cap so memory stays bounded on huge files.
const ADDRESS_CAP: usize = 1_000_000;

struct Addrs {
    set: BTreeSet<String>,
    more: bool,
}

impl Addrs {
    fn add_event(&mut self, e: &v2::EventData) {
        for f in &e.flow {
            for s in &f.system {
                if matches!(s.category, Some(v2::SystemCategory::Target)) {
                    continue;
                }
                if let Some(n) = &s.node {
                    for c in &n.choice {
                        if let v2::NodeChoice::Address(a) = c {
                            if self.set.len() < ADDRESS_CAP {
                                self.set.insert(a.value.trim().to_owned());
                            } else {
                                self.more = true;
                            }
                        }
                    }
                }
            }
        }
        for child in &e.event_data {
            self.add_event(child);
        }
    }
}

fn count_events(e: &v2::EventData) -> u64 {
    1 + e.event_data.iter().map(count_events).sum::<u64>()
}

fn summarize<R: io::BufRead>(input: R, opts: &ReadOptions, path: &Path, show: usize) -> Result<()> {
    let name = path.display();
    let mut r = StreamReader::new(input, opts)?;
    println!("{name}: {}", r.version());
    let mut total_span = Span::default();
    let mut addrs = Addrs {
        set: BTreeSet::new(),
        more: false,
    };
    let (mut incidents, mut events_total) = (0u64, 0u64);
    let mut span = Span::default();
    let mut events = 0u64;
    while let Some(item) = r.next_item()? {
        match item {
            StreamItem::Incident(_) => {
                span = Span::default();
                events = 0;
            }
            StreamItem::EventData(e) => {
                events += count_events(&e);
                for t in [&e.detect_time, &e.start_time, &e.end_time] {
                    span.add(t);
                    total_span.add(t);
                }
                addrs.add_event(&e);
            }
            StreamItem::IncidentEnd(i) => {
                incidents += 1;
                events_total += events;
                for t in [&i.start_time, &i.end_time, &i.detect_time] {
                    span.add(t);
                    total_span.add(t);
                }
                let id = i
                    .incident_id
                    .as_ref()
                    .map(|id| format!("{}:{}", id.name.as_deref().unwrap_or("?"), id.value.trim()))
                    .unwrap_or_else(|| "(no IncidentID)".into());
                let purpose = i.purpose.as_ref().map_or("?", |p| p.as_str());
                let restriction = i
                    .restriction
                    .as_ref()
                    .map(|r| r.ext().unwrap_or(r.as_str()).to_owned())
                    .unwrap_or_else(|| "private (default)".into());
                let categories: Vec<&str> = i
                    .assessment
                    .iter()
                    .flat_map(|a| a.incident_category.iter().map(|c| c.value.trim()))
                    .collect();
                println!(
                    "  incident {id}: purpose {purpose}, restriction {restriction}, {events} event(s), {}{}",
                    span.show(),
                    if categories.is_empty() {
                        String::new()
                    } else {
                        format!(", category {}", categories.join("/"))
                    }
                );
            }
        }
    }
    for d in r.take_diagnostics() {
        println!("  {d}");
    }
    println!(
        "  total: {incidents} incident(s), {events_total} event(s), {}",
        total_span.show()
    );
    let n = addrs.set.len();
    let listed: Vec<&str> = addrs.set.iter().take(show).map(String::as_str).collect();
    println!(
        "  {}{n} distinct address(es){}{}",
        if addrs.more { "over " } else { "" },
        if listed.is_empty() { "" } else { ": " },
        listed.join(", ")
    );
    if n > show {
        println!("  ... and {} more", n - show);
    }
    if incidents == 0 {
        bail!("no incident found");
    }
    Ok(())
}
