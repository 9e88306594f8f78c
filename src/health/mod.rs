//! Health of SIP servers. The words every part speaks (`vocab`: targets, probe specs,
//! results, the common tick); the SIP wire format (`sip`); the checks over TCP (`tcp`) and
//! TLS (`tls`, reading certificates through `cert`) and WebSocket (`ws`, plain or through
//! `tls`); the probe engine that schedules every
//! probe and runs SIP over UDP (`udp`, one entry: [`udp::UdpProber`]); one probe outside the
//! scheduler (`probe`); the pure state machine (`state`); the hub's handle on the engine
//! (`monitor`) and the table that ties probes to the running config and publishes into the
//! snapshot (`hub`, with the operator state file in `state_file`); load pulled from
//! Prometheus (`load_pull`, whose handle [`load_pull::LoadPuller`] keeps the load source it
//! follows and what its rounds did).

mod cert;
pub mod hub;
pub mod load_pull;
pub(crate) mod monitor;
pub mod probe;
pub mod sip;
pub(crate) mod state;
mod state_file;
mod tcp;
mod tls;
pub mod udp;
pub(crate) mod vocab;
mod ws;
