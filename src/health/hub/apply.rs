//! Probe results applied to the hub: each to the servers that share its target, counted,
//! logged when a server turns suspect or flips (or its certificate crosses a warning
//! threshold), and published once per batch.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{HealthHub, Inner, now, unix_now};
use crate::events::Kind;
use crate::health::vocab::{ProbeResult, Target};
use crate::lock::guard;

impl HealthHub {
    /// Applies probe results; publishes once if any changed a server's state.
    pub(super) fn apply_all<'a>(
        &self,
        results: impl IntoIterator<Item = &'a (Target, ProbeResult)>,
    ) {
        let now = now();
        let mut guard = guard(&self.inner);
        let inner = &mut *guard;
        let mut changed = false;
        for (t, res) in results {
            changed |= self.apply_one(inner, t, res, now);
        }
        self.ready
            .store(inner.pending.is_empty(), Ordering::Release);
        if changed {
            self.publish(inner, now);
        }
    }

    /// Applies one probe result; whether it changed a server's state.
    fn apply_one(&self, inner: &mut Inner, t: &Target, res: &ProbeResult, now: Instant) -> bool {
        if !inner.pending.is_empty() {
            inner.pending.remove(t);
        }
        let Some(slots) = inner.by_target.get(t) else {
            return false;
        };
        let mut changed = false;
        for &i in slots.as_slice() {
            let Some(e) = inner.entries.get_mut(i) else {
                continue;
            };
            e.meters.record(res.outcome, res.rtt);
            if let Some(seen) = &res.tls {
                e.meters.tls(seen.failure, &self.telemetry);
                if let Some(warning) = e.cert.observe(seen, unix_now()) {
                    let name = format!("{}/{}", e.region, e.server);
                    tracing::warn!(server = %name, "{warning}");
                }
            }
            let was_suspect = e.health.suspect();
            let flip = e.health.apply(res, now);
            if e.health.suspect() == was_suspect && flip.is_none() {
                continue;
            }
            let name = format!("{}/{}", e.region, e.server);
            if e.health.suspect() != was_suspect {
                if !was_suspect {
                    tracing::info!(server = %name, detail = %res.detail, "server suspect");
                    e.meters.suspect();
                }
                changed = true;
            }
            if let Some((from, to)) = flip {
                tracing::info!(server = %name, from = ?from, to = ?to, detail = %res.detail, "server state changed");
                self.events.record(
                    Kind::Flip,
                    name,
                    format!("{} → {}: {}", from.as_str(), to.as_str(), res.detail),
                );
                e.meters.flip(to, &self.telemetry);
                changed = true;
            }
        }
        changed
    }
}
