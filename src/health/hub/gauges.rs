//! The gauges `/metrics` reads at scrape time: servers per state, suspect servers, healthy
//! servers per region, probe targets and when the scheduler last started a probe.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{HealthHub, now};
use crate::lock::guard;

impl HealthHub {
    /// Sets the gauges read at scrape time.
    pub fn export_gauges(&self) {
        let t = &self.telemetry;
        let inner = guard(&self.inner);
        let now = now();
        let mut counts: BTreeMap<&'static str, f64> = ["up", "down", "full", "drained", "unknown"]
            .into_iter()
            .map(|s| (s, 0.0))
            .collect();
        let mut healthy: BTreeMap<&str, f64> = BTreeMap::new();
        for e in &inner.entries {
            let state = e.health.effective(now, inner.overflow_at, inner.report_ttl);
            *healthy.entry(e.region.as_str()).or_default() += f64::from(u8::from(state.serves()));
            *counts.entry(state.as_str()).or_default() += 1.0;
        }
        for (k, v) in counts {
            t.gauge("sipsteer_servers", &[("state", k)]).set(v);
        }
        let suspect = inner.entries.iter().filter(|e| e.health.suspect()).count();
        t.gauge("sipsteer_servers_suspect", &[]).set(suspect as f64);
        for (region, v) in healthy {
            t.gauge("sipsteer_region_healthy_servers", &[("region", region)])
                .set(v);
        }
        t.gauge("sipsteer_probe_targets", &[])
            .set(self.monitor.targets() as f64);
        // Before the first probe (or with nothing to probe): the time the scheduler started.
        let tick = self.monitor.last_tick().unwrap_or(self.monitor.started());
        let age = now.saturating_duration_since(tick);
        let at = SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH);
        t.gauge("sipsteer_probe_last_tick_timestamp_seconds", &[])
            .set(
                at.duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            );
    }
}
