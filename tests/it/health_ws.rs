//! SIP over WebSocket end to end: a sipsteer started from YAML with health per transport
//! probes real WebSocket and secure WebSocket SIP responders (RFC 7118: the `sip`
//! subprotocol, `ws_path`, OPTIONS in text frames; WSS with valid, expired and wrong-name
//! certificates),
//! answers `SIP+D2W` / `SIPS+D2W` NAPTR records with `_sip._ws` / `_sips._ws` SRV sets that
//! follow each transport's health; and hostile WebSocket servers (endless headers, a huge
//! frame, a handshake never answered, a stall after it, no subprotocol) each fail the probe
//! within its bounds, are counted, and leave no connection open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::certs::SipCa;
use crate::support::dns::{ConfigDir, TestServer};
use crate::support::http::get;
use crate::support::lanes::{answer, answer_once, lanes, naptr, servers_when};
use crate::support::sip::{self, Mode, Responder};

const NAME: &str = "sip.example.com";

fn main_cfg(check: &str) -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
admin: {{ token: test-token-123 }}
health: {{ check: {check}, tls_ca_file: ca.pem, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }}
"#
    )
}

fn zone(servers: &str, transports: &str) -> String {
    format!(
        r"
zone: example.com
soa: {{ primary: ns1, contact: hostmaster, serial: 1 }}
ns: [ns1]
records:
  ns1: {{ A: 192.0.2.53 }}
regions:
  uk:
    location: [51.5, 0]
    servers:
{servers}services:
  sip: {{ regions: [uk], transports: {transports} }}
"
    )
}

/// `/v1/servers` once `done` holds for its list.
fn srv(r: &Responder, name: &str) -> String {
    format!("10 100 {} {name}.uk.sip.example.com.", r.addr.port())
}

fn path_of(r: &Responder) -> String {
    r.path.lock().map(|p| p.clone()).unwrap_or_default()
}

/// The transport in the Via of the last request: `WS` of `Via: SIP/2.0/WS 127.0.0.1:…`.
fn via_of(r: &Responder) -> String {
    let v = r.via.lock().map(|p| p.clone()).unwrap_or_default();
    v.split_whitespace()
        .nth(1)
        .and_then(|p| p.strip_prefix("SIP/2.0/"))
        .unwrap_or_default()
        .to_owned()
}

/// Servers `a` (UDP, WS at `/sip`, WSS) and `b` (UDP, WS, WSS) and `c` (WSS only), on the
/// ports of these responders in that order.
fn ws_servers(r: [&Responder; 7]) -> String {
    let p = r.map(|x| x.addr.port());
    format!(
        "      a: {{ address: 127.0.0.1, port: {}, ws_port: {}, wss_port: {}, ws_path: /sip, transports: [udp, ws, wss], tls_name: {NAME} }}\n      \
         b: {{ address: 127.0.0.2, port: {}, ws_port: {}, wss_port: {}, transports: [udp, ws, wss], tls_name: {NAME} }}\n      \
         c: {{ address: 127.0.0.3, wss_port: {}, transports: [wss], tls_name: {NAME} }}\n",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_transports_are_probed_and_answered_per_transport() {
    let ca = SipCa::new();
    let (ua, ub) = (
        sip::udp_on("127.0.0.1", Mode::Code(200)).await,
        sip::udp_on("127.0.0.2", Mode::Code(200)).await,
    );
    let wa = sip::ws_on("127.0.0.1", Mode::Code(200), None).await;
    let wb = sip::ws_on("127.0.0.2", Mode::Code(200), None).await;
    let sa = sip::ws_on("127.0.0.1", Mode::Code(200), Some(ca.acceptor(NAME, false))).await;
    let sb = sip::ws_on("127.0.0.2", Mode::Code(200), Some(ca.acceptor(NAME, true))).await;
    let wrong = Some(ca.acceptor("other.example.com", false));
    let sc = sip::ws_on("127.0.0.3", Mode::Code(200), wrong).await;
    let servers = ws_servers([&ua, &wa, &sa, &ub, &wb, &sb, &sc]);
    let cfg = ConfigDir::new(
        &main_cfg("per-transport"),
        &[("example.com.yaml", &zone(&servers, "[udp, ws, wss]"))],
    );
    std::fs::write(cfg.path("ca.pem"), ca.pem()).expect("write ca");
    let s = TestServer::start_in(cfg).await;
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let want = [
        "a udp:up ws:up wss:up",
        "b udp:up ws:up wss:down",
        "c wss:down",
    ];
    let list = servers_when(admin, |l| lanes(l) == want).await;
    let a = &list[0]["transports"];
    assert_eq!(
        (a[1]["check"].as_str(), a[1]["last_result"].as_str()),
        (Some("sip-options-ws"), Some("200 OK"))
    );
    assert_eq!(
        (a[2]["check"].as_str(), a[2]["last_result"].as_str()),
        (Some("sip-options-wss"), Some("200 OK"))
    );
    let b_wss = list[1]["transports"][2]["last_result"]
        .as_str()
        .unwrap_or("");
    assert!(b_wss.starts_with("tls: "), "{b_wss}");
    assert_eq!((path_of(&wa), path_of(&wb)), ("/sip".into(), "/".into()));
    assert_eq!((via_of(&wa), via_of(&sa)), ("WS".into(), "WSS".into()));
    assert_eq!(
        (sb.count(), sc.count()),
        (0, 0),
        "nothing sent over an unverified connection"
    );
    assert_eq!(list[1]["tls_certificate"]["failure"], "expired");
    assert_eq!(list[2]["tls_certificate"]["failure"], "name_mismatch");
    assert_eq!(list[2]["state"], "down");

    let mut ws = vec![srv(&wa, "a"), srv(&wb, "b")];
    let mut udp = vec![srv(&ua, "a"), srv(&ub, "b")];
    ws.sort();
    udp.sort();
    assert_eq!(
        answer(&s, "_sip._ws.sip.example.com.", RecordType::SRV).await,
        ws
    );
    assert_eq!(
        answer(&s, "_sips._ws.sip.example.com.", RecordType::SRV).await,
        [srv(&sa, "a")]
    );
    let all = vec![
        naptr(10, "SIP+D2U", "_sip._udp"),
        naptr(20, "SIP+D2W", "_sip._ws"),
        naptr(30, "SIPS+D2W", "_sips._ws"),
    ];
    assert_eq!(answer(&s, "sip.example.com.", RecordType::NAPTR).await, all);

    // WebSocket silent on `a`: it leaves `_sip._ws`, keeps UDP and WSS.
    wa.set(Mode::Silent);
    answer_once(
        &s,
        "_sip._ws.sip.example.com.",
        RecordType::SRV,
        &[srv(&wb, "b")],
    )
    .await;
    assert_eq!(
        answer(&s, "_sip._udp.sip.example.com.", RecordType::SRV).await,
        udp
    );
    assert_eq!(
        answer(&s, "_sips._ws.sip.example.com.", RecordType::SRV).await,
        [srv(&sa, "a")]
    );
    // And on `b`: the SIP+D2W NAPTR leaves with its SRV set.
    wb.set(Mode::Silent);
    answer_once(
        &s,
        "sip.example.com.",
        RecordType::NAPTR,
        &[all[0].clone(), all[2].clone()],
    )
    .await;
    assert_eq!(
        answer(&s, "_sip._ws.sip.example.com.", RecordType::SRV).await,
        Vec::<String>::new()
    );
    s.stop().await;
}

/// What a hostile WebSocket server does after reading the upgrade request.
#[derive(Clone, Copy)]
enum Hostile {
    /// A 101 status line, then header lines without end.
    EndlessHeaders,
    /// A valid 101, then a text frame announcing 1 GiB and bytes without end.
    HugeFrame,
    /// Never answers the upgrade.
    NoAnswer,
    /// A valid 101, then never answers the OPTIONS.
    Stall,
    /// A 101 with the right accept key but no `sip` subprotocol.
    NoSubprotocol,
}

/// A hostile server: connections accepted, and those still open.
struct HostileServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

async fn hostile(kind: Hostile) -> HostileServer {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let h = HostileServer {
        addr: l.local_addr().expect("addr"),
        accepted: Arc::default(),
        open: Arc::default(),
    };
    let (accepted, open) = (h.accepted.clone(), h.open.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            open.fetch_add(1, Ordering::SeqCst);
            let open = open.clone();
            tokio::spawn(async move {
                serve_hostile(s, kind).await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    h
}

/// Reads the upgrade request; its `Sec-WebSocket-Key`.
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| v.trim().to_owned())
    })
}

fn upgrade(key: &str, protocol: bool) -> String {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let proto = if protocol {
        "Sec-WebSocket-Protocol: sip\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{proto}\r\n"
    )
}

/// Reads until the peer closes (the probe gave up).
async fn drain(s: &mut TcpStream) {
    let mut chunk = [0u8; 1024];
    while let Ok(n) = s.read(&mut chunk).await {
        if n == 0 {
            return;
        }
    }
}

async fn serve_hostile(mut s: TcpStream, kind: Hostile) {
    let Some(key) = read_request(&mut s).await else {
        return;
    };
    match kind {
        Hostile::EndlessHeaders => {
            let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
            if s.write_all(b"HTTP/1.1 101 Switching Protocols\r\n")
                .await
                .is_err()
            {
                return;
            }
            while s.write_all(line.as_bytes()).await.is_ok() {}
        }
        Hostile::HugeFrame => {
            if s.write_all(upgrade(&key, true).as_bytes()).await.is_err() {
                return;
            }
            let header = [0x81u8, 127, 0, 0, 0, 0, 0x40, 0, 0, 0];
            if s.write_all(&header).await.is_err() {
                return;
            }
            let zeros = [0u8; 4096];
            while s.write_all(&zeros).await.is_ok() {}
        }
        Hostile::NoAnswer => drain(&mut s).await,
        Hostile::Stall => {
            if s.write_all(upgrade(&key, true).as_bytes()).await.is_ok() {
                drain(&mut s).await;
            }
        }
        Hostile::NoSubprotocol => {
            if s.write_all(upgrade(&key, false).as_bytes()).await.is_ok() {
                drain(&mut s).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_websocket_servers_fail_within_bounds_and_leave_nothing_open() {
    let kinds = [
        ("headers", Hostile::EndlessHeaders),
        ("frame", Hostile::HugeFrame),
        ("noanswer", Hostile::NoAnswer),
        ("stall", Hostile::Stall),
        ("noproto", Hostile::NoSubprotocol),
    ];
    let mut servers = String::new();
    let mut hs = Vec::new();
    for (name, kind) in kinds {
        let h = hostile(kind).await;
        servers.push_str(&format!(
            "      {name}: {{ address: 127.0.0.1, ws_port: {}, transports: [ws] }}\n",
            h.addr.port()
        ));
        hs.push((name, h));
    }
    let cfg = ConfigDir::new(
        &main_cfg("sip-options-ws"),
        &[("example.com.yaml", &zone(&servers, "[ws]"))],
    );
    std::fs::write(cfg.path("ca.pem"), SipCa::new().pem()).expect("write ca");
    let s = TestServer::start_in(cfg).await;
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    // Every server probed a few times, each time down.
    let list = servers_when(admin, |l| {
        l.len() == 5 && l.iter().all(|x| x["observed"] == "down")
    })
    .await;
    let start = Instant::now();
    while hs
        .iter()
        .any(|(_, h)| h.accepted.load(Ordering::SeqCst) < 3)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not probed again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let results: Vec<(String, String)> = list
        .iter()
        .map(|x| {
            (
                x["server"].as_str().unwrap_or("?").to_owned(),
                x["last_result"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    let want = [
        (
            "headers",
            "bad response: websocket: more than 65536 bytes from the server",
        ),
        (
            "frame",
            "bad response: websocket: a message of 1073741824 bytes, over the 32772 a probe reads",
        ),
        ("noanswer", "timeout after 400ms"),
        ("stall", "timeout after 400ms"),
        (
            "noproto",
            "bad response: websocket: the server did not take subprotocol sip",
        ),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(results, want);
    // Counted: every probe of them a failure (taken after the list above: three probes each).
    let (_, metrics) = get(admin, "/metrics").await;
    for (name, _) in &hs {
        let series = |result: &str| {
            metrics
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!(
                        "sipsteer_probes_total{{server=\"uk/{name}\",result=\"{result}\"}} "
                    ))
                })
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Three connections accepted: the first two probes have ended.
        assert!(series("down") >= 2.0, "{name}: {metrics}");
        assert_eq!(series("up"), 0.0, "{name}");
    }
    // No leak: once the instance stops, every connection it made is closed.
    s.stop().await;
    let start = Instant::now();
    while hs.iter().any(|(_, h)| h.open.load(Ordering::SeqCst) > 0) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "connections left open: {:?}",
            hs.iter()
                .map(|(n, h)| (*n, h.open.load(Ordering::SeqCst)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn websocket_config_errors() {
    let main = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
"#;
    let zone = r#"zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
regions:
  uk:
    location: [51.5, 0]
    servers:
      a: { address: 192.0.2.1, transports: [ws], ws_path: "no-slash" }
      b: { address: 192.0.2.2, transports: [wss], check: sip-options-wss }
      c: { address: 192.0.2.3, transports: [ws, wss], checks: { ws: sip-options-wss } }
      d: { address: 192.0.2.4, transports: [ws], ws_path: "/a b" }
"#;
    let dir = ConfigDir::new(main, &[("z.yaml", zone)]);
    let root = format!("{}/", dir.dir.path().display());
    let errors: Vec<String> = match sipsteer::config::load(&dir.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    };
    assert_eq!(
        errors,
        [
            "zones/z.yaml:8:59: regions.uk.servers.a.ws_path: ws_path is an absolute path like `/ws`: printable ASCII without spaces or `#`, at most 256 bytes",
            "zones/z.yaml:9:58: regions.uk.servers.b.tls_name: check sip-options-wss needs `tls_name`, the SIP domain its certificate must name",
            "zones/z.yaml:10:69: regions.uk.servers.c.checks.ws: check `sip-options-wss` cannot check transport ws (use sip-options, sip-options-ws, tcp-connect or none)",
            "zones/z.yaml:11:59: regions.uk.servers.d.ws_path: ws_path is an absolute path like `/ws`: printable ASCII without spaces or `#`, at most 256 bytes",
        ]
    );
}
