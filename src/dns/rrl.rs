//! Response rate limiting in the manner of BIND's and Knot's RRL: UDP responses are counted
//! per (client prefix, response class, name) and the excess over a rate is dropped, every
//! Nth excess response "slipping" through as an empty truncated reply so that a real
//! resolver retries over TCP.
//!
//! The table has a fixed number of slots (one `AtomicU64` each), allocated once and shared by
//! every UDP worker; a response touches one slot with a compare-and-swap, so nothing is
//! allocated or locked per query. Each slot holds a 12-bit tag of its key, a 4-bit slip
//! counter and a 48-bit "theoretical arrival time" in microseconds (the generic cell rate
//! algorithm: a key may send `rate` responses at once, then one every 1/rate s). A slot taken
//! by another key is simply reset, which can only make limiting laxer, never stricter.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use siphasher::sip::SipHasher13;

/// What the response is, for bucketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class<'a> {
    /// A positive answer: per query name and type.
    Answer(&'a [u8], u16),
    /// NXDOMAIN, per zone (a random-subdomain flood shares one bucket).
    NxDomain(u32),
    /// NOERROR without data, per zone.
    NoData(u32),
    /// A delegation, per zone.
    Referral(u32),
    /// Any error rcode.
    Error,
}

/// What to do with a rate-limited response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send an empty truncated reply instead.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub rate: u32,
    /// How much excess is remembered: a client that kept flooding stays limited this long.
    pub window_us: u64,
    /// Every `slip`th excess response slips (0: none, 1: all).
    pub slip: u8,
    pub slots: usize,
    pub v4_prefix: u8,
    pub v6_prefix: u8,
}

pub(crate) struct Rrl {
    slots: Box<[AtomicU64]>,
    mask: usize,
    key: [u8; 16],
    interval: u64,
    tolerance: u64,
    limits: Limits,
    start: Instant,
}

const TAT_BITS: u32 = 48;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;

impl Rrl {
    pub(crate) fn new(limits: Limits, key: [u8; 16]) -> Rrl {
        let n = limits.slots.clamp(1024, 1 << 24).next_power_of_two();
        let interval = (1_000_000 / u64::from(limits.rate.max(1))).max(1);
        Rrl {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
            key,
            interval,
            tolerance: 1_000_000u64.saturating_sub(interval),
            limits,
            start: Instant::now(),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts one UDP response to `client` and says whether it may go out.
    pub(crate) fn check(&self, client: IpAddr, class: Class) -> Verdict {
        let now = (self.start.elapsed().as_micros() as u64 + 1) & TAT_MASK;
        let h = self.hash(client, class);
        let slot = &self.slots[(h as usize) & self.mask];
        let tag = h >> 52;
        let mut old = slot.load(Ordering::Relaxed);
        for _ in 0..4 {
            let (new, verdict) = self.step(old, tag, now);
            match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return verdict,
                Err(cur) => old = cur,
            }
        }
        // Heavy contention on one slot: decide on the last value seen.
        self.step(old, tag, now).1
    }

    /// The generic cell rate algorithm on one slot value.
    fn step(&self, old: u64, tag: u64, now: u64) -> (u64, Verdict) {
        let fresh = old == 0 || old >> 52 != tag;
        let (tat, slips) = if fresh {
            (now, 0)
        } else {
            ((old & TAT_MASK).max(now), (old >> TAT_BITS) & 0xF)
        };
        let pack = |tat: u64, slips: u64| (tag << 52) | (slips << TAT_BITS) | (tat & TAT_MASK);
        if tat - now <= self.tolerance {
            return (pack(tat + self.interval, slips), Verdict::Send);
        }
        let cap = now + self.tolerance + self.limits.window_us;
        let tat = (tat + self.interval).min(cap);
        let slip = u64::from(self.limits.slip);
        if slip == 0 {
            return (pack(tat, 0), Verdict::Drop);
        }
        if slips + 1 >= slip {
            (pack(tat, 0), Verdict::Slip)
        } else {
            (pack(tat, slips + 1), Verdict::Drop)
        }
    }

    fn hash(&self, client: IpAddr, class: Class) -> u64 {
        let mut h = SipHasher13::new_with_key(&self.key);
        match crate::geo::canonical(client) {
            IpAddr::V4(a) => {
                let bits = u32::from(a) & prefix_mask32(self.limits.v4_prefix);
                h.write(&[4]);
                h.write(&bits.to_be_bytes());
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a) & prefix_mask128(self.limits.v6_prefix);
                h.write(&[6]);
                h.write(&bits.to_be_bytes());
            }
        }
        match class {
            Class::Answer(name, qtype) => {
                h.write(&[1]);
                h.write(&qtype.to_be_bytes());
                h.write(name);
            }
            Class::NxDomain(z) => {
                h.write(&[2]);
                h.write(&z.to_be_bytes());
            }
            Class::NoData(z) => {
                h.write(&[3]);
                h.write(&z.to_be_bytes());
            }
            Class::Referral(z) => {
                h.write(&[4]);
                h.write(&z.to_be_bytes());
            }
            Class::Error => h.write(&[5]),
        }
        h.finish()
    }
}

fn prefix_mask32(p: u8) -> u32 {
    if p == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(p.min(32)))
    }
}

fn prefix_mask128(p: u8) -> u128 {
    if p == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(p.min(128)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rate: u32, slip: u8) -> Rrl {
        Rrl::new(
            Limits {
                rate,
                window_us: 5_000_000,
                slip,
                slots: 1024,
                v4_prefix: 24,
                v6_prefix: 56,
            },
            [3; 16],
        )
    }

    fn count(r: &Rrl, ip: &str, n: usize) -> [usize; 3] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut c = [0; 3];
        for _ in 0..n {
            match r.check(ip, Class::Answer(b"\x03sip\x00", 1)) {
                Verdict::Send => c[0] += 1,
                Verdict::Slip => c[1] += 1,
                Verdict::Drop => c[2] += 1,
            }
        }
        c
    }

    #[test]
    fn burst_of_rate_then_slip_every_second() {
        let r = rrl(5, 2);
        assert_eq!(count(&r, "192.0.2.1", 20), [5, 7, 8]);
        // The same /24 shares the bucket; another /24 has its own.
        assert_eq!(count(&r, "192.0.2.200", 2), [0, 1, 1]);
        assert_eq!(count(&r, "192.0.3.1", 6), [5, 0, 1]);
    }

    #[test]
    fn slip_zero_drops_all_and_one_slips_all() {
        assert_eq!(count(&rrl(3, 0), "2001:db8::1", 10), [3, 0, 7]);
        assert_eq!(count(&rrl(3, 1), "2001:db8::1", 10), [3, 7, 0]);
        // A /56 shares a bucket.
        let r = rrl(3, 1);
        assert_eq!(count(&r, "2001:db8:0:ff::1", 3), [3, 0, 0]);
        assert_eq!(count(&r, "2001:db8:0:1::1", 1), [0, 1, 0]);
    }

    #[test]
    fn classes_are_separate_buckets() {
        let r = rrl(1, 0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for class in [
            Class::Answer(b"\x01a\x00", 1),
            Class::Answer(b"\x01a\x00", 28),
            Class::NxDomain(0),
            Class::NoData(0),
            Class::Referral(0),
            Class::Error,
        ] {
            assert_eq!(r.check(ip, class), Verdict::Send, "{class:?}");
            assert_eq!(r.check(ip, class), Verdict::Drop, "{class:?}");
        }
    }
}
