//! Loading a GeoIP database file for serving: open it (`.mmdb` or CSV), read its networks
//! into a compact table, and log each phase, with progress while a large one is read.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{DbInfo, GeoDb, GeoError, Networks};

/// How often a slow load says it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A loaded GeoIP database, compiled to a table of networks and locations (kept to compile
/// maps for new region sets and for explain; the database file's bytes are not kept).
#[derive(Debug)]
pub struct GeoData {
    pub table: Networks,
    pub info: DbInfo,
    pub path: PathBuf,
}

impl GeoData {
    /// Opens a database (`.mmdb` or CSV) and compiles its network table.
    /// Logs each phase, and progress every few seconds while the networks are read.
    pub fn load(path: &Path) -> Result<GeoData, GeoError> {
        let started = Instant::now();
        let ms = || started.elapsed().as_millis() as u64;
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        tracing::info!(path = %path.display(), bytes, "geoip: opening database");
        let db = GeoDb::open(path)?;
        let mut info = db.info();
        tracing::info!(
            path = %path.display(),
            database_type = %info.database_type,
            built = %info.built(),
            ms = ms(),
            "geoip: reading networks"
        );
        let table = with_progress("geoip: still reading networks", path, || db.table())?;
        drop(db);
        info.networks = table.len();
        tracing::info!(
            networks = info.networks,
            ms = ms(),
            "geoip networks walked, compacting"
        );
        let table = Networks::new(table);
        Ok(GeoData {
            table,
            info,
            path: path.to_path_buf(),
        })
    }
}

impl DbInfo {
    /// The build date, `2026-11-25`, or `unknown` when the database gives none (0).
    pub fn built(&self) -> String {
        if self.build_epoch == 0 {
            return "unknown".into();
        }
        let t = UNIX_EPOCH + Duration::from_secs(self.build_epoch);
        let s = humantime::format_rfc3339_seconds(t).to_string();
        s.get(..10).unwrap_or(&s).to_string()
    }
}

/// Runs `f`, logging `what` every few seconds until it returns.
fn with_progress<T>(what: &str, path: &Path, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let (done, wait) = channel::<()>();
    std::thread::scope(|s| {
        let ticker = std::thread::Builder::new()
            .name("progress".into())
            .spawn_scoped(s, move || {
                while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(PROGRESS_EVERY) {
                    tracing::info!(
                        path = %path.display(),
                        secs = started.elapsed().as_secs(),
                        "{what}"
                    );
                }
            });
        let out = f();
        drop(done);
        drop(ticker);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_dates() {
        let info = |build_epoch| DbInfo {
            database_type: String::new(),
            build_epoch,
            networks: 0,
        };
        assert_eq!(info(0).built(), "unknown");
        assert_eq!(info(1_764_028_800).built(), "2025-11-25");
    }
}
