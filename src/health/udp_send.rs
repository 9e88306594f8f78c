//! The requests one tick sends on one socket: written one after another into a buffer kept
//! from tick to tick, then sent with one `sendmmsg` per 64 (Linux; elsewhere one `send_to`
//! each). A datagram the socket has no room for is lost, as on the network: retransmissions
//! cover it.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};

/// Requests sent per system call.
#[cfg(target_os = "linux")]
const PER_CALL: usize = 64;

struct Msg {
    start: usize,
    len: usize,
    to: SocketAddr,
    /// The transaction it belongs to.
    id: u64,
}

/// Requests waiting for the end of the tick, in the order written.
#[derive(Default)]
pub(super) struct Batch {
    buf: Vec<u8>,
    msgs: Vec<Msg>,
}

impl Batch {
    /// Adds the datagram `write` writes, to `to`, for transaction `id`. A failed write adds
    /// nothing.
    pub(super) fn push(
        &mut self,
        to: SocketAddr,
        id: u64,
        write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let start = self.buf.len();
        if let Err(e) = write(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let len = self.buf.len() - start;
        self.msgs.push(Msg { start, len, to, id });
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.msgs.len()
    }

    /// The datagram at `i` (tests).
    #[cfg(test)]
    fn datagram(&self, i: usize) -> &[u8] {
        let m = &self.msgs[i];
        &self.buf[m.start..m.start + m.len]
    }

    /// Sends every request, then forgets them (keeping the room). `failed` hears of each one
    /// the socket refused for a reason of its own (e.g. no route to its target).
    pub(super) fn flush(&mut self, sock: &UdpSocket, mut failed: impl FnMut(u64, std::io::Error)) {
        let mut i = 0;
        // A refusal of an earlier target is reported on a later send, which it stopped: that
        // send is tried once more (the error queue tells the refused target's transaction).
        let mut retried = false;
        while i < self.msgs.len() {
            let r = self.send_from(sock, i);
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

    /// Sends requests from the `i`th on; how many went.
    #[cfg(target_os = "linux")]
    fn send_from(&self, sock: &UdpSocket, i: usize) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let msgs = &self.msgs[i..self.msgs.len().min(i + PER_CALL)];
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut names: [libc::sockaddr_storage; PER_CALL] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; PER_CALL] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; PER_CALL] = unsafe { std::mem::zeroed() };
        for (k, m) in msgs.iter().enumerate() {
            let len = write_addr(m.to, &mut names[k]);
            let data = &self.buf[m.start..m.start + m.len];
            iovs[k] = libc::iovec {
                iov_base: data.as_ptr().cast_mut().cast(),
                iov_len: data.len(),
            };
            let h = &mut hdrs[k].msg_hdr;
            h.msg_name = (&raw mut names[k]).cast();
            h.msg_namelen = len;
            h.msg_iov = &raw mut iovs[k];
            h.msg_iovlen = 1;
        }
        // SAFETY: the first `msgs.len()` headers point at live names and iovecs, and those
        // at the buffer, which the kernel only reads.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_from(&self, sock: &UdpSocket, i: usize) -> std::io::Result<usize> {
        let m = &self.msgs[i];
        sock.send_to(&self.buf[m.start..m.start + m.len], m.to)
            .map(|_| 1)
    }
}

/// Writes `a` as a C socket address into `s`; returns its length.
#[cfg(target_os = "linux")]
fn write_addr(a: SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    let s = std::ptr::from_mut(s);
    match a {
        SocketAddr::V4(v) => {
            // SAFETY: all-zero is a valid value of this plain C struct.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v.ip()).to_be();
            // SAFETY: a sockaddr_storage has room and alignment for any socket address.
            unsafe { s.cast::<libc::sockaddr_in>().write(sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v) => {
            // SAFETY: all-zero is a valid value of this plain C struct.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v.port().to_be();
            sin6.sin6_addr.s6_addr = v.ip().octets();
            sin6.sin6_flowinfo = v.flowinfo().to_be();
            sin6.sin6_scope_id = v.scope_id();
            // SAFETY: as above.
            unsafe { s.cast::<libc::sockaddr_in6>().write(sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn one_flush_sends_every_request_to_its_target() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut b = Batch::default();
        // More than one system call's worth, spread over three receivers.
        let n = 150;
        for i in 0..n {
            let to = rx[i % 3].local_addr().unwrap();
            b.push(to, i as u64, |w| write!(w, "request {i}")).unwrap();
        }
        assert!(
            b.push(tx.local_addr().unwrap(), 999, |_| Err(
                std::io::Error::other("no")
            ))
            .is_err()
        );
        assert_eq!(b.len(), n);
        assert_eq!(b.datagram(7), b"request 7");
        let mut failures = 0;
        b.flush(&tx, |_, _| failures += 1);
        assert_eq!((b.len(), failures), (0, 0));
        let mut got = vec![Vec::new(); 3];
        let mut buf = [0u8; 64];
        for (k, r) in rx.iter().enumerate() {
            r.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
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
        rx.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut b = Batch::default();
        // An IPv6 destination on an IPv4 socket: refused by the socket itself.
        b.push("[::1]:9".parse().unwrap(), 1, |w| w.write_all(b"a"))
            .unwrap();
        b.push(rx.local_addr().unwrap(), 2, |w| w.write_all(b"b"))
            .unwrap();
        let mut failed = Vec::new();
        b.flush(&tx, |id, _| failed.push(id));
        assert_eq!(failed, [1]);
        let mut buf = [0u8; 4];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1);
        assert_eq!(&buf[..1], b"b");
    }
}
