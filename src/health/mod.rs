//! Health of SIP servers: the SIP wire format (`sip`), one probe (`probe`), the pure state
//! machine (`state`), the scheduler (`monitor`) with the one task that runs every SIP-over-UDP
//! probe (`udp_prober` its handle, `udp_engine` the task, `udp_sched` its queue and jitter,
//! `udp_table` its transactions, `udp_socket`, `udp_send`, `udp_recv`, `udp_errqueue` its
//! sockets) and the table that ties them to the running config and publishes into the
//! snapshot (`hub`); load pulled from Prometheus (`load_pull`).

pub mod hub;
pub mod load_pull;
pub(crate) mod monitor;
pub mod probe;
pub mod sip;
pub(crate) mod state;
mod state_file;
mod udp_engine;
mod udp_errqueue;
pub mod udp_prober;
mod udp_recv;
mod udp_sched;
mod udp_send;
mod udp_socket;
mod udp_table;
