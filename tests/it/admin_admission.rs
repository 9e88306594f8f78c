//! Admission of admin connections: one source holds at most its share, so a flood of slow
//! request heads from one address leaves `/healthz` and `/readyz` to everyone else; at the
//! global cap the oldest idle connection gives way to a new one, and a connection with a
//! request being handled never does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::dns::*;
use crate::support::steer::STEER_ZONE;
use sipsteer::admin::{MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE};

const TOKEN: &str = "admin-token-42";
const PER_SOURCE: &str = r#"sipsteer_admin_connections_shed_total{reason="per_source"}"#;
const EVICTED: &str = r#"sipsteer_admin_connections_shed_total{reason="evicted_idle"}"#;
const FULL: &str = r#"sipsteer_admin_connections_shed_total{reason="full"}"#;
/// A request head that never ends.
const SLOW_HEAD: &[u8] = b"GET /v1/status HTTP/1.1\r\nHost: x\r\n";

async fn server() -> TestServer {
    let main = format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\nhealth: {{ check: none }}\nadmin: {{ token: {TOKEN} }}\n"
    );
    TestServer::start(&main, &[("example.com.yaml", STEER_ZONE)]).await
}

fn admin(s: &TestServer) -> SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

/// A connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("sock");
    let src: SocketAddr = format!("{from}:0").parse().expect("addr");
    s.bind(&src.into()).expect("bind client");
    s.connect(&to.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s
}

/// Connections from `from` that each sent [`SLOW_HEAD`].
fn slow_heads(from: &str, to: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut c = connect_from(from, to);
            c.write_all(SLOW_HEAD).expect("write");
            c
        })
        .collect()
}

/// Sends the rest of a request on `c` (or a whole one) and returns the status line and the
/// body, or `None` when the server closed the connection without answering.
fn finish(c: &mut TcpStream, rest: &[u8]) -> Option<(String, String)> {
    let _ = c.write_all(rest);
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// `GET path` from the loopback address `from`, on a new connection.
fn get_from(from: &str, to: SocketAddr, path: &str) -> Option<(String, String)> {
    let mut c = connect_from(from, to);
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    finish(&mut c, req.as_bytes())
}

fn ok(body: &str) -> Option<(String, String)> {
    Some(("HTTP/1.1 200 OK".to_owned(), body.to_owned()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_flood_from_one_source_leaves_the_probes_to_another() {
    let s = server().await;
    let a = admin(&s);
    let probes = blocking(move || {
        let flood = slow_heads("127.0.0.1", a, MAX_CONNECTIONS);
        let probes: Vec<_> = (0..15)
            .map(|_| {
                (
                    get_from("127.0.0.2", a, "/healthz"),
                    get_from("127.0.0.2", a, "/readyz"),
                )
            })
            .collect();
        drop(flood);
        probes
    })
    .await;
    assert_eq!(probes, vec![(ok("ok\n"), ok("ready\n")); 15]);
    assert_eq!(
        s.series(PER_SOURCE),
        Some((MAX_CONNECTIONS - MAX_CONNECTIONS_PER_SOURCE) as f64),
        "the flood's connections past its share were closed at once"
    );
    assert_eq!(s.series(EVICTED), Some(0.0));
    s.stop().await;
}

#[tokio::test]
async fn a_source_over_its_share_is_refused_and_another_source_gets_in() {
    let s = server().await;
    let a = admin(&s);
    let (refused, other, mut held) = blocking(move || {
        let held = slow_heads("127.0.0.1", a, MAX_CONNECTIONS_PER_SOURCE);
        let refused = get_from("127.0.0.1", a, "/healthz");
        let other = get_from("127.0.0.2", a, "/healthz");
        (refused, other, held)
    })
    .await;
    assert_eq!(refused, None, "a fresh connection over the share is closed");
    assert_eq!(other, ok("ok\n"));
    assert_eq!(s.series(PER_SOURCE), Some(1.0));
    assert_eq!(s.series(FULL), Some(0.0));
    // A held connection finishes its request and closes: the source has room again.
    let (done, after) = blocking(move || {
        let done = finish(&mut held[0], b"Connection: close\r\n\r\n").map(|(l, _)| l);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let after = loop {
            let r = get_from("127.0.0.1", a, "/healthz");
            if r.is_some() || std::time::Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(held);
        (done, after)
    })
    .await;
    assert_eq!(done.as_deref(), Some("HTTP/1.1 200 OK"));
    assert_eq!(after, ok("ok\n"));
    s.stop().await;
}

/// Fills every place with slow heads from sources 127.0.0.10 and up, `first` opened first.
fn fill(a: SocketAddr, first: TcpStream) -> Vec<TcpStream> {
    let mut held = vec![first];
    let mut source = 10;
    while held.len() < MAX_CONNECTIONS {
        let n = (MAX_CONNECTIONS - held.len()).min(MAX_CONNECTIONS_PER_SOURCE);
        held.extend(slow_heads(&format!("127.0.0.{source}"), a, n));
        source += 1;
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_oldest_idle_connection_gives_way() {
    let s = server().await;
    let a = admin(&s);
    let (probe, oldest, next) = blocking(move || {
        let mut first = connect_from("127.0.0.9", a);
        first.write_all(SLOW_HEAD).expect("write");
        let mut held = fill(a, first);
        let probe = get_from("127.0.0.2", a, "/healthz");
        // Closed by the server without a word (its header timeout is seconds away).
        let oldest = finish(&mut held[0], b"");
        let next = finish(&mut held[1], b"Connection: close\r\n\r\n").map(|(l, _)| l);
        (probe, oldest, next)
    })
    .await;
    assert_eq!(probe, ok("ok\n"));
    assert_eq!(oldest, None, "the oldest idle connection was closed");
    assert_eq!(next.as_deref(), Some("HTTP/1.1 200 OK"), "the others stay");
    assert_eq!(s.series(EVICTED), Some(1.0));
    assert_eq!(s.series(FULL), Some(0.0));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_a_request_being_handled_is_not_evicted() {
    let s = server().await;
    let a = admin(&s);
    let (probe, busy, next, other) = blocking(move || {
        // The oldest connection has a request in flight: its handler waits for the body.
        let body = br#"{"state":"drain"}"#;
        let mut first = connect_from("127.0.0.9", a);
        let head = format!(
            "PUT /v1/servers/uk/lon1/state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        first.write_all(head.as_bytes()).expect("head");
        // `100 Continue` comes once the handler reads the body: the request is in flight.
        let mut cont = [0u8; 25];
        first.read_exact(&mut cont).expect("100 continue");
        assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
        let mut held = fill(a, first);
        let probe = get_from("127.0.0.2", a, "/healthz");
        let busy = finish(&mut held[0], body).map(|(l, _)| l);
        // The oldest idle one was closed instead; the others stay.
        let next = finish(&mut held[1], b"");
        let other = finish(&mut held[2], b"Connection: close\r\n\r\n").map(|(l, _)| l);
        (probe, busy, next, other)
    })
    .await;
    assert_eq!(probe, ok("ok\n"));
    assert_eq!(
        busy.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "the busy one answered"
    );
    assert_eq!(next, None, "the oldest idle one was closed instead");
    assert_eq!(other.as_deref(), Some("HTTP/1.1 200 OK"));
    assert_eq!(s.series(EVICTED), Some(1.0));
    s.stop().await;
}
