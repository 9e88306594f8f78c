//! Protocol details real resolvers depend on, over real sockets: ECS /0, the DO bit, OPT on
//! error replies, ANY at a CNAME, CNAMEs into steered names, one region per client for A and
//! AAAA, and names in record data compressed only where RFC 3597 allows it.

use std::net::IpAddr;

use crate::support::dns::*;
use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

async fn steered() -> TestServer {
    let zone = format!("{STEER_ZONE}\n")
        .replace("  ns1: { A: 192.0.2.53 }", "  ns1: { A: 192.0.2.53 }\n  voice: { CNAME: alias }\n  alias: { CNAME: sip }\n  far: { CNAME: lon1.uk.sip }");
    let cfg = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", &zone)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    TestServer::start_in(cfg).await
}

async fn static_server() -> TestServer {
    TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await
}

fn ecs(s: &str, prefix: u8) -> Q {
    Q {
        ecs: Some((s.parse::<IpAddr>().expect("ip"), prefix)),
        ..Q::default()
    }
}

/// A query with EDNS, its DO bit and an opcode of choice.
fn edns_query(name: &str, rtype: RecordType, opcode: OpCode, dnssec_ok: bool) -> Vec<u8> {
    let mut m = Message::new(0xBEEF, MessageType::Query, opcode);
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(dnssec_ok);
    m.set_edns(e);
    m.to_vec().expect("encode")
}

async fn ask(addr: std::net::SocketAddr, packet: Vec<u8>) -> Message {
    let r = tokio::task::spawn_blocking(move || udp_raw(addr, &packet))
        .await
        .expect("join")
        .expect("reply");
    parse(&r)
}

#[tokio::test]
async fn ecs_with_source_prefix_zero_is_echoed_with_scope_zero() {
    let s = steered().await;
    for (name, rtype) in [
        ("sip.example.com.", RecordType::A),
        ("ns1.example.com.", RecordType::A),
        ("nope.example.com.", RecordType::A),
    ] {
        for addr in ["0.0.0.0", "::"] {
            let m = udp(s.addr, name, rtype, &ecs(addr, 0)).await;
            assert_eq!(
                ecs_of(&m),
                Some((addr.parse().expect("ip"), 0, 0)),
                "{name} {addr}"
            );
        }
    }
    // Located by the packet's source (127.0.0.1, unknown): the fallback order.
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("0.0.0.0", 0),
    )
    .await;
    assert_eq!(rrs(&m.answers), ["sip.example.com. 30 A 192.0.2.40"]);
    s.stop().await;
}

#[tokio::test]
async fn the_do_bit_is_copied() {
    let s = static_server().await;
    for dnssec_ok in [true, false] {
        let m = ask(
            s.addr,
            edns_query("web.example.com.", RecordType::A, OpCode::Query, dnssec_ok),
        )
        .await;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert_eq!(m.edns.as_ref().expect("opt").flags().dnssec_ok, dnssec_ok);
    }
    s.stop().await;
}

#[tokio::test]
async fn error_replies_to_edns_queries_carry_an_opt() {
    let s = static_server().await;
    // An unknown opcode (STATUS) with EDNS: NOTIMP with an OPT, DO copied.
    let m = ask(
        s.addr,
        edns_query("web.example.com.", RecordType::A, OpCode::Status, true),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NotImp);
    let e = m.edns.as_ref().expect("opt on NOTIMP");
    assert!(e.flags().dnssec_ok);
    assert_eq!(e.version(), 0);
    // Without EDNS: NOTIMP without one.
    let mut plain = query("web.example.com.", RecordType::A, &Q::default());
    plain[2] = (plain[2] & 0x87) | (2 << 3);
    let m = ask(s.addr, plain).await;
    assert_eq!(rcode(&m), ResponseCode::NotImp);
    assert!(m.edns.is_none());
    // A malformed ECS (host bits beyond the prefix): FORMERR with an OPT and no ECS.
    let mut bad = query("web.example.com.", RecordType::A, &ecs("81.2.68.0", 23));
    let n = bad.len();
    assert_eq!(bad[n - 1], 68);
    bad[n - 1] = 69;
    let m = ask(s.addr, bad).await;
    assert_eq!(rcode(&m), ResponseCode::FormErr);
    assert!(m.edns.is_some(), "opt on FORMERR");
    assert!(ecs_of(&m).is_none());
    s.stop().await;
}

#[tokio::test]
async fn any_at_a_cname_owner_is_the_cname() {
    let s = static_server().await;
    let m = udp(s.addr, "www.example.com.", RecordType::ANY, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(
        rrs(&m.answers),
        ["www.example.com. 300 CNAME web.example.com."]
    );
    // Elsewhere ANY stays the RFC 8482 answer.
    let m = udp(s.addr, "web.example.com.", RecordType::ANY, &Q::default()).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::HINFO);
    s.stop().await;
}

#[tokio::test]
async fn cname_chains_lead_into_steered_names() {
    let s = steered().await;
    let m = udp(
        s.addr,
        "voice.example.com.",
        RecordType::A,
        &ecs("81.2.69.0", 24),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    let mut got = rrs(&m.answers);
    got[2..].sort();
    assert_eq!(
        got,
        [
            "voice.example.com. 300 CNAME alias.example.com.",
            "alias.example.com. 300 CNAME sip.example.com.",
            "sip.example.com. 30 A 192.0.2.10",
            "sip.example.com. 30 A 192.0.2.11",
        ]
    );
    assert_eq!(
        ecs_of(&m).map(|e| e.2),
        Some(23),
        "the steered answer's scope"
    );
    // NAPTR through the chain, and another region for another client.
    let m = udp(
        s.addr,
        "voice.example.com.",
        RecordType::NAPTR,
        &ecs("126.0.0.0", 24),
    )
    .await;
    assert_eq!(
        rrs(&m.answers[2..]),
        [
            "sip.example.com. 30 NAPTR 10 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.sip.example.com.",
            "sip.example.com. 30 NAPTR 10 20 \"S\" \"SIP+D2T\" \"\" _sip._tcp.sip.example.com.",
        ]
    );
    assert!(rrs(&m.additionals).contains(&"sin1.sg.sip.example.com. 30 A 192.0.2.60".to_string()));
    // A type the steered name does not have: NODATA after the chain.
    let m = udp(s.addr, "voice.example.com.", RecordType::TXT, &Q::default()).await;
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.authorities.len(), 1);
    // A CNAME to a per-server name.
    let m = udp(s.addr, "far.example.com.", RecordType::AAAA, &Q::default()).await;
    assert_eq!(
        rrs(&m.answers),
        [
            "far.example.com. 300 CNAME lon1.uk.sip.example.com.",
            "lon1.uk.sip.example.com. 30 AAAA 2001:db8::10",
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_and_aaaa_come_from_the_same_region() {
    let s = steered().await;
    // Tokyo is steered to sg, which has no IPv6 server: AAAA is NODATA (never Frankfurt's or
    // London's address), with the steering scope so a resolver keeps it to that block.
    let a = udp(
        s.addr,
        "sip.example.com.",
        RecordType::A,
        &ecs("126.0.0.0", 24),
    )
    .await;
    assert_eq!(rrs(&a.answers), ["sip.example.com. 30 A 192.0.2.60"]);
    let scope = ecs_of(&a).map(|e| e.2);
    let m = udp(
        s.addr,
        "sip.example.com.",
        RecordType::AAAA,
        &ecs("126.0.0.0", 24),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty(), "{:?}", rrs(&m.answers));
    assert_eq!(m.authorities.len(), 1, "SOA of the NODATA");
    assert_eq!(ecs_of(&m).map(|e| e.2), scope);
    assert_eq!(scope, Some(16));
    // London has both families: both answered from uk.
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

/// Finds `needle` in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn names_in_rdata_are_compressed_where_rfc_3597_allows() {
    let s = static_server().await;
    let raw = |name: &str, t: RecordType| {
        let p = query(name, t, &Q::default());
        udp_raw(s.addr, &p).expect("reply")
    };
    // The apex starts at offset 12 + 4 ("\x03www") = 16 in the question of www.example.com.
    let r = raw("www.example.com.", RecordType::CNAME);
    assert!(contains(&r, b"\x00\x06\x03web\xc0\x10"), "{r:x?}");
    assert_eq!(
        rrs(&parse(&r).answers),
        ["www.example.com. 300 CNAME web.example.com."]
    );
    // MX at the apex (offset 12): preference, "mail", pointer.
    let r = raw("example.com.", RecordType::MX);
    assert!(contains(&r, b"\x00\x09\x00\x0a\x04mail\xc0\x0c"), "{r:x?}");
    assert_eq!(
        rrs(&parse(&r).answers),
        ["example.com. 300 MX 10 mail.example.com."]
    );
    // The SOA of a negative answer: both names compressed.
    let r = raw("nope.example.com.", RecordType::A);
    assert!(
        contains(&r, b"\x03ns1\xc0\x11\x0ahostmaster\xc0\x11"),
        "{r:x?}"
    );
    let m = parse(&r);
    assert_eq!(
        rrs(&m.authorities),
        ["example.com. 60 SOA ns1.example.com. hostmaster.example.com. 7 3600 600 604800 60"]
    );
    // NS: in-zone target compressed, out-of-zone target in full.
    let r = raw("example.com.", RecordType::NS);
    assert!(contains(&r, b"\x00\x06\x03ns1\xc0\x0c"), "{r:x?}");
    assert!(contains(&r, b"\x03ns2\x07example\x03net\x00"));
    // SRV (RFC 2782) and NAPTR (RFC 3403) targets are never compressed.
    let r = raw("_sip._udp.example.com.", RecordType::SRV);
    assert!(contains(&r, b"\x04sip1\x07example\x03com\x00"), "{r:x?}");
    let r = raw("naptr.example.com.", RecordType::NAPTR);
    assert!(
        contains(&r, b"\x04_sip\x04_udp\x07example\x03com\x00"),
        "{r:x?}"
    );
    // Through a referral: the in-zone NS target of the delegation, and its glue owner.
    let r = raw("x.sub.example.com.", RecordType::A);
    let m = parse(&r);
    assert_eq!(
        rrs(&m.authorities),
        [
            "sub.example.com. 300 NS ns.sub.example.com.",
            "sub.example.com. 300 NS ns2.example.net."
        ]
    );
    assert_eq!(
        rrs(&m.additionals),
        ["ns.sub.example.com. 300 A 192.0.2.99"]
    );
    s.stop().await;
}
