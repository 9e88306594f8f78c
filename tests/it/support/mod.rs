//! Test support: a real sipsteer started in-process on 127.0.0.1 port 0, and DNS clients.

pub(crate) mod certs;
pub(crate) mod console;
pub(crate) mod dns;
pub(crate) mod http;
pub(crate) mod lanes;
pub(crate) mod sip;
pub(crate) mod steer;
