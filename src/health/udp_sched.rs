//! The pure parts of the SIP-over-UDP scheduler: time in common ticks counted from an origin
//! on the tick grid ([`Ticks`]), the queue of what becomes due at which tick ([`Due`]: a
//! binary heap, earliest first, ties in the order pushed), and the jitter of a target's
//! probes (the first at a random point of the interval, later ones ±10 %).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::monitor::{TICK, on_tick};

/// Time as whole ticks after an origin that lies on the common tick grid.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticks {
    origin: tokio::time::Instant,
}

impl Ticks {
    /// Ticks counted from the next tick of the grid.
    pub(super) fn start() -> Ticks {
        Ticks {
            origin: on_tick(Duration::ZERO),
        }
    }

    /// A grid of ticks from `origin` (tests).
    #[cfg(test)]
    pub(super) fn at(origin: tokio::time::Instant) -> Ticks {
        Ticks { origin }
    }

    /// The tick `now` is in: every tick up to it has begun.
    pub(super) fn now(&self, now: tokio::time::Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        (since.as_nanos() / TICK.as_nanos()) as u64
    }

    /// The first tick at or after `after` from `now`.
    pub(super) fn after(&self, now: tokio::time::Instant, after: Duration) -> u64 {
        let since = (now + after)
            .saturating_duration_since(self.origin)
            .as_nanos();
        since.div_ceil(TICK.as_nanos()) as u64
    }

    /// When tick `t` begins.
    pub(super) fn instant(&self, t: u64) -> tokio::time::Instant {
        let nanos = u128::from(t) * TICK.as_nanos();
        self.origin + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// What becomes due when: keys (the scheduler's names of targets and transactions) by tick,
/// earliest first; keys due in the same tick come out in the order they were pushed.
pub(super) struct Due<K> {
    heap: BinaryHeap<Reverse<(u64, u64, K)>>,
    /// Pushes so far, to order the keys of one tick.
    seq: u64,
}

impl<K: Ord> Default for Due<K> {
    fn default() -> Self {
        Due {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<K: Ord + Copy> Due<K> {
    pub(super) fn push(&mut self, tick: u64, key: K) {
        self.seq += 1;
        self.heap.push(Reverse((tick, self.seq, key)));
    }

    /// The next key due at or before tick `now`.
    pub(super) fn pop_due(&mut self, now: u64) -> Option<K> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e.2),
            _ => None,
        }
    }

    /// The earliest tick anything is due at.
    pub(super) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(e)| e.0)
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps the keys `keep` says are still wanted (for a queue grown with stale keys).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(K) -> bool) {
        self.heap.retain(|Reverse(e)| keep(e.2));
    }
}

/// When a new target's first probe starts: `r` (0..1) of the way into its interval, so the
/// probes of targets added together spread over the interval.
pub(super) fn first_delay(interval: Duration, r: f64) -> Duration {
    interval.mul_f64(r.clamp(0.0, 1.0))
}

/// The factor (0.9..=1.1) a steady interval is scaled by, from `r` (0..1).
pub(super) fn jitter(r: f64) -> f64 {
    0.9 + 0.2 * r.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_by_tick_then_in_push_order_and_only_when_due() {
        let mut d = Due::<u64>::default();
        for (tick, key) in [(5, 50), (2, 20), (5, 51), (9, 90), (2, 21), (0, 1)] {
            d.push(tick, key);
        }
        assert_eq!(d.next(), Some(0));
        let mut out = Vec::new();
        while let Some(k) = d.pop_due(5) {
            out.push(k);
        }
        assert_eq!(out, [1, 20, 21, 50, 51]);
        assert_eq!(d.pop_due(8), None, "90 is due at 9");
        assert_eq!(d.next(), Some(9));
        assert_eq!(d.pop_due(9), Some(90));
        assert_eq!((d.pop_due(u64::MAX), d.next(), d.len()), (None, None, 0));
    }

    #[test]
    fn stale_keys_are_dropped_on_retain() {
        let mut d = Due::<u64>::default();
        for k in 0..10 {
            d.push(k % 3, k);
        }
        d.retain(|k| k % 2 == 0);
        let mut out = Vec::new();
        while let Some(k) = d.pop_due(10) {
            out.push(k);
        }
        assert_eq!(out, [0, 6, 4, 2, 8]);
    }

    #[test]
    fn ticks_round_up_to_the_grid() {
        let o = tokio::time::Instant::now();
        let t = Ticks::at(o);
        let ms = Duration::from_millis;
        assert_eq!(t.now(o), 0);
        assert_eq!(t.now(o + ms(9)), 0);
        assert_eq!(t.now(o + ms(10)), 1);
        assert_eq!(t.after(o, Duration::ZERO), 0);
        assert_eq!(t.after(o, ms(1)), 1);
        assert_eq!(t.after(o + ms(3), ms(500)), 51);
        assert_eq!(t.after(o + ms(3), ms(497)), 50);
        assert_eq!(t.instant(51), o + ms(510));
        assert_eq!(
            t.now(t.instant(51)),
            51,
            "a wake at a tick's start is in it"
        );
    }

    #[test]
    fn first_probes_spread_over_the_interval_and_jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(5);
        assert_eq!(first_delay(i, 0.0), Duration::ZERO);
        assert_eq!(first_delay(i, 0.5), Duration::from_millis(2500));
        assert!(first_delay(i, 0.999_999) < i);
        assert_eq!(first_delay(i, 7.0), i, "clamped");
        assert!((jitter(0.0) - 0.9).abs() < 1e-12);
        assert!((jitter(1.0) - 1.1).abs() < 1e-12);
        for _ in 0..10_000 {
            let j = jitter(rand::random::<f64>());
            assert!((0.9..=1.1).contains(&j), "{j}");
            let f = first_delay(i, rand::random::<f64>());
            assert!(f <= i, "{f:?}");
        }
    }
}
