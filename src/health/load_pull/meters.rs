//! The puller's series, made once when the puller starts: queries by result, replies
//! refused by the limit they crossed, values refused by reason, the last successful round.

use metrics::{Counter, Gauge};

use super::reply::Reason;
use crate::telemetry::Telemetry;

/// The limits a refused reply is counted under (`PullError::over_limit`).
const LIMITS: [&str; 4] = ["bytes", "series", "token", "depth"];

pub(super) struct Meters {
    pub(super) ok: Counter,
    pub(super) error: Counter,
    /// By [`LIMITS`].
    refused: [Counter; 4],
    /// By [`Reason::ALL`].
    pub(super) rejected: [Counter; 4],
    pub(super) last_success: Gauge,
}

impl Meters {
    pub(super) fn new(t: &Telemetry) -> Meters {
        let queries = |r| t.counter("sipsteer_load_queries_total", &[("result", r)]);
        Meters {
            ok: queries("ok"),
            error: queries("error"),
            refused: LIMITS
                .map(|l| t.counter("sipsteer_load_replies_refused_total", &[("limit", l)])),
            rejected: Reason::ALL.map(|r| {
                t.counter(
                    "sipsteer_load_values_rejected_total",
                    &[("reason", r.as_str())],
                )
            }),
            last_success: t.gauge("sipsteer_load_last_success_timestamp_seconds", &[]),
        }
    }

    /// The counter of replies refused for crossing `limit`.
    pub(super) fn refused(&self, limit: &str) -> Option<&Counter> {
        let i = LIMITS.iter().position(|l| *l == limit)?;
        self.refused.get(i)
    }
}
