//! The DNSSEC key series an applied reload exports: keys by zone, role and state, each
//! zone's next key event, a ZSK successor that is due and could not be written, and the
//! signatures that could not be made. Series of a zone or key state that went away are set
//! to 0, not left at their last value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge};

use crate::dnssec::KeyState;
use crate::lock::guard;
use crate::routing::Routing;
use crate::telemetry::Telemetry;

pub(super) struct KeyMeters {
    telemetry: Arc<Telemetry>,
    /// `sipsteer_dnssec_signing_failures_total`.
    failures: Counter,
    /// Every per-zone series set so far, by its labels, to zero those that went away.
    zoned: Mutex<BTreeMap<Vec<String>, Gauge>>,
}

impl KeyMeters {
    pub(super) fn new(t: &Arc<Telemetry>) -> KeyMeters {
        let failures = t.counter("sipsteer_dnssec_signing_failures_total", &[]);
        failures.absolute(0);
        KeyMeters {
            telemetry: Arc::clone(t),
            failures,
            zoned: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets every series from the zones `routing` serves.
    pub(super) fn publish(&self, routing: &Routing) {
        self.failures.absolute(crate::dnssec::signing_failures());
        let t = &self.telemetry;
        let mut now: BTreeMap<Vec<String>, (Gauge, f64)> = BTreeMap::new();
        for z in &routing.zones {
            let Some(set) = &z.key_set else { continue };
            let zone = z.origin.to_ascii();
            let zone = zone.trim_end_matches('.');
            let zone = if zone.is_empty() { "." } else { zone };
            let mut roles: Vec<_> = set.status.iter().map(|s| s.role).collect();
            roles.dedup();
            for role in roles {
                for state in KeyState::ALL {
                    let n = set
                        .status
                        .iter()
                        .filter(|s| s.role == role && s.state == state)
                        .count();
                    let labels = [
                        ("zone", zone),
                        ("role", role.as_str()),
                        ("state", state.as_str()),
                    ];
                    let g = t.gauge("sipsteer_dnssec_keys", &labels);
                    now.insert(labels_key("keys", &labels), (g, n as f64));
                }
            }
            let next = set.next_event.unwrap_or(0) as f64;
            let labels = [("zone", zone)];
            let g = t.gauge("sipsteer_dnssec_next_key_event_timestamp_seconds", &labels);
            now.insert(labels_key("next", &labels), (g, next));
            let missing = f64::from(u8::from(set.successor_due.is_some()));
            let g = t.gauge("sipsteer_dnssec_key_successor_missing", &labels);
            now.insert(labels_key("missing", &labels), (g, missing));
        }
        let mut zoned = guard(&self.zoned);
        for (k, g) in zoned.iter() {
            if !now.contains_key(k) {
                g.set(0.0);
            }
        }
        for (k, (g, v)) in now {
            g.set(v);
            zoned.insert(k, g);
        }
    }
}

fn labels_key(series: &str, labels: &[(&str, &str)]) -> Vec<String> {
    std::iter::once(series.to_string())
        .chain(labels.iter().map(|(_, v)| (*v).to_string()))
        .collect()
}
