//! Operator actions on the health hub: forcing a server's state (optionally until a time,
//! with a note), persisted to the state file before it takes effect; how a forced state shows
//! in `/v1/servers`; and the state file's status.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Force, HealthHub, HubError, Inner, ServerReport, lock, report};
use crate::health::state::Forced;
use crate::health::state_file::ApiForced;

/// What `/v1/servers` shows of a state set through the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ApiStateOut {
    pub state: &'static str,
    /// Unix seconds from which it no longer applies.
    pub until_unix: Option<u64>,
    pub active: bool,
    pub note: Option<String>,
}

/// The state set through the API for `key`, as `/v1/servers` shows it.
pub(super) fn api_state_out(
    inner: &Inner,
    key: &(String, String),
    now: SystemTime,
) -> Option<ApiStateOut> {
    let f = inner.forced.get(key)?;
    Some(ApiStateOut {
        state: f.state.as_str(),
        until_unix: f
            .until
            .and_then(|u| u.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        active: f.active(now),
        note: f.note.clone(),
    })
}

impl HealthHub {
    /// Applies an operator action; a forced state ends by itself at `until` (within a second)
    /// and carries `note` (both ignored by [`Force::Clear`]). With a state file, the new states
    /// are written (atomically, fsynced) first and applied only once they are on disk: when
    /// they cannot be, nothing changes and the error says why. Blocking (file I/O): call it
    /// off the async workers.
    pub fn force(
        &self,
        region: &str,
        server: &str,
        f: Force,
        until: Option<SystemTime>,
        note: Option<String>,
    ) -> Result<ServerReport, HubError> {
        // One operator action at a time, so the file always holds the latest states.
        let mut writing = self
            .persisting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (region.to_owned(), server.to_owned());
        let state = match f {
            Force::Drain => Some(Forced::Drained),
            Force::Up => Some(Forced::Up),
            Force::Down => Some(Forced::Down),
            Force::Clear => None,
        };
        let forced = state.map(|state| ApiForced { state, until, note });
        if let Some(file) = &self.state_file {
            let mut next = {
                let inner = lock(&self.inner);
                if !inner.by_name.contains_key(&key) {
                    return Err(HubError::not_found(region, server));
                }
                inner.forced.clone()
            };
            match &forced {
                Some(v) => next.insert(key.clone(), v.clone()),
                None => next.remove(&key),
            };
            if let Err(e) = crate::health::state_file::write(file, &next) {
                self.telemetry
                    .counter("sipsteer_state_file_errors_total", &[])
                    .increment(1);
                tracing::error!(server = %format!("{region}/{server}"), action = ?f, "{e}; state not changed");
                *writing = Some(e.to_string());
                return Err(e.into());
            }
            *writing = None;
        }
        let now = super::now();
        let mut inner = lock(&self.inner);
        let Some(&slot) = inner.by_name.get(&key) else {
            return Err(HubError::not_found(region, server));
        };
        let shown_until = forced
            .as_ref()
            .and_then(|v| v.until)
            .map(|u| tracing::field::display(humantime::format_rfc3339(u)));
        match forced {
            Some(v) => inner.forced.insert(key.clone(), v),
            None => inner.forced.remove(&key),
        };
        let effective = super::effective_forced(&inner, &key, std::time::SystemTime::now()).0;
        inner.entries[slot].health.set_forced(effective, now);
        tracing::info!(server = %format!("{region}/{server}"), action = ?f, until = shown_until, "operator state set");
        self.publish(&inner, now);
        Ok(report(&inner, slot, now))
    }

    /// The state file and its last write error, for `/v1/status`.
    pub fn state_file_status(&self) -> Option<serde_json::Value> {
        let path = self.state_file.as_ref()?;
        let err = self
            .persisting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Some(serde_json::json!({ "path": path.display().to_string(), "last_error": err }))
    }
}
