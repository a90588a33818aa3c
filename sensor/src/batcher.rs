//! The batcher: gathers event chunks into batches and seals them into the spool.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use teiten_wire::{encode, Batch, Event};

use crate::metrics::Metrics;
use crate::spool::{Pushed, Spool};

/// Batch bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Most events in a batch.
    pub max_events: usize,
    /// Longest time a batch stays open.
    pub max_interval: Duration,
}

/// Runs until every sender of `rx` is gone, then seals what is left.
pub(crate) fn run(rx: Receiver<Vec<Event>>, spool: &Spool, metrics: &Metrics, bounds: Bounds) {
    let mut open: Vec<Event> = Vec::new();
    let mut opened = Instant::now();
    let mut last_full_warning: Option<Instant> = None;
    let mut seal = |events: Vec<Event>| {
        let n = events.len() as u64;
        let stats = metrics.stats();
        let result = spool.push(move |id| {
            encode(&Batch {
                id,
                sealed_us: now_us(),
                stats,
                events,
            })
        });
        match result {
            Ok(Pushed::Stored(seq)) => {
                metrics.batches_sealed.inc();
                tracing::debug!(seq, events = n, "Batch sealed");
            }
            Ok(Pushed::Full) => {
                metrics.spool_dropped_events.inc_by(n);
                if last_full_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    last_full_warning = Some(Instant::now());
                    tracing::warn!(
                        dropped_events = n,
                        dropped_total = metrics.spool_dropped_events.get(),
                        "Spool full, dropping new events"
                    );
                }
            }
            Err(e) => {
                metrics.spool_dropped_events.inc_by(n);
                tracing::error!(error = %e, dropped_events = n, "Cannot write batch to spool");
            }
        }
        let (bytes, count) = spool.backlog();
        metrics.spool_bytes.set(bytes as i64);
        metrics.spool_batches.set(count as i64);
    };
    loop {
        let wait = if open.is_empty() {
            Duration::from_secs(1)
        } else {
            bounds.max_interval.saturating_sub(opened.elapsed())
        };
        match rx.recv_timeout(wait) {
            Ok(chunk) => {
                if open.is_empty() {
                    opened = Instant::now();
                }
                open.extend(chunk);
                while open.len() >= bounds.max_events {
                    let rest = open.split_off(bounds.max_events);
                    seal(std::mem::replace(&mut open, rest));
                    opened = Instant::now();
                }
                if !open.is_empty() && opened.elapsed() >= bounds.max_interval {
                    seal(std::mem::take(&mut open));
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if !open.is_empty() {
                    seal(std::mem::take(&mut open));
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if !open.is_empty() {
        seal(open);
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
