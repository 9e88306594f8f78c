//! The SIP OPTIONS request of a probe (RFC 3261), the one encoder for UDP and TCP: every
//! mandatory header, appended to the caller's buffer byte by byte, without the formatter (the
//! scheduler writes one per probe and retransmission). Its identifiers are numbers written as
//! 16 lowercase hex digits, which is how a reply is matched back to its transaction.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// The RFC 3261 magic cookie every branch starts with.
pub const MAGIC: &str = "z9hG4bK";

/// The identifiers of one OPTIONS transaction: the branch (after the magic cookie), the From
/// tag and the Call-ID (before `@host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub branch: u64,
    pub tag: u64,
    pub call_id: u64,
}

impl Ids {
    /// Fresh random identifiers.
    pub fn random() -> Ids {
        Ids {
            branch: rand::random(),
            tag: rand::random(),
            call_id: rand::random(),
        }
    }
}

/// Appends the OPTIONS request from `local` to `target` over `transport` (`UDP` or `TCP`)
/// to `out`.
pub fn push_options_request(
    out: &mut Vec<u8>,
    target: SocketAddr,
    local: SocketAddr,
    transport: &str,
    ids: &Ids,
) {
    out.extend_from_slice(b"OPTIONS sip:");
    push_host_port(out, target);
    out.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/");
    out.extend_from_slice(transport.as_bytes());
    out.push(b' ');
    push_host_port(out, local);
    out.extend_from_slice(b";branch=");
    out.extend_from_slice(MAGIC.as_bytes());
    push_hex(out, ids.branch);
    out.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:sipsteer@");
    push_host(out, local.ip());
    out.extend_from_slice(b">;tag=");
    push_hex(out, ids.tag);
    out.extend_from_slice(b"\r\nTo: <sip:");
    push_host_port(out, target);
    out.extend_from_slice(b">\r\nCall-ID: ");
    push_hex(out, ids.call_id);
    out.push(b'@');
    push_host(out, local.ip());
    out.extend_from_slice(b"\r\nCSeq: 1 OPTIONS\r\nUser-Agent: sipsteer/");
    out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(b"\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n");
}

/// `n` as 16 lowercase hex digits.
pub(crate) fn push_hex(out: &mut Vec<u8>, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for i in (0..16).rev() {
        out.push(DIGITS[((n >> (4 * i)) & 0xf) as usize]);
    }
}

/// The number written as 16 lowercase hex digits ([`push_hex`]); `None` for any other text.
pub(crate) fn parse_hex(s: &str) -> Option<u64> {
    let hex = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex.then(|| u64::from_str_radix(s, 16).ok()).flatten()
}

fn push_host_port(out: &mut Vec<u8>, a: SocketAddr) {
    push_host(out, a.ip());
    out.push(b':');
    push_decimal(out, u32::from(a.port()));
}

/// The host as a SIP URI names it (IPv6 in brackets).
fn push_host(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u32::from(o));
            }
        }
        // Rare enough for the formatter; writing into a Vec cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "[{v6}]");
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, local: &str, transport: &str, ids: &Ids) -> String {
        let mut out = b"before".to_vec();
        let (t, l) = (target.parse().unwrap(), local.parse().unwrap());
        push_options_request(&mut out, t, l, transport, ids);
        let text = String::from_utf8(out).unwrap();
        text.strip_prefix("before").unwrap().to_owned()
    }

    #[test]
    fn every_mandatory_header_byte_for_byte() {
        let ids = Ids {
            branch: 0xabc,
            tag: 1,
            call_id: u64::MAX,
        };
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            request("192.0.2.10:5060", "10.0.0.1:40000", "UDP", &ids),
            format!(
                "OPTIONS sip:192.0.2.10:5060 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 10.0.0.1:40000;branch=z9hG4bK0000000000000abc;rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:sipsteer@10.0.0.1>;tag=0000000000000001\r\n\
                 To: <sip:192.0.2.10:5060>\r\n\
                 Call-ID: ffffffffffffffff@10.0.0.1\r\n\
                 CSeq: 1 OPTIONS\r\n\
                 User-Agent: sipsteer/{version}\r\n\
                 Accept: application/sdp\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        );
        let v6 = request("[2001:db8::1]:5060", "[::1]:5000", "TCP", &ids);
        assert!(v6.starts_with("OPTIONS sip:[2001:db8::1]:5060 SIP/2.0\r\n"));
        assert!(v6.contains("\r\nVia: SIP/2.0/TCP [::1]:5000;branch=z9hG4bK0000000000000abc;"));
        assert!(v6.contains("\r\nFrom: <sip:sipsteer@[::1]>;tag="));
        assert!(v6.contains("\r\nCall-ID: ffffffffffffffff@[::1]\r\n"));
        for (t, l) in [
            ("0.0.0.0:0", "255.255.255.255:65535"),
            ("127.0.0.1:9", "127.0.0.1:1"),
        ] {
            let r = request(t, l, "UDP", &ids);
            assert!(r.starts_with(&format!("OPTIONS sip:{t} SIP/2.0\r\nVia: SIP/2.0/UDP {l};")));
        }
    }

    #[test]
    fn ids_round_trip_and_only_canonical_hex_matches() {
        for id in [0, 1, 0xdead_beef, u64::MAX] {
            let mut hex = Vec::new();
            push_hex(&mut hex, id);
            let hex = String::from_utf8(hex).unwrap();
            assert_eq!(hex, format!("{id:016x}"));
            assert_eq!(parse_hex(&hex), Some(id));
        }
        for bad in [
            "",
            "00000000deadbeef0",
            "00000000DEADBEEF",
            "+0000000deadbeef",
            "other0000000000000",
        ] {
            assert_eq!(parse_hex(bad), None, "{bad}");
        }
    }
}
