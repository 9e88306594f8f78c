//! The per-server probe metrics, registered once per server (at the reload that adds it) and
//! kept across reloads, so a probe result costs a few atomic adds, not a registry lookup.

use crate::health::vocab::Outcome;

pub(super) struct Meters {
    up: metrics::Counter,
    full: metrics::Counter,
    down: metrics::Counter,
    rtt: metrics::Histogram,
}

impl Meters {
    /// The meters of `region/server`.
    pub(super) fn new(region: &str, server: &str, t: &crate::telemetry::Telemetry) -> Meters {
        let name = format!("{region}/{server}");
        let count = |result: &'static str| {
            t.counter(
                "sipsteer_probes_total",
                &[("server", &name), ("result", result)],
            )
        };
        // Present from the start (0), like the probe counters.
        t.counter("sipsteer_suspect_total", &[("server", &name)])
            .increment(0);
        Meters {
            up: count("up"),
            full: count("full"),
            down: count("down"),
            rtt: t.histogram("sipsteer_probe_rtt_seconds", &[("server", &name)]),
        }
    }

    /// Counts one probe result (and its round trip when the server answered).
    pub(super) fn record(&self, outcome: Outcome, rtt: std::time::Duration) {
        match outcome {
            Outcome::Up => self.up.increment(1),
            Outcome::Full => self.full.increment(1),
            Outcome::Down => self.down.increment(1),
        }
        if outcome != Outcome::Down {
            self.rtt.record(rtt.as_secs_f64());
        }
    }
}
