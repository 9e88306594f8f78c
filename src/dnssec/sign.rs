//! RRSIG record data for one RRset (RFC 4034 3.1.8.1): the signed data built here from the
//! canonical RRset, with the key tag and signer name fixed per key, signed deterministically
//! (RFC 6979 ECDSA, Ed25519), in signature windows fixed per period, so every instance with
//! the same key makes byte-identical RRSIGs for the same RRset in the same period.

use super::ZoneKey;

/// Signature windows start on a multiple of this (seconds since the epoch): a week.
pub(super) const PERIOD: u64 = 7 * 86_400;
/// A window starts this long before its period (clock skew of resolvers).
pub(super) const SKEW: u64 = 3_600;
/// A window ends this many periods after its period starts: signatures made in a period
/// stay valid at least two periods after it ends.
pub(super) const PERIODS_VALID: u64 = 3;

/// The inception and expiration of the signatures made at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub inception: u32,
    pub expiration: u32,
}

impl Window {
    /// The window of the period holding `now` (seconds since the epoch).
    pub fn at(now: u64) -> Window {
        let start = now - now % PERIOD;
        Window {
            inception: (start.saturating_sub(SKEW) & 0xFFFF_FFFF) as u32,
            expiration: ((start + PERIODS_VALID * PERIOD) & 0xFFFF_FFFF) as u32,
        }
    }

    /// The window of the current period.
    pub fn now() -> Window {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Window::at(now)
    }
}

impl ZoneKey {
    /// The RRSIG record data over the RRset of `rtype` at `owner` (canonical wire form: lowercase,
    /// uncompressed) with the records' canonical data `rdatas` and TTL `ttl`; `signer` is the
    /// zone apex in canonical wire form.
    pub fn rrsig(
        &self,
        owner: &[u8],
        signer: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: &[Vec<u8>],
        window: Window,
    ) -> Vec<u8> {
        let mut rdata = Vec::with_capacity(18 + signer.len() + 64);
        rdata.extend_from_slice(&rtype.to_be_bytes());
        rdata.push(self.algorithm.number());
        rdata.push(labels(owner));
        rdata.extend_from_slice(&ttl.to_be_bytes());
        rdata.extend_from_slice(&window.expiration.to_be_bytes());
        rdata.extend_from_slice(&window.inception.to_be_bytes());
        rdata.extend_from_slice(&self.key_tag.to_be_bytes());
        rdata.extend_from_slice(signer);
        let mut sorted: Vec<&Vec<u8>> = rdatas.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut data = rdata.clone();
        for rd in sorted {
            data.extend_from_slice(owner);
            data.extend_from_slice(&rtype.to_be_bytes());
            data.extend_from_slice(&1u16.to_be_bytes());
            data.extend_from_slice(&ttl.to_be_bytes());
            data.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            data.extend_from_slice(rd);
        }
        rdata.extend_from_slice(&self.sign(&data));
        rdata
    }
}

/// Labels of a wire name, the root not counted, a leading `*` not counted (RFC 4034 3.1.3).
fn labels(name: &[u8]) -> u8 {
    let mut n = 0u8;
    let mut pos = 0;
    while let Some(&l) = name.get(pos) {
        if l == 0 {
            break;
        }
        if !(pos == 0 && l == 1 && name.get(1) == Some(&b'*')) {
            n = n.saturating_add(1);
        }
        pos += l as usize + 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_per_period() {
        let w = Window::at(PERIOD * 3000 + 5);
        assert_eq!(w, Window::at(PERIOD * 3001 - 1));
        assert_eq!(u64::from(w.inception), PERIOD * 3000 - SKEW);
        assert_eq!(u64::from(w.expiration), PERIOD * 3003);
        assert_ne!(w, Window::at(PERIOD * 3001));
        assert_eq!(labels(b"\x03www\x07example\x03com\x00"), 3);
        assert_eq!(labels(b"\x01*\x07example\x03com\x00"), 2);
        assert_eq!(labels(b"\x00"), 0);
    }
}
