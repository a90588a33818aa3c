//! The intake loop: every followed file, one round each, every `poll_ms`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::clamav::{self, Spool};
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

/// Spooled events filed per round at most (the rest wait for the next round).
const EVENTS_PER_ROUND: usize = 1000;

/// The followers, the ClamAV spool and the aggregator.
pub struct Intake {
    sources: Vec<Source>,
    clamav: Option<(Spool, clamav::Mapping)>,
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
        let clamav = match &c.clamav {
            Some(cc) => Some((
                Spool::open(&cc.spool)
                    .map_err(|e| anyhow::anyhow!("clamav.spool {}: {e}", cc.spool.display()))?,
                cc.mapping(),
            )),
            None => None,
        };
        Ok(Intake {
            sources,
            clamav,
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
        if available {
            available = self.clamav_round();
        }
        Ok(available)
    }

    /// Files the oldest spooled ClamAV events; false when the aggregator was unavailable. An
    /// event is removed once stored; one the aggregator refuses, or that cannot be read, is
    /// moved to `rejected/` and logged. A spool that cannot be listed is logged and tried
    /// again next round.
    fn clamav_round(&mut self) -> bool {
        let Some((spool, mapping)) = &self.clamav else {
            return true;
        };
        let events = match spool.oldest(EVENTS_PER_ROUND) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(spool = %spool.dir().display(), "Cannot list the ClamAV spool: {e}");
                return true;
            }
        };
        let totals = &mut self.totals;
        let reject = |s: &clamav::Spooled, why: &str, totals: &mut Totals| {
            totals.rejected += 1;
            match spool.reject(s) {
                Ok(to) => {
                    tracing::error!(event = %s.path.display(), moved = %to.display(), "Skipped a ClamAV event: {why}")
                }
                Err(e) => {
                    tracing::error!(event = %s.path.display(), "Skipped a ClamAV event: {why}; moving it aside failed: {e}")
                }
            }
        };
        for s in &events {
            let event = match &s.event {
                Ok(e) => e,
                Err(why) => {
                    reject(s, why, totals);
                    continue;
                }
            };
            let report = mapping.report(event);
            match self.aggregator.file(&report) {
                Ok(f) => {
                    if f.duplicate {
                        totals.duplicates += 1;
                    } else {
                        totals.filed += 1;
                        tracing::info!(id = %f.id, colour = %f.colour, host = %report.host, virus = %event.virus, "ClamAV detection filed");
                    }
                    if let Err(e) = spool.done(s) {
                        tracing::error!(event = %s.path.display(), "Filed, but removing the spooled event failed (it is filed again, and stored once): {e}");
                    }
                }
                Err(PostError::Refused { status, detail }) => {
                    reject(s, &format!("refused with {status}: {detail}"), totals)
                }
                Err(PostError::Unavailable(why)) => {
                    tracing::warn!(event = %s.path.display(), %why, "Aggregator unavailable; this detection is filed when it is back");
                    return false;
                }
            }
        }
        true
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
    tracing::info!(files = config.eve.len(), clamav_spool = ?config.clamav.as_ref().map(|c| &c.spool), aggregator = %config.aggregator.url, "Intake started");
    intake.run_until(&stop)?;
    tracing::info!(totals = ?intake.totals, "Intake stopped");
    Ok(intake.totals)
}
