//! What the hub keeps of a TLS-checked server's certificate: its notAfter (from the latest
//! check that read one), the latest TLS failure, and which warning threshold (30, 14, 7 days,
//! expired) it has crossed, so each crossing is logged once.

use crate::health::vocab::{TlsFailure, TlsSeen};

/// Days before notAfter at which a warning is logged, in the order they are crossed.
pub(super) const WARN_DAYS: [i64; 3] = [30, 14, 7];

const DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CertState {
    /// Unix seconds.
    pub not_after: Option<i64>,
    /// Why the latest TLS check failed, `None` once one passed.
    pub failure: Option<TlsFailure>,
    /// Thresholds crossed: 0 = more than 30 days left, 1..=3 = within 30/14/7, 4 = expired.
    band: u8,
}

/// The band of `left` seconds before notAfter.
fn band(left: i64) -> u8 {
    if left <= 0 {
        return 4;
    }
    WARN_DAYS.iter().filter(|d| left <= *d * DAY).count() as u8
}

/// Whole days left (rounded down; negative once expired).
pub(super) fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(DAY)
}

impl CertState {
    /// Takes what a TLS check saw at `now` (Unix seconds); the warning to log when the
    /// certificate crossed a threshold since the last one (`None` otherwise, or when it was
    /// renewed).
    pub(super) fn observe(&mut self, seen: &TlsSeen, now: i64) -> Option<String> {
        self.failure = seen.failure;
        let not_after = seen.not_after?;
        self.not_after = Some(not_after);
        let b = band(not_after - now);
        let crossed = b > self.band;
        self.band = b;
        if !crossed {
            return None;
        }
        let days = days_left(not_after, now);
        Some(match b {
            4 => format!("tls certificate expired {} days ago", -days),
            _ => format!(
                "tls certificate expires in {days} days (within {} days)",
                WARN_DAYS[usize::from(b) - 1]
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(not_after: i64) -> TlsSeen {
        TlsSeen {
            not_after: Some(not_after),
            failure: None,
        }
    }

    #[test]
    fn each_threshold_warns_once_and_a_renewal_rearms_them() {
        let mut c = CertState::default();
        let now = 1_000_000_000;
        assert_eq!(c.observe(&seen(now + 40 * DAY), now), None);
        assert_eq!(
            c.observe(&seen(now + 30 * DAY), now).as_deref(),
            Some("tls certificate expires in 30 days (within 30 days)")
        );
        assert_eq!(c.observe(&seen(now + 20 * DAY), now), None);
        assert_eq!(
            c.observe(&seen(now + 3 * DAY + 5), now).as_deref(),
            Some("tls certificate expires in 3 days (within 7 days)")
        );
        assert_eq!(c.observe(&seen(now + 2 * DAY), now), None);
        assert_eq!(
            c.observe(&seen(now - DAY - 1), now).as_deref(),
            Some("tls certificate expired 2 days ago")
        );
        assert_eq!(c.observe(&seen(now - 5 * DAY), now), None);
        // Renewed: nothing logged, and the next crossing warns again.
        assert_eq!(c.observe(&seen(now + 90 * DAY), now), None);
        assert!(c.observe(&seen(now + 10 * DAY), now).is_some());
        assert_eq!(c.not_after, Some(now + 10 * DAY));
    }

    #[test]
    fn days_left_round_down() {
        assert_eq!(days_left(DAY * 3 - 1, 0), 2);
        assert_eq!(days_left(-1, 0), -1);
        assert_eq!(days_left(0, 0), 0);
    }
}
