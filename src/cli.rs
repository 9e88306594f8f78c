//! The command line: `serve`, `check`, `explain`, `ctl`, `geoip build`, `dnssec keygen` and
//! `dnssec ds`, and the log format.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// `sipsteer --version`: the crate version and the git commit a release was built from
/// (`0.1.0 (commit 1a2b3c4d5e6f)`), or `(debug build)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SIPSTEER_BUILD"), ")");

const AFTER_HELP: &str = "\
Environment:
  SIPSTEER_CONFIG       the config file, instead of --config
  SIPSTEER_ADMIN_TOKEN  bearer token for the admin API's changing endpoints (drain, load,
                        reload); overrides admin.token and keeps it out of the config file
  SIPSTEER_TOKEN        the token `sipsteer ctl` sends, instead of --token
  RUST_LOG              log filter, e.g. `info` (default), `debug`, `sipsteer::health=debug`
  SIPSTEER_LOG_FORMAT   `text` (default) or `json`, instead of --log-format

Documentation: README.md and docs/ (configuration.md, operations.md, dns.md) in the source
tree, or /usr/share/doc/sipsteer/ when installed from the Debian package.";

#[derive(Debug, Parser)]
#[command(
    name = "sipsteer",
    version = VERSION,
    about = "Authoritative geo-DNS that steers SIP traffic to the nearest healthy region",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Log format on stderr: text (colours only on a terminal) or json (one object a line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SIPSTEER_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve DNS (and the admin API) from the config.
    Serve {
        /// The server config (sipsteer.yaml); the paths in it are relative to its directory.
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
    },
    /// Load the config exactly as `serve` does and report every error; exit 1 on errors.
    /// Warnings (answers that cannot work for some clients) are printed but exit 0.
    Check {
        /// The server config (sipsteer.yaml); the paths in it are relative to its directory.
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
    },
    /// Show the answer a client would get for NAME, and why.
    Explain {
        /// The server config (sipsteer.yaml); the paths in it are relative to its directory.
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
        /// The client's address (or its resolver's, when --ecs is given).
        #[arg(long)]
        client: IpAddr,
        /// An EDNS Client Subnet, e.g. 81.2.69.0/24.
        #[arg(long)]
        ecs: Option<ipnet::IpNet>,
        /// Ask a running instance's admin API for live server states (e.g. http://127.0.0.1:8053).
        #[arg(long)]
        live: Option<String>,
        /// The name asked, e.g. sip.example.com.
        name: String,
        /// The record type (default A).
        #[arg(default_value = "A")]
        rtype: String,
    },
    /// Drive a running instance through its admin API (exit codes: 0 ok, 1 the request
    /// failed, 2 bad input, 3 admin API unreachable, 4 token refused).
    Ctl(CtlArgs),
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
    /// DNSSEC keys: write a new one, print the DS records for the parent zone, roll keys.
    Dnssec {
        #[command(subcommand)]
        command: DnssecCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DnssecCommand {
    /// Write a new private key (PKCS#8 PEM, mode 0600) for a zone's `dnssec.key`; an existing
    /// file is never replaced. Prints the key's algorithm and key tag.
    Keygen {
        /// 13 (ECDSA P-256, the default) or 15 (Ed25519).
        #[arg(long, default_value = "13")]
        algorithm: String,
        /// The key file to write.
        out: PathBuf,
    },
    /// Load the config as `serve` does and print the DS record of each signed zone (or of
    /// the zones named), to give to the parent zone.
    Ds {
        /// The server config (sipsteer.yaml); the paths in it are relative to its directory.
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
        /// Zones to print (default: every signed zone).
        zones: Vec<String>,
    },
    /// Start a key rollover now in each zone with a keys directory (`dnssec.keys`): write
    /// the next ZSK or KSK, published now and active once the DNSKEY TTL and the propagation
    /// delay have passed. Every instance acts on it at its next reload or rescan.
    Roll {
        /// `zsk` or `ksk`.
        #[arg(value_parser = ["zsk", "ksk"])]
        role: String,
        /// The server config (sipsteer.yaml); the paths in it are relative to its directory.
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
        /// Zones to roll (default: every zone with a keys directory).
        zones: Vec<String>,
    },
    /// The parent's DS now points at the new KSK: the KSKs it replaces retire now.
    DsSeen {
        /// The server config (sipsteer.yaml); the paths in it are relative to its directory.
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
        /// Zones whose parent's DS changed (default: every zone with a keys directory).
        zones: Vec<String>,
    },
    /// Print every key of each signed zone: role, number, key tag, state and times.
    Status {
        /// The server config (sipsteer.yaml); the paths in it are relative to its directory.
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
        /// Zones to print (default: every signed zone).
        zones: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Build a MaxMind-format database from sipsteer's CSV format (see geoip/README.md).
    Build {
        /// The input CSV: network,country,continent,latitude,longitude,city (with a header).
        csv: PathBuf,
        /// The .mmdb file to write (replaced if it exists).
        out: PathBuf,
    },
}

/// `sipsteer ctl`: where the admin API is, how to authenticate, and what to do.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The server config, read (main file only) for `listen.admin` and `admin.token`.
    #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
    pub config: PathBuf,
    /// The admin API, e.g. 127.0.0.1:8053 or http://127.0.0.1:8053 (the config is then not read).
    #[arg(long)]
    pub addr: Option<String>,
    /// Bearer token for changing commands (default: the config's admin.token).
    #[arg(long, env = "SIPSTEER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the admin API's JSON reply as it is.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// A `sipsteer ctl` command.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Config generation, last reload, GeoIP, zones, servers by state.
    Status,
    /// Every server: state, forced state, last probe, RTT, load, time since its last change.
    Servers,
    /// Take a server out of the answers (needs the token).
    Drain(Forcing),
    /// Clear the state forced through the API: probes decide again (needs the token).
    Undrain {
        /// REGION/SERVER, e.g. uk/lon1.
        server: String,
    },
    /// Force a server down (needs the token).
    Down(Forcing),
    /// Force a server up whatever its probes say (needs the token).
    Up(Forcing),
    /// Report a server's load: active calls and calls per second (needs the token).
    Load {
        /// REGION/SERVER, e.g. uk/lon1.
        server: String,
        /// Active calls.
        calls: u32,
        /// Calls per second.
        cps: Option<u32>,
    },
    /// Reload the config now (needs the token).
    Reload,
    /// The answer a client gets from the running instance now, and why.
    Explain {
        /// The client's address (or its resolver's, when --ecs is given).
        #[arg(long)]
        client: IpAddr,
        /// An EDNS Client Subnet, e.g. 81.2.69.0/24.
        #[arg(long)]
        ecs: Option<ipnet::IpNet>,
        /// The name asked, e.g. sip.example.com.
        name: String,
        /// The record type (default A).
        #[arg(default_value = "A")]
        rtype: String,
    },
    /// The event log: flips, forced states, reloads, load pull failures.
    Events {
        /// Only events numbered after this one.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Keep printing new events as they come (every second) until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
}

/// The server and options of `drain`, `down` and `up`.
#[derive(Debug, clap::Args)]
pub struct Forcing {
    /// REGION/SERVER, e.g. uk/lon1.
    pub server: String,
    /// When the state ends by itself: an RFC 3339 time (2026-12-01T06:00:00Z) or a duration
    /// from now (90m, 2h).
    #[arg(long)]
    pub until: Option<String>,
    /// Why, kept with the state and shown in `servers` and the event log.
    #[arg(long)]
    pub note: Option<String>,
}
