//! Names that do not exist in a signed zone, asked with DO=1: RFC 9824 compact denial (NOERROR,
//! the signed SOA and an NSEC owned by the name asked, next name `\000.<name>`, types RRSIG
//! NSEC NXNAME, signed by the zone key), signed by the signer thread on the first query and
//! answered from the cache after; over UDP (127.0.0.1 and a 0.0.0.0 listen, the reply from the
//! address asked), TCP, DNS over TLS and DNS over HTTPS; no NSEC ever covers a name that
//! exists; DO=0 replies unchanged; a flood of new names past the signer's queue is dropped and
//! counted while other queries are answered; the signed RFC 8482 answer to ANY.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use sipsteer::dnssec::{Algorithm, ZoneKey};

use crate::dnssec_signed::{
    DO, after, canonical_cmp, new_key, nsec_of, raw, rrsig_of, signed, verify_section,
};
use crate::support::dns::*;

const SIGNED: &str = "sipsteer_dnssec_nxname_signed_total";
const HITS: &str = "sipsteer_dnssec_nxname_cache_hits_total";
const HANDOFFS: &str = "sipsteer_dnssec_nxname_handoffs_total";
const DROPPED: &str = "sipsteer_dnssec_nxname_dropped_total";
const ON_QUERY_THREADS: &str = "sipsteer_dnssec_signatures_total{thread=\"query\"}";
/// RRSIG, NSEC, NXNAME.
const NXNAME_TYPES: [u16; 3] = [46, 47, 128];

fn apex() -> Name {
    Name::from_ascii("example.com.").expect("name")
}

fn types_of(r: &Record) -> Vec<u16> {
    let n = nsec_of(r).unwrap_or_else(|| panic!("not an NSEC: {r:?}"));
    let mut t: Vec<u16> = n.type_bit_maps().map(u16::from).collect();
    t.sort_unstable();
    t
}

/// Checks that `m` is the compact denial of `asked`: NOERROR, no answer (or only what comes
/// before, `answers` records), the SOA and the NXNAME NSEC at `owner`, each with an RRSIG by
/// `key`.
fn assert_nxname(m: &Message, key: &ZoneKey, asked: &Name, answers: usize) {
    assert_eq!(rcode(m), ResponseCode::NoError, "{asked}: RFC 9824 3");
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), answers, "{asked}: {:?}", rrs(&m.answers));
    assert_eq!(
        verify_section(&m.authorities, key, &apex()),
        2,
        "{asked}: the SOA and the NSEC, each signed"
    );
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let r = &m.authorities[2];
    assert_eq!(&r.name, asked, "the NSEC is owned by the name asked");
    assert_eq!(r.ttl, 60, "the smaller of the SOA's TTL and minimum");
    let n = nsec_of(r).expect("NSEC");
    assert_eq!(n.next_domain_name(), &after(&asked.to_lowercase()));
    assert_eq!(types_of(r), NXNAME_TYPES, "{asked}");
}

#[tokio::test]
async fn a_name_that_does_not_exist_gets_a_signed_nxname_proof() {
    for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let (pem, key) = new_key(alg);
        let s = TestServer::start_in(signed(alg, &pem, "")).await;
        // The case asked is kept in the owner; the signature is over the lowercase name.
        let asked = Name::from_ascii("NoPe.Example.COM.").expect("name");
        let first = udp(s.addr, "NoPe.Example.COM.", RecordType::A, &DO).await;
        assert_nxname(&first, &key, &asked, 0);
        assert_eq!(s.series(SIGNED), Some(1.0), "signed by the signer thread");
        assert_eq!(s.series(HANDOFFS), Some(1.0));
        assert_eq!(s.series(HITS), Some(0.0));
        // Asked again (in another case): the kept proof, on the query thread.
        let again = udp(s.addr, "nope.example.com.", RecordType::TXT, &DO).await;
        assert_nxname(
            &again,
            &key,
            &Name::from_ascii("nope.example.com.").expect("name"),
            0,
        );
        assert_eq!(s.series(SIGNED), Some(1.0));
        assert_eq!(s.series(HITS), Some(1.0));
        assert_eq!(
            rrsig_of(&again.authorities[3]).map(|s| s.sig().to_vec()),
            rrsig_of(&first.authorities[3]).map(|s| s.sig().to_vec()),
            "the same proof"
        );
        // A CNAME chain that ends at a name that does not exist: the proof of that name.
        let m = udp(s.addr, "dangling.example.com.", RecordType::A, &DO).await;
        let end = Name::from_ascii("nothere.example.com.").expect("name");
        assert_eq!(
            rrs(&m.answers[..1]),
            ["dangling.example.com. 300 CNAME nothere.example.com."]
        );
        assert_eq!(verify_section(&m.answers, &key, &apex()), 1);
        assert_nxname(&m, &key, &end, 2);
        assert_eq!(s.series(SIGNED), Some(2.0));
        assert_eq!(s.series(DROPPED), Some(0.0));
        assert_eq!(s.series(ON_QUERY_THREADS), Some(0.0));
        s.stop().await;
    }
}

#[tokio::test]
async fn two_instances_with_one_key_make_the_same_proof() {
    let (pem, _key) = new_key(Algorithm::EcdsaP256);
    let a = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    let b = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    let x = raw(a.addr, "nope.example.com.", RecordType::A, &DO);
    let y = raw(b.addr, "nope.example.com.", RecordType::A, &DO);
    assert_eq!(parse(&x).authorities.len(), 4);
    assert_eq!(x, y, "byte-identical proofs");
    a.stop().await;
    b.stop().await;
}

/// Names next to the existing ones in canonical order, below them, below empty non-terminals,
/// odd labels, and random ones.
fn missing_names() -> Vec<String> {
    let mut out: Vec<String> = [
        "a.b",
        "x.a.b",
        "\\000.a.b",
        "\\000",
        "\\000.web",
        "\\000.\\000.web",
        "x-",
        "web-",
        "wea",
        "weba",
        "wec",
        "we",
        "web0",
        "x.web",
        "x._udp",
        "_tcp",
        "x._sip._udp",
        "a",
        "b0",
        "x.deep.a.b",
        "deep.a",
        "ns",
        "ns10",
        "zzzzz",
        "0",
        "-",
        "\\255",
        "*",
        "x.*",
        "mail.mail",
    ]
    .iter()
    .map(|n| format!("{n}.example.com."))
    .collect();
    out.retain(|n| {
        // "a.b.example.com." exists (an empty non-terminal): asked for its missing type below.
        !STATIC_ZONE_NAMES.contains(&n.as_str())
    });
    for _ in 0..20 {
        let len = 1 + rand::random::<u32>() % 12;
        let label: String = (0..len)
            .map(|_| {
                char::from(
                    b"abcdefghijklmnopqrstuvwxyz0123456789-_"[rand::random::<u32>() as usize % 38],
                )
            })
            .collect();
        out.push(format!("{label}.example.com."));
        out.push(format!("{label}.www.example.com."));
    }
    out
}

/// A name written with `\DDD` escapes for any byte (hickory's parser takes no `\000`).
fn name_of(s: &str) -> Name {
    let labels: Vec<Vec<u8>> = s
        .trim_end_matches('.')
        .split('.')
        .map(|l| match l.strip_prefix('\\') {
            Some(d) => vec![d.parse::<u8>().expect("\\DDD")],
            None => l.as_bytes().to_vec(),
        })
        .collect();
    Name::from_labels(labels).expect("name")
}

/// An A query for `name` with DO=1.
fn query_of(name: &Name) -> Vec<u8> {
    use hickory_proto::op::{Edns, MessageType, OpCode, Query};
    let mut m = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(true);
    m.set_edns(e);
    m.to_vec().expect("encode query")
}

#[tokio::test]
async fn no_nsec_covers_or_denies_a_name_that_exists() {
    let (pem, key) = new_key(Algorithm::Ed25519);
    let s = TestServer::start_in(signed(Algorithm::Ed25519, &pem, "")).await;
    let exist: Vec<Name> = STATIC_ZONE_NAMES
        .iter()
        .map(|n| Name::from_ascii(n).expect("name"))
        .collect();
    let mut nsecs: Vec<(Name, Name, Vec<u16>)> = Vec::new();
    let mut keep = |m: &Message| {
        for r in m.authorities.iter().filter(|r| nsec_of(r).is_some()) {
            let next = nsec_of(r).expect("NSEC").next_domain_name().clone();
            nsecs.push((r.name.clone(), next, types_of(r)));
        }
    };
    let mut denied = 0;
    for n in missing_names() {
        let asked = name_of(&n);
        if exist.iter().any(|e| e == &asked) {
            continue;
        }
        let m = tokio::task::spawn_blocking({
            let (addr, q) = (s.addr, query_of(&asked));
            move || parse(&udp_raw(addr, &q).expect("a reply"))
        })
        .await
        .expect("join");
        assert_nxname(&m, &key, &asked, 0);
        keep(&m);
        denied += 1;
    }
    // The existing names' own proofs (NODATA): never an NXNAME one.
    for e in &exist {
        let m = udp(s.addr, &e.to_string(), RecordType::HINFO, &DO).await;
        // (A CNAME's chain may end at a name that does not exist: that name's proof.)
        for r in m
            .authorities
            .iter()
            .filter(|r| nsec_of(r).is_some() && &r.name == e)
        {
            assert!(!types_of(r).contains(&128), "{e} is denied");
        }
        keep(&m);
    }
    for (owner, next, types) in &nsecs {
        for e in &exist {
            let covered = canonical_cmp(owner, e).is_lt() && canonical_cmp(e, next).is_lt();
            assert!(!covered, "the NSEC at {owner} covers {e}");
            if types.contains(&128) {
                assert_ne!(owner, e, "{e} exists but its NSEC says NXNAME");
            }
        }
    }
    assert!(denied >= 60, "{denied} names denied");
    assert_eq!(s.series(ON_QUERY_THREADS), Some(0.0));
    s.stop().await;
}

#[tokio::test]
async fn without_do_an_nxdomain_is_unchanged_byte_for_byte() {
    let (pem, _key) = new_key(Algorithm::EcdsaP256);
    let signed = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    let plain = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let edns = Q {
        edns: Some(1232),
        ..Q::default()
    };
    for name in [
        "nope.example.com.",
        "dangling.example.com.",
        "x.web.example.com.",
    ] {
        // Asked with DO=1 first, so the proof is kept: it must not show without DO.
        let m = udp(signed.addr, name, RecordType::A, &DO).await;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        for q in [&Q::default(), &edns] {
            let a = tokio::task::spawn_blocking({
                let (sa, pa) = (signed.addr, plain.addr);
                let q = q.clone();
                move || {
                    (
                        raw(sa, name, RecordType::A, &q),
                        raw(pa, name, RecordType::A, &q),
                    )
                }
            })
            .await
            .expect("join");
            assert_eq!(rcode(&parse(&a.0)), ResponseCode::NXDomain, "{name}");
            assert_eq!(a.0, a.1, "{name}");
        }
    }
    signed.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn a_proof_too_large_for_the_udp_reply_truncates() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let s = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    // A 200-byte name: its proof does not fit 512 bytes with the SOA and its RRSIG.
    let long = format!(
        "{}.{}.{}.example.com.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63)
    );
    let small = Q {
        edns: Some(512),
        dnssec_ok: true,
        ..Q::default()
    };
    let m = parse(&raw(s.addr, &long, RecordType::A, &small));
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    assert_eq!(s.series(HANDOFFS), Some(0.0), "nothing handed off");
    let m = tcp(s.addr, &long, RecordType::A, &small).await;
    assert_nxname(&m, &key, &Name::from_ascii(&long).expect("name"), 0);
    s.stop().await;
}

/// A signed zone served on `listen` (one address), with `extra` in the main file.
fn signed_on(listen: &str, extra: &str, pem: &str) -> ConfigDir {
    let main = format!(
        "listen: {{ dns: [\"{listen}\"], admin: \"off\" }}\nzones: zones\nhealth: {{ check: none }}\n{extra}"
    );
    let zone = format!("{STATIC_ZONE}dnssec: {{ key: zone.pem }}\n");
    let dir = ConfigDir::new(&main, &[("example.com.yaml", &zone)]);
    std::fs::write(dir.path("zone.pem"), pem).expect("write key");
    dir
}

#[tokio::test]
async fn on_a_wildcard_listen_the_signed_reply_leaves_from_the_address_asked() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let s = TestServer::start_in(signed_on("0.0.0.0:0", "", &pem)).await;
    let port = s.addr.port();
    let names = ["one.example.com.", "two.example.com."];
    let replies = tokio::task::spawn_blocking(move || {
        // 127.0.0.2 is on the loopback too: a reply from 127.0.0.1 would be the wrong source.
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut out = Vec::new();
        for (name, dest) in names.into_iter().zip(["127.0.0.2", "127.0.0.1"]) {
            let to: SocketAddr = format!("{dest}:{port}").parse().expect("addr");
            sock.send_to(&query(name, RecordType::A, &DO), to)
                .expect("send");
            let mut buf = vec![0u8; 4096];
            let (n, from) = sock.recv_from(&mut buf).expect("a reply");
            out.push((to, from, buf[..n].to_vec()));
        }
        out
    })
    .await
    .expect("join");
    for ((to, from, bytes), name) in replies.iter().zip(names) {
        assert_eq!(from, to, "the reply leaves from the address asked");
        assert_nxname(
            &parse(bytes),
            &key,
            &Name::from_ascii(name).expect("name"),
            0,
        );
    }
    assert_eq!(
        s.series(HANDOFFS),
        Some(2.0),
        "both through the signer thread"
    );
    s.stop().await;
}

#[tokio::test]
async fn tcp_dot_and_doh_wait_for_the_signer_without_blocking() {
    use crate::encrypted::{TestCa, doh, dot, https_addr, tls_addr};
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let ca = TestCa::new();
    let dir = signed_on(
        "127.0.0.1:0",
        "tls: { certificate: cert.pem, key: key.pem }\n",
        &pem,
    );
    let main = std::fs::read_to_string(dir.main()).expect("read");
    let main = main.replace(
        "admin: \"off\" }",
        "admin: \"off\", tls: [\"127.0.0.1:0\"], https: [\"127.0.0.1:0\"] }",
    );
    std::fs::write(dir.main(), main).expect("write");
    let (cert, tls_key, _) = ca.leaf(1);
    std::fs::write(dir.path("cert.pem"), cert).expect("cert");
    std::fs::write(dir.path("key.pem"), tls_key).expect("key");
    let s = TestServer::start_in(dir).await;
    // Each name new to the cache, so each reply comes from the signer thread.
    let m = tcp(s.addr, "overtcp.example.com.", RecordType::A, &DO).await;
    assert_nxname(
        &m,
        &key,
        &Name::from_ascii("overtcp.example.com.").expect("name"),
        0,
    );
    let packet = query("overtls.example.com.", RecordType::AAAA, &DO);
    let (reply, _) = dot(&ca, tls_addr(&s), &packet).await;
    assert_eq!(reply.len() % 468, 0, "padded after the proof went in");
    assert_nxname(
        &parse(&reply),
        &key,
        &Name::from_ascii("overtls.example.com.").expect("name"),
        0,
    );
    let packet = query("overhttps.example.com.", RecordType::A, &DO);
    let reply = doh(&ca, https_addr(&s), &packet, true).await;
    assert_nxname(
        &parse(&reply),
        &key,
        &Name::from_ascii("overhttps.example.com.").expect("name"),
        0,
    );
    // Pipelined on one TCP connection, a new name between two others: replies in order.
    let replies = tokio::task::spawn_blocking({
        let addr = s.addr;
        move || {
            pipelined(
                addr,
                &["web.example.com.", "pipe.example.com.", "mail.example.com."],
            )
        }
    })
    .await
    .expect("join");
    assert_eq!(
        rrs(&replies[0].answers[..2]),
        [
            "web.example.com. 60 A 192.0.2.80",
            "web.example.com. 60 A 192.0.2.81"
        ]
    );
    assert_nxname(
        &replies[1],
        &key,
        &Name::from_ascii("pipe.example.com.").expect("name"),
        0,
    );
    assert_eq!(
        rrs(&replies[2].answers[..1]),
        ["mail.example.com. 300 A 192.0.2.25"]
    );
    assert_eq!(s.series(HANDOFFS), Some(4.0));
    assert_eq!(s.series(SIGNED), Some(4.0));
    assert_eq!(s.series(ON_QUERY_THREADS), Some(0.0));
    s.stop().await;
}

/// Sends every query on one TCP connection before reading, then reads the replies in order.
fn pipelined(addr: SocketAddr, names: &[&str]) -> Vec<Message> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut all = Vec::new();
    for n in names {
        let q = query(n, RecordType::A, &DO);
        all.extend_from_slice(&(q.len() as u16).to_be_bytes());
        all.extend_from_slice(&q);
    }
    c.write_all(&all).expect("write");
    names
        .iter()
        .map(|_| {
            let mut len = [0u8; 2];
            c.read_exact(&mut len).expect("length");
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut buf).expect("body");
            parse(&buf)
        })
        .collect()
}

#[tokio::test]
async fn a_flood_of_new_names_past_the_queue_is_dropped_and_counted() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let dir = signed_on(
        "127.0.0.1:0",
        "dnssec: { denial: { queue: 1, cache: 100 } }\n",
        &pem,
    );
    let s = TestServer::start_in(dir).await;
    const N: usize = 2000;
    const CHUNK: usize = 100;
    let addr = s.addr;
    let seed = rand::random::<u32>();
    let answered = tokio::task::spawn_blocking(move || {
        // One socket, so every query reaches the same listener thread, in order: the reply to
        // the name that exists, sent after each chunk, comes once the chunk was served (and
        // a chunk's replies fit the socket's receive buffer).
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut answered = Vec::new();
        for chunk in 0..N / CHUNK {
            for i in chunk * CHUNK..(chunk + 1) * CHUNK {
                let q = query(&format!("flood{seed}-{i}.example.com."), RecordType::A, &DO);
                sock.send_to(&q, addr).expect("send");
            }
            // Meanwhile, a name that exists is answered.
            let mut q = query("web.example.com.", RecordType::A, &DO);
            q[..2].copy_from_slice(&(chunk as u16).to_be_bytes());
            sock.send_to(&q, addr).expect("send");
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, _) = sock.recv_from(&mut buf).expect("web.example.com answered");
                if buf[..2] == (chunk as u16).to_be_bytes() {
                    answered.push(parse(&buf[..n]));
                    break;
                }
            }
        }
        answered
    })
    .await
    .expect("join");
    assert_eq!(answered.len(), N / CHUNK);
    for m in &answered {
        assert_eq!(m.answers.len(), 3, "two A and their RRSIG");
    }
    // Every query was either handed to the signer or dropped.
    let handed = s.series(HANDOFFS).expect("handoffs");
    let dropped = s.series(DROPPED).expect("dropped");
    assert_eq!(handed + dropped, N as f64);
    assert!(dropped >= 1.0, "the queue holds one: {dropped} dropped");
    // The signer signs each handed-off name once (it may still be at it).
    let mut signed = 0.0;
    for _ in 0..200 {
        signed = s.series(SIGNED).expect("signed");
        if signed == handed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(signed, handed);
    assert_eq!(s.series(ON_QUERY_THREADS), Some(0.0));
    // After the flood, a new name is answered.
    let m = udp(s.addr, "after.example.com.", RecordType::A, &DO).await;
    assert_nxname(
        &m,
        &key,
        &Name::from_ascii("after.example.com.").expect("name"),
        0,
    );
    s.stop().await;
}

fn hinfo(r: &Record) -> Option<(Vec<u8>, Vec<u8>)> {
    match &r.data {
        RData::HINFO(h) => Some((h.cpu.to_vec(), h.os.to_vec())),
        _ => None,
    }
}

#[tokio::test]
async fn any_with_do_is_signed() {
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let s = TestServer::start_in(signed(Algorithm::EcdsaP256, &pem, "")).await;
    for name in [
        "web.example.com.",
        "example.com.",
        "deep.a.b.example.com.",
        "naptr.example.com.",
    ] {
        let m = udp(s.addr, name, RecordType::ANY, &DO).await;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert_eq!(m.answers.len(), 2, "{name}: {:?}", rrs(&m.answers));
        assert_eq!(
            hinfo(&m.answers[0]),
            Some((b"RFC8482".to_vec(), Vec::new())),
            "{name}"
        );
        assert_eq!(m.answers[0].ttl, 60);
        assert_eq!(verify_section(&m.answers, &key, &apex()), 1, "{name}");
    }
    // A CNAME is the only data at its name: answered with its RRSIG.
    let m = udp(s.addr, "www.example.com.", RecordType::ANY, &DO).await;
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(verify_section(&m.answers, &key, &apex()), 1);
    // An empty non-terminal: NODATA with its proof; a name that does not exist: NXNAME.
    let m = udp(s.addr, "_udp.example.com.", RecordType::ANY, &DO).await;
    assert!(m.answers.is_empty());
    assert_eq!(types_of(&m.authorities[2]), [46, 47]);
    let m = udp(s.addr, "nope.example.com.", RecordType::ANY, &DO).await;
    assert_nxname(
        &m,
        &key,
        &Name::from_ascii("nope.example.com.").expect("name"),
        0,
    );
    // Without DO: the unsigned HINFO, no RRSIG.
    let m = udp(s.addr, "web.example.com.", RecordType::ANY, &Q::default()).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        hinfo(&m.answers[0]),
        Some((b"RFC8482".to_vec(), Vec::new()))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_record_named_star_is_a_name_like_any_other() {
    // sipsteer expands no wildcards: `*` is served as written, and names beside it are denied.
    let (pem, key) = new_key(Algorithm::EcdsaP256);
    let s = TestServer::start_in(signed(
        Algorithm::EcdsaP256,
        &pem,
        "  \"*.w\": { A: 192.0.2.7 }\n",
    ))
    .await;
    let m = udp(s.addr, "*.w.example.com.", RecordType::A, &DO).await;
    assert_eq!(rrs(&m.answers[..1]), ["*.w.example.com. 300 A 192.0.2.7"]);
    assert_eq!(verify_section(&m.answers, &key, &apex()), 1);
    let m = udp(s.addr, "x.w.example.com.", RecordType::A, &DO).await;
    assert_nxname(
        &m,
        &key,
        &Name::from_ascii("x.w.example.com.").expect("name"),
        0,
    );
    let plain = udp(s.addr, "x.w.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rcode(&plain), ResponseCode::NXDomain, "as without DNSSEC");
    s.stop().await;
}

#[tokio::test]
async fn rate_limiting_counts_a_compact_denial_as_an_nxdomain_before_the_handoff() {
    let (pem, _key) = new_key(Algorithm::EcdsaP256);
    let rrl = "dns: { cookies: { enabled: false }, rrl: { responses_per_second: 5, slip: 0, window: 5s } }\n";
    let s = TestServer::start_in(signed_on("127.0.0.1:0", rrl, &pem)).await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..20 {
            let q = query(&format!("rrl{i}.example.com."), RecordType::A, &DO);
            sock.send_to(&q, addr).expect("send");
        }
    })
    .await
    .expect("join");
    // Distinct names, one bucket (the zone's NXDOMAIN answers): 5 pass, 15 are dropped by
    // the rate limiter before any reaches the signer's queue.
    let dropped = "sipsteer_rrl_responses_total{action=\"dropped\"}";
    let mut seen = (0.0, 0.0);
    for _ in 0..100 {
        seen = (
            s.series(HANDOFFS).expect("handoffs"),
            s.series(dropped).expect("rrl dropped"),
        );
        if seen.0 + seen.1 >= 20.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, (5.0, 15.0));
    assert_eq!(
        s.series(DROPPED),
        Some(0.0),
        "the signer's queue dropped nothing"
    );
    s.stop().await;
}

/// The errors of a config whose main file has `dnssec:` as written.
fn main_errors(dnssec: &str) -> Vec<String> {
    let main = format!("{MAIN}dnssec: {dnssec}\n");
    let dir = ConfigDir::new(&main, &[("example.com.yaml", STATIC_ZONE)]);
    let root = format!("{}/", dir.dir.path().display());
    match sipsteer::config::load(&dir.main()) {
        Ok(c) => {
            assert_eq!(c.denial.cache, 100);
            Vec::new()
        }
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }
}

#[test]
fn denial_bounds_are_checked_with_file_line_and_column() {
    assert!(main_errors("{ denial: { cache: 100, queue: 5 } }").is_empty());
    assert_eq!(
        main_errors("{ denial: { cache: 0, queue: 0 } }"),
        [
            "sipsteer.yaml:5:28: dnssec.denial.cache: must be between 1 and 10000000",
            "sipsteer.yaml:5:38: dnssec.denial.queue: must be between 1 and 1000000",
        ]
    );
    assert_eq!(
        main_errors("{ denial: { cache: 10000001, queue: 1000001 } }"),
        [
            "sipsteer.yaml:5:28: dnssec.denial.cache: must be between 1 and 10000000",
            "sipsteer.yaml:5:45: dnssec.denial.queue: must be between 1 and 1000000",
        ]
    );
    assert_eq!(
        main_errors("{ denial: { size: 5 } }"),
        ["sipsteer.yaml:5:21: unknown field `size`, expected one of cache, queue"]
    );
    assert_eq!(
        main_errors("{ key: zone.pem }"),
        ["sipsteer.yaml:5:11: unknown field `key`, expected one of denial"]
    );
    let defaults = ConfigDir::new(MAIN, &[("example.com.yaml", STATIC_ZONE)]);
    let c = sipsteer::config::load(&defaults.main()).expect("loads");
    assert_eq!((c.denial.cache, c.denial.queue), (65_536, 1_024));
}
