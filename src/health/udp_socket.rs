//! One address family's shared SIP probe socket: unconnected, non-blocking, not registered
//! with the runtime (the scheduler reads it on its ticks), with kernel receive times
//! (`SO_TIMESTAMPNS`) and ICMP errors in its error queue (`IP_RECVERR`/`IPV6_RECVERR`), so a
//! refused target is known though the socket is not connected to it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use super::udp_table::Table;

/// Most datagrams read in one pass (the rest wait for the next tick; their times stay exact).
const MAX_PER_PASS: usize = 4096;

pub(super) struct Family {
    pub sock: std::net::UdpSocket,
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
        crate::sockopt::set_int(s.as_raw_fd(), level, opt, 1)?;
        super::udp_recv::enable_timestamps(s.as_raw_fd())?;
        // Replies of thousands of targets can wait for one tick.
        let _ = s.set_recv_buffer_size(4 * 1024 * 1024);
        s.bind(&bind.into())?;
        let sock: std::net::UdpSocket = s.into();
        let port = sock.local_addr()?.port();
        Ok(Family {
            sock,
            v4,
            port,
            local: HashMap::default(),
        })
    }

    /// Reads every queued datagram and ICMP error into the table, through `room` (room for
    /// [`super::udp_recv::PER_CALL`] datagrams).
    pub(super) fn read<D>(&self, table: &mut Table<D>, room: &mut [u8]) {
        let fd = self.sock.as_raw_fd();
        for _ in 0..MAX_PER_PASS / super::udp_recv::PER_CALL {
            let read = super::udp_recv::recv_many(fd, room, |data, d| {
                if let Some(from) = d.from {
                    table.dispatch(data, d.truncated, from, d.at);
                }
            });
            match read {
                // (Fewer than asked for is not enough: an ICMP error cuts a read short.)
                Ok(0) => break,
                Ok(_) => {}
                // An ICMP error pending on the socket: the error queue names its target.
                Err(_) => {
                    if !self.refusals(table) {
                        break;
                    }
                }
            }
        }
        self.refusals(table);
    }

    /// Ends the transactions the queued ICMP errors are about; whether there were any.
    fn refusals<D>(&self, table: &mut Table<D>) -> bool {
        let errors = super::udp_errqueue::drain(self.sock.as_raw_fd(), self.v4);
        for &(dst, errno) in &errors {
            table.unreachable(dst, errno);
        }
        !errors.is_empty()
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
            std::net::UdpSocket::bind(any)
                .and_then(|s| {
                    s.connect((dst, 9))?;
                    s.local_addr()
                })
                .map_or(any.ip(), |a| a.ip())
        })
    }
}

#[cfg(test)]
mod tests {
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
}
