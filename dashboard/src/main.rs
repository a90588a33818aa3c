//! `teiten-dashboard`: parse the command line, load and check the config, start tracing, run.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use teiten_dashboard::Config;
use teiten_service::LogFormat;

#[derive(Parser)]
#[command(name = "teiten-dashboard", version, about = "teiten's dashboard")]
struct Cli {
    /// How to write log lines on standard error (filter them with `TEITEN_LOG`, e.g.
    /// `TEITEN_LOG=warn`; default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the dashboard.
    Serve {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Check the config and exit.
        #[arg(long)]
        check_config: bool,
        /// Deprecated: use `--log-format json`.
        #[arg(long, hide = true)]
        json_log: bool,
    },
    /// Read a password from standard input (first line) and print its argon2 hash for
    /// `[analyst.users]`.
    HashPassword,
    /// Print every SQL statement with sample values, one per line under a `-- queries`
    /// header (the input format of `scripts/chdb_compat.py`, after the aggregator's
    /// `schema --print-sql`).
    PrintSql {
        /// The database name.
        #[arg(long, default_value = "teiten")]
        database: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Serve { json_log: true, .. } = cli.command {
        teiten_service::init_logging(LogFormat::Json);
        tracing::warn!("--json-log is deprecated and will be removed: use --log-format json");
    } else {
        teiten_service::init_logging(cli.log_format);
    }
    match cli.command {
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("empty password on standard input");
            }
            println!("{}", teiten_dashboard::auth::hash_password(password)?);
            Ok(())
        }
        Command::PrintSql { database } => {
            println!("-- queries (teiten-dashboard)");
            for (what, st) in teiten_store::reads::samples(&database) {
                let sql = st
                    .to_sql_literal()
                    .with_context(|| format!("the {what} statement"))?;
                println!("{sql};");
            }
            Ok(())
        }
        Command::Serve {
            config,
            check_config,
            json_log: _,
        } => {
            let settings = Config::load(&config)
                .and_then(Config::validate)
                .with_context(|| format!("config {}", config.display()))?;
            if check_config {
                if let Some(r) = &settings.config.reports {
                    teiten_dashboard::reports::Aggregator::load(r)
                        .with_context(|| format!("config {}", config.display()))?;
                }
                tracing::info!(config = %config.display(), "config is valid");
                println!("config {} is valid", config.display());
                return Ok(());
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(teiten_dashboard::serve(settings))
                .context("dashboard failed")
        }
    }
}
