//! The operator console's fixture: an instance with an admin API and a token, two regions of
//! one server each probed with SIP OPTIONS over UDP (real responders on loopback), and the
//! SRV answer of the service as a test reads it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use super::dns::{Q, TestServer, udp};
use super::sip::Responder;

/// `sipsteer.yaml` with the admin API on port 0, `token`, and probes every 200 ms that flip
/// after `rise` good or 2 bad results; `extra` is appended (more top-level keys).
pub(crate) fn main_cfg(token: &str, rise: u32, extra: &str) -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
admin: {{ token: {token} }}
health: {{ check: sip-options-udp, interval: 200ms, timeout: 150ms, rise: {rise}, fall: 2 }}
{extra}"#
    )
}

/// The zone map: `uk` (server lon1, probed at `uk`, with `lon1_extra` keys) and `de` (fra1,
/// probed at `de`), one service `sip` over both.
pub(crate) fn zone(uk: &Responder, de: &Responder, lon1_extra: &str) -> String {
    format!(
        r#"
zone: example.com
soa: {{ primary: ns1, contact: hostmaster, serial: 1 }}
ns: [ns1]
records:
  ns1: {{ A: 192.0.2.53 }}
regions:
  uk:
    location: [51.5, 0]
    servers:
      lon1: {{ address: 127.0.0.1, port: {}{lon1_extra} }}
  de:
    location: [50.1, 8.7]
    servers:
      fra1: {{ address: 127.0.0.1, port: {} }}
services:
  sip: {{ regions: [uk, de], fallback: [uk, de], failover: 2 }}
"#,
        uk.addr.port(),
        de.addr.port()
    )
}

/// The admin API's address of a running instance.
pub(crate) fn admin(s: &TestServer) -> SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

/// SRV targets of `_sip._udp.sip.example.com` over UDP, as "priority first-label", in answer
/// order.
pub(crate) async fn srv(s: &TestServer) -> Vec<String> {
    udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await
    .answers
    .iter()
    .map(|r| {
        let d = r.data.to_string();
        let f: Vec<&str> = d.split_whitespace().collect();
        let target = f.get(3).and_then(|t| t.split('.').next()).unwrap_or("");
        format!("{} {target}", f.first().unwrap_or(&""))
    })
    .collect()
}

/// Asks for the SRV answer until it is `want` (5 s at most, then fails).
pub(crate) async fn wait_srv(s: &TestServer, want: &[&str]) {
    let start = Instant::now();
    loop {
        let got = srv(s).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "SRV {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
