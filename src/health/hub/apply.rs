//! Probe results applied to the hub: each to the servers (and the lane of each, the
//! transport it decides when health is per transport) that share its target, counted,
//! logged when a server turns suspect or flips (or its certificate crosses a warning
//! threshold), and published once per batch.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{HealthHub, Inner, now, unix_now};
use crate::config::Transport;
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
        let pending = if changed {
            self.pending(inner, now)
        } else {
            None
        };
        drop(guard);
        self.publish(pending);
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
        for &(i, k) in slots.as_slice() {
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
            // The transport whose health this lane decides, when health is per transport.
            let transport = e
                .per_transport()
                .then(|| Transport::in_mask(e.lane_mask(k)).next())
                .flatten();
            let Some(h) = e.lane_mut(k) else {
                continue;
            };
            let was_suspect = h.suspect();
            let flip = h.apply(res, now);
            let suspect = h.suspect();
            if suspect == was_suspect && flip.is_none() {
                continue;
            }
            let name = format!("{}/{}", e.region, e.server);
            let on = transport.map_or("", Transport::as_str);
            if suspect != was_suspect {
                if !was_suspect {
                    tracing::info!(server = %name, transport = on, detail = %res.detail, "server suspect");
                    e.meters.suspect();
                }
                changed = true;
            }
            if let Some((from, to)) = flip {
                tracing::info!(server = %name, transport = on, from = ?from, to = ?to, detail = %res.detail, "server state changed");
                let what = format!("{} → {}: {}", from.as_str(), to.as_str(), res.detail);
                let message = match transport {
                    Some(t) => format!("{}: {what}", t.as_str()),
                    None => what,
                };
                self.events.record(Kind::Flip, name, message);
                e.meters.flip(to, &self.telemetry);
                if let Some(t) = transport {
                    e.meters.transport_flip(t, to, &self.telemetry);
                }
                changed = true;
            }
        }
        changed
    }
}
