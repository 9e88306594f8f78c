//! Hostile SIP servers on 127.0.0.1: a huge Content-Length, an endless TCP stream and an
//! oversized UDP reply. Each is a failed probe (or, for a valid status line, a parsed one)
//! with bounded memory, and a server probing them keeps answering.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use sipsteer::config::Check;
use sipsteer::health::probe::{CodePolicy, Outcome, Target, probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const TIMEOUT: Duration = Duration::from_millis(1500);

/// A reply to `req` copying its transaction headers, with `extra` headers and `body`.
fn reply(req: &str, status: &str, extra: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in req.split("\r\n").skip(1) {
        let l = line.to_ascii_lowercase();
        if ["via:", "from:", "to:", "call-id:", "cseq:"]
            .iter()
            .any(|h| l.starts_with(h))
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(extra);
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// What a hostile server sends.
#[derive(Clone, Copy)]
enum Hostile {
    /// A final reply whose Content-Length is `usize::MAX` and more.
    HugeLength,
    /// A Content-Length over the bound, with that many bytes following.
    LongBody,
    /// The status line, then header bytes forever.
    EndlessHeaders,
    /// A valid 200 padded with a 20 000-byte header: one datagram bigger than the buffer.
    Oversized,
}

fn answer(h: Hostile, req: &str) -> Vec<u8> {
    match h {
        Hostile::HugeLength => reply(
            req,
            "200 OK",
            "Content-Length: 18446744073709551615999\r\n",
            "",
        )
        .into_bytes(),
        Hostile::LongBody => {
            let body = "x".repeat(100_000);
            reply(req, "200 OK", "Content-Length: 100000\r\n", &body).into_bytes()
        }
        Hostile::EndlessHeaders => b"SIP/2.0 200 OK\r\nX-Pad: ".to_vec(),
        Hostile::Oversized => {
            let pad = format!("X-Pad: {}\r\n", "p".repeat(20_000));
            // The transaction headers come first, the padding after them.
            reply(req, "200 OK", &format!("{pad}Content-Length: 0\r\n"), "").into_bytes()
        }
    }
}

async fn udp_server(h: Hostile) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = sock.send_to(&answer(h, &req), peer).await;
        }
    });
    addr
}

/// A TCP server; with `EndlessHeaders` it keeps writing 4 KiB chunks until the probe hangs up
/// (at most 64 MiB, so a broken probe fails the test instead of eating the machine).
async fn tcp_server(h: Hostile) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let Ok(n) = s.read(&mut buf).await else {
                    return;
                };
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                if s.write_all(&answer(h, &req)).await.is_err() {
                    return;
                }
                if let Hostile::EndlessHeaders = h {
                    let chunk = vec![b'a'; 4096];
                    for _ in 0..16_384 {
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

async fn run(check: Check, addr: SocketAddr) -> (Outcome, Option<u16>, String) {
    let p = probe(&Target::plain(addr, check), TIMEOUT, &CodePolicy::default()).await;
    (p.outcome, p.code, p.detail)
}

fn down(detail: &str) -> (Outcome, Option<u16>, String) {
    (Outcome::Down, None, detail.to_string())
}

#[tokio::test]
async fn huge_content_length_is_a_malformed_reply() {
    let want =
        down("bad response: content-length `18446744073709551615999` exceeds the 16384-byte limit");
    let a = udp_server(Hostile::HugeLength).await;
    assert_eq!(run(Check::SipUdp, a).await, want);
    let a = tcp_server(Hostile::HugeLength).await;
    assert_eq!(run(Check::SipTcp, a).await, want);
    let a = tcp_server(Hostile::LongBody).await;
    assert_eq!(
        run(Check::SipTcp, a).await,
        down("bad response: content-length `100000` exceeds the 16384-byte limit")
    );
}

#[tokio::test]
async fn endless_tcp_stream_is_a_failed_probe() {
    let a = tcp_server(Hostile::EndlessHeaders).await;
    assert_eq!(
        run(Check::SipTcp, a).await,
        down("bad response: headers longer than 16 KiB")
    );
}

#[tokio::test]
async fn oversized_udp_reply_is_read_from_its_first_bytes() {
    let a = udp_server(Hostile::Oversized).await;
    assert_eq!(
        run(Check::SipUdp, a).await,
        (Outcome::Up, Some(200), "200 OK".to_string())
    );
    // Over TCP the same message is too long to take.
    let a = tcp_server(Hostile::Oversized).await;
    assert_eq!(
        run(Check::SipTcp, a).await,
        down("bad response: headers longer than 16 KiB")
    );
}

/// A running server whose only nearby region is probed at hostile servers: it marks that
/// region down, answers from the next one, and keeps answering.
#[tokio::test]
async fn server_keeps_answering_while_probing_hostile_servers() {
    use crate::support::dns::*;
    let endless = tcp_server(Hostile::EndlessHeaders).await;
    let huge = udp_server(Hostile::HugeLength).await;
    let good = crate::support::sip::udp(crate::support::sip::Mode::Code(200)).await;
    let main = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
health: { check: sip-options-udp, interval: 300ms, timeout: 300ms, rise: 1, fall: 1 }
"#;
    let zone = format!(
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
      lon1: {{ address: 127.0.0.1, port: {}, check: sip-options-tcp }}
      lon2: {{ address: 127.0.0.1, port: {} }}
  de:
    location: [50.1, 8.7]
    servers:
      fra1: {{ address: 127.0.0.1, port: {} }}
services:
  sip: {{ regions: [uk, de], fallback: [uk, de], failover: 1 }}
"#,
        endless.port(),
        huge.port(),
        good.addr.port()
    );
    let s = TestServer::start(main, &[("example.com.yaml", &zone)]).await;
    let srv = || async {
        let m = udp(
            s.addr,
            "_sip._udp.sip.example.com.",
            RecordType::SRV,
            &Q::default(),
        )
        .await;
        // The SRV targets' first labels: the servers answered.
        m.answers
            .iter()
            .map(|r| {
                let d = r.data.to_string();
                let target = d.split_whitespace().nth(3).unwrap_or("").to_owned();
                target.split('.').next().unwrap_or("").to_owned()
            })
            .collect::<Vec<_>>()
    };
    let want = vec!["fra1".to_string()];
    let started = std::time::Instant::now();
    while srv().await != want {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "uk never marked down: {:?}",
            srv().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Several more probe rounds against the hostile servers; answers stay the same.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(srv().await, want);
    s.stop().await;
}
