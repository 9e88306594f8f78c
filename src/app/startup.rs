//! What an operator sees of a starting sipsteer: the log setup (text with colours only on a
//! terminal, or JSON lines), the startup lines of `serve` (version, config, counts, GeoIP,
//! listeners, one `ready` line).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use crate::app::Running;
use crate::cli::{LogFormat, VERSION};
use crate::config::Config;

/// Logs to stderr; `RUST_LOG` overrides the default: `info`, or only warnings for commands
/// that print their own result (`quiet`, e.g. `check`).
pub fn init_logging(format: LogFormat, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => fmt.json().with_ansi(false).init(),
    }
}

/// The first line: what is starting, from which config.
pub fn starting(config: &Path) {
    tracing::info!(config = %config.display(), "sipsteer {VERSION} starting");
}

/// What the config holds, before the (possibly slow) GeoIP load.
pub fn config_loaded(cfg: &Config) {
    let servers: usize = cfg.regions.iter().map(|r| r.servers.len()).sum();
    let probed = cfg
        .regions
        .iter()
        .flat_map(|r| &r.servers)
        .filter(|s| s.probed())
        .count();
    tracing::info!(
        zones = cfg.zones.len(),
        regions = cfg.regions.len(),
        servers,
        probed,
        files = cfg.files.len(),
        "config loaded"
    );
    for w in crate::lint::warnings(cfg) {
        tracing::warn!("{w}");
    }
}

/// The one line that says the server is ready: logged once the GeoIP database is compiled
/// (at once when there is none, or when it failed and the reason was logged). DNS answers
/// before that: static names as configured, steered names in their fallback order.
pub fn ready_when_geoip_is_in(r: &Running) {
    let dns: Vec<String> = r.dns.iter().map(ToString::to_string).collect();
    let admin = r.admin.map_or_else(|| "off".to_string(), |a| a.to_string());
    let (reloader, hub) = (r.reloader.clone(), r.hub.clone());
    tokio::spawn(async move {
        while reloader.geoip_state() == Some(crate::reload::GeoState::Loading) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let snap = reloader.shared().load();
        let geo = snap.steering.geo.as_ref().map_or_else(
            || "none".to_string(),
            |g| {
                format!(
                    "{} built {}, {} networks",
                    g.info.database_type,
                    g.info.built(),
                    g.info.networks
                )
            },
        );
        tracing::info!(
            dns = %dns.join(","),
            admin = %admin,
            geoip = %geo,
            probe_targets = hub.probed_targets(),
            generation = snap.generation,
            "ready"
        );
    });
}
