//! SIP OPTIONS over UDP through the shared prober (one task, one socket per family, a
//! transaction table): one-off probes give the same answers as a probe with a socket of its
//! own, for many targets at once; a server's scheduled probes (many targets due together,
//! bounded in flight, retransmitted, diffed on reload, re-probed at the suspect cadence) are
//! judged exactly. Against real SIP responders on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::dns::TestServer;
use crate::support::sip::{self, Mode, Responder};
use sipsteer::config::Check;
use sipsteer::health::probe::{CodePolicy, Outcome, ProbeResult, Target, probe_with};
use sipsteer::health::udp::UdpProber;

const TIMEOUT: Duration = Duration::from_millis(1200);

async fn run(u: &UdpProber, addr: std::net::SocketAddr) -> ProbeResult {
    let t = Target::plain(addr, Check::SipUdp);
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
    // Sent at 0 and 500 ms (T1); 1500 ms would be next: two within 1.2 s. Every datagram
    // sent before the probe ended is counted once the responder has read its queue.
    silent.settled().await;
    assert_eq!(silent.count(), 2);
    let ok = sip::udp(Mode::Code(200)).await;
    for _ in 0..3 {
        assert_eq!(run(&u, ok.addr).await.detail, "200 OK");
    }
    ok.settled().await;
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
    let t = Target::plain(addr, Check::SipUdp);
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

/// A sipsteer whose one region `r` holds a server `sN` per port, probed with `health`.
async fn server_of(ports: &[u16], health: &str) -> TestServer {
    let main = format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\nhealth: {{ check: sip-options-udp, {health} }}\n"
    );
    TestServer::start(&main, &[("example.com.yaml", &zone_of(ports))]).await
}

fn zone_of(ports: &[u16]) -> String {
    let mut z = String::from(
        "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\nregions:\n  r:\n    location: [51.5, 0]\n    servers:\n",
    );
    for (i, p) in ports.iter().enumerate() {
        z.push_str(&format!(
            "      s{i}: {{ address: 127.0.0.1, port: {p} }}\n"
        ));
    }
    z.push_str("services:\n  sip: { regions: [r] }\n");
    z
}

/// `/v1/servers` as (server, last result, observed), in config order.
fn reports(s: &TestServer) -> Vec<(String, Option<String>, &'static str)> {
    let hub = &s.running.as_ref().expect("running").hub;
    hub.servers()
        .into_iter()
        .map(|r| (r.server, r.last_result, r.observed))
        .collect()
}

/// Waits (at most 20 s, a guard against hangs) until `done` holds of the reports.
async fn until(
    s: &TestServer,
    what: &str,
    done: impl Fn(&[(String, Option<String>, &'static str)]) -> bool,
) {
    let start = Instant::now();
    loop {
        let r = reports(s);
        if done(&r) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn many_targets_due_together_are_all_probed_and_judged_four_at_a_time() {
    let modes = [
        Mode::Code(200),
        Mode::Code(503),
        Mode::Silent,
        Mode::Code(404),
    ];
    let mut rs: Vec<Responder> = Vec::new();
    for i in 0..40 {
        rs.push(sip::udp(modes[i % 4]).await);
    }
    let mut ports: Vec<u16> = rs.iter().map(|r| r.addr.port()).collect();
    // Every fifth server refuses (port unreachable): known from the error queue.
    let refused = |i: usize| i % 5 == 4;
    for p in ports.iter_mut().skip(4).step_by(5) {
        *p = sip::refused().port();
    }
    // 40 first probes within 10 ticks, at most 4 in flight: most wait their turn.
    let s = server_of(&ports, "interval: 100ms, timeout: 100ms, max_concurrent: 4").await;
    let want = [
        "200 OK",
        "503 Service Unavailable (retry-after 30)",
        "timeout after 100ms",
        "404 Not Found",
    ];
    until(&s, "every server judged", |r| {
        r.iter().enumerate().all(|(i, (_, last, _))| {
            let want = if refused(i) {
                "connection refused"
            } else {
                want[i % 4]
            };
            last.as_deref() == Some(want)
        })
    })
    .await;
    let observed: Vec<&str> = reports(&s).iter().map(|r| r.2).collect();
    for (i, o) in observed.iter().enumerate() {
        let want = if refused(i) {
            "down"
        } else {
            ["up", "full", "down", "up"][i % 4]
        };
        assert_eq!(*o, want, "s{i}");
    }
    let mut probed = rs.iter().enumerate().filter(|(i, _)| !refused(*i));
    assert!(probed.all(|(_, r)| r.count() >= 1));
    s.stop().await;
}

/// A UDP SIP responder on 127.0.0.1 run by a thread: it loses the first `lose` requests,
/// answers the others `delay` late with 200 OK, and keeps every request it received.
struct Scripted {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    fn start(lose: usize, delay: Duration) -> Scripted {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let (requests, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let r = Scripted {
            addr: sock.local_addr().expect("addr"),
            requests: requests.clone(),
            stop: stop.clone(),
        };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let seen = {
                    let mut r = requests.lock().expect("requests");
                    r.push(req.clone());
                    r.len()
                };
                if seen > lose {
                    std::thread::sleep(delay);
                    let _ = sock.send_to(sip::reply(&req, 200, "OK", false).as_bytes(), peer);
                }
            }
        });
        r
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_lost_request_is_retransmitted_at_t1_and_the_reply_counts_from_the_first_send() {
    let r = Scripted::start(1, Duration::ZERO);
    let s = server_of(&[r.addr.port()], "interval: 3s, timeout: 1200ms").await;
    until(&s, "first result", |r| r[0].1.is_some()).await;
    assert_eq!(reports(&s)[0].1.as_deref(), Some("200 OK"));
    let req = r.requests();
    assert!(req.len() >= 2, "{req:?}");
    assert_eq!(req[0], req[1], "the same transaction, sent again");
    let hub = &s.running.as_ref().expect("running").hub;
    let rtt = hub.servers()[0].rtt_ms.expect("a round trip");
    assert!(
        rtt >= 500.0,
        "rtt {rtt} ms: from the first send, not the retransmission"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_reply_late_in_the_timeout_counts_with_its_exact_round_trip() {
    let delay = Duration::from_millis(150);
    let r = Scripted::start(0, delay);
    let s = server_of(&[r.addr.port()], "interval: 3s, timeout: 400ms").await;
    until(&s, "first result", |r| r[0].1.is_some()).await;
    let rep = &s.running.as_ref().expect("running").hub.servers()[0];
    assert_eq!(
        (rep.last_result.as_deref(), rep.observed),
        (Some("200 OK"), "up")
    );
    let rtt = rep.rtt_ms.expect("a round trip");
    assert!(rtt >= 150.0, "rtt {rtt} ms under the responder's delay");
    s.stop().await;
}

#[tokio::test]
async fn a_reload_keeps_unchanged_targets_probed_and_stops_removed_ones() {
    let mut rs: Vec<Responder> = Vec::new();
    for _ in 0..10 {
        rs.push(sip::udp(Mode::Code(200)).await);
    }
    let ports: Vec<u16> = rs.iter().map(|r| r.addr.port()).collect();
    let s = server_of(&ports, "interval: 100ms, timeout: 100ms").await;
    until(&s, "every server up", |r| r.iter().all(|x| x.2 == "up")).await;
    std::fs::write(s.cfg.path("zones/example.com.yaml"), zone_of(&ports[..5])).expect("write");
    let run = s.running.as_ref().expect("running");
    let out = s.reload().await;
    assert!(
        matches!(out, sipsteer::reload::Outcome::Applied(_)),
        "{out:?}"
    );
    assert_eq!(run.hub.probe_targets(), 5);
    let before: Vec<usize> = rs.iter().map(Responder::count).collect();
    // Ten intervals later: every kept server probed again, no removed one (but for a probe
    // already sent when the reload applied).
    let start = Instant::now();
    while rs[..5].iter().zip(&before).any(|(r, b)| r.count() < b + 3) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "kept servers not probed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, (r, b)) in rs.iter().zip(&before).enumerate().skip(5) {
        assert!(
            r.count() <= b + 1,
            "s{i} still probed: {b} -> {}",
            r.count()
        );
    }
    assert_eq!(reports(&s).len(), 5);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_up_server_is_re_probed_at_the_suspect_cadence_until_down() {
    let r = sip::udp(Mode::Code(200)).await;
    let health = "interval: 1s, timeout: 800ms, suspect_interval: 200ms, suspect_timeout: 200ms, rise: 1, fall: 3";
    let s = server_of(&[r.addr.port()], health).await;
    until(&s, "up", |r| r[0].2 == "up").await;
    r.set(Mode::Silent);
    until(&s, "down", |r| r[0].2 == "down").await;
    // The first failure timed out at the steady timeout; the two that confirmed it were the
    // suspect re-probes, with their own timeout.
    assert_eq!(reports(&s)[0].1.as_deref(), Some("timeout after 200ms"));
    assert_eq!(
        s.series("sipsteer_suspect_total{server=\"r/s0\"}"),
        Some(1.0)
    );
    s.stop().await;
}
