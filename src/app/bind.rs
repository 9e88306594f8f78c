//! Binding every socket a config listens on, before anything is spawned: a start that fails
//! here (an address in use, a missing certificate) leaves nothing running and every socket
//! it bound closed. Also the connection caps the open-file limit allows.

use std::net::SocketAddr;

use anyhow::{Context, Result};

use crate::config::{Config, DnsSettings};
use crate::dns::{encrypted, listener};

/// The DNS listen addresses of every transport, their settings, and the connection caps that
/// fit in the open-file limit.
pub(super) struct Listen {
    pub dns: Vec<SocketAddr>,
    pub settings: DnsSettings,
    pub caps: crate::conns::budget::Caps,
}

impl Listen {
    /// What `cfg` listens on; raises the open-file limit for its caps.
    pub(super) fn of(cfg: &Config) -> Listen {
        Listen {
            dns: cfg.listen_dns.clone(),
            settings: cfg.dns.clone(),
            caps: descriptor_budget(cfg, &cfg.dns),
        }
    }

    /// The bounds of one transport's table, whose cap is `max`.
    pub(super) fn limits(&self, max: usize) -> crate::conns::Limits {
        crate::conns::Limits {
            max,
            per_source: self.settings.tcp_max_connections_per_source,
        }
    }
}

/// One DNS address: its UDP sockets (one per worker) and its TCP listener.
pub(super) struct DnsSockets {
    pub bound: SocketAddr,
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: tokio::net::TcpListener,
}

/// Every socket of a config, bound and not served yet.
pub(super) struct Sockets {
    pub dns: Vec<DnsSockets>,
    pub encrypted: encrypted::Sockets,
    pub admin: Option<tokio::net::TcpListener>,
}

impl Sockets {
    /// Binds the DNS addresses (UDP and TCP), the DNS over TLS and HTTPS addresses and the
    /// admin API, in that order; on the first failure every socket bound so far is closed.
    pub(super) async fn bind(cfg: &Config, listen: &Listen) -> Result<Sockets> {
        let workers = udp_workers(&listen.settings);
        let mut dns = Vec::new();
        for &addr in &listen.dns {
            let only_v6 = listener::v6_only(addr, &listen.dns);
            let (udp, tcp) = bind_pair(addr, only_v6, workers)?;
            let bound = udp[0].local_addr()?;
            let tcp = tokio::net::TcpListener::from_std(tcp)
                .with_context(|| format!("cannot bind tcp {addr}"))?;
            dns.push(DnsSockets { bound, udp, tcp });
        }
        let first = cfg.tls.as_ref().map(|t| t.certified.clone());
        let encrypted = encrypted::bind(&cfg.listen_tls, &cfg.listen_https, first)?;
        let admin = match cfg.listen_admin {
            Some(addr) => Some(
                crate::admin::bind(addr)
                    .await
                    .with_context(|| format!("cannot bind admin api {addr}"))?,
            ),
            None => None,
        };
        Ok(Sockets {
            dns,
            encrypted,
            admin,
        })
    }
}

/// UDP sockets (and threads) per DNS address.
pub(super) fn udp_workers(settings: &DnsSettings) -> usize {
    match settings.udp_workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
}

/// Raises the open-file limit and returns the connection caps of the stream transports that
/// fit in it beside everything else that holds descriptors (see `conns::budget`).
fn descriptor_budget(cfg: &Config, dns: &DnsSettings) -> crate::conns::budget::Caps {
    use crate::conns::budget::{Caps, Fixed, fit};
    let on = |addrs: &[SocketAddr]| {
        if addrs.is_empty() {
            0
        } else {
            dns.tcp_max_connections
        }
    };
    let admin = cfg.listen_admin.is_some();
    let sockets = cfg.listen_dns.len() * (udp_workers(dns) + 1)
        + cfg.listen_tls.len()
        + cfg.listen_https.len()
        + usize::from(admin)
        // The prober's UDP sockets, one per address family.
        + 2;
    let fixed = Fixed {
        sockets,
        admin: if admin {
            crate::admin::MAX_CONNECTIONS
        } else {
            0
        },
        probes: cfg.health_concurrency,
    };
    let caps = Caps {
        tcp: on(&cfg.listen_dns),
        tls: on(&cfg.listen_tls),
        https: on(&cfg.listen_https),
    };
    fit(caps, fixed)
}

/// UDP and TCP on one address; with port 0, both on the same (free) port.
fn bind_pair(
    addr: SocketAddr,
    only_v6: bool,
    workers: usize,
) -> Result<(Vec<std::net::UdpSocket>, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = listener::bind_udp(addr, workers, only_v6)
            .with_context(|| format!("cannot bind udp {addr}"))?;
        let bound = udp[0].local_addr()?;
        match listener::bind_tcp(bound, only_v6) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("cannot bind tcp {addr}")),
        }
    }
    Err(anyhow::anyhow!(
        "cannot bind tcp next to udp on {addr}: {}",
        last.map_or_else(String::new, |e| e.to_string())
    ))
}
