//! DNS: the wire format of queries, the answer path and the UDP/TCP listeners.
//!
//! `wire` parses requests, `answer` decides the reply (static data here, steered names in
//! `steered`), `writer` encodes it, `listener` (UDP) and `tcp` move bytes; `encrypted` serves
//! DNS over TLS (through hickory-server) and DNS over HTTPS. `defences` wraps the answer path
//! with DNS Cookies (`cookie`), response rate limiting (`rrl`), NSID and extended errors
//! (`edns`).

pub mod answer;
pub mod cookie;
pub mod defences;
pub mod edns;
pub mod encrypted;
pub mod listener;
pub mod querylog;
pub mod rrl;
pub mod snapshot;
pub mod stats;
pub mod steered;
pub mod tcp;
mod tcp_conn;
#[cfg(target_os = "linux")]
mod udp_batch;
pub mod wire;
pub mod writer;
