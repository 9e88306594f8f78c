//! The gauges `/metrics` reads at scrape time: servers per state, suspect servers, healthy
//! servers per region, whether each server is answered on each transport (health per
//! transport), probe targets, when the scheduler last started a probe and each TLS
//! certificate's time left; and the hub's one counter of its own (state file write errors). Every handle is made once: the
//! hub's with the hub, a region's with the meters of each of its servers.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge};

use super::{HealthHub, now};
use crate::config::Transport;
use crate::lock::guard;
use crate::steering::Status;
use crate::telemetry::Telemetry;

/// The states `sipsteer_servers` counts, in the order of [`Gauges::servers`].
const STATES: [Status; 5] = [
    Status::Up,
    Status::Down,
    Status::Full,
    Status::Drained,
    Status::Unknown,
];

/// The hub's own series.
pub(super) struct Gauges {
    /// `sipsteer_servers{state}`, by [`STATES`].
    servers: [Gauge; 5],
    suspect: Gauge,
    probe_targets: Gauge,
    last_tick: Gauge,
    pub(super) state_file_errors: Counter,
}

impl Gauges {
    pub(super) fn new(t: &Telemetry) -> Gauges {
        Gauges {
            servers: STATES.map(|s| t.gauge("sipsteer_servers", &[("state", s.as_str())])),
            suspect: t.gauge("sipsteer_servers_suspect", &[]),
            probe_targets: t.gauge("sipsteer_probe_targets", &[]),
            last_tick: t.gauge("sipsteer_probe_last_tick_timestamp_seconds", &[]),
            state_file_errors: t.counter("sipsteer_state_file_errors_total", &[]),
        }
    }
}

impl HealthHub {
    /// Sets the gauges read at scrape time.
    pub fn export_gauges(&self) {
        let g = &self.gauges;
        let inner = guard(&self.inner);
        let now = now();
        let mut counts = [0.0f64; 5];
        let mut healthy: BTreeMap<&str, (f64, &Gauge)> = BTreeMap::new();
        for e in &inner.entries {
            let (state, not_on) = e.status(now, inner.overflow_at, inner.report_ttl);
            if e.per_transport() {
                for (mask, _, _, _) in e.lanes() {
                    for t in Transport::in_mask(mask) {
                        let up = state.serves() && not_on & t.bit() == 0;
                        e.meters.transport_up(t, up, &self.telemetry);
                    }
                }
            }
            let region = healthy
                .entry(e.region.as_str())
                .or_insert((0.0, e.meters.region_healthy()));
            region.0 += f64::from(u8::from(state.serves()));
            if let Some(i) = STATES.iter().position(|s| *s == state) {
                counts[i] += 1.0;
            }
        }
        let unix = super::unix_now();
        for e in &inner.entries {
            if let Some(not_after) = e.cert.not_after {
                e.meters.cert_expiry(not_after - unix, &self.telemetry);
            }
        }
        for (gauge, v) in g.servers.iter().zip(counts) {
            gauge.set(v);
        }
        let suspect = inner.entries.iter().filter(|e| e.suspect()).count();
        g.suspect.set(suspect as f64);
        for (v, gauge) in healthy.into_values() {
            gauge.set(v);
        }
        g.probe_targets.set(self.monitor.targets() as f64);
        // Before the first probe (or with nothing to probe): the time the scheduler started.
        let tick = self.monitor.last_tick().unwrap_or(self.monitor.started());
        let age = now.saturating_duration_since(tick);
        let at = SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH);
        g.last_tick.set(
            at.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
    }
}
