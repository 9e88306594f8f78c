//! Batched UDP I/O on Linux: `recvmmsg` takes up to [`BATCH`] queries in one system call and
//! `sendmmsg` returns their replies in one, so under load the cost of a query is mostly the
//! answer, not the kernel crossing. The buffers are allocated once per socket.
//!
//! On a wildcard socket (`0.0.0.0`, `[::]`) each query's destination address is read from its
//! `IP_PKTINFO`/`IPV6_PKTINFO` control message and given back on the reply, so the reply
//! leaves from the address the query was sent to (see [`enable_pktinfo`]).
//!
//! While the configured UDP payload fits any path, replies are never fragmented: Don't
//! Fragment is set whatever path-MTU information says, and no IP ID is drawn for them
//! ([`dont_fragment`], RFC 9715).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Queries taken per system call at most.
pub(super) const BATCH: usize = 32;
/// Largest query read (EDNS queries are small; a larger one is truncated and fails to parse).
const MAX_QUERY: usize = 4096;
/// Control buffer per message, in u64 words for alignment: room for an `in6_pktinfo` and an
/// `in_pktinfo` (an IPv4 query on a dual-stack socket can bring both).
const CTRL_WORDS: usize = 16;

/// Asks the kernel for each datagram's destination address (`IP_PKTINFO` for IPv4, also on a
/// dual-stack IPv6 socket where IPv4 queries arrive mapped, and `IPV6_RECVPKTINFO`).
pub(super) fn enable_pktinfo(sock: &UdpSocket, ipv6: bool) -> io::Result<()> {
    let set = |level, name| crate::sockopt::set_int(sock.as_raw_fd(), level, name, 1);
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
        crate::sockopt::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v6)?;
        // IPv4 replies on a dual-stack socket; fails harmlessly on a v6-only one.
        crate::sockopt::set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4).ok();
        Ok(())
    } else {
        crate::sockopt::set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4)
    }
}

/// The destination of a received datagram, as it goes back in the reply's control message.
#[derive(Clone, Copy)]
enum Dest {
    None,
    V4(libc::in_addr),
    V6(libc::in6_addr),
}

/// The per-socket buffers; pointers inside the headers stay valid because nothing here is
/// ever resized after [`Batch::new`]. Those raw pointers make it neither `Send` nor `Sync`:
/// each UDP thread builds its own.
pub(super) struct Batch {
    bufs: Vec<[u8; MAX_QUERY]>,
    addrs: Vec<libc::sockaddr_storage>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    out_iov: Vec<libc::iovec>,
    out_hdrs: Vec<libc::mmsghdr>,
    /// Control messages: received, then the ones sent back (same index as the query).
    ctrl: Vec<[u64; CTRL_WORDS]>,
    out_ctrl: Vec<[u64; CTRL_WORDS]>,
    dest: Vec<Dest>,
    /// Whether the socket delivers destination addresses ([`enable_pktinfo`]).
    pktinfo: bool,
    /// Replies, one per received query.
    pub out: Vec<Vec<u8>>,
    len: usize,
}

impl Batch {
    pub(super) fn new(pktinfo: bool) -> Box<Batch> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zero_storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut b = Box::new(Batch {
            bufs: vec![[0u8; MAX_QUERY]; BATCH],
            addrs: vec![zero_storage; BATCH],
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            hdrs: vec![zero_hdr; BATCH],
            out_iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            out_hdrs: vec![zero_hdr; BATCH],
            ctrl: vec![[0u64; CTRL_WORDS]; BATCH],
            out_ctrl: vec![[0u64; CTRL_WORDS]; BATCH],
            dest: vec![Dest::None; BATCH],
            pktinfo,
            out: (0..BATCH).map(|_| Vec::with_capacity(4096)).collect(),
            len: 0,
        });
        for i in 0..BATCH {
            b.iov[i] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            let h = &mut b.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut b.addrs[i]).cast();
            h.msg_iov = &raw mut b.iov[i];
            h.msg_iovlen = 1;
            if pktinfo {
                h.msg_control = b.ctrl[i].as_mut_ptr().cast();
            }
        }
        // Every header's lengths are set before the first receive.
        b.len = BATCH;
        b
    }

    /// Waits for at least one query (or for the socket to be shut, see
    /// [`super::listener::UdpThread::wake`]); returns how many arrived.
    pub(super) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        // The kernel writes back only the lengths of the headers it filled (the last batch's):
        // those are reset; the pointers were set once in `new`.
        let ctrl_len = if self.pktinfo {
            std::mem::size_of::<[u64; CTRL_WORDS]>()
        } else {
            0
        };
        for hdr in &mut self.hdrs[..self.len] {
            hdr.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_controllen = ctrl_len as _;
        }
        // SAFETY: every header points at live buffers of the sizes given, owned by `self`.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.len = 0;
            return Err(io::Error::last_os_error());
        }
        self.len = n as usize;
        if self.pktinfo {
            for i in 0..self.len {
                self.dest[i] = destination(&self.hdrs[i].msg_hdr);
            }
        }
        Ok(self.len)
    }

    /// Query `i` of the last batch.
    pub(super) fn query(&self, i: usize) -> &[u8] {
        let len = (self.hdrs[i].msg_len as usize).min(MAX_QUERY);
        &self.bufs[i][..len]
    }

    /// The sender of query `i` of the last batch, read in place from the address the kernel
    /// filled in.
    pub(super) fn peer(&self, i: usize) -> Option<SocketAddr> {
        let namelen = self.hdrs[i].msg_hdr.msg_namelen as usize;
        let storage = &self.addrs[i];
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET if namelen >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, which fits in it
                // and is less strictly aligned.
                let a = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 if namelen >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a sockaddr_in6.
                let a = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                let port = u16::from_be(a.sin6_port);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    port,
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// Calls `f(i, query, sender, reply)` for each query of the last batch; `f` returns
    /// whether to send the reply. Returns the send flags for [`Self::send`].
    pub(super) fn answer(
        &mut self,
        mut f: impl FnMut(usize, &[u8], SocketAddr, &mut Vec<u8>) -> bool,
    ) -> [bool; BATCH] {
        let mut send = [false; BATCH];
        for (i, flag) in send.iter_mut().enumerate().take(self.len) {
            let Some(peer) = self.peer(i) else {
                continue;
            };
            let len = (self.hdrs[i].msg_len as usize).min(MAX_QUERY);
            self.out[i].clear();
            *flag = f(i, &self.bufs[i][..len], peer, &mut self.out[i]);
        }
        send
    }

    /// Sends `out[i]` to the sender of query `i` for every `i` in `send`.
    pub(super) fn send(&mut self, sock: &UdpSocket, send: &[bool]) -> io::Result<()> {
        let mut k = 0;
        for (i, &wanted) in send.iter().enumerate().take(self.len) {
            if !wanted {
                continue;
            }
            self.out_iov[k] = libc::iovec {
                iov_base: self.out[i].as_mut_ptr().cast(),
                iov_len: self.out[i].len(),
            };
            let h = &mut self.out_hdrs[k].msg_hdr;
            h.msg_name = (&raw mut self.addrs[i]).cast();
            h.msg_namelen = self.hdrs[i].msg_hdr.msg_namelen;
            h.msg_iov = &raw mut self.out_iov[k];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            if self.pktinfo {
                source_control(h, &mut self.out_ctrl[k], self.dest[i]);
            }
            self.out_hdrs[k].msg_len = 0;
            k += 1;
        }
        let mut done = 0;
        while done < k {
            // SAFETY: headers `done..k` point at live reply buffers and addresses.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.out_hdrs[done..].as_mut_ptr(),
                    (k - done) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                // Skip the message that failed (e.g. an unreachable peer) and go on.
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                done += 1;
                if done >= k {
                    return Err(e);
                }
                continue;
            }
            done += n as usize;
        }
        Ok(())
    }
}

/// Reads the destination address from a received message's `IP_PKTINFO`/`IPV6_PKTINFO`.
fn destination(h: &libc::msghdr) -> Dest {
    if h.msg_control.is_null() || h.msg_flags & libc::MSG_CTRUNC != 0 {
        return Dest::None;
    }
    // SAFETY: the kernel filled `msg_controllen` bytes of control messages into our buffer;
    // the CMSG macros stay inside it and the payloads are read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    return Dest::V4(p.ipi_addr);
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    return Dest::V6(p.ipi6_addr);
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    Dest::None
}

/// Puts the reply's source address (the query's destination) in `h`'s control message, with
/// interface 0 so the routing table picks the way out.
fn source_control(h: &mut libc::msghdr, buf: &mut [u64; CTRL_WORDS], dest: Dest) {
    let (level, kind, len) = match dest {
        Dest::None => return,
        Dest::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            std::mem::size_of::<libc::in_pktinfo>(),
        ),
        Dest::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            std::mem::size_of::<libc::in6_pktinfo>(),
        ),
    };
    *buf = [0; CTRL_WORDS];
    h.msg_control = buf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE of a pktinfo struct (at most 40 bytes) fits the 128-byte buffer; the
    // header and payload are written inside it.
    unsafe {
        h.msg_controllen = libc::CMSG_SPACE(len as u32) as _;
        let c = libc::CMSG_FIRSTHDR(h);
        if c.is_null() {
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            return;
        }
        (*c).cmsg_level = level;
        (*c).cmsg_type = kind;
        (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        let data = libc::CMSG_DATA(c);
        match dest {
            Dest::V4(a) => std::ptr::write_unaligned(
                data.cast::<libc::in_pktinfo>(),
                libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: a,
                    ipi_addr: libc::in_addr { s_addr: 0 },
                },
            ),
            Dest::V6(a) => std::ptr::write_unaligned(
                data.cast::<libc::in6_pktinfo>(),
                libc::in6_pktinfo {
                    ipi6_addr: a,
                    ipi6_ifindex: 0,
                },
            ),
            Dest::None => {}
        }
    }
}
