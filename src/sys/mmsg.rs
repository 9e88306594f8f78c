//! One preallocated set of `recvmmsg` and `sendmmsg` headers ([`Mmsg`]): the DNS listener
//! receives queries and sends replies through one, the probe engine its replies, ICMP errors
//! and requests. Every buffer is allocated once, in [`Mmsg::new`], and every header points
//! at its buffers from then on: a receive resets only the lengths the kernel wrote in the
//! last one, a send only fills the headers it sends. Received senders become `SocketAddr`s
//! through socket2's `SockAddr`; destinations to send to are written by it.
//!
//! The headers hold raw pointers into the buffers, all taken from the `Vec`s' own pointers
//! (never from a reference that a later borrow would end), so the buffers stay where they
//! are however the `Mmsg` moves.

use std::io;
use std::marker::PhantomData;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use socket2::{SockAddr, SockAddrStorage};

use super::cmsg::{Cmsgs, Source};
use super::plain;

/// Control bytes per received datagram: room for a destination address of each family and a
/// receive time, or an extended error with the address it came from.
const CONTROL: usize = 128;

/// A control buffer, aligned as control messages are.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; CONTROL]);

/// The sizes of an [`Mmsg`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Datagrams one receive takes at most.
    pub recv: usize,
    /// Bytes read of each (a longer datagram is cut and flagged).
    pub part: usize,
    /// Datagrams one send gives at most.
    pub send: usize,
    /// Whether received datagrams bring control messages.
    pub control: bool,
}

/// How a receive waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recv {
    /// For at least one datagram (`MSG_WAITFORONE`).
    Wait,
    /// Not at all: what is queued, or `WouldBlock`.
    Now,
    /// Not at all, from the socket's error queue (`MSG_ERRQUEUE`).
    Errors,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum To {
    /// To the sender of the `i`th datagram of the last receive, as the kernel named it.
    Sender(usize),
    Addr(SocketAddr),
}

pub(crate) struct Mmsg {
    part: usize,
    /// Received datagrams: the `i`th in `room[i * part..][..part]`.
    room: Vec<u8>,
    names: Vec<SockAddrStorage>,
    iov: Vec<libc::iovec>,
    ctrl: Vec<Control>,
    hdrs: Vec<libc::mmsghdr>,
    control: bool,
    /// Headers the last receive filled.
    filled: usize,
    out_names: Vec<SockAddrStorage>,
    out_iov: Vec<libc::iovec>,
    out_ctrl: Vec<Source>,
    out_hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the headers point only into this value's own heap buffers, or
// (between a send's headers and the next send) at data an `Outbox` borrowed and no longer
// reads; nothing is shared between threads, so the value may move to another thread.
unsafe impl Send for Mmsg {}

const NO_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

impl Mmsg {
    pub(crate) fn new(shape: Shape) -> Mmsg {
        let Shape {
            recv,
            part,
            send,
            control,
        } = shape;
        let mut m = Mmsg {
            part,
            // Zeroed by the allocator: pages no datagram reaches are never touched.
            room: vec![0u8; recv * part],
            names: (0..recv).map(|_| SockAddrStorage::zeroed()).collect(),
            iov: vec![NO_IOV; recv],
            ctrl: vec![Control([0; CONTROL]); recv],
            hdrs: vec![plain::zeroed(); recv],
            control,
            filled: recv,
            out_names: (0..send).map(|_| SockAddrStorage::zeroed()).collect(),
            out_iov: vec![NO_IOV; send],
            out_ctrl: vec![Source::default(); send],
            out_hdrs: vec![plain::zeroed(); send],
        };
        let (room, names, iov, ctrl) = (
            m.room.as_mut_ptr(),
            m.names.as_mut_ptr(),
            m.iov.as_mut_ptr(),
            m.ctrl.as_mut_ptr(),
        );
        for i in 0..recv {
            m.iov[i] = libc::iovec {
                iov_base: room.wrapping_add(i * part).cast(),
                iov_len: part,
            };
            let h = &mut m.hdrs[i].msg_hdr;
            h.msg_name = names.wrapping_add(i).cast();
            h.msg_iov = iov.wrapping_add(i);
            h.msg_iovlen = 1;
            if control {
                h.msg_control = ctrl.wrapping_add(i).cast();
            }
        }
        // A send header's iovec is its own too; its name and control message vary.
        let out_iov = m.out_iov.as_mut_ptr();
        for (k, h) in m.out_hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_iov = out_iov.wrapping_add(k);
            h.msg_hdr.msg_iovlen = 1;
        }
        m
    }

    /// Receives up to `recv` datagrams from `sock`; how many came (the `WouldBlock` error
    /// when none is queued and `how` does not wait).
    pub(crate) fn recv(&mut self, sock: &impl AsFd, how: Recv) -> io::Result<usize> {
        // The kernel writes back only the lengths of the headers it filled (the last
        // receive's): those are reset; the pointers were set once in `new`.
        let ctrl_len = if self.control { CONTROL } else { 0 };
        for h in &mut self.hdrs[..self.filled] {
            h.msg_hdr.msg_namelen = size_of::<SockAddrStorage>() as libc::socklen_t;
            h.msg_hdr.msg_controllen = ctrl_len as _;
        }
        let flags = match how {
            Recv::Wait => libc::MSG_WAITFORONE,
            Recv::Now => libc::MSG_DONTWAIT,
            Recv::Errors => libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        };
        // SAFETY: every header points at its own name, iovec and control buffer, and its
        // iovec at its own part of the room, all owned by `self`, live, and of the lengths
        // the header and iovec give; the kernel writes no more than those lengths.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_fd().as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.filled = 0;
            return Err(io::Error::last_os_error());
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    /// The `i`th datagram of the last receive (cut to `part` bytes).
    #[inline]
    pub(crate) fn datagram(&self, i: usize) -> &[u8] {
        let len = (self.hdrs[i].msg_len as usize).min(self.part);
        &self.room[i * self.part..][..len]
    }

    /// Whether the `i`th datagram was longer than `part` bytes.
    #[inline]
    pub(crate) fn truncated(&self, i: usize) -> bool {
        self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Whether the `i`th datagram's control messages did not all fit.
    #[inline]
    pub(crate) fn control_truncated(&self, i: usize) -> bool {
        self.hdrs[i].msg_hdr.msg_flags & libc::MSG_CTRUNC != 0
    }

    /// The `i`th datagram's sender (for the error queue: the destination of the datagram
    /// the error is about).
    #[inline]
    pub(crate) fn source(&self, i: usize) -> Option<SocketAddr> {
        if i >= self.filled {
            return None;
        }
        let len = self.hdrs[i].msg_hdr.msg_namelen;
        // SAFETY: `SockAddrStorage` is plain data without drop glue, so a bitwise copy is a
        // value of its own; the last receive filled this header, so the kernel wrote into
        // the name a socket address of its family and set `len` to that address's length,
        // which is what `SockAddr::new` requires.
        let addr = unsafe { SockAddr::new(std::ptr::read(&raw const self.names[i]), len) };
        let min = match libc::c_int::from(addr.family()) {
            libc::AF_INET => size_of::<libc::sockaddr_in>(),
            libc::AF_INET6 => size_of::<libc::sockaddr_in6>(),
            _ => return None,
        };
        if (addr.len() as usize) < min {
            return None;
        }
        addr.as_socket()
    }

    /// The `i`th datagram's control messages (none unless the shape asked for them).
    #[inline]
    pub(crate) fn control(&self, i: usize) -> Cmsgs<'_> {
        if !self.control {
            return Cmsgs::new(&[]);
        }
        // (`size_t` with glibc, `socklen_t` with musl.)
        #[allow(clippy::unnecessary_cast)]
        let len = (self.hdrs[i].msg_hdr.msg_controllen as usize).min(CONTROL);
        Cmsgs::new(&self.ctrl[i].0[..len])
    }

    /// An empty batch of datagrams to send, which borrows their data until it is dropped.
    pub(crate) fn outbox<'d>(&mut self) -> Outbox<'_, 'd> {
        Outbox {
            m: self,
            len: 0,
            data: PhantomData,
        }
    }
}

/// Datagrams to send in one `sendmmsg` (or a few, when one stops short): the headers of an
/// [`Mmsg`] pointed at data borrowed for `'d`.
pub(crate) struct Outbox<'m, 'd> {
    m: &'m mut Mmsg,
    len: usize,
    data: PhantomData<&'d [u8]>,
}

impl<'d> Outbox<'_, 'd> {
    /// Adds `data` for `to`, leaving from `source` when given; false (and nothing added)
    /// when the outbox is full or `to` names no received datagram.
    #[inline(always)]
    pub(crate) fn push(&mut self, data: &'d [u8], to: To, source: Option<IpAddr>) -> bool {
        let k = self.len;
        let m = &mut *self.m;
        let (Some(out), Some(iov)) = (m.out_hdrs.get_mut(k), m.out_iov.get_mut(k)) else {
            return false;
        };
        let (name, namelen) = match to {
            To::Sender(i) => match m.hdrs.get(i) {
                Some(r) if i < m.filled => {
                    (m.names.as_mut_ptr().wrapping_add(i), r.msg_hdr.msg_namelen)
                }
                _ => return false,
            },
            To::Addr(a) => {
                let Some(slot) = m.out_names.get_mut(k) else {
                    return false;
                };
                let a = SockAddr::from(a);
                let len = a.len();
                *slot = a.as_storage();
                (m.out_names.as_mut_ptr().wrapping_add(k), len)
            }
        };
        *iov = libc::iovec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        let h = &mut out.msg_hdr;
        h.msg_name = name.cast();
        h.msg_namelen = namelen;
        match source.and_then(|ip| m.out_ctrl.get_mut(k).map(|c| c.set(ip))) {
            Some(len) => {
                h.msg_control = m.out_ctrl.as_mut_ptr().wrapping_add(k).cast();
                h.msg_controllen = len as _;
            }
            None => {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
        }
        self.len += 1;
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Sends the datagrams from the `from`th on in one `sendmmsg`: how many the kernel took.
    pub(crate) fn send(
        &mut self,
        sock: &impl AsFd,
        from: usize,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        let Some(count) = self.len.checked_sub(from).filter(|&c| c > 0) else {
            return Ok(0);
        };
        // SAFETY: headers `from..len` were filled by `push` on this outbox: each points at a
        // name and an iovec in `self.m` (or a received name), a control message in
        // `self.m` or none, and through its iovec at data borrowed for `'d`, which outlives
        // this outbox; the kernel only reads them.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_fd().as_raw_fd(),
                self.m.out_hdrs.as_mut_ptr().wrapping_add(from),
                count as libc::c_uint,
                flags,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::sys::cmsg;

    /// Receives into `m` from `rx` until `n` datagrams came (at most 10 s): each one's bytes,
    /// whether it was cut, its sender and its control messages' destination and time.
    #[allow(clippy::type_complexity)]
    fn receive(
        m: &mut Mmsg,
        rx: &UdpSocket,
        n: usize,
    ) -> Vec<(
        Vec<u8>,
        bool,
        Option<SocketAddr>,
        Option<IpAddr>,
        Option<SystemTime>,
    )> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < n && Instant::now() < deadline {
            let k = match m.recv(rx, Recv::Now) {
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => panic!("receive: {e}"),
            };
            for i in 0..k {
                got.push((
                    m.datagram(i).to_vec(),
                    m.truncated(i),
                    m.source(i),
                    cmsg::destination(m.control(i)),
                    cmsg::received_at(m.control(i)),
                ));
            }
            if k == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        got
    }

    #[test]
    fn many_datagrams_in_one_receive_each_with_its_sender_time_and_length() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        super::super::set_int(rx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).unwrap();
        let txs: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut m = Mmsg::new(Shape {
            recv: 4,
            part: 8,
            send: 1,
            control: true,
        });
        assert_eq!(
            m.recv(&rx, Recv::Now).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        assert_eq!(m.source(0), None, "nothing received yet");
        let before = SystemTime::now();
        let n = 11;
        let text = |i: usize| format!("m{i:02}").repeat(1 + i % 3);
        for i in 0..n {
            txs[i % 3]
                .send_to(text(i).as_bytes(), rx.local_addr().unwrap())
                .unwrap();
        }
        let got = receive(&mut m, &rx, n);
        assert_eq!(got.len(), n);
        for (i, (data, truncated, from, dest, at)) in got.into_iter().enumerate() {
            let full = text(i);
            // Each part holds 8 bytes: longer datagrams are cut and say so.
            assert_eq!(
                (data.as_slice(), truncated),
                (&full.as_bytes()[..full.len().min(8)], full.len() > 8)
            );
            assert_eq!(from, txs[i % 3].local_addr().ok());
            assert_eq!(dest, None, "no destination asked for");
            let at = at.expect("a kernel time");
            assert!(at >= before && at <= SystemTime::now(), "{at:?}");
        }
    }

    /// A wildcard socket answers from the address each datagram was sent to, and sends to
    /// addresses given, all through one outbox.
    #[test]
    fn replies_leave_from_the_address_the_query_was_sent_to() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let fd = server.as_raw_fd();
        super::super::set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        other
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Any address of 127/8 reaches the host; the route back to the client would pick
        // 127.0.0.1 as the source.
        let asked: SocketAddr = ([127, 0, 0, 2], port).into();
        client.send_to(b"query", asked).unwrap();
        let mut m = Mmsg::new(Shape {
            recv: 2,
            part: 64,
            send: 2,
            control: true,
        });
        let got = receive(&mut m, &server, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, client.local_addr().ok());
        assert_eq!(got[0].3, Some(asked.ip()));
        let mut out = m.outbox();
        assert!(out.push(b"reply", To::Sender(0), Some(asked.ip())));
        assert!(!out.push(b"x", To::Sender(1), None), "no such datagram");
        let to_other = other.local_addr().unwrap();
        assert!(out.push(b"direct", To::Addr(to_other), None));
        assert!(!out.push(b"x", To::Addr(to_other), None), "full");
        assert_eq!(out.len(), 2);
        assert_eq!(out.send(&server, 0, 0).unwrap(), 2);
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"reply"[..], asked));
        let (n, from) = other.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"direct");
        assert_eq!(from.port(), port);
    }
}
