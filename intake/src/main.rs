use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use teiten_service::LogFormat;

/// teiten's intake: follows Suricata's EVE JSON and ClamAV's detections and files each with the aggregator.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The TOML configuration (see teiten-intake.example.toml).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "/etc/teiten/intake.toml",
        global = true
    )]
    config: PathBuf,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Follows the configured files until SIGTERM or SIGINT.
    Run,
    /// Checks the configuration and says what it follows.
    CheckConfig,
    /// clamd's `VirusEvent`: spools the detection clamd names in CLAM_VIRUSEVENT_FILENAME and
    /// CLAM_VIRUSEVENT_VIRUSNAME for `run` to file (reads no configuration, sends nothing).
    ClamavEvent {
        /// The spool directory (`[clamav]` `spool` of the intake's configuration).
        #[arg(
            long,
            value_name = "DIR",
            default_value = "/var/spool/teiten-intake/clamav"
        )]
        spool: PathBuf,
        /// The host named in the report. Default: this machine's host name.
        #[arg(long)]
        host: Option<String>,
    },
    /// Prints the reports an EVE file's alerts become (JSON lines; nothing is filed).
    EveReports {
        /// The EVE JSON file (`-` for standard input).
        file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    teiten_service::init_logging(cli.log_format);
    match run(cli.command, &cli.config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("teiten-intake: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command, config: &std::path::Path) -> anyhow::Result<()> {
    match command {
        Command::Run => {
            let c = teiten_intake::Config::load(config)?;
            teiten_intake::run(&c)?;
        }
        Command::CheckConfig => {
            let c = teiten_intake::Config::load(config)?;
            for e in &c.eve {
                println!(
                    "{} (position in {})",
                    e.path.display(),
                    c.state_of(e).display()
                );
            }
            if let Some(cc) = &c.clamav {
                println!("ClamAV events spooled in {}", cc.spool.display());
            }
        }
        Command::ClamavEvent { spool, host } => {
            use teiten_intake::clamav;
            let host = host.unwrap_or_else(clamav::this_host);
            let now = chrono::Utc::now()
                .timestamp_nanos_opt()
                .context("the clock is outside 1677-2262")?;
            let event = clamav::event_from(|k| std::env::var(k).ok(), &host, now)?;
            let path = clamav::spool_event(&spool, &event)?;
            tracing::info!(file = %event.file, virus = %event.virus, spooled = %path.display(), "ClamAV detection spooled");
        }
        Command::EveReports { file } => {
            let input: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file)
                        .with_context(|| format!("opening {}", file.display()))?,
                ))
            };
            let m = teiten_intake::eve::Mapping::default();
            for (n, line) in input.split(b'\n').enumerate() {
                let line = line.with_context(|| format!("reading {}", file.display()))?;
                match m.report(&line) {
                    Ok(r) => println!("{}", serde_json::to_string(&r)?),
                    Err(teiten_intake::eve::Skip::Malformed(why)) => {
                        eprintln!("{}:{}: {why}", file.display(), n + 1)
                    }
                    Err(_) => {}
                }
            }
        }
    }
    Ok(())
}
