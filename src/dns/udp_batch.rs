//! Batched UDP I/O on Linux: `recvmmsg` takes up to [`BATCH`] queries in one system call and
//! `sendmmsg` returns their replies in one, so under load the cost of a query is mostly the
//! answer, not the kernel crossing. The buffers are allocated once per socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Queries taken per system call at most.
pub const BATCH: usize = 32;
/// Largest query read (EDNS queries are small; a larger one is truncated and fails to parse).
const MAX_QUERY: usize = 4096;

/// The per-socket buffers; pointers inside the headers stay valid because nothing here is
/// ever resized after [`Batch::new`].
pub struct Batch {
    bufs: Vec<[u8; MAX_QUERY]>,
    addrs: Vec<libc::sockaddr_storage>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    out_iov: Vec<libc::iovec>,
    out_hdrs: Vec<libc::mmsghdr>,
    /// Replies, one per received query.
    pub out: Vec<Vec<u8>>,
    len: usize,
}

// The raw pointers only point into the struct's own heap buffers.
unsafe impl Send for Batch {}

impl Batch {
    pub fn new() -> Box<Batch> {
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
            out: (0..BATCH).map(|_| Vec::with_capacity(4096)).collect(),
            len: 0,
        });
        for i in 0..BATCH {
            b.iov[i] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
        }
        b
    }

    /// Waits for at least one query (or the socket's read timeout); returns how many arrived.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        for i in 0..BATCH {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
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
        Ok(self.len)
    }

    /// Calls `f(query, sender, reply)` for each query of the last batch; `f` returns whether
    /// to send the reply. Returns the send flags for [`Self::send`].
    pub fn answer(
        &mut self,
        mut f: impl FnMut(&[u8], SocketAddr, &mut Vec<u8>) -> bool,
    ) -> [bool; BATCH] {
        let mut send = [false; BATCH];
        for (i, flag) in send.iter_mut().enumerate().take(self.len) {
            let len = (self.hdrs[i].msg_len as usize).min(MAX_QUERY);
            let namelen = self.hdrs[i].msg_hdr.msg_namelen;
            let mut storage = socket2::SockAddrStorage::zeroed();
            // SAFETY: SockAddrStorage wraps a sockaddr_storage; the kernel filled `addrs[i]`
            // with `namelen` bytes of a socket address.
            let addr = unsafe {
                *storage.view_as::<libc::sockaddr_storage>() = self.addrs[i];
                socket2::SockAddr::new(storage, namelen)
            };
            let Some(peer) = addr.as_socket() else {
                continue;
            };
            self.out[i].clear();
            *flag = f(&self.bufs[i][..len], peer, &mut self.out[i]);
        }
        send
    }

    /// Sends `out[i]` to the sender of query `i` for every `i` in `send`.
    pub fn send(&mut self, sock: &UdpSocket, send: &[bool]) -> io::Result<()> {
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
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.hdrs[i].msg_hdr.msg_namelen;
            h.msg_iov = &mut self.out_iov[k];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
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
