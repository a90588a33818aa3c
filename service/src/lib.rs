//! What teiten's binaries share: [`logging`] (one log convention: `--log-format text|json`,
//! filtered by `TEITEN_LOG`), [`progress`] (bars on long CLI jobs, drawn only on a terminal,
//! that log lines do not tear), [`token`] (the stored form of bearer tokens) and, with the
//! feature `http-server`, [`http_server`]: the hardened HTTP accept loop the aggregator and the
//! dashboard both run, and its `[server]` config.

#[cfg(feature = "http-server")]
pub mod http_server;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod token;

pub use logging::{init as init_logging, LogFormat, LOG_ENV};
pub use token::token_hash;
