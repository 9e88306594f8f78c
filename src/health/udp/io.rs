//! The probe sockets and what crosses them. One unconnected, non-blocking socket per address
//! family ([`Family`]), not registered with the runtime (the engine reads it on its ticks),
//! with kernel receive times (`SO_TIMESTAMPNS`) and ICMP errors in its error queue
//! (`IP_RECVERR`/`IPV6_RECVERR`), so a refused target is known though the socket is not
//! connected to it. The requests of one pass ([`Outgoing`]) are written one after another
//! into a buffer kept from pass to pass, then sent with one `sendmmsg` per 64; a datagram the
//! socket has no room for is lost, as on the network: retransmissions cover it. Both go
//! through the engine's one [`Mmsg`].

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::SystemTime;

use crate::sys::{Mmsg, Recv, Shape, To, cmsg};

/// Bytes read of a reply: a longer one is cut, and its status line and the header lines
/// before the cut are still read (see `sip::parse_datagram`).
const MAX_DATAGRAM: usize = 4096;
/// Datagrams one receive takes.
const PER_RECV: usize = 16;
/// Requests one send gives.
const PER_SEND: usize = 64;
/// Most datagrams read in one pass (the rest wait for the next tick; their times stay exact).
const MAX_PER_PASS: usize = 4096;
/// Most ICMP errors taken in one pass (the rest wait for the next).
const MAX_ERRORS: usize = 1024;

/// The engine's receive and send headers: each received datagram in its own 4 KiB part of
/// one room.
pub(super) fn mmsg() -> Mmsg {
    Mmsg::new(Shape {
        recv: PER_RECV,
        part: MAX_DATAGRAM,
        send: PER_SEND,
        control: true,
    })
}

/// What a read of a probe socket found.
pub(super) enum Event<'a> {
    /// A datagram from `from`, cut if `truncated`, received by the kernel `at`.
    Reply {
        data: &'a [u8],
        truncated: bool,
        from: SocketAddr,
        at: Option<SystemTime>,
    },
    /// An ICMP error about a datagram sent to `dst`, with its error number.
    Unreachable { dst: SocketAddr, errno: i32 },
}

pub(super) struct Family {
    pub sock: UdpSocket,
    v4: bool,
    /// The local port, named in the Via header.
    pub port: u16,
    /// Source address per destination, for the Via header (found once per destination;
    /// looked up once per probe, the keys from the config).
    local: HashMap<IpAddr, IpAddr, foldhash::fast::RandomState>,
}

impl Family {
    pub(super) fn open(v4: bool) -> std::io::Result<Family> {
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
        crate::sys::set_int(s.as_raw_fd(), level, opt, 1)?;
        crate::sys::set_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        // Replies of thousands of targets can wait for one tick.
        let _ = s.set_recv_buffer_size(4 * 1024 * 1024);
        s.bind(&bind.into())?;
        let sock: UdpSocket = s.into();
        let port = sock.local_addr()?.port();
        Ok(Family {
            sock,
            v4,
            port,
            local: HashMap::default(),
        })
    }

    /// Reads every queued datagram and ICMP error (up to a pass's worth) through `mmsg`.
    pub(super) fn read(&self, mmsg: &mut Mmsg, mut each: impl FnMut(Event<'_>)) {
        for _ in 0..MAX_PER_PASS / PER_RECV {
            match mmsg.recv(&self.sock, Recv::Now) {
                // (Fewer than asked for is not enough: an ICMP error cuts a read short.)
                Ok(0) => break,
                Ok(n) => {
                    for i in 0..n {
                        let Some(from) = mmsg.source(i) else {
                            continue;
                        };
                        each(Event::Reply {
                            data: mmsg.datagram(i),
                            truncated: mmsg.truncated(i),
                            from,
                            at: cmsg::received_at(mmsg.control(i)),
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // An ICMP error pending on the socket: the error queue names its target.
                Err(_) => {
                    if !self.errors(mmsg, &mut each) {
                        break;
                    }
                }
            }
        }
        self.errors(mmsg, &mut each);
    }

    /// Takes the queued ICMP errors; whether there were any.
    fn errors(&self, mmsg: &mut Mmsg, each: &mut impl FnMut(Event<'_>)) -> bool {
        let mut any = false;
        for _ in 0..MAX_ERRORS / PER_RECV {
            let n = match mmsg.recv(&self.sock, Recv::Errors) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            any = true;
            for i in 0..n {
                let errno = cmsg::icmp_errno(mmsg.control(i), self.v4);
                if let (Some(dst), Some(errno)) = (mmsg.source(i), errno) {
                    each(Event::Unreachable { dst, errno });
                }
            }
        }
        any
    }

    /// Forgets the source addresses found for destinations `keep` refuses (those no longer
    /// probed), so reloads that change targets do not pile them up.
    pub(super) fn retain_local(&mut self, keep: impl Fn(&IpAddr) -> bool) {
        self.local.retain(|dst, _| keep(dst));
    }

    /// The address the OS sends from to `dst` (a route lookup, no packet sent).
    pub(super) fn local_ip(&mut self, dst: IpAddr) -> IpAddr {
        *self.local.entry(dst).or_insert_with(|| {
            let any: SocketAddr = match dst {
                IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            UdpSocket::bind(any)
                .and_then(|s| {
                    s.connect((dst, 9))?;
                    s.local_addr()
                })
                .map_or(any.ip(), |a| a.ip())
        })
    }
}

struct Msg {
    start: usize,
    len: usize,
    to: SocketAddr,
    /// The transaction it belongs to.
    id: u64,
}

/// Requests waiting for the end of the pass, in the order written.
#[derive(Default)]
pub(super) struct Outgoing {
    buf: Vec<u8>,
    msgs: Vec<Msg>,
}

impl Outgoing {
    /// Adds the datagram `write` appends to the buffer, to `to`, for transaction `id`.
    pub(super) fn push(&mut self, to: SocketAddr, id: u64, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        let len = self.buf.len() - start;
        self.msgs.push(Msg { start, len, to, id });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Sends every request through `mmsg`, then forgets them (keeping the room). `failed`
    /// hears of each one the socket refused for a reason of its own (e.g. no route to its
    /// target).
    pub(super) fn flush(
        &mut self,
        sock: &UdpSocket,
        mmsg: &mut Mmsg,
        mut failed: impl FnMut(u64, std::io::Error),
    ) {
        let mut i = 0;
        // A refusal of an earlier target is reported on a later send, which it stopped: that
        // send is tried once more (the error queue tells the refused target's transaction).
        let mut retried = false;
        while i < self.msgs.len() {
            let r = {
                let mut out = mmsg.outbox();
                for m in &self.msgs[i..] {
                    let data = &self.buf[m.start..m.start + m.len];
                    if !out.push(data, To::Addr(m.to), None) {
                        break;
                    }
                }
                out.send(sock, 0, libc::MSG_DONTWAIT)
            };
            match r {
                Ok(n) => {
                    i += n.max(1);
                    retried = false;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused && !retried => retried = true,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    i += 1;
                    retried = false;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    failed(self.msgs[i].id, e);
                    i += 1;
                    retried = false;
                }
            }
        }
        self.msgs.clear();
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    #[test]
    fn source_addresses_of_destinations_no_longer_probed_are_forgotten() {
        let mut f = Family::open(true).expect("socket");
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        assert!(f.local_ip(a).is_loopback());
        assert!(f.local_ip(b).is_loopback());
        assert_eq!(f.local.len(), 2);
        f.retain_local(|d| *d == b);
        assert_eq!(f.local.keys().collect::<Vec<_>>(), [&b]);
    }

    #[test]
    fn one_flush_sends_every_request_to_its_target() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut out = Outgoing::default();
        // More than one system call's worth, spread over three receivers.
        let n = 150;
        for i in 0..n {
            let to = rx[i % 3].local_addr().unwrap();
            out.push(to, i as u64, |w| write!(w, "request {i}").unwrap());
        }
        assert_eq!(out.len(), n);
        let mut failures = 0;
        out.flush(&tx, &mut mmsg(), |_, _| failures += 1);
        assert_eq!((out.len(), failures), (0, 0));
        let mut got = vec![Vec::new(); 3];
        let mut buf = [0u8; 64];
        for (k, r) in rx.iter().enumerate() {
            r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for _ in 0..n / 3 {
                let (len, from) = r.recv_from(&mut buf).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                got[k].push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
        }
        for (k, g) in got.iter().enumerate() {
            let want: Vec<String> = (0..n)
                .filter(|i| i % 3 == k)
                .map(|i| format!("request {i}"))
                .collect();
            assert_eq!(*g, want);
        }
    }

    #[test]
    fn a_target_the_socket_cannot_reach_fails_alone() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Outgoing::default();
        // An IPv6 destination on an IPv4 socket: refused by the socket itself.
        out.push("[::1]:9".parse().unwrap(), 1, |w| w.push(b'a'));
        out.push(rx.local_addr().unwrap(), 2, |w| w.push(b'b'));
        let mut failed = Vec::new();
        out.flush(&tx, &mut mmsg(), |id, _| failed.push(id));
        assert_eq!(failed, [1]);
        let mut buf = [0u8; 4];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1);
        assert_eq!(&buf[..1], b"b");
    }

    /// Replies and refusals, read through one socket: each reply with its sender and kernel
    /// time, each refusal with the destination it is about.
    #[test]
    fn replies_and_icmp_errors_are_read_with_what_they_are_about() {
        let f = Family::open(true).expect("socket");
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let me: SocketAddr = (Ipv4Addr::LOCALHOST, f.port).into();
        let before = SystemTime::now();
        f.sock.send_to(b"probe", closed).unwrap();
        peer.send_to(b"reply", me).unwrap();
        let mut m = mmsg();
        let (mut replies, mut refused) = (Vec::new(), Vec::new());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while (replies.is_empty() || refused.is_empty()) && std::time::Instant::now() < deadline {
            f.read(&mut m, |e| match e {
                Event::Reply {
                    data,
                    truncated,
                    from,
                    at,
                } => replies.push((data.to_vec(), truncated, from, at)),
                Event::Unreachable { dst, errno } => refused.push((dst, errno)),
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        let (data, truncated, from, at) = replies.first().cloned().expect("the reply");
        assert_eq!((data.as_slice(), truncated), (&b"reply"[..], false));
        assert_eq!(from, peer.local_addr().unwrap());
        let at = at.expect("a kernel time");
        assert!(at >= before && at <= SystemTime::now(), "{at:?}");
        assert_eq!(refused, [(closed, libc::ECONNREFUSED)]);
    }
}
