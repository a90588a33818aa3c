//! The aggregator's API as the exchange page uses it (`[reports]`): internal reports are filed
//! with `POST /api/v1/reports` and the daily partner files are downloaded from
//! `GET /api/v1/outbox/{partner}/{day}`, both with the dashboard's own reporter token. The
//! aggregator checks, triages and stores the reports; the dashboard keeps no rules, no geo
//! database and no write access to ClickHouse.
//!
//! The client is ureq (blocking, rustls, `teiten_wire::http_agent`) run on tokio's blocking
//! pool; a download is streamed to the analyst in chunks as it arrives.

use std::io::Read;

use axum::body::{Body, Bytes};
use teiten_exchange::reports::{Filed, ReportInput};

use crate::config::ReportsConfig;
use crate::error::{Error, Result};

/// User agent of the dashboard's requests.
const USER_AGENT: &str = concat!("teiten-dashboard/", env!("CARGO_PKG_VERSION"));
/// Largest error answer read from the aggregator.
const MAX_ERROR_BYTES: u64 = 16 * 1024;
/// Chunk of a download.
const CHUNK: usize = 64 * 1024;

/// Why the aggregator did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It answered 4xx: the status and its error text (`detail`), shown to the analyst.
    Refused {
        /// The HTTP status.
        status: u16,
        /// What the aggregator said.
        detail: String,
    },
    /// It could not be reached, timed out or answered 5xx (logged): try again later.
    Unavailable,
}

/// A daily file coming from the aggregator.
#[derive(Debug)]
pub struct Download {
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its `Content-Disposition` (with the file name), when the aggregator sent one.
    pub disposition: Option<String>,
    /// The bytes, streamed as they arrive.
    pub body: Body,
}

/// The aggregator's API with the dashboard's reporter token.
#[derive(Clone)]
pub struct Aggregator {
    base: String,
    token: String,
    agent: ureq::Agent,
    download: ureq::Agent,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Aggregator")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// Reads the token file and builds the HTTPS clients (with `ca_file`, when given). The
    /// error names the key and the file, never the token.
    pub fn load(c: &ReportsConfig) -> Result<Aggregator> {
        let text = std::fs::read_to_string(&c.token_file).map_err(|source| Error::Io {
            what: format!("reading reports.token_file {}", c.token_file.display()),
            source,
        })?;
        let token = text.lines().next().unwrap_or("").trim().to_owned();
        if token.is_empty() {
            return Err(Error::Config {
                what: format!("reports.token_file {}", c.token_file.display()),
                message: "the first line holds no token".into(),
            });
        }
        let agent = |secs: u64| {
            teiten_wire::http_agent(
                c.ca_file.as_deref(),
                std::time::Duration::from_secs(secs),
                USER_AGENT,
            )
            .map_err(|message| Error::Config {
                what: "reports.ca_file".into(),
                message,
            })
        };
        Ok(Aggregator {
            base: c.url.trim_end_matches('/').to_owned(),
            token,
            agent: agent(c.timeout_secs)?,
            download: agent(c.download_timeout_secs)?,
        })
    }

    /// The aggregator's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Files a report: what the aggregator stored (id, triage colour, rules), or why not.
    pub async fn file(&self, input: &ReportInput) -> std::result::Result<Filed, Refusal> {
        let body = serde_json::to_vec(input).map_err(|e| {
            tracing::error!(error = %e, "Cannot encode an internal report");
            Refusal::Unavailable
        })?;
        let (agent, url, auth) = (
            self.agent.clone(),
            format!("{}/api/v1/reports", self.base),
            self.bearer(),
        );
        let answer = tokio::task::spawn_blocking(move || {
            let r = agent
                .post(&url)
                .set("Authorization", &auth)
                .set("Content-Type", "application/json")
                .send_bytes(&body);
            let resp = answered(&url, r)?;
            let text = resp.into_string().map_err(|e| {
                tracing::warn!(url = %url, error = %e, "Reading the aggregator's answer failed");
                Refusal::Unavailable
            })?;
            serde_json::from_str::<Filed>(&text).map_err(|e| {
                tracing::warn!(url = %url, error = %e, "The aggregator's answer is not a filed report");
                Refusal::Unavailable
            })
        })
        .await;
        answer.unwrap_or(Err(Refusal::Unavailable))
    }

    /// Starts the download of a partner's daily file (`partner` a partner id, checked by the
    /// caller; `day` as YYYYMMDD): its headers once the aggregator answered 200, the body
    /// streamed on.
    pub async fn outbox_file(
        &self,
        partner: &str,
        day: u32,
    ) -> std::result::Result<Download, Refusal> {
        let (agent, url, auth) = (
            self.download.clone(),
            format!("{}/api/v1/outbox/{partner}/{day}", self.base),
            self.bearer(),
        );
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            let resp = match answered(&url, agent.get(&url).set("Authorization", &auth).call()) {
                Ok(r) => r,
                Err(refusal) => {
                    let _ = head_tx.send(Err(refusal));
                    return;
                }
            };
            let head = (
                resp.header("content-type")
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                resp.header("content-disposition").map(str::to_owned),
            );
            if head_tx.send(Ok(head)).is_err() {
                return;
            }
            let mut reader = resp.into_reader();
            loop {
                let mut buf = vec![0u8; CHUNK];
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            return; // The analyst went away.
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(url = %url, error = %e, "A download from the aggregator broke off");
                        // An error, not an end: the analyst's download fails instead of
                        // looking complete.
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        let (content_type, disposition) = head_rx.await.unwrap_or(Err(Refusal::Unavailable))?;
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Download {
            content_type,
            disposition,
            body: Body::from_stream(stream),
        })
    }
}

/// A 2xx response, or the refusal: 4xx with the aggregator's `detail` (or its text), 5xx and
/// transport errors logged and answered [`Refusal::Unavailable`].
fn answered(
    url: &str,
    r: std::result::Result<ureq::Response, ureq::Error>,
) -> std::result::Result<ureq::Response, Refusal> {
    match r {
        Ok(resp) => Ok(resp),
        Err(ureq::Error::Status(status, resp)) => {
            let mut text = String::new();
            let _ = resp
                .into_reader()
                .take(MAX_ERROR_BYTES)
                .read_to_string(&mut text);
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.trim().chars().take(300).collect());
            if status >= 500 {
                tracing::warn!(url = %url, status, detail = %detail, "The aggregator is unavailable");
                Err(Refusal::Unavailable)
            } else {
                tracing::warn!(url = %url, status, detail = %detail, "The aggregator refused a request");
                Err(Refusal::Refused { status, detail })
            }
        }
        Err(e) => {
            tracing::warn!(url = %url, error = %e, "The aggregator cannot be reached");
            Err(Refusal::Unavailable)
        }
    }
}
