//! Traffic engineering at answer time: `split` (a share of a region's clients sent to another
//! region) and proportional shedding (`capacity.shed`), both decided by a stable hash of the
//! client's prefix, so one client subnet always gets the same answer and a change of a
//! percentage moves only the clients it must.
//!
//! The hash is SipHash-2-4 with the fixed key of `config::content_hash` over a salt (the
//! target region's name hashed at compile time, or the shedding salt) and the client's /24
//! (IPv4) or /56 (IPv6) prefix: the same on every build and every instance, so instances
//! behind one name agree.

use std::net::IpAddr;

use crate::config::content_hash;

/// Prefix lengths hashed: what the ECS scope of a hashed answer is narrowed to.
pub const SPLIT_PREFIX_V4: u8 = 24;
pub const SPLIT_PREFIX_V6: u8 = 56;

/// The salt of the shedding hash (a split's salt is its target's name hashed).
const SHED_SALT: u64 = 0x7368_6564_5f73_616c;

/// The client prefix a split or shedding hashes, as 8 key bytes (a family tag, then the /24
/// or /56), and the prefix length in the client's own family: an IPv4-mapped IPv6 address
/// counts as its IPv4 address, its length given in the IPv6 family (+96).
pub fn client_prefix(client: IpAddr) -> ([u8; 8], u8) {
    let (v4, mapped) = match client {
        IpAddr::V4(a) => (Some(a), false),
        IpAddr::V6(a) => (a.to_ipv4_mapped(), true),
    };
    match (v4, client) {
        (Some(a), _) => {
            let o = a.octets();
            let len = SPLIT_PREFIX_V4 + if mapped { 96 } else { 0 };
            ([4, o[0], o[1], o[2], 0, 0, 0, 0], len)
        }
        (None, IpAddr::V6(a)) => {
            let o = a.octets();
            (
                [6, o[0], o[1], o[2], o[3], o[4], o[5], o[6]],
                SPLIT_PREFIX_V6,
            )
        }
        (None, IpAddr::V4(_)) => ([0; 8], 0),
    }
}

/// The hash of a client prefix under a salt: uniform over `u64`.
pub fn prefix_hash(salt: u64, prefix: &[u8; 8]) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&salt.to_le_bytes());
    b[8..].copy_from_slice(prefix);
    content_hash(&b)
}

/// The shedding hash of a client prefix: a server shedding a fraction `f` of its clients
/// leaves out those whose hash is below `f` of the range.
pub fn shed_hash(prefix: &[u8; 8]) -> u64 {
    prefix_hash(SHED_SALT, prefix)
}

/// A fraction (0..=1) as a threshold on the hash range: a hash below it is in the share.
pub fn threshold(fraction: f64) -> u64 {
    if fraction >= 1.0 {
        u64::MAX
    } else if fraction <= 0.0 {
        0
    } else {
        // 2^64 as f64 is exact; the product is below it, so the cast does not saturate.
        (fraction * 18_446_744_073_709_551_616.0) as u64
    }
}

/// Whether `hash` is in the share of `threshold` (`u64::MAX` takes every hash).
pub fn in_share(hash: u64, threshold: u64) -> bool {
    hash < threshold || threshold == u64::MAX
}

/// One target of a region's split, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The target, a position in the service's region list.
    pub to: u16,
    /// Percent of the source region's clients, as configured.
    pub percent: f64,
    /// The target's name hashed: each target draws its own hash of a prefix.
    salt: u64,
    /// The share of the clients not taken by the targets before this one.
    threshold: u64,
}

/// Compiles one region's split targets (position, name, percent): ordered by name, so the
/// order they are written in moves nobody. Target `k` takes a prefix when its own hash is
/// below `P_k / (100 - P_1 - ... - P_{k-1})` of the range and no target before it took the
/// prefix, so each gets `P_k` percent of the region's clients; raising one target's share
/// moves clients from the region to it, and a target that is down loses only its own
/// clients (they go back to their ranking).
pub fn compile_split(mut targets: Vec<(u16, &str, f64)>) -> Box<[Split]> {
    targets.sort_by(|a, b| a.1.cmp(b.1));
    let mut taken = 0.0;
    targets
        .into_iter()
        .map(|(to, name, percent)| {
            let left = 100.0 - taken;
            let q = if left > 0.0 { percent / left } else { 1.0 };
            taken += percent;
            Split {
                to,
                percent,
                salt: content_hash(name.as_bytes()),
                threshold: threshold(q),
            }
        })
        .collect()
}

/// The target a client prefix is split to, if any.
pub fn split_target(rules: &[Split], prefix: &[u8; 8]) -> Option<u16> {
    rules
        .iter()
        .find(|r| in_share(prefix_hash(r.salt, prefix), r.threshold))
        .map(|r| r.to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_ignore_host_bits_and_map_ipv4_in_ipv6() {
        let p = |s: &str| client_prefix(s.parse().expect("ip"));
        assert_eq!(p("192.0.2.1"), p("192.0.2.200"));
        assert_ne!(p("192.0.2.1").0, p("192.0.3.1").0);
        assert_eq!(p("192.0.2.1").1, 24);
        assert_eq!(p("::ffff:192.0.2.9"), ([4, 192, 0, 2, 0, 0, 0, 0], 120));
        assert_eq!(p("2001:db8:1:200::1"), p("2001:db8:1:2ff::9"));
        assert_ne!(p("2001:db8:1:200::1").0, p("2001:db8:1:300::1").0);
        assert_eq!(p("2001:db8::1").1, 56);
    }

    #[test]
    fn thresholds_cover_the_range() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(1.0), u64::MAX);
        assert_eq!(threshold(0.5), 1 << 63);
        assert!(in_share(u64::MAX, u64::MAX));
        assert!(!in_share(0, 0));
    }
}
