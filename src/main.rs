//! The `sipsteer` binary: parse the command line, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use sipsteer::cli::{Cli, Command, GeoipCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check { config } => match sipsteer::config::load(&config) {
            Ok(cfg) => {
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
                eprintln!("{} error(s)", errors.0.len());
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => run(async move {
            let running = sipsteer::app::start(&config).await?;
            running.run_until_signal().await
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
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default `info,hickory_server=error` (hickory-server
/// logs every DNS over TLS query at info and every failed handshake at warn).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
