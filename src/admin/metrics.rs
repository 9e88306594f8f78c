//! What `/metrics` shows: the instance's registry (`telemetry`), after the query counters of
//! every listener and the defences' counters of the served snapshot have been published to it
//! (`dns::stats`), all rendered and escaped by the one exporter.

use crate::dns::snapshot::Snapshot;
use crate::dns::stats::Counters;
use crate::telemetry::Telemetry;

/// The Prometheus text exposition of everything; `counters` publish to `telemetry`.
pub fn render(telemetry: &Telemetry, counters: &Counters, snap: &Snapshot) -> String {
    counters.publish(snap);
    telemetry.render()
}
