//! SIP OPTIONS over UDP for many targets through one socket per address family: a table of
//! transactions in flight keyed by branch, one receive task dispatching replies to them in
//! batches (`recvmmsg`), and refusals (ICMP port unreachable)
//! read from the socket's error queue (`IP_RECVERR`) and given to the transactions of the
//! address they name. A probe costs a table entry, its sends and a reply channel: its request
//! is written into a buffer inside the probe, and its identifiers are numbers, not strings;
//! no socket, buffer or task of its own.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use std::time::Duration;

use super::monitor::on_tick;
use super::probe::{CodePolicy, Res, T1, describe, fmt_dur, io_detail};
use super::sip::{ParseError, Response, parse_response};
use super::udp_errqueue::Datagrams;

/// The RFC 3261 magic cookie that starts every branch.
const COOKIE: &str = "z9hG4bK";
/// Room for a request: its fixed text and four addresses of at most 47 characters.
const REQUEST_MAX: usize = 768;

/// How a transaction ended, as seen by the receive task.
#[derive(Debug)]
pub(crate) enum Reply {
    Final(Response),
    /// An ICMP error for the target: the OS error number.
    Unreachable(i32),
}

/// A transaction's identifiers, sent as 16 lowercase hex digits each (the branch after
/// [`COOKIE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub branch: u64,
    pub tag: u64,
    pub call_id: u64,
}

impl Ids {
    fn random() -> Ids {
        Ids {
            branch: rand::random(),
            tag: rand::random(),
            call_id: rand::random(),
        }
    }
}

struct Pending {
    target: SocketAddr,
    call_id: u64,
    /// Why the last datagram from the target could not be read, for the timeout message.
    bad: Option<String>,
    done: Option<oneshot::Sender<Reply>>,
}

type Table = Mutex<HashMap<u64, Pending>>;

/// One family's socket and its transactions in flight.
struct Family {
    sock: Arc<UdpSocket>,
    port: u16,
    table: Arc<Table>,
    task: tokio::task::AbortHandle,
    /// Source address per destination, for the Via header (found once per destination).
    local: Mutex<HashMap<IpAddr, IpAddr>>,
}

impl Drop for Family {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The shared UDP prober of a monitor. Create inside a tokio runtime.
#[derive(Default)]
pub struct UdpProber {
    v4: tokio::sync::OnceCell<Option<Family>>,
    v6: tokio::sync::OnceCell<Option<Family>>,
}

/// A transaction in the table; removed when dropped (finished, timed out or cancelled).
pub(crate) struct Transaction<'a> {
    table: &'a Table,
    branch: u64,
    pub rx: oneshot::Receiver<Reply>,
    sock: &'a UdpSocket,
    target: SocketAddr,
}

impl Transaction<'_> {
    pub async fn send(&self, req: &[u8]) -> std::io::Result<()> {
        match self.sock.send_to(req, self.target).await {
            // A refusal of another target, reported on this socket: that target's
            // transaction learns of it from the error queue.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Why the last datagram from the target could not be read, if one could not.
    pub fn bad(&self) -> Option<String> {
        let t = crate::app::reload::guard(self.table);
        t.get(&self.branch).and_then(|p| p.bad.clone())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        crate::app::reload::guard(self.table).remove(&self.branch);
    }
}

impl UdpProber {
    /// Opens a transaction to `target` with `ids`; returns it and the local address to name
    /// in the Via header.
    pub(crate) async fn open(
        &self,
        target: SocketAddr,
        ids: &Ids,
    ) -> std::io::Result<(Transaction<'_>, SocketAddr)> {
        let cell = if target.is_ipv4() { &self.v4 } else { &self.v6 };
        let fam = cell
            .get_or_init(|| async { Family::open(target.is_ipv4()).ok() })
            .await
            .as_ref()
            .ok_or_else(|| std::io::Error::other("cannot open the probe socket"))?;
        let local = SocketAddr::new(fam.local_ip(target.ip()), fam.port);
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            target,
            call_id: ids.call_id,
            bad: None,
            done: Some(tx),
        };
        crate::app::reload::guard(&fam.table).insert(ids.branch, pending);
        let t = Transaction {
            table: &fam.table,
            branch: ids.branch,
            rx,
            sock: &fam.sock,
            target,
        };
        Ok((t, local))
    }
}

impl UdpProber {
    /// One SIP OPTIONS probe of `target`: sent at once, retransmitted from T1 = 500 ms
    /// doubling, 1xx skipped, answered by the first final response that matches branch,
    /// Call-ID and CSeq; refused when the target's port is unreachable.
    pub(crate) async fn sip(
        &self,
        target: SocketAddr,
        timeout: Duration,
        policy: &CodePolicy,
    ) -> Res {
        let ids = Ids::random();
        let (mut tx, local) = self.open(target, &ids).await.map_err(|e| io_detail(&e))?;
        let mut buf = [0u8; REQUEST_MAX];
        let len = write_request(&mut buf, target, local, &ids)
            .ok_or_else(|| format!("request to {target} too long"))?;
        let req = &buf[..len];
        let started = tokio::time::Instant::now();
        let deadline = on_tick(timeout);
        let mut interval = T1;
        let mut sent = Duration::ZERO;
        loop {
            if tokio::time::Instant::now() >= deadline {
                let timed_out = format!("timeout after {}", fmt_dur(timeout));
                return Err(tx.bad().unwrap_or(timed_out));
            }
            tx.send(req).await.map_err(|e| io_detail(&e))?;
            // Retransmissions at T1, 3·T1, 7·T1... after the first send, on the common tick.
            sent += interval;
            let elapsed = started.elapsed();
            let wait = on_tick(sent.saturating_sub(elapsed)).min(deadline);
            interval *= 2;
            match tokio::time::timeout_at(wait, &mut tx.rx).await {
                Err(_) => continue,
                Ok(Err(_)) => return Err("probe socket closed".into()),
                Ok(Ok(Reply::Final(r))) => {
                    let detail = describe(r.code, &r.reason, r.retry_after);
                    return Ok((policy.classify(r.code), Some(r.code), detail));
                }
                Ok(Ok(Reply::Unreachable(errno))) => {
                    return Err(io_detail(&std::io::Error::from_raw_os_error(errno)));
                }
            }
        }
    }
}

impl Family {
    fn open(v4: bool) -> std::io::Result<Family> {
        let (domain, bind, level, opt) = if v4 {
            let a: SocketAddr = (Ipv4Addr::UNSPECIFIED, 0).into();
            (socket2::Domain::IPV4, a, libc::SOL_IP, libc::IP_RECVERR)
        } else {
            let a: SocketAddr = (Ipv6Addr::UNSPECIFIED, 0).into();
            (socket2::Domain::IPV6, a, libc::SOL_IPV6, libc::IPV6_RECVERR)
        };
        let s = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
        if !v4 {
            s.set_only_v6(true)?;
        }
        s.set_nonblocking(true)?;
        set_int(&s, level, opt, 1)?;
        // Replies of thousands of targets can arrive in one burst.
        let _ = s.set_recv_buffer_size(4 * 1024 * 1024);
        s.bind(&bind.into())?;
        let sock = Arc::new(UdpSocket::from_std(s.into())?);
        let port = sock.local_addr()?.port();
        let table: Arc<Table> = Arc::default();
        let task = tokio::spawn(receive(sock.clone(), table.clone(), v4)).abort_handle();
        Ok(Family {
            sock,
            port,
            table,
            task,
            local: Mutex::default(),
        })
    }

    /// The address the OS sends from to `dst` (a route lookup, no packet sent).
    fn local_ip(&self, dst: IpAddr) -> IpAddr {
        let mut cache = crate::app::reload::guard(&self.local);
        *cache.entry(dst).or_insert_with(|| {
            let any: SocketAddr = match dst {
                IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            std::net::UdpSocket::bind(any)
                .and_then(|s| {
                    s.connect((dst, 9))?;
                    s.local_addr()
                })
                .map_or(any.ip(), |a| a.ip())
        })
    }
}

fn set_int(s: &socket2::Socket, level: i32, opt: i32, v: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid socket, an int option, and a pointer to an int of the length given.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads replies in batches until aborted, handing each to its transaction.
async fn receive(sock: Arc<UdpSocket>, table: Arc<Table>, v4: bool) {
    let mut batch = Datagrams::default();
    loop {
        let fd = sock.as_raw_fd();
        match sock
            .async_io(Interest::READABLE | Interest::ERROR, || batch.recv(fd))
            .await
        {
            Ok(_) => {
                for (datagram, from, cut) in batch.iter() {
                    if let Some(from) = from {
                        dispatch(&table, datagram, cut, from);
                    }
                }
            }
            Err(_) => {
                // The error queue names the refused destinations; any other error is
                // transient (the socket stays usable), but is not retried in a tight loop.
                let errors = super::udp_errqueue::drain(sock.as_raw_fd(), v4);
                if errors.is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                for (dst, errno) in errors {
                    unreachable(&table, dst, errno);
                }
            }
        }
    }
}

/// The number 16 lowercase hex digits write.
fn hex16(s: &str) -> Option<u64> {
    let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(s, 16).ok()).flatten()
}

/// An OPTIONS request from `local` to `target` with `ids`, written into `buf`; its length.
fn write_request(
    buf: &mut [u8],
    target: SocketAddr,
    local: SocketAddr,
    ids: &Ids,
) -> Option<usize> {
    let room = buf.len();
    let mut w = &mut buf[..];
    let (t, via, lhost) = (HostPort(target), HostPort(local), Host(local.ip()));
    write!(
        w,
        "OPTIONS sip:{t} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch={COOKIE}{:016x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:sipsteer@{lhost}>;tag={:016x}\r\n\
         To: <sip:{t}>\r\n\
         Call-ID: {:016x}@{lhost}\r\n\
         CSeq: 1 OPTIONS\r\n\
         User-Agent: sipsteer/{}\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        ids.branch,
        ids.tag,
        ids.call_id,
        env!("CARGO_PKG_VERSION"),
    )
    .ok()?;
    Some(room - w.len())
}

/// `host:port` as a SIP URI host part (IPv6 in brackets).
struct HostPort(SocketAddr);

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", Host(self.0.ip()), self.0.port())
    }
}

/// An address as a SIP URI host (IPv6 in brackets).
struct Host(IpAddr);

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Hands one reply to its transaction; `cut`: longer than the buffer (reported as truncated).
fn dispatch(table: &Table, datagram: &[u8], cut: bool, from: SocketAddr) {
    let mut t = crate::app::reload::guard(table);
    let parsed = if cut {
        Err(ParseError::Incomplete)
    } else {
        parse_response(datagram)
    };
    match parsed {
        Ok((r, _)) => {
            if r.code < 200 {
                return;
            }
            let branch = r.branch.as_deref().and_then(|b| b.strip_prefix(COOKIE));
            let Some(p) = branch.and_then(hex16).and_then(|b| t.get_mut(&b)) else {
                return; // a stray or late reply
            };
            if !same(p.target, from) {
                return; // only the target answers for itself, as on a connected socket
            }
            let call_id = r.call_id.as_deref().and_then(|c| c.split('@').next());
            let call_id = call_id.and_then(hex16);
            let cseq = r
                .cseq
                .as_ref()
                .is_some_and(|(n, m)| *n == 1 && m.eq_ignore_ascii_case("OPTIONS"));
            if call_id == Some(p.call_id)
                && cseq
                && let Some(done) = p.done.take()
            {
                let _ = done.send(Reply::Final(r));
            }
        }
        Err(e) => {
            let why = match e {
                ParseError::Incomplete => "bad response: truncated datagram".to_string(),
                ParseError::Bad(e) => format!("bad response: {e}"),
            };
            for p in t.values_mut().filter(|p| same(p.target, from)) {
                p.bad = Some(why.clone());
            }
        }
    }
}

fn unreachable(table: &Table, dst: SocketAddr, errno: i32) {
    let mut t = crate::app::reload::guard(table);
    for p in t.values_mut().filter(|p| same(p.target, dst)) {
        if let Some(done) = p.done.take() {
            let _ = done.send(Reply::Unreachable(errno));
        }
    }
}

/// The same address and port (flow label and scope aside).
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_one_every_transport_sends() {
        let cases: [(SocketAddr, SocketAddr); 2] = [
            (
                "192.0.2.7:5060".parse().unwrap(),
                "10.0.0.1:40000".parse().unwrap(),
            ),
            (
                "[2001:db8::7]:5080".parse().unwrap(),
                "[fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                    .parse()
                    .unwrap(),
            ),
        ];
        let ids = Ids {
            branch: 0x0123_4567_89ab_cdef,
            tag: 7,
            call_id: u64::MAX,
        };
        let strings = super::super::sip::Ids {
            branch: format!("{COOKIE}0123456789abcdef"),
            tag: "0000000000000007".into(),
            call_id: "ffffffffffffffff".into(),
        };
        for (target, local) in cases {
            let mut buf = [0u8; REQUEST_MAX];
            let len = write_request(&mut buf, target, local, &ids).unwrap();
            let want = super::super::sip::options_request(target, local, "UDP", &strings);
            assert_eq!(std::str::from_utf8(&buf[..len]).unwrap(), want);
        }
    }

    #[test]
    fn identifiers_are_sixteen_lowercase_hex_digits() {
        assert_eq!(hex16("0123456789abcdef"), Some(0x0123_4567_89ab_cdef));
        for bad in [
            "0123456789ABCDEF",
            "123",
            "+123456789abcdef",
            "0123456789abcdef0",
            "",
        ] {
            assert_eq!(hex16(bad), None, "{bad}");
        }
    }
}
