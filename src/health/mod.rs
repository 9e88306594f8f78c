//! Health of SIP servers: the SIP wire format (`sip`), one probe (`probe`), the pure state
//! machine (`state`), the scheduler (`monitor`) with its shared SIP-over-UDP sockets
//! (`udp_prober`, `udp_table`, `udp_recv`, `udp_errqueue`) and the table that ties them to the running
//! config and publishes into the snapshot (`hub`); load pulled from Prometheus (`load_pull`).

pub mod hub;
pub(crate) mod load_pull;
pub(crate) mod monitor;
pub mod probe;
pub mod sip;
pub(crate) mod state;
mod state_file;
mod udp_errqueue;
pub mod udp_prober;
mod udp_recv;
mod udp_table;
