//! The YAML shapes of `sipsteer.yaml` and the zone maps, as written by people.
//!
//! Every struct rejects unknown keys, and values that later checks talk about carry their
//! location (`Spanned`), so every error can point at file:line:col.

use std::collections::HashMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{Scalar, Values};

pub(super) type S<T> = Spanned<T>;

/// A YAML mapping's entries in the order they are written (the map itself forgets it), so
/// errors are reported and lists are built top to bottom.
pub(super) fn in_written_order<K, V>(map: &HashMap<S<K>, V>) -> Vec<(&S<K>, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by_key(|(k, _)| (k.referenced.line(), k.referenced.column()));
    entries
}

/// `sipsteer.yaml`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Main {
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub zones: Option<S<String>>,
    #[serde(default)]
    pub geoip: Option<Geoip>,
    #[serde(default)]
    pub admin: Option<Admin>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub capacity: Option<CapacityPolicy>,
    #[serde(default)]
    pub dns: Option<Dns>,
    #[serde(default)]
    pub query_log: Option<QueryLog>,
    #[serde(default)]
    pub regions: HashMap<S<String>, Region>,
    /// The operator state file (forced states shared by every instance).
    #[serde(default)]
    pub operator_state: Option<S<String>>,
    /// Load pulled from Prometheus.
    #[serde(default)]
    pub load: Option<super::load_source::RawLoad>,
    /// Certificate and key for `listen.tls` and `listen.https`.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// How reloads are triggered.
    #[serde(default)]
    pub reload: Option<Reload>,
    /// Where sipsteer keeps what it generates (DNSSEC keys of zones that name no key file).
    #[serde(default)]
    pub state_dir: Option<S<String>>,
    /// Settings of signed zones that are not per zone (`dnssec.denial`).
    #[serde(default)]
    pub dnssec: Option<MainDnssec>,
}

/// `dnssec:` in `sipsteer.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MainDnssec {
    #[serde(default)]
    pub denial: Option<Denial>,
}

/// `dnssec.denial`: the signed proofs of names that do not exist.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Denial {
    /// Signed proofs kept.
    #[serde(default)]
    pub cache: Option<S<u32>>,
    /// Queries waiting for the signer thread.
    #[serde(default)]
    pub queue: Option<S<u32>>,
}

/// `reload:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Reload {
    #[serde(default)]
    pub rescan: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryLog {
    pub path: S<String>,
    #[serde(default)]
    pub sample: Option<S<f64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Listen {
    #[serde(default)]
    pub dns: Option<S<Values>>,
    #[serde(default)]
    pub admin: Option<S<String>>,
    /// DNS over TLS (RFC 7858).
    #[serde(default)]
    pub tls: Option<S<Values>>,
    /// DNS over HTTPS (RFC 8484).
    #[serde(default)]
    pub https: Option<S<Values>>,
}

/// The certificate and key of the encrypted listeners (PEM files).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Tls {
    pub certificate: S<String>,
    pub key: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Geoip {
    pub database: S<String>,
    #[serde(default)]
    pub warmup: Option<Warmup>,
}

/// `geoip.warmup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Warmup {
    #[serde(default)]
    pub answer: Option<S<String>>,
    #[serde(default)]
    pub ttl: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Admin {
    #[serde(default)]
    pub token: Option<S<String>>,
    #[serde(default)]
    pub token_env: Option<S<String>>,
    #[serde(default)]
    pub state_file: Option<S<String>>,
}

/// Probe settings; the same shape serves as defaults (top level) and overrides (region, server).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct Health {
    #[serde(default)]
    pub check: Option<S<String>>,
    #[serde(default)]
    pub interval: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub suspect_interval: Option<S<String>>,
    #[serde(default)]
    pub suspect_timeout: Option<S<String>>,
    #[serde(default)]
    pub rise: Option<S<u32>>,
    #[serde(default)]
    pub fall: Option<S<u32>>,
    #[serde(default)]
    pub healthy_codes: Option<S<Values>>,
    #[serde(default)]
    pub max_concurrent: Option<S<u32>>,
    #[serde(default)]
    pub tls_ca_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CapacityPolicy {
    #[serde(default)]
    pub overflow_at: Option<S<f64>>,
    #[serde(default)]
    pub report_ttl: Option<S<String>>,
    /// Proportional shedding between two load watermarks, instead of `overflow_at`.
    #[serde(default)]
    pub shed: Option<S<Shed>>,
}

/// `capacity.shed`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Shed {
    pub from: S<f64>,
    pub to: S<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dns {
    #[serde(default)]
    pub udp_payload: Option<S<u16>>,
    #[serde(default)]
    pub tcp_idle_timeout: Option<S<String>>,
    #[serde(default)]
    pub tcp_max_connections: Option<S<u32>>,
    #[serde(default)]
    pub tcp_max_connections_per_source: Option<S<u32>>,
    #[serde(default)]
    pub udp_workers: Option<S<u32>>,
    #[serde(default)]
    pub cookies: Option<Cookies>,
    #[serde(default)]
    pub rrl: Option<Rrl>,
    #[serde(default)]
    pub nsid: Option<S<String>>,
    #[serde(default)]
    pub signature_cache: Option<S<u32>>,
}

/// `dns.cookies`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Cookies {
    #[serde(default)]
    pub enabled: Option<S<bool>>,
    #[serde(default)]
    pub secret: Option<S<String>>,
    #[serde(default)]
    pub previous_secret: Option<S<String>>,
    #[serde(default)]
    pub secret_file: Option<S<String>>,
}

/// `dns.rrl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rrl {
    #[serde(default)]
    pub enabled: Option<S<bool>>,
    #[serde(default)]
    pub responses_per_second: Option<S<u32>>,
    #[serde(default)]
    pub all_per_second: Option<S<u32>>,
    #[serde(default)]
    pub window: Option<S<String>>,
    #[serde(default)]
    pub slip: Option<S<u32>>,
    #[serde(default)]
    pub table_size: Option<S<u32>>,
    #[serde(default)]
    pub ipv4_prefix: Option<S<u8>>,
    #[serde(default)]
    pub ipv6_prefix: Option<S<u8>>,
}

/// One zone map, `zones/example.com.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Zone {
    pub zone: S<String>,
    #[serde(default)]
    pub ttl: Option<S<u32>>,
    pub soa: S<Soa>,
    pub ns: S<Values>,
    #[serde(default)]
    pub records: HashMap<S<String>, HashMap<S<String>, S<Values>>>,
    #[serde(default)]
    pub regions: HashMap<S<String>, Region>,
    #[serde(default)]
    pub services: HashMap<S<String>, Service>,
    /// Signing: `dnssec: {}` for the defaults.
    #[serde(default)]
    pub dnssec: Option<S<Dnssec>>,
}

/// A zone's `dnssec:`: the algorithm and the key file (generated in `state_dir` when absent).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dnssec {
    #[serde(default)]
    pub algorithm: Option<S<super::values::Scalar>>,
    #[serde(default)]
    pub key: Option<S<String>>,
    /// A keys directory of KSKs and ZSKs with their timings (instead of `key`).
    #[serde(default)]
    pub keys: Option<S<String>>,
    #[serde(default)]
    pub zsk_lifetime: Option<S<String>>,
    #[serde(default)]
    pub propagation: Option<S<String>>,
    #[serde(default)]
    pub ds_ttl: Option<S<String>>,
    #[serde(default)]
    pub ds_wait: Option<S<String>>,
}

/// One key's sidecar in a keys directory (`example.com.zsk.2.yaml`): its algorithm and
/// timings (RFC 3339, UTC).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyTimings {
    pub algorithm: S<super::values::Scalar>,
    pub publish: S<String>,
    pub active: S<String>,
    #[serde(default)]
    pub retire: Option<S<String>>,
    #[serde(default)]
    pub remove: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Soa {
    pub primary: S<String>,
    pub contact: S<String>,
    pub serial: S<u32>,
    #[serde(default)]
    pub refresh: Option<S<u32>>,
    #[serde(default)]
    pub retry: Option<S<u32>>,
    #[serde(default)]
    pub expire: Option<S<u32>>,
    #[serde(default)]
    pub minimum: Option<S<u32>>,
}

/// A place with SIP servers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Region {
    pub location: S<Vec<f64>>,
    #[serde(default)]
    pub countries: Option<S<Values>>,
    #[serde(default)]
    pub continents: Option<S<Values>>,
    #[serde(default)]
    pub min_up: Option<S<u32>>,
    #[serde(default)]
    pub health: Option<Health>,
    pub servers: S<HashMap<S<String>, Server>>,
}

/// One SIP server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Server {
    pub address: S<Values>,
    #[serde(default)]
    pub port: Option<S<u16>>,
    #[serde(default)]
    pub tls_port: Option<S<u16>>,
    #[serde(default)]
    pub ws_port: Option<S<u16>>,
    #[serde(default)]
    pub wss_port: Option<S<u16>>,
    #[serde(default)]
    pub ws_path: Option<S<String>>,
    #[serde(default)]
    pub transports: Option<S<Values>>,
    #[serde(default)]
    pub weight: Option<S<u16>>,
    #[serde(default)]
    pub backup: Option<S<bool>>,
    #[serde(default)]
    pub capacity: Option<S<Capacity>>,
    #[serde(default)]
    pub check: Option<S<String>>,
    /// A check per transport: `{ tls: sip-options-tls, tcp: tcp-connect }`.
    #[serde(default)]
    pub checks: Option<S<HashMap<S<String>, S<String>>>>,
    #[serde(default)]
    pub tls_name: Option<S<String>>,
    #[serde(default)]
    pub health: Option<Health>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Capacity {
    #[serde(default)]
    pub calls: Option<S<u32>>,
    #[serde(default)]
    pub cps: Option<S<u32>>,
}

/// A steered name in a zone (`sip` → `sip.example.com`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Service {
    pub regions: S<Values>,
    #[serde(default)]
    pub transports: Option<S<Values>>,
    #[serde(default)]
    pub ttl: Option<S<u32>>,
    #[serde(default)]
    pub trouble_ttl: Option<S<u32>>,
    #[serde(default)]
    pub failover: Option<S<u32>>,
    #[serde(default)]
    pub answers: Option<S<u32>>,
    #[serde(default)]
    pub fallback: Option<S<Values>>,
    #[serde(default)]
    pub networks: HashMap<S<String>, S<Scalar>>,
    #[serde(default)]
    pub all_down: Option<S<String>>,
    /// Kilometres taken off the distance to a region (negative: added).
    #[serde(default)]
    pub bias: HashMap<S<String>, S<f64>>,
    /// Per region: the percentage of its clients sent to each other region.
    #[serde(default)]
    pub split: HashMap<S<String>, HashMap<S<String>, S<f64>>>,
}
