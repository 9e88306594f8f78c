//! The checks that run over TCP: a TCP connect, or SIP OPTIONS over TCP (Content-Length
//! framing, never more buffered than one complete message can take; the same exchange over
//! TLS through `tls`). The engine runs each as a short task; a one-off probe awaits it.
//! Never panics on what the network sends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sip::{Ids, MAX_MESSAGE, ParseError, parse_response, push_options_request};
use super::vocab::{CodePolicy, Outcome, ProbeError, ProbeResult, Res, Target, describe};
use crate::config::Check;

/// Bytes read from a SIP probe connection at a time.
const CHUNK: usize = 4096;

/// Runs one TCP check of `target`, bounded by `timeout`.
pub(crate) async fn probe(target: &Target, timeout: Duration, policy: &CodePolicy) -> ProbeResult {
    let start = Instant::now();
    let r = match target.check {
        Check::Tcp => connect(target.addr, timeout).await,
        // Boxed: its buffers stay out of the future of whoever awaits it.
        Check::SipTcp => Box::pin(sip(target.addr, timeout, policy)).await,
        Check::SipUdp | Check::SipTls | Check::SipWs | Check::SipWss => Err(ProbeError::Network(
            std::io::Error::other("not a check over plain tcp"),
        )),
    };
    ProbeResult::from_res(r, start.elapsed())
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Res {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok((Outcome::Up, None, "tcp connect ok".into())),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

async fn sip(addr: SocketAddr, timeout: Duration, policy: &CodePolicy) -> Res {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let local = s.local_addr()?;
        options(&mut s, addr, local, "TCP", policy).await
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

/// Sends one OPTIONS request on a connected stream (TCP or TLS, `transport` in its Via) and
/// reads until its final response.
pub(super) async fn options<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    addr: SocketAddr,
    local: SocketAddr,
    transport: &str,
    policy: &CodePolicy,
) -> Res {
    let ids = Ids::random();
    let mut req = Vec::with_capacity(512);
    push_options_request(&mut req, addr, local, transport, &ids);
    s.write_all(&req).await?;
    s.flush().await?;
    // Unparsed bytes: never more than one complete message can take (`MAX_MESSAGE`).
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut chunk = [0u8; CHUNK];
    loop {
        let room = MAX_MESSAGE.saturating_sub(buf.len()).min(CHUNK);
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
                Err(e @ ParseError::Bad(_)) => {
                    return Err(ProbeError::BadResponse(e.to_string()));
                }
            }
        }
    }
}
