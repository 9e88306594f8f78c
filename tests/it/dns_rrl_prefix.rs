//! Rate limiting across names and the reflection of BADCOOKIE slips, over real UDP sockets
//! with small budgets: a client prefix's budget across every name (`dns.rrl.all_per_second`)
//! holds a flood spread over many names, slips like a name's bucket, spares other prefixes,
//! TCP and valid cookies; a flood on one name spends only what that name's bucket lets
//! through; and a BADCOOKIE slip (larger than its query) goes out at most for every second
//! excess query, so the bytes reflected stay below the bytes sent.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::dns_defences::{
    CLIENT, Reply, SECRET, a_query, ask_tcp, ask_udp, burst, check_cookie, cookie_opt, main_with,
    metric, now, packet, server, server_cookie,
};
use crate::support::dns::{ConfigDir, STATIC_ZONE};

/// Four name/type pairs of the static zone, each with a positive answer.
const PAIRS: [(&str, u16, u16); 4] = [
    ("web.example.com", 1, 2),
    ("mail.example.com", 1, 1),
    ("ns1.example.com", 1, 1),
    ("ns1.example.com", 28, 1),
];

/// `rounds` queries for each pair, round-robin, ids from 1.
fn spread(rounds: u16) -> Vec<Vec<u8>> {
    (0..rounds * 4)
        .map(|i| {
            let (name, qtype, _) = PAIRS[(i % 4) as usize];
            packet(i + 1, name, qtype, 1, Some(&[]))
        })
        .collect()
}

/// (full answers, empty TC replies, BADCOOKIE replies, anything else).
fn kinds(replies: &[Reply]) -> (usize, usize, usize, usize) {
    let full = replies
        .iter()
        .filter(|r| r.rcode == 0 && r.answers > 0 && !r.tc);
    let tc = replies
        .iter()
        .filter(|r| r.rcode == 0 && r.answers == 0 && r.tc);
    let bad = replies
        .iter()
        .filter(|r| r.rcode == 23 && r.answers == 0 && !r.tc);
    let (f, t, b) = (full.count(), tc.count(), bad.count());
    (f, t, b, replies.len() - f - t - b)
}

/// One query from another address of the loopback network (another /24).
async fn ask_from(from: &'static str, addr: SocketAddr, p: Vec<u8>) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        let sock = UdpSocket::bind((from, 0)).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2))).ok();
        sock.send_to(&p, addr).expect("send");
        let mut buf = [0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf).expect("reply");
        buf[..n].to_vec()
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn a_flood_spread_over_names_is_held_by_the_prefix_budget() {
    let s = server(&format!(
        "{{ cookies: {{ secret: {SECRET} }}, rrl: {{ responses_per_second: 100, all_per_second: 4, slip: 2 }} }}"
    ))
    .await;
    // 12 queries over 4 names: each name's bucket (100) lets all through, the prefix's
    // budget sends 4; of the 8 in excess every second slips as an empty TC reply.
    let replies = burst(s.addr, spread(3)).await;
    assert_eq!(kinds(&replies), (4, 4, 0, 0), "{replies:?}");
    let mut full: Vec<u16> = replies.iter().filter(|r| !r.tc).map(|r| r.id).collect();
    full.sort_unstable();
    assert_eq!(full, [1, 2, 3, 4], "the first four, one per name");
    for (line, want) in [
        ("sipsteer_rrl_responses_total{action=\"dropped\"}", 4),
        ("sipsteer_rrl_responses_total{action=\"slipped\"}", 4),
        ("sipsteer_rrl_prefix_limited_total", 8),
    ] {
        assert_eq!(metric(&s, line).await, want, "{line}");
    }
    // Exempt as from every bucket: TCP, and a valid server cookie.
    let r = ask_tcp(s.addr, a_query(50, Some(&[]))).await;
    assert_eq!((r.rcode, r.answers, r.tc), (0, 2, false));
    let sc = server_cookie(SECRET, &CLIENT, now());
    let r = ask_udp(s.addr, a_query(51, Some(&[cookie_opt(&CLIENT, &sc)])))
        .await
        .expect("reply");
    assert_eq!((r.rcode, r.answers, r.tc), (0, 2, false));
    // Another /24 has a budget of its own.
    let b = ask_from("127.0.1.1", s.addr, a_query(52, Some(&[]))).await;
    assert_eq!(
        (b[2] & 0x02, b[3] & 0xF, u16::from_be_bytes([b[6], b[7]])),
        (0, 0, 2)
    );
    assert_eq!(metric(&s, "sipsteer_rrl_prefix_limited_total").await, 8);
    s.stop().await;
}

#[tokio::test]
async fn a_flood_on_one_name_spends_only_what_its_bucket_lets_through() {
    let s = server("{ rrl: { responses_per_second: 2, all_per_second: 4, slip: 0 } }").await;
    // Ten queries for one name, then one for each of three other names, in one burst: the
    // name's bucket sends two, which spend two of the prefix's four; the next two names are
    // answered, the last one is not.
    let mut queries: Vec<_> = (0..10).map(|i| a_query(100 + i, Some(&[]))).collect();
    for (i, (name, qtype, _)) in PAIRS[1..].iter().enumerate() {
        queries.push(packet(200 + i as u16, name, *qtype, 1, Some(&[])));
    }
    let replies = burst(s.addr, queries).await;
    let mut ids: Vec<u16> = replies.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [100, 101, 200, 201], "{replies:?}");
    assert_eq!(kinds(&replies), (4, 0, 0, 0), "{replies:?}");
    assert_eq!(metric(&s, "sipsteer_rrl_prefix_limited_total").await, 1);
    assert_eq!(
        metric(&s, "sipsteer_rrl_responses_total{action=\"dropped\"}").await,
        9
    );
    s.stop().await;
}

/// With `slip: 1` every excess query of a flood without cookies gets an empty TC reply the
/// size of the query; with a client cookie the slip is BADCOOKIE (16 bytes more than the
/// query: the server cookie), sent for every second excess query only.
#[tokio::test]
async fn badcookie_slips_reflect_fewer_bytes_than_the_flood_sends() {
    let s = server(&format!(
        "{{ cookies: {{ secret: {SECRET} }}, rrl: {{ responses_per_second: 2, slip: 1 }} }}"
    ))
    .await;
    let with_cookie: Vec<_> = (0..10)
        .map(|i| a_query(400 + i, Some(&[cookie_opt(&CLIENT, &[])])))
        .collect();
    let query_len = with_cookie[0].len();
    assert_eq!(query_len, 56);
    let replies = burst(s.addr, with_cookie).await;
    assert_eq!(kinds(&replies), (2, 0, 4, 0), "{replies:?}");
    let bad: Vec<&Reply> = replies.iter().filter(|r| r.rcode == 23).collect();
    for r in &bad {
        check_cookie(r, SECRET);
        assert_eq!(r.len, 72);
    }
    let reflected: usize = bad.iter().map(|r| r.len).sum();
    assert!(
        reflected <= 8 * query_len,
        "{reflected} bytes of BADCOOKIE for {} bytes of excess queries",
        8 * query_len
    );
    assert_eq!(
        metric(&s, "sipsteer_rrl_responses_total{action=\"badcookie\"}").await,
        4
    );
    assert_eq!(
        metric(&s, "sipsteer_rrl_responses_total{action=\"dropped\"}").await,
        4
    );
    // From another /24 without a cookie: every excess query slips, no larger than itself.
    let plain: Vec<_> = (0..10).map(|i| a_query(500 + i, Some(&[]))).collect();
    let replies = tokio::task::spawn_blocking({
        let addr = s.addr;
        move || {
            let sock = UdpSocket::bind(("127.0.2.1", 0)).expect("bind");
            sock.set_read_timeout(Some(Duration::from_secs(1))).ok();
            for p in &plain {
                sock.send_to(p, addr).expect("send");
            }
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                out.push((n, buf[2] & 0x02 != 0));
            }
            out
        }
    })
    .await
    .expect("join");
    let tc: Vec<usize> = replies.iter().filter(|r| r.1).map(|r| r.0).collect();
    assert_eq!((replies.len(), tc.len()), (10, 8), "{replies:?}");
    assert!(tc.iter().all(|&n| n == 44), "{tc:?}");
    assert_eq!(
        metric(&s, "sipsteer_rrl_responses_total{action=\"slipped\"}").await,
        8
    );
    s.stop().await;
}

#[test]
fn all_per_second_is_checked() {
    let dir = ConfigDir::new(
        &main_with("\n  rrl: { all_per_second: 0 }"),
        &[("example.com.yaml", STATIC_ZONE)],
    );
    let root = format!("{}/", dir.dir.path().display());
    let errs: Vec<String> = match sipsteer::config::load(&dir.main()) {
        Ok(_) => panic!("must fail"),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    };
    assert_eq!(
        errs,
        ["sipsteer.yaml:5:26: dns.rrl.all_per_second: must be between 1 and 10000000"]
    );
}
