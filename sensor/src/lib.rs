//! teiten's sensor: captures packets arriving on dark (unused) prefixes, decodes and classifies
//! them, and ships them in numbered batches to the aggregator through a durable spool.
//!
//! The pipeline: a packet source ([`Input`]: a live interface through a libpcap TPACKET_V3 ring,
//! or a pcap/pcapng file) → [`Processor`] (decode → keep traffic to the [`Monitored`] prefixes
//! → [`classify`]) → either JSON lines on standard output, or the batcher → [`Spool`] → the
//! shipper.

mod batcher;
mod capture;
mod classify;
mod config;
mod decode;
mod filter;
mod metrics;
mod output;
mod ship;
mod spool;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;

pub use capture::{CaptureError, Processor};
pub use classify::{classify, is_martian};
pub use config::{CaptureConfig, Config, ConfigError, Valid};
pub use decode::{decode, DecodeError, LinkType};
pub use filter::Monitored;
pub use metrics::Metrics;
pub use spool::{Pushed, Spool, SpoolError};

/// Where packets come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A live interface.
    Live(String),
    /// A pcap or pcapng file.
    File(PathBuf),
}

/// What a run did, from its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Packets read.
    pub packets: u64,
    /// Events recorded.
    pub events: u64,
    /// Packets ignored (not to a monitored prefix, or not IP).
    pub filtered: u64,
    /// Packets that could not be decoded.
    pub malformed: u64,
    /// Packets the kernel dropped.
    pub kernel_drops: u64,
    /// Batches acknowledged by the aggregator.
    pub batches_acked: u64,
    /// Batches the aggregator refused, moved to the spool's `rejected/`.
    pub batches_rejected: u64,
    /// Batches still in the spool.
    pub spool_batches: u64,
}

impl Summary {
    fn of(m: &Metrics) -> Summary {
        Summary {
            packets: m.packets_captured.get(),
            events: m.events_recorded.get(),
            filtered: m.filtered.get(),
            malformed: m.malformed.get(),
            kernel_drops: m.kernel_drops.get(),
            batches_acked: m.batches_acked.get(),
            batches_rejected: m.batches_rejected.get(),
            spool_batches: m.spool_batches.get().max(0) as u64,
        }
    }

    fn log(&self, message: &str) {
        tracing::info!(
            packets = self.packets,
            events = self.events,
            filtered = self.filtered,
            malformed = self.malformed,
            kernel_drops = self.kernel_drops,
            batches_acked = self.batches_acked,
            batches_rejected = self.batches_rejected,
            spooled_batches = self.spool_batches,
            "{message}"
        );
    }
}

/// Events waiting between capture threads and their consumer, in chunks.
const CHANNEL_CHUNKS: usize = 64;

/// Runs the sources of `input` on their own threads, sending event chunks to `tx`.
fn spawn_sources(
    input: &Input,
    monitored: Option<Monitored>,
    capture: &CaptureConfig,
    metrics: &Arc<Metrics>,
    stop: &Arc<AtomicBool>,
    tx: crossbeam_channel::Sender<Vec<teiten_wire::Event>>,
    progress: bool,
) -> anyhow::Result<Vec<thread::JoinHandle<Result<(), CaptureError>>>> {
    let mut handles = Vec::new();
    match input {
        Input::File(path) => {
            let (path, metrics, stop) = (path.clone(), Arc::clone(metrics), Arc::clone(stop));
            handles.push(thread::Builder::new().name("read".into()).spawn(move || {
                capture::read_file(&path, monitored, &metrics, &stop, progress, |c| {
                    let _ = tx.send(c);
                })
            })?);
        }
        Input::Live(interface) => {
            let bpf = monitored.as_ref().map(Monitored::bpf);
            let fanout = (capture.threads > 1).then(|| (std::process::id() & 0xffff) as u16);
            // Open every handle first, so a bad interface fails before anything starts.
            let mut caps = Vec::new();
            for _ in 0..capture.threads {
                caps.push(capture::open_live(
                    interface,
                    capture,
                    bpf.as_deref(),
                    fanout,
                )?);
            }
            for (i, cap) in caps.into_iter().enumerate() {
                let (interface, monitored) = (interface.clone(), monitored.clone());
                let (metrics, stop, tx) = (Arc::clone(metrics), Arc::clone(stop), tx.clone());
                handles.push(thread::Builder::new().name(format!("capture-{i}")).spawn(
                    move || {
                        capture::capture_live(&interface, cap, monitored, &metrics, &stop, |c| {
                            let _ = tx.send(c);
                        })
                    },
                )?);
            }
            tracing::info!(
                interface = %interface,
                threads = capture.threads,
                filter = bpf.as_deref().unwrap_or(""),
                "Capturing"
            );
        }
    }
    Ok(handles)
}

fn join_sources(handles: Vec<thread::JoinHandle<Result<(), CaptureError>>>) -> anyhow::Result<()> {
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Capture failed");
                first_err.get_or_insert(anyhow::Error::new(e));
            }
            Err(_) => {
                first_err.get_or_insert(anyhow::anyhow!("a capture thread panicked"));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// What a local (not shipping) run does with events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Print each as a JSON line on standard output.
    Print,
    /// Only count them (for a quick look at a file, and benchmarks).
    Count,
}

/// Runs `input` through the pipeline without shipping (troubleshooting): prints or counts every
/// event, keeping only traffic to `monitored` when given.
pub fn run_local(
    input: &Input,
    sensor_id: &str,
    monitored: Option<Monitored>,
    capture: &CaptureConfig,
    stop: &Arc<AtomicBool>,
    mode: Local,
) -> anyhow::Result<Summary> {
    use std::io::Write;
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CHUNKS);
    // A bar on standard error would tear events printed on a terminal.
    let progress = mode == Local::Count || !std::io::IsTerminal::is_terminal(&std::io::stdout());
    let sources = spawn_sources(input, monitored, capture, &metrics, stop, tx, progress)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut write_result = Ok(());
    for chunk in rx {
        if mode == Local::Print && write_result.is_ok() {
            write_result =
                output::write_events(&mut out, sensor_id, &chunk).and_then(|()| out.flush());
            if write_result.is_err() {
                // Standard output is gone (a closed pipe): stop capturing.
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
    join_sources(sources)?;
    match write_result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write events to standard output")
        }
        _ => {
            let summary = Summary::of(&metrics);
            summary.log("Done");
            Ok(summary)
        }
    }
}

/// Captures `input` and ships it as configured in `cfg`, until `stop` is set (live) or the file
/// is read and every batch acknowledged (file; or `stop`). Without an input it only delivers
/// what is spooled, and returns once the spool is empty (or on `stop`). On stop the open batch is sealed into
/// the spool and the shipper gets `drain` to deliver what it can; the rest stays spooled for the
/// next run.
pub fn run_ship(
    cfg: &Valid,
    input: Option<&Input>,
    stop: &Arc<AtomicBool>,
    drain: Duration,
) -> anyhow::Result<Summary> {
    if cfg.urls.is_empty() {
        anyhow::bail!(
            "no aggregator.urls configured: nowhere to ship (use --stdout to print events)"
        );
    }
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = cfg.metrics_listen {
        let local = metrics
            .serve(addr)
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tracing::info!(listen = %local, "Serving metrics");
    }
    let spool = Arc::new(
        Spool::open(&cfg.spool_dir, &cfg.sensor_id, cfg.spool_max_bytes)
            .context("cannot open the spool")?,
    );
    let (bytes, n) = spool.backlog();
    metrics.spool_bytes.set(bytes as i64);
    metrics.spool_batches.set(n as i64);
    tracing::info!(
        sensor_id = %cfg.sensor_id,
        spool = %cfg.spool_dir.display(),
        epoch = spool.epoch(),
        backlog_batches = n,
        backlog_bytes = bytes,
        "Spool open"
    );
    let agent = ship::agent(cfg)?;
    let ship_stop = Arc::new(AtomicBool::new(false));
    let shipper = {
        let (cfg, spool, metrics, ship_stop) = (
            cfg.clone(),
            Arc::clone(&spool),
            Arc::clone(&metrics),
            Arc::clone(&ship_stop),
        );
        thread::Builder::new()
            .name("ship".into())
            .spawn(move || ship::run(&cfg, &agent, &spool, &metrics, &ship_stop, drain))?
    };
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CHUNKS);
    let batcher = {
        let (spool, metrics) = (Arc::clone(&spool), Arc::clone(&metrics));
        let bounds = batcher::Bounds {
            max_events: cfg.batch_max_events,
            max_interval: cfg.batch_max_interval,
        };
        thread::Builder::new()
            .name("batch".into())
            .spawn(move || batcher::run(rx, &spool, &metrics, bounds))?
    };
    let result = match input {
        Some(input) => spawn_sources(
            input,
            Some(cfg.monitored.clone()),
            &cfg.capture,
            &metrics,
            stop,
            tx,
            true,
        )
        .and_then(join_sources),
        None => {
            drop(tx);
            Ok(())
        }
    };
    let _ = batcher.join();
    if result.is_ok() && !matches!(input, Some(Input::Live(_))) {
        // A replay is done when everything it read is acknowledged.
        while !stop.load(Ordering::Relaxed) && !spool.wait_empty(Duration::from_millis(200)) {}
    }
    ship_stop.store(true, Ordering::Relaxed);
    let _ = shipper.join();
    let summary = Summary::of(&metrics);
    summary.log("Stopped");
    result.map(|()| summary)
}
