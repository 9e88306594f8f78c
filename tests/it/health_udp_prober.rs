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
