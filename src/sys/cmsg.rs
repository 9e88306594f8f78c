//! Control messages: one bounds-checked iterator over what the kernel wrote ([`Cmsgs`]), the
//! few messages sipsteer reads from it (a datagram's destination address, its kernel receive
//! time, an ICMP error from the error queue), and the one it writes (a reply's source
//! address, [`Source`]). The layout is Linux's: a `cmsghdr`, its data at the next multiple of
//! the word size, the next header at the next such multiple after the data.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use super::plain::{self, Plain};

/// `CMSG_ALIGN`: `len` rounded up to the word size.
const fn align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// `CMSG_LEN(0)`: where a control message's data starts after its header.
const HEADER: usize = align(size_of::<libc::cmsghdr>());

/// `CMSG_SPACE(len)`: the bytes a control message with `len` bytes of data takes.
const fn space(len: usize) -> usize {
    HEADER + align(len)
}

/// One control message: its level, type and data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cmsg<'a> {
    pub level: libc::c_int,
    pub kind: libc::c_int,
    pub data: &'a [u8],
}

impl Cmsg<'_> {
    /// The data as a `T`, if it is long enough.
    fn read<T: Plain>(&self) -> Option<T> {
        plain::read(self.data)
    }
}

/// The control messages in the first `msg_controllen` bytes of a control buffer. A header
/// whose length runs past the bytes given, or is shorter than a header, ends the walk.
#[derive(Debug, Clone)]
pub(crate) struct Cmsgs<'a> {
    rest: &'a [u8],
}

impl<'a> Cmsgs<'a> {
    /// The messages in `bytes` (what the kernel wrote, aligned as the control buffer was).
    pub(crate) fn new(bytes: &'a [u8]) -> Cmsgs<'a> {
        Cmsgs { rest: bytes }
    }
}

impl<'a> Iterator for Cmsgs<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        let h: libc::cmsghdr = plain::read(self.rest)?;
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let len = usize::try_from(h.cmsg_len).unwrap_or(usize::MAX);
        let Some(data) = self.rest.get(HEADER..len) else {
            self.rest = &[];
            return None;
        };
        self.rest = self.rest.get(align(len)..).unwrap_or(&[]);
        Some(Cmsg {
            level: h.cmsg_level,
            kind: h.cmsg_type,
            data,
        })
    }
}

/// The destination address of a received datagram (`IP_PKTINFO`, `IPV6_PKTINFO`).
#[inline]
pub(crate) fn destination(mut c: Cmsgs<'_>) -> Option<IpAddr> {
    c.find_map(|m| match (m.level, m.kind) {
        (libc::IPPROTO_IP, libc::IP_PKTINFO) => m
            .read::<libc::in_pktinfo>()
            .map(|p| Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr)).into()),
        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => m
            .read::<libc::in6_pktinfo>()
            .map(|p| Ipv6Addr::from(p.ipi6_addr.s6_addr).into()),
        _ => None,
    })
}

/// When the kernel received a datagram (`SCM_TIMESTAMPNS`, wall clock).
pub(crate) fn received_at(mut c: Cmsgs<'_>) -> Option<SystemTime> {
    let m = c.find(|m| m.level == libc::SOL_SOCKET && m.kind == libc::SCM_TIMESTAMPNS)?;
    let t = m.read::<libc::timespec>()?;
    let d = Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    );
    SystemTime::UNIX_EPOCH.checked_add(d)
}

/// The error number of an extended error from the error queue (`IP_RECVERR`,
/// `IPV6_RECVERR` on an IPv6 socket), if an ICMP message reported it.
pub(crate) fn icmp_errno(mut c: Cmsgs<'_>, v4: bool) -> Option<i32> {
    let (level, kind) = if v4 {
        (libc::SOL_IP, libc::IP_RECVERR)
    } else {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    };
    let m = c.find(|m| m.level == level && m.kind == kind)?;
    let e = m.read::<libc::sock_extended_err>()?;
    let icmp = e.ee_origin == libc::SO_EE_ORIGIN_ICMP || e.ee_origin == libc::SO_EE_ORIGIN_ICMP6;
    icmp.then(|| i32::try_from(e.ee_errno).ok()).flatten()
}

/// A control message and its data, laid out as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy)]
struct With<T> {
    header: libc::cmsghdr,
    data: T,
}

const _: () = assert!(offset_of!(With<libc::in_pktinfo>, data) == HEADER);
const _: () = assert!(offset_of!(With<libc::in6_pktinfo>, data) == HEADER);

/// The control message that sets a datagram's source address (`IP_PKTINFO` or
/// `IPV6_PKTINFO`, interface 0 so the routing table picks the way out). Written as typed
/// fields, never as bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union Source {
    v4: With<libc::in_pktinfo>,
    v6: With<libc::in6_pktinfo>,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            v6: With {
                header: plain::zeroed(),
                data: plain::zeroed(),
            },
        }
    }
}

impl Source {
    /// Sets the source address `ip`; returns the control length to send (`CMSG_SPACE`).
    #[inline]
    pub(crate) fn set(&mut self, ip: IpAddr) -> usize {
        let mut header: libc::cmsghdr = plain::zeroed();
        match ip {
            IpAddr::V4(a) => {
                let size = size_of::<libc::in_pktinfo>();
                header.cmsg_len = (HEADER + size) as _;
                header.cmsg_level = libc::IPPROTO_IP;
                header.cmsg_type = libc::IP_PKTINFO;
                let addr = libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                };
                self.v4 = With {
                    header,
                    data: libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: addr,
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    },
                };
                space(size)
            }
            IpAddr::V6(a) => {
                let size = size_of::<libc::in6_pktinfo>();
                header.cmsg_len = (HEADER + size) as _;
                header.cmsg_level = libc::IPPROTO_IPV6;
                header.cmsg_type = libc::IPV6_PKTINFO;
                self.v6 = With {
                    header,
                    data: libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: a.octets(),
                        },
                        ipi6_ifindex: 0,
                    },
                };
                space(size)
            }
        }
    }
}

const _: () = assert!(space(size_of::<libc::in6_pktinfo>()) <= size_of::<Source>());

#[cfg(test)]
mod tests {
    use super::*;

    /// Control bytes holding `msgs` (level, type, data) as the kernel lays them out.
    fn control(msgs: &[(i32, i32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (level, kind, data) in msgs {
            let len = HEADER + data.len();
            out.extend_from_slice(&len.to_ne_bytes());
            out.extend_from_slice(&level.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(data);
            out.resize(align(out.len()), 0);
        }
        out
    }

    #[test]
    fn the_walk_yields_each_message_and_stops_at_a_bad_length() {
        let bytes = control(&[(1, 2, b"abc"), (3, 4, b""), (5, 6, &[7; 9])]);
        let got: Vec<(i32, i32, Vec<u8>)> = Cmsgs::new(&bytes)
            .map(|m| (m.level, m.kind, m.data.to_vec()))
            .collect();
        assert_eq!(
            got,
            [(1, 2, b"abc".to_vec()), (3, 4, vec![]), (5, 6, vec![7; 9])]
        );
        // A length past the end, or shorter than a header, ends the walk there.
        let mut long = control(&[(1, 2, b"abc"), (3, 4, b"def")]);
        let second = align(HEADER + 3);
        long[second..second + 8].copy_from_slice(&999usize.to_ne_bytes());
        assert_eq!(Cmsgs::new(&long).count(), 1);
        let mut short = control(&[(1, 2, b"abc")]);
        short[..8].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(Cmsgs::new(&short).count(), 0);
        assert_eq!(Cmsgs::new(&bytes[..HEADER - 1]).count(), 0);
        assert_eq!(Cmsgs::new(&[]).count(), 0);
    }
}
