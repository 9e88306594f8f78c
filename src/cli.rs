//! The command line: `serve`, `check`, `explain`, `geoip build`, `dnssec keygen` and
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
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
    /// DNSSEC keys: write a new one, print the DS records for the parent zone.
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
