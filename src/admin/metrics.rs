//! What `/metrics` shows: the instance's registered series (`telemetry`), the query counters
//! of every listener (`dns::stats`) and the defences' counters of the served snapshot.

use crate::dns::snapshot::Snapshot;
use crate::dns::stats::Counters;
use crate::telemetry::Telemetry;

/// The Prometheus text exposition of everything.
pub fn render(telemetry: &Telemetry, counters: &Counters, snap: &Snapshot) -> String {
    let mut out = telemetry.render();
    counters.render(snap, &mut out);
    snap.defences.render(&mut out);
    out
}
