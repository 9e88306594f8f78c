//! What `/v1/servers` and the operator actions show of one server: its state, where a forced
//! state comes from (and the states set through the API and the operator state file, active
//! or not), its last probe, its load, its TLS certificate and, when its health is per
//! transport, each transport's state.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Entry, Inner, effective_forced};
use crate::config::operator::ForcedState;
use crate::config::{Check, Transport};
use crate::steering::Status;

/// What `/v1/servers` shows for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub region: String,
    pub server: String,
    pub state: Status,
    pub observed: &'static str,
    /// Up, but its latest probes failed: being re-probed at the suspect cadence.
    pub suspect: bool,
    pub forced: Option<&'static str>,
    /// Where the forced state comes from: `api` (this instance) or `file` (the operator state
    /// file, shared by every instance). The API wins while it is set.
    pub forced_by: Option<&'static str>,
    /// The state set through the admin API, active or not.
    pub api_state: Option<ApiStateOut>,
    /// The operator state file's entry for this server, active or not.
    pub file_state: Option<FileStateOut>,
    pub target: Option<String>,
    pub check: &'static str,
    pub last_result: Option<String>,
    pub last_code: Option<u16>,
    pub rtt_ms: Option<f64>,
    pub load: Option<LoadOut>,
    /// The server's declared `capacity` (calls, cps), when it has one.
    pub capacity: Option<CapacityOut>,
    /// Capacity left, 0 to 1, rounded to three decimals.
    pub headroom: Option<f64>,
    /// The share of clients left out while the load is between the shedding watermarks
    /// (`capacity.shed`), 0 to 1, exact.
    pub shed: Option<f64>,
    pub since_secs: f64,
    /// A TLS-checked server's certificate, once a check has read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<CertOut>,
    /// Health per transport (`check: per-transport` or `checks:`): one entry per transport;
    /// empty (and left out) when one check decides the whole server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transports: Vec<TransportOut>,
}

/// What `/v1/servers` shows of one transport of a server whose health is per transport.
#[derive(Debug, Clone, Serialize)]
pub struct TransportOut {
    pub transport: &'static str,
    /// The server's state on this transport: it is answered on it while this serves.
    pub state: Status,
    pub observed: &'static str,
    pub suspect: bool,
    pub check: &'static str,
    pub target: Option<String>,
    pub last_result: Option<String>,
    pub last_code: Option<u16>,
    pub since_secs: f64,
}

/// What `/v1/servers` shows of a TLS-checked server's certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertOut {
    /// The leaf certificate's notAfter, Unix seconds.
    pub not_after_unix: i64,
    /// Seconds until notAfter (negative once expired).
    pub expires_in_secs: i64,
    /// Whole days left, rounded down (negative once expired).
    pub days_left: i64,
    /// Why the latest TLS check failed (`expired`, `name_mismatch`, `untrusted`,
    /// `handshake`, `timeout`), `null` when it passed.
    pub failure: Option<&'static str>,
}

/// What `/v1/servers` shows of a state set through the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ApiStateOut {
    pub state: &'static str,
    /// Unix seconds from which it no longer applies.
    pub until_unix: Option<u64>,
    pub active: bool,
    pub note: Option<String>,
}

/// What `/v1/servers` shows of the operator state file's entry for a server.
#[derive(Debug, Clone, Serialize)]
pub struct FileStateOut {
    pub state: &'static str,
    /// Unix seconds after which the entry no longer applies.
    pub until_unix: Option<u64>,
    pub active: bool,
    /// The entry names the whole region.
    pub region_wide: bool,
    pub note: Option<String>,
}

/// What `/v1/servers` shows of a server's declared capacity.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityOut {
    pub calls: Option<u32>,
    pub cps: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadOut {
    pub calls: Option<u32>,
    pub cps: Option<u32>,
    pub age_secs: f64,
}

/// Unix seconds of `t`.
fn unix(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// The state set through the API for `key`, as `/v1/servers` shows it.
fn api_state_out(inner: &Inner, key: &(String, String), now: SystemTime) -> Option<ApiStateOut> {
    let f = inner.forced.get(key)?;
    Some(ApiStateOut {
        state: f.state.state_str(),
        until_unix: f.until.and_then(unix),
        active: f.active(now),
        note: f.note.clone(),
    })
}

/// The transports of a server whose health is per transport, as `/v1/servers` shows them.
fn transports_out(inner: &Inner, e: &Entry, now: Instant) -> Vec<TransportOut> {
    if !e.per_transport() {
        return Vec::new();
    }
    let states = e.lane_states(now, inner.overflow_at, inner.report_ttl);
    e.lanes()
        .zip(states)
        .flat_map(|((mask, check, target, h), (_, state, observed))| {
            Transport::in_mask(mask).map(move |t| TransportOut {
                transport: t.as_str(),
                state,
                observed: observed.as_str(),
                suspect: h.suspect(),
                check: check.map_or("none", Check::as_str),
                target: target.map(|t| t.addr.to_string()),
                last_result: h.last().map(|r| r.detail.clone()),
                last_code: h.last().and_then(|r| r.code),
                since_secs: now.saturating_duration_since(e.since()).as_secs_f64(),
            })
        })
        .collect()
}

pub(super) fn report(inner: &Inner, i: usize, now: Instant) -> ServerReport {
    let e = &inner.entries[i];
    let h = &e.health;
    let last = h.last();
    let key = (e.region.clone(), e.server.clone());
    let wall = SystemTime::now();
    ServerReport {
        region: e.region.clone(),
        server: e.server.clone(),
        state: e.status(now, inner.overflow_at, inner.report_ttl).0,
        observed: e.observed().as_str(),
        suspect: e.suspect(),
        forced: h.forced().map(ForcedState::state_str),
        forced_by: effective_forced(inner, &key, wall).1,
        api_state: api_state_out(inner, &key, wall),
        file_state: inner.file_forced.get(&key).map(|o| FileStateOut {
            state: o.state.as_str(),
            until_unix: o.until.and_then(unix),
            active: o.active(wall),
            region_wide: o.from_region,
            note: o.note.clone(),
        }),
        target: e.identity.target.as_ref().map(|t| t.addr.to_string()),
        check: if e.per_transport() {
            "per-transport"
        } else {
            e.check.map_or("none", Check::as_str)
        },
        last_result: last.map(|r| r.detail.clone()),
        last_code: last.and_then(|r| r.code),
        rtt_ms: last.map(|r| r.rtt.as_secs_f64() * 1000.0),
        load: h.load().map(|l| LoadOut {
            calls: l.calls,
            cps: l.cps,
            age_secs: now.saturating_duration_since(l.at).as_secs_f64(),
        }),
        capacity: e.identity.capacity.map(|c| CapacityOut {
            calls: c.calls,
            cps: c.cps,
        }),
        headroom: h
            .headroom(now, inner.report_ttl)
            .map(|x| (x * 1000.0).round() / 1000.0),
        shed: inner
            .shed
            .and_then(|m| h.shed_share(now, m, inner.report_ttl)),
        since_secs: now.saturating_duration_since(e.since()).as_secs_f64(),
        tls_certificate: e.cert.not_after.map(|not_after| {
            let unix = super::unix_now();
            CertOut {
                not_after_unix: not_after,
                expires_in_secs: not_after - unix,
                days_left: super::cert_watch::days_left(not_after, unix),
                failure: e.cert.failure.map(crate::health::vocab::TlsFailure::as_str),
            }
        }),
        transports: transports_out(inner, e, now),
    }
}
