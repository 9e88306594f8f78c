//! The admin API under hostile clients: connections over the cap make idle ones give way, slow
//! request heads and idle keep-alive connections are closed by the server, DNS over TCP keeps
//! answering, and a changing request without the right token is refused before its body is
//! read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::dns::*;
use crate::support::http::get;
use crate::support::steer::STEER_ZONE;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const TOKEN: &str = "admin-token-42";

async fn server(token: bool) -> TestServer {
    let admin = if token {
        format!("admin: {{ token: {TOKEN} }}\n")
    } else {
        String::new()
    };
    let main = format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\nhealth: {{ check: none }}\n{admin}"
    );
    TestServer::start(&main, &[("example.com.yaml", STEER_ZONE)]).await
}

fn admin(s: &TestServer) -> SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    s
}

/// A connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("sock");
    let src: SocketAddr = format!("{from}:0").parse().expect("addr");
    s.bind(&src.into()).expect("bind client");
    s.connect(&to.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    s
}

/// Reads until the server closes the connection (EOF or reset) and returns what came.
fn until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(out),
            Err(_) => return None,
        }
    }
}

/// The status line of what the server sent first.
fn status_line(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n") && buf.len() < 200 {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_over_the_cap_do_not_keep_the_api_or_dns_down() {
    let s = server(false).await;
    let (a, dns) = (admin(&s), s.addr);
    let over = sipsteer::admin::MAX_CONNECTIONS + 22;
    let share = sipsteer::admin::MAX_CONNECTIONS_PER_SOURCE;
    let slow: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..over)
            .map(|i| {
                // Sources 127.0.0.10 and up, each within its share.
                let mut c = connect_from(&format!("127.0.0.{}", 10 + i / share), a);
                c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .expect("write");
                c
            })
            .collect()
    })
    .await
    .expect("join");
    // DNS over TCP answers while the admin port is flooded.
    let m = tcp(dns, "ns1.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    // Every slow connection is closed by the server: at once over the cap, else at the
    // header timeout.
    let closed = tokio::task::spawn_blocking(move || {
        slow.into_iter()
            .map(|mut c| until_closed(&mut c).is_some())
            .filter(|c| *c)
            .count()
    })
    .await
    .expect("join");
    assert_eq!(closed, over);
    assert_eq!(
        s.series(r#"sipsteer_admin_connections_shed_total{reason="evicted_idle"}"#),
        Some(22.0),
        "each connection over the cap closed an idle one"
    );
    assert_eq!(
        s.series(r#"sipsteer_admin_connections_shed_total{reason="per_source"}"#),
        Some(0.0)
    );
    let (code, body) = get(a, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    s.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = server(false).await;
    let a = admin(&s);
    let (first, rest) = tokio::task::spawn_blocking(move || {
        let mut c = connect(a);
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let first = status_line(&mut c);
        let started = Instant::now();
        let rest = until_closed(&mut c).map(|_| started.elapsed());
        (first, rest)
    })
    .await
    .expect("join");
    assert_eq!(first, "HTTP/1.1 200 OK");
    assert!(rest.is_some(), "the server closed the idle connection");
    s.stop().await;
}

/// Sends the head of a changing request and part of a large body; returns the status line.
fn refused_before_body(a: SocketAddr, token: Option<&str>, chunked: bool) -> String {
    refused_after(a, token, chunked, 1)
}

/// Like [`refused_before_body`], sending `kib` KiB of a body that never completes.
fn refused_after(a: SocketAddr, token: Option<&str>, chunked: bool, kib: usize) -> String {
    let mut c = connect(a);
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_owned()
    } else {
        "Content-Length: 1000000000\r\n".to_owned()
    };
    let head = format!(
        "PUT /v1/servers/uk/lon1/state HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}{framing}\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    let piece = if chunked {
        b"400\r\n"
            .iter()
            .chain([b' '; 1024].iter())
            .chain(b"\r\n")
            .copied()
            .collect()
    } else {
        vec![b' '; 1024]
    };
    for _ in 0..kib {
        // The server may answer and close as soon as the bound is passed.
        if c.write_all(&piece).is_err() {
            break;
        }
    }
    // The body never completes: only an answer given before reading it can arrive.
    status_line(&mut c)
}

#[tokio::test]
async fn a_changing_request_without_the_token_is_refused_before_its_body() {
    let s = server(true).await;
    let a = admin(&s);
    let lines = tokio::task::spawn_blocking(move || {
        [
            refused_before_body(a, None, false),
            refused_before_body(a, Some("wrong-token-99"), false),
            refused_before_body(a, Some("wrong-token-99"), true),
        ]
    })
    .await
    .expect("join");
    for l in lines {
        assert_eq!(l, "HTTP/1.1 401 Unauthorized");
    }
    // With the token, a body over the bound is refused without being read either.
    let line = tokio::task::spawn_blocking(move || refused_before_body(a, Some(TOKEN), false))
        .await
        .expect("join");
    assert_eq!(line, "HTTP/1.1 413 Payload Too Large");
    // A chunked body is cut off once it passes the bound.
    let line = tokio::task::spawn_blocking(move || refused_after(a, Some(TOKEN), true, 70))
        .await
        .expect("join");
    assert_eq!(line, "HTTP/1.1 413 Payload Too Large");
    s.stop().await;

    let s = server(false).await;
    let a = admin(&s);
    let line = tokio::task::spawn_blocking(move || refused_before_body(a, Some(TOKEN), true))
        .await
        .expect("join");
    assert_eq!(line, "HTTP/1.1 403 Forbidden");
    s.stop().await;
}
