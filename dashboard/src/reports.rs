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
use teiten_exchange::cases::store::{Answered, AnswersInput, HistoryStep, LinkView};
use teiten_exchange::cases::trends::{Period, Trends};
use teiten_exchange::reports::{Filed, ReportInput};

use crate::config::ReportsConfig;
use crate::error::{Error, Result};

/// User agent of the dashboard's requests.
const USER_AGENT: &str = concat!("teiten-dashboard/", env!("CARGO_PKG_VERSION"));
/// Largest error answer read from the aggregator.
const MAX_ERROR_BYTES: u64 = 16 * 1024;
/// Largest JSON answer read from the aggregator.
const MAX_ANSWER_BYTES: u64 = 1 << 20;
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

impl Aggregator {
    /// A JSON call: `GET` (without `body`) or `POST` of `body` to `path`; the answer's JSON
    /// (`null` for 204). `shown` is the path as it is logged: never a link's token.
    async fn call_json(
        &self,
        path: String,
        shown: &'static str,
        body: Option<Vec<u8>>,
    ) -> std::result::Result<serde_json::Value, Refusal> {
        let (agent, url, auth) = (
            self.agent.clone(),
            format!("{}{path}", self.base),
            self.bearer(),
        );
        let logged = format!("{}{shown}", self.base);
        let answer = tokio::task::spawn_blocking(move || {
            let req = match &body {
                Some(_) => agent.post(&url),
                None => agent.get(&url),
            }
            .set("Authorization", &auth);
            let r = match body {
                Some(b) => req
                    .set("Content-Type", "application/json")
                    .send_bytes(&b),
                None => req.call(),
            };
            let resp = answered(&logged, r)?;
            if resp.status() == 204 {
                return Ok(serde_json::Value::Null);
            }
            let mut text = String::new();
            resp.into_reader()
                .take(MAX_ANSWER_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| {
                    tracing::warn!(url = %logged, error = %e, "Reading the aggregator's answer failed");
                    Refusal::Unavailable
                })?;
            serde_json::from_str(&text).map_err(|e| {
                tracing::warn!(url = %logged, error = %e, "The aggregator's answer is not JSON");
                Refusal::Unavailable
            })
        })
        .await;
        answer.unwrap_or(Err(Refusal::Unavailable))
    }

    fn parsed<T: serde::de::DeserializeOwned>(
        v: serde_json::Value,
        what: &str,
    ) -> std::result::Result<T, Refusal> {
        serde_json::from_value(v).map_err(|e| {
            tracing::warn!(error = %e, "The aggregator's answer is not {what}");
            Refusal::Unavailable
        })
    }

    /// What the questionnaire page of a link shows (`token`: 64 hex digits, checked by the
    /// caller).
    pub async fn questionnaire(&self, token: &str) -> std::result::Result<LinkView, Refusal> {
        let v = self
            .call_json(
                format!("/api/v1/questionnaire/{token}"),
                "/api/v1/questionnaire/<token>",
                None,
            )
            .await?;
        Self::parsed(v, "a questionnaire")
    }

    /// Sends a link's answers: the colour they were triaged to.
    pub async fn answer(
        &self,
        token: &str,
        answers: &AnswersInput,
    ) -> std::result::Result<Answered, Refusal> {
        let body = serde_json::to_vec(&serde_json::json!({ "answers": answers }))
            .expect("answers serialise");
        let v = self
            .call_json(
                format!("/api/v1/questionnaire/{token}"),
                "/api/v1/questionnaire/<token>",
                Some(body),
            )
            .await?;
        Self::parsed(v, "a triage")
    }

    /// The monthly trends of the internal reports of a period.
    pub async fn trends(&self, period: &Period) -> std::result::Result<Trends, Refusal> {
        let v = self
            .call_json(
                format!("/api/v1/cases/trends?from={}&to={}", period.from, period.to),
                "/api/v1/cases/trends",
                None,
            )
            .await?;
        Self::parsed(v, "trends")
    }

    /// The steps of the case of `reporter`'s report `id`.
    pub async fn case(
        &self,
        reporter: &str,
        id: &str,
    ) -> std::result::Result<Vec<HistoryStep>, Refusal> {
        let v = self
            .call_json(
                format!("/api/v1/cases/{}/{}", enc(reporter), enc(id)),
                "/api/v1/cases/<reporter>/<id>",
                None,
            )
            .await?;
        Self::parsed(v["steps"].clone(), "a case")
    }

    /// Sets the colour of a case for `analyst`, with the reason.
    pub async fn override_colour(
        &self,
        reporter: &str,
        id: &str,
        analyst: &str,
        colour: &str,
        reason: &str,
    ) -> std::result::Result<(), Refusal> {
        let body = serde_json::to_vec(
            &serde_json::json!({"colour": colour, "reason": reason, "analyst": analyst}),
        )
        .expect("serialises");
        self.call_json(
            format!("/api/v1/cases/{}/{}/override", enc(reporter), enc(id)),
            "/api/v1/cases/<reporter>/<id>/override",
            Some(body),
        )
        .await
        .map(|_| ())
    }
}

/// A path segment, percent-encoded.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Path as UrlPath;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use http_body_util::BodyExt;

    /// A stand-in for the aggregator's two routes, checking the bearer token.
    async fn fake_aggregator() -> String {
        let authorised = |h: &HeaderMap| {
            h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-1")
        };
        let app = Router::new()
            .route(
                "/api/v1/reports",
                post(move |h: HeaderMap, Json(r): Json<ReportInput>| async move {
                    if !authorised(&h) {
                        return (
                            StatusCode::UNAUTHORIZED,
                            Json(serde_json::json!({"error": "unauthorized", "detail": "unknown token"})),
                        )
                            .into_response();
                    }
                    match r.category.as_str() {
                        "intrusion" => (
                            StatusCode::CREATED,
                            Json(serde_json::json!({"id": "r-1", "colour": "red",
                                "rules": ["intrusion-is-red"], "duplicate": false})),
                        )
                            .into_response(),
                        "dos" => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                        other => (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            Json(serde_json::json!({"error": "invalid",
                                "detail": format!("category `{other}` is not one of ...")})),
                        )
                            .into_response(),
                    }
                }),
            )
            .route(
                "/api/v1/outbox/{partner}/{day}",
                get(
                    move |h: HeaderMap, UrlPath((p, d)): UrlPath<(String, String)>| async move {
                        if !authorised(&h) {
                            return StatusCode::UNAUTHORIZED.into_response();
                        }
                        if p == "au-cert" && d == "20261201" {
                            (
                                [
                                    ("content-type", "application/xml"),
                                    ("content-disposition", "attachment; filename=\"f.xml\""),
                                ],
                                "<IODEF-Document/>\n".repeat(50_000),
                            )
                                .into_response()
                        } else {
                            (
                                StatusCode::NOT_FOUND,
                                Json(serde_json::json!({"error": "not_found",
                                    "detail": format!("the file of {p} for {d} is no longer in the outbox")})),
                            )
                                .into_response()
                        }
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn client(url: &str, token: &str) -> (Aggregator, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{token}\nignored\n")).unwrap();
        let c = ReportsConfig {
            url: format!("{url}/"),
            token_file,
            ca_file: None,
            timeout_secs: 5,
            download_timeout_secs: 5,
            allow_insecure: false,
        };
        (Aggregator::load(&c).unwrap(), dir)
    }

    fn report(category: &str) -> ReportInput {
        ReportInput {
            id: None,
            detected: "2026-11-30T08:15:00Z".into(),
            source: "staff".into(),
            host: "192.0.2.44".into(),
            category: category.into(),
            description: String::new(),
            indicators: Default::default(),
            tlp: "amber".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_reports_and_reads_refusals() {
        let url = fake_aggregator().await;
        let (agg, _dir) = client(&url, "tok-1");
        assert!(
            !format!("{agg:?}").contains("tok-1"),
            "the token is never shown"
        );
        let filed = agg.file(&report("intrusion")).await.unwrap();
        assert_eq!((filed.id.as_str(), filed.colour.as_str()), ("r-1", "red"));
        assert_eq!(
            agg.file(&report("spam")).await.unwrap_err(),
            Refusal::Refused {
                status: 422,
                detail: "category `spam` is not one of ...".into()
            }
        );
        assert_eq!(
            agg.file(&report("dos")).await.unwrap_err(),
            Refusal::Unavailable
        );
        let (wrong, _dir2) = client(&url, "tok-2");
        assert!(matches!(
            wrong.file(&report("intrusion")).await.unwrap_err(),
            Refusal::Refused { status: 401, .. }
        ));
        // Nobody listening.
        let (gone, _dir3) = client("http://127.0.0.1:9", "tok-1");
        assert_eq!(
            gone.file(&report("intrusion")).await.unwrap_err(),
            Refusal::Unavailable
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_downloads_and_passes_404_on() {
        let url = fake_aggregator().await;
        let (agg, _dir) = client(&url, "tok-1");
        let d = agg.outbox_file("au-cert", 20_261_201).await.unwrap();
        assert_eq!(d.content_type, "application/xml");
        assert_eq!(
            d.disposition.as_deref(),
            Some("attachment; filename=\"f.xml\"")
        );
        let bytes = d.body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), "<IODEF-Document/>\n".len() * 50_000);
        match agg.outbox_file("jp-cert", 20_261_201).await.unwrap_err() {
            Refusal::Refused {
                status: 404,
                detail,
            } => {
                assert!(detail.contains("no longer in the outbox"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_or_missing_token_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ReportsConfig {
            url: "https://127.0.0.1:8443".into(),
            token_file: dir.path().join("none"),
            ca_file: None,
            timeout_secs: 5,
            download_timeout_secs: 5,
            allow_insecure: false,
        };
        let e = Aggregator::load(&c).unwrap_err().to_string();
        assert!(e.contains("reports.token_file"), "{e}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        c.token_file = dir.path().join("empty");
        let e = Aggregator::load(&c).unwrap_err().to_string();
        assert!(
            e.contains("reports.token_file") && e.contains("no token"),
            "{e}"
        );
        c.token_file = dir.path().join("empty");
        std::fs::write(&c.token_file, "t\n").unwrap();
        c.ca_file = Some(dir.path().join("no-ca.pem"));
        let e = Aggregator::load(&c).unwrap_err().to_string();
        assert!(e.contains("reports.ca_file"), "{e}");
    }
}
