//! Building a SIP OPTIONS request (RFC 3261): every mandatory header, the identifiers that
//! match its reply, written without allocating when the caller gives the buffer.

use std::fmt;
use std::net::SocketAddr;

/// Identifiers of one OPTIONS transaction.
#[derive(Debug, Clone)]
pub struct Ids {
    pub branch: String,
    pub tag: String,
    pub call_id: String,
}

impl Ids {
    /// Fresh random identifiers (the branch carries the RFC 3261 magic cookie).
    pub fn random() -> Ids {
        let r = || format!("{:016x}", rand::random::<u64>());
        Ids {
            branch: format!("{MAGIC}{}", r()),
            tag: r(),
            call_id: r(),
        }
    }
}

/// `host:port` as a SIP URI host part (IPv6 in brackets).
struct HostPort(SocketAddr);

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(v) => write!(f, "{}:{}", v.ip(), v.port()),
            SocketAddr::V6(v) => write!(f, "[{}]:{}", v.ip(), v.port()),
        }
    }
}

/// The host alone (IPv6 in brackets).
struct Host(SocketAddr);

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(v) => write!(f, "{}", v.ip()),
            SocketAddr::V6(v) => write!(f, "[{}]", v.ip()),
        }
    }
}

/// An OPTIONS request from `local` to `target` over `transport` (`UDP` or `TCP`).
pub fn options_request(
    target: SocketAddr,
    local: SocketAddr,
    transport: &str,
    ids: &Ids,
) -> String {
    let mut out = Vec::with_capacity(400);
    // Writing into a Vec cannot fail, and only UTF-8 text is written.
    let _ = write_options_request(
        &mut out,
        target,
        local,
        transport,
        &RequestIds {
            branch: &ids.branch,
            tag: &ids.tag,
            call_id: &ids.call_id,
        },
    );
    String::from_utf8(out).unwrap_or_default()
}

/// The RFC 3261 magic cookie every branch starts with.
pub const MAGIC: &str = "z9hG4bK";

/// The identifiers written into a request: the branch (with the magic cookie), the From tag
/// and the Call-ID before `@host`.
pub struct RequestIds<'a> {
    pub branch: &'a dyn fmt::Display,
    pub tag: &'a dyn fmt::Display,
    pub call_id: &'a dyn fmt::Display,
}

/// Writes an OPTIONS request from `local` to `target` over `transport` into `w`, without
/// allocating.
pub fn write_options_request(
    w: &mut impl std::io::Write,
    target: SocketAddr,
    local: SocketAddr,
    transport: &str,
    ids: &RequestIds<'_>,
) -> std::io::Result<()> {
    let t = HostPort(target);
    write!(
        w,
        "OPTIONS sip:{t} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:sipsteer@{lhost}>;tag={tag}\r\n\
         To: <sip:{t}>\r\n\
         Call-ID: {call_id}@{lhost}\r\n\
         CSeq: 1 OPTIONS\r\n\
         User-Agent: sipsteer/{version}\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        via = HostPort(local),
        branch = ids.branch,
        lhost = Host(local),
        tag = ids.tag,
        call_id = ids.call_id,
        version = env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::sip::tests::ids;

    #[test]
    fn request_has_every_mandatory_header() {
        let r = options_request(
            "192.0.2.10:5060".parse().unwrap(),
            "10.0.0.1:40000".parse().unwrap(),
            "UDP",
            &ids(),
        );
        assert!(r.starts_with("OPTIONS sip:192.0.2.10:5060 SIP/2.0\r\n"));
        for h in [
            "Via: SIP/2.0/UDP 10.0.0.1:40000;branch=z9hG4bKabc;rport\r\n",
            "Max-Forwards: 70\r\n",
            "From: <sip:sipsteer@10.0.0.1>;tag=t1\r\n",
            "To: <sip:192.0.2.10:5060>\r\n",
            "Call-ID: c1@10.0.0.1\r\n",
            "CSeq: 1 OPTIONS\r\n",
            "Content-Length: 0\r\n\r\n",
        ] {
            assert!(r.contains(h), "{h}");
        }
        let v6 = options_request(
            "[2001:db8::1]:5060".parse().unwrap(),
            "[::1]:5000".parse().unwrap(),
            "TCP",
            &ids(),
        );
        assert!(v6.starts_with("OPTIONS sip:[2001:db8::1]:5060 SIP/2.0\r\n"));
        assert!(v6.contains("Via: SIP/2.0/TCP [::1]:5000;"));
        assert!(Ids::random().branch.starts_with("z9hG4bK"));
    }
}
