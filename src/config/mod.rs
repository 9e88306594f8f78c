//! The one config loader: `sipsteer.yaml` plus every zone map, parsed and validated into a
//! typed [`Config`]. `serve`, `check` and reload all call [`load`]; it reports every error it
//! finds, each with file, line, column and YAML path.

mod cache;
mod checks;
mod defences;
mod denial;
mod dnssec;
mod error;
mod keydir;
pub mod keyroll;
pub(crate) mod load_source;
pub(crate) mod main_file;
mod names;
pub(crate) mod operator;
mod pem;
mod probe;
mod raw;
pub(crate) mod records;
mod regions;
pub(crate) mod service_names;
mod services;
mod source;
pub(crate) mod tls;
mod traffic;
mod values;
mod warmup;
pub(crate) mod watch;
mod zone;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData};
use ipnet::IpNet;

/// Most failover tiers a service may have (and a steering plan holds).
pub const MAX_TIERS: usize = 8;

/// Largest TTL accepted (RFC 2181: 2^31 - 1; a week is plenty for anything here).
const MAX_TTL: u32 = 604_800;

/// Most records at one owner name, all types together (the SOA and NS set at the apex
/// included): far above any real use, and it bounds what one name costs to load. A server's
/// addresses count too: its host name answers with them all.
const MAX_RECORDS_PER_NAME: usize = 1024;

pub use cache::ZoneCache;
pub use defences::{CookieSecret, DefenceSettings, RrlSettings};
pub use denial::DenialSettings;
pub use error::{ConfigError, ConfigErrors};
pub(crate) use source::content_hash;
pub use traffic::MAX_BIAS_KM;
pub use values::parse_duration;
pub use warmup::{Warmup, WarmupAnswer};

/// Everything sipsteer serves, validated. Immutable once loaded.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `sipsteer.yaml` this came from.
    pub file: PathBuf,
    pub listen_dns: Vec<SocketAddr>,
    /// `None` when the admin API is switched off (`listen.admin: off`).
    pub listen_admin: Option<SocketAddr>,
    pub dns: DnsSettings,
    /// `dnssec.denial`: the bounds of the signed proofs that a name does not exist.
    pub denial: denial::DenialSettings,
    pub zones_dir: PathBuf,
    pub geoip: Option<PathBuf>,
    /// How steered names answer until the GeoIP database is compiled (`geoip.warmup`).
    pub warmup: Warmup,
    pub admin: AdminSettings,
    pub capacity: CapacitySettings,
    pub health_concurrency: usize,
    /// Optional sampled query log.
    pub query_log: Option<QueryLogSettings>,
    /// Every region, shared (from `sipsteer.yaml`) and per zone; names are unique.
    pub regions: Vec<RegionConfig>,
    /// Shared with the previous load where the zone map and the regions did not change.
    pub zones: Vec<std::sync::Arc<ZoneConfig>>,
    /// Every file read, with a hash of its contents.
    pub files: Vec<SourceFile>,
    /// The operator state file, if configured (watched like the zone maps).
    pub operator_state_file: Option<PathBuf>,
    /// Forced states from the operator state file.
    pub operator: operator::OperatorStates,
    /// Load pulled from Prometheus, if configured.
    pub load_source: Option<load_source::LoadSource>,
    /// DNS over TLS listen addresses (empty: off).
    pub listen_tls: Vec<SocketAddr>,
    /// DNS over HTTPS listen addresses (empty: off).
    pub listen_https: Vec<SocketAddr>,
    /// The certificate and key of the encrypted listeners, read and checked.
    pub tls: Option<tls::TlsFiles>,
    /// How often the files are checked for changes a file watcher may have missed.
    pub rescan: Duration,
    /// `state_dir:` (generated DNSSEC keys live in its `dnssec/`).
    pub state_dir: Option<PathBuf>,
    /// The key that signs the data of each signed zone (its CSK or active ZSK), by origin.
    pub keys:
        std::collections::BTreeMap<hickory_proto::rr::Name, std::sync::Arc<crate::dnssec::ZoneKey>>,
    /// Every key of each signed zone with its state when the config was loaded, by origin.
    pub key_sets:
        std::collections::BTreeMap<hickory_proto::rr::Name, std::sync::Arc<crate::dnssec::KeySet>>,
    /// The keys directory of each zone that has one (`dnssec.keys`), by origin.
    pub key_dirs: std::collections::BTreeMap<hickory_proto::rr::Name, PathBuf>,
}

/// RRSIGs of steered answers held when `dns.signature_cache` is not set: thousands of
/// variants of many services.
pub const DEFAULT_SIGNATURE_CACHE: usize = 65_536;

/// Transport limits of the DNS listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    /// Largest UDP response we send, whatever the client advertises (≤ 1232 by default).
    pub udp_payload: u16,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    /// TCP connections at once from one IPv4 address or IPv6 /64.
    pub tcp_max_connections_per_source: usize,
    /// UDP sockets (SO_REUSEPORT) per listen address; 0 = one per CPU.
    pub udp_workers: usize,
    /// Most RRSIGs of steered answers held (`dns.signature_cache`).
    pub signature_cache: usize,
    /// Cookies, rate limiting, NSID.
    pub defences: DefenceSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryLogSettings {
    pub path: PathBuf,
    /// Fraction of queries logged, in (0, 1].
    pub sample: f64,
}

/// The admin API as a client finds it in `sipsteer.yaml` (see [`admin_access`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccess {
    /// `None` when `listen.admin` is `off`.
    pub addr: Option<std::net::SocketAddr>,
    /// `admin.token`, or the environment variable it names (`SIPSTEER_ADMIN_TOKEN`).
    pub token: Option<String>,
}

/// The admin API's address and token from the main config file alone, for `sipsteer ctl`.
pub fn admin_access(path: &Path) -> Result<AdminAccess, ConfigErrors> {
    main_file::admin_access(path)
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdminSettings {
    pub token: Option<String>,
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySettings {
    /// Fraction of capacity at which a server counts as full.
    pub overflow_at: f64,
    /// How long a load report stays valid.
    pub report_ttl: Duration,
    /// Proportional shedding (`capacity.shed`): between these load fractions a server is
    /// left out of the answers of a growing share of clients; at the second it is full
    /// (`overflow_at` is then the same value).
    pub shed: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    /// SipHash-2-4 of the contents with a fixed key (`source::content_hash`): the same on
    /// every build.
    pub hash: u64,
}

/// One authoritative zone.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    pub origin: Name,
    pub file: PathBuf,
    pub ttl: u32,
    pub soa: SOA,
    pub ns: Vec<Name>,
    pub records: Vec<RecordConfig>,
    pub services: Vec<ServiceConfig>,
    /// Signing settings, when the zone is signed (`dnssec:`).
    pub dnssec: Option<DnssecSettings>,
}

/// A zone's `dnssec:` as validated; the key itself is read into [`Config::keys`].
#[derive(Debug, Clone, PartialEq)]
pub struct DnssecSettings {
    pub algorithm: crate::dnssec::Algorithm,
    /// `dnssec.key` as written (relative to `sipsteer.yaml`'s directory), or `None` for a key
    /// generated in `state_dir`.
    pub key: Option<String>,
    /// Where `dnssec:` (line, column) and `dnssec.key` are written, for errors about the key.
    pub at: (u64, u64),
    pub key_at: Option<(u64, u64)>,
    /// `dnssec.keys` as written: a keys directory of KSKs and ZSKs, and where it is written.
    pub keys: Option<(String, (u64, u64))>,
    /// The rollover settings of a keys directory.
    pub roll: RollSettings,
}

/// `dnssec.zsk_lifetime`, `propagation`, `ds_ttl`, `ds_wait` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollSettings {
    pub zsk_lifetime: Option<u64>,
    /// Where `zsk_lifetime` is written (line, column).
    pub zsk_lifetime_at: (u64, u64),
    pub propagation: u64,
    pub ds_ttl: u64,
    pub ds_wait: Option<u64>,
}

/// One static record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordConfig {
    pub name: Name,
    pub ttl: u32,
    pub rdata: RData,
}

/// The continent codes a region may list and a GeoIP database may give.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// A region: a place with SIP servers.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionConfig {
    pub name: String,
    /// (lat, lon) in degrees.
    pub location: (f64, f64),
    pub countries: Vec<[u8; 2]>,
    pub continents: Vec<[u8; 2]>,
    pub min_up: usize,
    pub servers: Vec<ServerConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118).
    Ws,
    /// SIP over secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// The name in the config, `/v1/servers` and the `transport` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// The transport's bit in a set of transports (a `u8` mask).
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The transports in mask `m`, in [`Transport::ALL`] order.
    pub fn in_mask(m: u8) -> impl Iterator<Item = Transport> {
        Transport::ALL.into_iter().filter(move |t| m & t.bit() != 0)
    }
}

/// The check of one transport of a server whose health is per transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportCheck {
    pub transport: Transport,
    /// `None` (`none`): that transport is not probed, up unless an operator says otherwise.
    pub check: Option<Check>,
}

/// One SIP server in a region.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub tls_port: u16,
    /// The WebSocket ports (`ws`, `wss`) and the path of the WebSocket upgrade.
    pub ws_port: u16,
    pub wss_port: u16,
    pub ws_path: Arc<str>,
    pub transports: Vec<Transport>,
    pub weight: u16,
    pub backup: bool,
    pub capacity: Option<Capacity>,
    pub probe: ProbeConfig,
    /// One check per transport (`check: per-transport` or `checks:`), in the order of
    /// `transports`; empty when `probe.check` decides the whole server.
    pub checks: Vec<TransportCheck>,
    /// What a `sip-options-tls` check verifies (set exactly when one of its checks is that).
    pub tls_check: Option<Arc<TlsCheck>>,
}

impl ServerConfig {
    /// The server's checks, each with the transports (a mask) whose health it decides: one
    /// for all of them, or one per transport.
    pub fn lanes(&self) -> Vec<(u8, Option<Check>)> {
        if self.checks.is_empty() {
            let all = self.transports.iter().fold(0, |m, t| m | t.bit());
            vec![(all, self.probe.check)]
        } else {
            self.checks
                .iter()
                .map(|c| (c.transport.bit(), c.check))
                .collect()
        }
    }

    /// The port a transport is served on.
    pub fn port_for(&self, t: Transport) -> u16 {
        match t {
            Transport::Udp | Transport::Tcp => self.port,
            Transport::Tls => self.tls_port,
            Transport::Ws => self.ws_port,
            Transport::Wss => self.wss_port,
        }
    }

    /// Whether any of its checks probes it.
    pub fn probed(&self) -> bool {
        self.lanes().iter().any(|(_, c)| c.is_some())
    }
}

/// What a `sip-options-tls` check verifies: the name the server's certificate must carry
/// (also sent as SNI) and the trust anchors (`None`: the built-in Mozilla roots).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsCheck {
    pub name: String,
    pub ca: Option<Arc<[rustls::pki_types::CertificateDer<'static>]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub calls: Option<u32>,
    pub cps: Option<u32>,
}

/// How a server is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// SIP OPTIONS over UDP.
    SipUdp,
    /// SIP OPTIONS over TCP.
    SipTcp,
    /// A TCP connect.
    Tcp,
    /// SIP OPTIONS over TLS, the certificate verified.
    SipTls,
    /// SIP OPTIONS in a WebSocket text frame (RFC 7118).
    SipWs,
    /// SIP OPTIONS over secure WebSocket, the certificate verified as for `SipTls`.
    SipWss,
}

impl Check {
    /// The name in the config and `/v1/servers`.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::SipUdp => "sip-options-udp",
            Check::SipTcp => "sip-options-tcp",
            Check::Tcp => "tcp",
            Check::SipTls => "sip-options-tls",
            Check::SipWs => "sip-options-ws",
            Check::SipWss => "sip-options-wss",
        }
    }
}

/// How one server is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// `None` (`check: none`): never probed, up unless an operator says otherwise.
    pub check: Option<Check>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Re-probe spacing (start to start) and timeout while a server is suspect; used capped
    /// at `interval` and `timeout`.
    pub suspect_interval: Duration,
    pub suspect_timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Final SIP codes that count as healthy, as inclusive ranges; empty = the default policy.
    pub healthy_codes: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Answer the nearest region anyway (fail open).
    Nearest,
    /// Answer with no records.
    Nodata,
}

/// A steered name in a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// As written, relative to the zone: `sip`.
    pub label: String,
    /// `sip.example.com.`
    pub name: Name,
    /// Indexes into [`Config::regions`], in the order written.
    pub regions: Vec<usize>,
    pub transports: Vec<Transport>,
    pub ttl: u32,
    /// TTL of answers while a server of their tiers is in trouble (suspect, recently
    /// flipped, full); `None` = always `ttl`.
    pub trouble_ttl: Option<u32>,
    pub failover: usize,
    /// Bound on A/AAAA answers.
    pub answers: usize,
    pub fallback: Vec<usize>,
    pub networks: Vec<(IpNet, usize)>,
    pub all_down: AllDown,
    /// `bias:`: kilometres taken off the distance to a region (index into
    /// [`Config::regions`]) when ranking by distance; negative adds.
    pub bias: Vec<(usize, f64)>,
    /// `split:`: shares of a region's clients sent to another region.
    pub splits: Vec<SplitConfig>,
}

/// A share of one region's clients sent to another region (`split:`).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// The region whose clients are split (index into [`Config::regions`]).
    pub from: usize,
    /// Where the share goes.
    pub to: usize,
    /// Percent of `from`'s clients, more than 0 and at most 100.
    pub percent: f64,
}

/// The message for a region that is not one of a service's regions.
fn not_in(r: &str) -> String {
    format!("region `{r}` is not one of this service's regions")
}

/// Reads and validates the config at `path` and every zone map it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    main_file::load(path, &mut ZoneCache::default())
}

/// Like [`load`], reusing from `cache` the zone maps that did not change since it was last
/// used (and updating it).
pub fn load_cached(path: &Path, cache: &mut ZoneCache) -> Result<Config, ConfigErrors> {
    main_file::load(path, cache)
}
