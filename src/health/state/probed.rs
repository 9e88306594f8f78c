//! What the probes alone say of a server: its observed state and current streaks, with the
//! anti-flap thresholds, and from them when the next probe comes. Small and `Copy`: the
//! scheduler keeps one per target to pick its next probe; the hub's
//! [`super::ServerHealth`] wraps one with everything else it tracks.

use std::time::Duration;

use super::{Cadence, Observed, Thresholds};
use crate::health::vocab::Outcome;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Probed {
    thresholds: Thresholds,
    pub(super) observed: Observed,
    /// The outcome of the current streak and its length.
    streak: (Outcome, u32),
    /// Consecutive results that were not up (down and full alike).
    failing: u32,
}

impl Probed {
    pub(crate) fn new(thresholds: Thresholds) -> Probed {
        Probed {
            thresholds,
            observed: Observed::Unknown,
            streak: (Outcome::Up, 0),
            failing: 0,
        }
    }

    /// Counts a probe's outcome; returns the observed flip (old, new) if there was one.
    pub(crate) fn apply(&mut self, outcome: Outcome) -> Option<(Observed, Observed)> {
        self.streak = if self.streak.0 == outcome {
            (outcome, self.streak.1.saturating_add(1))
        } else {
            (outcome, 1)
        };
        self.failing = match outcome {
            Outcome::Up => 0,
            _ => self.failing.saturating_add(1),
        };
        let target = match outcome {
            Outcome::Up => Observed::Up,
            Outcome::Full => Observed::Full,
            Outcome::Down => Observed::Down,
        };
        if target == self.observed {
            return None;
        }
        let (needed, have) = match (self.observed, target) {
            (Observed::Unknown, _) => (1, self.streak.1),
            // Leaving up: `fall` failures in a row, down and full alike; the last one decides.
            (Observed::Up, _) => (self.thresholds.fall, self.failing),
            // A full server going down: the fall threshold.
            (Observed::Full, Observed::Down) => (self.thresholds.fall, self.streak.1),
            // Coming back (to up, or to alive-but-full): the rise threshold.
            _ => (self.thresholds.rise, self.streak.1),
        };
        if have < needed {
            return None;
        }
        let old = self.observed;
        self.observed = target;
        Some((old, target))
    }

    /// Up as far as the probes tell, but the latest probes failed (fewer than `fall`).
    pub(crate) fn suspect(&self) -> bool {
        self.observed == Observed::Up && self.failing > 0
    }

    /// When the next probe starts (after one that took `took` ended) and its timeout. Steady:
    /// the interval scaled by `jitter` (0.9..=1.1). Suspect: at most one probe per suspect
    /// interval, start to start, so a probe that timed out is followed at once.
    pub(crate) fn next_probe(
        &self,
        c: &Cadence,
        took: Duration,
        jitter: f64,
    ) -> (Duration, Duration) {
        if self.suspect() {
            (c.suspect_interval.saturating_sub(took), c.suspect_timeout)
        } else {
            (c.interval.mul_f64(jitter), c.timeout)
        }
    }
}
