//! DNS over TLS and DNS over HTTPS under hostile clients, over real sockets: each transport
//! admits its connections through a table of its own (cap, share per source, eviction of an
//! idle or handshaking connection for a new one), DNS over TLS frames exactly as TCP does, and
//! replies are TCP's bytes with block padding (DoH: `Cache-Control` from their TTLs).

use std::net::SocketAddr;

use crate::encrypted::{MAIN_TLS, TestCa, WAIT, dot, https_addr, tls_addr};
use crate::support::dns::*;
use crate::support::steer::{GEO_CSV, STEER_ZONE};
use base64::Engine;
use hickory_proto::rr::RecordType;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

const TLS_EVICTED: &str =
    r#"sipsteer_dns_encrypted_shed_total{transport="tls",reason="evicted_idle"}"#;
const TLS_FULL: &str = r#"sipsteer_dns_encrypted_shed_total{transport="tls",reason="full"}"#;
const TLS_PER_SOURCE: &str =
    r#"sipsteer_dns_encrypted_shed_total{transport="tls",reason="per_source"}"#;
const TLS_EMPTY: &str =
    r#"sipsteer_dns_encrypted_bad_frames_total{transport="tls",reason="empty_frame"}"#;
const HTTPS_EVICTED: &str =
    r#"sipsteer_dns_encrypted_shed_total{transport="https",reason="evicted_idle"}"#;
const HTTPS_PER_SOURCE: &str =
    r#"sipsteer_dns_encrypted_shed_total{transport="https",reason="per_source"}"#;
const TCP_SHED: [&str; 3] = [
    r#"sipsteer_tcp_shed_total{reason="evicted_idle"}"#,
    r#"sipsteer_tcp_shed_total{reason="full"}"#,
    r#"sipsteer_tcp_shed_total{reason="per_source"}"#,
];

/// A server with DoT and DoH and the given `dns:` settings.
async fn start(ca: &TestCa, dns: &str) -> TestServer {
    let main = MAIN_TLS.replace("health:", &format!("dns: {{ {dns} }}\nhealth:"));
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    let (cert, key, _) = ca.leaf(1);
    std::fs::write(cfg.path("cert.pem"), cert).expect("cert");
    std::fs::write(cfg.path("key.pem"), key).expect("key");
    TestServer::start_in(cfg).await
}

/// A TCP connection to `to` from the loopback address `from`.
async fn tcp_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind client");
    s.connect(to).await.expect("connect")
}

/// A DoT (or, with `h2`, DoH) connection from `from`; `None` when the handshake fails.
async fn tls_from(
    ca: &TestCa,
    alpn: &[u8],
    from: &str,
    to: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let tcp = tcp_from(from, to).await;
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(WAIT, ca.connector(alpn).connect(name, tcp))
        .await
        .expect("handshake ends in time")
        .ok()
}

fn framed(packet: &[u8]) -> Vec<u8> {
    let mut f = (packet.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(packet);
    f
}

async fn read_reply<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    tokio::time::timeout(WAIT, s.read_exact(&mut len))
        .await
        .map_err(|_| std::io::Error::other("no reply in time"))??;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// True when the server closes `s` (EOF, reset or a TLS alert) before [`WAIT`].
async fn closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut b)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

fn a_query() -> Vec<u8> {
    query("ns1.example.com.", RecordType::A, &Q::default())
}

fn assert_ns1(reply: &[u8]) {
    assert_eq!(
        rrs(&parse(reply).answers),
        ["ns1.example.com. 300 A 192.0.2.53"]
    );
}

/// Sends a query and the first octet of the next frame in one write, and reads the reply:
/// once it arrives the server holds that octet, so the connection is busy (not evictable).
async fn ask_and_stay_busy<S>(s: &mut S, packet: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut bytes = framed(packet);
    bytes.push(0);
    s.write_all(&bytes).await.expect("write");
    s.flush().await.expect("flush");
    read_reply(s).await.expect("reply")
}

/// Sends the rest of the frame [`ask_and_stay_busy`] began, and reads its reply.
async fn finish_frame<S>(s: &mut S, packet: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(&framed(packet)[1..]).await.expect("write");
    s.flush().await.expect("flush");
    read_reply(s).await.expect("reply")
}

#[tokio::test]
async fn dot_handshaking_and_idle_connections_are_evicted_for_new_ones() {
    let ca = TestCa::new();
    let s = start(&ca, "tcp_max_connections: 2, tcp_idle_timeout: 60s").await;
    let addr = tls_addr(&s);
    let q = a_query();
    // One connection that never starts its handshake, one busy after its first answer.
    let mut silent = tcp_from("127.0.0.1", addr).await;
    let mut asked = tls_from(&ca, b"dot", "127.0.0.1", addr)
        .await
        .expect("second handshake");
    assert_ns1(&ask_and_stay_busy(&mut asked, &q).await);
    // A third client is served: the handshaking connection makes room.
    let mut third = tls_from(&ca, b"dot", "127.0.0.2", addr)
        .await
        .expect("third handshake");
    assert_ns1(&ask_and_stay_busy(&mut third, &q).await);
    assert!(closed(&mut silent).await, "the handshaking one was closed");
    // The second finishes its query and goes idle: a fourth client takes its place.
    assert_ns1(&finish_frame(&mut asked, &q).await);
    let (reply, _) = dot(&ca, addr, &q).await;
    assert_ns1(&reply);
    assert!(closed(&mut asked).await, "the idle one was closed");
    assert_ns1(&finish_frame(&mut third, &q).await);
    assert_eq!(s.series(TLS_EVICTED), Some(2.0));
    assert_eq!(s.series(TLS_FULL), Some(0.0));
    for series in TCP_SHED {
        assert_eq!(
            s.series(series),
            Some(0.0),
            "plain TCP's table is another one"
        );
    }
    s.stop().await;
}

/// The first flight of a TLS client offering ALPN `dot`, as bytes.
fn client_hello(ca: &TestCa) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.root()).expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"dot".to_vec()];
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(c), name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("client hello");
    hello
}

#[tokio::test]
async fn dot_connections_that_never_spoke_are_evicted_before_a_handshake_under_way() {
    let ca = TestCa::new();
    let s = start(&ca, "tcp_max_connections: 2, tcp_idle_timeout: 60s").await;
    let addr = tls_addr(&s);
    // A handshake under way: the ClientHello sent and the server's first flight read, then
    // nothing more (the server waits for the client's Finished).
    let mut under_way = tcp_from("127.0.0.1", addr).await;
    under_way
        .write_all(&client_hello(&ca))
        .await
        .expect("hello");
    let mut first = [0u8; 5];
    tokio::time::timeout(WAIT, under_way.read_exact(&mut first))
        .await
        .expect("server hello in time")
        .expect("server hello");
    assert_eq!(first[0], 0x16, "a handshake record");
    // A newer connection that sends nothing.
    let mut silent = tcp_from("127.0.0.1", addr).await;
    // A new client is served, and the silent one, though newer, makes room.
    let (reply, _) = dot(&ca, addr, &a_query()).await;
    assert_ns1(&reply);
    assert!(
        closed(&mut silent).await,
        "the silent connection was closed"
    );
    assert_eq!(s.series(TLS_EVICTED), Some(1.0), "and only it");
    s.stop().await;
}

#[tokio::test]
async fn dot_over_the_share_of_a_source_or_with_every_place_busy_is_shed() {
    let ca = TestCa::new();
    let dns = "tcp_max_connections: 3, tcp_max_connections_per_source: 2, tcp_idle_timeout: 60s";
    let s = start(&ca, dns).await;
    let addr = tls_addr(&s);
    let q = a_query();
    // Two connections of one source, each busy with the first octet of a frame.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut c = tls_from(&ca, b"dot", "127.0.0.1", addr)
            .await
            .expect("within the share");
        assert_ns1(&ask_and_stay_busy(&mut c, &q).await);
        busy.push(c);
    }
    // Its third is shed: the handshake fails, or the stream closes at once.
    if let Some(mut third) = tls_from(&ca, b"dot", "127.0.0.1", addr).await {
        assert!(closed(&mut third).await, "a third connection of one source");
    }
    // Another source takes the last place, and gets busy too.
    let mut other = tls_from(&ca, b"dot", "127.0.0.2", addr)
        .await
        .expect("another source");
    assert_ns1(&ask_and_stay_busy(&mut other, &q).await);
    busy.push(other);
    // Every place is busy: a new connection is closed, none of the busy ones is.
    if let Some(mut fourth) = tls_from(&ca, b"dot", "127.0.0.3", addr).await {
        assert!(closed(&mut fourth).await, "no place for a fourth");
    }
    assert_eq!(s.series(TLS_PER_SOURCE), Some(1.0));
    assert_eq!(s.series(TLS_FULL), Some(1.0));
    assert_eq!(
        s.series(TLS_EVICTED),
        Some(0.0),
        "busy connections are never evicted"
    );
    // The busy ones finish their frames and are answered.
    for c in &mut busy {
        assert_ns1(&finish_frame(c, &q).await);
    }
    s.stop().await;
}

#[tokio::test]
async fn dot_frames_as_tcp_does_and_replies_are_tcp_bytes_padded() {
    let ca = TestCa::new();
    let s = start(&ca, "tcp_idle_timeout: 60s").await;
    let addr = tls_addr(&s);
    let queries = [
        query(
            "_sip._udp.sip.example.com.",
            RecordType::SRV,
            &Q {
                ecs: Some(("81.2.69.0".parse().expect("ip"), 24)),
                ..Q::default()
            },
        ),
        query(
            "ns1.example.com.",
            RecordType::A,
            &Q {
                edns: Some(1232),
                ..Q::default()
            },
        ),
        a_query(),
    ];
    // Three queries pipelined in one write, answered in order.
    let mut c = tls_from(&ca, b"dot", "127.0.0.1", addr)
        .await
        .expect("handshake");
    let all: Vec<u8> = queries.iter().flat_map(|q| framed(q)).collect();
    c.write_all(&all).await.expect("write");
    for q in &queries {
        let reply = read_reply(&mut c).await.expect("reply");
        let (p, dns) = (q.clone(), s.addr);
        let tcp = tokio::task::spawn_blocking(move || tcp_raw(dns, &p))
            .await
            .expect("join");
        if parse(q).edns.is_none() {
            assert_eq!(reply, tcp, "no EDNS, no padding: the same bytes");
            continue;
        }
        // The same bytes, but for the OPT record's RDLENGTH, then the padding option.
        assert_eq!(reply.len() % 468, 0, "whole 468-octet blocks");
        let differ = tcp.iter().zip(&reply).filter(|(a, b)| a != b).count();
        assert!(differ <= 2, "{differ} octets differ besides the padding");
        assert_eq!(&reply[tcp.len()..tcp.len() + 2], &[0, 12], "padding option");
        let pad = usize::from(u16::from_be_bytes([
            reply[tcp.len() + 2],
            reply[tcp.len() + 3],
        ]));
        assert_eq!(tcp.len() + 4 + pad, reply.len());
        assert!(reply[tcp.len() + 4..].iter().all(|b| *b == 0));
    }
    // A zero-length frame closes the connection and is counted for DoT alone.
    c.write_all(&[0, 0]).await.expect("write");
    assert!(closed(&mut c).await, "a zero-length frame closes it");
    assert_eq!(s.series(TLS_EMPTY), Some(1.0));
    assert_eq!(
        s.series(r#"sipsteer_tcp_bad_frames_total{reason="empty_frame"}"#),
        Some(0.0)
    );
    assert_eq!(
        s.series(r#"sipsteer_dns_encrypted_queries_total{transport="tls"}"#),
        Some(3.0)
    );
    s.stop().await;
}

/// An HTTP/2 client on a DoH connection from `from`.
async fn h2_from(ca: &TestCa, from: &str, to: SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tls = tls_from(ca, b"h2", from, to).await.expect("doh handshake");
    let (client, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(conn);
    client
}

/// One DoH GET on `client`: the status, the Cache-Control header and the body.
async fn get(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    packet: &[u8],
) -> Result<(u16, String, Vec<u8>), h2::Error> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(packet);
    let req = http::Request::get(format!("https://localhost/dns-query?dns={b64}"))
        .body(())
        .expect("request");
    let (resp, _) = client.clone().ready().await?.send_request(req, true)?;
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .map_err(|_| h2::Error::from(h2::Reason::CANCEL))??;
    let cache = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok((status, cache, out))
}

#[tokio::test]
async fn idle_doh_connections_from_one_source_leave_room_for_another() {
    let ca = TestCa::new();
    let s = start(&ca, "tcp_max_connections: 64, tcp_idle_timeout: 60s").await;
    let addr = https_addr(&s);
    // 200 connections from one source that never start a handshake.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tcp_from("127.0.0.1", addr).await);
    }
    // Eight real queries from another source, each on a new connection, are all answered.
    for i in 0..8 {
        let mut c = h2_from(&ca, "127.0.0.2", addr).await;
        let (status, _, body) = get(&mut c, &a_query()).await.expect("answered");
        assert_eq!(status, 200, "query {i}");
        assert_ns1(&body);
    }
    // The source's share (32) was admitted, the other 168 closed at once.
    assert_eq!(s.series(HTTPS_PER_SOURCE), Some(168.0));
    assert_eq!(s.series(HTTPS_EVICTED), Some(0.0));
    drop(idle);
    s.stop().await;
}

#[tokio::test]
async fn an_idle_doh_connection_is_evicted_for_a_new_one() {
    let ca = TestCa::new();
    let s = start(&ca, "tcp_max_connections: 2, tcp_idle_timeout: 60s").await;
    let addr = https_addr(&s);
    let mut first = h2_from(&ca, "127.0.0.1", addr).await;
    let mut second = h2_from(&ca, "127.0.0.1", addr).await;
    let with_edns = query(
        "ns1.example.com.",
        RecordType::A,
        &Q {
            edns: Some(1232),
            ..Q::default()
        },
    );
    for c in [&mut first, &mut second] {
        let (status, cache, body) = get(c, &with_edns).await.expect("answered");
        assert_eq!((status, cache.as_str()), (200, "max-age=300"));
        assert_ns1(&body);
        assert_eq!(body.len() % 468, 0, "padded");
    }
    let mut third = h2_from(&ca, "127.0.0.3", addr).await;
    let nx = query("nothere.example.com.", RecordType::A, &Q::default());
    let (status, cache, body) = get(&mut third, &nx).await.expect("third answered");
    // NXDOMAIN: cacheable for the SOA's TTL (the zone's minimum).
    assert_eq!(status, 200);
    assert_eq!(
        rcode(&parse(&body)),
        hickory_proto::op::ResponseCode::NXDomain
    );
    let soa_ttl = parse(&body).authorities[0].ttl;
    assert_eq!(cache, format!("max-age={soa_ttl}"));
    // The oldest idle connection was closed for it; the second still answers.
    assert!(get(&mut first, &a_query()).await.is_err(), "first closed");
    assert_eq!(get(&mut second, &a_query()).await.expect("second").0, 200);
    assert_eq!(s.series(HTTPS_EVICTED), Some(1.0));
    s.stop().await;
}

#[tokio::test]
async fn doh_answers_many_requests_in_flight_on_one_connection() {
    let ca = TestCa::new();
    let s = start(&ca, "tcp_idle_timeout: 60s").await;
    let mut c = h2_from(&ca, "127.0.0.1", https_addr(&s)).await;
    // The first request waits for the server's settings (32 streams at once); the client
    // then holds the rest back until a stream is free.
    assert_eq!(get(&mut c, &a_query()).await.expect("first").0, 200);
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let mut c = c.clone();
        all.spawn(async move { get(&mut c, &a_query()).await.expect("answered") });
    }
    while let Some(r) = all.join_next().await {
        let (status, _, body) = r.expect("join");
        assert_eq!(status, 200);
        assert_ns1(&body);
    }
    s.stop().await;
}
