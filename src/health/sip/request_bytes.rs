//! The OPTIONS request of a SIP-over-UDP probe appended to a buffer byte by byte, without the
//! formatter (the scheduler writes one per probe and retransmission): the same bytes as
//! [`super::write_options_request`] with numeric identifiers written as 16 hex digits.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use super::MAGIC;

/// The identifiers of one transaction, as numbers.
pub(crate) struct NumericIds {
    pub branch: u64,
    pub tag: u64,
    pub call_id: u64,
}

/// Appends the OPTIONS request from `local` to `target` over UDP to `out`.
pub(crate) fn push_options_request(
    out: &mut Vec<u8>,
    target: SocketAddr,
    local: SocketAddr,
    ids: &NumericIds,
) {
    out.extend_from_slice(b"OPTIONS sip:");
    push_host_port(out, target);
    out.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/UDP ");
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
    use crate::health::sip::{RequestIds, write_options_request};

    struct Hex(u64);

    impl std::fmt::Display for Hex {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:016x}", self.0)
        }
    }

    #[test]
    fn the_same_bytes_as_the_formatted_request() {
        let pairs = [
            ("192.0.2.10:5060", "10.0.0.1:40000"),
            ("0.0.0.0:0", "255.255.255.255:65535"),
            ("127.0.0.1:9", "127.0.0.1:1"),
            ("[2001:db8::1]:5060", "[::1]:5000"),
            ("[fe80::1:2:3:4]:65535", "[2001:db8:0:0:1::]:0"),
        ];
        for (t, l) in pairs {
            let (target, local) = (t.parse().unwrap(), l.parse().unwrap());
            for (branch, tag, call_id) in [(0, 1, u64::MAX), (0xdead_beef, 42, 7 << 60)] {
                let ids = NumericIds {
                    branch,
                    tag,
                    call_id,
                };
                let mut fast = b"before".to_vec();
                push_options_request(&mut fast, target, local, &ids);
                let mut want = b"before".to_vec();
                let text = RequestIds {
                    branch: &format!("{MAGIC}{}", Hex(branch)),
                    tag: &Hex(tag),
                    call_id: &Hex(call_id),
                };
                write_options_request(&mut want, target, local, "UDP", &text).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&want)
                );
            }
        }
    }
}
