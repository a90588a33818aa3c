//! The library's error type and the HTTP error every handler answers with.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What can go wrong in the dashboard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file does not parse or breaks a rule.
    #[error("config {what}: {message}")]
    Config {
        /// The file or the check.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A ClickHouse query failed.
    #[error("ClickHouse, {what}: {source}")]
    ClickHouse {
        /// The query's purpose.
        what: String,
        /// The cause.
        source: clickhouse::error::Error,
    },
    /// Drawing a chart failed.
    #[error("drawing the {what} chart: {message}")]
    Chart {
        /// The chart.
        what: String,
        /// The cause.
        message: String,
    },
    /// The chart font is missing or unreadable.
    #[error("font {path}: {message}")]
    Font {
        /// The font file.
        path: String,
        /// The cause.
        message: String,
    },
    /// The error of a fetch that several requests waited for (see [`crate::cache`]), as each
    /// of them gets it.
    #[error("{0}")]
    Shared(Arc<Error>),
}

/// The dashboard's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error itself, through any [`Error::Shared`].
    fn root(&self) -> &Error {
        match self {
            Error::Shared(e) => e.root(),
            e => e,
        }
    }

    /// A mapper for `map_err` on a ClickHouse call.
    pub(crate) fn ch(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> Error {
        let what = what.into();
        move |source| Error::ClickHouse { what, source }
    }
}

/// What a handler answers when it fails: a clean status and message; the cause is logged, never
/// sent.
#[derive(Debug)]
pub enum HttpError {
    /// A bad request parameter: 400 with the message (which names the parameter, never
    /// internals).
    BadRequest(String),
    /// 404.
    NotFound,
    /// 403 (CSRF token missing or wrong).
    Forbidden(&'static str),
    /// Anything else: logged, answered 500 (or 503 when ClickHouse is unreachable).
    Internal(Error),
    /// The error of a fetch that several requests waited for, answered as that error.
    Shared(Arc<HttpError>),
}

impl crate::cache::Shared for Error {
    fn from_shared(shared: Arc<Error>) -> Error {
        Arc::try_unwrap(shared).unwrap_or_else(Error::Shared)
    }
}

impl crate::cache::Shared for HttpError {
    fn from_shared(shared: Arc<HttpError>) -> HttpError {
        Arc::try_unwrap(shared).unwrap_or_else(HttpError::Shared)
    }
}

impl HttpError {
    /// A 400 with this message.
    pub(crate) fn bad(message: impl Into<String>) -> HttpError {
        HttpError::BadRequest(message.into())
    }
}

impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        HttpError::Internal(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        self.respond()
    }
}

impl HttpError {
    fn respond(&self) -> Response {
        let text_response = |status: StatusCode, text: String| {
            (
                status,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )],
                text,
            )
                .into_response()
        };
        match self {
            HttpError::BadRequest(m) => text_response(StatusCode::BAD_REQUEST, format!("{m}\n")),
            HttpError::NotFound => text_response(StatusCode::NOT_FOUND, "not found\n".into()),
            HttpError::Forbidden(m) => text_response(StatusCode::FORBIDDEN, format!("{m}\n")),
            HttpError::Shared(e) => e.respond(),
            HttpError::Internal(e) => {
                let status = match e.root() {
                    Error::ClickHouse {
                        source: clickhouse::error::Error::Network(_),
                        ..
                    } => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                tracing::error!(error = %e, status = status.as_u16(), "Request failed");
                let mut res = text_response(
                    status,
                    "the dashboard could not answer this request; the error is logged\n".into(),
                );
                if matches!(e.root(), Error::ClickHouse { .. }) {
                    res.extensions_mut()
                        .insert(crate::metrics::ClickHouseFailed);
                }
                res
            }
        }
    }
}
