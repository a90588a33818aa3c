//! `teiten-aggregator`: parse the command line, load and validate the config, start tracing,
//! run the library.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use teiten_aggregator as agg;
use teiten_exchange as exchange;
use teiten_service::{progress, LogFormat};

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
    /// How to write log lines on standard error (filter them with `TEITEN_LOG`, e.g.
    /// `TEITEN_LOG=warn`; default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Deprecated: use `--log-format json`.
    #[arg(long, global = true, hide = true)]
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
    /// Seal the port digests of the days that are over and have none or an out-of-date one
    /// (`serve` does it every `retention.digest_interval_secs`), and exit.
    SealDigests,
    /// Recompute the rollups of whole days from the raw events (after ClickHouse crashed
    /// during an INSERT; the aggregator logs the days concerned).
    RebuildRollups {
        /// Days as YYYYMMDD (UTC).
        #[arg(required = true)]
        days: Vec<u32>,
    },
    /// Write partners' daily IODEF files for a day (deterministic; a re-export after late
    /// events replaces the file and its manifest says what changed) and deliver changed files.
    Export {
        /// The day, YYYY-MM-DD, in each partner's time zone.
        #[arg(long)]
        date: String,
        /// Only this partner (default: every partner).
        #[arg(long)]
        partner: Option<String>,
        /// Deliver even when the file did not change.
        #[arg(long)]
        redeliver: bool,
    },
    /// The delivery status of every partner-day (generated, delivered, failed and why).
    ExchangeStatus {
        /// Days back from today (UTC).
        #[arg(long, default_value_t = 14)]
        days: u32,
    },
    /// Import partner IODEF files (v1 or v2); invalid ones are quarantined with the reasons.
    Import {
        /// The partner the files come from.
        #[arg(long)]
        partner: String,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Internal detection reports.
    Report {
        #[command(subcommand)]
        action: ReportCmd,
    },
    /// What the sensors, partner files and internal reports say about an address (JSON).
    Correlate {
        /// An IPv4 or IPv6 address.
        address: std::net::IpAddr,
    },
    /// Print the SHA-256 of a token read from standard input (for `upload_token_sha256` and
    /// `token_sha256` in the config).
    TokenHash,
    /// Print SQL.
    Schema {
        /// Print every DDL statement and every query (with sample values), one per line,
        /// for the compatibility test.
        #[arg(long)]
        print_sql: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCmd {
    /// File a report from a JSON file (`-` for standard input); prints its id and triage.
    Add {
        /// The JSON file.
        file: PathBuf,
        /// The reporter name stored with it.
        #[arg(long, default_value = "cli")]
        reporter: String,
    },
    /// List the newest reports.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print the monthly trends of the reports (by colour, source, category, department and
    /// the questionnaires' answers), as text or CSV.
    Trends {
        /// The first month, YYYY-MM (default: eleven months before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// The last month, YYYY-MM (default: this month).
        #[arg(long)]
        to: Option<String>,
        /// CSV (month, breakdown, value, label, reports) instead of text.
        #[arg(long)]
        csv: bool,
    },
    /// Mail the summary of a month to `[exchange.cases] summary_to` now (the aggregator mails
    /// each month's once by itself) and record it.
    Summary {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
    },
    /// Print one report as an IODEF v2 document (our affected host included).
    Export {
        /// The report id.
        id: String,
        /// The reporter that filed it (ids are per reporter).
        #[arg(long, default_value = "cli")]
        reporter: String,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.log_json {
        teiten_service::init_logging(LogFormat::Json);
        tracing::warn!("--log-json is deprecated and will be removed: use --log-format json");
    } else {
        teiten_service::init_logging(cli.log_format);
    }
    if let Some(Command::TokenHash) = &cli.command {
        let mut token = String::new();
        std::io::stdin()
            .read_line(&mut token)
            .context("reading the token from standard input")?;
        let token = token.trim();
        if token.is_empty() {
            bail!("no token on standard input");
        }
        println!("{}", agg::token_hash(token));
        return Ok(());
    }
    if let Some(Command::Schema { print_sql }) = &cli.command {
        if !print_sql {
            bail!("nothing to do: use `schema --print-sql`");
        }
        print_sql_statements()?;
        return Ok(());
    }
    let config = agg::Config::load(&cli.config)?;
    let settings = config
        .validate()
        .with_context(|| format!("checking {}", cli.config.display()))?;
    if cli.check_config {
        tracing::info!(config = %cli.config.display(), "config is valid");
        println!("{}: ok", cli.config.display());
        return Ok(());
    }
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
        Command::SealDigests => {
            let bar = progress::items(0, "sealing");
            let sealed = agg::seal_digests(&settings, &bar).await;
            bar.finish_and_clear();
            let sealed = sealed?;
            println!("port digests of {} day(s) sealed", sealed.len());
            for d in sealed {
                println!("  {d}");
            }
        }
        Command::RebuildRollups { days } => {
            if let Some(day) = days
                .iter()
                .find(|d| !(19_700_101..=21_051_231).contains(*d))
            {
                bail!("{day} is not a day as YYYYMMDD");
            }
            let bar = progress::items(days.len() as u64, "rebuilding");
            for day in days {
                bar.set_prefix(day.to_string());
                agg::rebuild_rollups_all(ch, day).await?;
                bar.suspend(|| println!("rollups of {day} rebuilt"));
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
        Command::Sensor { action } => {
            agg::migrate_all(ch).await?;
            let client = teiten_store::client(ch);
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
        Command::Export {
            date,
            partner,
            redeliver,
        } => {
            let date = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                .with_context(|| format!("--date {date}: expected YYYY-MM-DD"))?;
            let x = &settings.exchange;
            let partners: Vec<_> = match &partner {
                Some(id) => vec![x
                    .partner(id)
                    .with_context(|| format!("--partner {id}: not a configured partner"))?],
                None => x.partners.iter().collect(),
            };
            if partners.is_empty() {
                bail!("no partners in [exchange]: nothing to export");
            }
            agg::migrate_all(ch).await?;
            let client = teiten_store::client(ch);
            let bar = progress::items(partners.len() as u64, "exporting");
            for p in partners {
                bar.set_prefix(p.id.clone());
                let (files, delivered) =
                    exchange::export_and_deliver(&client, &db, x, p, date, redeliver).await?;
                bar.inc(1);
                let mut delivery = match delivered {
                    Some(s) => format!("{s:?}").to_lowercase(),
                    None => "not re-delivered".to_owned(),
                };
                for e in &files {
                    let m = &e.manifest;
                    let what = match (&m.change, e.changed) {
                        (_, false) => "unchanged".to_owned(),
                        (None, true) => "new".to_owned(),
                        (Some(c), true) => format!(
                            "revision {} ({:+} events, {:+} sources since revision {})",
                            m.revision,
                            c.events_delta,
                            c.sources_delta,
                            m.revision - 1
                        ),
                    };
                    bar.suspend(|| {
                        println!(
                            "{}: {} {} events in {} {} records from {} sources, {} reports -> {} [{what}; {delivery}]",
                            p.id,
                            m.format,
                            m.events,
                            m.record_count,
                            m.records,
                            m.sources,
                            m.reports,
                            e.path.display()
                        )
                    });
                    delivery = "kept in the outbox".to_owned();
                }
            }
            bar.finish_and_clear();
        }
        Command::ExchangeStatus { days } => {
            let client = teiten_store::client(ch);
            let today = teiten_store::time::date_of(teiten_store::time::now());
            let from = today - chrono::Days::new(u64::from(days));
            let rows = exchange::deliver::status(
                &client,
                &db,
                teiten_store::time::date_number(from),
                teiten_store::time::date_number(today),
            )
            .await?;
            println!(
                "{:<16} {:<10} {:>3} {:>10} {:>8} {:<10} {:>8}  ERROR",
                "PARTNER", "DAY", "REV", "EVENTS", "SOURCES", "STATUS", "ATTEMPTS"
            );
            for r in rows {
                println!(
                    "{:<16} {:<10} {:>3} {:>10} {:>8} {:<10} {:>8}  {}",
                    r.partner,
                    r.day,
                    r.revision,
                    r.events,
                    r.sources,
                    r.status,
                    r.attempts,
                    r.error
                );
            }
        }
        Command::Import { partner, files } => {
            let x = &settings.exchange;
            agg::migrate_all(ch).await?;
            let client = teiten_store::client(ch);
            let mut quarantined = 0;
            let bar = progress::items(files.len() as u64, "importing");
            for f in files {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                bar.set_prefix(name.clone());
                let r = exchange::import::import(&client, &db, x, &partner, &name, f.clone())
                    .await
                    .with_context(|| format!("importing {}", f.display()))?;
                bar.inc(1);
                let line = match &r {
                    exchange::import::Imported::Stored {
                        incidents,
                        indicators,
                        warnings,
                        ..
                    } => {
                        let mut line = format!(
                            "{}: stored ({incidents} incidents, {indicators} indicators)",
                            f.display()
                        );
                        for w in warnings {
                            line.push_str("\n  ");
                            line.push_str(w);
                        }
                        line
                    }
                    exchange::import::Imported::Duplicate { previous, .. } => {
                        format!("{}: imported before ({previous})", f.display())
                    }
                    exchange::import::Imported::Quarantined { reason, .. } => {
                        quarantined += 1;
                        format!("{}: quarantined:\n{reason}", f.display())
                    }
                };
                bar.suspend(|| println!("{line}"));
            }
            bar.finish_and_clear();
            if quarantined > 0 {
                bail!("{quarantined} file(s) quarantined");
            }
        }
        Command::Report { action } => {
            agg::migrate_all(ch).await?;
            let client = teiten_store::client(ch);
            match action {
                ReportCmd::Add { file, reporter } => {
                    let text = if file.as_os_str() == "-" {
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                            .context("reading standard input")?;
                        s
                    } else {
                        std::fs::read_to_string(&file)
                            .with_context(|| format!("reading {}", file.display()))?
                    };
                    let input: exchange::reports::ReportInput = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a report", file.display()))?;
                    let geo = teiten_store::GeoDb::load(&settings.config.geo)?;
                    let f = exchange::reports::file(
                        &client,
                        &db,
                        &settings.exchange,
                        &geo,
                        &reporter,
                        input,
                    )
                    .await?;
                    println!("{}", serde_json::to_string(&f)?);
                }
                ReportCmd::List { limit } => {
                    for r in exchange::reports::recent(&client, &db, limit).await? {
                        println!("{}", serde_json::to_string(&r)?);
                    }
                }
                ReportCmd::Trends { from, to, csv } => {
                    let period = exchange::cases::trends::Period::parse(
                        from.as_deref(),
                        to.as_deref(),
                        teiten_store::time::now(),
                    )
                    .map_err(|e| anyhow::anyhow!("--{e}"))?;
                    let t = exchange::cases::trends::monthly(
                        &client,
                        &db,
                        &settings.exchange.questionnaires,
                        period,
                    )
                    .await?;
                    print!("{}", if csv { t.csv() } else { t.summary() });
                }
                ReportCmd::Summary { month } => {
                    let month = exchange::cases::trends::Month::parse(&month)
                        .map_err(|e| anyhow::anyhow!("--month: {e}"))?;
                    let Some(cases) = settings.exchange.cases.as_ref() else {
                        bail!("no [exchange.cases] in the config");
                    };
                    if cases.summary_to.is_empty() {
                        bail!("no one to mail: [exchange.cases] summary_to is empty");
                    }
                    let to = exchange::cases::worker::send_summary(
                        &client,
                        &db,
                        &settings.exchange,
                        cases,
                        month,
                        teiten_store::time::now(),
                    )
                    .await?;
                    println!("The summary of {month} was mailed to {to}");
                }
                ReportCmd::Export { id, reporter } => {
                    let r = exchange::reports::by_id(&client, &db, &reporter, &id)
                        .await?
                        .with_context(|| format!("no report {id} of reporter {reporter}"))?;
                    let doc = r.document(&settings.exchange.config.csirt)?;
                    std::io::Write::write_all(&mut std::io::stdout(), &doc)?;
                }
            }
        }
        Command::Correlate { address } => {
            let client = teiten_store::client(ch);
            // The network and its flags, from the configured geo database if it loads.
            let geo = match teiten_store::GeoDb::load(&settings.config.geo) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(error = %e, "No network details: the geo database does not load");
                    None
                }
            };
            let c = exchange::correlate::correlate(&client, &db, address, geo.as_ref()).await?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        Command::TokenHash => unreachable!("handled before the config is loaded"),
        Command::Schema { .. } => unreachable!("handled before the config is loaded"),
    }
    Ok(())
}

/// `schema --print-sql`: every statement built by teiten-store, with sample values.
fn print_sql_statements() -> anyhow::Result<()> {
    use teiten_store::queries;
    use teiten_store::schema::Layout;
    let db = "teiten";
    println!("-- ddl");
    for sql in teiten_store::schema::create_sql(db, &Layout::Single) {
        println!("{sql};");
    }
    let old = teiten_store::schema::LEGACY_SAMPLE_DB;
    println!("-- legacy schema (the release before the withheld column), database {old}");
    for s in teiten_store::schema::legacy_steps(old, &Layout::Single) {
        println!("{};", s.sql);
    }
    println!("-- upgrade of {old}, the statements migrate applies to it");
    for sql in teiten_store::schema::upgrade_sql(old, &Layout::Single) {
        println!("{sql};");
    }
    println!(
        "-- compare (how migrate reads the server's tables and columns to compare them with the \
         definition; `?` is the database)"
    );
    println!("{};", queries::schema_tables(db).sql());
    println!("{};", queries::schema_columns(db).sql());
    println!("-- sample rows, in the column order the aggregator inserts");
    for (table, cols, values) in queries::sample_inserts() {
        println!(
            "INSERT INTO {db}.{table} ({cols}) VALUES {};",
            values.replace("{db}", db)
        );
    }
    println!("-- queries");
    let statements = queries::samples(db)
        .into_iter()
        .map(|(_, st)| st)
        .chain(queries::maintenance_samples(db));
    for st in statements {
        println!("{};", st.to_sql_literal()?);
    }
    Ok(())
}
