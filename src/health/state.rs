//! The health state machine of one server: pure, values in and out, time passed in.
//!
//! Observed state follows probe results with anti-flap thresholds: from the first result it
//! takes `fall` consecutive failures (or 503s) to leave `up`, and `rise` consecutive successes
//! to come back. An operator's forced state is kept apart and wins. Load reports, while
//! fresh, make a server `full` at `overflow_at` of its capacity.

use std::time::{Duration, Instant};

use super::probe::{Outcome, ProbeResult};

/// What steering sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unknown,
    Up,
    Down,
    Full,
    Drained,
}

impl State {
    /// Up and Unknown serve; Full, Down and Drained don't.
    pub fn serves(self) -> bool {
        matches!(self, State::Up | State::Unknown)
    }
}

/// What the probes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Unknown,
    Up,
    Down,
    Full,
}

/// What an operator said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    Drained,
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub rise: u32,
    pub fall: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub calls: Option<u32>,
    pub cps: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub calls: Option<u32>,
    pub cps: Option<u32>,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct ServerHealth {
    thresholds: Thresholds,
    capacity: Option<Capacity>,
    observed: Observed,
    /// The outcome of the current streak and its length.
    streak: (Outcome, u32),
    forced: Option<Forced>,
    load: Option<Load>,
    last: Option<ProbeResult>,
    since: Instant,
}

impl ServerHealth {
    pub fn new(thresholds: Thresholds, capacity: Option<Capacity>, now: Instant) -> ServerHealth {
        ServerHealth {
            thresholds,
            capacity,
            observed: Observed::Unknown,
            streak: (Outcome::Up, 0),
            forced: None,
            load: None,
            last: None,
            since: now,
        }
    }

    /// Applies a probe result; returns the observed flip (old, new) if there was one.
    pub fn apply(&mut self, r: &ProbeResult, now: Instant) -> Option<(Observed, Observed)> {
        self.streak = if self.streak.0 == r.outcome {
            (r.outcome, self.streak.1.saturating_add(1))
        } else {
            (r.outcome, 1)
        };
        self.last = Some(r.clone());
        let target = match r.outcome {
            Outcome::Up => Observed::Up,
            Outcome::Full => Observed::Full,
            Outcome::Down => Observed::Down,
        };
        if target == self.observed {
            return None;
        }
        let needed = match (self.observed, target) {
            (Observed::Unknown, _) => 1,
            // Leaving up for full or down, or a full server going down: the fall threshold.
            (Observed::Up, _) | (Observed::Full, Observed::Down) => self.thresholds.fall,
            // Coming back (to up, or to alive-but-full): the rise threshold.
            _ => self.thresholds.rise,
        };
        if self.streak.1 < needed {
            return None;
        }
        let old = self.observed;
        self.observed = target;
        self.since = now;
        Some((old, target))
    }

    /// A server that is not probed: observed up from now on (until forced otherwise).
    pub fn assume_up(&mut self, now: Instant) {
        if self.observed != Observed::Up {
            self.observed = Observed::Up;
            self.since = now;
        }
    }

    pub fn set_forced(&mut self, f: Option<Forced>, now: Instant) {
        if self.forced != f {
            self.forced = f;
            self.since = now;
        }
    }

    pub fn report_load(&mut self, calls: Option<u32>, cps: Option<u32>, now: Instant) {
        self.load = Some(Load {
            calls,
            cps,
            at: now,
        });
    }

    /// The fraction of capacity in use, from a fresh report.
    fn load_fraction(&self, now: Instant, ttl: Duration) -> Option<f64> {
        let (cap, load) = (self.capacity?, self.load?);
        if now.saturating_duration_since(load.at) > ttl {
            return None;
        }
        let frac = |used: Option<u32>, limit: Option<u32>| match (used, limit) {
            (Some(u), Some(l)) if l > 0 => Some(u as f64 / l as f64),
            _ => None,
        };
        match (frac(load.calls, cap.calls), frac(load.cps, cap.cps)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The state steering uses.
    pub fn effective(&self, now: Instant, overflow_at: f64, report_ttl: Duration) -> State {
        match self.forced {
            Some(Forced::Drained) => return State::Drained,
            Some(Forced::Up) => return State::Up,
            Some(Forced::Down) => return State::Down,
            None => {}
        }
        match self.observed {
            Observed::Down => State::Down,
            Observed::Full => State::Full,
            _ if self
                .load_fraction(now, report_ttl)
                .is_some_and(|f| f >= overflow_at) =>
            {
                State::Full
            }
            Observed::Up => State::Up,
            Observed::Unknown => State::Unknown,
        }
    }

    /// Capacity left (0..=1) while a fresh load report exists.
    pub fn headroom(&self, now: Instant, report_ttl: Duration) -> Option<f64> {
        self.load_fraction(now, report_ttl)
            .map(|f| (1.0 - f).clamp(0.0, 1.0))
    }

    pub fn observed(&self) -> Observed {
        self.observed
    }
    pub fn forced(&self) -> Option<Forced> {
        self.forced
    }
    pub fn last(&self) -> Option<&ProbeResult> {
        self.last.as_ref()
    }
    pub fn load(&self) -> Option<&Load> {
        self.load.as_ref()
    }
    /// When the observed or forced state last changed.
    pub fn since(&self) -> Instant {
        self.since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    fn res(o: Outcome) -> ProbeResult {
        ProbeResult {
            outcome: o,
            code: None,
            rtt: Duration::from_millis(1),
            detail: String::new(),
        }
    }

    fn run(h: &mut ServerHealth, seq: &[Outcome], t0: Instant) -> Vec<Observed> {
        seq.iter()
            .enumerate()
            .map(|(i, o)| {
                h.apply(&res(*o), t0 + Duration::from_secs(i as u64));
                h.observed()
            })
            .collect()
    }

    fn server(now: Instant) -> ServerHealth {
        ServerHealth::new(
            Thresholds { rise: 2, fall: 3 },
            Some(Capacity {
                calls: Some(1000),
                cps: Some(100),
            }),
            now,
        )
    }

    use Observed as S;
    use Outcome::{Down as D, Full as F, Up as U};

    #[test]
    fn first_result_decides_then_thresholds_apply() {
        let t = Instant::now();
        let mut h = server(t);
        assert_eq!(h.effective(t, 0.8, TTL), State::Unknown);
        assert!(h.effective(t, 0.8, TTL).serves());
        assert_eq!(
            run(&mut h, &[U, D, D, D, U, U], t),
            [S::Up, S::Up, S::Up, S::Down, S::Down, S::Up]
        );
        let mut h = server(t);
        assert_eq!(run(&mut h, &[D], t), [S::Down]);
    }

    #[test]
    fn flapping_never_flips() {
        let t = Instant::now();
        let mut h = server(t);
        run(&mut h, &[U], t);
        let seq: Vec<Outcome> = (0..40).map(|i| if i % 2 == 0 { D } else { U }).collect();
        assert!(run(&mut h, &seq, t).iter().all(|s| *s == S::Up));
        let seq: Vec<Outcome> = (0..40).map(|i| if i % 3 == 2 { U } else { D }).collect();
        assert!(
            run(&mut h, &seq, t).iter().all(|s| *s == S::Up),
            "two failures then a success never reach fall=3"
        );
    }

    #[test]
    fn full_versus_down() {
        let t = Instant::now();
        let mut h = server(t);
        assert_eq!(
            run(&mut h, &[U, F, F, F], t),
            [S::Up, S::Up, S::Up, S::Full]
        );
        assert_eq!(h.effective(t, 0.8, TTL), State::Full);
        assert!(!State::Full.serves());
        assert_eq!(run(&mut h, &[D, D, D], t), [S::Full, S::Full, S::Down]);
        assert_eq!(
            run(&mut h, &[F, F], t),
            [S::Down, S::Full],
            "alive again but overloaded"
        );
        assert_eq!(run(&mut h, &[U, U], t), [S::Full, S::Up]);
    }

    #[test]
    fn forced_states_win_and_clear() {
        let t = Instant::now();
        let mut h = server(t);
        run(&mut h, &[U], t);
        h.set_forced(Some(Forced::Drained), t);
        assert_eq!(h.effective(t, 0.8, TTL), State::Drained);
        run(&mut h, &[U, U, U], t);
        assert_eq!(
            h.effective(t, 0.8, TTL),
            State::Drained,
            "probes do not undo a drain"
        );
        h.set_forced(Some(Forced::Down), t);
        assert_eq!(h.effective(t, 0.8, TTL), State::Down);
        h.set_forced(None, t);
        assert_eq!(h.effective(t, 0.8, TTL), State::Up);
        run(&mut h, &[D, D, D], t);
        h.set_forced(Some(Forced::Up), t);
        assert_eq!(
            h.effective(t, 0.8, TTL),
            State::Up,
            "forced up over observed down"
        );
        assert_eq!(h.observed(), S::Down, "observed kept apart");
    }

    #[test]
    fn load_over_capacity_is_full_until_it_expires() {
        let t = Instant::now();
        let mut h = server(t);
        run(&mut h, &[U], t);
        h.report_load(Some(500), Some(10), t);
        assert_eq!(h.effective(t, 0.8, TTL), State::Up);
        assert_eq!(h.headroom(t, TTL), Some(0.5));
        h.report_load(Some(100), Some(85), t);
        assert_eq!(
            h.effective(t, 0.8, TTL),
            State::Full,
            "85 cps of 100 is over 0.8"
        );
        assert!((h.headroom(t, TTL).unwrap() - 0.15).abs() < 1e-9);
        let later = t + Duration::from_secs(31);
        assert_eq!(
            h.effective(later, 0.8, TTL),
            State::Up,
            "a stale report no longer counts"
        );
        assert_eq!(h.headroom(later, TTL), None);
        let mut no_cap = ServerHealth::new(Thresholds { rise: 2, fall: 3 }, None, t);
        no_cap.report_load(Some(10_000), None, t);
        assert_eq!(no_cap.effective(t, 0.8, TTL), State::Unknown);
    }
}
