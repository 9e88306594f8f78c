//! Reading a UDP socket's error queue (`IP_RECVERR`/`IPV6_RECVERR`): which destination an ICMP
//! error (port or host unreachable) was about, and its error number. An unconnected socket
//! learns of refusals only this way.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Most errors taken in one call (the rest wait for the next).
const MAX_PER_DRAIN: usize = 1024;

/// Takes the queued errors of `fd`: (destination, errno) for each ICMP error.
pub(super) fn drain(fd: RawFd, v4: bool) -> Vec<(SocketAddr, i32)> {
    let mut out = Vec::new();
    for _ in 0..MAX_PER_DRAIN {
        match one(fd, v4) {
            Some(Some(e)) => out.push(e),
            Some(None) => {}
            None => break,
        }
    }
    out
}

/// One queued error: `None` when the queue is empty, `Some(None)` for one that is not an ICMP
/// error about a known destination.
fn one(fd: RawFd, v4: bool) -> Option<Option<(SocketAddr, i32)>> {
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 64];
    let mut data = [0u8; 64];
    let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
    let (n, msg) = super::udp_recv::recvmsg(fd, &mut data, &mut name, &mut control, flags);
    if n < 0 {
        return None;
    }
    let errno = icmp_errno(&msg, v4);
    let dst = addr(&name, msg.msg_namelen);
    Some(errno.zip(dst).map(|(e, d)| (d, e)))
}

/// The errno of the extended error in `msg`'s control data, if it came from ICMP.
fn icmp_errno(msg: &libc::msghdr, v4: bool) -> Option<i32> {
    let (level, kind) = if v4 {
        (libc::SOL_IP, libc::IP_RECVERR)
    } else {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    };
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == level && (*c).cmsg_type == kind {
                let e = libc::CMSG_DATA(c)
                    .cast::<libc::sock_extended_err>()
                    .read_unaligned();
                let icmp = e.ee_origin == libc::SO_EE_ORIGIN_ICMP
                    || e.ee_origin == libc::SO_EE_ORIGIN_ICMP6;
                return icmp.then_some(e.ee_errno as i32);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

pub(super) fn addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(s.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe {
                *std::ptr::from_ref::<libc::sockaddr_storage>(s).cast::<libc::sockaddr_in>()
            };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe {
                *std::ptr::from_ref::<libc::sockaddr_storage>(s).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), 0, a.sin6_scope_id).into())
        }
        _ => None,
    }
}
