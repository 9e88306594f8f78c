//! DNS: the wire format of queries, the answer path and the UDP/TCP listeners.
//!
//! `wire` parses requests, `answer` decides the reply (static data here, steered names in
//! `steered`, negative answers and ANY in `negative`, the proofs of names that do not exist
//! signed off the query path in `denial`), `writer` encodes it, `summary` says what was
//! answered. `serving` is the one way a transport serves a query (snapshot, answer, counters
//! in `stats`, `querylog`); `listener` (UDP, warming GeoIP lookups through `lookahead`) and
//! `tcp` move bytes; `encrypted` serves DNS over TLS (the `tcp` listener over rustls) and DNS
//! over HTTPS, whose replies `pad` pads. `defences` wraps the answer path with DNS Cookies
//! (`cookie`), response rate limiting (`rrl`), NSID and extended errors (`edns`). Steered sets are signed from
//! the signature cache (`sigs`), which `presign` fills before a snapshot or health view is
//! served, through the record `sink` the steered code writes to.

pub mod answer;
#[cfg(test)]
mod answer_speed;
pub(crate) mod cookie;
pub(crate) mod defences;
pub mod denial;
pub(crate) mod edns;
pub mod encrypted;
pub(crate) mod listener;
mod lookahead;
mod negative;
mod pad;
pub mod presign;
#[cfg(test)]
mod presign_speed;
pub(crate) mod querylog;
pub(crate) mod rrl;
pub(crate) mod serving;
pub mod sigs;
mod sink;
pub mod snapshot;
pub mod stats;
pub(crate) mod steered;
pub(crate) mod summary;
pub(crate) mod tcp;
mod tcp_conn;
#[cfg(target_os = "linux")]
mod udp_batch;
pub(crate) mod wire;
pub(crate) mod writer;
