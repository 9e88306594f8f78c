//! Response rate limiting in the manner of BIND's and Knot's RRL: UDP responses are counted
//! per (client prefix, response class, name) and the excess over a rate is dropped, every
//! Nth excess response "slipping" through as an empty truncated reply so that a real
//! resolver retries over TCP. An optional second budget per client prefix counts every
//! response the name buckets let through, whatever its name (BIND's `all-per-second`), so an
//! attacker cannot multiply the rate by spreading a flood over many names.
//!
//! The table has a fixed number of slots (one `AtomicU64` each), allocated once and shared by
//! every UDP worker; a response touches one slot (two with the prefix budget) with a
//! compare-and-swap, so nothing is allocated or locked per query. Each slot holds a 12-bit tag
//! of its key, a 4-bit slip counter and a 48-bit "theoretical arrival time" in microseconds
//! (the generic cell rate algorithm: a key may send `rate` responses at once, then one every
//! 1/rate s). A slot taken by another key is simply reset, which can only make limiting
//! laxer, never stricter.

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
pub(crate) enum Verdict {
    Send,
    /// Send an empty truncated reply instead.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub rate: u32,
    /// Responses per second of one client prefix across every name and class; 0 = no such
    /// budget.
    pub all_rate: u32,
    /// How much excess is remembered: a client that kept flooding stays limited this long.
    pub window_us: u64,
    /// Every `slip`th excess response slips (0: none, 1: all).
    pub slip: u8,
    pub slots: usize,
    pub v4_prefix: u8,
    pub v6_prefix: u8,
}

/// What rate limiting decided for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub verdict: Verdict,
    /// Held back by the client prefix's budget across all names, not by its own bucket.
    pub by_prefix: bool,
}

/// The cell rate of one kind of bucket: one response every `interval` µs, a burst of
/// `tolerance` µs worth.
#[derive(Debug, Clone, Copy)]
struct Rate {
    interval: u64,
    tolerance: u64,
}

impl Rate {
    fn per_second(rate: u32) -> Rate {
        let interval = (1_000_000 / u64::from(rate.max(1))).max(1);
        Rate {
            interval,
            tolerance: 1_000_000u64.saturating_sub(interval),
        }
    }
}

pub(crate) struct Rrl {
    slots: Box<[AtomicU64]>,
    mask: usize,
    key: [u8; 16],
    per_name: Rate,
    /// The budget across all names, when configured.
    per_prefix: Option<Rate>,
    limits: Limits,
    start: Instant,
}

const TAT_BITS: u32 = 48;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;

impl Rrl {
    pub(crate) fn new(limits: Limits, key: [u8; 16]) -> Rrl {
        let n = limits.slots.clamp(1024, 1 << 24).next_power_of_two();
        Rrl {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
            key,
            per_name: Rate::per_second(limits.rate),
            per_prefix: (limits.all_rate > 0).then(|| Rate::per_second(limits.all_rate)),
            limits,
            start: Instant::now(),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts one UDP response to `client` and says whether it may go out. `cookie`: the
    /// query carried a client cookie, so a slip would be a BADCOOKIE reply, which is larger
    /// than the query; such slips go out at most every second excess response, so what a
    /// flood reflects stays below what it sends.
    pub(crate) fn check(&self, client: IpAddr, class: Class, cookie: bool) -> Decision {
        let now = (self.start.elapsed().as_micros() as u64 + 1) & TAT_MASK;
        let slip = match self.limits.slip {
            0 => 0,
            s if cookie => s.max(2),
            s => s,
        };
        let prefix = self.prefix_hasher(client);
        let verdict = self.debit(name_hash(prefix, class), now, self.per_name, slip);
        let Some(rate) = self.per_prefix.filter(|_| verdict == Verdict::Send) else {
            return Decision {
                verdict,
                by_prefix: false,
            };
        };
        let mut all = prefix;
        all.write(&[6]);
        let verdict = self.debit(all.finish(), now, rate, slip);
        Decision {
            verdict,
            by_prefix: verdict != Verdict::Send,
        }
    }

    /// One response against the bucket of key hash `h`.
    fn debit(&self, h: u64, now: u64, rate: Rate, slip: u8) -> Verdict {
        let slot = &self.slots[(h as usize) & self.mask];
        let tag = h >> 52;
        let mut old = slot.load(Ordering::Relaxed);
        for _ in 0..4 {
            let (new, verdict) = self.step(old, tag, now, rate, slip);
            match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return verdict,
                Err(cur) => old = cur,
            }
        }
        // Heavy contention on one slot: decide on the last value seen.
        self.step(old, tag, now, rate, slip).1
    }

    /// The generic cell rate algorithm on one slot value.
    fn step(&self, old: u64, tag: u64, now: u64, rate: Rate, slip: u8) -> (u64, Verdict) {
        let fresh = old == 0 || old >> 52 != tag;
        let (tat, slips) = if fresh {
            (now, 0)
        } else {
            ((old & TAT_MASK).max(now), (old >> TAT_BITS) & 0xF)
        };
        let pack = |tat: u64, slips: u64| (tag << 52) | (slips << TAT_BITS) | (tat & TAT_MASK);
        if tat - now <= rate.tolerance {
            return (pack(tat + rate.interval, slips), Verdict::Send);
        }
        let cap = now + rate.tolerance + self.limits.window_us;
        let tat = (tat + rate.interval).min(cap);
        let slip = u64::from(slip);
        if slip == 0 {
            return (pack(tat, 0), Verdict::Drop);
        }
        if slips + 1 >= slip {
            (pack(tat, 0), Verdict::Slip)
        } else {
            (pack(tat, slips + 1), Verdict::Drop)
        }
    }

    /// A hasher that has read the client's prefix.
    fn prefix_hasher(&self, client: IpAddr) -> SipHasher13 {
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
        h
    }
}

/// The key of a response class's bucket, after the client prefix.
fn name_hash(mut h: SipHasher13, class: Class) -> u64 {
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
        rrl_all(rate, 0, slip)
    }

    fn rrl_all(rate: u32, all_rate: u32, slip: u8) -> Rrl {
        Rrl::new(
            Limits {
                rate,
                all_rate,
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
        count_as(r, ip, n, Class::Answer(b"\x03sip\x00", 1), false)
    }

    fn count_as(r: &Rrl, ip: &str, n: usize, class: Class, cookie: bool) -> [usize; 3] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut c = [0; 3];
        for _ in 0..n {
            match r.check(ip, class, cookie).verdict {
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
            assert_eq!(
                r.check(ip, class, false).verdict,
                Verdict::Send,
                "{class:?}"
            );
            assert_eq!(
                r.check(ip, class, false).verdict,
                Verdict::Drop,
                "{class:?}"
            );
        }
    }

    #[test]
    fn the_prefix_budget_spans_names_and_slips_like_a_name() {
        let r = rrl_all(5, 8, 2);
        let names: [&[u8]; 4] = [b"\x01a\x00", b"\x01b\x00", b"\x01c\x00", b"\x01d\x00"];
        // Round-robin over four names: each may send 5, the prefix only 8 in all; the
        // excess slips every second response, counted on the prefix's bucket.
        let mut got = [0; 3];
        for _ in 0..5 {
            for n in names {
                let c = count_as(&r, "192.0.2.1", 1, Class::Answer(n, 1), false);
                (0..3).for_each(|i| got[i] += c[i]);
            }
        }
        assert_eq!(got, [8, 6, 6]);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let d = r.check(ip, Class::Answer(b"\x01e\x00", 1), false);
        assert!(d.by_prefix && d.verdict != Verdict::Send, "{d:?}");
        // Another prefix has its own budget.
        assert_eq!(
            count_as(&r, "192.0.3.1", 5, Class::NxDomain(0), false),
            [5, 0, 0]
        );
    }

    #[test]
    fn a_name_flood_spends_only_what_its_bucket_lets_through() {
        let r = rrl_all(3, 5, 0);
        let ip = "2001:db8::1";
        assert_eq!(count(&r, ip, 20), [3, 0, 17]);
        // 3 of the prefix's 5 are spent: two more names get one answer each.
        assert_eq!(count_as(&r, ip, 1, Class::NoData(0), false), [1, 0, 0]);
        assert_eq!(count_as(&r, ip, 1, Class::Error, false), [1, 0, 0]);
        assert_eq!(count_as(&r, ip, 1, Class::NxDomain(0), false), [0, 0, 1]);
    }

    #[test]
    fn cookie_slips_go_out_at_most_every_second_excess_response() {
        // slip 1: every excess response slips, unless a slip would be BADCOOKIE.
        assert_eq!(count(&rrl(2, 1), "192.0.2.1", 10), [2, 8, 0]);
        let c = Class::Answer(b"\x03sip\x00", 1);
        assert_eq!(count_as(&rrl(2, 1), "192.0.2.1", 10, c, true), [2, 4, 4]);
        assert_eq!(count_as(&rrl(2, 3), "192.0.2.1", 11, c, true), [2, 3, 6]);
        assert_eq!(count_as(&rrl(2, 0), "192.0.2.1", 10, c, true), [2, 0, 8]);
        assert_eq!(
            count_as(&rrl_all(50, 2, 1), "192.0.2.1", 10, c, true),
            [2, 4, 4]
        );
    }
}
