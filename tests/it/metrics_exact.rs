//! Query counters counted exactly: every instance has its own, so a known set of queries over
//! UDP and TCP gives known values for type/rcode/reason, ECS, zones and regions, and a reload
//! that adds a zone keeps every count.

use hickory_proto::rr::RecordType;

use crate::support::dns::*;
use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
use sipsteer::reload::Trigger;

const OTHER_ZONE: &str = r#"
zone: example.net
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.99 }
"#;

fn ecs(s: &str, prefix: u8) -> Q {
    Q {
        edns: Some(1232),
        ecs: Some((s.parse().expect("ip"), prefix)),
        ..Q::default()
    }
}

/// A server of the steering fixture, with its GeoIP CSV.
async fn server() -> TestServer {
    let cfg = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    TestServer::start_in(cfg).await
}

fn queries(t: &str, rcode: &str, reason: &str) -> String {
    format!("sipsteer_queries_total{{type=\"{t}\",rcode=\"{rcode}\",reason=\"{reason}\"}}")
}

#[tokio::test]
async fn a_known_set_of_queries_gives_exact_counts() {
    let s = server().await;
    let plain = Q::default();
    // Static: 3 × A over UDP, 2 × A over TCP, 1 NXDOMAIN, 1 REFUSED (outside every zone).
    for _ in 0..3 {
        udp(s.addr, "ns1.example.com.", RecordType::A, &plain).await;
    }
    for _ in 0..2 {
        tcp(s.addr, "ns1.example.com.", RecordType::A, &plain).await;
    }
    udp(s.addr, "nope.example.com.", RecordType::A, &plain).await;
    udp(s.addr, "www.example.org.", RecordType::A, &plain).await;
    // Steered by country: 4 from London (uk), 1 from Berlin by distance (de), over ECS.
    for _ in 0..4 {
        udp(
            s.addr,
            "sip.example.com.",
            RecordType::A,
            &ecs("81.2.68.1", 24),
        )
        .await;
    }
    udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &ecs("91.64.1.1", 24),
    )
    .await;
    let lines = [
        (queries("A", "NOERROR", "static"), 5.0),
        (queries("A", "NXDOMAIN", "static"), 1.0),
        (queries("A", "REFUSED", "static"), 1.0),
        (queries("A", "NOERROR", "country"), 4.0),
        (queries("SRV", "NOERROR", "distance"), 1.0),
        ("sipsteer_queries_ecs_total{ecs=\"present\"}".into(), 5.0),
        ("sipsteer_queries_ecs_total{ecs=\"absent\"}".into(), 7.0),
        ("sipsteer_truncated_total".into(), 0.0),
        // The REFUSED query names no zone of ours.
        (
            "sipsteer_zone_queries_total{zone=\"example.com.\"}".into(),
            11.0,
        ),
        ("sipsteer_region_answers_total{region=\"uk\"}".into(), 4.0),
        ("sipsteer_region_answers_total{region=\"de\"}".into(), 1.0),
        ("sipsteer_region_answers_total{region=\"sg\"}".into(), 0.0),
    ];
    for (name, want) in &lines {
        assert_eq!(s.series(name), Some(*want), "{name}\n{}", s.metrics());
    }
    let total: f64 = s
        .metrics()
        .lines()
        .filter(|l| l.starts_with("sipsteer_queries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 12.0, "every query counted once");
    s.stop().await;
}

#[tokio::test]
async fn a_reload_that_adds_a_zone_keeps_every_count() {
    let s = server().await;
    let plain = Q::default();
    for _ in 0..2 {
        udp(s.addr, "ns1.example.com.", RecordType::A, &plain).await;
    }
    udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.68.1", 24),
    )
    .await;
    // The new zone sorts before example.com, so every zone index shifts.
    std::fs::write(s.cfg.path("zones/example.net.yaml"), OTHER_ZONE).expect("write zone");
    let running = s.running.as_ref().expect("running");
    let out = running.reloader.reload(Trigger::Api);
    // Applied here, or already by the file watcher.
    assert!(
        matches!(
            out,
            sipsteer::reload::Outcome::Applied(_) | sipsteer::reload::Outcome::Unchanged
        ),
        "{out:?}"
    );
    assert_eq!(
        s.series("sipsteer_zone_queries_total{zone=\"example.net.\"}"),
        Some(0.0),
        "a new zone is present from its first reload"
    );
    udp(s.addr, "ns1.example.net.", RecordType::A, &plain).await;
    udp(s.addr, "ns1.example.com.", RecordType::A, &plain).await;
    udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.68.1", 24),
    )
    .await;
    assert_eq!(
        s.series("sipsteer_zone_queries_total{zone=\"example.com.\"}"),
        Some(5.0)
    );
    assert_eq!(
        s.series("sipsteer_zone_queries_total{zone=\"example.net.\"}"),
        Some(1.0)
    );
    assert_eq!(
        s.series("sipsteer_region_answers_total{region=\"uk\"}"),
        Some(2.0)
    );
    assert_eq!(s.series(&queries("A", "NOERROR", "static")), Some(4.0));
    assert_eq!(
        s.series("sipsteer_config_reloads_total{result=\"ok\"}"),
        Some(2.0),
        "the first load and the reload"
    );
    assert_eq!(s.series("sipsteer_config_generation"), Some(2.0));
    s.stop().await;
}
