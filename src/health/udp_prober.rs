//! SIP OPTIONS over UDP for many targets through one socket per address family: a table of
//! transactions in flight keyed by branch, one receive task dispatching replies to them, and
//! refusals (ICMP port unreachable) read from the socket's error queue (`IP_RECVERR`) and given
//! to the transactions of the address they name. A probe costs its request text, a table
//! entry and its sends; no socket, buffer or task of its own.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use std::time::Duration;

use super::monitor::on_tick;
use super::probe::{CodePolicy, Res, T1, describe, fmt_dur, io_detail};
use super::sip::{Ids, ParseError, Response, options_request, parse_response};

/// Largest datagram read (a longer one is cut and reported as truncated).
const MAX_DATAGRAM: usize = 65_535;

/// How a transaction ended, as seen by the receive task.
#[derive(Debug)]
pub(crate) enum Reply {
    Final(Response),
    /// An ICMP error for the target: the OS error number.
    Unreachable(i32),
}

struct Pending {
    target: SocketAddr,
    call_id: String,
    /// Why the last datagram from the target could not be read, for the timeout message.
    bad: Option<String>,
    done: Option<oneshot::Sender<Reply>>,
}

type Table = Mutex<HashMap<String, Pending>>;

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
    branch: String,
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
            call_id: ids.call_id.clone(),
            bad: None,
            done: Some(tx),
        };
        crate::app::reload::guard(&fam.table).insert(ids.branch.clone(), pending);
        let t = Transaction {
            table: &fam.table,
            branch: ids.branch.clone(),
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
        let req = options_request(target, local, "UDP", &ids);
        let started = tokio::time::Instant::now();
        let deadline = on_tick(timeout);
        let mut interval = T1;
        let mut sent = Duration::ZERO;
        loop {
            if tokio::time::Instant::now() >= deadline {
                let timed_out = format!("timeout after {}", fmt_dur(timeout));
                return Err(tx.bad().unwrap_or(timed_out));
            }
            tx.send(req.as_bytes()).await.map_err(|e| io_detail(&e))?;
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

/// Reads replies until aborted, handing each to its transaction.
async fn receive(sock: Arc<UdpSocket>, table: Arc<Table>, v4: bool) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => dispatch(&table, &buf[..n], from),
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

fn dispatch(table: &Table, datagram: &[u8], from: SocketAddr) {
    let mut t = crate::app::reload::guard(table);
    match parse_response(datagram) {
        Ok((r, _)) => {
            if r.code < 200 {
                return;
            }
            let Some(p) = r.branch.as_deref().and_then(|b| t.get_mut(b)) else {
                return; // a stray or late reply
            };
            if !same(p.target, from) {
                return; // only the target answers for itself, as on a connected socket
            }
            let call_id = r.call_id.as_deref().and_then(|c| c.split('@').next());
            let cseq = r
                .cseq
                .as_ref()
                .is_some_and(|(n, m)| *n == 1 && m.eq_ignore_ascii_case("OPTIONS"));
            if call_id == Some(p.call_id.as_str())
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
