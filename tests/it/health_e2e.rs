//! Health end to end: real SIP responders go silent and come back, load reports and operator
//! actions go through the admin API, and DNS answers follow.

use std::time::{Duration, Instant};

use crate::support::dns::*;
use crate::support::http::{get, send};
use crate::support::sip::{self, Mode, Responder};
use hickory_proto::rr::RecordType;

const TOKEN: &str = "test-token-123";

fn main_cfg() -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
admin: {{ token: {TOKEN}, state_file: state.json }}
health: {{ check: sip-options-udp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }}
capacity: {{ overflow_at: 0.8, report_ttl: 1s }}
"#
    )
}

fn zone(uk: &Responder, de: &Responder, ams: Option<&Responder>) -> String {
    let mut z = format!(
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
      lon1: {{ address: 127.0.0.1, port: {}, capacity: {{ calls: 100, cps: 10 }} }}
  de:
    location: [50.1, 8.7]
    servers:
      fra1: {{ address: 127.0.0.1, port: {} }}
"#,
        uk.addr.port(),
        de.addr.port()
    );
    let regions = if let Some(a) = ams {
        z.push_str(&format!("  ams:\n    location: [52.4, 4.9]\n    servers:\n      ams1: {{ address: 127.0.0.1, port: {} }}\n", a.addr.port()));
        "[uk, de, ams]"
    } else {
        "[uk, de]"
    };
    z.push_str(&format!(
        "services:\n  sip: {{ regions: {regions}, fallback: {regions}, failover: 2 }}\n"
    ));
    z
}

/// SRV targets (first label: the server) in answer order.
async fn srv(s: &TestServer) -> Vec<String> {
    udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await
    .answers
    .iter()
    .map(|r| {
        let d = r.data.to_string();
        let mut f = d.split_whitespace();
        let prio = f.next().unwrap_or("");
        let target = f
            .nth(2)
            .unwrap_or("")
            .split('.')
            .next()
            .unwrap_or("")
            .to_owned();
        format!("{prio} {target}")
    })
    .collect()
}

async fn wait_for(s: &TestServer, want: &[&str], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = srv(s).await;
        if got == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "SRV still {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn ready(s: &TestServer) {
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let start = Instant::now();
    while get(admin, "/readyz").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn admin(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

#[tokio::test]
async fn silent_region_fails_over_and_comes_back() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de, None))]).await;
    ready(&s).await;
    assert_eq!(srv(&s).await, ["10 lon1", "20 fra1"]);

    uk.set(Mode::Silent);
    // fall (2) x interval (200ms) + timeout (150ms), with room for a loaded machine.
    let took = wait_for(&s, &["10 fra1"], Duration::from_secs(5)).await;
    println!("failover after {took:?}");
    // uk is out of every tier; the A record follows too.
    let (_, servers) = get(admin(&s), "/v1/servers").await;
    assert!(servers.contains(r#""observed":"down""#), "{servers}");
    assert!(servers.contains("timeout after 150ms"), "{servers}");

    uk.set(Mode::Code(200));
    wait_for(&s, &["10 lon1", "20 fra1"], Duration::from_secs(5)).await;

    // A 503 means full: out of the answers, but alive.
    uk.set(Mode::Code(503));
    wait_for(&s, &["10 fra1"], Duration::from_secs(5)).await;
    let (_, servers) = get(admin(&s), "/v1/servers").await;
    assert!(servers.contains(r#""state":"full""#), "{servers}");
    s.stop().await;
}

#[tokio::test]
async fn load_reports_move_traffic_and_expire() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de, None))]).await;
    ready(&s).await;
    let a = admin(&s);
    let path = "/v1/servers/uk/lon1/load";
    assert_eq!(
        send(a, "PUT", path, None, Some(r#"{"calls":90}"#)).await.0,
        401
    );
    assert_eq!(
        send(
            a,
            "PUT",
            path,
            Some("wrong-token-1"),
            Some(r#"{"calls":90}"#)
        )
        .await
        .0,
        401
    );
    assert_eq!(
        send(
            a,
            "PUT",
            "/v1/servers/uk/nope/load",
            Some(TOKEN),
            Some(r#"{"calls":90}"#)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(
            a,
            "PUT",
            "/v1/servers/de/fra1/load",
            Some(TOKEN),
            Some(r#"{"calls":90}"#)
        )
        .await
        .0,
        400,
        "no capacity declared"
    );
    assert_eq!(
        srv(&s).await,
        ["10 lon1", "20 fra1"],
        "rejected reports change nothing"
    );

    // Half full: still first, SRV weight follows the headroom.
    let (code, body) = send(a, "PUT", path, Some(TOKEN), Some(r#"{"calls":50,"cps":2}"#)).await;
    assert_eq!(code, 200, "{body}");
    let m = udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert_eq!(
        m.answers[0].data.to_string(),
        format!("10 50 {} lon1.uk.sip.example.com.", uk.addr.port())
    );

    // Over 80% of capacity: full, traffic moves to de.
    assert_eq!(
        send(a, "PUT", path, Some(TOKEN), Some(r#"{"calls":90,"cps":2}"#))
            .await
            .0,
        200
    );
    assert_eq!(srv(&s).await, ["10 fra1"]);
    // The report expires after 1s: lon1 comes back by itself.
    wait_for(&s, &["10 lon1", "20 fra1"], Duration::from_secs(4)).await;
    s.stop().await;
}

#[tokio::test]
async fn drain_and_clear_through_the_api() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de, None))]).await;
    ready(&s).await;
    let a = admin(&s);
    let path = "/v1/servers/uk/lon1/state";
    let (code, body) = send(a, "PUT", path, None, Some(r#"{"state":"drain"}"#)).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("missing or wrong bearer token"));
    assert_eq!(srv(&s).await, ["10 lon1", "20 fra1"]);
    assert_eq!(
        send(a, "PUT", path, Some(TOKEN), Some(r#"{"state":"sideways"}"#))
            .await
            .0,
        400
    );

    let (code, body) = send(a, "PUT", path, Some(TOKEN), Some(r#"{"state":"drain"}"#)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""forced":"drained""#), "{body}");
    assert_eq!(srv(&s).await, ["10 fra1"], "drained at once");
    let state = std::fs::read_to_string(s.cfg.path("state.json")).expect("state file");
    assert!(state.contains(r#""uk/lon1": "drained""#), "{state}");

    assert_eq!(
        send(a, "PUT", path, Some(TOKEN), Some(r#"{"state":"clear"}"#))
            .await
            .0,
        200
    );
    assert_eq!(srv(&s).await, ["10 lon1", "20 fra1"]);
    // Forced down over a healthy probe.
    assert_eq!(
        send(a, "PUT", path, Some(TOKEN), Some(r#"{"state":"down"}"#))
            .await
            .0,
        200
    );
    assert_eq!(srv(&s).await, ["10 fra1"]);
    s.stop().await;
}

#[tokio::test]
async fn states_survive_reload_and_removed_servers_stop_being_probed() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let ams = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(
        &main_cfg(),
        &[("example.com.yaml", &zone(&uk, &de, Some(&ams)))],
    )
    .await;
    ready(&s).await;
    let a = admin(&s);
    assert_eq!(
        send(
            a,
            "PUT",
            "/v1/servers/uk/lon1/state",
            Some(TOKEN),
            Some(r#"{"state":"drain"}"#)
        )
        .await
        .0,
        200
    );
    de.set(Mode::Silent);
    wait_for(&s, &["10 ams1"], Duration::from_secs(5)).await;

    // Reload without ams: uk stays drained, de stays down, ams is no longer probed.
    std::fs::write(s.cfg.path("zones/example.com.yaml"), zone(&uk, &de, None)).expect("write");
    let out = s.reload().await;
    assert!(
        matches!(out, sipsteer::reload::Outcome::Applied(_)),
        "{out:?}"
    );
    // uk drained and de down: every region is out, so `all_down: nearest` answers uk anyway.
    assert_eq!(srv(&s).await, ["10 lon1"]);
    let (_, servers) = get(a, "/v1/servers").await;
    assert!(servers.contains(r#""forced":"drained""#), "{servers}");
    assert!(!servers.contains("ams1"), "{servers}");
    let before = ams.count();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        ams.count() <= before + 1,
        "ams1 still probed: {} -> {}",
        before,
        ams.count()
    );
    s.stop().await;
}

#[tokio::test]
async fn one_probe_per_distinct_target_and_flips_are_counted() {
    let shared = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    // lon1 and a second server elsewhere both point at the same SIP server.
    let z = zone(&shared, &de, Some(&shared));
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &z)]).await;
    ready(&s).await;
    let hub = s.running.as_ref().expect("running").hub.clone();
    assert_eq!(
        hub.probe_targets(),
        2,
        "three servers, two distinct targets"
    );

    de.set(Mode::Silent);
    let a = admin(&s);
    let start = Instant::now();
    loop {
        let (_, m) = get(a, "/metrics").await;
        if m.lines().any(|l| {
            l.starts_with("sipsteer_state_flips_total{")
                && l.contains("server=\"de/fra1\"")
                && l.contains("to=\"down\"")
        }) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no flip counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, m) = get(a, "/metrics").await;
    assert!(m.contains("sipsteer_probes_total{"), "{m}");
    assert!(m.contains("sipsteer_probe_rtt_seconds_bucket{"), "{m}");
    assert!(
        m.contains("sipsteer_probe_last_tick_timestamp_seconds "),
        "{m}"
    );
    s.stop().await;
}
