//! The log set-up of every teiten binary: the global `--log-format text|json` flag
//! ([`LogFormat`]) and one filter variable, [`LOG_ENV`] (`TEITEN_LOG`, `EnvFilter` syntax,
//! default `info`). Logs go to standard error, through [`crate::progress`] so that a progress
//! bar on the terminal is cleared while a line is written.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter (`EnvFilter` syntax, e.g. `warn` or
/// `info,teiten_aggregator=debug`).
pub const LOG_ENV: &str = "TEITEN_LOG";

/// The filter used when [`LOG_ENV`] is unset.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written on standard error.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter of [`LOG_ENV`], or why it is not valid.
fn filter() -> (EnvFilter, Option<String>) {
    match std::env::var(LOG_ENV) {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some(format!(
                    "{LOG_ENV}={v:?} is not a log filter ({e}); logging at {DEFAULT_FILTER}"
                )),
            ),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    }
}

/// Starts logging on standard error in `format`, filtered by [`LOG_ENV`]. A filter that does
/// not parse is reported (as a warning, once logging runs) and replaced by the default. Call
/// once, early in `main`; a second call does nothing.
pub fn init(format: LogFormat) {
    let (filter, bad) = filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .with_ansi(format == LogFormat::Text && io::stderr().is_terminal());
    let set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if set.is_ok() {
        if let Some(msg) = bad {
            tracing::warn!("{msg}");
        }
    }
}

/// Standard error, written with progress bars suspended.
#[derive(Clone, Copy, Debug)]
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::progress::suspend(|| io::stderr().write(buf))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        crate::progress::suspend(|| io::stderr().write_all(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_as_cli_values() {
        use clap::ValueEnum;
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert!(LogFormat::from_str("yaml", false).is_err());
        assert_eq!(LogFormat::default(), LogFormat::Text);
    }
}
