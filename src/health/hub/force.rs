//! Operator actions on the health hub: forcing a server's state (optionally until a time,
//! with a note), persisted to the state file before it takes effect; and the state file's
//! status.

use std::time::SystemTime;

use super::report::{ServerReport, report};
use super::{HealthHub, HubError};
use crate::config::operator::ForcedState;
use crate::events::Kind;
use crate::health::state_file::ApiForced;
use crate::lock::guard;

/// An operator action on one server through the admin API: force a state, or clear the one
/// set before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    Set(ForcedState),
    Clear,
}

impl Force {
    /// Reads the action as the admin API takes it: `drain`, `up`, `down` or `clear`.
    pub fn from_word(word: &str) -> Option<Force> {
        match word {
            "clear" => Some(Force::Clear),
            _ => ForcedState::from_word(word).map(Force::Set),
        }
    }

    /// The word of the action (as [`Force::from_word`] reads it).
    pub fn as_str(self) -> &'static str {
        match self {
            Force::Set(f) => f.as_str(),
            Force::Clear => "clear",
        }
    }
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
        let mut writing = guard(&self.persisting);
        let key = (region.to_owned(), server.to_owned());
        let forced = match f {
            Force::Set(state) => Some(ApiForced { state, until, note }),
            Force::Clear => None,
        };
        if let Some(file) = &self.state_file {
            let mut next = {
                let inner = guard(&self.inner);
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
                self.gauges.state_file_errors.increment(1);
                tracing::error!(server = %format!("{region}/{server}"), action = f.as_str(), "{e}; state not changed");
                *writing = Some(e.to_string());
                return Err(e.into());
            }
            *writing = None;
        }
        let now = super::now();
        let mut inner = guard(&self.inner);
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
        let effective = super::effective_forced(&inner, &key, SystemTime::now()).0;
        inner.entries[slot].health.set_forced(effective, now);
        tracing::info!(server = %format!("{region}/{server}"), action = f.as_str(), until = shown_until, "operator state set");
        self.events.record(
            Kind::Forced,
            format!("{region}/{server}"),
            describe(f, until, note_of(&inner, &key)),
        );
        let pending = self.pending(&inner, now);
        let r = report(&inner, slot, now);
        drop(inner);
        self.publish(pending);
        Ok(r)
    }

    /// The state file and its last write error, for `/v1/status`.
    pub fn state_file_status(&self) -> Option<serde_json::Value> {
        let path = self.state_file.as_ref()?;
        let err = guard(&self.persisting).clone();
        Some(serde_json::json!({ "path": path.display().to_string(), "last_error": err }))
    }
}

/// The note of the state set through the API for `key`.
fn note_of<'a>(inner: &'a super::Inner, key: &(String, String)) -> Option<&'a str> {
    inner.forced.get(key).and_then(|f| f.note.as_deref())
}

/// How an operator action reads in the event log: `drain until 2026-12-01T06:00:00Z: note`.
fn describe(f: Force, until: Option<SystemTime>, note: Option<&str>) -> String {
    let mut text = match f {
        Force::Set(s) => s.as_str().to_owned(),
        Force::Clear => "clear".to_owned(),
    };
    if let (Force::Set(_), Some(u)) = (f, until) {
        text.push_str(&format!(" until {}", humantime::format_rfc3339_seconds(u)));
    }
    if let (Force::Set(_), Some(n)) = (f, note) {
        text.push_str(": ");
        text.push_str(n);
    }
    text
}
