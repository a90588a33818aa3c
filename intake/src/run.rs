//! The intake loop: every followed file, one round each, every `poll_ms`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::eve::{Mapping, Skip};
use crate::follow::{FollowError, Follower, Line};
use crate::post::{Aggregator, PostError};

/// What the intake did (logged at the end, and per round when something happened).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Reports newly stored.
    pub filed: u64,
    /// Reports the aggregator already held (a line read again).
    pub duplicates: u64,
    /// Alerts below `max_severity`.
    pub minor: u64,
    /// Lines that are not alerts.
    pub other: u64,
    /// Lines that are not EVE records, or alerts the aggregator refused.
    pub rejected: u64,
}

struct Source {
    follower: Follower,
    mapping: Mapping,
}

/// The followers and the aggregator.
pub struct Intake {
    sources: Vec<Source>,
    aggregator: Aggregator,
    poll: Duration,
    /// Totals so far.
    pub totals: Totals,
}

impl Intake {
    /// Opens the position files and reads the token; errors name the key or the file.
    pub fn new(c: &Config) -> anyhow::Result<Intake> {
        std::fs::create_dir_all(&c.state_dir)
            .map_err(|e| anyhow::anyhow!("state_dir {}: {e}", c.state_dir.display()))?;
        let aggregator = Aggregator::new(
            &c.aggregator.url,
            &c.aggregator.token_file,
            c.aggregator.ca_file.as_deref(),
            Duration::from_secs(c.aggregator.timeout_secs),
        )
        .map_err(anyhow::Error::msg)?;
        let sources = c
            .eve
            .iter()
            .map(|e| {
                Ok(Source {
                    follower: Follower::new(&e.path, &c.state_of(e))?,
                    mapping: e.mapping(),
                })
            })
            .collect::<Result<_, FollowError>>()?;
        Ok(Intake {
            sources,
            aggregator,
            poll: Duration::from_millis(c.poll_ms),
            totals: Totals::default(),
        })
    }

    /// One round over every file; false when the aggregator was unavailable.
    pub fn round(&mut self) -> Result<bool, FollowError> {
        let mut available = true;
        for s in &mut self.sources {
            let (agg, totals, mapping) = (&self.aggregator, &mut self.totals, &s.mapping);
            let r = s.follower.round(|l: Line<'_>| {
                let report = match mapping.report(l.bytes) {
                    Ok(r) => r,
                    Err(Skip::NotAlert) => {
                        totals.other += 1;
                        return Ok(());
                    }
                    Err(Skip::Minor(_)) => {
                        totals.minor += 1;
                        return Ok(());
                    }
                    Err(Skip::Malformed(why)) => {
                        totals.rejected += 1;
                        tracing::error!(file = %l.file.display(), offset = l.offset, "Skipped a line: {why}");
                        return Ok(());
                    }
                };
                match agg.file(&report) {
                    Ok(f) if f.duplicate => totals.duplicates += 1,
                    Ok(f) => {
                        totals.filed += 1;
                        tracing::info!(id = %f.id, colour = %f.colour, host = %report.host, "Alert filed");
                    }
                    Err(PostError::Refused { status, detail }) => {
                        totals.rejected += 1;
                        tracing::error!(file = %l.file.display(), offset = l.offset, status, %detail, "The aggregator refused an alert's report; skipped");
                    }
                    Err(PostError::Unavailable(why)) => {
                        tracing::warn!(file = %l.file.display(), offset = l.offset, %why, "Aggregator unavailable; this alert is filed when it is back");
                        return Err(());
                    }
                }
                Ok(())
            })?;
            if r.stopped {
                available = false;
                break;
            }
        }
        Ok(available)
    }

    /// Rounds until `stop` is set, waiting `poll_ms` between them and backing off (up to 30
    /// s) while the aggregator is unavailable; positions are saved after each round.
    pub fn run_until(&mut self, stop: &AtomicBool) -> Result<(), FollowError> {
        let mut backoff = self.poll;
        while !stop.load(Ordering::Relaxed) {
            let wait = if self.round()? {
                backoff = self.poll;
                self.poll
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            };
            let until = Instant::now() + wait;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20).min(wait));
            }
        }
        Ok(())
    }
}

/// Runs the intake of `config` until SIGTERM or SIGINT.
pub fn run(config: &Config) -> anyhow::Result<Totals> {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut intake = Intake::new(config)?;
    tracing::info!(files = config.eve.len(), aggregator = %config.aggregator.url, "Intake started");
    intake.run_until(&stop)?;
    tracing::info!(totals = ?intake.totals, "Intake stopped");
    Ok(intake.totals)
}
