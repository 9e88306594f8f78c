//! UDP and TCP listeners around the answer path.
//!
//! UDP: several sockets per address (SO_REUSEPORT), each served by its own thread that
//! receives, answers and sends without spawning anything per packet. The thread blocks in
//! the receive call with no timeout (a timer armed and cancelled per wait costs CPU at
//! moderate load); shutdown wakes it by shutting its socket for reading ([`UdpThread`]).
//! TCP sockets are bound here and served by `tcp`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use metrics::Counter;
use socket2::{Domain, Protocol, Socket, Type};

use super::denial::Route;
use super::serving::{Answering, Served};
use super::summary::Proto;

/// Whether an IPv6 listen address must be IPv6-only: when the list also has an IPv4 address
/// on its port (`["0.0.0.0:53", "[::]:53"]`), a dual-stack socket would collide with it.
pub(crate) fn v6_only(addr: SocketAddr, listen: &[SocketAddr]) -> bool {
    addr.is_ipv6()
        && addr.port() != 0
        && listen
            .iter()
            .any(|l| l.is_ipv4() && (l.port() == addr.port()))
}

/// Binds `n` UDP sockets sharing one address (port 0 picks one port for all). A wildcard
/// address gets destination-address control messages so replies leave from the address each
/// query was sent to.
pub(crate) fn bind_udp(addr: SocketAddr, n: usize, only_v6: bool) -> io::Result<Vec<UdpSocket>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(only_v6)?;
        }
        s.set_reuse_port(true)?;
        s.set_recv_buffer_size(4 << 20).ok();
        s.set_send_buffer_size(4 << 20).ok();
        s.bind(&addr.into())?;
        let sock: UdpSocket = s.into();
        #[cfg(target_os = "linux")]
        if addr.ip().is_unspecified() {
            super::udp_batch::enable_pktinfo(&sock, addr.is_ipv6())?;
        }
        addr = sock.local_addr()?;
        // Where a blocked receive cannot be woken by shutting the socket, a read timeout
        // lets the thread notice shutdown.
        #[cfg(not(target_os = "linux"))]
        sock.set_read_timeout(Some(std::time::Duration::from_millis(250)))?;
        out.push(sock);
    }
    Ok(out)
}

/// Binds a TCP listener (with SO_REUSEADDR so restarts don't wait for TIME_WAIT).
pub(crate) fn bind_tcp(addr: SocketAddr, only_v6: bool) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(only_v6)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A UDP listener's thread, with a second handle on its socket to wake it for shutdown.
pub(crate) struct UdpThread {
    thread: JoinHandle<()>,
    sock: UdpSocket,
}

impl UdpThread {
    /// Wakes the thread if it waits in a receive; it then sees `stop` (set before this) and
    /// ends. Shutting a UDP socket for reading wakes its blocked readers and makes later
    /// receives return at once, on Linux even though the call reports `ENOTCONN`.
    pub(crate) fn wake(&self) {
        let _ = socket2::SockRef::from(&self.sock).shutdown(std::net::Shutdown::Read);
    }

    /// Waits for the thread to end (after [`UdpThread::wake`]).
    pub(crate) fn join(self) {
        let _ = self.thread.join();
    }
}

/// Serves one UDP socket on a dedicated thread until `stop` is set and the thread is woken.
/// `answering` counts as its block's only writer (`Counters::sole_listener`); a thread that
/// panics is logged and counted on `died`.
pub(crate) fn spawn_udp(
    sock: UdpSocket,
    mut answering: Answering,
    stop: Arc<AtomicBool>,
    died: Counter,
) -> io::Result<UdpThread> {
    let wake = sock.try_clone()?;
    // The signer thread sends the replies it completes through this clone.
    let replies = Arc::new(sock.try_clone()?);
    let thread = std::thread::Builder::new()
        .name("sipsteer-udp".into())
        .spawn(move || {
            let _watch = Watch(died);
            serve_udp(&sock, &replies, &mut answering, &stop);
        })?;
    Ok(UdpThread { thread, sock: wake })
}

/// Logs and counts the end of a UDP thread that panicked (when it is dropped while the
/// thread unwinds).
struct Watch(Counter);

impl Drop for Watch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(task = "udp", "udp listener thread panicked");
            self.0.increment(1);
        }
    }
}

/// A received value, or `None` after a timeout (the loop checks for shutdown) or an error
/// (logged at debug: one bad datagram must not stop the listener).
fn received<T>(r: io::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "udp receive failed");
            None
        }
    }
}

/// Receives queries in batches, answers each from one snapshot load, sends the replies in
/// one call.
#[cfg(target_os = "linux")]
fn serve_udp(
    sock: &UdpSocket,
    replies: &Arc<UdpSocket>,
    answering: &mut Answering,
    stop: &AtomicBool,
) {
    use super::lookahead::Peeked;
    use super::udp_batch::{self, BATCH, Batch};
    let local = sock.local_addr().ok();
    let pktinfo = local.is_some_and(|a| a.ip().is_unspecified());
    let ipv6 = local.is_some_and(|a| a.is_ipv6());
    let mut batch = Batch::new(pktinfo);
    let mut peeked = Peeked::<BATCH>::default();
    // Don't Fragment as the socket has it; set when the first batch's config is known and
    // again whenever a reload moves `dns.udp_payload` across the limit.
    let mut dont_fragment = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(n) = received(batch.recv(sock)) else {
            continue;
        };
        let snap = answering.load();
        let df = udp_batch::dont_fragment(snap.udp_payload);
        if dont_fragment != Some(df) {
            if let Err(e) = udp_batch::set_dont_fragment(sock, ipv6, df) {
                tracing::debug!(error = %e, "cannot set don't fragment");
            }
            dont_fragment = Some(df);
        }
        let ahead = snap.lookahead(
            &mut peeked,
            n,
            |i| batch.query(i),
            |i| batch.peer(i).map(|p| p.ip()),
        );
        let mut on = answering.on(&snap);
        let send = batch.answer(|i, req, peer, dest, out| {
            ahead.before(i);
            peer.port() != 0
                && matches!(
                    on.answer(peer.ip(), Proto::Udp, req, out, || later(
                        replies, peer, dest
                    )),
                    Served::Send(_)
                )
        });
        if let Err(e) = batch.send(sock, &send[..n]) {
            tracing::debug!(error = %e, "udp send failed");
        }
    }
}

/// Where the signer thread sends a reply it completes: from `dest` (the address the query
/// was sent to) through the listener socket's clone `replies`.
fn later(replies: &Arc<UdpSocket>, peer: SocketAddr, dest: Option<std::net::IpAddr>) -> Route {
    Route::Udp {
        sock: replies.clone(),
        peer,
        source: dest,
    }
}

/// One query per system call, for systems without `recvmmsg`.
#[cfg(not(target_os = "linux"))]
fn serve_udp(
    sock: &UdpSocket,
    replies: &Arc<UdpSocket>,
    answering: &mut Answering,
    stop: &AtomicBool,
) {
    let mut req = [0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let Some((n, peer)) = received(sock.recv_from(&mut req)) else {
            continue;
        };
        if peer.port() == 0 {
            continue;
        }
        let served = answering.answer(peer.ip(), Proto::Udp, &req[..n], &mut out, || {
            later(replies, peer, None)
        });
        if matches!(served, Served::Send(_))
            && let Err(e) = sock.send_to(&out, peer)
        {
            tracing::debug!(error = %e, %peer, "udp send failed");
        }
    }
}
