//! Reading datagrams from a non-blocking UDP socket with the time the kernel received each
//! (`SO_TIMESTAMPNS`), so a reply read later than it arrived still yields its exact round
//! trip: one at a time, or up to [`PER_CALL`] in one `recvmmsg` (Linux).

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime};

/// What came with one datagram read into the caller's buffer.
pub(super) struct Datagram {
    pub from: Option<SocketAddr>,
    /// Longer than the buffer: cut to it.
    pub truncated: bool,
    /// When the kernel received it (wall clock), if it said.
    pub at: Option<SystemTime>,
}

/// Asks the kernel to stamp every datagram `fd` receives with its arrival time.
pub(super) fn enable_timestamps(fd: RawFd) -> std::io::Result<()> {
    crate::sockopt::set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
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

/// Most datagrams one [`recv_many`] reads.
pub(super) const PER_CALL: usize = 16;

/// Reads up to [`PER_CALL`] datagrams without waiting, the `i`th into the `i`th of the equal
/// parts of `room`, and gives each to `each` with its bytes; returns how many were read (0
/// when none is queued).
#[cfg(target_os = "linux")]
pub(super) fn recv_many(
    fd: RawFd,
    room: &mut [u8],
    mut each: impl FnMut(&[u8], Datagram),
) -> std::io::Result<usize> {
    let size = room.len() / PER_CALL;
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut names: [libc::sockaddr_storage; PER_CALL] = unsafe { std::mem::zeroed() };
    let mut controls = [[0u64; 8]; PER_CALL];
    let mut iovs: [libc::iovec; PER_CALL] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; PER_CALL] = unsafe { std::mem::zeroed() };
    for (i, part) in room.chunks_exact_mut(size).take(PER_CALL).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: part.as_mut_ptr().cast(),
            iov_len: part.len(),
        };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = (&raw mut names[i]).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &raw mut iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = controls[i].as_mut_ptr().cast();
        h.msg_controllen = std::mem::size_of_val(&controls[i]) as _;
    }
    // SAFETY: each header points at a live name, control buffer and iovec, and each iovec at
    // its own part of `room`.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            PER_CALL as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock => Ok(0),
            _ => Err(e),
        };
    }
    let n = n as usize;
    for (h, part) in hdrs.iter().zip(room.chunks_exact(size)).take(n) {
        let len = (h.msg_len as usize).min(size);
        let d = Datagram {
            from: super::udp_errqueue::addr(&names_of(h), h.msg_hdr.msg_namelen),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            at: stamp(&h.msg_hdr),
        };
        each(&part[..len], d);
    }
    Ok(n)
}

/// The sender's address a `recvmmsg` header points at.
#[cfg(target_os = "linux")]
fn names_of(h: &libc::mmsghdr) -> libc::sockaddr_storage {
    // SAFETY: the header's name points at a live sockaddr_storage (see `recv_many`).
    unsafe { h.msg_hdr.msg_name.cast::<libc::sockaddr_storage>().read() }
}

/// One datagram at a time where there is no `recvmmsg`.
#[cfg(not(target_os = "linux"))]
pub(super) fn recv_many(
    fd: RawFd,
    room: &mut [u8],
    mut each: impl FnMut(&[u8], Datagram),
) -> std::io::Result<usize> {
    let buf = &mut room[..room.len() / PER_CALL];
    match recv(fd, buf)? {
        Some((len, d)) => {
            each(&buf[..len], d);
            Ok(1)
        }
        None => Ok(0),
    }
}

/// Reads one datagram without waiting: its length and what came with it, `Ok(None)` when
/// none is queued.
#[cfg(any(test, not(target_os = "linux")))]
pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> std::io::Result<Option<(usize, Datagram)>> {
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
    let d = Datagram {
        from: super::udp_errqueue::addr(&name, msg.msg_namelen),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        at: stamp(&msg),
    };
    Ok(Some(((n as usize).min(buf.len()), d)))
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
    #[test]
    fn many_datagrams_in_one_call_each_with_its_sender_time_and_length() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        enable_timestamps(rx.as_raw_fd()).unwrap();
        let txs: Vec<std::net::UdpSocket> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut room = vec![0u8; PER_CALL * 8];
        assert_eq!(recv_many(rx.as_raw_fd(), &mut room, |_, _| {}).unwrap(), 0);
        let before = SystemTime::now();
        let n = PER_CALL + 5;
        for i in 0..n {
            let msg = format!("m{i:02}").repeat(1 + i % 3);
            txs[i % 3]
                .send_to(msg.as_bytes(), rx.local_addr().unwrap())
                .unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..500 {
            recv_many(rx.as_raw_fd(), &mut room, |data, d| {
                got.push((
                    String::from_utf8_lossy(data).into_owned(),
                    d.from,
                    d.truncated,
                    d.at,
                ));
            })
            .unwrap();
            if got.len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got.len(), n);
        for (i, (text, from, truncated, at)) in got.iter().enumerate() {
            let full = format!("m{i:02}").repeat(1 + i % 3);
            // Each part of the room holds 8 bytes: longer datagrams are cut and say so.
            assert_eq!(
                (text.as_str(), *truncated),
                (&full[..full.len().min(8)], full.len() > 8)
            );
            assert_eq!(*from, txs[i % 3].local_addr().ok());
            let at = at.expect("a kernel timestamp");
            assert!(at >= before && at <= SystemTime::now());
        }
    }

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
        let (len, d) = d.expect("the datagram");
        let at = d.at.expect("a kernel timestamp");
        assert!(at >= before && at <= SystemTime::now());
        assert_eq!((len, d.truncated), (4, true));
        assert_eq!(d.from, tx.local_addr().ok());
        assert_eq!(&buf, b"hell");
    }
}
