//! Warm-up answers: started without waiting for its GeoIP database (the compile is held back
//! until the test asks for it), sipsteer answers steered names that need the map either in
//! their fallback order with the short warm-up TTL (the default) or SERVFAIL, as
//! `geoip.warmup` says; names that do not need the map answer normally; once the map is in,
//! every steered name answers by location with its normal TTL.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::support::dns::{ConfigDir, Q, TestServer, ecs_of, rcode, rrs, tcp, udp};
use crate::support::http::get;
use crate::support::steer::{GEO_CSV, STEER_ZONE};
use sipsteer::reload::GeoState;

fn main_with(geoip: &str) -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\n\
         geoip: {geoip}\nhealth: {{ check: none }}\nquery_log: {{ path: queries.log }}\n"
    )
}

fn ecs(ip: &str, prefix: u8) -> Q {
    let ip: IpAddr = ip.parse().expect("ip");
    Q {
        ecs: Some((ip, prefix)),
        ..Q::default()
    }
}

/// Starts the steering fixture with a MaxMind database built from its CSV, without compiling
/// the database: until [`compile`], the server is warming up.
async fn start_warming(geoip: &str) -> TestServer {
    let cfg = ConfigDir::new(&main_with(geoip), &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    sipsteer::geo::build_file(&cfg.path("geo.csv"), &cfg.path("geo.mmdb")).expect("build mmdb");
    let config = crate::support::dns::load_config(&cfg.main());
    let running = sipsteer::app::start_early(&cfg.main(), config)
        .await
        .expect("server starts");
    let addr = running.dns[0];
    assert_eq!(running.reloader.geoip_state(), Some(GeoState::Loading));
    TestServer {
        cfg,
        running: Some(running),
        addr,
    }
}

/// Runs the held-back compile and waits until it has either loaded or failed.
async fn compile(s: &TestServer) -> GeoState {
    let running = s.running.as_ref().expect("running");
    running.load_geoip();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match running.reloader.geoip_state() {
            Some(GeoState::Loading) | None => {}
            Some(state) => return state,
        }
        assert!(Instant::now() < deadline, "the compile never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ede(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::from(15))? {
        EdnsOption::Unknown(15, v) => Some(v.clone()),
        _ => None,
    }
}

fn ttls(m: &Message) -> Vec<u32> {
    m.answers
        .iter()
        .chain(&m.authorities)
        .chain(&m.additionals)
        .map(|r| r.ttl)
        .collect()
}

fn queries(t: &str, rcode: &str, reason: &str) -> String {
    format!("sipsteer_queries_total{{type=\"{t}\",rcode=\"{rcode}\",reason=\"{reason}\"}}")
}

/// A service answer from the fallback order (us-east, then uk), and the same name once the
/// map is in.
#[tokio::test]
async fn by_default_warm_up_answers_are_the_fallback_order_with_a_short_ttl() {
    let s = start_warming("{ database: geo.mmdb }").await;
    fallback_answers_for_5_seconds(s.addr).await;
    names_without_the_map_answer_as_always(s.addr).await;
    counted_and_explained_as_warm_up(&s).await;
    located_after_the_compile(s).await;
}

/// Service answers: us-east (the fallback order) for everyone outside the overrides, 5 s.
async fn fallback_answers_for_5_seconds(dns: std::net::SocketAddr) {
    // London, Sydney and IPv6 London all get us-east for 5 s. The scope covers every client
    // outside the `networks:` overrides (203.0.113.0/24 and /25): /1 for IPv4, /0 for IPv6.
    for (net, prefix, scope) in [
        ("81.2.69.0", 24, 1),
        ("1.128.0.0", 24, 1),
        ("2a00:1000::", 48, 0),
    ] {
        let m = udp(dns, "sip.example.com.", RecordType::A, &ecs(net, prefix)).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{net}");
        assert!(m.metadata.authoritative, "{net}");
        assert_eq!(
            rrs(&m.answers),
            ["sip.example.com. 5 A 192.0.2.40"],
            "{net}"
        );
        assert_eq!(
            ecs_of(&m),
            Some((net.parse().expect("ip"), prefix, scope)),
            "{net}"
        );
    }
    // Every record of a NAPTR answer (SRV and addresses in the additional section) too.
    let m = udp(
        dns,
        "sip.example.com.",
        RecordType::NAPTR,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(m.answers.len(), 2);
    assert!(!m.additionals.is_empty());
    assert!(
        ttls(&m).iter().all(|&t| t == 5),
        "{:?}",
        rrs(&m.additionals)
    );
    let m = tcp(
        dns,
        "_sip._tcp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        [
            "_sip._tcp.sip.example.com. 5 SRV 10 100 5060 iad1.us-east.sip.example.com.",
            "_sip._tcp.sip.example.com. 5 SRV 20 100 5060 lon1.uk.sip.example.com.",
            "_sip._tcp.sip.example.com. 5 SRV 20 50 5060 lon2.uk.sip.example.com.",
        ]
    );
    // us-east has no IPv6 address: NODATA, whose SOA (minimum 60) is capped at 5 s as well.
    let m = udp(
        dns,
        "sip.example.com.",
        RecordType::AAAA,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!((rcode(&m), m.answers.len()), (ResponseCode::NoError, 0));
    assert_eq!(
        rrs(&m.authorities),
        ["example.com. 5 SOA ns1.example.com. hostmaster.example.com. 1 3600 600 604800 60"]
    );
}

/// What needs no map answers as always: an override, a pinned name, a static name.
async fn names_without_the_map_answer_as_always(dns: std::net::SocketAddr) {
    let m = udp(
        dns,
        "sip.example.com.",
        RecordType::A,
        &ecs("203.0.113.0", 24),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 A 192.0.2.20"]);
    assert_eq!(
        ecs_of(&m),
        Some(("203.0.113.0".parse().expect("ip"), 24, 25))
    );
    let mut m = udp(dns, "uk.sip.example.com.", RecordType::A, &Q::default()).await;
    m.answers.sort_by_key(|r| r.data.to_string());
    assert_eq!(
        rrs(&m.answers),
        [
            "uk.sip.example.com. 30 A 192.0.2.10",
            "uk.sip.example.com. 30 A 192.0.2.11"
        ]
    );
    let m = udp(dns, "ns1.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rrs(&m.answers), ["ns1.example.com. 300 A 192.0.2.53"]);
}

async fn counted_and_explained_as_warm_up(s: &TestServer) {
    assert_eq!(
        s.series(&queries("A", "NOERROR", "warmup")),
        Some(3.0),
        "{}",
        s.metrics()
    );
    assert_eq!(s.series(&queries("NAPTR", "NOERROR", "warmup")), Some(1.0));
    assert_eq!(s.series(&queries("SRV", "NOERROR", "warmup")), Some(1.0));
    assert_eq!(s.series(&queries("AAAA", "NOERROR", "warmup")), Some(1.0));
    assert_eq!(s.series(&queries("A", "NOERROR", "network")), Some(1.0));
    assert_eq!(s.series(&queries("A", "NOERROR", "pinned")), Some(1.0));
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let (code, body) = get(admin, "/v1/explain?client=81.2.69.1&name=sip.example.com").await;
    assert_eq!(code, 200, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (
            &e["service"]["reason"],
            &e["service"]["ttl"],
            &e["service"]["trouble"]
        ),
        (&"warmup".into(), &5.into(), &false.into())
    );
    assert_eq!(
        e["answer"],
        serde_json::json!(["sip.example.com. 5 A 192.0.2.40"])
    );
}

/// Once the map is in: located answers with the service's TTL.
async fn located_after_the_compile(s: TestServer) {
    let dns = s.addr;
    assert_eq!(compile(&s).await, GeoState::Loaded);
    let mut m = udp(
        dns,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    m.answers.sort_by_key(|r| r.data.to_string());
    assert_eq!(
        rrs(&m.answers),
        [
            "sip.example.com. 30 A 192.0.2.10",
            "sip.example.com. 30 A 192.0.2.11"
        ]
    );
    assert_eq!(ecs_of(&m), Some(("81.2.69.0".parse().expect("ip"), 24, 23)));
    let m = udp(
        dns,
        "sip.example.com.",
        RecordType::AAAA,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 AAAA 2001:db8::10"]);
    assert_eq!(s.series(&queries("A", "NOERROR", "country")), Some(1.0));
    s.stop().await;
}

#[tokio::test]
async fn the_warm_up_ttl_is_configurable_and_never_above_the_service_ttl() {
    let s = start_warming("{ database: geo.mmdb, warmup: { ttl: 12 } }").await;
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 12 A 192.0.2.40"]);
    s.stop().await;
    let s = start_warming("{ database: geo.mmdb, warmup: { ttl: 600 } }").await;
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 A 192.0.2.40"]);
    s.stop().await;
}

#[tokio::test]
async fn with_servfail_steered_names_fail_until_the_map_is_in() {
    let s = start_warming("{ database: geo.mmdb, warmup: { answer: servfail } }").await;
    let dns = s.addr;
    for (name, rtype) in [
        ("sip.example.com.", RecordType::A),
        ("sip.example.com.", RecordType::AAAA),
        ("sip.example.com.", RecordType::NAPTR),
        ("_sip._udp.sip.example.com.", RecordType::SRV),
    ] {
        let m = udp(dns, name, rtype, &ecs("81.2.69.0", 24)).await;
        assert_eq!(rcode(&m), ResponseCode::ServFail, "{name} {rtype}");
        assert!(!m.metadata.authoritative, "{name} {rtype}");
        assert_eq!(
            (m.answers.len(), m.authorities.len(), m.additionals.len()),
            (0, 0, 0),
            "{name} {rtype}"
        );
        // ECS echoed with scope 0, and Extended DNS Error 14 (Not Ready).
        assert_eq!(ecs_of(&m), Some(("81.2.69.0".parse().expect("ip"), 24, 0)));
        assert_eq!(ede(&m), Some(vec![0, 14]), "{name} {rtype}");
    }
    let m = tcp(dns, "sip.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!((rcode(&m), m.answers.len()), (ResponseCode::ServFail, 0));
    // Without EDNS there is no OPT, so no extended error.
    assert!(m.edns.is_none());
    // What needs no map answers as always.
    let m = udp(
        dns,
        "sip.example.com.",
        RecordType::A,
        &ecs("203.0.113.0", 24),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 A 192.0.2.20"]);
    let m = udp(
        dns,
        "lon1.uk.sip.example.com.",
        RecordType::A,
        &Q::default(),
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        ["lon1.uk.sip.example.com. 30 A 192.0.2.10"]
    );
    let m = udp(dns, "ns1.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rrs(&m.answers), ["ns1.example.com. 300 A 192.0.2.53"]);
    assert_eq!(
        s.series(&queries("A", "SERVFAIL", "warmup")),
        Some(2.0),
        "{}",
        s.metrics()
    );
    assert_eq!(s.series(&queries("SRV", "SERVFAIL", "warmup")), Some(1.0));
    // Nothing was answered for a region.
    assert_eq!(
        s.series("sipsteer_region_answers_total{region=\"us-east\"}"),
        Some(0.0)
    );
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let (_, body) = get(admin, "/v1/explain?client=81.2.69.1&name=sip.example.com").await;
    let e: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (
            &e["rcode"],
            &e["service"]["reason"],
            &e["service"]["servfail"]
        ),
        (&"Server Failure".into(), &"warmup".into(), &true.into()),
        "{body}"
    );

    assert_eq!(compile(&s).await, GeoState::Loaded);
    let m = udp(
        dns,
        "sip.example.com.",
        RecordType::A,
        &ecs("1.128.0.0", 24),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 A 192.0.2.60"]);
    assert_eq!(ecs_of(&m), Some(("1.128.0.0".parse().expect("ip"), 24, 16)));
    // Shut down (the query log is complete then), keeping the config directory.
    let mut s = s;
    s.running.take().expect("running").shutdown().await;
    // The query log names them too: the five SERVFAILs of steered names, no region.
    let text = std::fs::read_to_string(s.cfg.path("queries.log")).expect("query log");
    let warmup: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .filter(|v: &serde_json::Value| v["reason"] == "warmup")
        .collect();
    assert_eq!(warmup.len(), 5, "{text}");
    assert!(
        warmup
            .iter()
            .all(|v| v["rcode"] == 2 && v["region"].is_null()),
        "{text}"
    );
}

/// A database that cannot be compiled must not leave steered names failing: a fleet shares
/// its files, so every instance would fail together.
#[tokio::test]
async fn a_compile_that_fails_ends_servfail_with_fallback_answers() {
    let s = start_warming("{ database: geo.mmdb, warmup: { answer: servfail } }").await;
    let m = udp(s.addr, "sip.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::ServFail);
    // Replaced (by rename, as a deployment would) with a file that is no MaxMind database.
    let db = s.cfg.path("geo.mmdb");
    let bad = s.cfg.path("geo.mmdb.new");
    std::fs::write(&bad, b"not a maxmind database").expect("write");
    std::fs::rename(&bad, &db).expect("rename");
    assert_eq!(compile(&s).await, GeoState::Failed);
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(rrs(&m.answers), ["sip.example.com. 5 A 192.0.2.40"]);
    assert_eq!(s.series(&queries("A", "NOERROR", "warmup")), Some(1.0));
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    assert_eq!(get(admin, "/readyz").await.0, 503);
    s.stop().await;
}

#[test]
fn warm_up_settings_are_checked() {
    let cfg = ConfigDir::new(
        &main_with("\n  database: geo.mmdb\n  warmup: { answer: refused, ttl: 3601 }"),
        &[("example.com.yaml", STEER_ZONE)],
    );
    let err = match sipsteer::config::load(&cfg.main()) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    };
    let file = cfg.main().display().to_string();
    assert_eq!(
        err,
        format!(
            "{file}:5:21: geoip.warmup.answer: unknown answer `refused`: expected fallback or servfail\n\
             {file}:5:35: geoip.warmup.ttl: must be between 0 and 3600 seconds"
        )
    );
}
