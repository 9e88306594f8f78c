//! A round of load pulled from Prometheus recorded under one lock and published once, so a
//! round costs one health view whatever the number of servers.

use super::{HealthHub, now};
use crate::lock::guard;

impl HealthHub {
    /// Records one round of loads as `(region, server, calls, cps)`; servers that are gone or
    /// declare no capacity are skipped. Publishes once if any was recorded; returns how many.
    pub(crate) fn load_round<'a>(
        &self,
        reports: impl IntoIterator<Item = (&'a str, &'a str, Option<u32>, Option<u32>)>,
    ) -> usize {
        let now = now();
        let mut guard = guard(&self.inner);
        let inner = &mut *guard;
        let mut key = (String::new(), String::new());
        let mut recorded = 0;
        for (region, server, calls, cps) in reports {
            key.0.clear();
            key.0.push_str(region);
            key.1.clear();
            key.1.push_str(server);
            let Some(&slot) = inner.by_name.get(&key) else {
                continue;
            };
            let Some(e) = inner.entries.get_mut(slot) else {
                continue;
            };
            if e.identity.capacity.is_some() {
                e.health.report_load(calls, cps, now);
                recorded += 1;
            }
        }
        let pending = if recorded > 0 {
            self.pending(inner, now)
        } else {
            None
        };
        drop(guard);
        self.publish(pending);
        recorded
    }
}
