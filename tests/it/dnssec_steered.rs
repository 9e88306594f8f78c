//! Signed steered answers: with DO=1 every steered RRset (NAPTR, SRV, A/AAAA, the targets'
//! addresses) of every region comes with an RRSIG that verifies with the zone's key, for
//! clients located by ECS, with a split and proportional shedding configured, and after a
//! health flip; a region without an address of the family asked gets a NODATA whose NSEC
//! verifies; DO=0 replies are byte for byte the unsigned zone's; two instances with one key
//! make the same RRSIGs; no signature is ever made on a query thread; a small signature
//! cache stays within its bound.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use sipsteer::dnssec::{Algorithm, ZoneKey};

use crate::dnssec_signed::{DO, new_key, nsec_of, rrsig_of, verify_section};
use crate::support::dns::*;
use crate::support::http::{get, send};
use crate::support::sip::{self, Mode};
use crate::support::steer::{GEO_CSV, STEER_ZONE};

const TOKEN: &str = "steersign-token-1";

fn main_cfg(extra: &str) -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\n\
         geoip: {{ database: geo.csv }}\nadmin: {{ token: {TOKEN} }}\nhealth: {{ check: none }}\n{extra}"
    )
}

/// STEER_ZONE with 30 % of uk's clients split to de, signed with `pem`.
fn signed_dir(main: &str, pem: &str, zone: &str) -> ConfigDir {
    let zone = format!("{zone}    split: {{ uk: {{ de: 30 }} }}\ndnssec: {{ key: zone.pem }}\n");
    let dir = ConfigDir::new(main, &[("example.com.yaml", &zone)]);
    std::fs::write(dir.path("geo.csv"), GEO_CSV).expect("csv");
    std::fs::write(dir.path("zone.pem"), pem).expect("key");
    dir
}

fn apex() -> Name {
    Name::from_ascii("example.com.").expect("name")
}

fn located(ip: &str) -> Q {
    Q {
        ecs: Some((ip.parse::<IpAddr>().expect("ip"), 24)),
        ..DO
    }
}

/// The records of a section without its RRSIGs.
fn unsigned(m: &[hickory_proto::rr::Record]) -> Vec<String> {
    let kept: Vec<_> = m
        .iter()
        .filter(|r| rrsig_of(r).is_none())
        .cloned()
        .collect();
    rrs(&kept)
}

/// The addresses of an A or AAAA answer (its TTL is checked against the DO=0 reply).
fn addresses(m: &Message) -> Vec<String> {
    unsigned(&m.answers)
        .iter()
        .map(|r| r.rsplit(' ').next().unwrap_or_default().to_string())
        .collect()
}

/// Asks `name`/`t` over TCP with DO=1 and without, checks that every set of the signed reply
/// verifies and that its records are those of the DO=0 reply; returns the signed reply and
/// the number of signed sets.
async fn checked(
    s: &TestServer,
    key: &ZoneKey,
    name: &str,
    t: RecordType,
    q: &Q,
) -> (Message, usize) {
    let m = tcp(s.addr, name, t, q).await;
    assert_eq!(rcode(&m), ResponseCode::NoError, "{name} {t} {:?}", q.ecs);
    let sets = verify_section(&m.answers, key, &apex())
        + verify_section(&m.authorities, key, &apex())
        + verify_section(&m.additionals, key, &apex());
    let plain = Q {
        dnssec_ok: false,
        edns: Some(1232),
        ..q.clone()
    };
    let p = tcp(s.addr, name, t, &plain).await;
    assert_eq!(
        unsigned(&m.answers),
        rrs(&p.answers),
        "{name} {t} {:?}",
        q.ecs
    );
    assert_eq!(
        unsigned(&m.additionals),
        rrs(&p.additionals),
        "{name} {t} {:?}",
        q.ecs
    );
    (m, sets)
}

/// Every steered question of the fixture for a client at `q`: its sets all verify.
async fn all_steered(s: &TestServer, key: &ZoneKey, q: &Q) -> usize {
    let mut sets = 0;
    for (name, t) in [
        ("sip.example.com.", RecordType::NAPTR),
        ("_sip._udp.sip.example.com.", RecordType::SRV),
        ("_sip._tcp.sip.example.com.", RecordType::SRV),
        ("sip.example.com.", RecordType::A),
        ("sip.example.com.", RecordType::AAAA),
        ("uk.sip.example.com.", RecordType::NAPTR),
        ("_sip._udp.de.sip.example.com.", RecordType::SRV),
        ("ams.sip.example.com.", RecordType::A),
        ("sg.sip.example.com.", RecordType::A),
    ] {
        sets += checked(s, key, name, t, q).await.1;
    }
    sets
}

/// A signature-cache series of `s`.
fn sig(s: &TestServer, series: &str) -> f64 {
    s.series(series)
        .unwrap_or_else(|| panic!("{series} not rendered"))
}

fn admin(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

#[tokio::test]
async fn every_steered_set_of_every_region_verifies_with_split_and_shedding() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let main = main_cfg("capacity: { shed: { from: 0.5, to: 0.9 } }\n");
    let s = TestServer::start_in(signed_dir(&main, &pem, STEER_ZONE)).await;
    // London (uk, or de by the split), Berlin (de), Brussels (ams), New York (us-east),
    // Tokyo (sg), an override network (de), a client without location (fallback).
    let clients = [
        "81.2.68.1",
        "81.2.69.1",
        "91.64.0.1",
        "81.240.0.1",
        "24.0.0.1",
        "126.0.0.1",
        "203.0.113.1",
        "10.9.9.9",
    ];
    for c in clients {
        assert!(all_steered(&s, &key, &located(c)).await >= 9, "{c}");
    }
    // Exact answers for two regions.
    let (m, _) = checked(
        &s,
        &key,
        "sip.example.com.",
        RecordType::A,
        &located("91.64.0.1"),
    )
    .await;
    assert_eq!(addresses(&m), ["192.0.2.20"]);
    let (m, _) = checked(
        &s,
        &key,
        "sip.example.com.",
        RecordType::A,
        &located("24.0.0.1"),
    )
    .await;
    assert_eq!(addresses(&m), ["192.0.2.40"]);
    // Over UDP too: NAPTR with its SRV sets and addresses in the additional section.
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::NAPTR,
        &located("81.2.68.1"),
    )
    .await;
    assert_eq!(verify_section(&m.answers, &key, &apex()), 1);
    assert!(verify_section(&m.additionals, &key, &apex()) >= 2);
    // ams has no IPv6 address: NODATA for AAAA, proved by an NSEC without AAAA.
    let m = tcp(
        s.addr,
        "sip.example.com.",
        RecordType::AAAA,
        &located("81.240.0.1"),
    )
    .await;
    assert!(m.answers.is_empty(), "{:?}", m.answers);
    assert_eq!(verify_section(&m.authorities, &key, &apex()), 2);
    let nsec = m.authorities.iter().find_map(nsec_of).expect("NSEC");
    let mut types: Vec<u16> = nsec.type_bit_maps().map(u16::from).collect();
    types.sort_unstable();
    assert_eq!(types, [1, 35, 46, 47], "A, NAPTR, RRSIG, NSEC");

    // lon1 at 700 of 1000 calls sheds half of its clients: the new plans are signed too.
    let (code, body) = send(
        admin(&s),
        "PUT",
        "/v1/servers/uk/lon1/load",
        Some(TOKEN),
        Some("{\"calls\":700}"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // Dublin's /24s (uk by country): lon1 leaves out about half of them.
    let mut srv_answers = std::collections::BTreeSet::new();
    for i in 0..16u8 {
        let c = format!("87.32.{i}.1");
        all_steered(&s, &key, &located(&c)).await;
        let name = "_sip._udp.sip.example.com.";
        let (m, _) = checked(&s, &key, name, RecordType::SRV, &located(&c)).await;
        srv_answers.insert(unsigned(&m.answers));
    }
    assert!(
        srv_answers.len() >= 2,
        "shedding moved no client: {srv_answers:?}"
    );
    for c in clients {
        all_steered(&s, &key, &located(c)).await;
    }
    assert_eq!(
        sig(&s, "sipsteer_dnssec_signatures_total{thread=\"query\"}"),
        0.0
    );
    assert_eq!(sig(&s, "sipsteer_dnssec_signature_cache_misses_total"), 0.0);
    assert!(sig(&s, "sipsteer_dnssec_signatures_total{thread=\"signer\"}") > 0.0);
    assert!(sig(&s, "sipsteer_dnssec_presign_variants") > 0.0);
    assert!(sig(&s, "sipsteer_dnssec_presign_timestamp_seconds") > 0.0);
    s.stop().await;
}

#[tokio::test]
async fn a_set_and_its_rrsig_go_together_or_not_at_all() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let s = TestServer::start_in(signed_dir(&main_cfg(""), &pem, STEER_ZONE)).await;
    let small = Q {
        edns: Some(512),
        ..located("81.2.68.1")
    };
    let full = tcp(s.addr, "sip.example.com.", RecordType::NAPTR, &small).await;
    let full_sets = verify_section(&full.additionals, &key, &apex());
    // Over UDP in 512 bytes: the NAPTR set with its RRSIG; in the additional section only
    // the sets that fit whole with their RRSIGs (each one checked), the others left out.
    let m = udp(s.addr, "sip.example.com.", RecordType::NAPTR, &small).await;
    assert!(!m.metadata.truncation);
    assert_eq!(verify_section(&m.answers, &key, &apex()), 1);
    let sets = verify_section(&m.additionals, &key, &apex());
    assert!(sets < full_sets, "{sets} of {full_sets} sets in 512 bytes");
    assert!(m.to_vec().expect("encode").len() <= 512);
    s.stop().await;
}

#[tokio::test]
async fn without_do_steered_replies_are_those_of_the_unsigned_zone() {
    let (pem, _key) = new_key(Algorithm::EcdsaP256);
    let main = main_cfg("");
    let signed = TestServer::start_in(signed_dir(&main, &pem, STEER_ZONE)).await;
    let zone = format!("{STEER_ZONE}    split: {{ uk: {{ de: 30 }} }}\n");
    let plain_dir = ConfigDir::new(&main, &[("example.com.yaml", &zone)]);
    std::fs::write(plain_dir.path("geo.csv"), GEO_CSV).expect("csv");
    let plain = TestServer::start_in(plain_dir).await;
    let ecs = |ip: &str| Q {
        ecs: Some((ip.parse::<IpAddr>().expect("ip"), 24)),
        ..Q::default()
    };
    let edns = Q {
        edns: Some(1232),
        ..Q::default()
    };
    for q in [
        Q::default(),
        edns,
        ecs("81.2.68.1"),
        ecs("81.240.0.1"),
        ecs("24.0.0.1"),
    ] {
        for (name, t) in [
            ("sip.example.com.", RecordType::NAPTR),
            ("_sip._udp.sip.example.com.", RecordType::SRV),
            ("sip.example.com.", RecordType::A),
            ("sip.example.com.", RecordType::AAAA),
            ("uk.sip.example.com.", RecordType::NAPTR),
            ("lon1.uk.sip.example.com.", RecordType::A),
        ] {
            let packet = query(name, t, &q);
            let (sa, pa) = (signed.addr, plain.addr);
            let (a, b) =
                tokio::task::spawn_blocking(move || (udp_raw(sa, &packet), udp_raw(pa, &packet)))
                    .await
                    .expect("join");
            assert!(a.is_some(), "{name} {t}");
            assert_eq!(a, b, "{name} {t} {:?}", q.ecs);
        }
    }
    signed.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn two_instances_with_one_key_make_identical_steered_rrsigs() {
    let (pem, _key) = new_key(Algorithm::EcdsaP256);
    let main = main_cfg("");
    let a = TestServer::start_in(signed_dir(&main, &pem, STEER_ZONE)).await;
    let b = TestServer::start_in(signed_dir(&main, &pem, STEER_ZONE)).await;
    for c in ["81.2.68.1", "91.64.0.1", "24.0.0.1"] {
        for (name, t) in [
            ("sip.example.com.", RecordType::NAPTR),
            ("_sip._tcp.sip.example.com.", RecordType::SRV),
            ("sip.example.com.", RecordType::A),
        ] {
            let packet = query(name, t, &located(c));
            let (x, y) = (a.addr, b.addr);
            let (x, y) =
                tokio::task::spawn_blocking(move || (tcp_raw(x, &packet), tcp_raw(y, &packet)))
                    .await
                    .expect("join");
            assert!(
                parse(&x).answers.iter().any(|r| rrsig_of(r).is_some()),
                "{c} {name}"
            );
            assert_eq!(x, y, "{c} {name} {t}: the same RRSIG bytes");
        }
    }
    a.stop().await;
    b.stop().await;
}

/// Two regions probed over SIP (uk at 127.0.0.2, de at 127.0.0.3), fast failover.
fn flip_zone(uk: &sip::Responder, de: &sip::Responder) -> String {
    format!(
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
      lon1: {{ address: {}, port: {} }}
  de:
    location: [50.1, 8.7]
    servers:
      fra1: {{ address: {}, port: {} }}
services:
  sip: {{ regions: [uk, de], fallback: [uk, de], failover: 2, trouble_ttl: 5 }}
dnssec: {{ key: zone.pem }}
"#,
        uk.addr.ip(),
        uk.addr.port(),
        de.addr.ip(),
        de.addr.port()
    )
}

#[tokio::test]
async fn after_a_health_flip_the_new_answers_are_signed_before_they_are_served() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let uk = sip::udp_on("127.0.0.2", Mode::Code(200)).await;
    let de = sip::udp_on("127.0.0.3", Mode::Code(200)).await;
    let main = "listen: { dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }\nzones: zones\n\
                health: { check: sip-options-udp }\n";
    let dir = ConfigDir::new(main, &[("example.com.yaml", &flip_zone(&uk, &de))]);
    std::fs::write(dir.path("zone.pem"), &pem).expect("key");
    let s = TestServer::start_in(dir).await;
    let start = Instant::now();
    while get(admin(&s), "/readyz").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(15), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = |m: &Message| unsigned(&m.answers).first().cloned().unwrap_or_default();
    let (m, _) = checked(&s, &key, "sip.example.com.", RecordType::A, &DO).await;
    assert!(first(&m).ends_with(" A 127.0.0.2"), "{:?}", m.answers);
    // uk stops answering: every DO=1 reply until (and after) the flip is signed.
    uk.set(Mode::Silent);
    let start = Instant::now();
    loop {
        let (m, _) = checked(&s, &key, "sip.example.com.", RecordType::A, &DO).await;
        let srv = tcp(s.addr, "_sip._udp.sip.example.com.", RecordType::SRV, &DO).await;
        assert_eq!(rcode(&srv), ResponseCode::NoError);
        assert!(verify_section(&srv.answers, &key, &apex()) == 1);
        if first(&m).ends_with(" A 127.0.0.3") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "uk never left the answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (m, _) = checked(&s, &key, "sip.example.com.", RecordType::NAPTR, &DO).await;
    assert_eq!(verify_section(&m.answers, &key, &apex()), 1);
    assert_eq!(
        sig(&s, "sipsteer_dnssec_signatures_total{thread=\"query\"}"),
        0.0
    );
    assert_eq!(sig(&s, "sipsteer_dnssec_signature_cache_misses_total"), 0.0);
    s.stop().await;
}

#[tokio::test]
async fn a_small_signature_cache_stays_within_its_bound() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let main = main_cfg("dns: { signature_cache: 16 }\n");
    let s = TestServer::start_in(signed_dir(&main, &pem, STEER_ZONE)).await;
    assert_eq!(sig(&s, "sipsteer_dnssec_signature_cache_capacity"), 16.0);
    assert_eq!(sig(&s, "sipsteer_dnssec_signature_cache_entries"), 16.0);
    assert!(sig(&s, "sipsteer_dnssec_presign_variants") > 16.0);
    assert!(sig(&s, "sipsteer_dnssec_signature_cache_full_total") > 0.0);
    // What did not fit is answered SERVFAIL with "not ready" (never unsigned) or signed.
    let mut servfail = 0;
    for c in [
        "81.2.68.1",
        "91.64.0.1",
        "81.240.0.1",
        "24.0.0.1",
        "126.0.0.1",
    ] {
        for (name, t) in [
            ("sip.example.com.", RecordType::NAPTR),
            ("sip.example.com.", RecordType::A),
            ("_sip._tcp.sip.example.com.", RecordType::SRV),
        ] {
            let packet = query(name, t, &located(c));
            let addr = s.addr;
            let raw = tokio::task::spawn_blocking(move || tcp_raw(addr, &packet))
                .await
                .expect("join");
            let m = parse(&raw);
            if rcode(&m) == ResponseCode::ServFail {
                servfail += 1;
                assert!(m.answers.is_empty());
                // Extended DNS Error 14, "Not Ready", at the end of the OPT record.
                assert!(raw.ends_with(&[0, 15, 0, 2, 0, 14]), "{name}: EDE 14");
            } else {
                assert!(verify_section(&m.answers, &key, &apex()) >= 1, "{c} {name}");
            }
        }
    }
    assert!(servfail > 0, "16 entries cannot hold every variant");
    assert!(sig(&s, "sipsteer_dnssec_signature_cache_misses_total") >= f64::from(servfail));
    assert!(sig(&s, "sipsteer_dnssec_signature_cache_entries") <= 16.0);
    assert_eq!(
        sig(&s, "sipsteer_dnssec_signatures_total{thread=\"query\"}"),
        0.0
    );
    // A larger bound on reload: the next round signs the rest, and every answer is signed.
    std::fs::write(s.cfg.main(), main_cfg("dns: { signature_cache: 100000 }\n")).expect("main");
    s.reload().await;
    assert_eq!(
        sig(&s, "sipsteer_dnssec_signature_cache_capacity"),
        100_000.0
    );
    for c in [
        "81.2.68.1",
        "91.64.0.1",
        "81.240.0.1",
        "24.0.0.1",
        "126.0.0.1",
    ] {
        all_steered(&s, &key, &located(c)).await;
    }
    s.stop().await;
}

#[test]
fn explain_says_steered_answers_are_signed() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let dir = signed_dir(&main_cfg(""), &pem, STEER_ZONE);
    let main = dir.main().display().to_string();
    let explain = |name: &str, t: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_sipsteer"))
            .args(["explain", "--config", &main, "--client", "91.64.0.1"])
            .args([name, t])
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        out.lines()
            .find_map(|l| l.strip_prefix("dnssec    ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no dnssec line in:\n{out}"))
    };
    let keyed = format!("algorithm 13, key tag {}", key.key_tag());
    for (name, t) in [
        ("sip.example.com", "A"),
        ("sip.example.com", "NAPTR"),
        ("_sip._udp.sip.example.com", "SRV"),
    ] {
        assert_eq!(
            explain(name, t),
            format!("signed ({keyed}): 1 RRSIG(s) with DO=1"),
            "{name} {t}"
        );
    }
    // ams has no IPv6 address: the NODATA's SOA and NSEC are signed.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(["explain", "--config", &main, "--client", "81.240.0.1"])
        .args(["sip.example.com", "AAAA"])
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains(&format!("dnssec    signed ({keyed}): 2 RRSIG(s) with DO=1")),
        "{out}"
    );
}
