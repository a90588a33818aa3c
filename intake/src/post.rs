//! Filing reports with the aggregator: `POST /api/v1/reports` with the intake's reporter
//! token (the aggregator checks, triages and stores; the same report filed twice is stored
//! once).

use std::path::Path;
use std::time::Duration;

use teiten_exchange::reports::{Filed, ReportInput};

/// User agent of the intake's requests.
const USER_AGENT: &str = concat!("teiten-intake/", env!("CARGO_PKG_VERSION"));
/// Largest answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// Why a report was not filed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The aggregator refused this report (400, 413, 422): sending it again will not help.
    #[error("refused with {status}: {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What the aggregator said.
        detail: String,
    },
    /// Unreachable, timed out, busy, failing or refusing the intake itself (a wrong token:
    /// 401, 403): try again later; nothing is skipped.
    #[error("aggregator unavailable: {0}")]
    Unavailable(String),
}

/// The aggregator's reports API with a reporter token.
pub struct Aggregator {
    url: String,
    auth: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Aggregator")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// The API at `base` (`https://host:port`), the token from the first line of
    /// `token_file`; the error names the file, never the token.
    pub fn new(
        base: &str,
        token_file: &Path,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Aggregator, String> {
        let text = std::fs::read_to_string(token_file)
            .map_err(|e| format!("aggregator.token_file {}: {e}", token_file.display()))?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(format!(
                "aggregator.token_file {}: the first line holds no token",
                token_file.display()
            ));
        }
        let agent = teiten_wire::http_agent(ca_file, timeout, USER_AGENT)
            .map_err(|e| format!("aggregator.ca_file: {e}"))?;
        Ok(Aggregator {
            url: format!("{}/api/v1/reports", base.trim_end_matches('/')),
            auth: format!("Bearer {token}"),
            agent,
        })
    }

    /// Files one report: what the aggregator stored (its id and triage).
    pub fn file(&self, report: &ReportInput) -> Result<Filed, PostError> {
        let body = serde_json::to_vec(report).expect("a report serialises");
        let r = self
            .agent
            .post(&self.url)
            .set("Authorization", &self.auth)
            .set("Content-Type", "application/json")
            .send_bytes(&body);
        let read = |resp: ureq::Response| {
            let mut s = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(resp.into_reader(), MAX_ANSWER),
                &mut s,
            )
            .map(|_| s)
        };
        match r {
            Ok(resp) => {
                let text = read(resp).map_err(|e| PostError::Unavailable(e.to_string()))?;
                serde_json::from_str(&text).map_err(|e| {
                    PostError::Unavailable(format!("the answer is not a filed report: {e}"))
                })
            }
            Err(ureq::Error::Status(status, resp)) => {
                let detail = read(resp).unwrap_or_default();
                let detail = serde_json::from_str::<serde_json::Value>(&detail)
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_owned))
                    .unwrap_or(detail);
                if matches!(status, 400 | 413 | 422) {
                    Err(PostError::Refused { status, detail })
                } else {
                    Err(PostError::Unavailable(format!("{status}: {detail}")))
                }
            }
            Err(e) => Err(PostError::Unavailable(e.to_string())),
        }
    }
}
