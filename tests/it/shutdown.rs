//! Shutdown: once `Running::shutdown` returns, every socket is closed (open TCP connections
//! read EOF, every listening port can be bound again), a query being read is still answered,
//! a stalled client does not hold shutdown up, probes have stopped and the query log is
//! complete on disk. Also: servers a reload adds on the reload thread are probed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::dns::*;
use crate::support::sip::{self, Mode, Responder};
use hickory_proto::rr::RecordType;
use sipsteer::reload::Trigger;

/// Only guards against hangs: nothing here is expected to take long.
const WAIT: Duration = Duration::from_secs(20);

const MAIN_ADMIN: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }
zones: zones
health: { check: none }
"#;

fn running(s: &TestServer) -> &sipsteer::app::Running {
    s.running.as_ref().expect("running")
}

/// Stops the server, failing (instead of hanging) if shutdown never returns.
async fn stop(s: &mut TestServer) {
    let r = s.running.take().expect("running");
    tokio::time::timeout(WAIT, r.shutdown())
        .await
        .expect("shutdown returns");
}

/// A TCP connection to `addr` with one query answered on it.
fn answered_connection(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    write_frame(
        &mut c,
        &query("web.example.com.", RecordType::A, &Q::default()),
    );
    let reply = parse(&read_frame(&mut c));
    assert_eq!(
        rrs(&reply.answers),
        [
            "web.example.com. 60 A 192.0.2.80",
            "web.example.com. 60 A 192.0.2.81"
        ]
    );
    c
}

fn write_frame(c: &mut TcpStream, packet: &[u8]) {
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    c.write_all(&framed).expect("write");
}

fn read_frame(c: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    c.read_exact(&mut len).expect("read length");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    c.read_exact(&mut buf).expect("read body");
    buf
}

/// The server has closed `c`: a read sees end of file (or a reset), not a timeout.
fn assert_closed(c: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("connection still open after shutdown: {other:?}"),
    }
}

/// Binds TCP and UDP on `addr` as another process would (no SO_REUSEPORT).
fn assert_free(addr: SocketAddr) {
    std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("tcp {addr} still bound: {e}"));
    std::net::UdpSocket::bind(addr).unwrap_or_else(|e| panic!("udp {addr} still bound: {e}"));
}

#[tokio::test]
async fn open_tcp_connections_are_closed_and_every_port_is_free() {
    let mut s = TestServer::start(MAIN_ADMIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let admin = running(&s).admin.expect("admin");
    let dns = s.addr;
    let (mut a, mut b) =
        tokio::task::spawn_blocking(move || (answered_connection(dns), answered_connection(dns)))
            .await
            .expect("connections");
    let mut http = TcpStream::connect(admin).expect("admin connect");
    http.set_read_timeout(Some(WAIT)).expect("timeout");
    stop(&mut s).await;
    assert_closed(&mut a);
    assert_closed(&mut b);
    assert_closed(&mut http);
    assert_free(dns);
    assert_free(admin);
}

/// A connection that has sent a whole query and the first `part` bytes of a second one in one
/// write: once the first reply is read, the server holds the part and is reading the rest.
fn connection_mid_query(addr: SocketAddr, part: usize) -> (TcpStream, Vec<u8>) {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    let frame = |name: &str| {
        let q = query(name, RecordType::A, &Q::default());
        let mut f = (q.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(&q);
        f
    };
    let (first, second) = (frame("web.example.com."), frame("mail.example.com."));
    let mut out = first;
    out.extend_from_slice(&second[..part]);
    c.write_all(&out).expect("write");
    let reply = parse(&read_frame(&mut c));
    assert_eq!(rrs(&reply.answers).len(), 2, "first reply");
    (c, second[part..].to_vec())
}

/// UDP threads block in their receive with no timeout: shutdown must wake each one, busy or
/// idle, and their sockets must all be closed when it returns.
#[tokio::test]
async fn every_udp_thread_ends_whether_it_has_served_or_not() {
    let main = r#"
listen: { dns: ["127.0.0.1:0"] }
zones: zones
health: { check: none }
dns: { udp_workers: 8 }
"#;
    let mut s = TestServer::start(main, &[("example.com.yaml", STATIC_ZONE)]).await;
    let dns = s.addr;
    // One source port reaches one of the eight sockets; the others stay idle.
    let reply = udp(dns, "web.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rrs(&reply.answers).len(), 2);
    stop(&mut s).await;
    assert_free(dns);
}

#[tokio::test]
async fn query_being_read_at_shutdown_is_answered_then_the_connection_closes() {
    let mut s = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let dns = s.addr;
    let (mut c, rest) = tokio::task::spawn_blocking(move || connection_mid_query(dns, 3))
        .await
        .expect("connection");
    let r = s.running.take().expect("running");
    let stopping = tokio::spawn(r.shutdown());
    // Once the listener refuses connections, shutdown has begun.
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        while TcpStream::connect(dns).is_ok() {
            assert!(started.elapsed() < WAIT, "listener still accepting");
            std::thread::sleep(Duration::from_millis(5));
        }
        c.write_all(&rest).expect("write rest");
        let reply = parse(&read_frame(&mut c));
        assert_eq!(rrs(&reply.answers), ["mail.example.com. 300 A 192.0.2.25"]);
        assert_closed(&mut c);
    })
    .await
    .expect("client");
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown returns")
        .expect("join");
    assert_free(dns);
}

#[tokio::test]
async fn stalled_tcp_client_does_not_hold_up_shutdown() {
    let mut s = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let dns = s.addr;
    // The first byte of a second query's length, and nothing more, ever.
    let (mut c, _) = tokio::task::spawn_blocking(move || connection_mid_query(dns, 1))
        .await
        .expect("connection");
    stop(&mut s).await;
    assert_closed(&mut c);
    assert_free(dns);
}

#[tokio::test]
async fn query_log_is_complete_on_disk_when_shutdown_returns() {
    let main = format!("{MAIN}query_log: {{ path: queries.jsonl, sample: 1 }}\n");
    let mut s = TestServer::start(&main, &[("example.com.yaml", STATIC_ZONE)]).await;
    for _ in 0..30 {
        udp(s.addr, "nope.example.com.", RecordType::AAAA, &Q::default()).await;
    }
    // Connections still open at shutdown, each with one query answered on it.
    let dns = s.addr;
    let mut open = tokio::task::spawn_blocking(move || {
        (0..5).map(|_| answered_connection(dns)).collect::<Vec<_>>()
    })
    .await
    .expect("connections");
    stop(&mut s).await;
    let text = std::fs::read_to_string(s.cfg.path("queries.jsonl")).expect("query log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 35, "{text}");
    let udp_lines = lines.iter().filter(|l| l["proto"] == "udp");
    assert!(
        udp_lines
            .clone()
            .all(|l| l["name"] == "nope.example.com." && l["rcode"] == 3)
    );
    assert_eq!(udp_lines.count(), 30);
    let tcp_lines = lines.iter().filter(|l| l["proto"] == "tcp");
    assert!(
        tcp_lines
            .clone()
            .all(|l| l["name"] == "web.example.com." && l["rcode"] == 0)
    );
    assert_eq!(tcp_lines.count(), 5);
    for c in &mut open {
        assert_closed(c);
    }
}

fn health_main(check: &str) -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "off" }}
zones: zones
health: {{ check: {check}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
"#
    )
}

fn health_zone(servers: &[(&str, &Responder)]) -> String {
    let mut z = String::from(
        "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\n\
         records:\n  ns1: { A: 192.0.2.53 }\nregions:\n",
    );
    for (i, (name, r)) in servers.iter().enumerate() {
        z.push_str(&format!(
            "  r{i}:\n    location: [{}, 0]\n    servers:\n      {name}: {{ address: 127.0.0.1, port: {} }}\n",
            10 * i,
            r.addr.port()
        ));
    }
    let regions: Vec<String> = (0..servers.len()).map(|i| format!("r{i}")).collect();
    let regions = regions.join(", ");
    z.push_str(&format!(
        "services:\n  sip: {{ regions: [{regions}], fallback: [{regions}] }}\n"
    ));
    z
}

/// Waits until `r` has been probed at least `n` times.
async fn probed(r: &Responder, n: usize) {
    let start = Instant::now();
    while r.count() < n {
        assert!(
            start.elapsed() < WAIT,
            "probed {} times, want {n}",
            r.count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nothing reaches `r` over a window of four probe intervals after shutdown returned: the
/// count starts once the responder (which runs on the test's runtime) has read what was sent
/// before, and ends once it has read what was sent in the window.
async fn assert_no_more_probes(r: &Responder, what: &str) {
    r.settled().await;
    let after = r.count();
    tokio::time::sleep(Duration::from_millis(800)).await;
    r.settled().await;
    assert_eq!(r.count(), after, "{what}: probed after shutdown");
}

async fn probes_stop_with(check: &str, responder: Responder) {
    let z = health_zone(&[("s1", &responder)]);
    let mut s = TestServer::start(&health_main(check), &[("example.com.yaml", &z)]).await;
    probed(&responder, 3).await;
    stop(&mut s).await;
    assert_no_more_probes(&responder, check).await;
}

#[tokio::test]
async fn no_probe_is_sent_after_shutdown_returns() {
    probes_stop_with("sip-options-udp", sip::udp(Mode::Code(200)).await).await;
    probes_stop_with("sip-options-tcp", sip::tcp(Mode::Code(200)).await).await;
}

#[tokio::test]
async fn server_added_by_a_reload_on_the_reload_thread_is_probed() {
    let first = sip::udp(Mode::Code(200)).await;
    let added = sip::udp(Mode::Code(200)).await;
    let z = health_zone(&[("s1", &first)]);
    let mut s =
        TestServer::start(&health_main("sip-options-udp"), &[("example.com.yaml", &z)]).await;
    probed(&first, 1).await;
    let z = health_zone(&[("s1", &first), ("s2", &added)]);
    std::fs::write(s.cfg.path("zones/example.com.yaml"), z).expect("write zone");
    let outcome = running(&s).reloader.request(Trigger::Api).expect("queued");
    let outcome = tokio::time::timeout(WAIT, outcome)
        .await
        .expect("reload in time")
        .expect("reply");
    assert!(
        matches!(outcome, sipsteer::reload::Outcome::Applied(_)),
        "{outcome:?}"
    );
    probed(&added, 2).await;
    stop(&mut s).await;
    assert_no_more_probes(&added, "after a reload").await;
}
