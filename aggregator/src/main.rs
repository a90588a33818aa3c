//! `teiten-aggregator`: parse the command line, load and validate the config, start tracing,
//! run the library.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use teiten_aggregator as agg;

/// Receives sensor batches and stores them in ClickHouse.
#[derive(Debug, Parser)]
#[command(name = "teiten-aggregator", version)]
struct Cli {
    /// The TOML config file.
    #[arg(long, short, default_value = "/etc/teiten/aggregator.toml")]
    config: PathBuf,
    /// Check the config and exit (0 when valid).
    #[arg(long)]
    check_config: bool,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the ingest API (the default).
    Serve,
    /// Apply the schema and exit.
    Migrate,
    /// Manage sensors.
    Sensor {
        #[command(subcommand)]
        action: SensorCmd,
    },
    /// Drop expired partitions once and exit.
    Retention,
    /// Recompute the rollups of whole days from the raw events (after ClickHouse crashed
    /// during an INSERT; the aggregator logs the days concerned).
    RebuildRollups {
        /// Days as YYYYMMDD (UTC).
        #[arg(required = true)]
        days: Vec<u32>,
    },
    /// Print SQL.
    Schema {
        /// Print every DDL statement and every query (with sample values), one per line,
        /// for the compatibility test.
        #[arg(long)]
        print_sql: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SensorCmd {
    /// Register a sensor and print its token (shown only this once).
    Add {
        /// The sensor id (as in the sensor's config).
        id: String,
    },
    /// Revoke a sensor's token.
    Revoke {
        /// The sensor id.
        id: String,
    },
    /// List sensors with what they reported lately.
    List,
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Schema { print_sql }) = &cli.command {
        if !print_sql {
            bail!("nothing to do: use `schema --print-sql`");
        }
        print_sql_statements();
        return Ok(());
    }
    let config = agg::Config::load(&cli.config)?;
    let settings = config
        .validate()
        .with_context(|| format!("checking {}", cli.config.display()))?;
    if cli.check_config {
        println!("{}: ok", cli.config.display());
        return Ok(());
    }
    init_tracing(cli.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(cli.command.unwrap_or(Command::Serve), settings))
}

async fn run(cmd: Command, settings: agg::Settings) -> anyhow::Result<()> {
    let ch = &settings.config.clickhouse;
    let db = ch.database.clone();
    match cmd {
        Command::Serve => agg::serve(settings).await?,
        Command::Migrate => {
            let applied = agg::migrate_all(ch).await?;
            println!("{} step(s) applied", applied.len());
            for a in applied {
                println!("  {a}");
            }
        }
        Command::Retention => {
            let dropped = agg::retention_all(&settings).await?;
            println!("{} partition(s) dropped", dropped.len());
            for d in dropped {
                println!("  {d}");
            }
        }
        Command::RebuildRollups { days } => {
            for day in days {
                if !(19_700_101..=21_051_231).contains(&day) {
                    bail!("{day} is not a day as YYYYMMDD");
                }
                agg::rebuild_rollups_all(ch, day).await?;
                println!("rollups of {day} rebuilt");
            }
        }
        Command::Sensor { action } => {
            agg::migrate_all(ch).await?;
            let client = agg::client(ch);
            match action {
                SensorCmd::Add { id } => {
                    let token = agg::add_sensor(&client, &db, &id).await?;
                    println!("sensor {id} added; its token (shown only now):\n{token}");
                }
                SensorCmd::Revoke { id } => {
                    agg::revoke_sensor(&client, &db, &id).await?;
                    println!("sensor {id} revoked");
                }
                SensorCmd::List => {
                    let sensors = agg::list_sensors(&client, &db).await?;
                    let status = agg::sensor_status(&client, &db).await?;
                    println!(
                        "{:<24} {:<8} {:>20} {:>10} {:>12} {:>14} {:>12}",
                        "SENSOR",
                        "STATE",
                        "LAST_SEEN",
                        "EVENTS/S",
                        "KERNEL_DROPS",
                        "SPOOL_BYTES",
                        "GEO_UNKNOWN"
                    );
                    for s in sensors {
                        let st = status.iter().find(|r| r.sensor_id == s.sensor_id);
                        let state = if s.revoked != 0 { "revoked" } else { "active" };
                        match st {
                            Some(r) => println!(
                                "{:<24} {:<8} {:>20} {:>10.1} {:>12} {:>14} {:>12}",
                                s.sensor_id,
                                state,
                                r.last_seen,
                                r.events_5m as f64 / 300.0,
                                r.kernel_drops,
                                r.spool_bytes,
                                r.unknown_country
                            ),
                            None => println!(
                                "{:<24} {:<8} {:>20} {:>10} {:>12} {:>14} {:>12}",
                                s.sensor_id, state, "never", "-", "-", "-", "-"
                            ),
                        }
                    }
                }
            }
        }
        Command::Schema { .. } => unreachable!("handled before the config is loaded"),
    }
    Ok(())
}

fn print_sql_statements() {
    use agg::queries;
    use agg::schema::{steps, Layout};
    let db = "teiten";
    println!("-- ddl");
    for s in steps(db, &Layout::Single) {
        println!("{};", s.sql);
    }
    println!("-- sample rows, in the column order the aggregator inserts");
    for (table, cols, values) in queries::SAMPLE_INSERTS {
        println!(
            "INSERT INTO {db}.{table} ({cols}) VALUES {};",
            values.replace("{db}", db)
        );
    }
    println!("-- queries");
    for (q, vals) in queries::ALL {
        println!("{};", queries::with_samples(q, vals, db).replace('\n', " "));
    }
    println!(
        "{};",
        queries::with_samples(
            &queries::DROP_PARTITION.replace("{table}", "scan_rollup_1h"),
            &["20251121"],
            db
        )
    );
    println!(
        "{};",
        queries::with_samples(
            &queries::REBUILD_ROLLUP_DAY
                .replace("{table}", "scan_rollup_1h")
                .replace("{bucket}", "toStartOfHour")
                .replace("{source}", "scan_events"),
            &["20251121"],
            db
        )
    );
    println!(
        "{};",
        queries::with_samples(
            &queries::DROP_PARTITION.replace("{table}", "scan_events"),
            &["20251121"],
            db
        )
    );
}
