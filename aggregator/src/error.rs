//! The aggregator library's error type.

use std::path::PathBuf;

/// What went wrong, with the file, sensor, table or step it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this program (unknown field, wrong type...).
    #[error("config {path} is malformed: {source}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A config value breaks a rule.
    #[error("config field `{field}` is invalid: {reason}")]
    ConfigInvalid {
        /// Dotted path of the field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A geo database could not be loaded.
    #[error("geo database {path}: {reason}")]
    Geo {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the line number for the tor format).
        reason: String,
    },
    /// A ClickHouse request failed.
    #[error("ClickHouse {what}: {source}")]
    ClickHouse {
        /// What was being done (a migration step, a query's purpose).
        what: String,
        /// The client's error.
        source: clickhouse::error::Error,
    },
    /// The ClickHouse server is older than the oldest version the schema supports.
    #[error("ClickHouse server {found} is too old: teiten needs {needed} or later")]
    ServerTooOld {
        /// The version the server reported.
        found: String,
        /// The oldest supported version.
        needed: String,
    },
    /// Tables or views on the server differ from this release's definition in a way no
    /// migration step handles (or a step did not bring them there): the aggregator does not
    /// start on them.
    #[error("{}", schema_mismatch(.database, .differences, *.after_migrating))]
    SchemaMismatch {
        /// The database.
        database: String,
        /// Each difference, `db.table: what differs`.
        differences: Vec<String>,
        /// Whether found after the migration steps ran (a step is wrong), rather than before
        /// any ran (nothing was changed).
        after_migrating: bool,
    },
    /// A system call failed (binding the listener, signals).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A ClickHouse mutation (deleting a day's rows before a rebuild) did not finish in time.
    #[error("{what}: not done after {secs} s (see system.mutations)")]
    MutationTimeout {
        /// What was being done.
        what: String,
        /// How long it was waited for.
        secs: u64,
    },
    /// A sensor registry operation could not be done.
    #[error("sensor {sensor}: {reason}")]
    Sensor {
        /// The sensor id.
        sensor: String,
        /// Why.
        reason: String,
    },
}

fn schema_mismatch(database: &str, differences: &[String], after: bool) -> String {
    let mut out = if after {
        format!(
            "ClickHouse database {database} still differs from this release's schema after \
             the migration steps ran (a migration step of this release is wrong; please report \
             it with this message):"
        )
    } else {
        format!(
            "ClickHouse database {database} differs from this release's schema in ways no \
             migration step of this release handles; nothing was changed:"
        )
    };
    for d in differences {
        out.push_str("\n  - ");
        out.push_str(d);
    }
    if !after {
        out.push_str(
            "\nIf a table was changed by hand, change it back (`teiten-aggregator schema \
             --print-sql` prints this release's DDL; a table with another engine or key must be \
             created anew under another name, filled with INSERT ... SELECT and swapped in with \
             RENAME TABLE). If the database was made by a newer release, run that release. A \
             column or table this release defines but cannot add is a missing migration: \
             see docs/upgrading.md.",
        );
    }
    out
}

impl Error {
    /// Wraps a ClickHouse client error with what was being done.
    pub(crate) fn ch(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> Error {
        let what = what.into();
        move |source| Error::ClickHouse { what, source }
    }

    /// Whether retrying later may succeed (network trouble, a restarting server, a timeout)
    /// rather than the request itself being wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ClickHouse { source, .. } => matches!(
                source,
                clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut
            ),
            _ => false,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
