//! UDP and TCP listeners around the answer path.
//!
//! UDP: several sockets per address (SO_REUSEPORT), each served by its own thread that
//! receives, answers and sends without spawning anything per packet. TCP: tokio tasks with a
//! bounded number of connections, an idle timeout, and RFC 7766 pipelining answered in order.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::answer::{Proto, respond};
use crate::admin::metrics::QueryStats;
use crate::querylog::QueryLog;
use crate::snapshot::Shared;

/// Whether an IPv6 listen address must be IPv6-only: when the list also has an IPv4 address
/// on its port (`["0.0.0.0:53", "[::]:53"]`), a dual-stack socket would collide with it.
pub fn v6_only(addr: SocketAddr, listen: &[SocketAddr]) -> bool {
    addr.is_ipv6()
        && addr.port() != 0
        && listen
            .iter()
            .any(|l| l.is_ipv4() && (l.port() == addr.port()))
}

/// Binds `n` UDP sockets sharing one address (port 0 picks one port for all). A wildcard
/// address gets destination-address control messages so replies leave from the address each
/// query was sent to.
pub fn bind_udp(addr: SocketAddr, n: usize, only_v6: bool) -> io::Result<Vec<UdpSocket>> {
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
        // A read timeout lets the thread notice shutdown.
        sock.set_read_timeout(Some(Duration::from_millis(250)))?;
        out.push(sock);
    }
    Ok(out)
}

/// Binds a TCP listener (with SO_REUSEADDR so restarts don't wait for TIME_WAIT).
pub fn bind_tcp(addr: SocketAddr, only_v6: bool) -> io::Result<std::net::TcpListener> {
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

/// Serves one UDP socket on a dedicated thread until `stop` is set.
pub fn spawn_udp(
    sock: UdpSocket,
    shared: Shared,
    stats: Arc<QueryStats>,
    log: Option<Arc<QueryLog>>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sipsteer-udp".into())
        .spawn(move || serve_udp(&sock, &shared, &stats, log.as_deref(), &stop))
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
    shared: &Shared,
    stats: &QueryStats,
    log: Option<&QueryLog>,
    stop: &AtomicBool,
) {
    use super::udp_batch::Batch;
    let pktinfo = sock.local_addr().is_ok_and(|a| a.ip().is_unspecified());
    let mut batch = Batch::new(pktinfo);
    while !stop.load(Ordering::Relaxed) {
        let Some(n) = received(batch.recv(sock)) else {
            continue;
        };
        let snap = shared.load();
        let send = batch.answer(|req, peer, out| {
            if peer.port() == 0 {
                return false;
            }
            match respond(&snap, peer.ip(), Proto::Udp, req, out) {
                Some(summary) => {
                    snap.count_and_log(&summary, stats, log, peer.ip(), req);
                    true
                }
                None => false,
            }
        });
        if let Err(e) = batch.send(sock, &send[..n]) {
            tracing::debug!(error = %e, "udp send failed");
        }
    }
}

/// One query per system call, for systems without `recvmmsg`.
#[cfg(not(target_os = "linux"))]
fn serve_udp(
    sock: &UdpSocket,
    shared: &Shared,
    stats: &QueryStats,
    log: Option<&QueryLog>,
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
        let snap = shared.load();
        if let Some(summary) = respond(&snap, peer.ip(), Proto::Udp, &req[..n], &mut out) {
            if let Err(e) = sock.send_to(&out, peer) {
                tracing::debug!(error = %e, %peer, "udp send failed");
            }
            snap.count_and_log(&summary, stats, log, peer.ip(), &req[..n]);
        }
    }
}

/// Accepts TCP connections until `cancel` fires.
pub async fn serve_tcp(
    listener: TcpListener,
    shared: Shared,
    stats: Arc<QueryStats>,
    log: Option<Arc<QueryLog>>,
    max_connections: usize,
    idle: Duration,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = cancel.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let shared = shared.clone();
        let stats = stats.clone();
        let log = log.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = connection(stream, peer, shared, stats, log, idle) => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Shared,
    stats: Arc<QueryStats>,
    log: Option<Arc<QueryLog>>,
    idle: Duration,
) {
    stream.set_nodelay(true).ok();
    let mut req = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let n = u16::from_be_bytes(len) as usize;
        match tokio::time::timeout(idle, stream.read_exact(&mut req[..n])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let answered = {
            let snap = shared.load();
            let summary = respond(&snap, peer.ip(), Proto::Tcp, &req[..n], &mut out);
            if let Some(s) = &summary {
                snap.count_and_log(s, &stats, log.as_deref(), peer.ip(), &req[..n]);
            }
            summary.is_some()
        };
        if !answered {
            continue;
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        if tokio::time::timeout(idle, stream.write_all(&framed))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::v6_only;

    #[test]
    fn ipv6_only_beside_ipv4_on_the_same_port() {
        let l = |s: &[&str]| -> Vec<std::net::SocketAddr> {
            s.iter().map(|a| a.parse().expect("addr")).collect()
        };
        let both = l(&["0.0.0.0:53", "[::]:53"]);
        assert!(v6_only(both[1], &both));
        assert!(!v6_only(both[0], &both), "ipv4 sockets have no such option");
        let alone = l(&["[::]:53", "127.0.0.1:5353"]);
        assert!(
            !v6_only(alone[0], &alone),
            "dual-stack when no ipv4 shares the port"
        );
    }
}
