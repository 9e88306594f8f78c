//! Warnings about a valid config whose answers cannot work for some clients: `check` prints
//! them (and still exits 0), `serve` logs them at startup.

use crate::config::{Config, Transport};

fn srv_label(t: Transport) -> (&'static str, &'static str) {
    match t {
        Transport::Udp => ("udp", "_sip._udp"),
        Transport::Tcp => ("tcp", "_sip._tcp"),
        Transport::Tls => ("tls", "_sips._tcp"),
        Transport::Ws => ("ws", "_sip._ws"),
        Transport::Wss => ("wss", "_sips._ws"),
    }
}

/// Every warning, in zone and service order.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let base = cfg.file.parent().unwrap_or(std::path::Path::new(""));
    let mut out = Vec::new();
    for z in &cfg.zones {
        let file = z.file.strip_prefix(base).unwrap_or(&z.file).display();
        for s in &z.services {
            for &t in &s.transports {
                let lacking: Vec<&str> = s
                    .regions
                    .iter()
                    .filter_map(|&i| cfg.regions.get(i))
                    .filter(|r| !r.servers.iter().any(|srv| srv.transports.contains(&t)))
                    .map(|r| r.name.as_str())
                    .collect();
                if lacking.is_empty() {
                    continue;
                }
                let (name, srv) = srv_label(t);
                out.push(format!(
                    "{file}: services.{}.transports: {name} is offered but no server in {} \
                     speaks {name}; clients steered there get no {srv}.{} records",
                    s.label,
                    lacking.join(", "),
                    s.name
                ));
            }
        }
    }
    out
}
