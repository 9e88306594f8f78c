//! sipsteer: an authoritative geo-DNS server that steers SIP traffic.
//!
//! The crate is laid out along the path a query takes:
//!
//! - [`config`] reads `sipsteer.yaml` and the zone maps (one loader for serve, check, reload).
//! - [`geo`] reads GeoIP databases (mmdb or CSV) and compiles them into address blocks.
//! - [`health`] probes SIP servers and keeps their state.
//! - [`dns`] parses queries, builds answers and runs the UDP/TCP listeners.
pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dns;
pub mod explain;
pub mod files;
pub mod geo;
pub mod health;
pub mod lint;
pub mod lock;
pub mod proto;
pub mod reload;
pub mod routing;
pub mod steering;
pub mod telemetry;
