//! Steered answers over real sockets: NAPTR, SRV, A/AAAA for clients in every region, ECS
//! echo and scope, pinned and per-server names, a Country database, and oversized answers.

use std::net::IpAddr;

use crate::support::dns::*;
use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

async fn server_with(zone: &str, csv: &str) -> TestServer {
    let cfg = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", zone)]);
    std::fs::write(cfg.path("geo.csv"), csv).expect("csv");
    TestServer::start_in(cfg).await
}

async fn server() -> TestServer {
    server_with(STEER_ZONE, GEO_CSV).await
}

fn ecs(s: &str, prefix: u8) -> Q {
    Q {
        ecs: Some((s.parse::<IpAddr>().expect("ip"), prefix)),
        ..Q::default()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn srv_for_a_uk_client_over_udp_and_tcp() {
    let s = server().await;
    let q = ecs("81.2.69.0", 24);
    for m in [
        udp(s.addr, "_sip._udp.sip.example.com.", RecordType::SRV, &q).await,
        tcp(s.addr, "_sip._udp.sip.example.com.", RecordType::SRV, &q).await,
    ] {
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(
            rrs(&m.answers),
            [
                "_sip._udp.sip.example.com. 30 SRV 10 100 5060 lon1.uk.sip.example.com.",
                "_sip._udp.sip.example.com. 30 SRV 10 50 5060 lon2.uk.sip.example.com.",
                "_sip._udp.sip.example.com. 30 SRV 20 100 5060 ams1.ams.sip.example.com.",
            ]
        );
        assert_eq!(
            rrs(&m.additionals),
            [
                "lon1.uk.sip.example.com. 30 A 192.0.2.10",
                "lon1.uk.sip.example.com. 30 AAAA 2001:db8::10",
                "lon2.uk.sip.example.com. 30 A 192.0.2.11",
                "ams1.ams.sip.example.com. 30 A 192.0.2.30",
            ]
        );
        // Two neighbouring London /24s rank alike: the scope widens to /23.
        assert_eq!(ecs_of(&m), Some(("81.2.69.0".parse().expect("ip"), 24, 23)));
    }
    s.stop().await;
}

#[tokio::test]
async fn naptr_carries_srv_and_addresses() {
    let s = server().await;
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::NAPTR,
        &ecs("24.0.0.0", 24),
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        [
            "sip.example.com. 30 NAPTR 10 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.sip.example.com.",
            "sip.example.com. 30 NAPTR 10 20 \"S\" \"SIP+D2T\" \"\" _sip._tcp.sip.example.com.",
        ]
    );
    assert_eq!(
        rrs(&m.additionals),
        [
            "_sip._udp.sip.example.com. 30 SRV 10 100 5060 iad1.us-east.sip.example.com.",
            "_sip._udp.sip.example.com. 30 SRV 20 100 5060 sjc1.us-west.sip.example.com.",
            "_sip._tcp.sip.example.com. 30 SRV 10 100 5060 iad1.us-east.sip.example.com.",
            "_sip._tcp.sip.example.com. 30 SRV 20 100 5060 sjc1.us-west.sip.example.com.",
            "iad1.us-east.sip.example.com. 30 A 192.0.2.40",
            "sjc1.us-west.sip.example.com. 30 A 192.0.2.50",
        ]
    );
    assert_eq!(ecs_of(&m), Some(("24.0.0.0".parse().expect("ip"), 24, 16)));
    s.stop().await;
}

#[tokio::test]
async fn a_records_for_clients_in_each_region() {
    let s = server().await;
    let cases: &[(&str, u8, &[&str], u8)] = &[
        ("81.2.69.0", 24, &["192.0.2.10", "192.0.2.11"], 23),
        ("91.64.0.0", 24, &["192.0.2.20"], 14),
        ("81.240.3.0", 24, &["192.0.2.30"], 16),
        ("24.0.0.0", 24, &["192.0.2.40"], 16),
        ("50.46.1.0", 24, &["192.0.2.50"], 16),
        ("126.0.0.0", 24, &["192.0.2.60"], 16),
        ("2a00:1000::", 48, &["192.0.2.10", "192.0.2.11"], 32),
    ];
    for (net, prefix, want, scope) in cases {
        let m = udp(
            s.addr,
            "sip.example.com.",
            RecordType::A,
            &ecs(net, *prefix),
        )
        .await;
        let got: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(sorted(got), *want, "{net}");
        assert!(m.answers.iter().all(|r| r.ttl == 30));
        let e = ecs_of(&m).expect("ecs echoed");
        assert_eq!((e.1, e.2), (*prefix, *scope), "{net}");
    }
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::AAAA,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 AAAA 2001:db8::10"]);
    s.stop().await;
}

#[tokio::test]
async fn ipv4_mapped_ecs_gets_an_ipv6_scope() {
    let s = server().await;
    // ECS of the IPv6 family carrying ::ffff:81.2.69.0/120: ranked as 81.2.69.0 (London),
    // the scope counted in IPv6 bits (96 + 23).
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("::ffff:81.2.69.0", 120),
    )
    .await;
    let got: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(sorted(got), ["192.0.2.10", "192.0.2.11"]);
    let e = ecs_of(&m).expect("ecs echoed");
    assert_eq!((e.1, e.2), (120, 119));
    s.stop().await;
}

#[tokio::test]
async fn without_ecs_the_source_address_is_located() {
    let s = server().await;
    // 127.0.0.1 is in no database: the fallback order starts with us-east.
    let m = udp(s.addr, "sip.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 A 192.0.2.40"]);
    assert!(m.edns.is_none());
    s.stop().await;
}

#[tokio::test]
async fn network_override_and_scope() {
    let s = server().await;
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("203.0.113.0", 24),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 A 192.0.2.20"]);
    assert_eq!(
        ecs_of(&m).map(|e| e.2),
        Some(25),
        "the /25 override inside narrows the scope"
    );
    s.stop().await;
}

#[tokio::test]
async fn pinned_and_server_names() {
    let s = server().await;
    let m = udp(
        s.addr,
        "uk.sip.example.com.",
        RecordType::A,
        &ecs("24.0.0.0", 24),
    )
    .await;
    let got: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(sorted(got), ["192.0.2.10", "192.0.2.11"]);
    assert_eq!(
        ecs_of(&m).map(|e| e.2),
        Some(0),
        "pinned answers do not depend on location"
    );
    let m = udp(
        s.addr,
        "_sip._tcp.us-west.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        [
            "_sip._tcp.us-west.sip.example.com. 30 SRV 10 100 5060 sjc1.us-west.sip.example.com.",
            "_sip._tcp.us-west.sip.example.com. 30 SRV 20 100 5060 iad1.us-east.sip.example.com.",
        ]
    );
    let m = udp(
        s.addr,
        "lon1.uk.sip.example.com.",
        RecordType::AAAA,
        &Q::default(),
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        ["lon1.uk.sip.example.com. 30 AAAA 2001:db8::10"]
    );
    let m = tcp(
        s.addr,
        "lon1.uk.sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        ["lon1.uk.sip.example.com. 30 A 192.0.2.10"]
    );
    assert_eq!(ecs_of(&m).map(|e| e.2), Some(0));
    s.stop().await;
}

#[tokio::test]
async fn negative_answers_under_a_service() {
    let s = server().await;
    // A type the name does not have: NODATA, scope 0.
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::TXT,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(ecs_of(&m).map(|e| e.2), Some(0));
    // A transport the service does not offer, and an empty non-terminal.
    let m = udp(
        s.addr,
        "_sips._tcp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let m = udp(
        s.addr,
        "_udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn invalid_ecs_is_formerr() {
    let s = server().await;
    // 81.2.69.0/23: a host bit set beyond the source prefix (the last address byte is 68
    // for a valid /23; 69 sets the bit after it).
    let p = query("sip.example.com.", RecordType::A, &ecs("81.2.68.0", 23));
    let mut bad = p.clone();
    let n = bad.len();
    assert_eq!(bad[n - 1], 68);
    bad[n - 1] = 69;
    let m = parse(&udp_raw(s.addr, &bad).expect("reply"));
    assert_eq!(rcode(&m), ResponseCode::FormErr);
    s.stop().await;
}

#[tokio::test]
async fn country_database_uses_centroids_and_country_lists() {
    let dir = tempfile::tempdir().expect("tmp");
    let csv = dir.path().join("country.csv");
    std::fs::write(
        &csv,
        "network,country,continent,latitude,longitude,city\n41.80.0.0/13,KE,,,,\n81.2.69.0/24,GB,,,,\n126.0.0.0/8,JP,,,,\n",
    )
    .expect("csv");
    let mmdb = dir.path().join("country.mmdb");
    let summary = sipsteer::geo::build_file(&csv, &mmdb).expect("build");
    assert_eq!(summary.database_type, "GeoIP2-Country");
    let main = MAIN_GEO.replace("geo.csv", &mmdb.display().to_string());
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", STEER_ZONE)]);
    let s = TestServer::start_in(cfg).await;
    for (net, want) in [("41.80.0.0", "192.0.2.20"), ("126.0.0.0", "192.0.2.60")] {
        let m = udp(s.addr, "sip.example.com.", RecordType::A, &ecs(net, 24)).await;
        assert_eq!(
            rrs(&m.answers),
            [format!("sip.example.com. 30 A {want}")],
            "{net}"
        );
    }
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(m.answers.len(), 2, "GB is listed on uk");
    s.stop().await;
}

/// A region with many servers: the additional section is trimmed to fit, TC only when the
/// answer section itself does not fit.
#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one case per answer shape, each asserted in place"
)]
async fn oversized_answers_stay_valid() {
    let mut zone = String::from(
        "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nregions:\n  big:\n    location: [50, 8]\n    servers:\n",
    );
    for i in 0..40 {
        zone.push_str(&format!(
            "      server-number-{i:02}: {{ address: [192.0.2.{i}, \"2001:db8::{i:x}\"] }}\n"
        ));
    }
    zone.push_str("services:\n  sip: { regions: [big], answers: 16 }\n");
    let s = server_with(&zone, GEO_CSV).await;

    // NAPTR without EDNS: two NAPTR records fit in 512 bytes, the additional section is cut.
    let m = udp(s.addr, "sip.example.com.", RecordType::NAPTR, &Q::default()).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 2);
    assert!(
        !m.additionals.is_empty() && m.additionals.len() < 40 * 4,
        "trimmed to fit"
    );
    let raw = udp_raw(
        s.addr,
        &query("sip.example.com.", RecordType::NAPTR, &Q::default()),
    )
    .expect("reply");
    assert!(raw.len() <= 512, "{} bytes", raw.len());

    // 40 SRV records do not fit in 512 bytes: TC, and the full answer over TCP.
    let m = udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    let m = udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q {
            edns: Some(1232),
            ..Q::default()
        },
    )
    .await;
    let raw = udp_raw(
        s.addr,
        &query(
            "_sip._udp.sip.example.com.",
            RecordType::SRV,
            &Q {
                edns: Some(1232),
                ..Q::default()
            },
        ),
    )
    .expect("reply");
    assert!(raw.len() <= 1232);
    assert!(
        m.metadata.truncation,
        "40 SRV records of this size exceed 1232 bytes too"
    );
    assert!(m.edns.is_some(), "the OPT survives truncation");
    let m = tcp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 40);
    assert_eq!(m.additionals.len(), 80);

    // A/AAAA: bounded by `answers`, the same set for one subnet, rotated across subnets.
    let a1 = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    let a2 = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(a1.answers.len(), 16);
    assert_eq!(
        rrs(&a1.answers),
        rrs(&a2.answers),
        "deterministic for one subnet"
    );
    let mut differs = false;
    for third in 0..20 {
        let o = udp(
            s.addr,
            "sip.example.com.",
            RecordType::A,
            &ecs(&format!("81.2.{third}.0"), 24),
        )
        .await;
        differs |= rrs(&o.answers) != rrs(&a1.answers);
    }
    assert!(differs, "other subnets get other rotations");
    s.stop().await;
}
