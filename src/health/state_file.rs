//! The state file: operator-forced server states (`{"uk/lon1": "drained"}`), read at start
//! and written on every change. A write is atomic and durable: a fresh temporary file in the
//! same directory (created with `O_EXCL | O_NOFOLLOW`, so a planted symlink is never
//! followed), fsynced, renamed over the state file, then the directory fsynced.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde::de::value::StrDeserializer;

use super::state::Forced;
use crate::files::os_reason;

/// Attempts at a free temporary name before giving up.
const TEMP_ATTEMPTS: u32 = 16;

pub(super) fn read(path: &Path) -> BTreeMap<(String, String), Forced> {
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
    let parsed: Result<BTreeMap<String, String>, _> = serde_json::from_str(&text);
    match parsed {
        Ok(map) => {
            for (k, v) in map {
                let Some((r, s)) = k.split_once('/') else {
                    continue;
                };
                let name: StrDeserializer<'_, serde::de::value::Error> =
                    v.as_str().into_deserializer();
                let Ok(f) = Forced::deserialize(name) else {
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
pub(super) fn write(
    path: &Path,
    forced: &BTreeMap<(String, String), Forced>,
) -> Result<(), WriteError> {
    let map: BTreeMap<String, Forced> = forced
        .iter()
        .map(|((r, s), f)| (format!("{r}/{s}"), *f))
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

    #[test]
    fn writes_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("sipsteer-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("state.json");
        let mut m = BTreeMap::new();
        m.insert(("uk".to_string(), "lon1".to_string()), Forced::Drained);
        m.insert(("uk".to_string(), "lon2".to_string()), Forced::Up);
        m.insert(("de".to_string(), "fra1".to_string()), Forced::Down);
        write(&f, &m).unwrap();
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "{\n  \"de/fra1\": \"down\",\n  \"uk/lon1\": \"drained\",\n  \"uk/lon2\": \"up\"\n}",
            "the file format"
        );
        assert_eq!(read(&f), m);
        std::fs::write(
            &f,
            r#"{"uk/lon1": "Drained", "uk/lon2": "up", "nokey": "down"}"#,
        )
        .unwrap();
        let only_lon2 = BTreeMap::from([(("uk".to_string(), "lon2".to_string()), Forced::Up)]);
        assert_eq!(read(&f), only_lon2, "unknown states and keys are skipped");
        write(&f, &m).unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
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
