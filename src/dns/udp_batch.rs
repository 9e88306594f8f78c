//! Batched UDP I/O on Linux: `recvmmsg` takes up to [`BATCH`] queries in one system call and
//! `sendmmsg` returns their replies in one, so under load the cost of a query is mostly the
//! answer, not the kernel crossing. The buffers are allocated once per socket (a
//! [`crate::sys::Mmsg`]).
//!
//! On a wildcard socket (`0.0.0.0`, `[::]`) each query's destination address is read from its
//! `IP_PKTINFO`/`IPV6_PKTINFO` control message and given back on the reply, so the reply
//! leaves from the address the query was sent to (see [`enable_pktinfo`]).
//!
//! While the configured UDP payload fits any path, replies are never fragmented: Don't
//! Fragment is set whatever path-MTU information says, and no IP ID is drawn for them
//! ([`dont_fragment`], RFC 9715).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use crate::sys::{Mmsg, Recv, Shape, To, cmsg};

/// Queries taken per system call at most.
pub(super) const BATCH: usize = 32;
/// Largest query read (EDNS queries are small; a larger one is truncated and fails to parse).
const MAX_QUERY: usize = 4096;

/// Asks the kernel for each datagram's destination address (`IP_PKTINFO` for IPv4, also on a
/// dual-stack IPv6 socket where IPv4 queries arrive mapped, and `IPV6_RECVPKTINFO`).
pub(super) fn enable_pktinfo(sock: &UdpSocket, ipv6: bool) -> io::Result<()> {
    let set = |level, name| crate::sys::set_int(sock.as_raw_fd(), level, name, 1);
    if ipv6 {
        set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
        // IPv4 queries on a dual-stack socket; fails harmlessly on a v6-only one.
        set(libc::IPPROTO_IP, libc::IP_PKTINFO).ok();
        Ok(())
    } else {
        set(libc::IPPROTO_IP, libc::IP_PKTINFO)
    }
}

/// Largest configured UDP payload (`dns.udp_payload`) whose replies leave with Don't Fragment
/// set: 1232 bytes and the IPv6 and UDP headers fit the smallest IPv6 MTU (1280), so such a
/// reply crosses any link whole. A larger setting asks for replies that may need fragments.
const DONT_FRAGMENT_MAX_PAYLOAD: u16 = 1232;

/// Whether replies leave with Don't Fragment set under a configured UDP payload of `payload`.
pub(super) fn dont_fragment(payload: u16) -> bool {
    payload <= DONT_FRAGMENT_MAX_PAYLOAD
}

/// Makes the socket's replies unfragmentable, or restores the kernel's default.
///
/// On: `IP_PMTUDISC_PROBE` (and `IPV6_PMTUDISC_PROBE`) sets DF on every reply and ignores
/// path-MTU information, which a forged ICMP message could lower to force fragments. Such
/// an IPv4 datagram carries IP ID 0: the kernel draws none, which saves it a hash and an
/// atomic increment on a shared counter per reply. Off: `IP_PMTUDISC_WANT`, the default,
/// which sets DF only while a datagram fits the path MTU it has learnt, fragments what does
/// not, and draws an IP ID for every datagram.
pub(super) fn set_dont_fragment(sock: &UdpSocket, ipv6: bool, on: bool) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let (v4, v6) = if on {
        (libc::IP_PMTUDISC_PROBE, libc::IPV6_PMTUDISC_PROBE)
    } else {
        (libc::IP_PMTUDISC_WANT, libc::IPV6_PMTUDISC_WANT)
    };
    if ipv6 {
        crate::sys::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v6)?;
        // IPv4 replies on a dual-stack socket; fails harmlessly on a v6-only one.
        crate::sys::set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4).ok();
        Ok(())
    } else {
        crate::sys::set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4)
    }
}

/// The per-socket buffers: one [`Mmsg`] for the queries and replies, and the replies'
/// bytes. Each UDP thread builds its own.
pub(super) struct Batch {
    mmsg: Mmsg,
    /// The destination address of each query of the last batch (none unless the socket
    /// delivers them, see [`enable_pktinfo`]): the source of its reply.
    dest: [Option<IpAddr>; BATCH],
    /// Whether the socket delivers destination addresses ([`enable_pktinfo`]).
    pktinfo: bool,
    /// Replies, one per received query.
    pub out: Vec<Vec<u8>>,
    len: usize,
}

impl Batch {
    pub(super) fn new(pktinfo: bool) -> Box<Batch> {
        Box::new(Batch {
            mmsg: Mmsg::new(Shape {
                recv: BATCH,
                part: MAX_QUERY,
                send: BATCH,
                control: pktinfo,
            }),
            dest: [None; BATCH],
            pktinfo,
            out: (0..BATCH).map(|_| Vec::with_capacity(4096)).collect(),
            len: 0,
        })
    }

    /// Waits for at least one query (or for the socket to be shut, see
    /// [`super::listener::UdpThread::wake`]); returns how many arrived.
    pub(super) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.len = 0;
        self.len = self.mmsg.recv(sock, Recv::Wait)?;
        if self.pktinfo {
            for i in 0..self.len {
                self.dest[i] = if self.mmsg.control_truncated(i) {
                    None
                } else {
                    cmsg::destination(self.mmsg.control(i))
                };
            }
        }
        Ok(self.len)
    }

    /// Query `i` of the last batch.
    pub(super) fn query(&self, i: usize) -> &[u8] {
        self.mmsg.datagram(i)
    }

    /// The sender of query `i` of the last batch.
    pub(super) fn peer(&self, i: usize) -> Option<SocketAddr> {
        self.mmsg.source(i)
    }

    /// Calls `f(i, query, sender, destination, reply)` for each query of the last batch
    /// (the destination is the address the query was sent to, on a wildcard socket); `f`
    /// returns whether to send the reply. Returns the send flags for [`Self::send`].
    pub(super) fn answer(
        &mut self,
        mut f: impl FnMut(usize, &[u8], SocketAddr, Option<IpAddr>, &mut Vec<u8>) -> bool,
    ) -> [bool; BATCH] {
        let mut send = [false; BATCH];
        for (i, flag) in send.iter_mut().enumerate().take(self.len) {
            let Some(peer) = self.mmsg.source(i) else {
                continue;
            };
            self.out[i].clear();
            *flag = f(
                i,
                self.mmsg.datagram(i),
                peer,
                self.dest[i],
                &mut self.out[i],
            );
        }
        send
    }

    /// Sends `out[i]` to the sender of query `i` for every `i` in `send`, from the address
    /// the query was sent to.
    pub(super) fn send(&mut self, sock: &UdpSocket, send: &[bool]) -> io::Result<()> {
        let mut outbox = self.mmsg.outbox();
        for (i, &wanted) in send.iter().enumerate().take(self.len) {
            if wanted {
                outbox.push(&self.out[i], To::Sender(i), self.dest[i]);
            }
        }
        let k = outbox.len();
        let mut done = 0;
        while done < k {
            match outbox.send(sock, done, 0) {
                Ok(n) if n > 0 => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Skip the message that failed (e.g. an unreachable peer) and go on.
                r => {
                    done += 1;
                    if done >= k {
                        return r.map(|_| ());
                    }
                }
            }
        }
        Ok(())
    }
}
