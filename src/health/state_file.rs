//! The state file: server states forced through the admin API, read at start and written on
//! every change. A state alone is written as a string, one with an end or a note as an
//! object: `{"uk/lon1": "drained", "uk/lon2": {"state": "down", "until":
//! "2026-12-01T06:00:00Z", "note": "kernel upgrade"}}`. A write is atomic and durable: a
//! fresh temporary file in the same directory (created with `O_EXCL | O_NOFOLLOW`, so a
//! planted symlink is never followed), fsynced, renamed over the state file, then the
//! directory fsynced.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::config::operator::ForcedState;
use crate::files::os_reason;

/// A state forced through the admin API: what the state file keeps for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiForced {
    pub state: ForcedState,
    /// No longer applies from this time on.
    pub until: Option<SystemTime>,
    pub note: Option<String>,
}

impl ApiForced {
    /// Whether it applies at `now`.
    pub(crate) fn active(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|u| now < u)
    }

    fn from_json(v: &Value) -> Option<ApiForced> {
        let state = ForcedState::from_state_str;
        match v {
            Value::String(s) => Some(ApiForced {
                state: state(s)?,
                until: None,
                note: None,
            }),
            Value::Object(m) => {
                let until = match m.get("until") {
                    None | Some(Value::Null) => None,
                    Some(u) => Some(crate::config::operator::parse_until(u.as_str()?).ok()?),
                };
                let note = match m.get("note") {
                    None | Some(Value::Null) => None,
                    Some(n) => Some(n.as_str()?.to_owned()),
                };
                Some(ApiForced {
                    state: state(m.get("state")?.as_str()?)?,
                    until,
                    note,
                })
            }
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        if self.until.is_none() && self.note.is_none() {
            return Value::from(self.state.state_str());
        }
        let mut m = serde_json::Map::new();
        m.insert("state".into(), self.state.state_str().into());
        if let Some(u) = self.until {
            m.insert(
                "until".into(),
                humantime::format_rfc3339(u).to_string().into(),
            );
        }
        if let Some(n) = &self.note {
            m.insert("note".into(), n.clone().into());
        }
        Value::Object(m)
    }
}

/// Forced states by (region, server).
pub(crate) type ApiStates = BTreeMap<(String, String), ApiForced>;

/// Attempts at a free temporary name before giving up.
const TEMP_ATTEMPTS: u32 = 16;

/// The forced states of the state file; entries it cannot read are skipped.
pub(super) fn read(path: &Path) -> ApiStates {
    let mut out = BTreeMap::new();
    let text = match crate::files::read_text(path, crate::files::MAX_STATE_FILE) {
        Ok(t) => t,
        Err(e) => {
            if path.exists() {
                tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable state file");
            }
            return out;
        }
    };
    let parsed: Result<BTreeMap<String, Value>, _> = serde_json::from_str(&text);
    match parsed {
        Ok(map) => {
            for (k, v) in map {
                let Some((r, s)) = k.split_once('/') else {
                    continue;
                };
                let Some(f) = ApiForced::from_json(&v) else {
                    continue;
                };
                out.insert((r.to_owned(), s.to_owned()), f);
            }
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable state file");
        }
    }
    out
}

/// The state file could not be written; nothing was replaced.
#[derive(Debug, thiserror::Error)]
#[error("cannot write state file {}: {reason}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    /// The OS reason (and which step failed).
    pub reason: String,
}

/// Writes the forced states; the error names the path and the OS reason.
pub(super) fn write(path: &Path, forced: &ApiStates) -> Result<(), WriteError> {
    let map: BTreeMap<String, Value> = forced
        .iter()
        .map(|((r, s), f)| (format!("{r}/{s}"), f.to_json()))
        .collect();
    let body = serde_json::to_vec_pretty(&map).map_err(|e| e.to_string());
    let r = body.and_then(|b| replace(path, &b));
    r.map_err(|reason| WriteError {
        path: path.to_path_buf(),
        reason,
    })
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Atomically replaces `path` with `bytes`; the error is the reason, for [`WriteError`].
fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = dir_of(path);
    let (tmp, mut file) = create_temp(path, &dir)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(os_reason(&e));
    }
    // The rename is durable only once the directory is.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{} (fsync of {})", os_reason(&e), dir.display()))
}

/// A new temporary file next to `path`, under a name no one else holds.
fn create_temp(path: &Path, dir: &Path) -> Result<(PathBuf, std::fs::File), String> {
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = dir.join(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        match open_new(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(os_reason(&e)),
        }
    }
    Err(last.map_or_else(|| "no free temporary name".into(), |e| os_reason(&e)))
}

/// Creates `tmp`, which must not exist: never opens an existing file, never follows a symlink.
fn open_new(tmp: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(state: ForcedState) -> ApiForced {
        ApiForced {
            state,
            until: None,
            note: None,
        }
    }

    fn key(r: &str, s: &str) -> (String, String) {
        (r.to_string(), s.to_string())
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("sipsteer-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("state.json");
        let mut m = ApiStates::new();
        m.insert(key("uk", "lon1"), plain(ForcedState::Drain));
        m.insert(key("uk", "lon2"), plain(ForcedState::Up));
        m.insert(key("de", "fra1"), plain(ForcedState::Down));
        write(&f, &m).unwrap();
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "{\n  \"de/fra1\": \"down\",\n  \"uk/lon1\": \"drained\",\n  \"uk/lon2\": \"up\"\n}",
            "the file format"
        );
        assert_eq!(read(&f), m);
        std::fs::write(
            &f,
            r#"{"uk/lon1": "Drained", "uk/lon2": "up", "nokey": "down", "uk/lon3": {"state": "down", "until": "soon"}, "uk/lon4": 7}"#,
        )
        .unwrap();
        let only_lon2 = ApiStates::from([(key("uk", "lon2"), plain(ForcedState::Up))]);
        assert_eq!(
            read(&f),
            only_lon2,
            "unknown states, keys and times are skipped"
        );
        write(&f, &m).unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_end_and_a_note_make_an_object() {
        let dir = std::env::temp_dir().join(format!("sipsteer-state-until-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("state.json");
        let until = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_104_800);
        let m = ApiStates::from([
            (
                key("uk", "lon1"),
                ApiForced {
                    state: ForcedState::Drain,
                    until: Some(until),
                    note: Some("kernel \"upgrade\"".into()),
                },
            ),
            (
                key("uk", "lon2"),
                ApiForced {
                    state: ForcedState::Down,
                    until: None,
                    note: Some("disk".into()),
                },
            ),
        ]);
        write(&f, &m).unwrap();
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            r#"{
  "uk/lon1": {
    "note": "kernel \"upgrade\"",
    "state": "drained",
    "until": "2026-12-01T06:00:00Z"
  },
  "uk/lon2": {
    "note": "disk",
    "state": "down"
  }
}"#
        );
        assert_eq!(read(&f), m);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn never_follows_a_planted_symlink() {
        let dir = std::env::temp_dir().join(format!("sipsteer-plant-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let tmp = dir.join(".state.json.1.1.00000000.tmp");
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let e = open_new(&tmp).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
