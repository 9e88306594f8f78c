//! One probe engine for every check: SIP over UDP, SIP over TCP and TCP connects scheduled by
//! the same task, a probe outside the scheduler taking the same UDP path as a scheduled one.
//! Against real servers on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::support::dns::TestServer;
use crate::support::sip::{self, Mode};
use sipsteer::config::Check;
use sipsteer::health::probe::{CodePolicy, Outcome, Target, probe};

/// A UDP SIP server whose 200 OK carries a 20,000-byte header after the transaction headers:
/// one datagram longer than a probe reads.
async fn oversized_udp() -> std::net::SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let ok = sip::reply(&req, 200, "OK", false);
            let pad = format!("X-Pad: {}\r\nContent-Length: 0\r\n\r\n", "p".repeat(20_000));
            let out = ok.replace("Content-Length: 0\r\n\r\n", &pad);
            let _ = sock.send_to(out.as_bytes(), peer).await;
        }
    });
    addr
}

/// A sipsteer whose one region `r` holds a server `sN` per (port, check) pair.
async fn server_of(servers: &[(u16, &str)], health: &str) -> TestServer {
    let main = format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\nhealth: {{ {health} }}\n"
    );
    let mut z = String::from(
        "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\nregions:\n  r:\n    location: [51.5, 0]\n    servers:\n",
    );
    for (i, (port, check)) in servers.iter().enumerate() {
        z.push_str(&format!(
            "      s{i}: {{ address: 127.0.0.1, port: {port}, check: {check} }}\n"
        ));
    }
    z.push_str("services:\n  sip: { regions: [r] }\n");
    TestServer::start(&main, &[("example.com.yaml", &z)]).await
}

/// `/v1/servers` as (last result, observed), in config order.
fn reports(s: &TestServer) -> Vec<(Option<String>, &'static str)> {
    let hub = &s.running.as_ref().expect("running").hub;
    hub.servers()
        .into_iter()
        .map(|r| (r.last_result, r.observed))
        .collect()
}

/// Waits (at most 20 s, a guard against hangs) until the reports are `want`.
async fn until(s: &TestServer, want: &[(&str, &str)]) {
    let start = Instant::now();
    loop {
        let r = reports(s);
        let now: Vec<(&str, &str)> = r
            .iter()
            .map(|(last, o)| (last.as_deref().unwrap_or("-"), *o))
            .collect();
        if now == want {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_oversized_udp_reply_reads_the_same_scheduled_or_one_off() {
    let addr = oversized_udp().await;
    let t = Target::plain(addr, Check::SipUdp);
    let p = probe(&t, Duration::from_secs(2), &CodePolicy::default()).await;
    assert_eq!(
        (p.outcome, p.code, p.detail.as_str()),
        (Outcome::Up, Some(200), "200 OK")
    );
    let s = server_of(
        &[(addr.port(), "sip-options-udp")],
        "interval: 300ms, timeout: 300ms",
    )
    .await;
    until(&s, &[("200 OK", "up")]).await;
    s.stop().await;
}

#[tokio::test]
async fn every_check_type_is_probed_by_the_one_engine() {
    let udp = sip::udp(Mode::Code(200)).await;
    let tcp = sip::tcp(Mode::Code(503)).await;
    let open = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = open.local_addr().expect("addr").port();
    let s = server_of(
        &[
            (udp.addr.port(), "sip-options-udp"),
            (tcp.addr.port(), "sip-options-tcp"),
            (port, "tcp"),
        ],
        "interval: 200ms, timeout: 200ms",
    )
    .await;
    until(
        &s,
        &[
            ("200 OK", "up"),
            ("503 Service Unavailable (retry-after 30)", "full"),
            ("tcp connect ok", "up"),
        ],
    )
    .await;
    let hub = &s.running.as_ref().expect("running").hub;
    assert_eq!(hub.probe_targets(), 3);
    // Each kept being probed at its interval.
    let before = (udp.count(), tcp.count());
    let start = Instant::now();
    while udp.count() < before.0 + 2 || tcp.count() < before.1 + 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not probed again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_tcp_check_is_re_probed_at_the_suspect_cadence_until_down() {
    let r = sip::tcp(Mode::Code(200)).await;
    let health = "interval: 1s, timeout: 800ms, suspect_interval: 200ms, suspect_timeout: 200ms, rise: 1, fall: 3";
    let s = server_of(&[(r.addr.port(), "sip-options-tcp")], health).await;
    until(&s, &[("200 OK", "up")]).await;
    r.set(Mode::Silent);
    // The first failure timed out at the steady timeout; the two that confirmed it were the
    // suspect re-probes, with their own timeout.
    until(&s, &[("timeout after 200ms", "down")]).await;
    assert_eq!(
        s.series("sipsteer_suspect_total{server=\"r/s0\"}"),
        Some(1.0)
    );
    s.stop().await;
}
