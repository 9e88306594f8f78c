//! RFC 8906 section 8 conformance, in the manner of ISC's DNS compliance tests: plain DNS,
//! header flags, unknown opcode and type, EDNS with unknown options, flags and versions, DO,
//! small buffers and TCP. Raw packets over real sockets; every row asserts the exact reply
//! fields, and the table is printed (`--nocapture`).

use std::net::SocketAddr;

use crate::support::dns::*;

const SOA: u16 = 6;
const TXT: u16 = 16;

/// The OPT record of a test query.
struct Opt {
    payload: u16,
    version: u8,
    /// The 16 flag bits (DO = 0x8000).
    flags: u16,
    options: Vec<u8>,
}

fn opt(version: u8, flags: u16, options: &[u8]) -> Option<Opt> {
    Some(Opt {
        payload: 1232,
        version,
        flags,
        options: options.to_vec(),
    })
}

fn packet(header_flags: u16, name: &str, qtype: u16, o: Option<Opt>) -> Vec<u8> {
    let mut p = vec![0x53, 0x53];
    p.extend_from_slice(&header_flags.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(o.is_some())]);
    for l in name.trim_end_matches('.').split('.') {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    if let Some(o) = o {
        p.extend_from_slice(&[0, 0, 41]);
        p.extend_from_slice(&o.payload.to_be_bytes());
        p.extend_from_slice(&[0, o.version]);
        p.extend_from_slice(&o.flags.to_be_bytes());
        p.extend_from_slice(&(o.options.len() as u16).to_be_bytes());
        p.extend_from_slice(&o.options);
    }
    p
}

/// The fields of a reply that the rows check.
#[derive(Debug, Default)]
struct Reply {
    len: usize,
    flags: u16,
    /// Header rcode plus the OPT's upper bits.
    rcode: u16,
    answers: u16,
    authority: u16,
    /// (version, flags, option bytes) of the OPT.
    opt: Option<(u8, u16, Vec<u8>)>,
}

fn skip_name(b: &[u8], mut pos: usize) -> usize {
    while let Some(&l) = b.get(pos) {
        if l == 0 {
            return pos + 1;
        }
        if l & 0xC0 == 0xC0 {
            return pos + 2;
        }
        pos += l as usize + 1;
    }
    pos
}

fn read(b: &[u8]) -> Reply {
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let mut r = Reply {
        len: b.len(),
        flags: u16_at(2),
        rcode: u16_at(2) & 0xF,
        answers: u16_at(6),
        authority: u16_at(8),
        opt: None,
    };
    let mut pos = 12;
    for _ in 0..u16_at(4) {
        pos = skip_name(b, pos) + 4;
    }
    let records = u16_at(6) + u16_at(8) + u16_at(10);
    for i in 0..records {
        pos = skip_name(b, pos);
        let rtype = u16_at(pos);
        let rdlen = u16_at(pos + 8) as usize;
        if rtype == 41 && i >= u16_at(6) + u16_at(8) {
            r.rcode |= u16::from(b[pos + 4]) << 4;
            r.opt = Some((
                b[pos + 5],
                u16_at(pos + 6),
                b[pos + 10..pos + 10 + rdlen].to_vec(),
            ));
        }
        pos += 10 + rdlen;
    }
    assert_eq!(pos, b.len(), "reply parses to its end");
    r
}

fn udp_reply(addr: SocketAddr, p: &[u8]) -> Reply {
    read(&udp_raw(addr, p).expect("a reply"))
}

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const Z: u16 = 0x0040;
const AD: u16 = 0x0020;
const CD: u16 = 0x0010;
const DO: u16 = 0x8000;

#[tokio::test]
#[expect(clippy::too_many_lines, reason = "one table row per check of the RFC")]
async fn rfc8906_section_8_checks() {
    let s = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let a = s.addr;
    let zone = "example.com.";
    let unknown_option = [0, 100, 0, 2, 0xAB, 0xCD];
    tokio::task::spawn_blocking(move || {
        let mut rows: Vec<(&str, bool, String)> = Vec::new();
        let mut row = |name: &'static str, ok: bool, r: &Reply| {
            rows.push((name, ok, format!("{r:?}")));
        };
        let plain = |r: &Reply| {
            r.flags & (QR | AA) == QR | AA && r.rcode == 0 && r.answers == 1 && r.opt.is_none()
        };
        let r = udp_reply(a, &packet(0, zone, SOA, None));
        row("dns: plain SOA query", plain(&r), &r);
        let r = udp_reply(a, &packet(AA, zone, SOA, None));
        row("aflag: AA set in the query", plain(&r), &r);
        let r = udp_reply(a, &packet(AD, zone, SOA, None));
        row(
            "adflag: AD set in the query",
            plain(&r) && r.flags & AD == 0,
            &r,
        );
        let r = udp_reply(a, &packet(CD, zone, SOA, None));
        row("cd: CD copied", plain(&r) && r.flags & CD != 0, &r);
        let r = udp_reply(a, &packet(Z, zone, SOA, None));
        row(
            "zflag: Z ignored and clear",
            plain(&r) && r.flags & Z == 0,
            &r,
        );
        let r = udp_reply(a, &packet(15 << 11, zone, SOA, None));
        row(
            "opcode: unknown opcode is NOTIMP",
            r.rcode == 4 && r.answers == 0,
            &r,
        );
        let r = udp_reply(
            a,
            &packet(
                (15 << 11) | RD | CD | AD | AA | Z,
                zone,
                SOA,
                opt(0, DO, &[]),
            ),
        );
        row(
            "opcodeflg: NOTIMP with opcode 15, RD/CD/AD/AA/Z not echoed (QUERY only), OPT with DO",
            r.rcode == 4
                && r.flags & 0x7800 == 15 << 11
                && r.flags & (RD | CD | AD | AA | Z) == 0
                && r.opt.as_ref().is_some_and(|o| o.1 == DO),
            &r,
        );
        let r = udp_reply(a, &packet(0, zone, 666, None));
        row(
            "type666: unknown type is NODATA",
            r.rcode == 0 && r.answers == 0 && r.authority == 1 && r.flags & AA != 0,
            &r,
        );
        let tcp = read(&tcp_raw(a, &packet(0, zone, SOA, None)));
        row("tcp: SOA over TCP", plain(&tcp), &tcp);
        let edns_ok = |r: &Reply| {
            r.rcode == 0
                && r.answers == 1
                && r.opt.as_ref().is_some_and(|o| o.0 == 0 && o.2.is_empty())
        };
        let r = udp_reply(a, &packet(0, zone, SOA, opt(0, 0, &[])));
        row(
            "edns: EDNS 0",
            edns_ok(&r) && r.opt.as_ref().is_some_and(|o| o.1 == 0),
            &r,
        );
        let r = udp_reply(a, &packet(0, zone, SOA, opt(1, 0, &[])));
        let badvers = |r: &Reply| {
            r.rcode == 16
                && r.answers == 0
                && r.opt.as_ref().is_some_and(|o| o.0 == 0 && o.2.is_empty())
        };
        row("edns1: EDNS 1 is BADVERS with version 0", badvers(&r), &r);
        let r = udp_reply(a, &packet(0, zone, SOA, opt(0, 0, &unknown_option)));
        row(
            "ednsopt: unknown option ignored, not echoed",
            edns_ok(&r),
            &r,
        );
        let r = udp_reply(a, &packet(0, zone, SOA, opt(1, 0, &unknown_option)));
        row("edns1opt: EDNS 1 with an unknown option", badvers(&r), &r);
        let r = udp_reply(a, &packet(0, zone, SOA, opt(0, 0x4000, &[])));
        row(
            "ednsflags: unknown EDNS flag ignored, not echoed",
            edns_ok(&r) && r.opt.as_ref().is_some_and(|o| o.1 == 0),
            &r,
        );
        let r = udp_reply(a, &packet(0, zone, SOA, opt(0, DO, &[])));
        row(
            "do: DO copied",
            edns_ok(&r) && r.opt.as_ref().is_some_and(|o| o.1 == DO),
            &r,
        );
        let r = udp_reply(a, &packet(CD, zone, SOA, opt(0, DO, &[])));
        row(
            "docd: DO and CD copied",
            edns_ok(&r) && r.flags & CD != 0 && r.opt.as_ref().is_some_and(|o| o.1 == DO),
            &r,
        );
        let mut small = opt(0, 0, &[]);
        if let Some(o) = small.as_mut() {
            o.payload = 512;
        }
        let r = udp_reply(a, &packet(0, "big.example.com.", TXT, small));
        row(
            "edns@512: a larger answer is truncated within 512 bytes",
            r.len <= 512 && r.flags & TC != 0 && r.opt.is_some(),
            &r,
        );
        let tcp = read(&tcp_raw(
            a,
            &packet(0, "big.example.com.", TXT, opt(0, DO, &[])),
        ));
        row(
            "ednstcp: EDNS over TCP, whole answer",
            tcp.rcode == 0 && tcp.answers == 3 && tcp.opt.as_ref().is_some_and(|o| o.1 == DO),
            &tcp,
        );
        let r = udp_reply(a, &packet(0, "example.org.", SOA, opt(0, 0, &[])));
        row(
            "refused: a zone not served",
            r.rcode == 5 && r.flags & AA == 0 && r.opt.is_some(),
            &r,
        );
        let mut two = packet(0, zone, SOA, opt(0, 0, &[]));
        two[11] = 2;
        two.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
        let r = udp_reply(a, &two);
        row("two OPT records are FORMERR", r.rcode == 1, &r);
        let mut resp = packet(0, zone, SOA, None);
        resp[2] |= 0x80;
        let none = udp_raw(a, &resp).is_none();
        row("a response (QR=1) is not answered", none, &Reply::default());
        rows
    })
    .await
    .map(|rows| {
        println!("| RFC 8906 check | result |\n|---|---|");
        for (name, ok, _) in &rows {
            println!("| {name} | {} |", if *ok { "ok" } else { "FAIL" });
        }
        let failed: Vec<_> = rows.iter().filter(|r| !r.1).collect();
        assert!(failed.is_empty(), "{failed:#?}");
    })
    .expect("join");
    s.stop().await;
}
