//! Integer socket options that socket2 does not name (`IP_PKTINFO`, `IPV6_RECVPKTINFO`,
//! `IP_RECVERR`, `IPV6_RECVERR`, `SO_TIMESTAMPNS`): one checked `setsockopt` for all of them.

use std::os::fd::RawFd;

/// Sets the integer option `opt` at `level` on `fd` to `v`.
pub(crate) fn set_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: an int option, and a pointer to an int of the length given; a bad fd or option
    // is an error return, not undefined behaviour.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
