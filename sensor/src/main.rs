use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ipnet::IpNet;
use teiten_sensor::{Config, Input, Local, Monitored};
use teiten_service::LogFormat;

/// teiten's sensor: records packets arriving on dark prefixes and ships them to the aggregator.
///
/// Normal use: `teiten-sensor --config /etc/teiten-sensor/sensor.toml` captures on the configured
/// interface and ships through the spool. Troubleshooting: `teiten-sensor --read FILE --stdout`
/// (or `--interface IF --stdout`) prints one JSON object per event instead of shipping.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// The TOML configuration (see teiten-sensor.example.toml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration, print a summary and exit (status 0 when valid).
    #[arg(long, requires = "config")]
    check_config: bool,
    /// Read packets from a pcap or pcapng file instead of capturing live.
    #[arg(short, long, value_name = "FILE", conflicts_with = "interface")]
    read: Option<PathBuf>,
    /// Capture on this interface (overrides the config's `interface`).
    #[arg(short, long, value_name = "IF")]
    interface: Option<String>,
    /// Capture nothing: deliver what is in the spool, then exit.
    #[arg(long, conflicts_with_all = ["read", "interface", "stdout"])]
    drain_only: bool,
    /// Print events as JSON lines on standard output instead of shipping them.
    #[arg(long)]
    stdout: bool,
    /// Count events instead of printing or shipping them; print the totals as JSON.
    #[arg(long, conflicts_with = "stdout")]
    count: bool,
    /// With --stdout or --count: keep only traffic to these prefixes (default: the config's, or everything).
    #[arg(long = "prefix", value_name = "CIDR")]
    prefixes: Vec<IpNet>,
    /// How long to keep delivering spooled batches after SIGTERM, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    drain_secs: u64,
    /// How to write log lines on standard error (filter them with `TEITEN_LOG`, e.g.
    /// `TEITEN_LOG=warn`; default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    teiten_service::init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("teiten-sensor: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = cli.config.as_deref().map(Config::load).transpose()?;
    if cli.check_config {
        let cfg = cfg.expect("clap requires --config with --check-config");
        println!(
            "config OK: sensor {} on {}, {} monitored prefix(es), {} aggregator URL(s), spool {} ({} MiB)",
            cfg.sensor_id,
            cfg.interface.as_deref().unwrap_or("(no interface)"),
            cfg.monitored.len(),
            cfg.urls.len(),
            cfg.spool_dir.display(),
            cfg.spool_max_bytes >> 20
        );
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while the first is being handled exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("cannot install signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handler")?;
    }
    if cli.drain_only {
        let Some(cfg) = cfg else {
            anyhow::bail!("--drain-only needs --config");
        };
        let drain = Duration::from_secs(cli.drain_secs);
        teiten_sensor::run_ship(&cfg, None, &stop, drain)?;
        return Ok(());
    }
    let input = match (
        &cli.read,
        &cli.interface,
        cfg.as_ref().and_then(|c| c.interface.clone()),
    ) {
        (Some(file), _, _) => Input::File(file.clone()),
        (None, Some(i), _) => Input::Live(i.clone()),
        (None, None, Some(i)) => Input::Live(i),
        (None, None, None) => anyhow::bail!(
            "nothing to capture: give --interface IF, --read FILE, or `interface` in the config"
        ),
    };
    if cli.stdout || cli.count {
        let monitored = if !cli.prefixes.is_empty() {
            Some(Monitored::new(&cli.prefixes))
        } else {
            cfg.as_ref().map(|c| c.monitored.clone())
        };
        let capture = cfg.as_ref().map(|c| c.capture.clone()).unwrap_or_default();
        let sensor = cfg.as_ref().map_or("-", |c| c.sensor_id.as_str());
        let mode = if cli.count {
            Local::Count
        } else {
            Local::Print
        };
        let summary = teiten_sensor::run_local(&input, sensor, monitored, &capture, &stop, mode)?;
        if cli.count {
            println!("{}", serde_json::to_string(&summary)?);
        }
        return Ok(());
    }
    let Some(cfg) = cfg else {
        anyhow::bail!("shipping needs --config (or use --stdout to print events)");
    };
    teiten_sensor::run_ship(
        &cfg,
        Some(&input),
        &stop,
        Duration::from_secs(cli.drain_secs),
    )?;
    Ok(())
}
