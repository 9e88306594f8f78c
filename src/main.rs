//! The `sipsteer` binary: parse the command line, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use sipsteer::cli::{Cli, Command, GeoipCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check { config } => {
            match sipsteer::app::load(&config, &sipsteer::app::GeoSlot::default()) {
                Ok(loaded) => {
                    let cfg = &loaded.config;
                    println!(
                        "{}: ok ({} zones, {} regions, {} files)",
                        config.display(),
                        cfg.zones.len(),
                        cfg.regions.len(),
                        cfg.files.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("{} error(s)", errors.count());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { config } => run(async move {
            let signals = sipsteer::app::Signals::install()?;
            let running = sipsteer::app::start_early(&config).await?;
            running.load_geoip();
            running.run_until(signals).await
        }),
        Command::Explain {
            config,
            client,
            ecs,
            live,
            name,
            rtype,
        } => run(async move {
            let text = sipsteer::app::explain_offline(
                &config,
                client,
                ecs,
                live.as_deref(),
                &name,
                &rtype,
            )
            .await?;
            print!("{text}");
            Ok(())
        }),
        Command::Geoip {
            command: GeoipCommand::Build { csv, out },
        } => match sipsteer::geo::build_file(&csv, &out) {
            Ok(s) => {
                println!(
                    "{}: {} networks, {} bytes, {}",
                    out.display(),
                    s.networks,
                    s.bytes,
                    s.database_type
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(f);
    // Blocking tasks still running (a state file write on a hung filesystem) get this long.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long shutdown waits for blocking work left on the runtime before exiting anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
