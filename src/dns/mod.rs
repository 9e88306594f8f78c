//! DNS: the wire format of queries, the answer path and the UDP/TCP listeners.
//!
//! `wire` parses requests, `answer` decides the reply (static data here, steered names in
//! `steered`), `writer` encodes it, `listener` moves bytes; `encrypted` serves DNS over TLS
//! and DNS over HTTPS through hickory-server.

pub mod answer;
pub mod encrypted;
pub mod listener;
pub mod steered;
#[cfg(target_os = "linux")]
mod udp_batch;
pub mod wire;
pub mod writer;
