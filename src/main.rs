//! The `sipsteer` binary: parse the command line, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use sipsteer::cli::{Cli, Command, DnssecCommand, GeoipCommand, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Command::Check { .. } | Command::Ctl(_) | Command::Dnssec { .. }
    );
    sipsteer::app::startup::init_logging(cli.log_format, quiet);
    let json = cli.log_format == LogFormat::Json;
    match cli.command {
        Command::Check { config } => {
            match sipsteer::reload::load(&config, &sipsteer::reload::GeoSlot::default()) {
                Ok(loaded) => {
                    let cfg = &loaded.config;
                    let warnings = sipsteer::lint::warnings(cfg);
                    for w in &warnings {
                        eprintln!("warning: {w}");
                    }
                    println!(
                        "{}: ok ({} zones, {} regions, {} files, {} warning(s))",
                        config.display(),
                        cfg.zones.len(),
                        cfg.regions.len(),
                        cfg.files.len(),
                        warnings.len()
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
        Command::Serve { config } => run(json, async move {
            let signals = sipsteer::app::Signals::install()?;
            sipsteer::app::startup::starting(&config);
            let cfg = sipsteer::config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            sipsteer::app::startup::config_loaded(&cfg);
            let running = sipsteer::app::start_early(&config, cfg).await?;
            running.load_geoip();
            sipsteer::app::startup::ready_when_geoip_is_in(&running);
            running.run_until(signals).await
        }),
        Command::Explain {
            config,
            client,
            ecs,
            live,
            name,
            rtype,
        } => run(json, async move {
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
        Command::Ctl(args) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = rt.block_on(sipsteer::ctl::run(args));
            ExitCode::from(code as u8)
        }
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
        Command::Dnssec { command } => printed(dnssec(command)),
    }
}

/// Prints a command's text (exit 0) or its error (exit 1).
fn printed(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sipsteer dnssec keygen` and `sipsteer dnssec ds`: what they print, or why they failed.
fn dnssec(command: DnssecCommand) -> Result<String, String> {
    use sipsteer::dnssec::{Algorithm, ZoneKey};
    match command {
        DnssecCommand::Keygen { algorithm, out } => {
            let alg = Algorithm::parse(&algorithm).ok_or_else(|| {
                format!(
                    "algorithm `{algorithm}` is not supported (use 13, ECDSA P-256, or 15, Ed25519)"
                )
            })?;
            let pem = ZoneKey::generate_pem(alg).map_err(|e| e.to_string())?;
            let key = ZoneKey::from_pkcs8(alg, pem.as_bytes()).map_err(|e| e.to_string())?;
            sipsteer::dnssec::write_private(&out, pem.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            Ok(format!(
                "{}: algorithm {} ({}), key tag {}\n",
                out.display(),
                alg.number(),
                alg.mnemonic(),
                key.key_tag()
            ))
        }
        DnssecCommand::Ds { config, zones } => {
            let cfg = sipsteer::config::load(&config).map_err(|e| e.to_string())?;
            let mut text = String::new();
            let same = |asked: &str, z: &sipsteer::config::ZoneConfig| {
                let origin = z.origin.to_ascii();
                asked
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(origin.trim_end_matches('.'))
            };
            for name in &zones {
                if !cfg
                    .zones
                    .iter()
                    .any(|z| same(name, z) && cfg.keys.contains_key(&z.origin))
                {
                    return Err(format!(
                        "zone `{name}` is not signed here (no zone map with `dnssec:` serves it)"
                    ));
                }
            }
            for z in &cfg.zones {
                let Some(set) = cfg.key_sets.get(&z.origin) else {
                    continue;
                };
                let wanted = zones.is_empty() || zones.iter().any(|n| same(n, z));
                if wanted {
                    for k in &set.cds {
                        text.push_str(&k.ds_text(&z.origin, z.ttl));
                        text.push('\n');
                    }
                }
            }
            if text.is_empty() {
                return Err(format!(
                    "no zone of {} is signed (no zone map has `dnssec:`)",
                    config.display()
                ));
            }
            Ok(text)
        }
        DnssecCommand::Roll {
            role,
            config,
            zones,
        } => {
            let cfg = sipsteer::config::load(&config).map_err(|e| e.to_string())?;
            let role = match role.as_str() {
                "ksk" => sipsteer::dnssec::Role::Ksk,
                _ => sipsteer::dnssec::Role::Zsk,
            };
            sipsteer::config::keyroll::roll(&cfg, role, &zones)
        }
        DnssecCommand::DsSeen { config, zones } => {
            let cfg = sipsteer::config::load(&config).map_err(|e| e.to_string())?;
            sipsteer::config::keyroll::ds_seen(&cfg, &zones)
        }
        DnssecCommand::Status { config, zones } => {
            let cfg = sipsteer::config::load(&config).map_err(|e| e.to_string())?;
            sipsteer::config::keyroll::status(&cfg, &zones)
        }
    }
}

/// Runs `f` on a runtime; an error ends the process with exit 1, logged as JSON when the
/// logs are JSON.
fn run(json: bool, f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
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
        Err(e) if json => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long shutdown waits for blocking work left on the runtime before exiting anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
