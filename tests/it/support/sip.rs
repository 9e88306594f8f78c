//! Real SIP responders on 127.0.0.1 for health tests, over UDP, TCP and TLS. Each answers OPTIONS
//! according to a mode that tests switch at run time, and counts the requests it received.
//! [`Responder::settled`] waits until it has read everything sent to it so far.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use sipsteer::health::probe::Outcome;

/// What a responder does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A final reply with this code (503 with Retry-After).
    Code(u16),
    /// 100 Trying first, then 200 OK.
    TryingThenOk,
    /// 200 OK with compact header names.
    Compact,
    /// A reply to some other transaction, then nothing.
    Stray,
    /// Bytes that are not SIP.
    Garbage,
    /// No reply at all.
    Silent,
}

fn encode(m: Mode) -> u16 {
    match m {
        Mode::Code(c) => c,
        Mode::TryingThenOk => 1,
        Mode::Compact => 2,
        Mode::Stray => 3,
        Mode::Garbage => 4,
        Mode::Silent => 5,
    }
}

fn decode(v: u16) -> Mode {
    match v {
        1 => Mode::TryingThenOk,
        2 => Mode::Compact,
        3 => Mode::Stray,
        4 => Mode::Garbage,
        5 => Mode::Silent,
        c => Mode::Code(c),
    }
}

/// A running responder.
#[derive(Clone)]
pub(crate) struct Responder {
    pub addr: SocketAddr,
    mode: Arc<AtomicU16>,
    pub requests: Arc<AtomicUsize>,
    /// Losing one transaction: `Some(None)` = the next one, `Some(Some(call-id))` = this one.
    lose: Arc<Mutex<Option<Option<String>>>>,
    /// Marks read ([`MARK`], not counted as requests).
    marks: Arc<AtomicUsize>,
    /// TCP connections accepted and still being read.
    pub open: Arc<AtomicUsize>,
    tcp: bool,
    /// The path of the last WebSocket upgrade (WebSocket responders).
    pub path: Arc<Mutex<String>>,
    /// The Via header line of the last request (WebSocket responders).
    pub via: Arc<Mutex<String>>,
}

/// What [`Responder::settled`] sends: read after everything sent before it.
const MARK: &[u8] = b"SIPSTEER-TEST-MARK\r\n\r\n";

/// Ends the count of an open TCP connection when its task ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Responder {
    /// A responder at `addr` answering by `mode`, over a stream (`tcp`) or UDP.
    fn new(addr: SocketAddr, mode: Mode, tcp: bool) -> Responder {
        Responder {
            addr,
            mode: Arc::new(AtomicU16::new(encode(mode))),
            requests: Arc::new(AtomicUsize::new(0)),
            lose: Arc::new(Mutex::new(None)),
            marks: Arc::default(),
            open: Arc::default(),
            tcp,
            path: Arc::default(),
            via: Arc::default(),
        }
    }
    pub(crate) fn set(&self, m: Mode) {
        self.mode.store(encode(m), Ordering::SeqCst);
    }
    pub(crate) fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    /// Returns once everything sent to the responder before the call has been read (and
    /// counted): over UDP once a mark sent now is read (a socket's queue is read in order);
    /// over TCP once a mark connection made now is read (connections are accepted in order)
    /// and every connection accepted before it has ended.
    pub(crate) async fn settled(&self) {
        let before = self.marks.load(Ordering::SeqCst);
        if self.tcp {
            let mut c = tokio::net::TcpStream::connect(self.addr)
                .await
                .expect("connect mark");
            c.write_all(MARK).await.expect("write mark");
        } else {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.send_to(MARK, self.addr).expect("send mark");
        }
        let start = Instant::now();
        while self.marks.load(Ordering::SeqCst) == before || self.open.load(Ordering::SeqCst) > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the responder did not read what was sent to it"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    /// Loses the next request over UDP and all its retransmissions: one lost probe.
    pub(crate) fn lose_one(&self) {
        if let Ok(mut l) = self.lose.lock() {
            *l = Some(None);
        }
    }
    /// Whether to drop this request (UDP): it belongs to the transaction being lost.
    fn lost(&self, req: &str) -> bool {
        let Ok(mut l) = self.lose.lock() else {
            return false;
        };
        let id = req
            .split("\r\n")
            .find(|h| {
                let h = h.to_ascii_lowercase();
                h.starts_with("call-id:") || h.starts_with("i:")
            })
            .and_then(|h| h.split_once(':'))
            .map(|(_, v)| v.trim().to_owned());
        match (&*l, id) {
            (Some(None), Some(id)) => {
                *l = Some(Some(id));
                true
            }
            (Some(Some(lost)), Some(id)) if *lost == id => true,
            _ => false,
        }
    }
}

/// Copies Via, From, To, Call-ID and CSeq from the request into a reply.
pub(crate) fn reply(req: &str, code: u16, reason: &str, compact: bool) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in req.split("\r\n").skip(1) {
        let lower = line.to_ascii_lowercase();
        for (full, short) in [
            ("via:", "v:"),
            ("from:", "f:"),
            ("to:", "t:"),
            ("call-id:", "i:"),
            ("cseq:", "cseq:"),
        ] {
            if lower.starts_with(full) {
                if compact {
                    out.push_str(short);
                    out.push(' ');
                    out.push_str(line[full.len()..].trim());
                } else {
                    out.push_str(line);
                }
                if full == "to:" {
                    out.push_str(";tag=resp1");
                }
                out.push_str("\r\n");
            }
        }
    }
    if code == 503 {
        out.push_str("Retry-After: 30\r\n");
    }
    out.push_str(if compact {
        "l: 0\r\n\r\n"
    } else {
        "Content-Length: 0\r\n\r\n"
    });
    out
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        404 => "Not Found",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// What to send for one request in the current mode.
fn replies(mode: Mode, req: &str) -> Vec<Vec<u8>> {
    match mode {
        Mode::Code(c) => vec![reply(req, c, reason(c), false).into_bytes()],
        Mode::TryingThenOk => vec![
            reply(req, 100, "Trying", false).into_bytes(),
            reply(req, 200, "OK", false).into_bytes(),
        ],
        Mode::Compact => vec![reply(req, 200, "OK", true).into_bytes()],
        Mode::Stray => {
            vec![reply(&req.replace("z9hG4bK", "z9hG4bKother"), 200, "OK", false).into_bytes()]
        }
        Mode::Garbage => vec![b"\x16\x03\x01 hello, this is not SIP\r\n\r\n".to_vec()],
        Mode::Silent => vec![],
    }
}

/// A UDP responder on 127.0.0.1 (a fresh port).
pub(crate) async fn udp(mode: Mode) -> Responder {
    udp_on("127.0.0.1", mode).await
}

/// A UDP responder on another loopback address (`127.0.0.2`), so A answers tell servers apart.
pub(crate) async fn udp_on(ip: &str, mode: Mode) -> Responder {
    let sock = UdpSocket::bind((ip, 0)).await.expect("bind");
    let r = Responder::new(sock.local_addr().expect("addr"), mode, false);
    let rr = r.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            if &buf[..n] == MARK {
                rr.marks.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            rr.requests.fetch_add(1, Ordering::SeqCst);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if rr.lost(&req) {
                continue;
            }
            for out in replies(decode(rr.mode.load(Ordering::SeqCst)), &req) {
                let _ = sock.send_to(&out, peer).await;
            }
        }
    });
    r
}

/// A TCP responder on 127.0.0.1 (a fresh port).
pub(crate) async fn tcp(mode: Mode) -> Responder {
    stream(mode, None).await
}

/// A SIP-over-TLS responder on 127.0.0.1 (a fresh port) presenting `acceptor`'s certificate
/// ([`Responder::settled`] does not apply to it).
pub(crate) async fn tls(mode: Mode, acceptor: tokio_rustls::TlsAcceptor) -> Responder {
    stream(mode, Some(acceptor)).await
}

/// A SIP-over-TLS responder on `ip` (a fresh port).
pub(crate) async fn tls_on(ip: &str, mode: Mode, acceptor: tokio_rustls::TlsAcceptor) -> Responder {
    let l = TcpListener::bind((ip, 0)).await.expect("bind");
    serve_listener(l, mode, Some(acceptor))
}

/// A UDP and a TCP responder on `ip` and one port, as one SIP server listens on both.
pub(crate) async fn udp_and_tcp(ip: &str, mode: Mode) -> (Responder, Responder) {
    for _ in 0..50 {
        let udp = udp_on(ip, mode).await;
        if let Ok(l) = TcpListener::bind(udp.addr).await {
            return (udp, serve_listener(l, mode, None));
        }
    }
    panic!("no port free for both UDP and TCP on {ip}");
}

async fn stream(mode: Mode, tls: Option<tokio_rustls::TlsAcceptor>) -> Responder {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_listener(l, mode, tls)
}

fn serve_listener(l: TcpListener, mode: Mode, tls: Option<tokio_rustls::TlsAcceptor>) -> Responder {
    let r = Responder::new(l.local_addr().expect("addr"), mode, true);
    let rr = r.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                return;
            };
            let rr = rr.clone();
            match &tls {
                None => drop(tokio::spawn(serve_stream(s, rr))),
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A client that rejects the certificate ends the handshake.
                        if let Ok(s) = acceptor.accept(s).await {
                            serve_stream(s, rr).await;
                        }
                    });
                }
            }
        }
    });
    r
}

/// Answers the requests of one connection (TCP or TLS) until it closes.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, rr: Responder) {
    rr.open.fetch_add(1, Ordering::SeqCst);
    let _open = Open(rr.open.clone());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = s.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if &buf[..end + 4] == MARK {
                rr.marks.fetch_add(1, Ordering::SeqCst);
                return;
            }
            let req = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            rr.requests.fetch_add(1, Ordering::SeqCst);
            for out in replies(decode(rr.mode.load(Ordering::SeqCst)), &req) {
                if s.write_all(&out).await.is_err() || s.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A SIP-over-WebSocket responder on `ip` (a fresh port), through TLS with `acceptor`: it
/// accepts the upgrade with the `sip` subprotocol when asked for it and answers each
/// OPTIONS text message by its mode, one SIP message per WebSocket message.
pub(crate) async fn ws_on(
    ip: &str,
    mode: Mode,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Responder {
    let l = TcpListener::bind((ip, 0)).await.expect("bind");
    let r = Responder::new(l.local_addr().expect("addr"), mode, true);
    let rr = r.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                return;
            };
            let (rr, acceptor) = (rr.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    None => serve_ws(s, rr).await,
                    Some(a) => {
                        if let Ok(s) = a.accept(s).await {
                            serve_ws(s, rr).await;
                        }
                    }
                }
            });
        }
    });
    r
}

async fn serve_ws<S: AsyncRead + AsyncWrite + Unpin>(s: S, rr: Responder) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    rr.open.fetch_add(1, Ordering::SeqCst);
    let _open = Open(rr.open.clone());
    let seen = rr.path.clone();
    // The callback's error type is tungstenite's (large); the closure never fails.
    #[allow(clippy::result_large_err)]
    let cb = move |req: &Request, mut resp: Response| {
        if let Ok(mut p) = seen.lock() {
            *p = req.uri().path().to_owned();
        }
        let wants_sip = req
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "sip"));
        if wants_sip {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", "sip".parse().expect("value"));
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, cb).await else {
        return;
    };
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        rr.requests.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut v) = rr.via.lock() {
            *v = t
                .as_str()
                .lines()
                .find(|l| l.starts_with("Via:"))
                .unwrap_or_default()
                .to_owned();
        }
        for out in replies(decode(rr.mode.load(Ordering::SeqCst)), t.as_str()) {
            let text = String::from_utf8_lossy(&out).into_owned();
            if ws.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    }
}

/// An address where nothing listens (UDP and TCP).
pub(crate) fn refused() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let a = s.local_addr().expect("addr");
    drop(s);
    a
}

/// Each responder mode over UDP and the probe result it must give (1200 ms probe timeout).
pub(crate) const UDP_CASES: &[(Mode, Outcome, Option<u16>, &str)] = &[
    (Mode::Code(200), Outcome::Up, Some(200), "200 OK"),
    (Mode::Code(404), Outcome::Up, Some(404), "404 Not Found"),
    (
        Mode::Code(503),
        Outcome::Full,
        Some(503),
        "503 Service Unavailable (retry-after 30)",
    ),
    (
        Mode::Code(500),
        Outcome::Down,
        Some(500),
        "500 Server Internal Error",
    ),
    (Mode::TryingThenOk, Outcome::Up, Some(200), "200 OK"),
    (Mode::Compact, Outcome::Up, Some(200), "200 OK"),
    (
        Mode::Garbage,
        Outcome::Down,
        None,
        "bad response: not a SIP response: `\u{16}\u{3}\u{1} hello, this is not SIP`",
    ),
    (Mode::Silent, Outcome::Down, None, "timeout after 1200ms"),
    (Mode::Stray, Outcome::Down, None, "timeout after 1200ms"),
];
