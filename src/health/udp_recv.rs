//! Reading one datagram from a non-blocking UDP socket with the time the kernel received it
//! (`SO_TIMESTAMPNS`), so a reply read later than it arrived still yields its exact round
//! trip.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime};

/// One datagram read into the caller's buffer.
pub(super) struct Datagram {
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// Longer than the buffer: cut to it.
    pub truncated: bool,
    /// When the kernel received it (wall clock), if it said.
    pub at: Option<SystemTime>,
}

/// Asks the kernel to stamp every datagram `fd` receives with its arrival time.
pub(super) fn enable_timestamps(fd: RawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, an int option, and a pointer to an int of the length given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One `recvmsg(flags)` on `fd`: the data into `data`, the sender into `name`, control
/// messages into `control`. Returns the length read (negative: failed, see `errno`) and the
/// header as the kernel left it, whose pointers aim at the arguments.
pub(super) fn recvmsg(
    fd: RawFd,
    data: &mut [u8],
    name: &mut libc::sockaddr_storage,
    control: &mut [u64],
    flags: libc::c_int,
) -> (isize, libc::msghdr) {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = std::ptr::from_mut(name).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(control) as _;
    // SAFETY: every pointer in `msg` points at a live buffer of the length it declares.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, flags) };
    msg.msg_iov = std::ptr::null_mut();
    (n, msg)
}

/// Reads one datagram without waiting: `Ok(None)` when none is queued.
pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> std::io::Result<Option<Datagram>> {
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 8];
    let (n, msg) = recvmsg(fd, buf, &mut name, &mut control, libc::MSG_DONTWAIT);
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(Datagram {
        len: (n as usize).min(buf.len()),
        from: super::udp_errqueue::addr(&name, msg.msg_namelen),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        at: stamp(&msg),
    }))
}

/// The `SCM_TIMESTAMPNS` time in `msg`'s control data.
fn stamp(msg: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t = libc::CMSG_DATA(c).cast::<libc::timespec>().read_unaligned();
                let d = Duration::new(
                    u64::try_from(t.tv_sec).ok()?,
                    u32::try_from(t.tv_nsec).ok()?,
                );
                return SystemTime::UNIX_EPOCH.checked_add(d);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_datagram_carries_the_time_it_arrived() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_timestamps(rx.as_raw_fd()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 4];
        assert!(recv(rx.as_raw_fd(), &mut buf).unwrap().is_none());
        let before = SystemTime::now();
        tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
        let mut d = None;
        for _ in 0..500 {
            d = recv(rx.as_raw_fd(), &mut buf).unwrap();
            if d.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let d = d.expect("the datagram");
        let at = d.at.expect("a kernel timestamp");
        assert!(at >= before && at <= SystemTime::now());
        assert_eq!((d.len, d.truncated), (4, true));
        assert_eq!(d.from, tx.local_addr().ok());
        assert_eq!(&buf, b"hell");
    }
}
