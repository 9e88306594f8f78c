//! The pure parts of the probe engine's schedule: time in common ticks counted from an origin
//! on the tick grid ([`Ticks`]), and the queue of what becomes due at which tick ([`Due`]: a
//! timing wheel, earliest first, ties in the order pushed).

use std::time::Duration;

use crate::health::vocab::{TICK, on_tick};

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

/// Ticks one turn of the wheel spans (10.24 s at 10 ms); a key due further ahead waits in
/// its slot for as many turns as it takes.
const SLOTS: usize = 1024;

/// What becomes due when: keys (the scheduler's names of targets and transactions) in a
/// timing wheel of one slot per tick, so adding and taking a key cost the same for 10 or
/// 100,000 targets. Keys due in the same tick come out in the order they were pushed; a key
/// pushed for a tick already taken is due at the next one.
pub(super) struct Due<K> {
    slots: Vec<Vec<(u64, K)>>,
    /// The first tick not taken yet.
    cursor: u64,
    len: usize,
}

impl<K> Default for Due<K> {
    fn default() -> Self {
        Due {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            cursor: 0,
            len: 0,
        }
    }
}

impl<K: Copy> Due<K> {
    pub(super) fn push(&mut self, tick: u64, key: K) {
        let tick = tick.max(self.cursor);
        self.slots[(tick % SLOTS as u64) as usize].push((tick, key));
        self.len += 1;
    }

    /// Appends the keys due at or before tick `now` to `out`, by tick, then in push order.
    pub(super) fn take_due(&mut self, now: u64, out: &mut Vec<K>) {
        if now < self.cursor {
            return;
        }
        // After a long sleep, one turn visits every slot.
        let from = self.cursor.max(now.saturating_sub(SLOTS as u64 - 1));
        let before = out.len();
        for t in from..=now {
            self.slots[(t % SLOTS as u64) as usize].retain(|&(tick, key)| {
                let due = tick <= now;
                if due {
                    out.push(key);
                }
                !due
            });
        }
        self.len -= out.len() - before;
        self.cursor = now + 1;
    }

    /// The earliest tick a key is due at.
    pub(super) fn next(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        for t in self.cursor..self.cursor + SLOTS as u64 {
            let slot = &self.slots[(t % SLOTS as u64) as usize];
            if slot.iter().any(|&(tick, _)| tick == t) {
                return Some(t);
            }
        }
        self.slots.iter().flatten().map(|&(tick, _)| tick).min()
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keeps the keys `keep` says are still wanted (for a wheel grown with stale keys).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(K) -> bool) {
        for slot in &mut self.slots {
            slot.retain(|&(_, k)| keep(k));
        }
        self.len = self.slots.iter().map(Vec::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(d: &mut Due<u64>, now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        d.take_due(now, &mut out);
        out
    }

    #[test]
    fn keys_come_out_by_tick_then_in_push_order_and_only_when_due() {
        let mut d = Due::<u64>::default();
        for (tick, key) in [(5, 50), (2, 20), (5, 51), (9, 90), (2, 21), (0, 1)] {
            d.push(tick, key);
        }
        assert_eq!((d.next(), d.len()), (Some(0), 6));
        assert_eq!(take(&mut d, 5), [1, 20, 21, 50, 51]);
        assert_eq!(take(&mut d, 8), [0u64; 0], "90 is due at 9");
        assert_eq!(d.next(), Some(9));
        d.push(3, 30);
        assert_eq!(
            d.next(),
            Some(9),
            "a tick already taken: due at the next one"
        );
        assert_eq!(take(&mut d, 9), [90, 30], "in push order");
        assert_eq!((take(&mut d, 100), d.next(), d.len()), (vec![], None, 0));
    }

    #[test]
    fn keys_many_turns_ahead_wait_their_turn() {
        let turn = SLOTS as u64;
        let mut d = Due::<u64>::default();
        d.push(3 * turn + 7, 1);
        d.push(7, 2);
        d.push(turn + 7, 3);
        assert_eq!(d.next(), Some(7));
        assert_eq!(take(&mut d, 7), [2]);
        assert_eq!(d.next(), Some(turn + 7));
        assert_eq!(take(&mut d, 2 * turn), [3]);
        assert_eq!(d.next(), Some(3 * turn + 7), "found beyond one turn");
        // A sleep of many turns: one pass over the wheel finds it.
        assert_eq!(take(&mut d, 10 * turn), [1]);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn stale_keys_are_dropped_on_retain() {
        let mut d = Due::<u64>::default();
        for k in 0..10 {
            d.push(k % 3, k);
        }
        d.retain(|k| k % 2 == 0);
        assert_eq!(d.len(), 5);
        assert_eq!(take(&mut d, 10), [0, 6, 4, 2, 8]);
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
}
