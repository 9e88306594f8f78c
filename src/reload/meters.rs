//! The reloader's series, made once with the reloader: reloads by result, and what an
//! applied reload serves (generation, when, GeoIP build figures, when its first RRSIG
//! expires).

use metrics::{Counter, Gauge};

use super::ReloadResult;
use crate::telemetry::Telemetry;

pub(super) struct Meters {
    /// `sipsteer_config_reloads_total{result}`: ok and error (a reload that finds nothing
    /// changed is not counted).
    ok: Counter,
    error: Counter,
    pub(super) last_success: Gauge,
    pub(super) generation: Gauge,
    pub(super) geoip_build_seconds: Gauge,
    pub(super) geoip_build_epoch: Gauge,
    /// When the first of the served RRSIGs expires (0: no zone is signed).
    pub(super) dnssec_expiry: Gauge,
}

impl Meters {
    pub(super) fn new(t: &Telemetry) -> Meters {
        let reloads =
            |r: ReloadResult| t.counter("sipsteer_config_reloads_total", &[("result", r.as_str())]);
        Meters {
            ok: reloads(ReloadResult::Ok),
            error: reloads(ReloadResult::Error),
            last_success: t.gauge("sipsteer_config_last_success_timestamp_seconds", &[]),
            generation: t.gauge("sipsteer_config_generation", &[]),
            geoip_build_seconds: t.gauge("sipsteer_geoip_build_seconds", &[]),
            geoip_build_epoch: t.gauge("sipsteer_geoip_build_epoch_seconds", &[]),
            dnssec_expiry: t.gauge("sipsteer_dnssec_signatures_expire_timestamp_seconds", &[]),
        }
    }

    /// The reload counter of `result` (none for an unchanged one).
    pub(super) fn reloads(&self, result: ReloadResult) -> Option<&Counter> {
        match result {
            ReloadResult::Ok => Some(&self.ok),
            ReloadResult::Unchanged => None,
            ReloadResult::Error => Some(&self.error),
        }
    }
}
