//! DNS over TCP under hostile clients: a connection flood does not lock out a normal query,
//! empty, junk and slow frames close their connection, a source over its share is shed while
//! another source is served, and every shed is counted in the metrics.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::dns::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ZONE: &str = r#"
zone: example.com
soa: { primary: ns1, contact: hostmaster@example.com, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  web: { A: 192.0.2.80 }
"#;

fn main_cfg(dns: &str) -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"off\" }}\nzones: zones\nhealth: {{ check: none }}\ndns: {{ {dns} }}\n"
    )
}

const EVICTED: &str = r#"sipsteer_tcp_shed_total{reason="evicted_idle"}"#;
const FULL: &str = r#"sipsteer_tcp_shed_total{reason="full"}"#;
const PER_SOURCE: &str = r#"sipsteer_tcp_shed_total{reason="per_source"}"#;
const EMPTY: &str = r#"sipsteer_tcp_bad_frames_total{reason="empty_frame"}"#;
const NOT_A_QUERY: &str = r#"sipsteer_tcp_bad_frames_total{reason="not_a_query"}"#;
const SLOW: &str = r#"sipsteer_tcp_bad_frames_total{reason="slow_frame"}"#;

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("sock");
    let src: SocketAddr = format!("{from}:0").parse().expect("addr");
    s.bind(&src.into()).expect("bind client");
    s.connect(&to.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s
}

/// Sends one framed query and returns the reply's rcode.
fn ask(s: &mut TcpStream) -> std::io::Result<ResponseCode> {
    let q = query("web.example.com.", RecordType::A, &Q::default());
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)?;
    let m = parse(&buf);
    assert_eq!(m.answers.len(), 1);
    Ok(rcode(&m))
}

/// True when the server closed `s` (EOF or reset) before the read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("join")
}

/// One flooding client: connects again whenever the server closes it, until `stop`; sends a
/// zero-length frame every second, or nothing. At most 40 connections.
async fn flooder(addr: SocketAddr, empty_frames: bool, stop: Arc<AtomicBool>) {
    for _ in 0..40 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut b = [0u8; 16];
        while !stop.load(Ordering::Relaxed) {
            if empty_frames && s.write_all(&[0, 0]).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_answered_during_a_connection_flood() {
    let main = main_cfg("tcp_max_connections: 50, tcp_max_connections_per_source: 1000");
    let s = TestServer::start(&main, &[("example.com.yaml", ZONE)]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for i in 0..120 {
        flood.push(tokio::spawn(flooder(s.addr, i % 2 == 0, stop.clone())));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let addr = s.addr;
    for _ in 0..3 {
        let r = blocking(move || ask(&mut connect_from("127.0.0.1", addr))).await;
        assert_eq!(r.expect("answered during the flood"), ResponseCode::NoError);
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = tokio::time::timeout(Duration::from_secs(5), f).await;
    }
    assert!(
        s.series(EVICTED).is_some_and(|v| v > 0.0),
        "idle connections were evicted"
    );
    assert!(
        s.series(EMPTY).is_some_and(|v| v > 0.0),
        "empty frames were counted"
    );
    s.stop().await;
}

#[tokio::test]
async fn empty_and_junk_frames_close_the_connection() {
    let s = TestServer::start(
        &main_cfg("tcp_idle_timeout: 60s"),
        &[("example.com.yaml", ZONE)],
    )
    .await;
    let addr = s.addr;
    let closed = blocking(move || {
        let mut c = connect_from("127.0.0.1", addr);
        assert_eq!(ask(&mut c).expect("first query"), ResponseCode::NoError);
        c.write_all(&[0, 0]).expect("write");
        closed_by_server(&mut c)
    })
    .await;
    assert!(closed, "a zero-length frame closes the connection");
    // A frame with the response bit set is not a query: closed without a reply.
    let closed = blocking(move || {
        let mut c = connect_from("127.0.0.1", addr);
        let mut junk = vec![0, 14, 0xAB, 0xCD, 0x80];
        junk.extend_from_slice(&[0x55; 11]);
        c.write_all(&junk).expect("write");
        closed_by_server(&mut c)
    })
    .await;
    assert!(closed, "a response-shaped frame closes the connection");
    // A header with no question is answered FORMERR, then closed.
    let (reply, closed) = blocking(move || {
        let mut c = connect_from("127.0.0.1", addr);
        let mut frame = vec![0, 12, 0x12, 0x34];
        frame.extend_from_slice(&[0; 10]);
        c.write_all(&frame).expect("write");
        let mut reply = [0u8; 14];
        c.read_exact(&mut reply).expect("formerr reply");
        (reply, closed_by_server(&mut c))
    })
    .await;
    assert_eq!(&reply[..4], &[0, 12, 0x12, 0x34]);
    assert_eq!(reply[5] & 0x0F, 1, "rcode FORMERR");
    assert!(closed, "a malformed query closes the connection");
    assert_eq!(s.series(EMPTY), Some(1.0), "one empty frame");
    assert_eq!(
        s.series(NOT_A_QUERY),
        Some(2.0),
        "the response-shaped frame and the FORMERR one"
    );
    assert_eq!(s.series(SLOW), Some(0.0));
    s.stop().await;
}

#[tokio::test]
async fn a_frame_that_never_completes_is_closed_and_busy_slots_shed_new_connections() {
    let main = main_cfg("tcp_idle_timeout: 60s, tcp_max_connections: 3");
    let s = TestServer::start(&main, &[("example.com.yaml", ZONE)]).await;
    let addr = s.addr;
    let (all_closed, extra_closed) = blocking(move || {
        // Three connections each send the first byte of a frame, and no more: busy, not idle.
        let mut busy: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.1", addr)).collect();
        for c in &mut busy {
            c.write_all(&[0]).expect("write");
        }
        std::thread::sleep(Duration::from_millis(1000));
        let mut extra = connect_from("127.0.0.1", addr);
        let extra_closed = closed_by_server(&mut extra);
        // The frame timeout (much shorter than the idle timeout) closes the busy ones.
        (busy.iter_mut().all(closed_by_server), extra_closed)
    })
    .await;
    assert!(
        extra_closed,
        "a new connection is shed when every slot is busy"
    );
    assert!(
        all_closed,
        "an unfinished frame is closed by the frame timeout"
    );
    assert_eq!(s.series(FULL), Some(1.0), "the one connection over the cap");
    assert_eq!(s.series(SLOW), Some(3.0), "the three unfinished frames");
    assert_eq!(
        s.series(EVICTED),
        Some(0.0),
        "busy connections are never evicted"
    );
    let r = blocking(move || ask(&mut connect_from("127.0.0.1", addr))).await;
    assert_eq!(
        r.expect("answered once the slots are free"),
        ResponseCode::NoError
    );
    s.stop().await;
}

#[tokio::test]
async fn a_source_over_its_share_is_shed_and_another_source_is_served() {
    let main = main_cfg("tcp_max_connections_per_source: 2");
    let s = TestServer::start(&main, &[("example.com.yaml", ZONE)]).await;
    let addr = s.addr;
    blocking(move || {
        let mut held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.1", addr)).collect();
        for c in &mut held {
            assert_eq!(ask(c).expect("within the share"), ResponseCode::NoError);
        }
        let mut third = connect_from("127.0.0.1", addr);
        assert!(closed_by_server(&mut third), "the third connection is shed");
        let mut other = connect_from("127.0.0.2", addr);
        assert_eq!(
            ask(&mut other).expect("another source"),
            ResponseCode::NoError
        );
        // The held connections still work.
        assert_eq!(ask(&mut held[0]).expect("held"), ResponseCode::NoError);
    })
    .await;
    assert_eq!(
        s.series(PER_SOURCE),
        Some(1.0),
        "the third connection of one source"
    );
    assert_eq!(s.series(FULL), Some(0.0));
    s.stop().await;
}

#[test]
fn per_source_limit_out_of_range_is_a_config_error() {
    let main = main_cfg("tcp_max_connections_per_source: 0");
    let dir = ConfigDir::new(&main, &[("example.com.yaml", ZONE)]);
    let root = format!("{}/", dir.dir.path().display());
    let errs: Vec<String> = match sipsteer::config::load(&dir.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    };
    assert_eq!(
        errs,
        ["sipsteer.yaml:4:40: dns.tcp_max_connections_per_source: must be between 1 and 100000"]
    );
}
