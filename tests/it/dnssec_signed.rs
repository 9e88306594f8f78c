//! Signed static answers: with DO=1 every record set of a signed zone comes with an RRSIG that
//! verifies with the published DNSKEY (checked by hickory-proto's own canonical form and
//! crypto); a set and its RRSIG are written together or not at all (TC when the answer does
//! not fit); DO=0 replies are byte for byte those of the unsigned zone; and two instances with
//! the same key make byte-identical RRSIGs.

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC, RRSIG};
use hickory_proto::dnssec::{Algorithm as HAlg, PublicKey, PublicKeyBuf, TBS};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use sipsteer::dnssec::{Algorithm, Window, ZoneKey};

use crate::support::dns::*;

pub(crate) const DO: Q = Q {
    edns: None,
    ecs: None,
    version: 0,
    dnssec_ok: true,
};

/// STATIC_ZONE (and `extra` records) signed with a new key of `alg`; the key's PEM.
pub(crate) fn signed(alg: Algorithm, pem: &str, extra: &str) -> ConfigDir {
    let zone = format!(
        "{STATIC_ZONE}{extra}dnssec: {{ algorithm: {}, key: zone.pem }}\n",
        alg.number()
    );
    let dir = ConfigDir::new(MAIN, &[("example.com.yaml", &zone)]);
    std::fs::write(dir.path("zone.pem"), pem).expect("write key");
    dir
}

pub(crate) fn new_key(alg: Algorithm) -> (String, ZoneKey) {
    let pem = ZoneKey::generate_pem(alg).expect("generate");
    let key = ZoneKey::from_pkcs8(alg, pem.as_bytes()).expect("load");
    (pem, key)
}

fn public(key: &ZoneKey) -> PublicKeyBuf {
    PublicKeyBuf::new(
        key.dnskey_rdata()[4..].to_vec(),
        HAlg::from_u8(key.algorithm().number()),
    )
}

pub(crate) fn rrsig_of(r: &Record) -> Option<&RRSIG> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

/// Checks that `records` (one section) is each set followed by one RRSIG that verifies over
/// it with `key`; returns the number of sets.
pub(crate) fn verify_section(records: &[Record], key: &ZoneKey, signer: &Name) -> usize {
    let pk = public(key);
    let mut sets = 0;
    let mut i = 0;
    while i < records.len() {
        let rtype = records[i].record_type();
        let mut j = i;
        while j < records.len()
            && records[j].record_type() == rtype
            && records[j].name == records[i].name
        {
            j += 1;
        }
        let sig = records
            .get(j)
            .and_then(rrsig_of)
            .unwrap_or_else(|| panic!("no RRSIG after {:?}", records[i]));
        let input = sig.input();
        assert_eq!(input.type_covered, rtype);
        assert_eq!(input.key_tag, key.key_tag());
        assert_eq!(&input.signer_name, signer);
        assert_eq!(records[j].name, records[i].name, "RRSIG owner");
        let w = Window::now();
        assert_eq!(input.sig_inception.get(), w.inception);
        assert_eq!(input.sig_expiration.get(), w.expiration);
        let tbs = TBS::from_input(&records[i].name, DNSClass::IN, input, records[i..j].iter())
            .expect("signed data");
        pk.verify(tbs.as_ref(), sig.sig())
            .unwrap_or_else(|e| panic!("RRSIG over {:?} does not verify: {e}", records[i]));
        sets += 1;
        i = j + 1;
    }
    sets
}

#[tokio::test]
async fn every_static_set_comes_with_an_rrsig_that_verifies() {
    for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let (pem, key) = new_key(alg);
        let s = TestServer::start_in(signed(alg, &pem, "")).await;
        let apex = Name::from_ascii("example.com.").expect("name");
        for (name, t, sets) in [
            ("web.example.com.", RecordType::A, 1),
            ("Example.COM.", RecordType::MX, 2), // mail's A in the additional section
            ("example.com.", RecordType::NS, 3), // ns1's A and AAAA
            ("example.com.", RecordType::SOA, 1),
            ("example.com.", RecordType::TXT, 1),
            ("example.com.", RecordType::DNSKEY, 1),
            ("example.com.", RecordType::CDS, 1),
            ("_sip._udp.example.com.", RecordType::SRV, 2),
            ("naptr.example.com.", RecordType::NAPTR, 1),
            ("ptr.example.com.", RecordType::PTR, 1),
            ("caa.example.com.", RecordType::CAA, 1),
            ("alias.example.com.", RecordType::A, 3), // CNAME, CNAME, A
        ] {
            let m = udp(s.addr, name, t, &DO).await;
            assert_eq!(rcode(&m), ResponseCode::NoError, "{name} {t}");
            assert!(
                m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
                "DO echoed"
            );
            let got = verify_section(&m.answers, &key, &apex)
                + verify_section(&m.additionals, &key, &apex);
            assert_eq!(got, sets, "{name} {t}: {:?}", rrs(&m.answers));
        }
        // Negative answers: the SOA is signed (with its own TTL as the original TTL), and
        // a NODATA has its NSEC proof.
        let m = udp(s.addr, "web.example.com.", RecordType::MX, &DO).await;
        assert_eq!(verify_section(&m.authorities, &key, &apex), 2);
        assert_eq!(m.authorities[0].ttl, 60);
        assert_eq!(m.authorities[1].ttl, 60);
        s.stop().await;
    }
}

#[tokio::test]
async fn delegations_and_glue_are_not_signed_and_have_no_ds() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let s = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    let apex = Name::from_ascii("example.com.").expect("name");
    let cut = Name::from_ascii("sub.example.com.").expect("name");
    let m = udp(s.addr, "www.sub.example.com.", RecordType::A, &DO).await;
    assert!(!m.metadata.authoritative);
    assert_eq!(
        rrs(&m.authorities[..2]),
        [
            "sub.example.com. 300 NS ns.sub.example.com.",
            "sub.example.com. 300 NS ns2.example.net."
        ]
    );
    // The NSEC at the cut proves there is no DS: the child is unsigned.
    assert_eq!(verify_section(&m.authorities[2..], &key, &apex), 1);
    let n = nsec_of(&m.authorities[2]).expect("NSEC");
    assert_eq!(m.authorities[2].name, cut);
    let mut types: Vec<u16> = n.type_bit_maps().map(u16::from).collect();
    types.sort_unstable();
    assert_eq!(types, [2, 46, 47]);
    assert_eq!(
        rrs(&m.additionals),
        ["ns.sub.example.com. 300 A 192.0.2.99"]
    );
    // A DS query at the cut is the parent's to answer: NODATA with the same proof.
    let m = udp(s.addr, "sub.example.com.", RecordType::DS, &DO).await;
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(verify_section(&m.authorities, &key, &apex), 2);
    assert!(nsec_of(&m.authorities[2]).is_some());
    // Without DO, the referral is the unsigned zone's.
    let m = udp(s.addr, "www.sub.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(m.authorities.len(), 2);
    s.stop().await;
}

/// The raw reply to `name`/`t` asked with `q`, over UDP.
pub(crate) fn raw(addr: std::net::SocketAddr, name: &str, t: RecordType, q: &Q) -> Vec<u8> {
    udp_raw(addr, &query(name, t, q)).expect("udp reply")
}

#[tokio::test]
async fn without_do_replies_are_those_of_the_unsigned_zone() {
    let (pem, _key) = new_key(Algorithm::EcdsaP256);
    let signed = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    let plain = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let edns = Q {
        edns: Some(1232),
        ..Q::default()
    };
    for (name, t) in [
        ("web.example.com.", RecordType::A),
        ("example.com.", RecordType::MX),
        ("example.com.", RecordType::NS),
        ("example.com.", RecordType::ANY),
        ("nope.example.com.", RecordType::A),
        ("web.example.com.", RecordType::MX),
        ("alias.example.com.", RecordType::A),
        ("www.sub.example.com.", RecordType::A),
        ("big.example.com.", RecordType::TXT),
    ] {
        for q in [&Q::default(), &edns] {
            let a = tokio::task::spawn_blocking({
                let (sa, pa) = (signed.addr, plain.addr);
                let q = q.clone();
                move || (raw(sa, name, t, &q), raw(pa, name, t, &q))
            })
            .await
            .expect("join");
            assert_eq!(a.0, a.1, "{name} {t}");
        }
    }
    signed.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn two_instances_with_one_key_sign_alike() {
    for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let (pem, _key) = new_key(alg);
        let a = TestServer::start_in(signed(alg, &pem, "")).await;
        let b = TestServer::start_in(signed(alg, &pem, "")).await;
        for (name, t) in [
            ("web.example.com.", RecordType::A),
            ("example.com.", RecordType::DNSKEY),
            ("example.com.", RecordType::NS),
        ] {
            let (x, y) = (raw(a.addr, name, t, &DO), raw(b.addr, name, t, &DO));
            let m = parse(&x);
            assert!(
                m.answers.iter().any(|r| rrsig_of(r).is_some()),
                "{name} {t}"
            );
            assert_eq!(x, y, "{name} {t}: the same RRSIG bytes");
        }
        a.stop().await;
        b.stop().await;
    }
}

#[tokio::test]
async fn a_set_whose_rrsig_does_not_fit_truncates() {
    let (a, b) = ("A".repeat(200), "B".repeat(200));
    let extra = format!("  long: {{ TXT: [{a}, {b}] }}\n");
    let zone = format!("{STATIC_ZONE}{extra}");
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let dir = ConfigDir::new(
        MAIN,
        &[(
            "example.com.yaml",
            &format!("{zone}dnssec: {{ key: zone.pem }}\n"),
        )],
    );
    std::fs::write(dir.path("zone.pem"), pem).expect("write key");
    let s = TestServer::start_in(dir).await;
    let small = |dnssec_ok| Q {
        edns: Some(512),
        dnssec_ok,
        ..Q::default()
    };
    let m: Message = parse(&raw(
        s.addr,
        "long.example.com.",
        RecordType::TXT,
        &small(false),
    ));
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 2);
    let m = parse(&raw(
        s.addr,
        "long.example.com.",
        RecordType::TXT,
        &small(true),
    ));
    assert!(
        m.metadata.truncation,
        "the set and its RRSIG do not fit in 512"
    );
    assert!(m.answers.is_empty());
    let m = tcp(s.addr, "long.example.com.", RecordType::TXT, &small(true)).await;
    assert!(!m.metadata.truncation);
    let apex = Name::from_ascii("example.com.").expect("name");
    assert_eq!(verify_section(&m.answers, &key, &apex), 1);
    // In the additional section, an address that does not fit with its RRSIG is left out whole.
    let m = parse(&raw(s.addr, "example.com.", RecordType::NS, &small(true)));
    assert!(!m.metadata.truncation);
    assert_eq!(m.additionals.len() % 2, 0, "{:?}", rrs(&m.additionals));
    s.stop().await;
}

#[test]
fn the_dnskey_of_the_test_key_matches_hickory() {
    let (_, key) = new_key(Algorithm::Ed25519);
    let d = DNSKEY::with_flags(257, public(&key));
    assert_eq!(d.calculate_key_tag().expect("tag"), key.key_tag());
}

pub(crate) fn nsec_of(r: &Record) -> Option<&NSEC> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n),
        _ => None,
    }
}

/// `\000.name`: the next name of a compact-denial NSEC at `name`.
pub(crate) fn after(name: &Name) -> Name {
    let mut labels: Vec<Vec<u8>> = vec![vec![0]];
    labels.extend(name.iter().map(<[u8]>::to_vec));
    Name::from_labels(labels).expect("name")
}

#[tokio::test]
async fn nodata_carries_an_nsec_of_the_names_own_types() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let s = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    let apex = Name::from_ascii("example.com.").expect("name");
    let (rrsig, nsec) = (46, 47);
    for (name, t, types) in [
        ("web.example.com.", RecordType::MX, vec![1, rrsig, nsec]),
        ("_udp.example.com.", RecordType::A, vec![rrsig, nsec]), // empty non-terminal
        (
            "example.com.",
            RecordType::SRV,
            vec![2, 6, 15, 16, rrsig, nsec, 48, 59, 60],
        ),
        ("caa.example.com.", RecordType::A, vec![rrsig, nsec, 257]),
        ("Ns1.Example.com.", RecordType::MX, vec![1, 28, rrsig, nsec]),
    ] {
        let m = udp(s.addr, name, t, &DO).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(
            verify_section(&m.authorities, &key, &apex),
            2,
            "SOA and NSEC"
        );
        let owner = Name::from_ascii(name).expect("name");
        let r = &m.authorities[2];
        assert_eq!(r.name, owner, "the NSEC owner is the name asked");
        assert_eq!(r.ttl, 60, "the smaller of the SOA's TTL and minimum");
        let n = nsec_of(r).expect("an NSEC");
        assert_eq!(n.next_domain_name(), &after(&owner.to_lowercase()));
        let mut got: Vec<u16> = n.type_bit_maps().map(u16::from).collect();
        got.sort_unstable();
        assert_eq!(got, types, "{name}");
    }
    // Without DO, the NODATA has no NSEC.
    let m = udp(s.addr, "web.example.com.", RecordType::MX, &Q::default()).await;
    assert_eq!(m.authorities.len(), 1);
    s.stop().await;
}

/// RFC 4034 6.1 canonical order.
pub(crate) fn canonical_cmp(a: &Name, b: &Name) -> std::cmp::Ordering {
    let la: Vec<Vec<u8>> = a.iter().rev().map(<[u8]>::to_ascii_lowercase).collect();
    let lb: Vec<Vec<u8>> = b.iter().rev().map(<[u8]>::to_ascii_lowercase).collect();
    la.cmp(&lb)
}

#[tokio::test]
async fn no_nsec_covers_a_name_that_exists() {
    let (pem, _key) = new_key(Algorithm::Ed25519);
    let s = TestServer::start_in(signed(Algorithm::Ed25519, &pem, "")).await;
    let exist: Vec<Name> = STATIC_ZONE_NAMES
        .iter()
        .map(|n| Name::from_ascii(n).expect("name"))
        .collect();
    let mut proofs = 0;
    for n in &exist {
        let m = udp(s.addr, &n.to_string(), RecordType::HINFO, &DO).await;
        for r in &m.authorities {
            let Some(nsec) = nsec_of(r) else { continue };
            proofs += 1;
            for e in &exist {
                let covered = canonical_cmp(&r.name, e).is_lt()
                    && canonical_cmp(e, nsec.next_domain_name()).is_lt();
                assert!(!covered, "the NSEC at {} covers {e}", r.name);
            }
        }
    }
    // Every name but the CNAMEs (their chain ends out of the zone or at a NODATA of its own).
    assert!(proofs >= exist.len() - 4, "{proofs} proofs");
    s.stop().await;
}

#[test]
fn a_zone_signed_in_an_earlier_window_is_due_for_signing_again() {
    let (pem, _key) = new_key(Algorithm::EcdsaP256);
    let dir = signed(Algorithm::EcdsaP256, &pem, "");
    let routing = sipsteer::routing::compile(&load_config(&dir.main()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(!routing.signed_before(Window::at(now)));
    assert!(routing.signed_before(Window::at(now + 7 * 86_400)));
    let plain = ConfigDir::new(MAIN, &[("example.com.yaml", STATIC_ZONE)]);
    let routing = sipsteer::routing::compile(&load_config(&plain.main()));
    assert!(!routing.signed_before(Window::at(now + 7 * 86_400)));
}

#[tokio::test]
async fn the_first_expiry_of_the_served_signatures_is_a_metric() {
    let (pem, _key) = new_key(Algorithm::Ed25519);
    let s = TestServer::start_in(signed(Algorithm::Ed25519, &pem, "")).await;
    let name = "sipsteer_dnssec_signatures_expire_timestamp_seconds";
    let expiry = f64::from(Window::now().expiration);
    assert_eq!(s.series(name), Some(expiry));
    s.stop().await;
    let plain = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    assert_eq!(plain.series(name), Some(0.0), "0 while no zone is signed");
    plain.stop().await;
}

#[test]
fn explain_says_whether_the_answer_is_signed() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let dir = signed(Algorithm::EcdsaP256, &pem, "");
    let main = dir.main().display().to_string();
    let explain = |name: &str, t: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_sipsteer"))
            .args([
                "explain",
                "--config",
                &main,
                "--client",
                "192.0.2.1",
                name,
                t,
            ])
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        out.lines()
            .find_map(|l| l.strip_prefix("dnssec    ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no dnssec line in:\n{out}"))
    };
    let keyed = format!("algorithm 13, key tag {}", key.key_tag());
    assert_eq!(
        explain("web.example.com", "A"),
        format!("signed ({keyed}): 1 RRSIG(s) with DO=1")
    );
    assert_eq!(
        explain("web.example.com", "MX"),
        format!("signed ({keyed}): 2 RRSIG(s) with DO=1")
    );
    assert_eq!(
        explain("nope.example.com", "A"),
        format!(
            "signed ({keyed}): the name does not exist; its NXNAME proof (RFC 9824) is signed by the signer thread when first asked, then kept"
        )
    );
}
