//! The operator state file: forced server and region states (`drain`, `down`, `up`), each
//! optionally until a time, distributed like the zone maps and reloaded with them. Every
//! instance that loads the same file applies the same operator intent.
//!
//! ```yaml
//! uk/lon1: { state: drain, until: 2026-12-01T06:00:00Z, note: kernel upgrade }
//! sg: { state: down }        # a whole region: every server in it
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::error::{self, ConfigError, Sink};
use super::{RegionConfig, SourceFile};

/// A state an operator forces on a server, through the operator state file or the admin
/// API (the one type for both; clearing a state set through the API is an action, not a
/// state). It has two spellings: the word an operator writes ([`ForcedState::as_str`]) and the
/// state the server is then in ([`ForcedState::state_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForcedState {
    Drain,
    Down,
    Up,
}

impl ForcedState {
    /// The word an operator writes: `drain`, `down`, `up` (the operator state file, the body
    /// of `PUT /v1/servers/{region}/{server}/state`, and `file_state` in `/v1/servers`).
    pub fn as_str(self) -> &'static str {
        match self {
            ForcedState::Drain => "drain",
            ForcedState::Down => "down",
            ForcedState::Up => "up",
        }
    }

    /// The state of a server it is forced on: `drained`, `down`, `up` (`forced` and
    /// `api_state` in `/v1/servers`, and the admin API's state file).
    pub fn state_str(self) -> &'static str {
        match self {
            ForcedState::Drain => "drained",
            ForcedState::Down => "down",
            ForcedState::Up => "up",
        }
    }

    /// Reads the word an operator writes ([`ForcedState::as_str`]).
    pub fn from_word(word: &str) -> Option<ForcedState> {
        [ForcedState::Drain, ForcedState::Down, ForcedState::Up]
            .into_iter()
            .find(|f| f.as_str() == word)
    }

    /// Reads the name of a state ([`ForcedState::state_str`]).
    pub fn from_state_str(name: &str) -> Option<ForcedState> {
        [ForcedState::Drain, ForcedState::Down, ForcedState::Up]
            .into_iter()
            .find(|f| f.state_str() == name)
    }
}

/// One server's entry in the operator state file, after region entries are spread over
/// their servers (a server's own entry wins over its region's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorState {
    pub state: ForcedState,
    /// Ignored from this time on.
    pub until: Option<SystemTime>,
    pub note: Option<String>,
    /// The entry named the whole region.
    pub from_region: bool,
}

impl OperatorState {
    /// Whether the entry applies at `now`.
    pub fn active(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// Forced states by (region, server).
pub(crate) type OperatorStates = BTreeMap<(String, String), OperatorState>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    state: Spanned<String>,
    #[serde(default)]
    until: Option<Spanned<String>>,
    #[serde(default)]
    note: Option<Spanned<String>>,
}

/// Largest operator state file read.
pub(crate) const MAX_BYTES: u64 = 4 << 20;

/// Reads the operator state file; a missing file means no forced states.
pub(crate) fn load(
    path: &Path,
    regions: &[RegionConfig],
    files: &mut Vec<SourceFile>,
    errors: &mut Vec<ConfigError>,
) -> OperatorStates {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return OperatorStates::new(),
        _ => {}
    }
    let text = match super::source::read(path, MAX_BYTES, "operator state file", files) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return OperatorStates::new();
        }
    };
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return OperatorStates::new();
    }
    let raw: HashMap<Spanned<String>, RawEntry> = match serde_saphyr::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(error::from_yaml(path, &e));
            return OperatorStates::new();
        }
    };
    let mut sink = Sink { file: path, errors };
    compile(&raw, regions, &mut sink)
}

fn compile(
    raw: &HashMap<Spanned<String>, RawEntry>,
    regions: &[RegionConfig],
    sink: &mut Sink,
) -> OperatorStates {
    let mut whole = Vec::new();
    let mut single = Vec::new();
    for (key, entry) in raw {
        let Some(state) = entry_state(&key.value, entry, sink) else {
            continue;
        };
        let (region, server) = match key.value.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (key.value.as_str(), None),
        };
        let Some(rc) = regions.iter().find(|r| r.name == region) else {
            sink.on(key, key.value.clone(), format!("no region `{region}`"));
            continue;
        };
        match server {
            None => whole.push((rc, state)),
            Some(s) if rc.servers.iter().any(|x| x.name == s) => {
                single.push(((region.to_owned(), s.to_owned()), state));
            }
            Some(s) => sink.on(
                key,
                key.value.clone(),
                format!("no server `{s}` in region `{region}`"),
            ),
        }
    }
    let mut out = OperatorStates::new();
    for (rc, state) in whole {
        for s in &rc.servers {
            let mut st = state.clone();
            st.from_region = true;
            out.insert((rc.name.clone(), s.name.clone()), st);
        }
    }
    out.extend(single);
    out
}

fn entry_state(key: &str, e: &RawEntry, sink: &mut Sink) -> Option<OperatorState> {
    let word = e.state.value.as_str();
    let Some(state) = ForcedState::from_word(word).or_else(|| ForcedState::from_state_str(word))
    else {
        sink.on(
            &e.state,
            format!("{key}.state"),
            format!("unknown state `{word}` (use drain, down or up)"),
        );
        return None;
    };
    let until = match &e.until {
        None => None,
        Some(u) => match parse_until(&u.value) {
            Ok(t) => Some(t),
            Err(err) => {
                sink.on(u, format!("{key}.until"), err);
                return None;
            }
        },
    };
    Some(OperatorState {
        state,
        until,
        note: e.note.as_ref().map(|n| n.value.clone()),
        from_region: false,
    })
}

/// Reads an `until` time as the operator state file and the admin API take it: RFC 3339 in
/// UTC (a space may stand for the `T`, the `Z` may be left out, fractional seconds are
/// optional). The error quotes the text and says what to write.
pub(crate) fn parse_until(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text.trim()).map_err(|err| {
        format!("invalid time `{text}`: {err} (use RFC 3339 UTC, e.g. 2026-12-01T06:00:00Z)")
    })
}

#[cfg(test)]
mod tests {
    use super::ForcedState;

    #[test]
    fn each_state_reads_back_in_both_spellings() {
        let all = [ForcedState::Drain, ForcedState::Down, ForcedState::Up];
        let words: Vec<_> = all.iter().map(|f| f.as_str()).collect();
        let states: Vec<_> = all.iter().map(|f| f.state_str()).collect();
        assert_eq!(words, ["drain", "down", "up"]);
        assert_eq!(states, ["drained", "down", "up"]);
        for f in all {
            assert_eq!(ForcedState::from_word(f.as_str()), Some(f));
            assert_eq!(ForcedState::from_state_str(f.state_str()), Some(f));
        }
        assert_eq!(ForcedState::from_word("drained"), None);
        assert_eq!(ForcedState::from_state_str("drain"), None);
        assert_eq!(ForcedState::from_state_str("Drained"), None);
    }
}
