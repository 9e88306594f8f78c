//! sipsteer: an authoritative geo-DNS server that steers SIP traffic.
//!
//! The map of the crate, in layers from the bottom up. A module uses only modules of lower
//! layers (checked by `tests/it/layers.rs`; docs/architecture.md has the why):
//!
//! 1. Leaves: [`cli`] (the command line), [`files`] (bounded, non-blocking file reads),
//!    [`lock`] (poison-tolerant locking), [`proto`] (DNS numbers), [`sys`] (raw sockets:
//!    batched datagram I/O, control messages, socket options), [`telemetry`] (one
//!    instance's metrics registry, handed down from `app`), [`dnssec`] (signing keys and
//!    what they publish: DNSKEY, key tag, DS).
//! 2. [`conns`]: admission of stream connections (caps, share per source, idle eviction);
//!    [`events`]: the event log (a bounded ring of flips, forced states, reloads, load pulls).
//! 3. [`config`]: `sipsteer.yaml`, zone maps, operator state; validation with file:line:col;
//!    the names a service generates.
//! 4. [`geo`]: GeoIP databases (mmdb, CSV) into network tables and address-block maps;
//!    [`lint`]: warnings about a valid config.
//! 5. [`routing`]: zones compiled into wire-format record sets and steered-name references.
//! 6. [`steering`]: the pure core: ranking, health, failover tiers into an answer plan.
//! 7. [`health`]: SIP OPTIONS and TCP probes, the per-server state machine, load reports, the
//!    hub that publishes health views.
//! 8. [`dns`]: the snapshot a query reads, the wire parser, the answer path, defences (cookies,
//!    RRL), query counters and log, and the UDP/TCP/DoT/DoH listeners.
//! 9. [`explain`]: the answer a client would get, and why (the real answer path).
//! 10. [`reload`]: the one loader (config + GeoIP) and the reload pipeline.
//! 11. [`admin`]: the HTTP API and `/metrics`.
//! 12. [`app`]: starts and stops everything; startup logs; [`ctl`]: `sipsteer ctl`, the admin
//!     API from the command line.
pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub(crate) mod conns;
pub mod ctl;
pub mod dns;
pub mod dnssec;
pub mod events;
pub(crate) mod explain;
pub(crate) mod files;
pub mod geo;
pub mod health;
pub mod lint;
pub(crate) mod lock;
pub(crate) mod proto;
pub mod reload;
pub mod routing;
pub mod steering;
#[cfg(unix)]
pub(crate) mod sys;
pub mod telemetry;
