//! Fast failover with real SIP responders on loopback: at the default probe settings a server
//! whose probe fails is confirmed at the suspect cadence and leaves the SRV and A answers
//! within seconds; a single lost probe flips nothing; steady probing is unchanged; answers
//! carry the trouble TTL while a server of their tiers is suspect.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::dns::*;
use crate::support::http::get;
use crate::support::sip::{self, Mode, Responder};
use hickory_proto::rr::RecordType;
use serde_json::Value;

/// `health` settings beyond the defaults (interval 5s, timeout 2s, fall 3, rise 2,
/// suspect_interval 500ms, suspect_timeout 500ms).
fn main_cfg(health: &str) -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
health: {{ check: sip-options-udp{health} }}
"#
    )
}

/// uk-TAG (lon1, the nearest for a client without location) and de (fra1); `svc` adds
/// service keys. The tag keeps each test's metrics apart: tests share one recorder.
fn zone(tag: &str, uk: &Responder, de: &Responder, svc: &str) -> String {
    format!(
        r#"
zone: example.com
soa: {{ primary: ns1, contact: hostmaster, serial: 1 }}
ns: [ns1]
records:
  ns1: {{ A: 192.0.2.53 }}
regions:
  uk-{tag}:
    location: [51.5, 0]
    servers:
      lon1: {{ address: {}, port: {} }}
  de:
    location: [50.1, 8.7]
    servers:
      fra1: {{ address: {}, port: {} }}
services:
  sip: {{ regions: [uk-{tag}, de], fallback: [uk-{tag}, de], failover: 2{svc} }}
"#,
        uk.addr.ip(),
        uk.addr.port(),
        de.addr.ip(),
        de.addr.port()
    )
}

async fn start(tag: &str, health: &str, svc: &str) -> (TestServer, Responder, Responder) {
    let uk = sip::udp_on("127.0.0.2", Mode::Code(200)).await;
    let de = sip::udp_on("127.0.0.3", Mode::Code(200)).await;
    let s = TestServer::start(
        &main_cfg(health),
        &[("example.com.yaml", &zone(tag, &uk, &de, svc))],
    )
    .await;
    let start = Instant::now();
    // The first probe comes at a random point of the 5 s interval.
    while get(admin(&s), "/readyz").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(15), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (s, uk, de)
}

fn admin(s: &TestServer) -> SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

/// SRV answers as "priority target-label".
async fn srv(s: &TestServer) -> Vec<String> {
    let m = udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    m.answers
        .iter()
        .map(|r| {
            let d = r.data.to_string();
            let f: Vec<&str> = d.split_whitespace().collect();
            let label = f.get(3).and_then(|t| t.split('.').next()).unwrap_or("");
            format!("{} {label}", f.first().unwrap_or(&""))
        })
        .collect()
}

/// A answers as "address ttl".
async fn a(s: &TestServer) -> Vec<String> {
    let m = udp(s.addr, "sip.example.com.", RecordType::A, &Q::default()).await;
    m.answers
        .iter()
        .map(|r| format!("{} {}", r.data, r.ttl))
        .collect()
}

async fn server(s: &TestServer, name: &str) -> Value {
    let (_, body) = get(admin(s), "/v1/servers").await;
    let v: Value = serde_json::from_str(&body).expect("servers json");
    v["servers"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["server"] == name).cloned())
        .unwrap_or(Value::Null)
}

/// The value of one metric line that starts with `prefix` (name and labels).
async fn metric(s: &TestServer, prefix: &str) -> Option<f64> {
    let (_, m) = get(admin(s), "/metrics").await;
    m.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until the server counts a suspicion of uk-TAG/lon1; returns when it saw it.
async fn suspected(s: &TestServer, tag: &str) -> Instant {
    let key = format!("sipsteer_suspect_total{{server=\"uk-{tag}/lon1\"}}");
    let start = Instant::now();
    loop {
        if metric(s, &key).await.is_some_and(|n| n >= 1.0) {
            return Instant::now();
        }
        // The next probe within interval (5 s + 10 % jitter), then its 2 s timeout.
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "lon1 never suspect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until SRV and A leave uk; fails if that takes longer than `bound` from `from`.
async fn out_of_answers(s: &TestServer, from: Instant, bound: Duration) -> Duration {
    loop {
        let (srv_now, a_now) = (srv(s).await, a(s).await);
        if srv_now == ["10 fra1"] && a_now.len() == 1 && a_now[0].starts_with("127.0.0.3 ") {
            return from.elapsed();
        }
        assert!(
            from.elapsed() < bound,
            "still answering uk after {:?}: SRV {srv_now:?}, A {a_now:?}",
            from.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn silent_server_leaves_srv_and_a_within_seconds_of_its_first_failed_probe() {
    const TAG: &str = "silent";
    let (s, uk, _de) = start("silent", "", "").await;
    assert_eq!(srv(&s).await, ["10 lon1", "20 fra1"]);
    assert_eq!(a(&s).await, ["127.0.0.2 30"]);

    uk.set(Mode::Silent);
    let t0 = suspected(&s, TAG).await;
    // Two more failures at the 500 ms suspect cadence: about 1 s. Without fast confirmation
    // it is two more steady probes, over 10 s.
    let took = out_of_answers(&s, t0, Duration::from_secs(3)).await;
    println!("out of the answers {took:?} after the first failed probe");
    let lon1 = server(&s, "lon1").await;
    assert_eq!(lon1["observed"], "down", "{lon1}");
    assert_eq!(lon1["suspect"], false, "{lon1}");
    assert_eq!(
        lon1["last_result"], "timeout after 500ms",
        "confirmed with the suspect timeout: {lon1}"
    );
    s.stop().await;
}

#[tokio::test]
async fn server_answering_503_leaves_as_fast() {
    const TAG: &str = "full";
    let (s, uk, _de) = start("full", "", "").await;
    assert_eq!(srv(&s).await, ["10 lon1", "20 fra1"]);

    uk.set(Mode::Code(503));
    let t0 = suspected(&s, TAG).await;
    let took = out_of_answers(&s, t0, Duration::from_secs(3)).await;
    println!("full and out of the answers {took:?} after the first 503");
    let lon1 = server(&s, "lon1").await;
    assert_eq!(lon1["state"], "full", "{lon1}");
    assert_eq!(lon1["last_code"], 503, "{lon1}");
    s.stop().await;
}

#[tokio::test]
async fn one_lost_probe_followed_by_successes_flips_nothing() {
    let (s, uk, _de) = start("lost", "", "").await;
    // The next probe and its retransmissions are lost; the re-probes after its 2 s timeout
    // are answered.
    uk.lose_one();
    suspected(&s, "lost").await;
    let start = Instant::now();
    loop {
        assert_eq!(srv(&s).await, ["10 lon1", "20 fra1"], "lon1 must stay");
        let lon1 = server(&s, "lon1").await;
        if lon1["suspect"] == false {
            assert_eq!(lon1["observed"], "up", "{lon1}");
            assert_eq!(lon1["last_result"], "200 OK", "{lon1}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still suspect: {lon1}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, m) = get(admin(&s), "/metrics").await;
    let flips: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("sipsteer_state_flips_total{") && l.contains("uk-lost/lon1"))
        .collect();
    assert_eq!(
        flips.len(),
        1,
        "only the first result (unknown to up): {flips:?}"
    );
    assert!(flips[0].contains("to=\"up\""), "{flips:?}");
    assert_eq!(
        metric(&s, "sipsteer_suspect_total{server=\"uk-lost/lon1\"}").await,
        Some(1.0)
    );
    assert_eq!(srv(&s).await, ["10 lon1", "20 fra1"]);
    s.stop().await;
}

#[tokio::test]
async fn steady_probe_count_is_one_per_interval() {
    // A short interval so the window holds enough probes to count, and a suspect cadence five
    // times faster: a healthy server probed at the suspect cadence shows as five times the
    // probes. (The suspect settings never exceed the steady ones, so with the default 500 ms
    // suspect interval an interval this short would make both cadences the same.)
    let (s, uk, _de) = start(
        "steady",
        ", interval: 500ms, timeout: 150ms, suspect_interval: 100ms, suspect_timeout: 100ms",
        "",
    )
    .await;
    let key = "sipsteer_probes_total{server=\"uk-steady/lon1\",result=\"up\"}";
    let (c0, r0, t0) = (metric(&s, key).await, uk.count(), Instant::now());
    assert!(c0.is_some(), "no probe counter for lon1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c1, r1, window) = (metric(&s, key).await, uk.count(), t0.elapsed());
    let probes = c1.unwrap_or(0.0) - c0.unwrap_or(0.0);
    // Steady: one probe per interval (at least 0.9 of it with jitter), never the suspect
    // cadence (which would give about 30 in the window).
    let most = window.as_secs_f64() / 0.45 + 1.0;
    assert!(
        probes >= 1.0 && probes <= most,
        "{probes} probes in {window:?}"
    );
    assert!(
        (r1 - r0) as f64 <= most + 1.0,
        "the responder saw {} requests",
        r1 - r0
    );
    assert_eq!(
        metric(&s, "sipsteer_suspect_total{server=\"uk-steady/lon1\"}").await,
        Some(0.0)
    );
    s.stop().await;
}

#[tokio::test]
async fn trouble_ttl_while_a_server_is_suspect_and_explain_shows_it() {
    // A high fall keeps lon1 suspect for a long while (49 re-probes at 500 ms).
    let (s, uk, _de) = start(
        "trouble",
        ", interval: 1s, timeout: 500ms, fall: 50",
        ", ttl: 30, trouble_ttl: 5",
    )
    .await;
    assert_eq!(a(&s).await, ["127.0.0.2 30"]);
    uk.set(Mode::Silent);
    suspected(&s, "trouble").await;
    assert_eq!(a(&s).await, ["127.0.0.2 5"], "still answered, shorter TTL");
    assert!(
        srv(&s).await.contains(&"10 lon1".to_string()),
        "suspect is still up"
    );
    let lon1 = server(&s, "lon1").await;
    assert_eq!(lon1["suspect"], true, "{lon1}");
    assert_eq!(lon1["state"], "up", "{lon1}");
    let (code, body) = get(
        admin(&s),
        "/v1/explain?client=127.0.0.1&name=sip.example.com&type=A",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let e: Value = serde_json::from_str(&body).expect("explain json");
    assert_eq!(e["service"]["ttl"], 5, "{body}");
    assert_eq!(e["service"]["trouble"], true, "{body}");
    assert_eq!(e["service"]["ranking"][0]["servers"][0]["suspect"], true);

    // Answered again before fall: suspicion clears with no flip, and the TTL is back.
    uk.set(Mode::Code(200));
    let start = Instant::now();
    while a(&s).await != ["127.0.0.2 30"] {
        assert!(start.elapsed() < Duration::from_secs(5), "TTL still short");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server(&s, "lon1").await["suspect"], false);
    s.stop().await;
}
