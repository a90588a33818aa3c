//! What teiten's binaries share: [`logging`] (one log convention: `--log-format text|json`,
//! filtered by `TEITEN_LOG`) and [`progress`] (bars on long CLI jobs, drawn only on a
//! terminal, that log lines do not tear).

pub mod logging;
pub mod progress;

pub use logging::{init as init_logging, LogFormat, LOG_ENV};
