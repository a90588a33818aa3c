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
    pub fn ch(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> Error {
        let what = what.into();
        move |source| Error::ClickHouse { what, source }
    }

    /// Whether retrying later may succeed. ClickHouse errors are classified by [`Cause::of`];
    /// of the others, a mutation that did not finish in time and a failed system call are
    /// transient, and a bad config, geo database or sensor operation is permanent (the same
    /// input gives the same answer).
    pub fn class(&self) -> Class {
        match self {
            Error::ClickHouse { source, .. } => Cause::of(source).class,
            Error::MutationTimeout { .. } | Error::Io { .. } => Class::Transient,
            _ => Class::Permanent,
        }
    }

    /// Why a ClickHouse request failed; `None` for the other errors.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            Error::ClickHouse { source, .. } => Some(Cause::of(source)),
            _ => None,
        }
    }
}

/// Whether retrying a failed request later may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// It may: the network, a restarting, overloaded or slow server, a replica or Keeper
    /// away. The sensor keeps the batch and sends it again.
    Transient,
    /// It will not until an operator acts: the schema does not match the rows the aggregator
    /// writes, the data is refused, or the aggregator's ClickHouse user lacks a right. The
    /// batch is refused so that the sensor sets it aside instead of retrying it forever.
    Permanent,
}

impl Class {
    /// `transient` or `permanent` (metric label).
    pub fn name(self) -> &'static str {
        match self {
            Class::Transient => "transient",
            Class::Permanent => "permanent",
        }
    }
}

/// What a ClickHouse error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// A table, database or column is missing or has another type than the rows written.
    Schema,
    /// The rows could not be parsed or break a rule of the table (a value out of range).
    /// Possibly the fault of one batch only, unlike the others.
    Data,
    /// The statement itself is wrong for this server (syntax, function, setting): a bug or
    /// an unsupported server version.
    Query,
    /// Authentication failed, or the user may not do this (read-only, no grant).
    Access,
    /// The server is out of memory, parts, disk or query slots, or over a quota.
    Overload,
    /// A server-side or client-side time limit expired.
    Timeout,
    /// The connection, a shard, a replica or Keeper/ZooKeeper is unavailable.
    Network,
    /// Another server error (an unclassified code).
    Server,
    /// The client could not make sense of the answer.
    Client,
}

impl Category {
    /// The lower-case name used in metrics, logs and answers.
    pub fn name(self) -> &'static str {
        match self {
            Category::Schema => "schema",
            Category::Data => "data",
            Category::Query => "query",
            Category::Access => "access",
            Category::Overload => "overload",
            Category::Timeout => "timeout",
            Category::Network => "network",
            Category::Server => "server",
            Category::Client => "client",
        }
    }
}

/// The classified cause of a ClickHouse error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Whether retrying may help.
    pub class: Class,
    /// What it is about.
    pub category: Category,
    /// The server's error code (`Code: 60. DB::Exception: ...`), if the error came from the
    /// server.
    pub code: Option<u32>,
    /// The code's name (`UNKNOWN_TABLE`), for the codes this module knows, else the name
    /// the server gave (26.x ends its messages with it), else empty.
    pub name: String,
    /// The server's description of the error (`No such column withheld in table
    /// teiten.scan_events`), without the code, version and stack trace, network addresses
    /// and URLs replaced by `<address>`, cut to 200 characters; empty for client errors.
    pub description: String,
}

/// Server error codes and what they mean for a retry, from ClickHouse's
/// `src/Common/ErrorCodes.cpp` (names as in 26.x; 18.16 uses the same numbers). Codes not
/// listed are [`Class::Transient`], [`Category::Server`]: see [`Cause::of`].
const CODES: &[(u32, &str, Category)] = {
    use Category::*;
    &[
        (1, "UNSUPPORTED_METHOD", Query),
        (2, "UNSUPPORTED_PARAMETER", Query),
        (3, "UNEXPECTED_END_OF_FILE", Data),
        (6, "CANNOT_PARSE_TEXT", Data),
        (7, "INCORRECT_NUMBER_OF_COLUMNS", Schema),
        (8, "THERE_IS_NO_COLUMN", Schema),
        (9, "SIZES_OF_COLUMNS_DOESNT_MATCH", Data),
        (10, "NOT_FOUND_COLUMN_IN_BLOCK", Schema),
        (15, "DUPLICATE_COLUMN", Schema),
        (16, "NO_SUCH_COLUMN_IN_TABLE", Schema),
        (19, "SIZE_OF_FIXED_STRING_DOESNT_MATCH", Data),
        (20, "NUMBER_OF_COLUMNS_DOESNT_MATCH", Schema),
        (25, "CANNOT_PARSE_ESCAPE_SEQUENCE", Data),
        (26, "CANNOT_PARSE_QUOTED_STRING", Data),
        (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", Data),
        (32, "ATTEMPT_TO_READ_AFTER_EOF", Data),
        (33, "CANNOT_READ_ALL_DATA", Data),
        (36, "BAD_ARGUMENTS", Query),
        (38, "CANNOT_PARSE_DATE", Data),
        (41, "CANNOT_PARSE_DATETIME", Data),
        (42, "NUMBER_OF_ARGUMENTS_DOESNT_MATCH", Query),
        (43, "ILLEGAL_TYPE_OF_ARGUMENT", Schema),
        (44, "ILLEGAL_COLUMN", Schema),
        (46, "UNKNOWN_FUNCTION", Query),
        (47, "UNKNOWN_IDENTIFIER", Schema),
        (48, "NOT_IMPLEMENTED", Query),
        (50, "UNKNOWN_TYPE", Schema),
        (53, "TYPE_MISMATCH", Schema),
        (60, "UNKNOWN_TABLE", Schema),
        (62, "SYNTAX_ERROR", Query),
        (63, "UNKNOWN_AGGREGATE_FUNCTION", Query),
        (69, "ARGUMENT_OUT_OF_BOUND", Data),
        (70, "CANNOT_CONVERT_TYPE", Schema),
        (72, "CANNOT_PARSE_NUMBER", Data),
        (73, "UNKNOWN_FORMAT", Query),
        (80, "INCORRECT_QUERY", Query),
        (81, "UNKNOWN_DATABASE", Schema),
        (95, "CANNOT_READ_FROM_SOCKET", Network),
        (96, "CANNOT_WRITE_TO_SOCKET", Network),
        (115, "UNKNOWN_SETTING", Query),
        (117, "INCORRECT_DATA", Data),
        (122, "INCOMPATIBLE_COLUMNS", Schema),
        (128, "TOO_LARGE_ARRAY_SIZE", Data),
        (131, "TOO_LARGE_STRING_SIZE", Data),
        (159, "TIMEOUT_EXCEEDED", Timeout),
        (160, "TOO_SLOW", Timeout),
        (164, "READONLY", Access),
        (173, "CANNOT_ALLOCATE_MEMORY", Overload),
        (192, "UNKNOWN_USER", Access),
        (193, "WRONG_PASSWORD", Access),
        (194, "REQUIRED_PASSWORD", Access),
        (195, "IP_ADDRESS_NOT_ALLOWED", Access),
        (198, "DNS_ERROR", Network),
        (201, "QUOTA_EXCEEDED", Overload),
        (202, "TOO_MANY_SIMULTANEOUS_QUERIES", Overload),
        (203, "NO_FREE_CONNECTION", Network),
        (207, "AMBIGUOUS_IDENTIFIER", Schema),
        (209, "SOCKET_TIMEOUT", Timeout),
        (210, "NETWORK_ERROR", Network),
        (225, "NO_ZOOKEEPER", Network),
        (236, "ABORTED", Network),
        (241, "MEMORY_LIMIT_EXCEEDED", Overload),
        (242, "TABLE_IS_READ_ONLY", Network),
        (243, "NOT_ENOUGH_SPACE", Overload),
        (244, "UNEXPECTED_ZOOKEEPER_ERROR", Network),
        (252, "TOO_MANY_PARTS", Overload),
        (254, "NO_ACTIVE_REPLICAS", Network),
        (265, "NO_AVAILABLE_REPLICA", Network),
        (279, "ALL_CONNECTION_TRIES_FAILED", Network),
        (285, "TOO_FEW_LIVE_REPLICAS", Network),
        (286, "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE", Network),
        (289, "REPLICA_IS_NOT_IN_QUORUM", Network),
        (291, "DATABASE_ACCESS_DENIED", Access),
        (319, "UNKNOWN_STATUS_OF_INSERT", Network),
        (321, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", Data),
        (342, "METADATA_MISMATCH", Schema),
        (349, "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN", Data),
        (352, "AMBIGUOUS_COLUMN_NAME", Schema),
        (364, "RECEIVED_ERROR_TOO_MANY_REQUESTS", Overload),
        (376, "CANNOT_PARSE_UUID", Data),
        (384, "PART_IS_TEMPORARILY_LOCKED", Overload),
        (394, "QUERY_WAS_CANCELLED", Network),
        (407, "DECIMAL_OVERFLOW", Data),
        (452, "SETTING_CONSTRAINT_VIOLATION", Access),
        (467, "CANNOT_PARSE_BOOL", Data),
        (469, "VIOLATED_CONSTRAINT", Data),
        (472, "READONLY_SETTING", Access),
        (473, "DEADLOCK_AVOIDED", Overload),
        (497, "ACCESS_DENIED", Access),
        (516, "AUTHENTICATION_FAILED", Access),
        (519, "NO_REMOTE_SHARD_AVAILABLE", Network),
        (565, "TOO_MANY_PARTITIONS", Data),
        (574, "DISTRIBUTED_TOO_MANY_PENDING_BYTES", Overload),
        (675, "CANNOT_PARSE_IPV4", Data),
        (676, "CANNOT_PARSE_IPV6", Data),
        (691, "UNKNOWN_ELEMENT_OF_ENUM", Data),
        (700, "USER_SESSION_LIMIT_EXCEEDED", Overload),
        (720, "USER_EXPIRED", Access),
        (733, "TABLE_IS_BEING_RESTARTED", Network),
        (745, "SERVER_OVERLOADED", Overload),
        (749, "TCP_CONNECTION_LIMIT_REACHED", Overload),
        (762, "HTTP_CONNECTION_LIMIT_REACHED", Overload),
        (772, "INCOMPATIBLE_SCHEMA", Schema),
        (777, "MEMORY_RESERVATION_KILLED", Overload),
        (778, "MEMORY_RESERVATION_FAILED", Overload),
        (904, "TOO_MANY_UNAVAILABLE_SHARDS", Network),
        (999, "KEEPER_EXCEPTION", Network),
        (1018, "EXCHANGE_PEER_DISCONNECTED", Network),
        (1019, "QUERY_SLOT_ACQUISITION_TIMEOUT", Overload),
        (1020, "MEMORY_RESERVATION_ACQUISITION_TIMEOUT", Overload),
    ]
};

impl Category {
    fn class(self) -> Class {
        match self {
            Category::Schema | Category::Data | Category::Query | Category::Access => {
                Class::Permanent
            }
            Category::Overload
            | Category::Timeout
            | Category::Network
            | Category::Server
            | Category::Client => Class::Transient,
        }
    }
}

/// Longest description kept from a server message, in characters.
const DESCRIPTION_CHARS: usize = 200;

impl Cause {
    /// Classifies a client error.
    ///
    /// - Network errors and timeouts are transient.
    /// - A server exception (`Error::BadResponse`, "Code: 60. DB::Exception: ..." in 26.x,
    ///   "Code: 60, e.displayText() = DB::Exception: ..." in 18.16, or only the code when
    ///   the server sent it in the `X-ClickHouse-Exception-Code` header without a body) is
    ///   classified by its code ([`CODES`]).
    /// - **Unknown codes are transient**: a code this table does not know is most likely a
    ///   condition of the server added in a newer release (new limits and cluster states
    ///   come with new codes), and a retry costs nothing while a refused batch needs an
    ///   operator on every sensor. A schema mismatch is still caught, because every code a
    ///   missing or changed table or column gives the aggregator's INSERT and queries, on
    ///   18.16 and on current releases, is listed as [`Category::Schema`]; the metric
    ///   `teiten_aggregator_clickhouse_errors_total` labels unknown codes with their number
    ///   so that an alert can name one that repeats.
    /// - An answer without a code (a proxy's `502 Bad Gateway`) is transient, except 401 and
    ///   403, permanent [`Category::Access`].
    /// - The client's own schema check ([`clickhouse::error::Error::SchemaMismatch`]) is
    ///   permanent; every other client error (an unreadable answer) is transient.
    pub fn of(e: &clickhouse::error::Error) -> Cause {
        use clickhouse::error::Error as E;
        let client = |class, category, name: &str| Cause {
            class,
            category,
            code: None,
            name: name.into(),
            description: String::new(),
        };
        match e {
            E::Network(_) => client(Class::Transient, Category::Network, "NETWORK"),
            E::TimedOut => client(Class::Transient, Category::Timeout, "TIMED_OUT"),
            E::SchemaMismatch(m) => Cause {
                description: clean(m),
                ..client(Class::Permanent, Category::Schema, "SCHEMA_MISMATCH")
            },
            E::BadResponse(text) => Cause::of_response(text),
            _ => client(Class::Transient, Category::Client, "CLIENT"),
        }
    }

    /// Classifies the text of an `Error::BadResponse`.
    fn of_response(text: &str) -> Cause {
        let t = text.trim();
        let code = server_code(t);
        let Some(code) = code else {
            let http = t
                .split_once(' ')
                .map_or(t, |(s, _)| s)
                .parse::<u16>()
                .ok()
                .filter(|s| (100..600).contains(s));
            let (class, category) = match http {
                Some(401 | 403) => (Class::Permanent, Category::Access),
                _ => (Class::Transient, Category::Server),
            };
            return Cause {
                class,
                category,
                code: None,
                name: http.map(|s| format!("HTTP_{s}")).unwrap_or_default(),
                description: clean(t),
            };
        };
        let (name, category) = match CODES.binary_search_by_key(&code, |c| c.0) {
            Ok(i) => (CODES[i].1.to_owned(), CODES[i].2),
            Err(_) => (name_in_message(t).unwrap_or_default(), Category::Server),
        };
        Cause {
            class: category.class(),
            category,
            code: Some(code),
            name,
            description: description(t),
        }
    }

    /// The cause as told to the sensor: category, then the server's description for schema,
    /// data and query errors, else the code's name (an access or network error's text may
    /// name users and hosts, which the sensor has no business knowing).
    pub fn public(&self) -> String {
        let what = match self.category {
            Category::Schema | Category::Data | Category::Query if !self.description.is_empty() => {
                self.description.clone()
            }
            _ if !self.name.is_empty() => self.name.clone(),
            _ => match self.code {
                Some(c) => format!("code {c}"),
                None => "unknown".into(),
            },
        };
        format!("{}: {what}", self.category.name())
    }
}

/// The code of a server exception: the number after the first `Code:` (26.x `Code: 60.`,
/// 18.16 `Code: 60,`), or the whole text when it is only a number (the code header).
fn server_code(t: &str) -> Option<u32> {
    if !t.is_empty() && t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let at = t.find("Code:")?;
    let rest = t[at + 5..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    // A code is followed by `.` or `,` (or ends the text); anything else is not a code.
    match rest[end..].chars().next() {
        None | Some('.') | Some(',') => rest[..end].parse().ok(),
        _ => None,
    }
}

/// The name 26.x puts in parentheses after the description: `... (UNKNOWN_TABLE) (version
/// 26.9.1.1 (official build))` or, without the version, at the end.
fn name_in_message(t: &str) -> Option<String> {
    let head = t.split(" (version ").next().unwrap_or(t).trim_end();
    let inner = head.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let name = &inner[open + 1..];
    (!name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    .then(|| name.to_owned())
}

/// The description of a server exception without code, exception class, name, version or
/// stack trace.
fn description(t: &str) -> String {
    // After the exception class: `DB::Exception: `, `DB::NetException: `...
    let d = match t.find("Exception: ") {
        Some(i) => &t[i + "Exception: ".len()..],
        None => t,
    };
    // 18.16 ends with `, e.what() = DB::Exception`; 26.x with ` (NAME) (version ...)`.
    let mut d = d.split(", e.what() = ").next().unwrap_or(d);
    d = d.split(" (version ").next().unwrap_or(d);
    d = d.split("Stack trace").next().unwrap_or(d);
    if let Some(name) = name_in_message(d) {
        d = d.trim_end().strip_suffix(&format!("({name})")).unwrap_or(d);
    }
    clean(d)
}

/// One line, network addresses and URLs replaced, trailing punctuation off, at most
/// [`DESCRIPTION_CHARS`] characters.
fn clean(d: &str) -> String {
    let words: Vec<String> = d
        .split_whitespace()
        .map(|w| {
            let core = w
                .trim_start_matches(|c: char| "(<'\"`".contains(c))
                .trim_end_matches(|c: char| ")>,;'\"`.:".contains(c));
            let address = [core, core.trim_matches(['[', ']'])].iter().any(|c| {
                c.contains("://")
                    || c.parse::<std::net::SocketAddr>().is_ok()
                    || c.parse::<std::net::IpAddr>().is_ok()
                    || host_port(c)
            });
            if address && !core.is_empty() {
                w.replace(core, "<address>")
            } else {
                w.to_owned()
            }
        })
        .collect();
    let one = words.join(" ");
    let one = one.trim_end_matches(['.', ',', ':', ' ']);
    match one.char_indices().nth(DESCRIPTION_CHARS) {
        Some((i, _)) => format!("{}...", &one[..i]),
        None => one.to_owned(),
    }
}

/// `host:port` with a DNS-like host (`clickhouse-1.example:9000`).
fn host_port(w: &str) -> bool {
    let Some((host, port)) = w.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && host.contains('.')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error as E;

    fn bad(t: &str) -> Cause {
        Cause::of(&E::BadResponse(t.into()))
    }

    #[test]
    fn the_code_table_is_sorted_and_unique() {
        assert!(CODES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// Texts as clickhouse-server 18.16.1 answers them over HTTP (the `Error::BadResponse`
    /// the client makes of the body).
    #[test]
    fn clickhouse_18_16_messages() {
        let c = bad("Code: 16, e.displayText() = DB::Exception: No such column withheld in table scan_events, e.what() = DB::Exception");
        assert_eq!(c.code, Some(16));
        assert_eq!(c.name, "NO_SUCH_COLUMN_IN_TABLE");
        assert_eq!((c.class, c.category), (Class::Permanent, Category::Schema));
        assert_eq!(
            c.description,
            "No such column withheld in table scan_events"
        );
        assert_eq!(
            c.public(),
            "schema: No such column withheld in table scan_events"
        );

        let c = bad("Code: 60, e.displayText() = DB::Exception: Table default.nosuch doesn't exist., e.what() = DB::Exception");
        assert_eq!((c.code, c.category), (Some(60), Category::Schema));
        assert_eq!(c.description, "Table default.nosuch doesn't exist");

        let c = bad("Code: 81, e.displayText() = DB::Exception: Database nodb doesn't exist, e.what() = DB::Exception");
        assert_eq!(
            (c.name.as_str(), c.class),
            ("UNKNOWN_DATABASE", Class::Permanent)
        );

        let c = bad("Code: 33, e.displayText() = DB::Exception: Cannot read all data. Bytes read: 2. Bytes expected: 5.: (at row 1)\n, e.what() = DB::Exception");
        assert_eq!((c.code, c.category), (Some(33), Category::Data));
        assert_eq!(
            c.description,
            "Cannot read all data. Bytes read: 2. Bytes expected: 5.: (at row 1)"
        );

        let c = bad("Code: 164, e.displayText() = DB::Exception: Cannot insert into table in readonly mode, e.what() = DB::Exception");
        assert_eq!((c.category, c.class), (Category::Access, Class::Permanent));
        // Access errors tell the sensor the code's name, not the server's text.
        assert_eq!(c.public(), "access: READONLY");

        let c = bad("Code: 193, e.displayText() = DB::Exception: Wrong password for user default, e.what() = DB::Exception");
        assert_eq!(
            (c.name.as_str(), c.class),
            ("WRONG_PASSWORD", Class::Permanent)
        );
        assert!(!c.public().contains("default"), "{}", c.public());

        let c = bad("Code: 159, e.displayText() = DB::Exception: Timeout exceeded: elapsed 3.000000098 seconds, maximum: 1, e.what() = DB::Exception");
        assert_eq!((c.category, c.class), (Category::Timeout, Class::Transient));

        let c = bad("Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded: would use 2.00 MiB (attempt to allocate chunk of 4096 bytes), maximum: 976.56 KiB, e.what() = DB::Exception");
        assert_eq!(
            (c.category, c.class),
            (Category::Overload, Class::Transient)
        );

        let c = bad("Code: 47, e.displayText() = DB::Exception: Unknown identifier: nosuchcol, e.what() = DB::Exception");
        assert_eq!(
            (c.name.as_str(), c.class),
            ("UNKNOWN_IDENTIFIER", Class::Permanent)
        );

        // 395 is not in the table: transient, with its number.
        let c = bad("Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception");
        assert_eq!((c.code, c.class), (Some(395), Class::Transient));
        assert_eq!((c.category, c.name.as_str()), (Category::Server, ""));
        assert_eq!(c.public(), "server: code 395");
    }

    /// Texts of current releases: chdb-core 26.9 (the server's text without the version)
    /// and servers 23.8 and 24.10 (from the `clickhouse` crate's own tests), which end with
    /// the name and the version.
    #[test]
    fn clickhouse_26_messages() {
        let c = bad("Code: 16. DB::Exception: No such column withheld in table t.scan_events (e47a3098-b947-4a56-810d-c9a4804d4d9a). (NO_SUCH_COLUMN_IN_TABLE) (version 26.9.1.1 (official build))");
        assert_eq!((c.code, c.class), (Some(16), Class::Permanent));
        assert_eq!(
            c.description,
            "No such column withheld in table t.scan_events (e47a3098-b947-4a56-810d-c9a4804d4d9a)"
        );

        let c = bad("Code: 60. DB::Exception: Table d.nosuch does not exist. (UNKNOWN_TABLE)");
        assert_eq!(
            (c.name.as_str(), c.category),
            ("UNKNOWN_TABLE", Category::Schema)
        );
        assert_eq!(c.description, "Table d.nosuch does not exist");

        let c = bad("Code: 6. DB::Exception: Cannot parse string 'x' as UInt8: syntax error at begin of string. Note: there are toUInt8OrZero and toUInt8OrNull functions, which returns zero/NULL instead of throwing exception: In scope SELECT toUInt8('x'). (CANNOT_PARSE_TEXT)");
        assert_eq!((c.category, c.class), (Category::Data, Class::Permanent));
        assert!(c.description.chars().count() <= DESCRIPTION_CHARS + 3);

        let c = bad("Code: 43. DB::Exception: Illegal types UInt8 and String of arguments of function plus: In scope SELECT 1 + 'a'. (ILLEGAL_TYPE_OF_ARGUMENT)");
        assert_eq!((c.code, c.class), (Some(43), Class::Permanent));

        let c = bad("Code: 159. DB::Exception: Timeout exceeded: elapsed 1.2 seconds, maximum: 0.1. (TIMEOUT_EXCEEDED) (version 24.10.1.2812 (official build))");
        assert_eq!((c.code, c.class), (Some(159), Class::Transient));
        assert_eq!(
            c.description,
            "Timeout exceeded: elapsed 1.2 seconds, maximum: 0.1"
        );

        let c = bad("Code: 210. DB::NetException: I/O error: Broken pipe, while writing to socket (127.0.0.1:9000 -> 127.0.0.1:54646). (NETWORK_ERROR) (version 23.8.8.20 (official build))");
        assert_eq!((c.category, c.class), (Category::Network, Class::Transient));
        assert!(!c.description.contains("127.0.0.1"), "{}", c.description);
        assert_eq!(c.public(), "network: NETWORK_ERROR");

        let c = bad("Code: 516. DB::Exception: teiten: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 26.9.1.1 (official build))");
        assert_eq!(
            (c.name.as_str(), c.class),
            ("AUTHENTICATION_FAILED", Class::Permanent)
        );
        assert_eq!(c.public(), "access: AUTHENTICATION_FAILED");

        let c = bad("Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts. (TOO_MANY_PARTS) (version 26.9.1.1 (official build))");
        assert_eq!(
            (c.category, c.class),
            (Category::Overload, Class::Transient)
        );

        // A code the table does not know keeps the server's name.
        let c = bad("Code: 1234. DB::Exception: Something new. (BRAND_NEW_LIMIT) (version 27.1.1.1 (official build))");
        assert_eq!((c.code, c.class), (Some(1234), Class::Transient));
        assert_eq!(c.name, "BRAND_NEW_LIMIT");
    }

    #[test]
    fn answers_without_a_message() {
        // The code header alone (26.x, empty or unreadable body).
        let c = bad("60");
        assert_eq!((c.code, c.class), (Some(60), Class::Permanent));
        // A proxy's status line.
        let c = bad("502 Bad Gateway");
        assert_eq!((c.code, c.class), (None, Class::Transient));
        assert_eq!(c.name, "HTTP_502");
        let c = bad("403 Forbidden");
        assert_eq!((c.category, c.class), (Category::Access, Class::Permanent));
        let c = bad("Could not read columns header");
        assert_eq!((c.code, c.class), (None, Class::Transient));
        // Text that merely contains "Code:" without a number is not a code.
        let c = bad("Code: abc. DB::Exception: x");
        assert_eq!(c.code, None);
        let c = bad("Code: 99999999999999. DB::Exception: x");
        assert_eq!(c.code, None);
        assert_eq!(bad("").class, Class::Transient);
    }

    #[test]
    fn client_errors() {
        assert_eq!(Cause::of(&E::TimedOut).class, Class::Transient);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let c = Cause::of(&E::Network(Box::new(io)));
        assert_eq!((c.category, c.class), (Category::Network, Class::Transient));
        let c = Cause::of(&E::SchemaMismatch("column withheld is missing".into()));
        assert_eq!((c.category, c.class), (Category::Schema, Class::Permanent));
        assert_eq!(Cause::of(&E::NotEnoughData).class, Class::Transient);
        let e = Error::ch("inserting events")(E::BadResponse(
            "Code: 60. DB::Exception: Table t.scan_events does not exist. (UNKNOWN_TABLE)".into(),
        ));
        assert_eq!(e.class(), Class::Permanent);
        assert_eq!(e.cause().unwrap().code, Some(60));
        let e = Error::ConfigInvalid {
            field: "x",
            reason: "y".into(),
        };
        assert_eq!((e.class(), e.cause()), (Class::Permanent, None));
    }

    #[test]
    fn descriptions_lose_addresses_and_urls() {
        let d = clean("Connection refused (clickhouse-2.example.org:9000), see http://user:pw@host:8123/?x and [::1]:9000 or 10.1.2.3");
        assert_eq!(
            d,
            "Connection refused (<address>), see <address> and <address> or <address>"
        );
        let long = "x".repeat(500);
        assert_eq!(clean(&long).chars().count(), DESCRIPTION_CHARS + 3);
        // Cutting respects character boundaries.
        let wide = "é".repeat(300);
        assert!(clean(&wide).ends_with("..."));
    }
}
