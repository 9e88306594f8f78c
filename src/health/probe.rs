//! One health probe of one target: SIP OPTIONS over UDP (retransmitted from T1 = 500 ms,
//! doubling) or TCP, or a TCP connect. Never panics on what the network sends.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::config::Check;

use super::sip::{Ids, MAX_MESSAGE, ParseError, options_request, parse_datagram, parse_response};

/// What is probed: the identity used to run one probe per distinct target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: SocketAddr,
    pub check: Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Up,
    /// Alive but overloaded (SIP 503).
    Full,
    Down,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub outcome: Outcome,
    pub code: Option<u16>,
    pub rtt: Duration,
    /// `200 OK`, `503 Service Unavailable (retry-after 30)`, `timeout after 2s`, ...
    pub detail: String,
}

/// Which final SIP codes mean a healthy server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodePolicy {
    /// `None`: every final code but 500, 502, 504 (down) and 503 (full).
    healthy: Option<Vec<(u16, u16)>>,
}

impl CodePolicy {
    /// Only these codes (inclusive ranges) are healthy; 503 is always full.
    pub fn from_ranges(r: &[(u16, u16)]) -> CodePolicy {
        CodePolicy {
            healthy: Some(r.to_vec()),
        }
    }

    pub fn classify(&self, code: u16) -> Outcome {
        if code == 503 {
            return Outcome::Full;
        }
        match &self.healthy {
            None if matches!(code, 500 | 502 | 504) => Outcome::Down,
            None => Outcome::Up,
            Some(r) if r.iter().any(|(a, b)| (*a..=*b).contains(&code)) => Outcome::Up,
            Some(_) => Outcome::Down,
        }
    }
}

pub(super) const T1: Duration = Duration::from_millis(500);

/// Receive buffer of a UDP probe. A longer datagram is cut to this size; its status line and
/// headers are still read (see `parse_datagram`).
pub const UDP_BUFFER: usize = 4096;

/// Bytes read from a TCP probe connection at a time.
const TCP_CHUNK: usize = 4096;

/// Runs one probe, bounded by `timeout`.
pub async fn probe(target: &Target, timeout: Duration, policy: &CodePolicy) -> ProbeResult {
    probe_with(target, timeout, policy, None).await
}

/// Like [`probe`], sending SIP over UDP through `udp`'s shared sockets when given (else
/// through a socket of its own).
pub async fn probe_with(
    target: &Target,
    timeout: Duration,
    policy: &CodePolicy,
    udp: Option<&super::udp_prober::UdpProber>,
) -> ProbeResult {
    let start = Instant::now();
    // The probes with buffers of their own run boxed: a probe task waits in this future, and
    // thousands of small tasks keep their timers and state close together in memory.
    let (r, exact) = match target.check {
        Check::Tcp => (tcp_connect(target.addr, timeout).await, None),
        Check::SipUdp => match udp {
            Some(u) => u.sip(target.addr, timeout, policy).await,
            None => (Box::pin(sip_udp(target.addr, timeout, policy)).await, None),
        },
        Check::SipTcp => (Box::pin(sip_tcp(target.addr, timeout, policy)).await, None),
    };
    ProbeResult::from_res(r, exact.unwrap_or_else(|| start.elapsed()))
}

impl ProbeResult {
    /// The result of a probe that ended with `r` after `rtt`.
    pub(super) fn from_res(r: Res, rtt: Duration) -> ProbeResult {
        match r {
            Ok((outcome, code, detail)) => ProbeResult {
                outcome,
                code,
                rtt,
                detail,
            },
            Err(e) => ProbeResult {
                outcome: Outcome::Down,
                code: None,
                rtt,
                detail: e.to_string(),
            },
        }
    }
}

/// Why a probe got no final answer from its target (the target counts as down). The text is
/// the probe's `detail` in `/v1/servers` and the logs, beside the server it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connection refused")]
    Refused,
    #[error("connection reset")]
    Reset,
    #[error("network error: {0}")]
    Network(std::io::Error),
    #[error("timeout after {}", fmt_dur(*.0))]
    Timeout(Duration),
    /// What the target sent could not be read as a SIP response.
    #[error("bad response: {0}")]
    BadResponse(String),
    #[error("connection closed without a final response")]
    Closed,
    #[error("probe socket closed")]
    SocketClosed,
}

impl From<std::io::Error> for ProbeError {
    fn from(e: std::io::Error) -> ProbeError {
        match e.kind() {
            ErrorKind::ConnectionRefused => ProbeError::Refused,
            ErrorKind::ConnectionReset => ProbeError::Reset,
            _ => ProbeError::Network(e),
        }
    }
}

impl From<ParseError> for ProbeError {
    fn from(e: ParseError) -> ProbeError {
        ProbeError::BadResponse(match e {
            ParseError::Incomplete => "truncated datagram".into(),
            ParseError::Bad(e) => e,
        })
    }
}

/// A final answer: its outcome, SIP code (none for a TCP connect) and detail text.
pub(super) type Res = Result<(Outcome, Option<u16>, String), ProbeError>;

pub(super) fn describe(code: u16, reason: &str, retry_after: Option<u32>) -> String {
    let mut s = format!("{code} {reason}");
    if let Some(r) = retry_after {
        s.push_str(&format!(" (retry-after {r})"));
    }
    s
}

async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Res {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok((Outcome::Up, None, "tcp connect ok".into())),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

pub(super) fn fmt_dur(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

async fn sip_udp(addr: SocketAddr, timeout: Duration, policy: &CodePolicy) -> Res {
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(addr).await?;
    let local = sock.local_addr()?;
    let ids = Ids::random();
    let req = options_request(addr, local, "UDP", &ids);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut next_send = tokio::time::Instant::now();
    let mut interval = T1;
    let mut buf = [0u8; UDP_BUFFER];
    let mut bad: Option<ParseError> = None;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(bad.map_or(ProbeError::Timeout(timeout), ProbeError::from));
        }
        if now >= next_send {
            sock.send(req.as_bytes()).await?;
            next_send = now + interval;
            interval *= 2;
        }
        let wait = next_send.min(deadline);
        match tokio::time::timeout_at(wait, sock.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(n)) => match parse_datagram(&buf[..n], n == buf.len()) {
                Ok(r) if r.matches(&ids) => {
                    if r.code < 200 {
                        continue;
                    }
                    return Ok((
                        policy.classify(r.code),
                        Some(r.code),
                        describe(r.code, &r.reason, r.retry_after),
                    ));
                }
                Ok(_) => continue, // a stray or late reply to another request
                Err(e) => bad = Some(e),
            },
        }
    }
}

async fn sip_tcp(addr: SocketAddr, timeout: Duration, policy: &CodePolicy) -> Res {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let local = s.local_addr()?;
        let ids = Ids::random();
        s.write_all(options_request(addr, local, "TCP", &ids).as_bytes())
            .await?;
        // Unparsed bytes: never more than one complete message can take (`MAX_MESSAGE`).
        let mut buf: Vec<u8> = Vec::with_capacity(TCP_CHUNK);
        let mut chunk = [0u8; TCP_CHUNK];
        loop {
            let room = MAX_MESSAGE.saturating_sub(buf.len()).min(TCP_CHUNK);
            let n = s.read(&mut chunk[..room]).await?;
            if n == 0 {
                return Err(ProbeError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match parse_response(&buf) {
                    Ok((r, used)) => {
                        buf.drain(..used);
                        if r.matches(&ids) && r.code >= 200 {
                            return Ok((
                                policy.classify(r.code),
                                Some(r.code),
                                describe(r.code, &r.reason, r.retry_after),
                            ));
                        }
                    }
                    Err(ParseError::Incomplete) if buf.len() >= MAX_MESSAGE => {
                        return Err(ProbeError::BadResponse(format!(
                            "{MAX_MESSAGE} bytes without a complete message"
                        )));
                    }
                    Err(ParseError::Incomplete) => break,
                    Err(e @ ParseError::Bad(_)) => return Err(e.into()),
                }
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_policy() {
        let d = CodePolicy::default();
        assert_eq!(d.classify(200), Outcome::Up);
        assert_eq!(d.classify(404), Outcome::Up);
        assert_eq!(d.classify(501), Outcome::Up);
        assert_eq!(d.classify(503), Outcome::Full);
        assert_eq!(d.classify(500), Outcome::Down);
        assert_eq!(d.classify(504), Outcome::Down);
        let p = CodePolicy::from_ranges(&[(200, 299), (404, 404)]);
        assert_eq!(p.classify(202), Outcome::Up);
        assert_eq!(p.classify(404), Outcome::Up);
        assert_eq!(p.classify(403), Outcome::Down);
        assert_eq!(p.classify(503), Outcome::Full);
    }
}
