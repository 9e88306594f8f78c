//! Static zone answers and exact DNS behaviour, over real UDP and TCP sockets.

use crate::support::dns::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

async fn server() -> TestServer {
    TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await
}

fn header_ok(m: &Message, aa: bool) {
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.id, 0xBEEF);
    assert_eq!(m.metadata.authoritative, aa, "AA flag");
    assert!(!m.metadata.recursion_available, "RA must be clear");
    assert!(m.metadata.recursion_desired, "RD is copied");
}

#[tokio::test]
async fn a_record_over_udp_and_tcp() {
    let s = server().await;
    for m in [
        udp(s.addr, "web.example.com.", RecordType::A, &Q::default()).await,
        tcp(s.addr, "web.example.com.", RecordType::A, &Q::default()).await,
    ] {
        header_ok(&m, true);
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert_eq!(
            rrs(&m.answers),
            [
                "web.example.com. 60 A 192.0.2.80",
                "web.example.com. 60 A 192.0.2.81"
            ]
        );
        assert!(m.authorities.is_empty() && m.additionals.is_empty());
        assert!(m.edns.is_none(), "no OPT without one in the query");
    }
    s.stop().await;
}

#[tokio::test]
async fn question_case_is_echoed() {
    let s = server().await;
    let m = udp(s.addr, "WeB.ExAmPlE.cOm.", RecordType::A, &Q::default()).await;
    assert_eq!(m.queries[0].name().to_string(), "WeB.ExAmPlE.cOm.");
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[0].name.to_string(), "WeB.ExAmPlE.cOm.");
    s.stop().await;
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_soa() {
    let s = server().await;
    let soa = "example.com. 60 SOA ns1.example.com. hostmaster.example.com. 7 3600 600 604800 60";
    let m = udp(s.addr, "nope.example.com.", RecordType::A, &Q::default()).await;
    header_ok(&m, true);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(rrs(&m.authorities), [soa]);

    let m = tcp(s.addr, "web.example.com.", RecordType::MX, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(rrs(&m.authorities), [soa]);
    s.stop().await;
}

#[tokio::test]
async fn empty_non_terminals_are_nodata() {
    let s = server().await;
    for name in ["_udp.example.com.", "a.b.example.com.", "b.example.com."] {
        let m = udp(s.addr, name, RecordType::A, &Q::default()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
    }
    let m = udp(
        s.addr,
        "x.deep.a.b.example.com.",
        RecordType::A,
        &Q::default(),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    s.stop().await;
}

#[tokio::test]
async fn refused_outside_our_zones() {
    let s = server().await;
    let m = udp(s.addr, "example.org.", RecordType::A, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    let m = udp(s.addr, "com.", RecordType::NS, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::Refused);
    s.stop().await;
}

#[tokio::test]
async fn cname_chains_inside_the_zone() {
    let s = server().await;
    let m = udp(s.addr, "alias.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(
        rrs(&m.answers),
        [
            "alias.example.com. 300 CNAME www.example.com.",
            "www.example.com. 300 CNAME web.example.com.",
            "web.example.com. 60 A 192.0.2.80",
            "web.example.com. 60 A 192.0.2.81",
        ]
    );
    // Asking for the CNAME itself does not chase.
    let m = udp(s.addr, "www.example.com.", RecordType::CNAME, &Q::default()).await;
    assert_eq!(
        rrs(&m.answers),
        ["www.example.com. 300 CNAME web.example.com."]
    );
    // A chain into a missing in-zone name ends in NXDOMAIN (RFC 6604).
    let m = udp(
        s.addr,
        "dangling.example.com.",
        RecordType::A,
        &Q::default(),
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(
        rrs(&m.answers),
        ["dangling.example.com. 300 CNAME nothere.example.com."]
    );
    assert_eq!(m.authorities.len(), 1);
    // Out of zone: only the CNAME, the resolver follows it.
    let m = udp(s.addr, "away.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(
        rrs(&m.answers),
        ["away.example.com. 300 CNAME host.example.net."]
    );
    assert!(m.authorities.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn referral_for_delegated_child_with_glue() {
    let s = server().await;
    for name in ["sub.example.com.", "host.sub.example.com."] {
        let m = udp(s.addr, name, RecordType::A, &Q::default()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert!(!m.metadata.authoritative, "referrals are not authoritative");
        assert!(m.answers.is_empty());
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
    }
    // DS at the cut is the parent's: NODATA, authoritative.
    let m = udp(s.addr, "sub.example.com.", RecordType::DS, &Q::default()).await;
    assert!(m.metadata.authoritative);
    assert_eq!(m.authorities.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn additional_addresses_for_mx_srv_ns() {
    let s = server().await;
    let m = udp(s.addr, "example.com.", RecordType::MX, &Q::default()).await;
    assert_eq!(
        rrs(&m.answers),
        ["example.com. 300 MX 10 mail.example.com."]
    );
    assert_eq!(rrs(&m.additionals), ["mail.example.com. 300 A 192.0.2.25"]);
    let m = udp(
        s.addr,
        "_sip._udp.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        ["_sip._udp.example.com. 300 SRV 10 60 5060 sip1.example.com."]
    );
    assert_eq!(rrs(&m.additionals), ["sip1.example.com. 300 A 192.0.2.10"]);
    let m = tcp(s.addr, "example.com.", RecordType::NS, &Q::default()).await;
    assert_eq!(
        rrs(&m.answers),
        [
            "example.com. 300 NS ns1.example.com.",
            "example.com. 300 NS ns2.example.net."
        ]
    );
    assert_eq!(
        rrs(&m.additionals),
        [
            "ns1.example.com. 300 A 192.0.2.53",
            "ns1.example.com. 300 AAAA 2001:db8::53"
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn every_static_type() {
    let s = server().await;
    let cases = [
        (
            "example.com.",
            RecordType::TXT,
            "example.com. 300 TXT v=spf1 -all",
        ),
        (
            "caa.example.com.",
            RecordType::CAA,
            "caa.example.com. 300 CAA 0 issue \"ca.example.net\"",
        ),
        (
            "ptr.example.com.",
            RecordType::PTR,
            "ptr.example.com. 300 PTR host.example.net.",
        ),
        (
            "naptr.example.com.",
            RecordType::NAPTR,
            "naptr.example.com. 300 NAPTR 10 20 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.com.",
        ),
        (
            "ns1.example.com.",
            RecordType::AAAA,
            "ns1.example.com. 300 AAAA 2001:db8::53",
        ),
        (
            "example.com.",
            RecordType::SOA,
            "example.com. 300 SOA ns1.example.com. hostmaster.example.com. 7 3600 600 604800 60",
        ),
    ];
    for (name, t, want) in cases {
        let m = udp(s.addr, name, t, &Q::default()).await;
        assert_eq!(rrs(&m.answers), [want], "{name} {t}");
    }
    s.stop().await;
}

#[tokio::test]
async fn edns_echo_payload_and_badvers() {
    let s = server().await;
    let m = udp(
        s.addr,
        "web.example.com.",
        RecordType::A,
        &Q {
            edns: Some(4096),
            ..Q::default()
        },
    )
    .await;
    let e = m.edns.as_ref().expect("OPT echoed");
    assert_eq!(e.max_payload(), 1232);
    assert_eq!(e.version(), 0);
    assert_eq!(m.answers.len(), 2);

    let m = udp(
        s.addr,
        "web.example.com.",
        RecordType::A,
        &Q {
            edns: Some(1232),
            version: 1,
            ..Q::default()
        },
    )
    .await;
    assert_eq!(u16::from(rcode(&m)), 16, "BADVERS");
    assert!(m.answers.is_empty());
    assert!(m.edns.is_some());
    s.stop().await;
}

#[tokio::test]
async fn udp_overflow_sets_tc_and_tcp_is_complete() {
    let s = server().await;
    let m = udp(s.addr, "big.example.com.", RecordType::TXT, &Q::default()).await;
    assert!(m.metadata.truncation, "TC set over 512 bytes");
    assert!(m.answers.is_empty());
    let m = udp(
        s.addr,
        "big.example.com.",
        RecordType::TXT,
        &Q {
            edns: Some(1232),
            ..Q::default()
        },
    )
    .await;
    assert!(!m.metadata.truncation, "fits in 1232");
    assert_eq!(m.answers.len(), 3);
    let m = tcp(s.addr, "big.example.com.", RecordType::TXT, &Q::default()).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 3);
    s.stop().await;
}

#[tokio::test]
async fn any_is_answered_minimally() {
    let s = server().await;
    let m = udp(s.addr, "example.com.", RecordType::ANY, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(rrs(&m.answers), ["example.com. 60 HINFO RFC8482 "]);
    s.stop().await;
}

#[tokio::test]
async fn zone_transfers_are_refused() {
    let s = server().await;
    for t in [RecordType::AXFR, RecordType::IXFR] {
        let m = tcp(s.addr, "example.com.", t, &Q::default()).await;
        assert_eq!(rcode(&m), ResponseCode::Refused, "{t}");
        assert!(m.answers.is_empty());
    }
    s.stop().await;
}

#[tokio::test]
async fn raw_packet_behaviour() {
    let s = server().await;
    let base = query("web.example.com.", RecordType::A, &Q::default());

    // QR=1: no reply at all.
    let mut resp = base.clone();
    resp[2] |= 0x80;
    assert!(udp_raw(s.addr, &resp).is_none());

    // Unknown opcode: NOTIMP with the question echoed.
    let mut op = base.clone();
    op[2] = (op[2] & 0x87) | (5 << 3);
    let m = parse(&udp_raw(s.addr, &op).expect("reply"));
    assert_eq!(rcode(&m), ResponseCode::NotImp);
    assert_eq!(m.metadata.op_code, OpCode::Update);
    assert_eq!(m.queries.len(), 1);

    // Two questions: FORMERR.
    let mut two = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
    let n = Name::from_ascii("web.example.com.").expect("name");
    two.add_query(Query::query(n.clone(), RecordType::A));
    two.add_query(Query::query(n, RecordType::AAAA));
    let m = parse(&udp_raw(s.addr, &two.to_vec().expect("encode")).expect("reply"));
    assert_eq!(rcode(&m), ResponseCode::FormErr);

    // No question: FORMERR.
    let mut none = base.clone();
    none[5] = 0;
    none.truncate(12);
    let m = parse(&udp_raw(s.addr, &none).expect("reply"));
    assert_eq!(rcode(&m), ResponseCode::FormErr);

    // Two OPT records: FORMERR.
    let mut dup = query(
        "web.example.com.",
        RecordType::A,
        &Q {
            edns: Some(1232),
            ..Q::default()
        },
    );
    let opt = dup[dup.len() - 11..].to_vec();
    dup.extend_from_slice(&opt);
    dup[11] = 2;
    let m = parse(&udp_raw(s.addr, &dup).expect("reply"));
    assert_eq!(rcode(&m), ResponseCode::FormErr);

    // Truncated OPT: FORMERR; runt packets: dropped.
    let mut cut = query(
        "web.example.com.",
        RecordType::A,
        &Q {
            edns: Some(1232),
            ..Q::default()
        },
    );
    cut.truncate(cut.len() - 3);
    let m = parse(&udp_raw(s.addr, &cut).expect("reply"));
    assert_eq!(rcode(&m), ResponseCode::FormErr);
    assert!(udp_raw(s.addr, &[1, 2, 3]).is_none());

    // The server still answers after all that.
    let m = udp(s.addr, "web.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(m.answers.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn garbage_never_stops_the_server() {
    let s = server().await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let base = query(
            "web.example.com.",
            RecordType::A,
            &Q {
                ecs: Some(("81.2.69.0".parse().expect("ip"), 24)),
                ..Q::default()
            },
        );
        let mut x: u32 = 0x9E37_79B9;
        for i in 0..3000 {
            let mut p = base.clone();
            for _ in 0..1 + i % 4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let at = x as usize % p.len();
                p[at] = (x >> 11) as u8;
            }
            p.truncate(1 + (x as usize >> 3) % p.len());
            let _ = sock.send_to(&p, addr);
        }
    })
    .await
    .expect("join");
    let m = tcp(s.addr, "web.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(m.answers.len(), 2);
    let m = udp(s.addr, "web.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(m.answers.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn tcp_pipelines_several_queries_on_one_connection() {
    use std::io::{Read, Write};
    let s = server().await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        let mut all = Vec::new();
        for name in ["web.example.com.", "mail.example.com.", "nope.example.com."] {
            let p = query(name, RecordType::A, &Q::default());
            all.extend_from_slice(&(p.len() as u16).to_be_bytes());
            all.extend_from_slice(&p);
        }
        c.write_all(&all).expect("write");
        let mut codes = Vec::new();
        for _ in 0..3 {
            let mut len = [0u8; 2];
            c.read_exact(&mut len).expect("len");
            let mut b = vec![0; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut b).expect("body");
            let m = parse(&b);
            codes.push((m.answers.len(), rcode(&m)));
        }
        assert_eq!(
            codes,
            [
                (2, ResponseCode::NoError),
                (1, ResponseCode::NoError),
                (0, ResponseCode::NXDomain)
            ]
        );
    })
    .await
    .expect("join");
    s.stop().await;
}
