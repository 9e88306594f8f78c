//! UDP replies leave with Don't Fragment set and an IP ID of 0 while `dns.udp_payload` is at
//! most 1232 (RFC 9715), and with the kernel's default (an IP ID chosen per datagram) once a
//! reload raises it. Reads the replies' IPv4 headers off a raw socket, so it needs root
//! (skipped otherwise).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::support::dns::*;
use hickory_proto::rr::RecordType;

const MAIN: &str = r#"
listen: { dns: ["127.0.0.1:0"] }
zones: zones
health: { check: none }
dns: { udp_workers: 1 }
"#;

const MAIN_LARGE: &str = r#"
listen: { dns: ["127.0.0.1:0"] }
zones: zones
health: { check: none }
dns: { udp_workers: 1, udp_payload: 4096 }
"#;

/// A raw IPv4 socket that sees every UDP datagram delivered on this host, or `None` without
/// the privilege for one.
fn raw_udp() -> Option<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
    if fd < 0 {
        eprintln!("skipped: a raw socket needs root or CAP_NET_RAW");
        return None;
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: a timeval option with its exact length.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "receive timeout on the raw socket");
    Some(fd)
}

/// The IPv4 header fields of a reply: Don't Fragment and the IP ID.
#[derive(Debug, PartialEq)]
struct Ip {
    df: bool,
    id: u16,
}

/// Sends a query from a fresh port to `server` and returns the IPv4 header of the reply, as
/// the raw socket saw it (matched by ports, so other tests' traffic does not count). The raw
/// socket sees every datagram on the host and may drop some when the host is busy, so a query
/// whose reply it missed is asked again from another port.
fn reply_header(raw: &OwnedFd, server: SocketAddr) -> Ip {
    for _ in 0..5 {
        if let Some(ip) = one_reply_header(raw, server) {
            return ip;
        }
    }
    panic!("no reply from {server} seen by the raw socket in five tries");
}

fn one_reply_header(raw: &OwnedFd, server: SocketAddr) -> Option<Ip> {
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = client.local_addr().expect("addr").port();
    let q = query("web.example.com.", RecordType::A, &Q::default());
    client.send_to(&q, server).expect("send");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        // SAFETY: reads at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::recv(raw.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { continue };
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        if n < ihl + 8 {
            continue;
        }
        let udp = &buf[ihl..n];
        let src = u16::from_be_bytes([udp[0], udp[1]]);
        let dst = u16::from_be_bytes([udp[2], udp[3]]);
        if src == server.port() && dst == port {
            return Some(Ip {
                df: buf[6] & 0x40 != 0,
                id: u16::from_be_bytes([buf[4], buf[5]]),
            });
        }
    }
    None
}

#[tokio::test]
async fn replies_carry_dont_fragment_and_no_ip_id_until_the_payload_limit_is_raised() {
    let Some(raw) = raw_udp() else { return };
    let s = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let server = s.addr;
    let (raw, small) = tokio::task::spawn_blocking(move || {
        let h: Vec<Ip> = (0..3).map(|_| reply_header(&raw, server)).collect();
        (raw, h)
    })
    .await
    .expect("join");
    assert_eq!(
        small,
        [
            Ip { df: true, id: 0 },
            Ip { df: true, id: 0 },
            Ip { df: true, id: 0 }
        ]
    );

    std::fs::write(s.cfg.main(), MAIN_LARGE).expect("write");
    let out = s.reload().await;
    assert!(
        matches!(out, sipsteer::reload::Outcome::Applied(_)),
        "{out:?}"
    );
    let large = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| reply_header(&raw, server))
            .collect::<Vec<Ip>>()
    })
    .await
    .expect("join");
    // The kernel's default sets DF on what fits the path, but picks an IP ID per datagram,
    // so it may fragment later: three IDs of 0 in a row would be a 1 in 2^48 chance.
    assert!(
        large.iter().any(|h| h.id != 0),
        "ip ids after the reload: {large:?}"
    );
    s.stop().await;
}
