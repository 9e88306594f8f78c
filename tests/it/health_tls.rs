//! SIP OPTIONS over TLS against real TLS responders on 127.0.0.1 (rcgen certificates: valid,
//! expired, wrong name, untrusted): the check's verdict, the failure reason and the leaf's
//! notAfter, read whether or not it verified.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::support::certs::{EXPIRED_AT, SipCa, VALID_UNTIL, self_signed};
use crate::support::sip::{self, Mode};
use sipsteer::config::{Check, TlsCheck};
use sipsteer::health::probe::{CodePolicy, Outcome, ProbeResult, Target, TlsFailure, probe};

const TIMEOUT: Duration = Duration::from_millis(1500);
const NAME: &str = "sip.example.net";

fn target(addr: std::net::SocketAddr, ca: &SipCa) -> Target {
    let ca = CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("ca pem");
    Target {
        addr,
        check: Check::SipTls,
        tls: Some(Arc::new(TlsCheck {
            name: NAME.into(),
            ca: Some(vec![ca].into()),
        })),
        path: None,
    }
}

async fn run(t: &Target) -> ProbeResult {
    probe(t, TIMEOUT, &CodePolicy::default()).await
}

#[tokio::test]
async fn a_valid_certificate_passes_and_its_not_after_is_read() {
    let ca = SipCa::new();
    let r = sip::tls(Mode::Code(200), ca.acceptor(NAME, false)).await;
    let p = run(&target(r.addr, &ca)).await;
    assert_eq!(
        (p.outcome, p.code, p.detail.as_str()),
        (Outcome::Up, Some(200), "200 OK")
    );
    let tls = p.tls.expect("tls seen");
    assert_eq!((tls.not_after, tls.failure), (Some(VALID_UNTIL), None));
    assert_eq!(r.count(), 1);
}

#[tokio::test]
async fn the_sip_verdict_still_applies_over_tls() {
    let ca = SipCa::new();
    let r = sip::tls(Mode::Code(503), ca.acceptor(NAME, false)).await;
    let p = run(&target(r.addr, &ca)).await;
    assert_eq!((p.outcome, p.code), (Outcome::Full, Some(503)));
    assert_eq!(p.tls.expect("tls").failure, None);
}

#[tokio::test]
async fn an_expired_certificate_fails_and_its_not_after_is_still_read() {
    let ca = SipCa::new();
    let r = sip::tls(Mode::Code(200), ca.acceptor(NAME, true)).await;
    let p = run(&target(r.addr, &ca)).await;
    assert_eq!((p.outcome, p.code), (Outcome::Down, None));
    assert!(p.detail.starts_with("tls: "), "{}", p.detail);
    assert!(p.detail.contains("expired"), "{}", p.detail);
    let tls = p.tls.expect("tls seen");
    assert_eq!(
        (tls.not_after, tls.failure),
        (Some(EXPIRED_AT), Some(TlsFailure::Expired))
    );
    assert_eq!(r.count(), 0, "no request over an unverified connection");
}

/// A valid leaf from the trusted CA for `leaf_name` fails the check for [`NAME`] as a name
/// mismatch, with its notAfter read and no request sent.
async fn fails_as_name_mismatch(leaf_name: &str) {
    let ca = SipCa::new();
    let r = sip::tls(Mode::Code(200), ca.acceptor(leaf_name, false)).await;
    let p = run(&target(r.addr, &ca)).await;
    assert_eq!(p.outcome, Outcome::Down, "{leaf_name}");
    let tls = p.tls.expect("tls seen");
    assert_eq!(
        (tls.not_after, tls.failure),
        (Some(VALID_UNTIL), Some(TlsFailure::NameMismatch)),
        "{leaf_name}"
    );
    assert_eq!(r.count(), 0, "{leaf_name}");
}

#[tokio::test]
async fn a_certificate_for_another_name_fails() {
    fails_as_name_mismatch("other.example.net").await;
}

/// RFC 5922 (7.2): a SIP server's certificate names its domain exactly; a wildcard entry,
/// which webpki would accept for the chain, does not name it.
#[tokio::test]
async fn a_wildcard_certificate_does_not_name_the_sip_domain() {
    fails_as_name_mismatch("*.example.net").await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails() {
    let ca = SipCa::new();
    let r = sip::tls(Mode::Code(200), self_signed(NAME)).await;
    let p = run(&target(r.addr, &ca)).await;
    assert_eq!(p.outcome, Outcome::Down);
    let tls = p.tls.expect("tls seen");
    assert_eq!(tls.failure, Some(TlsFailure::Untrusted));
    assert!(tls.not_after.is_some());
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_times_out() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let _c = l.accept().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let p = run(&target(addr, &SipCa::new())).await;
    held.abort();
    assert_eq!(
        (p.outcome, p.detail.as_str()),
        (Outcome::Down, "timeout after 1500ms")
    );
    let tls = p.tls.expect("tls seen");
    assert_eq!(
        (tls.not_after, tls.failure),
        (None, Some(TlsFailure::Timeout))
    );
}

#[tokio::test]
async fn a_peer_that_answers_the_hello_with_plain_sip_fails_the_handshake() {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        if let Ok((mut s, _)) = l.accept().await {
            let _ = s
                .write_all(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    let p = run(&target(addr, &SipCa::new())).await;
    peer.abort();
    assert_eq!(p.outcome, Outcome::Down);
    let tls = p.tls.expect("tls seen");
    assert_eq!(
        (tls.not_after, tls.failure),
        (None, Some(TlsFailure::Handshake))
    );
}

#[tokio::test]
async fn nothing_listening_is_no_tls_failure() {
    let p = run(&target(sip::refused(), &SipCa::new())).await;
    assert_eq!(
        (p.outcome, p.detail.as_str()),
        (Outcome::Down, "connection refused")
    );
    assert_eq!(p.tls.expect("tls seen").failure, None);
}
