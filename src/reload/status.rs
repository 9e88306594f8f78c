//! What the reloads report: the status shown in `/v1/status`, how one reload ended, where
//! the GeoIP database stands, and the files the serving config was read from.

use serde::Serialize;

use crate::config::SourceFile;

/// How a reload ended, under the names `/v1/status` (`reload.last_result`),
/// `POST /v1/reload` (`result`) and the `result` label of `sipsteer_config_reloads_total`
/// give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadResult {
    /// A new snapshot is served.
    Ok,
    /// Nothing changed; the snapshot stays.
    Unchanged,
    /// The load was refused; the snapshot stays.
    Error,
}

impl ReloadResult {
    /// The name written out.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Error => "error",
        }
    }
}

/// What the last reloads did (shown in `/v1/status`).
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    pub generation: u64,
    pub last_result: ReloadResult,
    /// The last refused load's problems, the first [`super::MAX_REPORTED`] of them
    /// ([`super::Rejection::summary`]).
    pub last_error: Option<String>,
    /// How many problems the last refused load had.
    pub last_error_count: Option<usize>,
    pub last_attempt_unix: u64,
    pub last_success_unix: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Set when the config asks for something only a restart can do (new listen addresses).
    pub restart_needed: Option<String>,
    /// The files the serving config was loaded from.
    pub files: Vec<FileOut>,
}

impl ReloadStatus {
    /// The status after the first load, at `now` (Unix seconds).
    pub(super) fn first(now: u64) -> ReloadStatus {
        ReloadStatus {
            generation: 1,
            last_result: ReloadResult::Ok,
            last_error: None,
            last_error_count: None,
            last_attempt_unix: now,
            last_success_unix: now,
            applied: 1,
            unchanged: 0,
            rejected: 0,
            restart_needed: None,
            files: Vec::new(),
        }
    }
}

/// One file of the serving config and the hash of its contents ([`SourceFile::hash`], 16
/// hex digits).
#[derive(Debug, Clone, Serialize)]
pub struct FileOut {
    pub path: String,
    pub hash: String,
}

/// The files as `/v1/status` shows them.
pub(super) fn files_out(files: &[SourceFile]) -> Vec<FileOut> {
    files
        .iter()
        .map(|f| FileOut {
            path: f.path.display().to_string(),
            hash: format!("{:016x}", f.hash),
        })
        .collect()
}

/// The GeoIP database of the serving config: still compiling after an early start
/// (`app::start_early`), in the snapshot, or refused by the load that should have brought it
/// in (the reload status holds the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GeoState {
    Loading,
    Loaded,
    Failed,
}
