//! The shipper: drains the spool to the aggregator, oldest batch first, one at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use teiten_wire::{Ack, CONTENT_TYPE, INGEST_PATH};

use crate::config::{Secret, Valid};
use crate::metrics::Metrics;
use crate::spool::Spool;

/// What one delivery attempt came to.
#[derive(Debug)]
enum Outcome {
    /// Acknowledged: remove from the spool.
    Acked(Ack),
    /// Not delivered; try again later (at least after this long, if the server said so).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Refused as malformed: retrying the same bytes cannot help.
    Rejected { status: u16, reason: String },
}

/// Builds the HTTP agent (TLS for https:// URLs, with extra trusted CAs if configured).
pub(crate) fn agent(cfg: &Valid) -> anyhow::Result<ureq::Agent> {
    teiten_wire::http_agent(
        cfg.ca_file.as_deref(),
        cfg.timeout,
        concat!("teiten-sensor/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(anyhow::Error::msg)
}

fn post(agent: &ureq::Agent, base: &str, token: &Secret, body: &[u8]) -> Outcome {
    let url = format!("{base}{INGEST_PATH}");
    let resp = agent
        .post(&url)
        .set("Authorization", &format!("Bearer {}", token.expose()))
        .set("Content-Type", CONTENT_TYPE)
        .send_bytes(body);
    match resp {
        Ok(resp) => match resp
            .into_string()
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Ack>(&t).map_err(|e| e.to_string()))
        {
            Ok(ack) => Outcome::Acked(ack),
            Err(e) => Outcome::Retry {
                reason: format!("{base}: acknowledgement unreadable: {e}"),
                after: None,
            },
        },
        Err(ureq::Error::Status(status, resp)) => {
            let after = resp
                .header("Retry-After")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp.into_string().unwrap_or_default();
            let reason = format!("{base}: HTTP {status}: {}", text.trim());
            match status {
                400 | 413 | 415 | 422 => Outcome::Rejected { status, reason },
                _ => Outcome::Retry { reason, after },
            }
        }
        Err(ureq::Error::Transport(t)) => Outcome::Retry {
            reason: format!("{base}: {t}"),
            after: None,
        },
    }
}

/// Drains the spool until `stop` is set (and then for at most `drain` more), delivering each
/// batch to the first URL that takes it.
pub(crate) fn run(
    cfg: &Valid,
    agent: &ureq::Agent,
    spool: &Spool,
    metrics: &Metrics,
    stop: &AtomicBool,
    drain: Duration,
) {
    let Some(token) = cfg.token.as_ref() else {
        return;
    };
    if cfg.urls.is_empty() {
        return;
    }
    let mut url = 0usize;
    let mut backoff = Duration::from_millis(200);
    let mut stop_at: Option<Instant> = None;
    // Waits between attempts; once stopping, they end at the drain deadline instead of at once.
    let wait = |stop_at: Option<Instant>, d: Duration| match stop_at {
        Some(deadline) => {
            std::thread::sleep(d.min(deadline.saturating_duration_since(Instant::now())))
        }
        None => pause(stop, d),
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            let deadline = *stop_at.get_or_insert_with(|| Instant::now() + drain);
            if Instant::now() >= deadline || spool.backlog().1 == 0 {
                break;
            }
        }
        let Some((seq, path)) = spool.oldest(Duration::from_millis(200)) else {
            continue;
        };
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(seq, path = %path.display(), error = %e, "Spooled batch unreadable, moving it to rejected/");
                metrics.batches_rejected.inc();
                let _ = spool.reject(seq);
                continue;
            }
        };
        metrics.batches_sent.inc();
        match post(agent, &cfg.urls[url], token, &body) {
            Outcome::Acked(ack) if ack.seq == seq => {
                metrics.batches_acked.inc();
                tracing::debug!(seq, status = ?ack.status, stored = ack.stored, "Batch acknowledged");
                if let Err(e) = spool.ack(seq) {
                    tracing::error!(seq, error = %e, "Cannot remove acknowledged batch");
                }
                backoff = Duration::from_millis(200);
                let (bytes, n) = spool.backlog();
                metrics.spool_bytes.set(bytes as i64);
                metrics.spool_batches.set(n as i64);
            }
            Outcome::Acked(ack) => {
                metrics.send_failures.inc();
                tracing::warn!(
                    seq,
                    acked = ack.seq,
                    "Aggregator acknowledged another batch number; retrying"
                );
                pause(stop, backoff);
            }
            Outcome::Rejected { status, reason } => {
                metrics.batches_rejected.inc();
                if reason.contains(r#""error":"storage_rejected""#) {
                    // Not this batch's fault: once the aggregator's ClickHouse is fixed, moving
                    // the file back into the spool directory delivers it.
                    tracing::error!(seq, status, reason = %reason, "Aggregator's ClickHouse refused batch, moved to rejected/; move it back into the spool once the aggregator is fixed");
                } else {
                    tracing::error!(seq, status, reason = %reason, "Aggregator refused batch, moved to rejected/");
                }
                if let Err(e) = spool.reject(seq) {
                    tracing::error!(seq, error = %e, "Cannot move refused batch aside");
                    wait(stop_at, backoff);
                }
            }
            Outcome::Retry { reason, after } => {
                metrics.send_failures.inc();
                let delay = after.unwrap_or(backoff).min(cfg.retry_max);
                tracing::warn!(seq, reason = %reason, retry_in_ms = delay.as_millis() as u64, "Delivery failed");
                url = (url + 1) % cfg.urls.len();
                // Back off only once every URL has been tried.
                if url == 0 {
                    wait(stop_at, delay);
                    backoff = (backoff * 2).min(cfg.retry_max);
                }
            }
        }
    }
}

/// Sleeps for `d`, waking early when `stop` is set.
fn pause(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(50)));
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            break;
        }
    }
}
