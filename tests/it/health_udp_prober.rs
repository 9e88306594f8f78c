//! SIP OPTIONS over UDP through the monitor's shared sockets (one per family, a transaction
//! table): the same answers as a probe with a socket of its own, for many targets at once,
//! against real SIP responders on 127.0.0.1.

use std::time::Duration;

use crate::support::sip::{self, Mode};
use sipsteer::config::Check;
use sipsteer::health::probe::{CodePolicy, Outcome, ProbeResult, Target, probe_with};
use sipsteer::health::udp_prober::UdpProber;

const TIMEOUT: Duration = Duration::from_millis(1200);

async fn run(u: &UdpProber, addr: std::net::SocketAddr) -> ProbeResult {
    let t = Target {
        addr,
        check: Check::SipUdp,
    };
    probe_with(&t, TIMEOUT, &CodePolicy::default(), Some(u)).await
}

#[tokio::test]
async fn every_reply_kind_at_once_through_one_socket() {
    let cases = sip::UDP_CASES;
    let u = UdpProber::default();
    let mut responders = Vec::new();
    for (mode, ..) in cases {
        responders.push(sip::udp(*mode).await);
    }
    let probes = responders.iter().map(|r| run(&u, r.addr));
    let results = futures_join(probes).await;
    for ((mode, outcome, code, detail), p) in cases.iter().zip(results) {
        assert_eq!(
            (p.outcome, p.code, p.detail.as_str()),
            (*outcome, *code, *detail),
            "{mode:?}"
        );
    }
}

/// Runs the futures concurrently on this task, in order.
async fn futures_join<F: std::future::Future<Output = ProbeResult>>(
    fs: impl Iterator<Item = F>,
) -> Vec<ProbeResult> {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<ProbeResult>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => out[i] = Some(r),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test]
async fn retransmits_from_t1_and_reuses_the_socket() {
    let u = UdpProber::default();
    let silent = sip::udp(Mode::Silent).await;
    let p = run(&u, silent.addr).await;
    assert_eq!(p.outcome, Outcome::Down);
    // Sent at 0 and 500 ms (T1); 1500 ms would be next: two within 1.2 s.
    assert_eq!(silent.count(), 2);
    let ok = sip::udp(Mode::Code(200)).await;
    for _ in 0..3 {
        assert_eq!(run(&u, ok.addr).await.detail, "200 OK");
    }
    assert_eq!(ok.count(), 3);
}

#[tokio::test]
async fn a_refused_port_fails_at_once_and_others_still_answer() {
    let u = UdpProber::default();
    let ok = sip::udp(Mode::Code(200)).await;
    let refused = sip::refused();
    let p = run(&u, refused).await;
    assert_eq!(
        (p.outcome, p.detail.as_str()),
        (Outcome::Down, "connection refused")
    );
    assert_eq!(run(&u, ok.addr).await.detail, "200 OK");
}

/// The round trip runs from the first send to the reply's arrival, however late in the
/// common tick the reply is read: never less than the responder's delay, never more than the
/// probe took.
#[tokio::test]
async fn round_trip_spans_send_to_arrival() {
    let delay = Duration::from_millis(200);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let addr = sock.local_addr().expect("addr");
    let responder = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65535];
        let (n, peer) = sock.recv_from(&mut buf).expect("request");
        std::thread::sleep(delay);
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        let _ = sock.send_to(sip::reply(&req, 200, "OK", false).as_bytes(), peer);
    });
    let u = UdpProber::default();
    let t = Target {
        addr,
        check: Check::SipUdp,
    };
    let started = std::time::Instant::now();
    let p = probe_with(&t, Duration::from_secs(5), &CodePolicy::default(), Some(&u)).await;
    let took = started.elapsed();
    responder.join().expect("responder");
    assert_eq!((p.outcome, p.detail.as_str()), (Outcome::Up, "200 OK"));
    assert!(
        p.rtt >= delay,
        "rtt {:?} under the responder's delay",
        p.rtt
    );
    assert!(p.rtt <= took, "rtt {:?} over the probe's {took:?}", p.rtt);
}
