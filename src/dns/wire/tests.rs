//! Unit tests of the query parser: plain queries, ECS and its peek, errors and their OPT, garbage.

use super::*;

fn query(name: &[u8], extra_ar: &[u8], arcount: u16) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&arcount.to_be_bytes());
    p.extend_from_slice(name);
    p.extend_from_slice(&[0, 1, 0, 1]);
    p.extend_from_slice(extra_ar);
    p
}

fn opt(version: u8, options: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xD0, 0, version, 0, 0];
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

const NAME: &[u8] = b"\x03WwW\x07example\x03com\x00";

#[test]
fn plain_query() {
    let mut l = [0; MAX_NAME];
    let p = query(NAME, &[], 0);
    let Parsed::Query(q) = parse(&p, &mut l) else {
        panic!()
    };
    assert_eq!(q.name, b"\x03www\x07example\x03com\x00");
    assert_eq!(&q.question[..4], b"\x03WwW");
    assert_eq!((q.qtype, q.qclass, q.id), (1, 1, 0x1234));
    assert!(q.edns.is_none());
}

#[test]
fn ecs_valid_and_invalid() {
    let mut l = [0; MAX_NAME];
    let ecs = |fam: u16, src: u8, scope: u8, addr: &[u8]| {
        let mut o = vec![0, 8];
        o.extend_from_slice(&(4 + addr.len() as u16).to_be_bytes());
        o.extend_from_slice(&fam.to_be_bytes());
        o.extend_from_slice(&[src, scope]);
        o.extend_from_slice(addr);
        o
    };
    let p = query(NAME, &opt(0, &ecs(1, 24, 0, &[81, 2, 69])), 1);
    let Parsed::Query(q) = parse(&p, &mut l) else {
        panic!()
    };
    let e = q.edns.unwrap().ecs.unwrap();
    assert_eq!((e.source, e.addr), (24, "81.2.69.0".parse().unwrap()));
    for bad in [
        ecs(1, 23, 0, &[81, 2, 69]), // host bit set beyond /23
        ecs(1, 24, 0, &[81, 2]),     // too few address bytes
        ecs(1, 33, 0, &[1, 2, 3, 4, 5]),
        ecs(3, 8, 0, &[1]),
        ecs(1, 24, 8, &[81, 2, 69]),
    ] {
        let p = query(NAME, &opt(0, &bad), 1);
        assert!(
            matches!(parse(&p, &mut l), Parsed::Error { rcode: 1, .. }),
            "{bad:?}"
        );
    }
}

#[test]
fn peek_finds_what_parse_finds() {
    let mut l = [0; MAX_NAME];
    let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69];
    let with = query(NAME, &opt(0, &ecs), 1);
    let Parsed::Query(q) = parse(&with, &mut l) else {
        panic!("not a query")
    };
    assert_eq!(peek_ecs(&with), q.edns.and_then(|e| e.ecs).map(|e| e.addr));
    assert_eq!(peek_ecs(&with), Some("81.2.69.0".parse().unwrap()));
    // A /0 source locates by the packet's source; no OPT, a short packet: nothing.
    let zero = query(NAME, &opt(0, &[0, 8, 0, 4, 0, 1, 0, 0]), 1);
    assert_eq!(peek_ecs(&zero), None);
    assert_eq!(peek_ecs(&query(NAME, &[], 0)), None);
    for n in 0..with.len() {
        assert_eq!(peek_ecs(&with[..n]), None, "cut at {n}");
    }
    // Mutated packets: the peek never panics and never disagrees with a parsed query.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200_000 {
        let mut p = with.clone();
        for _ in 0..1 + x % 3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x >> 8) as usize % p.len();
            p[at] = (x >> 32) as u8;
        }
        if let Parsed::Query(q) = parse(&p, &mut l) {
            let parsed = q.edns.and_then(|e| e.ecs).filter(|e| e.source > 0);
            let peeked = peek_ecs(&p);
            assert!(
                peeked.is_none() || peeked == parsed.map(|e| e.addr),
                "{p:02x?}"
            );
        }
    }
}

#[test]
fn errors() {
    let mut l = [0; MAX_NAME];
    let mut two_opts = opt(0, &[]);
    two_opts.extend(opt(0, &[]));
    assert!(matches!(
        parse(&query(NAME, &two_opts, 2), &mut l),
        Parsed::Error { rcode: 1, .. }
    ));
    assert!(matches!(
        parse(&query(NAME, &opt(1, &[]), 1), &mut l),
        Parsed::Error { rcode: 16, .. }
    ));
    let mut resp = query(NAME, &[], 0);
    resp[2] |= 0x80;
    assert!(matches!(parse(&resp, &mut l), Parsed::Drop));
    assert!(matches!(parse(&[0; 5], &mut l), Parsed::Drop));
    let mut notify = query(NAME, &[], 0);
    notify[2] = 4 << 3;
    assert!(matches!(
        parse(&notify, &mut l),
        Parsed::Error {
            rcode: 4,
            question: Some(_),
            ..
        }
    ));
    let truncated = &query(NAME, &[], 0)[..20];
    assert!(matches!(
        parse(truncated, &mut l),
        Parsed::Error {
            rcode: 1,
            question: None,
            ..
        }
    ));
}

#[test]
fn error_replies_keep_a_well_formed_opt() {
    let mut l = [0; MAX_NAME];
    let mut notimp = query(NAME, &opt(0, &[]), 1);
    notimp[2] = 2 << 3;
    let n = notimp.len();
    notimp[n - 4] = 0x80; // DO
    let Parsed::Error { rcode, edns, .. } = parse(&notimp, &mut l) else {
        panic!()
    };
    assert_eq!(rcode, 4);
    assert!(edns.is_some_and(|e| e.dnssec_ok && e.version == 0));
    let bad_ecs = [0, 8, 0, 7, 0, 1, 23, 0, 81, 2, 69];
    let Parsed::Error { rcode, edns, .. } = parse(&query(NAME, &opt(0, &bad_ecs), 1), &mut l)
    else {
        panic!()
    };
    assert_eq!(rcode, 1);
    assert!(
        edns.is_some_and(|e| e.ecs.is_none()),
        "opt kept, ecs dropped"
    );
    let mut two_opts = opt(0, &[]);
    two_opts.extend(opt(0, &[]));
    let Parsed::Error { edns, .. } = parse(&query(NAME, &two_opts, 2), &mut l) else {
        panic!()
    };
    assert!(edns.is_none(), "no valid opt to answer with");
}

#[test]
fn never_panics_on_prefixes_and_garbage() {
    let mut l = [0; MAX_NAME];
    let full = query(NAME, &opt(0, &[0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69]), 1);
    for n in 0..full.len() {
        let _ = parse(&full[..n], &mut l);
    }
    let mut x: u32 = 1;
    for _ in 0..20000 {
        let mut p = full.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let i = x as usize % p.len();
            p[i] = (x >> 8) as u8;
        }
        let _ = parse(&p, &mut l);
    }
}
