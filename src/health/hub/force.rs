//! Operator actions on the health hub: forcing a server's state, persisted to the state file
//! before it takes effect, and the state file's status.

use super::{Force, HealthHub, HubError, ServerReport, lock, report};
use crate::health::state::Forced;

impl HealthHub {
    /// Applies an operator action. With a state file, the new states are written (atomically,
    /// fsynced) first and applied only once they are on disk: when they cannot be, nothing
    /// changes and the error says why. Blocking (file I/O): call it off the async workers.
    pub fn force(&self, region: &str, server: &str, f: Force) -> Result<ServerReport, HubError> {
        // One operator action at a time, so the file always holds the latest states.
        let mut writing = self
            .persisting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (region.to_owned(), server.to_owned());
        let forced = match f {
            Force::Drain => Some(Forced::Drained),
            Force::Up => Some(Forced::Up),
            Force::Down => Some(Forced::Down),
            Force::Clear => None,
        };
        if let Some(file) = &self.state_file {
            let mut next = {
                let inner = lock(&self.inner);
                if !inner.by_name.contains_key(&key) {
                    return Err(HubError::not_found(region, server));
                }
                inner.forced.clone()
            };
            match forced {
                Some(v) => next.insert(key.clone(), v),
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
        match forced {
            Some(v) => inner.forced.insert(key.clone(), v),
            None => inner.forced.remove(&key),
        };
        let effective = super::effective_forced(&inner, &key, std::time::SystemTime::now()).0;
        inner.entries[slot].health.set_forced(effective, now);
        tracing::info!(server = %format!("{region}/{server}"), action = ?f, "operator state set");
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
