//! Health per transport end to end: a sipsteer started from YAML with `check: per-transport`
//! probes each transport of each server on its own (SIP OPTIONS over UDP, TCP and TLS to
//! real responders, TLS with valid, expired and wrong-name certificates), and each
//! transport's NAPTR record and SRV set follow only the servers healthy on it while the
//! other transports' records and the A answers stay; `/v1/servers`, `/v1/explain`, the
//! event log and `/metrics` show each transport. The config errors of `checks:`.

use std::net::SocketAddr;

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::support::certs::{EXPIRED_AT, SipCa, VALID_UNTIL};
use crate::support::dns::{self, ConfigDir, TestServer};
use crate::support::http::get;
use crate::support::lanes::{answer, answer_once, lanes, naptr, servers_when};
use crate::support::sip::{self, Mode, Responder};

const TOKEN: &str = "test-token-123";
const NAME: &str = "sip.example.com";

/// One SIP server: UDP and TCP on one port (or nothing there), TLS on another.
struct Sip {
    name: &'static str,
    ip: &'static str,
    plain: Option<(Responder, Responder)>,
    port: u16,
    tls: Responder,
}

impl Sip {
    async fn new(name: &'static str, ip: &'static str, cert: tokio_rustls::TlsAcceptor) -> Sip {
        let (u, t) = sip::udp_and_tcp(ip, Mode::Code(200)).await;
        Sip {
            name,
            ip,
            port: u.addr.port(),
            plain: Some((u, t)),
            tls: sip::tls_on(ip, Mode::Code(200), cert).await,
        }
    }

    /// A server with nothing listening on its SIP port, only on TLS.
    async fn tls_only(
        name: &'static str,
        ip: &'static str,
        cert: tokio_rustls::TlsAcceptor,
    ) -> Sip {
        let free = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        let port = free.local_addr().expect("addr").port();
        drop(free);
        Sip {
            name,
            ip,
            port,
            plain: None,
            tls: sip::tls_on(ip, Mode::Code(200), cert).await,
        }
    }

    fn yaml(&self) -> String {
        let transports = if self.plain.is_some() {
            "[udp, tcp, tls]"
        } else {
            "[udp, tls]"
        };
        format!(
            "      {}: {{ address: {}, port: {}, tls_port: {}, transports: {transports}, tls_name: {NAME} }}\n",
            self.name,
            self.ip,
            self.port,
            self.tls.addr.port()
        )
    }

    /// Its SRV record for TLS or for UDP and TCP.
    fn srv(&self, tls: bool) -> String {
        let port = if tls { self.tls.addr.port() } else { self.port };
        format!("10 100 {port} {}.uk.sip.example.com.", self.name)
    }
}

fn config(servers: &[&Sip]) -> ConfigDir {
    let main = format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
admin: {{ token: {TOKEN} }}
health: {{ check: per-transport, tls_ca_file: ca.pem, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }}
"#
    );
    let mut zone = String::from(
        r"
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
regions:
  uk:
    location: [51.5, 0]
    servers:
",
    );
    for s in servers {
        zone.push_str(&s.yaml());
    }
    zone.push_str("services:\n  sip: { regions: [uk], transports: [udp, tcp, tls], answers: 8 }\n");
    ConfigDir::new(&main, &[("example.com.yaml", &zone)])
}

/// Each server's transports as `/v1/servers` shows them: `name transport:state ...`.
/// `/v1/servers` once the transports' states are `want`.
async fn servers_once(admin: SocketAddr, want: &[&str]) -> Vec<Value> {
    servers_when(admin, |list| lanes(list) == want).await
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The event log names the transport of a flip; `/metrics` has each transport's state.
async fn events_and_metrics(admin: SocketAddr) {
    let (_, events) = get(admin, "/v1/events").await;
    let ev: Value = serde_json::from_str(&events).expect("json");
    let mut flips: Vec<String> = ev["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "flip" && e["subject"] == "uk/tlsonly")
        .map(|e| e["message"].as_str().unwrap_or("").to_owned())
        .collect();
    flips.sort();
    assert_eq!(
        flips,
        [
            "tls: unknown → up: 200 OK",
            "udp: unknown → down: connection refused"
        ]
    );
    let (_, metrics) = get(admin, "/metrics").await;
    for (server, transport, v) in [
        ("uk/tlsonly", "udp", 0),
        ("uk/tlsonly", "tls", 1),
        ("uk/old", "tls", 0),
        ("uk/old", "udp", 1),
        ("uk/good", "tls", 1),
    ] {
        let line = format!(
            "sipsteer_server_transport_up{{server=\"{server}\",transport=\"{transport}\"}} {v}"
        );
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(
        metrics.lines().any(|l| l
            == "sipsteer_transport_flips_total{server=\"uk/tlsonly\",transport=\"udp\",to=\"down\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "sipsteer_state_flips_total{server=\"uk/tlsonly\",to=\"down\"} 1"),
        "every check's flips in the server's count too: {metrics}"
    );
}

/// `/v1/explain` shows the transports each server is left out on, and `explain --live`
/// reads them from `/v1/servers` and answers as the instance does.
async fn explain_names_the_transports(admin: SocketAddr, main: &std::path::Path) {
    let (code, text) = get(
        admin,
        "/v1/explain?client=192.0.2.1&name=sip.example.com&type=NAPTR&format=text",
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = (VALID_UNTIL - now).div_euclid(86_400);
    let ago = (now - EXPIRED_AT).div_euclid(86_400) + 1;
    let line = format!(
        "  1. uk                 -  healthy   good up (tls certificate: {days} days left) (not on tls), \
         old up (tls certificate expired {ago} days ago) (not on tls), \
         wrong up (tls certificate: {days} days left) (not on tls), \
         tlsonly up (tls certificate: {days} days left) (not on udp)"
    );
    assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    let live = sipsteer::app::explain_offline(
        main,
        "192.0.2.1".parse().expect("ip"),
        None,
        Some(&format!("http://{admin}")),
        "sip.example.com",
        "NAPTR",
    )
    .await
    .expect("explain --live");
    let line = "  1. uk                 -  healthy   good up (not on tls), old up (not on tls), \
                wrong up (not on tls), tlsonly up (not on udp)";
    assert!(live.lines().any(|l| l == line), "{line}\n{live}");
    let answers = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.contains(" NAPTR "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(answers(&live), answers(&text));
    assert_eq!(answers(&live).len(), 3, "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transport_answers_only_the_servers_healthy_on_it() {
    let ca = SipCa::new();
    let good = Sip::new("good", "127.0.0.1", ca.acceptor(NAME, false)).await;
    let old = Sip::new("old", "127.0.0.2", ca.acceptor(NAME, true)).await;
    let wrong = Sip::new(
        "wrong",
        "127.0.0.3",
        ca.acceptor("other.example.com", false),
    )
    .await;
    let only = Sip::tls_only("tlsonly", "127.0.0.4", ca.acceptor(NAME, false)).await;
    let all = [&good, &old, &wrong, &only];
    let cfg = config(&all);
    std::fs::write(cfg.path("ca.pem"), ca.pem()).expect("write ca");
    let s = TestServer::start_in(cfg).await;
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");

    let list = servers_once(
        admin,
        &[
            "good udp:up tcp:up tls:up",
            "old udp:up tcp:up tls:down",
            "wrong udp:up tcp:up tls:down",
            "tlsonly udp:down tls:up",
        ],
    )
    .await;
    let t = &list[3];
    assert_eq!(t["state"], "up", "healthy on one transport: up");
    assert_eq!(t["check"], "per-transport");
    assert_eq!(t["transports"][0]["check"], "sip-options-udp");
    assert_eq!(t["transports"][0]["observed"], "down");
    assert_eq!(t["transports"][0]["last_result"], "connection refused");
    assert_eq!(t["transports"][1]["check"], "sip-options-tls");
    assert_eq!(t["transports"][1]["last_result"], "200 OK");
    assert_eq!(list[1]["transports"][2]["observed"], "down");
    assert_eq!(list[1]["state"], "up");

    // Each transport's SRV set: only the servers healthy on it.
    let sips = sorted(vec![good.srv(true), only.srv(true)]);
    let plain = sorted(vec![good.srv(false), old.srv(false), wrong.srv(false)]);
    assert_eq!(
        answer(&s, "_sips._tcp.sip.example.com.", RecordType::SRV).await,
        sips
    );
    assert_eq!(
        answer(&s, "_sip._udp.sip.example.com.", RecordType::SRV).await,
        plain
    );
    assert_eq!(
        answer(&s, "_sip._tcp.sip.example.com.", RecordType::SRV).await,
        plain
    );
    let naptr_all = vec![
        naptr(10, "SIP+D2U", "_sip._udp"),
        naptr(20, "SIP+D2T", "_sip._tcp"),
        naptr(30, "SIPS+D2T", "_sips._tcp"),
    ];
    assert_eq!(
        answer(&s, "sip.example.com.", RecordType::NAPTR).await,
        naptr_all
    );
    // A/AAAA: every server healthy on at least one transport.
    assert_eq!(
        answer(&s, "sip.example.com.", RecordType::A).await,
        ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    );

    events_and_metrics(admin).await;

    // TLS goes silent on `good`: it leaves `_sips._tcp` within the probe bounds, and keeps
    // its UDP and TCP records.
    good.tls.set(Mode::Silent);
    answer_once(
        &s,
        "_sips._tcp.sip.example.com.",
        RecordType::SRV,
        &[only.srv(true)],
    )
    .await;
    assert_eq!(
        answer(&s, "_sip._udp.sip.example.com.", RecordType::SRV).await,
        plain
    );
    assert_eq!(
        answer(&s, "_sip._tcp.sip.example.com.", RecordType::SRV).await,
        plain
    );
    explain_names_the_transports(admin, &s.cfg.main()).await;

    // UDP silent everywhere: the UDP NAPTR leaves with its SRV set, the others stay.
    for x in [&good, &old, &wrong] {
        if let Some((u, _)) = &x.plain {
            u.set(Mode::Silent);
        }
    }
    answer_once(&s, "sip.example.com.", RecordType::NAPTR, &naptr_all[1..]).await;
    assert_eq!(
        answer(&s, "_sip._udp.sip.example.com.", RecordType::SRV).await,
        Vec::<String>::new()
    );
    assert_eq!(
        answer(&s, "_sip._tcp.sip.example.com.", RecordType::SRV).await,
        plain
    );
    assert_eq!(
        answer(&s, "sip.example.com.", RecordType::A).await,
        ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    );
    s.stop().await;
}

fn errors(main: &str, zone: &str) -> Vec<String> {
    let dir = ConfigDir::new(main, &[("z.yaml", zone)]);
    let root = format!("{}/", dir.dir.path().display());
    match sipsteer::config::load(&dir.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }
}

const MAIN: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
"#;

#[test]
fn checks_per_transport_config_errors() {
    let zone = r#"zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
regions:
  uk:
    location: [51.5, 0]
    health: { check: per-transprot }
    servers:
      a: { address: 192.0.2.1, checks: { udp: sip-options, quic: none } }
      b: { address: 192.0.2.2, checks: { tls: sip-options-tls } }
      c: { address: 192.0.2.3, checks: { udp: sip-options-tls, tcp: sip-options-udp } }
      d: { address: 192.0.2.4, check: sip-options, checks: { udp: none } }
      e: { address: 192.0.2.5, transports: [tls], checks: { tls: sip-options-tls } }
"#;
    assert_eq!(
        errors(MAIN, zone),
        [
            "zones/z.yaml:7:22: regions.uk.health.check: unknown check `per-transprot` (use sip-options, sip-options-udp, sip-options-tcp, sip-options-tls, sip-options-ws, sip-options-wss, tcp-connect, per-transport or none)",
            "zones/z.yaml:9:60: regions.uk.servers.a.checks: unknown transport `quic` (use udp, tcp, tls, ws or wss)",
            "zones/z.yaml:10:42: regions.uk.servers.b.checks: the server does not list transport `tls` in its transports",
            "zones/z.yaml:11:47: regions.uk.servers.c.checks.udp: check `sip-options-tls` cannot check transport udp (use sip-options, sip-options-udp or none)",
            "zones/z.yaml:11:69: regions.uk.servers.c.checks.tcp: check `sip-options-udp` cannot check transport tcp (use sip-options, sip-options-tcp, tcp-connect or none)",
            "zones/z.yaml:12:60: regions.uk.servers.d.checks: use `check` (one check for the whole server) or `checks` (one per transport), not both",
            "zones/z.yaml:13:66: regions.uk.servers.e.tls_name: check sip-options-tls needs `tls_name`, the SIP domain its certificate must name",
        ]
    );
}

/// What each server's checks resolve to: the defaults per transport (also with no check
/// written anywhere), an override, `none`, and `sip-options` on a TLS-only server (OPTIONS
/// over TLS with a `tls_name`, a TCP connect to the TLS port without one).
#[test]
fn checks_resolve_per_transport_and_sip_options_on_tls_only_servers() {
    use sipsteer::config::{Check, Transport, TransportCheck};
    let zone = r#"zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
regions:
  uk:
    location: [51.5, 0]
    servers:
      a: { address: 192.0.2.1, transports: [udp, tcp, tls], check: per-transport, tls_name: sip.example.com }
      b: { address: 192.0.2.2, transports: [udp, tcp, tls], checks: { tcp: tcp-connect, udp: none } }
      c: { address: 192.0.2.3, transports: [tls], check: sip-options, tls_name: sip.example.com }
      d: { address: 192.0.2.4, transports: [tls], check: sip-options }
      e: { address: 192.0.2.5 }
  de:
    location: [50.1, 8.7]
    health: { check: sip-options-udp }
    servers:
      f: { address: 192.0.2.6, checks: { tcp: tcp-connect } }
      g: { address: 192.0.2.7 }
"#;
    let dir = ConfigDir::new(MAIN, &[("z.yaml", zone)]);
    let cfg = dns::load_config(&dir.main());
    let s = &cfg.regions[0].servers;
    let tc = |transport, check| TransportCheck { transport, check };
    assert_eq!(
        s[0].checks,
        [
            tc(Transport::Udp, Some(Check::SipUdp)),
            tc(Transport::Tcp, Some(Check::SipTcp)),
            tc(Transport::Tls, Some(Check::SipTls)),
        ]
    );
    assert_eq!(s[0].probe.check, None);
    assert!(s[0].tls_check.is_some());
    assert_eq!(
        s[1].checks,
        [
            tc(Transport::Udp, None),
            tc(Transport::Tcp, Some(Check::Tcp)),
            tc(Transport::Tls, Some(Check::Tcp)),
        ]
    );
    assert_eq!(
        (s[2].probe.check, s[2].checks.len()),
        (Some(Check::SipTls), 0)
    );
    assert_eq!((s[3].probe.check, s[3].checks.len()), (Some(Check::Tcp), 0));
    assert_eq!(
        (s[4].probe.check, &s[4].checks[..]),
        (
            None,
            &[
                tc(Transport::Udp, Some(Check::SipUdp)),
                tc(Transport::Tcp, Some(Check::SipTcp))
            ][..]
        ),
        "no check written anywhere: one check per transport"
    );
    let de = &cfg.regions[1].servers;
    assert_eq!(
        de[0].checks,
        [
            tc(Transport::Udp, Some(Check::SipUdp)),
            tc(Transport::Tcp, Some(Check::Tcp)),
        ],
        "checks: beside an inherited check"
    );
    assert_eq!(
        (de[1].probe.check, de[1].checks.len()),
        (Some(Check::SipUdp), 0)
    );
}
