//! The names a service generates, built in one place for the zone tree, the steering core and
//! validation: `_sip._udp.sip.example.com`, `uk.sip.example.com`,
//! `_sip._udp.uk.sip.example.com` and `lon1.uk.sip.example.com`, in lowercase wire form.
//! Building never fails; validation rejects a config with a name that cannot exist.

use hickory_proto::rr::Name;

use crate::config::{RegionConfig, Transport};
use crate::proto::MAX_NAME;

/// Every name one service generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceNames {
    /// SRV owners per transport.
    pub srv: Vec<(Transport, Box<[u8]>)>,
    /// Per region position of the service.
    pub regions: Vec<RegionNames>,
}

/// The names of one region of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegionNames {
    /// `uk.sip.example.com`.
    pub name: Box<[u8]>,
    /// `_sip._udp.uk.sip.example.com` per transport.
    pub srv: Vec<(Transport, Box<[u8]>)>,
    /// `lon1.uk.sip.example.com` per server, in config order.
    pub hosts: Vec<Box<[u8]>>,
}

/// The two labels in front of an SRV owner.
pub(crate) fn srv_labels(t: Transport) -> [&'static [u8]; 2] {
    match t {
        Transport::Udp => [b"_sip", b"_udp"],
        Transport::Tcp => [b"_sip", b"_tcp"],
        Transport::Tls => [b"_sips", b"_tcp"],
        Transport::Ws => [b"_sip", b"_ws"],
        Transport::Wss => [b"_sips", b"_ws"],
    }
}

/// `labels` in front of the wire name `base`, lowercased.
pub(crate) fn prepend(labels: &[&[u8]], base: &[u8]) -> Box<[u8]> {
    let mut out =
        Vec::with_capacity(base.len() + labels.iter().map(|l| l.len() + 1).sum::<usize>());
    for l in labels {
        out.push(l.len().min(255) as u8);
        out.extend(l.iter().map(u8::to_ascii_lowercase));
    }
    out.extend_from_slice(base);
    out.into_boxed_slice()
}

fn srv_of(base: &[u8], transports: &[Transport]) -> Vec<(Transport, Box<[u8]>)> {
    transports
        .iter()
        .map(|&t| (t, prepend(&srv_labels(t), base)))
        .collect()
}

/// The names of a service at wire name `base` with these transports and regions (in the
/// service's order).
pub(crate) fn service_names(
    base: &[u8],
    transports: &[Transport],
    regions: &[&RegionConfig],
) -> ServiceNames {
    let regions = regions
        .iter()
        .map(|r| {
            let name = prepend(&[r.name.as_bytes()], base);
            RegionNames {
                srv: srv_of(&name, transports),
                hosts: r
                    .servers
                    .iter()
                    .map(|s| prepend(&[s.name.as_bytes()], &name))
                    .collect(),
                name,
            }
        })
        .collect();
    ServiceNames {
        srv: srv_of(base, transports),
        regions,
    }
}

impl ServiceNames {
    /// Every generated name.
    pub(crate) fn all(&self) -> impl Iterator<Item = &[u8]> {
        let srv = self.srv.iter().map(|(_, n)| &n[..]);
        let regions = self.regions.iter().flat_map(|r| {
            std::iter::once(&r.name[..])
                .chain(r.srv.iter().map(|(_, n)| &n[..]))
                .chain(r.hosts.iter().map(|h| &h[..]))
        });
        srv.chain(regions)
    }

    /// The first name that cannot exist in the DNS: over 255 octets, or with a label over 63.
    pub(crate) fn invalid(&self) -> Option<&[u8]> {
        self.all().find(|n| !valid(n))
    }
}

/// Whether a wire name can exist: at most 255 octets, labels of 1 to 63 octets.
pub(crate) fn valid(name: &[u8]) -> bool {
    if name.len() > MAX_NAME {
        return false;
    }
    let mut pos = 0;
    while let Some(&l) = name.get(pos) {
        if l == 0 {
            return pos + 1 == name.len();
        }
        if l > 63 {
            return false;
        }
        pos += l as usize + 1;
    }
    false
}

/// A wire name in dotted text, for messages.
pub(crate) fn text(name: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&l) = name.get(pos) {
        if l == 0 {
            break;
        }
        let end = (pos + 1 + l as usize).min(name.len());
        out.push_str(&String::from_utf8_lossy(&name[pos + 1..end]));
        out.push('.');
        pos = end;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Lowercase wire form of a name.
pub(crate) fn wire_name(n: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(n.len() + 1);
    for label in n {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_limits() {
        let base = b"\x03sip\x07example\x03com\x00";
        let n = prepend(&[b"Lon1", b"uk"], base);
        assert_eq!(text(&n), "lon1.uk.sip.example.com.");
        assert!(valid(&n));
        let long = vec![b'a'; 63];
        let mut name = base.to_vec();
        for _ in 0..3 {
            name = prepend(&[&long], &name).into_vec();
        }
        assert_eq!(name.len(), 3 * 64 + base.len());
        assert!(valid(&name));
        assert!(!valid(&prepend(&[&long], &name)), "over 255 octets");
        assert!(!valid(&prepend(&[&[b'a'; 64]], base)), "label over 63");
    }
}
