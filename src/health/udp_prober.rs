//! SIP OPTIONS over UDP for many targets through one socket per address family: a table of
//! transactions in flight ([`super::udp_table`]) and one task per socket that reads it. The
//! socket is not registered with the runtime, so a reply wakes nothing: while transactions
//! are in flight the task reads every queued datagram and ICMP error (`IP_RECVERR`) once per
//! common tick ([`on_tick`]), the same ticks the probes' timers fire on, so replies are handled
//! in batches. The kernel stamps each datagram with its arrival time (`SO_TIMESTAMPNS`): the
//! round trip is exact however late in the tick the reply is read, and a probe whose timer
//! fires reads the socket before judging, so a reply that arrived in time always counts. A
//! probe costs a table entry and its sends; no socket, buffer, task or channel of its own.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::monitor::on_tick;
use super::probe::{CodePolicy, ProbeError, Res, T1};
use super::sip::{RequestIds, write_options_request};
use super::udp_table::{Answer, Branch, Hex, Table, round_trip};

/// Largest datagram read (a longer one is cut and read as truncated).
const MAX_DATAGRAM: usize = 65_535;
/// Most datagrams read in one pass (the rest wait for the next tick; their times stay exact).
const MAX_PER_PASS: usize = 4096;
/// Room for a request: IPv6 addresses at their longest take under half of it.
const MAX_REQUEST: usize = 1024;

/// What the socket's task and the probes share, under one lock.
struct Shared {
    table: Table,
    buf: Box<[u8]>,
}

/// One family's socket and its transactions in flight.
struct Family {
    sock: std::net::UdpSocket,
    v4: bool,
    port: u16,
    shared: Mutex<Shared>,
    /// Told when a transaction opens while none were in flight.
    wake: Arc<Notify>,
    /// The task reading the socket, until [`UdpProber::shutdown`] takes it.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Source address per destination, for the Via header (found once per destination).
    local: Mutex<HashMap<IpAddr, IpAddr>>,
}

impl Drop for Family {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = task.take() {
            t.abort();
        }
    }
}

/// The shared UDP prober of a monitor. Create inside a tokio runtime.
#[derive(Default)]
pub struct UdpProber {
    v4: tokio::sync::OnceCell<Option<Arc<Family>>>,
    v6: tokio::sync::OnceCell<Option<Arc<Family>>>,
}

/// A transaction in the table; removed when dropped (finished, timed out or cancelled).
struct Transaction<'a> {
    fam: &'a Family,
    id: u64,
    target: SocketAddr,
}

impl Transaction<'_> {
    /// Sends the request (written anew each time, so no probe keeps a buffer) to the target.
    /// A datagram the socket has no room for is lost, as on the network: the retransmissions
    /// cover it.
    fn send(&self, ids: &Ids) -> std::io::Result<()> {
        let mut buf = [0u8; MAX_REQUEST];
        let req = request(&mut buf, self.target, ids)?;
        for _ in 0..2 {
            match self.fam.sock.send_to(req, self.target) {
                // A refusal of another target, reported on this send (which it stopped):
                // that target's transaction learns of it from the error queue.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                r => return r.map(|_| ()),
            }
        }
        Ok(())
    }

    /// The answer, once the socket's task has read it.
    fn answer(&self) -> impl Future<Output = Answer> + '_ {
        std::future::poll_fn(move |cx| {
            let mut s = crate::lock::guard(&self.fam.shared);
            s.table
                .answer(self.id, cx.waker())
                .map_or(Poll::Pending, Poll::Ready)
        })
    }

    /// Reads the socket now, then takes the answer if there is one.
    fn settle(&self) -> Option<Answer> {
        self.fam.read(|s| s.table.take(self.id))
    }

    /// Why the last datagram from the target could not be read, if one could not.
    fn bad(&self) -> Option<super::sip::ParseError> {
        crate::lock::guard(&self.fam.shared).table.bad(self.id)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        crate::lock::guard(&self.fam.shared).table.close(self.id);
    }
}

impl UdpProber {
    /// Opens a transaction to `target` whose Call-ID is `call_id`; returns it and the local
    /// address to name in the Via header.
    async fn open(
        &self,
        target: SocketAddr,
        call_id: u64,
    ) -> std::io::Result<(Transaction<'_>, SocketAddr)> {
        let cell = if target.is_ipv4() { &self.v4 } else { &self.v6 };
        let fam = cell
            .get_or_init(|| async { Family::open(target.is_ipv4()).ok() })
            .await
            .as_deref()
            .ok_or_else(|| std::io::Error::other("cannot open the probe socket"))?;
        let local = SocketAddr::new(fam.local_ip(target.ip()), fam.port);
        let id = {
            let mut s = crate::lock::guard(&fam.shared);
            if s.table.is_empty() {
                fam.wake.notify_one();
            }
            s.table.open(target, call_id)
        };
        Ok((Transaction { fam, id, target }, local))
    }

    /// Stops the sockets' tasks and waits for them to end; probes still open time out.
    pub(crate) async fn shutdown(&self) {
        for fam in [self.v4.get(), self.v6.get()]
            .into_iter()
            .flatten()
            .flatten()
        {
            let task = fam
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(t) = task {
                t.abort();
                let _ = t.await;
            }
        }
    }

    /// One SIP OPTIONS probe of `target`: sent at once, retransmitted from T1 = 500 ms
    /// doubling, 1xx skipped, answered by the first final response that matches branch,
    /// Call-ID and CSeq; refused when the target's port is unreachable. With a final
    /// response comes its round trip, from the first send to the kernel's receive time.
    pub(crate) async fn sip(
        &self,
        target: SocketAddr,
        timeout: Duration,
        policy: &CodePolicy,
    ) -> (Res, Option<Duration>) {
        let call_id = rand::random::<u64>();
        let (tx, local) = match self.open(target, call_id).await {
            Ok(t) => t,
            Err(e) => return (Err(e.into()), None),
        };
        let ids = Ids {
            local,
            id: tx.id,
            tag: rand::random::<u64>(),
            call_id,
        };
        let (started, wall) = (Instant::now(), SystemTime::now());
        let deadline = on_tick(timeout);
        let mut interval = T1;
        let mut sent = Duration::ZERO;
        let answer = loop {
            if tokio::time::Instant::now() >= deadline {
                match tx.settle() {
                    Some(a) => break a,
                    None => {
                        let e = tx
                            .bad()
                            .map_or(ProbeError::Timeout(timeout), ProbeError::from);
                        return (Err(e), None);
                    }
                }
            }
            if let Err(e) = tx.send(&ids) {
                return (Err(e.into()), None);
            }
            // Retransmissions at T1, 3·T1, 7·T1... after the first send, on the common tick.
            sent += interval;
            let wait = on_tick(sent.saturating_sub(started.elapsed())).min(deadline);
            interval *= 2;
            match tokio::time::timeout_at(wait, tx.answer()).await {
                Ok(a) => break a,
                Err(_) => {
                    if let Some(a) = tx.settle() {
                        break a;
                    }
                }
            }
        };
        match answer {
            Answer::Final { code, detail, at } => {
                let rtt = round_trip(wall, started.elapsed(), at);
                (Ok((policy.classify(code), Some(code), detail)), Some(rtt))
            }
            Answer::Unreachable(errno) => {
                (Err(std::io::Error::from_raw_os_error(errno).into()), None)
            }
        }
    }
}

/// What a probe's request says besides its target.
struct Ids {
    /// The address in Via and From.
    local: SocketAddr,
    /// The transaction, in the branch.
    id: u64,
    tag: u64,
    call_id: u64,
}

/// Writes the request to `target` into `buf`; returns the part written.
fn request<'b>(
    buf: &'b mut [u8; MAX_REQUEST],
    target: SocketAddr,
    ids: &Ids,
) -> std::io::Result<&'b [u8]> {
    let text = RequestIds {
        branch: &Branch(ids.id),
        tag: &Hex(ids.tag),
        call_id: &Hex(ids.call_id),
    };
    let mut w = &mut buf[..];
    write_options_request(&mut w, target, ids.local, "UDP", &text)?;
    let len = MAX_REQUEST - w.len();
    Ok(&buf[..len])
}

impl Family {
    fn open(v4: bool) -> std::io::Result<Arc<Family>> {
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
        super::udp_recv::enable_timestamps(s.as_raw_fd())?;
        // Replies of thousands of targets can wait for one tick.
        let _ = s.set_recv_buffer_size(4 * 1024 * 1024);
        s.bind(&bind.into())?;
        let sock: std::net::UdpSocket = s.into();
        let port = sock.local_addr()?.port();
        let wake = Arc::new(Notify::new());
        let fam = Arc::new(Family {
            sock,
            v4,
            port,
            shared: Mutex::new(Shared {
                table: Table::default(),
                buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
            }),
            wake: wake.clone(),
            task: Mutex::new(None),
            local: Mutex::default(),
        });
        let task = tokio::spawn(read_on_ticks(Arc::downgrade(&fam), wake));
        *fam.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(fam)
    }

    /// Reads every queued datagram and ICMP error into the table, then runs `f` on it, all
    /// under the lock.
    fn read<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut guard = crate::lock::guard(&self.shared);
        let s = &mut *guard;
        let fd = self.sock.as_raw_fd();
        for _ in 0..MAX_PER_PASS {
            match super::udp_recv::recv(fd, &mut s.buf) {
                Ok(Some(d)) => {
                    if let (Some(from), Some(data)) = (d.from, s.buf.get(..d.len)) {
                        s.table.dispatch(data, d.truncated, from, d.at);
                    }
                }
                Ok(None) => break,
                // An ICMP error pending on the socket: the error queue names its target.
                Err(_) => {
                    if !self.refusals(&mut s.table) {
                        break;
                    }
                }
            }
        }
        self.refusals(&mut s.table);
        f(s)
    }

    /// Ends the transactions the queued ICMP errors are about; whether there were any.
    fn refusals(&self, table: &mut Table) -> bool {
        let errors = super::udp_errqueue::drain(self.sock.as_raw_fd(), self.v4);
        for &(dst, errno) in &errors {
            table.unreachable(dst, errno);
        }
        !errors.is_empty()
    }

    /// The address the OS sends from to `dst` (a route lookup, no packet sent).
    fn local_ip(&self, dst: IpAddr) -> IpAddr {
        let mut cache = crate::lock::guard(&self.local);
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

/// The socket's task: while transactions are in flight, reads the socket on every tick;
/// otherwise sleeps until one opens. Ends with the family.
async fn read_on_ticks(fam: Weak<Family>, wake: Arc<Notify>) {
    loop {
        let idle = match fam.upgrade() {
            Some(f) => crate::lock::guard(&f.shared).table.is_empty(),
            None => return,
        };
        if idle {
            wake.notified().await;
        }
        tokio::time::sleep_until(on_tick(Duration::ZERO)).await;
        match fam.upgrade() {
            Some(f) => f.read(|_| ()),
            None => return,
        }
    }
}

fn set_int(s: &socket2::Socket, level: i32, opt: i32, v: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid socket, an int option, and a pointer to an int of the length given.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
