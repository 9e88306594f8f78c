//! The command line: `serve`, `check`, `explain`, `geoip build`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sipsteer",
    version,
    about = "Authoritative geo-DNS that steers SIP traffic to the nearest healthy region"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve DNS (and the admin API) from the config.
    Serve {
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
    },
    /// Load the config exactly as `serve` does and report every error; exit 1 on errors.
    Check {
        #[arg(long, short, default_value = "sipsteer.yaml", env = "SIPSTEER_CONFIG")]
        config: PathBuf,
    },
    /// Show the answer a client would get for NAME, and why.
    Explain {
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
}

#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Build a MaxMind-format database from sipsteer's CSV format.
    Build { csv: PathBuf, out: PathBuf },
}
