//! The health state machine of one server: pure, values in and out, time passed in.
//!
//! Observed state follows probe results with anti-flap thresholds: from the first result it
//! takes `fall` consecutive failures (or 503s) to leave `up`, and `rise` consecutive successes
//! to come back. An up server with at least one failure in its current streak is *suspect*:
//! its prober re-probes it at the short suspect cadence until the streak reaches `fall` or a
//! success clears it ([`Probed::next_probe`]). An operator's forced state is kept apart
//! and wins. Load reports, while fresh, make a server `full` at `overflow_at` of its capacity.

use std::time::{Duration, Instant};

mod probed;

use super::vocab::{Cadence, ProbeResult, Thresholds};
use crate::config::Capacity;
use crate::config::operator::ForcedState;
use crate::steering::Status;
pub(crate) use probed::Probed;

/// What the probes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    Unknown,
    Up,
    Down,
    Full,
}

impl Observed {
    /// The name in `/v1/servers` and metric labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Observed::Unknown => "unknown",
            Observed::Up => "up",
            Observed::Down => "down",
            Observed::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Load {
    pub calls: Option<u32>,
    pub cps: Option<u32>,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct ServerHealth {
    probed: Probed,
    capacity: Option<Capacity>,
    forced: Option<ForcedState>,
    load: Option<Load>,
    last: Option<ProbeResult>,
    since: Instant,
    /// When the state last changed from a known one (observed or forced).
    changed: Option<Instant>,
}

impl ServerHealth {
    pub(crate) fn new(
        thresholds: Thresholds,
        capacity: Option<Capacity>,
        now: Instant,
    ) -> ServerHealth {
        ServerHealth {
            probed: Probed::new(thresholds),
            capacity,
            forced: None,
            load: None,
            last: None,
            since: now,
            changed: None,
        }
    }

    /// Applies a probe result; returns the observed flip (old, new) if there was one.
    pub(crate) fn apply(&mut self, r: &ProbeResult, now: Instant) -> Option<(Observed, Observed)> {
        match &mut self.last {
            // Reuses the detail's buffer: a result every few seconds allocates nothing here.
            Some(l) => {
                (l.outcome, l.code, l.rtt) = (r.outcome, r.code, r.rtt);
                l.detail.clone_from(&r.detail);
            }
            None => self.last = Some(r.clone()),
        }
        let (old, new) = self.probed.apply(r.outcome)?;
        self.since = now;
        if old != Observed::Unknown {
            self.changed = Some(now);
        }
        Some((old, new))
    }

    /// Up as far as the probes tell, but the latest probes failed (fewer than `fall`).
    pub(crate) fn suspect(&self) -> bool {
        self.probed.suspect()
    }

    /// When the next probe starts and its timeout ([`Probed::next_probe`]).
    #[cfg(test)]
    fn next_probe(&self, c: &Cadence, took: Duration, jitter: f64) -> (Duration, Duration) {
        self.probed.next_probe(c, took, jitter)
    }

    /// Whether the state changed (not counting the first probe result) within `window`.
    pub(crate) fn flipped_within(&self, now: Instant, window: Duration) -> bool {
        self.changed
            .is_some_and(|t| now.saturating_duration_since(t) < window)
    }

    /// A server that is not probed: observed up from now on (until forced otherwise).
    pub(crate) fn assume_up(&mut self, now: Instant) {
        if self.probed.observed != Observed::Up {
            self.probed.observed = Observed::Up;
            self.since = now;
        }
    }

    pub(crate) fn set_forced(&mut self, f: Option<ForcedState>, now: Instant) {
        if self.forced != f {
            self.forced = f;
            self.since = now;
            self.changed = Some(now);
        }
    }

    pub(crate) fn report_load(&mut self, calls: Option<u32>, cps: Option<u32>, now: Instant) {
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
            (Some(u), Some(l)) if l > 0 => Some(f64::from(u) / f64::from(l)),
            _ => None,
        };
        match (frac(load.calls, cap.calls), frac(load.cps, cap.cps)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The state steering uses.
    pub(crate) fn effective(&self, now: Instant, overflow_at: f64, report_ttl: Duration) -> Status {
        self.effective_as(self.probed.observed, now, overflow_at, report_ttl)
    }

    /// The state steering uses while the probes say `observed` (one transport's check).
    pub(crate) fn effective_as(
        &self,
        observed: Observed,
        now: Instant,
        overflow_at: f64,
        report_ttl: Duration,
    ) -> Status {
        match self.forced {
            Some(ForcedState::Drain) => return Status::Drained,
            Some(ForcedState::Up) => return Status::Up,
            Some(ForcedState::Down) => return Status::Down,
            None => {}
        }
        match observed {
            Observed::Down => Status::Down,
            Observed::Full => Status::Full,
            _ if self
                .load_fraction(now, report_ttl)
                .is_some_and(|f| f >= overflow_at) =>
            {
                Status::Full
            }
            Observed::Up => Status::Up,
            Observed::Unknown => Status::Unknown,
        }
    }

    /// The share of clients the server leaves out (0 to 1): from nobody at the first
    /// watermark to everybody at the second, where it is full; `None` while it sheds nobody
    /// (load outside the watermarks, no fresh report, or a state an operator forced).
    pub(crate) fn shed_share(
        &self,
        now: Instant,
        (from, to): (f64, f64),
        report_ttl: Duration,
    ) -> Option<f64> {
        if self.forced.is_some() {
            return None;
        }
        match self.load_fraction(now, report_ttl) {
            Some(f) if f > from && f < to => Some((f - from) / (to - from)),
            _ => None,
        }
    }

    /// [`Self::shed_share`] as a threshold on the shedding hash (0 for none).
    pub(crate) fn shed_threshold(
        &self,
        now: Instant,
        marks: (f64, f64),
        report_ttl: Duration,
    ) -> u64 {
        self.shed_share(now, marks, report_ttl)
            .map_or(0, crate::steering::threshold)
    }

    /// Capacity left (0..=1) while a fresh load report exists.
    pub(crate) fn headroom(&self, now: Instant, report_ttl: Duration) -> Option<f64> {
        self.load_fraction(now, report_ttl)
            .map(|f| (1.0 - f).clamp(0.0, 1.0))
    }

    pub(crate) fn observed(&self) -> Observed {
        self.probed.observed
    }
    pub(crate) fn forced(&self) -> Option<ForcedState> {
        self.forced
    }
    pub(crate) fn last(&self) -> Option<&ProbeResult> {
        self.last.as_ref()
    }
    pub(crate) fn load(&self) -> Option<&Load> {
        self.load.as_ref()
    }
    /// When the observed or forced state last changed.
    pub(crate) fn since(&self) -> Instant {
        self.since
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::vocab::Outcome;

    const TTL: Duration = Duration::from_secs(30);

    fn res(o: Outcome) -> ProbeResult {
        ProbeResult {
            outcome: o,
            code: None,
            rtt: Duration::from_millis(1),
            detail: String::new(),
            tls: None,
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
        assert_eq!(h.effective(t, 0.8, TTL), Status::Unknown);
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
        assert_eq!(h.effective(t, 0.8, TTL), Status::Full);
        assert!(!Status::Full.serves());
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
        h.set_forced(Some(ForcedState::Drain), t);
        assert_eq!(h.effective(t, 0.8, TTL), Status::Drained);
        run(&mut h, &[U, U, U], t);
        assert_eq!(
            h.effective(t, 0.8, TTL),
            Status::Drained,
            "probes do not undo a drain"
        );
        h.set_forced(Some(ForcedState::Down), t);
        assert_eq!(h.effective(t, 0.8, TTL), Status::Down);
        h.set_forced(None, t);
        assert_eq!(h.effective(t, 0.8, TTL), Status::Up);
        run(&mut h, &[D, D, D], t);
        h.set_forced(Some(ForcedState::Up), t);
        assert_eq!(
            h.effective(t, 0.8, TTL),
            Status::Up,
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
        assert_eq!(h.effective(t, 0.8, TTL), Status::Up);
        assert_eq!(h.headroom(t, TTL), Some(0.5));
        h.report_load(Some(100), Some(85), t);
        assert_eq!(
            h.effective(t, 0.8, TTL),
            Status::Full,
            "85 cps of 100 is over 0.8"
        );
        assert!((h.headroom(t, TTL).unwrap() - 0.15).abs() < 1e-9);
        let later = t + Duration::from_secs(31);
        assert_eq!(
            h.effective(later, 0.8, TTL),
            Status::Up,
            "a stale report no longer counts"
        );
        assert_eq!(h.headroom(later, TTL), None);
        let mut no_cap = ServerHealth::new(Thresholds { rise: 2, fall: 3 }, None, t);
        no_cap.report_load(Some(10_000), None, t);
        assert_eq!(no_cap.effective(t, 0.8, TTL), Status::Unknown);
    }

    const CADENCE: Cadence = Cadence {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        suspect_interval: Duration::from_millis(500),
        suspect_timeout: Duration::from_millis(500),
    };

    /// Drives one server through the prober's loop with explicit instants: each step is an
    /// outcome; a failed probe takes its whole timeout, a good one 1 ms. Returns, per step,
    /// the instant its result arrived and the observed state after it.
    fn drive(h: &mut ServerHealth, seq: &[Outcome], t0: Instant) -> Vec<(Duration, Observed)> {
        let mut now = t0;
        let mut timeout = CADENCE.timeout;
        let mut out = Vec::new();
        for o in seq {
            let took = if *o == U {
                Duration::from_millis(1)
            } else {
                timeout
            };
            now += took;
            h.apply(&res(*o), now);
            out.push((now - t0, h.observed()));
            let (wait, next_timeout) = h.next_probe(&CADENCE, took, 1.0);
            now += wait;
            timeout = next_timeout;
        }
        out
    }

    #[test]
    fn one_failure_makes_an_up_server_suspect_and_a_success_clears_it() {
        let t = Instant::now();
        let mut h = server(t);
        run(&mut h, &[U], t);
        assert!(!h.suspect());
        run(&mut h, &[D], t);
        assert!(h.suspect(), "one failure of an up server");
        assert_eq!(h.observed(), S::Up);
        assert_eq!(
            h.next_probe(&CADENCE, Duration::from_millis(100), 1.0),
            (Duration::from_millis(400), CADENCE.suspect_timeout),
            "suspect: the next probe 500 ms after the last one started"
        );
        assert_eq!(
            h.next_probe(&CADENCE, Duration::from_secs(2), 1.0),
            (Duration::ZERO, CADENCE.suspect_timeout),
            "a probe that timed out is followed at once"
        );
        run(&mut h, &[U], t);
        assert!(!h.suspect());
        assert_eq!(
            h.next_probe(&CADENCE, Duration::from_millis(1), 1.1),
            (Duration::from_millis(5500), CADENCE.timeout),
            "back to the steady interval, with its jitter"
        );
        let mut f = server(t);
        run(&mut f, &[U, F], t);
        assert!(f.suspect(), "a 503 makes it suspect too");
    }

    #[test]
    fn silence_confirmed_within_fall_minus_one_suspect_intervals() {
        let t = Instant::now();
        let mut h = server(t);
        let steps = drive(&mut h, &[U, D, D, D], t);
        assert_eq!(steps[0], (Duration::from_millis(1), S::Up));
        // Steady: 5 s later the next probe, which times out after 2 s.
        assert_eq!(steps[1], (Duration::from_millis(7001), S::Up));
        // Then two probes at the suspect timeout, back to back.
        assert_eq!(steps[2], (Duration::from_millis(7501), S::Up));
        assert_eq!(steps[3], (Duration::from_millis(8001), S::Down));
        assert!(!h.suspect(), "a down server is not suspect");
        assert_eq!(
            h.next_probe(&CADENCE, CADENCE.suspect_timeout, 1.0).0,
            CADENCE.interval,
            "down servers are probed at the steady interval"
        );
    }

    #[test]
    fn full_is_confirmed_as_fast_and_mixed_failures_count_together() {
        let t = Instant::now();
        let mut h = server(t);
        let steps = drive(&mut h, &[U, F, F, F], t);
        assert_eq!(steps[3].1, S::Full);
        assert_eq!(steps[3].0 - steps[1].0, Duration::from_secs(1));
        let mut h = server(t);
        assert_eq!(
            run(&mut h, &[U, D, F, D], t),
            [S::Up, S::Up, S::Up, S::Down],
            "three failures in a row, the last one decides"
        );
        let mut h = server(t);
        assert_eq!(run(&mut h, &[U, F, D, F], t)[3], S::Full);
    }

    #[test]
    fn a_lost_probe_then_successes_never_flips_and_recovery_keeps_rise() {
        let t = Instant::now();
        let mut h = server(t);
        let steps = drive(&mut h, &[U, D, U, U, D, D, U, U], t);
        assert!(steps.iter().all(|(_, s)| *s == S::Up));
        assert!(!h.suspect());
        let mut h = server(t);
        let steps = drive(&mut h, &[U, D, D, D, U, U], t);
        assert_eq!(steps[4].1, S::Down, "one success is not enough (rise 2)");
        assert_eq!(steps[5].1, S::Up);
        assert_eq!(
            steps[5].0 - steps[4].0,
            Duration::from_millis(5001),
            "coming back is paced by the steady interval"
        );
    }
}
