//! Test support: a real sipsteer started in-process on 127.0.0.1 port 0, and DNS clients.

pub mod dns;
pub mod http;
pub mod sip;
pub mod steer;
