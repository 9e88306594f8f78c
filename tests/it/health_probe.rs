//! Probes against real SIP responders on 127.0.0.1, over UDP and TCP.

use std::time::Duration;

use crate::support::sip::{self, Mode};
use sipsteer::config::Check;
use sipsteer::health::probe::{CodePolicy, Outcome, Target, probe};

const TIMEOUT: Duration = Duration::from_millis(1200);

async fn run(check: Check, addr: std::net::SocketAddr) -> sipsteer::health::probe::ProbeResult {
    probe(&Target::plain(addr, check), TIMEOUT, &CodePolicy::default()).await
}

#[tokio::test]
async fn sip_over_udp() {
    let cases = sip::UDP_CASES;
    for (mode, outcome, code, detail) in cases {
        let r = sip::udp(*mode).await;
        let p = run(Check::SipUdp, r.addr).await;
        assert_eq!(
            (p.outcome, p.code, p.detail.as_str()),
            (*outcome, *code, *detail),
            "{mode:?}"
        );
        assert!(r.count() >= 1);
    }
}

#[tokio::test]
async fn udp_retransmits_from_t1() {
    let r = sip::udp(Mode::Silent).await;
    let p = run(Check::SipUdp, r.addr).await;
    assert_eq!(p.outcome, Outcome::Down);
    // Sent at 0, 500 ms (T1) and 1500 ms would be next: two within 1.2 s.
    assert_eq!(r.count(), 2);
}

#[tokio::test]
async fn sip_over_tcp() {
    let cases: &[(Mode, Outcome, Option<u16>, &str)] = &[
        (Mode::Code(200), Outcome::Up, Some(200), "200 OK"),
        (Mode::Code(404), Outcome::Up, Some(404), "404 Not Found"),
        (
            Mode::Code(503),
            Outcome::Full,
            Some(503),
            "503 Service Unavailable (retry-after 30)",
        ),
        (Mode::TryingThenOk, Outcome::Up, Some(200), "200 OK"),
        (Mode::Compact, Outcome::Up, Some(200), "200 OK"),
        (Mode::Silent, Outcome::Down, None, "timeout after 1200ms"),
    ];
    for (mode, outcome, code, detail) in cases {
        let r = sip::tcp(*mode).await;
        let p = run(Check::SipTcp, r.addr).await;
        assert_eq!(
            (p.outcome, p.code, p.detail.as_str()),
            (*outcome, *code, *detail),
            "{mode:?}"
        );
    }
    let r = sip::tcp(Mode::Garbage).await;
    let p = run(Check::SipTcp, r.addr).await;
    assert_eq!(p.outcome, Outcome::Down);
    assert!(
        p.detail.starts_with("bad response: not a SIP response"),
        "{}",
        p.detail
    );
}

#[tokio::test]
async fn refused_and_plain_tcp() {
    let addr = sip::refused();
    for check in [Check::SipUdp, Check::SipTcp, Check::Tcp] {
        let p = run(check, addr).await;
        assert_eq!(
            (p.outcome, p.detail.as_str()),
            (Outcome::Down, "connection refused"),
            "{check:?}"
        );
    }
    let r = sip::tcp(Mode::Silent).await;
    let p = run(Check::Tcp, r.addr).await;
    assert_eq!(
        (p.outcome, p.detail.as_str()),
        (Outcome::Up, "tcp connect ok")
    );
}

#[tokio::test]
async fn healthy_code_list() {
    let r = sip::udp(Mode::Code(404)).await;
    let strict = CodePolicy::from_ranges(&[(200, 299)]);
    let p = probe(&Target::plain(r.addr, Check::SipUdp), TIMEOUT, &strict).await;
    assert_eq!((p.outcome, p.code), (Outcome::Down, Some(404)));
}
